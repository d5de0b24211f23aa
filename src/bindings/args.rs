//! Arguments in. Strings are checked as they arrive; options objects are read
//! by `serde_wasm_bindgen` into the structs below.
//!
//! An options object must be plain data: the package entry (`js/args.js`)
//! copies what the caller passed into fresh objects, arrays and `Uint8Array`s
//! first, where a throwing getter or Proxy trap is caught. Reading a caller's
//! object from here could run caller code while the store is borrowed, and a
//! throw through the module would leave it borrowed for good.

use super::errors::{invalid, throw, JsResult};
use crate::clock::Clock;
use crate::error::CapTokenError;
use crate::gate::Gate;
use crate::role::{Role, Verb};
use crate::signer::SigningFormat;
use crate::store::{MintOptions, StoreConfig};
use crate::token::{Fingerprint, MAX_BEARER_LEN, MAX_SAFE_INTEGER};
use js_sys::{Array, Function, JsString, Uint8Array};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The longest string argument copied into the module, in UTF-16 units.
/// Longer ones are refused before any copy.
pub(super) const MAX_STRING_ARG: u32 = 64 * 1024;
/// The most entries an options list may have (scopes); the entry copies no
/// longer list.
pub(super) const MAX_LIST_LEN: u32 = 1024;
/// The most verbs in one gate row.
const MAX_GATE_ROW: usize = 64;

// ---- strings ---------------------------------------------------------

fn is_absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

/// The text of a JS string, or `None` when it is not well-formed UTF-16: a
/// lone surrogate would otherwise become U+FFFD, so that two different
/// strings (`"\uD800"`, `"\uDC00"`) would name the same task or agent.
pub(super) fn well_formed(text: &JsString) -> Option<String> {
    let string = String::from(text);
    // Only a string that converted to U+FFFD can have held a lone surrogate.
    if string.contains('\u{FFFD}') && !text.is_valid_utf16() {
        None
    } else {
        Some(string)
    }
}

pub(super) fn string_arg(value: &JsValue, name: &str) -> JsResult<String> {
    let text = value
        .dyn_ref::<JsString>()
        .ok_or_else(|| invalid(format!("{name} must be a string")))?;
    if text.length() > MAX_STRING_ARG {
        return Err(invalid(format!("{name} is too long")));
    }
    if text.length() == 0 {
        return Err(invalid(format!("{name} must not be empty")));
    }
    well_formed(text).ok_or_else(|| invalid(format!("{name} is not well-formed UTF-16")))
}

pub(super) fn optional_string_arg(value: &JsValue, name: &str) -> JsResult<Option<String>> {
    if is_absent(value) {
        Ok(None)
    } else {
        string_arg(value, name).map(Some)
    }
}

/// Snapshot or journal text: a string, at most `MAX_SNAPSHOT_LEN` long.
pub(super) fn state_text_arg(value: &JsValue, name: &str) -> JsResult<String> {
    let text = value
        .dyn_ref::<JsString>()
        .ok_or_else(|| invalid(format!("{name} must be a string")))?;
    if text.length() > super::fast_path::MAX_SNAPSHOT_LEN {
        return throw(Err(CapTokenError::snapshot(format!("{name} is too large"))));
    }
    Ok(String::from(text))
}

/// A bearer argument: a non-string is an invalid argument; an over-long
/// string is refused as malformed before it is copied.
pub(super) fn bearer_arg(value: &JsValue) -> Result<String, CapTokenError> {
    let text = value
        .dyn_ref::<JsString>()
        .ok_or_else(|| CapTokenError::invalid("bearer must be a string"))?;
    if text.length() as usize > MAX_BEARER_LEN {
        return Err(CapTokenError::MalformedToken {
            reason: "bearer is longer than the size limit",
        });
    }
    Ok(String::from(text))
}

pub(super) fn verb_arg(value: &JsValue) -> Result<Verb, CapTokenError> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() <= 64)
        .ok_or_else(|| CapTokenError::invalid("verb must be one of the verb names"))?;
    String::from(text).parse()
}

pub(super) fn role_arg(value: &JsValue) -> JsResult<Role> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() <= 64)
        .ok_or_else(|| invalid("role must be one of the role names"))?;
    throw(String::from(text).parse())
}

