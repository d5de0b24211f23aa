//! Every failure leaves the module as an instance of the entry's
//! `CapTokenError` class, with its code and details as plain fields.

use crate::error::CapTokenError;
use js_sys::{Array, Function, Object, Reflect};
use serde::Serialize;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Called once by the package's entry module with its `CapTokenError` class,
/// so that every thrown error is an instance of it.
#[wasm_bindgen(js_name = "__registerErrorClass")]
pub fn register_error_class(class: JsValue) {
    if let Ok(class) = class.dyn_into::<Function>() {
        ERROR_CLASS.with(|slot| *slot.borrow_mut() = Some(class));
    }
}

pub(super) type JsResult<T> = Result<T, JsValue>;

/// A `CapTokenError`'s details: only the fields that apply are present.
#[derive(Serialize, Default)]
struct Details<'a> {
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verb: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bound: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    // Limits are far below 2^53: exact as a JavaScript number.
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
}

fn details(error: &CapTokenError) -> Details<'_> {
    let mut details = Details {
        code: error.code().as_str(),
        fingerprint: error.fingerprint().map(|f| f.to_string()),
        ..Details::default()
    };
    match error {
        CapTokenError::RoleViolation { role, verb } => {
            details.role = Some(role.as_str());
            details.verb = Some(verb.as_str());
        }
        CapTokenError::TokenTaskMismatch { bound, arg, .. } => {
            details.bound = bound.as_deref();
            details.arg = arg.as_deref();
        }
        CapTokenError::SpawnDepthExceeded { current, max } => {
            details.current = Some(*current);
            details.max = Some(u64::from(*max));
        }
        CapTokenError::LimitExceeded { limit, max } => {
            details.limit = Some(limit);
            details.max = Some(*max);
        }
        _ => {}
    }
    details
}

/// The `CapTokenError` for a core error: message, code and details.
pub(super) fn to_js_error(error: &CapTokenError) -> JsValue {
    // Strings and small integers always serialize.
    let details = super::results::to_js(&details(error));
    let message = JsValue::from_str(&error.to_string());
    let class = ERROR_CLASS.with(|slot| slot.borrow().clone());
    if let Some(class) = class {
        let args = Array::of2(&message, &details);
        if let Ok(instance) = Reflect::construct(&class, &args) {
            return instance;
        }
    }
    // Loaded without the package entry: a plain Error carrying the same fields.
    let plain = js_sys::Error::new(&error.to_string());
    plain.set_name("CapTokenError");
    if let Some(details) = details.dyn_ref::<Object>() {
        let _ = Object::assign(plain.as_ref(), details);
    }
    plain.into()
}

pub(super) fn throw<T>(result: Result<T, CapTokenError>) -> JsResult<T> {
    result.map_err(|e| to_js_error(&e))
}

// Out of line: inlined, its error building is copied into every caller.
#[inline(never)]
pub(super) fn invalid(reason: impl Into<String>) -> JsValue {
    to_js_error(&CapTokenError::invalid(reason))
}
