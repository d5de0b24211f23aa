//! The JavaScript `CapTokenRecord` class: converts and delegates to
//! [`CapTokenRecord`].

use super::args::{string_arg, well_formed, MAX_STRING_ARG};
use super::errors::{invalid, throw, to_js_error, JsResult};
use super::results::{to_js, RecordJson};
use crate::error::CapTokenError;
use crate::record::{CapTokenConsumeError, CapTokenRecord};
use crate::token::{CapToken, Fingerprint};
use js_sys::JsString;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// An object argument as JSON text, read by `JSON.stringify` (which may
/// throw: getters, Proxy traps, BigInts, cycles; caught here, so these
/// statics, which hold no borrow, stay safe with any value). `None` for
/// anything that does not give a string of at most `MAX_STRING_ARG` units.
fn object_json(value: &JsValue) -> Option<String> {
    // JSON.stringify writes NaN, Infinity and boxed numbers as `null`, which
    // would read back as "unlimited" or "no task": refuse them instead.
    let replacer = Closure::<dyn FnMut(JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
        |_key: JsValue, value: JsValue| {
            let not_finite = value.as_f64().is_some_and(|n| !n.is_finite());
            if not_finite || value.is_instance_of::<js_sys::Number>() {
                Err(JsValue::NULL)
            } else {
                Ok(value)
            }
        },
    );
    let text: JsValue = js_sys::JSON::stringify_with_replacer(value, replacer.as_ref())
        .ok()?
        .into();
    let text = text.dyn_ref::<JsString>()?;
    (text.length() <= MAX_STRING_ARG).then(|| String::from(text))
}

/// The JavaScript `CapTokenRecord`: a seed record plus its fingerprint. It
/// never hands back a nonce: its token's nonce is always empty.
#[wasm_bindgen(js_name = CapTokenRecord)]
pub struct JsCapTokenRecord {
    record: CapTokenRecord,
    fingerprint: Fingerprint,
}

impl JsCapTokenRecord {
    pub(super) fn new(mut record: CapTokenRecord, fingerprint: Fingerprint) -> Self {
        record.token.nonce.clear();
        JsCapTokenRecord {
            record,
            fingerprint,
        }
    }

    fn parse_token(value: &JsValue) -> JsResult<CapToken> {
        if !value.is_object() {
            return Err(invalid("token must be a CapToken object"));
        }
        let token: CapToken = object_json(value)
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| invalid("token is not a CapToken"))?;
        token
            .check_shape()
            .map_err(|_| invalid("token is not a CapToken"))?;
        Ok(token)
    }

    fn consume_error(&self, error: CapTokenConsumeError) -> JsValue {
        to_js_error(&CapTokenError::from_consume(error, self.fingerprint))
    }
}

#[wasm_bindgen(js_class = CapTokenRecord)]
impl JsCapTokenRecord {
    /// A record for a token, unbound, with uses_left = max_uses.
    #[wasm_bindgen(js_name = fromToken)]
    pub fn from_token(token: JsValue) -> JsResult<JsCapTokenRecord> {
        let token = Self::parse_token(&token)?;
        let fingerprint = token.fingerprint();
        Ok(Self::new(CapTokenRecord::from_token(token), fingerprint))
    }

    /// A record for a Worker token bound to `taskId`.
    #[wasm_bindgen(js_name = fromWorkerToken)]
    pub fn from_worker_token(token: JsValue, task_id: JsValue) -> JsResult<JsCapTokenRecord> {
        let token = Self::parse_token(&token)?;
        let task_id = string_arg(&task_id, "taskId")?;
        throw(crate::store::check_task_id(&task_id))?;
        let fingerprint = token.fingerprint();
        Ok(Self::new(
            CapTokenRecord::from_worker_token(token, task_id),
            fingerprint,
        ))
    }

    /// A record from `CapTokenRecordJSON` or its text; `fingerprint` may be
    /// missing when the token carries its nonce.
    #[wasm_bindgen(js_name = fromJSON)]
    pub fn from_json(json: JsValue) -> JsResult<JsCapTokenRecord> {
        let parsed: RecordJson = if let Some(text) = json.dyn_ref::<JsString>() {
            if text.length() > MAX_STRING_ARG {
                return Err(invalid("record JSON is too long"));
            }
            well_formed(text)
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| invalid("not a CapTokenRecord JSON"))?
        } else if json.is_object() {
            object_json(&json)
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| invalid("not a CapTokenRecord JSON"))?
        } else {
            return Err(invalid("fromJSON takes an object or a JSON string"));
        };
        let has_nonce = !parsed.token.nonce.is_empty();
        let mut token = parsed.token;
        if !has_nonce {
            // Records read back from a store carry an empty nonce; check the rest.
            token.nonce = "0".repeat(32);
        }
        token
            .check_shape()
            .map_err(|_| invalid("record.token is not a CapToken"))?;
        let fingerprint = match (has_nonce, parsed.fingerprint) {
            (true, None) => token.fingerprint(),
            (true, Some(given)) if given == token.fingerprint() => given,
            (true, Some(_)) => return Err(invalid("fingerprint does not match the nonce")),
            (false, Some(given)) => given,
            (false, None) => return Err(invalid("fingerprint is required without a nonce")),
        };
        if !crate::record::uses_fit(token.max_uses, parsed.uses_left) {
            return Err(invalid("uses_left does not fit max_uses"));
        }
        if let Some(task_id) = &parsed.task_id {
            throw(crate::store::check_task_id(task_id))?;
        }
        Ok(Self::new(
            CapTokenRecord {
                token,
                uses_left: parsed.uses_left,
                revoked: parsed.revoked,
                task_id: parsed.task_id,
            },
            fingerprint,
        ))
    }

    /// The token this record backs (nonce empty).
    #[wasm_bindgen(getter)]
    pub fn token(&self) -> JsValue {
        to_js(&self.record.token)
    }

    /// Remaining uses; `null` means unlimited.
    #[wasm_bindgen(getter = usesLeft)]
    pub fn uses_left(&self) -> JsValue {
        // An `Option<u32>` return would reach JavaScript as `undefined`.
        match self.record.uses_left {
            Some(left) => JsValue::from(left),
            None => JsValue::NULL,
        }
    }

    /// Whether the record is revoked.
    #[wasm_bindgen(getter)]
    pub fn revoked(&self) -> bool {
        self.record.revoked
    }

    /// The bound task, or `null`.
    #[wasm_bindgen(getter = taskId)]
    pub fn task_id(&self) -> JsValue {
        match &self.record.task_id {
            Some(task) => JsValue::from_str(task),
            None => JsValue::NULL,
        }
    }

    /// The token's fingerprint.
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.fingerprint.to_string()
    }

    /// Spend one use; throws `ERR_TOKEN_REVOKED` or `ERR_TOKEN_USES_EXHAUSTED`.
    pub fn consume(&mut self) -> JsResult<()> {
        self.record.consume().map_err(|e| self.consume_error(e))
    }

    /// Whether `consume` would succeed; spends nothing.
    #[wasm_bindgen(js_name = canConsume)]
    pub fn can_consume(&self) -> bool {
        self.record.can_consume().is_ok()
    }

    /// Mark the record revoked.
    pub fn revoke(&mut self) {
        self.record.revoked = true;
    }

    /// `CapTokenRecordJSON`.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsValue {
        to_js(&RecordJson {
            token: self.record.token.clone(),
            uses_left: self.record.uses_left,
            revoked: self.record.revoked,
            task_id: self.record.task_id.clone(),
            fingerprint: Some(self.fingerprint),
        })
    }
}