pub(super) fn optional_task_arg(value: &JsValue) -> Result<Option<String>, CapTokenError> {
    if is_absent(value) {
        return Ok(None);
    }
    let text = value
        .dyn_ref::<JsString>()
        .ok_or_else(|| CapTokenError::invalid("taskId must be a string"))?;
    if text.length() > MAX_STRING_ARG {
        return Err(CapTokenError::invalid("taskId is too long"));
    }
    well_formed(text)
        .map(Some)
        .ok_or_else(|| CapTokenError::invalid("taskId is not well-formed UTF-16"))
}

pub(super) fn fingerprint_arg(value: &JsValue) -> JsResult<Fingerprint> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() == 64)
        .ok_or_else(|| invalid("fingerprint must be 64 lowercase hex characters"))?;
    throw(String::from(text).parse())
}

/// A string inside an options object: at most [`MAX_STRING_ARG`] units of
/// well-formed UTF-16, read as the `JsString` it is (`serde_wasm_bindgen`'s
/// own string reading would turn a lone surrogate into U+FFFD).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text: JsString = serde_wasm_bindgen::preserve::deserialize(deserializer)?;
        if text.length() > MAX_STRING_ARG {
            return Err(D::Error::custom("a string is too long"));
        }
        well_formed(&text)
            .map(Text)
            .ok_or_else(|| D::Error::custom("a string is not well-formed UTF-16"))
    }
}

/// A non-empty option string (task ids).
fn non_empty(text: Option<Text>, name: &str) -> JsResult<Option<String>> {
    match text {
        Some(Text(text)) if text.is_empty() => Err(invalid(format!("{name} must not be empty"))),
        other => Ok(other.map(|Text(text)| text)),
    }
}

fn list(texts: Vec<Text>) -> Vec<String> {
    texts.into_iter().map(|Text(text)| text).collect()
}

/// For a field that may be left out but not be `null`: `#[serde(default)]`
/// covers the missing field, and `null` reaches `T`, which refuses it.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn given_function<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Function>, D::Error> {
    serde_wasm_bindgen::preserve::deserialize(d).map(Some)
}

/// An options object (plain data, see the module documentation) as `T`;
/// `None` when absent.
fn options<T: DeserializeOwned>(value: &JsValue, name: &str) -> JsResult<Option<T>> {
    if is_absent(value) {
        return Ok(None);
    }
    if !value.is_object() || Array::is_array(value) {
        return Err(invalid(format!("{name} must be an object")));
    }
    serde_wasm_bindgen::from_value(value.clone())
        .map(Some)
        // serde's message may quote the value: name the field at most.
        .map_err(|e| {
            let e = e.to_string();
            match e.split('`').nth(1).filter(|_| e.contains("missing field")) {
                Some(field) => invalid(format!("{name}.{field} is required")),
                None => invalid(format!(
                    "{name} has a field of the wrong type or out of range"
                )),
            }
        })
}

// ---- mint options ------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintOptionsArg {
    #[serde(default, deserialize_with = "given")]
    scopes: Option<Vec<Text>>,
    #[serde(default, deserialize_with = "given")]
    ttl_secs: Option<u64>,
    /// `null` is unlimited, as when left out.
    #[serde(default)]
    max_uses: Option<u32>,
    #[serde(default)]
    task_id: Option<Text>,
}

