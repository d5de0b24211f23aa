//! The results of `__RemoteCore` (see [`super::remote`]): plain objects set
//! field by field (cheaper in code size than a serde shape per result), and
//! the error a script's refusal stands for.

use super::errors::to_js_error;
use super::results::minted_js;
use crate::error::CapTokenError;
use crate::remote::{Presented, RemoteMinted};
use crate::role::Verb;
use crate::token::Fingerprint;
use wasm_bindgen::prelude::*;

pub(super) fn hex(bytes: &[u8; 32]) -> String {
    let mut buf = [0u8; 64];
    base16ct::lower::encode_str(bytes, &mut buf)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Where step 6 applies to a verb: 1 the verb must name the bound task,
/// 2 the bound task or one below it, 0 no rule.
pub(super) fn ownership_kind(verb: Verb) -> u8 {
    if verb.is_ownership_gated() {
        1
    } else if verb.is_subtree_gated() {
        2
    } else {
        0
    }
}

pub(super) fn opt_u32(value: Option<u32>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from)
}

pub(super) fn opt_text(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from_str)
}

/// A plain object of these fields, set one by one (cheaper in code size
/// than a serde shape per result).
pub(super) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let out: JsValue = js_sys::Object::new().into();
    for (key, value) in fields {
        set(&out, key, value);
    }
    out
}

pub(super) fn presented_js(
    presented: &Presented,
    verb: Option<Verb>,
    task_arg: Option<&str>,
) -> JsValue {
    let token = &presented.token;
    let scopes: js_sys::Array = token.scopes.iter().map(|s| JsValue::from_str(s)).collect();
    object(&[
        ("fingerprint", presented.fingerprint.to_string().into()),
        ("digest", hex(&presented.digest).into()),
        ("role", token.role.as_str().into()),
        ("agentId", token.agent_id.as_str().into()),
        ("scopes", scopes.into()),
        ("issuedAt", (token.issued_at as f64).into()),
        ("expireAt", (token.expire_at as f64).into()),
        ("maxUses", opt_u32(token.max_uses)),
        ("kind", verb.map_or(0, ownership_kind).into()),
        ("taskArg", opt_text(task_arg)),
    ])
}

pub(super) fn new_record_js(
    minted: &RemoteMinted,
    task_id: Option<&str>,
    not_after: Option<u64>,
) -> JsValue {
    let token = &minted.minted.token;
    object(&[
        ("fingerprint", minted.minted.fingerprint.to_string().into()),
        ("digest", hex(&minted.digest).into()),
        ("json", minted.json.as_str().into()),
        ("role", token.role.as_str().into()),
        ("issuedAt", (token.issued_at as f64).into()),
        ("expireAt", (token.expire_at as f64).into()),
        ("maxUses", opt_u32(token.max_uses)),
        ("taskId", opt_text(task_id)),
        (
            "notAfter",
            not_after.map_or(JsValue::NULL, |at| (at as f64).into()),
        ),
    ])
}

/// `{ minted, record }` for a signed token, or `{ deferred }`: the error
/// to report once the script has found no earlier one.
pub(super) fn prepared_js(
    prepared: Result<RemoteMinted, CapTokenError>,
    task_id: Option<&str>,
    not_after: Option<u64>,
) -> JsValue {
    let out = js_sys::Object::new();
    let (key, value) = match prepared {
        Ok(minted) => {
            let _ = js_sys::Reflect::set(
                &out,
                &"record".into(),
                &new_record_js(&minted, task_id, not_after),
            );
            ("minted", minted_js(&minted.minted))
        }
        Err(error) => ("deferred", to_js_error(&error)),
    };
    let _ = js_sys::Reflect::set(&out, &key.into(), &value);
    out.into()
}

pub(super) fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}

pub(super) fn opt_str(value: &JsValue) -> Option<String> {
    value.as_string()
}

/// The error a script's refusal stands for: `code` and its details.
pub(super) fn refusal(
    code: &str,
    fingerprint: &JsValue,
    a: &JsValue,
    b: &JsValue,
) -> CapTokenError {
    let fp = || {
        fingerprint
            .as_string()
            .and_then(|text| text.parse::<Fingerprint>().ok())
            .unwrap_or_else(|| Fingerprint::from_bytes([0; 32]))
    };
    let number = |v: &JsValue| v.as_f64().unwrap_or(0.0) as u32;
    let error = match code {
        "ERR_TOKEN_NOT_FOUND" => CapTokenError::TokenNotFound { fingerprint: fp() },
        "ERR_BAD_SIGNATURE" => CapTokenError::BadSignature,
        "ERR_TOKEN_EXPIRED" => CapTokenError::TokenExpired { fingerprint: fp() },
        "ERR_TOKEN_TASK_MISMATCH" => CapTokenError::TokenTaskMismatch {
            fingerprint: fp(),
            bound: opt_str(a),
            arg: opt_str(b),
        },
        "ERR_TOKEN_REVOKED" => CapTokenError::TokenRevoked { fingerprint: fp() },
        "ERR_TOKEN_USES_EXHAUSTED" => CapTokenError::TokenUsesExhausted { fingerprint: fp() },
        "ERR_SPAWN_DEPTH_EXCEEDED" => CapTokenError::SpawnDepthExceeded {
            current: number(a),
            max: number(b),
        },
        "ERR_TASK_NOT_FOUND" => CapTokenError::TaskNotFound {
            task_id: opt_str(a),
        },
        "ERR_LIMIT_EXCEEDED" => CapTokenError::LimitExceeded {
            limit: match a.as_string().as_deref() {
                Some("maxRecords") => "maxRecords",
                Some("maxTasks") => "maxTasks",
                Some("maxTasksPerTree") => "maxTasksPerTree",
                Some("maxChildrenPerTask") => "maxChildrenPerTask",
                _ => "maxMadePerWorkerToken",
            },
            max: u64::from(number(b)),
        },
        "ERR_STORE_UNAVAILABLE" => CapTokenError::StoreUnavailable {
            reason: a.as_string().unwrap_or_default(),
        },
        _ => CapTokenError::invalid(a.as_string().unwrap_or_default()),
    };
    error
}