/// `{ scopes, ttlSecs, maxUses, taskId }`, each optional.
pub(super) fn mint_options_arg(value: &JsValue) -> JsResult<MintOptions> {
    let Some(options) = options::<MintOptionsArg>(value, "options")? else {
        return Ok(MintOptions::default());
    };
    if options
        .scopes
        .as_ref()
        .is_some_and(|s| s.len() > MAX_LIST_LEN as usize)
    {
        return Err(invalid("scopes has too many entries"));
    }
    if options.ttl_secs.is_some_and(|ttl| ttl > MAX_SAFE_INTEGER) {
        return Err(invalid(format!(
            "ttlSecs must be a whole number from 0 to {MAX_SAFE_INTEGER}"
        )));
    }
    Ok(MintOptions {
        scopes: options.scopes.map(list),
        ttl_secs: options.ttl_secs,
        max_uses: options.max_uses,
        task_id: non_empty(options.task_id, "taskId")?,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartTaskArg {
    #[serde(default)]
    task_id: Option<Text>,
    #[serde(default)]
    parent_id: Option<Text>,
}

/// `startTask`'s `{ taskId, parentId }`, each optional: (task, parent).
pub(super) fn start_task_arg(value: &JsValue) -> JsResult<(Option<String>, Option<String>)> {
    let Some(options) = options::<StartTaskArg>(value, "options")? else {
        return Ok((None, None));
    };
    Ok((
        non_empty(options.task_id, "taskId")?,
        non_empty(options.parent_id, "parentId")?,
    ))
}

// ---- store options -----------------------------------------------------

/// Reads `now` from the caller's callback, in unix seconds. A callback that
/// throws or returns something other than a non-negative number fails
/// closed: the time reads as the far future, so every expiring token is
/// expired and minting is refused.
pub(super) struct JsClock(Option<Function>);

impl Clock for JsClock {
    fn now(&self) -> u64 {
        let seconds = match &self.0 {
            Some(callback) => callback
                .call0(&JsValue::UNDEFINED)
                .ok()
                .and_then(|v| v.as_f64()),
            None => Some(js_sys::Date::now() / 1000.0),
        };
        match seconds {
            Some(s) if s.is_finite() && s >= 0.0 && s <= MAX_SAFE_INTEGER as f64 => s as u64,
            _ => MAX_SAFE_INTEGER,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoreOptionsArg {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    secret: Uint8Array,
    #[serde(default, deserialize_with = "given")]
    format: Option<String>,
    #[serde(default, deserialize_with = "given")]
    max_spawn_depth: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    worker_token_ttl_secs: Option<u64>,
    /// `Partial<Record<Role, Verb[]>>`: each role given replaces its default row.
    #[serde(default, deserialize_with = "given")]
    gate: Option<BTreeMap<String, Vec<Text>>>,
    #[serde(default, deserialize_with = "given")]
    max_records: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_tasks: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_tasks_per_tree: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_children_per_task: Option<u32>,
    #[serde(default, deserialize_with = "given")]
    max_made_per_worker_token: Option<u32>,
    #[serde(default, deserialize_with = "given_function")]
    now: Option<Function>,
    #[serde(default)]
    journal: bool,
    #[serde(default)]
    allow_unsealed: bool,
}

/// The store options, read.
pub(super) struct StoreOptions {
    pub(super) secret: Vec<u8>,
    pub(super) config: StoreConfig,
    pub(super) clock: JsClock,
    pub(super) journal: bool,
    pub(super) allow_unsealed: bool,
}

pub(super) fn store_options_arg(value: &JsValue) -> JsResult<StoreOptions> {
    let options = options::<StoreOptionsArg>(value, "options")?
        .ok_or_else(|| invalid("options.secret is required"))?;
    if !(32..=4096).contains(&options.secret.length()) {
        return Err(invalid("secret must be from 32 to 4096 bytes"));
    }
    let mut config = StoreConfig::default();
    if let Some(name) = &options.format {
        config.format = throw(SigningFormat::parse(name))?;
    }
    if let Some(depth) = options.max_spawn_depth {
        config.max_spawn_depth = depth;
    }
    if let Some(ttl) = options.worker_token_ttl_secs {
        if ttl > MAX_SAFE_INTEGER {
            return Err(invalid("workerTokenTtlSecs is too large"));
        }
        config.worker_token_ttl_secs = ttl;
    }
    if let Some(gate) = options.gate {
        config.gate = gate_arg(gate)?;
    }
    let limits = &mut config.limits;
    for (given, slot) in [
        (options.max_records, &mut limits.max_records),
        (options.max_tasks, &mut limits.max_tasks),
        (options.max_tasks_per_tree, &mut limits.max_tasks_per_tree),
        (
            options.max_children_per_task,
            &mut limits.max_children_per_task,
        ),
        (
            options.max_made_per_worker_token,
            &mut limits.max_made_per_worker_token,
        ),
    ] {
        if let Some(n) = given {
            *slot = n;
        }
    }
    Ok(StoreOptions {
        secret: options.secret.to_vec(),
        config,
        clock: JsClock(options.now),
        journal: options.journal,
        allow_unsealed: options.allow_unsealed,
    })
}

fn gate_arg(rows: BTreeMap<String, Vec<Text>>) -> JsResult<Gate> {
    let mut gate = Gate::default();
    for (key, verbs) in rows {
        let role: Role = key
            .parse()
            .map_err(|_| invalid("gate has a key that is not a role"))?;
        if verbs.len() > MAX_GATE_ROW {
            return Err(invalid("gate verbs has too many entries"));
        }
        let verbs: Vec<Verb> = throw(verbs.iter().map(|Text(v)| v.parse()).collect())?;
        gate = gate.with(role, &verbs);
    }
    Ok(gate)
}
