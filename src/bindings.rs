//! The JavaScript face of the crate: converts arguments, delegates to the
//! core, converts results and errors. No token logic lives here.
//!
//! Every argument arrives as a raw `JsValue` and is checked here, so a wrong
//! type, a missing argument or garbage becomes a `CapTokenError` with code
//! `ERR_INVALID_ARGUMENT` instead of a trap or a glue `TypeError`.

use crate::clock::Clock;
use crate::error::CapTokenError;
use crate::gate::Gate;
use crate::record::{CapTokenConsumeError, CapTokenRecord};
use crate::role::{Role, Verb};
use crate::signer::SigningFormat;
use crate::store::{GrantRef, MintOptions, Minted, StoreConfig, TokenStore};
use crate::task::TaskInfo;
use crate::token::{CapToken, Fingerprint, MAX_BEARER_LEN, MAX_SAFE_INTEGER};
use js_sys::{Array, Function, JsString, Object, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The longest string argument copied into the module, in UTF-16 units.
/// Longer ones are refused before any copy.
const MAX_STRING_ARG: u32 = 64 * 1024;

/// The longest snapshot text accepted, in UTF-16 units (1 GiB).
const MAX_SNAPSHOT_LEN: u32 = 1 << 30;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
    static GRANT_FACTORY: RefCell<Option<GrantFactory>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
extern "C" {
    /// `factory(allowed, roleIndex, scopes, usesLeft, agentLen, taskLen,
    /// fingerprint, agentId, taskId)`: builds a Grant in one crossing instead
    /// of one per field. With `agentLen >= 0` the strings are in the outbox
    /// (see [`OUTBOX_LEN`]) and the last three arguments are undefined.
    #[wasm_bindgen(extends = Function)]
    #[derive(Clone)]
    type GrantFactory;

    #[wasm_bindgen(method, js_name = call)]
    #[allow(clippy::too_many_arguments)]
    fn make_grant(
        this: &GrantFactory,
        context: &JsValue,
        allowed: bool,
        role: u8,
        scopes: &JsValue,
        uses_left: Option<u32>,
        agent_len: i32,
        task_len: i32,
        fingerprint: Option<&str>,
        agent_id: Option<&str>,
        task_id: Option<&str>,
    ) -> JsValue;
}

/// Called once by the package's entry module with the function that builds
/// Grant objects (see js/common.js).
#[wasm_bindgen(js_name = "__registerGrantFactory")]
pub fn register_grant_factory(factory: JsValue) {
    if factory.is_function() {
        GRANT_FACTORY.with(|slot| *slot.borrow_mut() = Some(factory.unchecked_into()));
    }
}

/// Called once by the package's entry module with its `CapTokenError` class,
/// so that every thrown error is an instance of it.
#[wasm_bindgen(js_name = "__registerErrorClass")]
pub fn register_error_class(class: JsValue) {
    if let Ok(class) = class.dyn_into::<Function>() {
        ERROR_CLASS.with(|slot| *slot.borrow_mut() = Some(class));
    }
}

/// The inbox holds one bearer and one task id, UTF-8 encoded by the entry
/// module straight into linear memory (`TextEncoder.encodeInto`): much
/// cheaper than the glue's per-character string copy. A UTF-16 unit takes
/// at most 3 bytes. Layout: the bearer at 0, the task id at
/// [`INBOX_BEARER_BYTES`].
const INBOX_BEARER_BYTES: usize = 3 * MAX_BEARER_LEN;
/// Longer task ids take the ordinary path.
const INBOX_TASK_UNITS: usize = 256;
const INBOX_LEN: usize = INBOX_BEARER_BYTES + 3 * INBOX_TASK_UNITS;

/// The outbox holds a Grant's fingerprint (64 hex digits), agent id and task
/// id, back to back, for the factory to read with one `TextDecoder` call
/// instead of one per string. Grants whose strings do not fit pass them as
/// arguments.
const OUTBOX_LEN: usize = 4096;

thread_local! {
    static INBOX: RefCell<Box<[u8]>> = RefCell::new(vec![0; INBOX_LEN].into_boxed_slice());
    static OUTBOX: RefCell<Box<[u8]>> = RefCell::new(vec![0; OUTBOX_LEN].into_boxed_slice());
}

/// Where the entry module writes a bearer before `__verifyInbox`/`__checkInbox`.
#[wasm_bindgen(js_name = "__inbox")]
pub fn inbox() -> *mut u8 {
    INBOX.with(|inbox| inbox.borrow_mut().as_mut_ptr())
}

/// Where the grant factory reads a Grant's strings.
#[wasm_bindgen(js_name = "__outbox")]
pub fn outbox() -> *const u8 {
    OUTBOX.with(|outbox| outbox.borrow().as_ptr())
}

/// The module's `WebAssembly.Memory`, for the entry module's inbox view.
#[wasm_bindgen(js_name = "__memory")]
pub fn memory() -> JsValue {
    wasm_bindgen::memory()
}

/// The verbs' wire names, indexed by the code `__verifyInbox` takes.
#[wasm_bindgen(js_name = "__verbNames")]
pub fn verb_names() -> Array {
    Verb::ALL
        .iter()
        .map(|verb| JsValue::from_str(verb.as_str()))
        .collect()
}

/// A verb by its index in [`Verb::ALL`].
fn verb_code_arg(code: u8) -> Result<Verb, CapTokenError> {
    Verb::ALL
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| CapTokenError::invalid("verb must be one of the verb names"))
}

thread_local! {
    /// The strings [`with_inbox`] copies into, kept from call to call.
    static INBOX_COPIES: Cell<(String, String)> = const { Cell::new((String::new(), String::new())) };
}

/// Appends the first `len` bytes of `area` to `out` when they are UTF-8.
fn copy_utf8(area: &[u8], len: usize, out: &mut String) -> bool {
    area.get(..len)
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .map(|text| out.push_str(text))
        .is_some()
}

/// Runs `decide` on the bearer (`bearer_len` bytes) and the task id
/// (`task_len` bytes, none when negative) in the inbox. They are copied out
/// first, so that a callback re-entering the module (a `now` clock) cannot
/// overwrite them mid-decision, into strings kept from call to call (a call
/// re-entered meanwhile makes its own), so that a decision allocates nothing
/// here.
fn with_inbox<R>(
    bearer_len: usize,
    task_len: i32,
    decide: impl FnOnce(Result<&str, CapTokenError>, Result<Option<&str>, CapTokenError>) -> R,
) -> R {
    let (mut bearer, mut task_id) = INBOX_COPIES.take();
    bearer.clear();
    task_id.clear();
    let (bearer_read, task_read) = INBOX.with(|inbox| {
        let inbox = inbox.borrow();
        let (bearer_area, task_area) = inbox
            .split_at_checked(INBOX_BEARER_BYTES)
            .unwrap_or((&[], &[]));
        let task_read = match usize::try_from(task_len) {
            Err(_) => Some(false),
            Ok(len) => copy_utf8(task_area, len, &mut task_id).then_some(true),
        };
        (copy_utf8(bearer_area, bearer_len, &mut bearer), task_read)
    });
    let decided = decide(
        if bearer_read {
            Ok(&bearer)
        } else {
            Err(CapTokenError::MalformedToken {
                reason: "bearer is not UTF-8 text within the size limit",
            })
        },
        match task_read {
            Some(true) => Ok(Some(&task_id)),
            Some(false) => Ok(None),
            None => Err(CapTokenError::invalid("taskId is not well-formed UTF-16")),
        },
    );
    INBOX_COPIES.set((bearer, task_id));
    decided
}

thread_local! {
    static STAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Grows the stage to hold at least `len` bytes, keeping what it holds, and
/// returns where it starts; null when linear memory cannot hold that much.
/// The entry module writes snapshot text there with `encodeInto` before
/// `__restoreStaged`: a snapshot of a million records is hundreds of MB, and
/// the glue's per-character copy of it cost more than parsing it.
#[wasm_bindgen(js_name = "__stage")]
pub fn stage(len: usize) -> *mut u8 {
    STAGE.with(|stage| {
        let Ok(mut stage) = stage.try_borrow_mut() else {
            return core::ptr::null_mut();
        };
        if let Some(more) = len.checked_sub(stage.len()).filter(|&more| more > 0) {
            if stage.try_reserve_exact(more).is_err() {
                return core::ptr::null_mut();
            }
            stage.resize(len, 0);
        }
        stage.as_mut_ptr()
    })
}

/// The first `len` bytes of the stage as text, leaving the stage empty.
fn take_stage(len: usize) -> Result<String, CapTokenError> {
    let mut bytes = STAGE
        .with(|stage| stage.try_borrow_mut().map(|mut s| core::mem::take(&mut *s)))
        .unwrap_or_default();
    if len > bytes.len() {
        return Err(CapTokenError::snapshot("snapshot was not staged"));
    }
    bytes.truncate(len);
    String::from_utf8(bytes).map_err(|_| CapTokenError::snapshot("snapshot is not UTF-8 text"))
}

/// Bytes of linear memory the module holds now (for the benchmarks).
#[wasm_bindgen(js_name = "__memoryBytes")]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) as f64) * 65536.0
}

type JsResult<T> = Result<T, JsValue>;

// JavaScript calls that may run caller code (Proxy traps, getters, `toJSON`)
// and so may throw. A throw that passed through the module would skip the
// release of the object's borrow, leaving the store unusable ("recursive use
// of an object"), and would reach the caller as a TypeError instead of a
// `CapTokenError`; so every such call is caught.
#[wasm_bindgen]
extern "C" {
    /// `Array.isArray`, which throws for a revoked Proxy.
    #[wasm_bindgen(js_namespace = Array, js_name = isArray, catch)]
    fn try_is_array(value: &JsValue) -> Result<bool, JsValue>;
    /// `Object.keys`, which runs a Proxy's traps.
    #[wasm_bindgen(js_namespace = Object, js_name = keys, catch)]
    fn try_keys(object: &JsValue) -> Result<Array, JsValue>;
    /// `Uint8Array.from`: a genuine copy of what may be a Proxy or a fake.
    #[wasm_bindgen(js_namespace = Uint8Array, js_name = from, catch)]
    fn try_uint8_array_from(value: &JsValue) -> Result<Uint8Array, JsValue>;
}

/// An object argument as JSON text, read by `JSON.stringify` (which may
/// throw: getters, Proxy traps, BigInts, cycles). `None` for anything that
/// does not give a string of at most `MAX_STRING_ARG` units.
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

fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a data property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// The `CapTokenError` for a core error: message, code and details.
fn to_js_error(error: &CapTokenError) -> JsValue {
    let details = Object::new();
    set(&details, "code", &error.code().as_str().into());
    if let Some(fingerprint) = error.fingerprint() {
        set(&details, "fingerprint", &fingerprint.to_string().into());
    }
    match error {
        CapTokenError::RoleViolation { role, verb } => {
            set(&details, "role", &role.as_str().into());
            set(&details, "verb", &verb.as_str().into());
        }
        CapTokenError::TokenTaskMismatch { bound, arg, .. } => {
            if let Some(bound) = bound {
                set(&details, "bound", &bound.as_str().into());
            }
            if let Some(arg) = arg {
                set(&details, "arg", &arg.as_str().into());
            }
        }
        CapTokenError::SpawnDepthExceeded { current, max } => {
            set(&details, "current", &(*current).into());
            set(&details, "max", &(*max).into());
        }
        CapTokenError::LimitExceeded { limit, max } => {
            set(&details, "limit", &(*limit).into());
            // Limits are far below 2^53: exact as a JavaScript number.
            set(&details, "max", &(*max as f64).into());
        }
        _ => {}
    }
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
    let _ = Object::assign(plain.as_ref(), &details);
    plain.into()
}

fn throw<T>(result: Result<T, CapTokenError>) -> JsResult<T> {
    result.map_err(|e| to_js_error(&e))
}

// Out of line: inlined, its error building is copied into every caller.
#[inline(never)]
fn invalid(reason: impl Into<String>) -> JsValue {
    to_js_error(&CapTokenError::invalid(reason))
}

// ---- argument conversion ---------------------------------------------

fn is_absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

/// The text of a JS string, or `None` when it is not well-formed UTF-16: a
/// lone surrogate would otherwise become U+FFFD, so that two different
/// strings (`"\uD800"`, `"\uDC00"`) would name the same task or agent.
fn well_formed(text: &JsString) -> Option<String> {
    let string = String::from(text);
    // Only a string that converted to U+FFFD can have held a lone surrogate.
    if string.contains('\u{FFFD}') && !text.is_valid_utf16() {
        None
    } else {
        Some(string)
    }
}

fn string_arg(value: &JsValue, name: &str) -> JsResult<String> {
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

/// Snapshot or journal text: a string, at most [`MAX_SNAPSHOT_LEN`] long.
fn state_text_arg(value: &JsValue, name: &str) -> JsResult<String> {
    let text = value
        .dyn_ref::<JsString>()
        .ok_or_else(|| invalid(format!("{name} must be a string")))?;
    if text.length() > MAX_SNAPSHOT_LEN {
        return Err(to_js_error(&CapTokenError::snapshot(format!(
            "{name} is too large"
        ))));
    }
    Ok(String::from(text))
}

fn optional_string_arg(value: &JsValue, name: &str) -> JsResult<Option<String>> {
    if is_absent(value) {
        Ok(None)
    } else {
        string_arg(value, name).map(Some)
    }
}

/// A bearer argument: a non-string is an invalid argument; an over-long
/// string is refused as malformed before it is copied.
fn bearer_arg(value: &JsValue) -> Result<String, CapTokenError> {
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

fn verb_arg(value: &JsValue) -> Result<Verb, CapTokenError> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() <= 64)
        .ok_or_else(|| CapTokenError::invalid("verb must be one of the verb names"))?;
    String::from(text).parse()
}

fn role_arg(value: &JsValue) -> JsResult<Role> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() <= 64)
        .ok_or_else(|| invalid("role must be one of the role names"))?;
    throw(String::from(text).parse())
}

fn optional_task_arg(value: &JsValue) -> Result<Option<String>, CapTokenError> {
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

/// A whole number in `0..=max`, as JavaScript gives it (`-0` is 0).
fn integer_arg(value: &JsValue, name: &str, max: u64) -> JsResult<u64> {
    let number = value
        .as_f64()
        .ok_or_else(|| invalid(format!("{name} must be a number")))?;
    if !number.is_finite() || number.fract() != 0.0 || number < 0.0 || number > max as f64 {
        return Err(invalid(format!(
            "{name} must be a whole number from 0 to {max}"
        )));
    }
    // In range and integral: the conversion is exact.
    Ok(number as u64)
}

fn options_object(value: &JsValue, name: &str) -> JsResult<Option<Object>> {
    if is_absent(value) {
        return Ok(None);
    }
    if !value.is_object() || value.is_function() || try_is_array(value).unwrap_or(true) {
        return Err(invalid(format!("{name} must be an object")));
    }
    Ok(Some(value.clone().unchecked_into()))
}

fn field(object: &Object, key: &str) -> JsResult<JsValue> {
    Reflect::get(object, &JsValue::from_str(key))
        .map_err(|_| invalid(format!("reading option {key} failed")))
}

fn string_list_arg(value: &JsValue, name: &str, max_len: u32) -> JsResult<Vec<String>> {
    let not_a_list = || invalid(format!("{name} must be an array of strings"));
    if !try_is_array(value).unwrap_or(false) {
        return Err(not_a_list());
    }
    // Read through Reflect (caught): the array may be a Proxy or have accessors.
    let length = Reflect::get(value, &JsValue::from_str("length"))
        .ok()
        .and_then(|length| length.as_f64())
        .ok_or_else(not_a_list)?;
    if !(0.0..=f64::from(max_len)).contains(&length) {
        return Err(invalid(format!("{name} has too many entries")));
    }
    // In 0..=max_len: the conversion is exact.
    let length = length as u32;
    let mut list = Vec::with_capacity(length as usize);
    for index in 0..length {
        let item = Reflect::get_u32(value, index).map_err(|_| not_a_list())?;
        let text = item
            .dyn_ref::<JsString>()
            .ok_or_else(|| invalid(format!("{name} must be an array of strings")))?;
        if text.length() > MAX_STRING_ARG {
            return Err(invalid(format!("{name} has an over-long entry")));
        }
        list.push(well_formed(text).ok_or_else(|| {
            invalid(format!(
                "{name} has an entry that is not well-formed UTF-16"
            ))
        })?);
    }
    Ok(list)
}

fn mint_options_arg(value: &JsValue) -> JsResult<MintOptions> {
    let Some(object) = options_object(value, "options")? else {
        return Ok(MintOptions::default());
    };
    let scopes = field(&object, "scopes")?;
    let ttl = field(&object, "ttlSecs")?;
    let max_uses = field(&object, "maxUses")?;
    let task_id = field(&object, "taskId")?;
    Ok(MintOptions {
        scopes: if scopes.is_undefined() {
            None
        } else {
            Some(string_list_arg(&scopes, "scopes", 1024)?)
        },
        ttl_secs: if ttl.is_undefined() {
            None
        } else {
            Some(integer_arg(&ttl, "ttlSecs", MAX_SAFE_INTEGER)?)
        },
        max_uses: if is_absent(&max_uses) {
            None
        } else {
            let n = integer_arg(&max_uses, "maxUses", u64::from(u32::MAX))?;
            Some(u32::try_from(n).map_err(|_| invalid("maxUses is too large"))?)
        },
        task_id: optional_string_arg(&task_id, "taskId")?,
    })
}

/// Reads `now` from the caller's callback, in unix seconds. A callback that
/// throws or returns something other than a non-negative number fails
/// closed: the time reads as the far future, so every expiring token is
/// expired and minting is refused.
struct JsClock(Option<Function>);

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

struct StoreOptions {
    secret: Vec<u8>,
    config: StoreConfig,
    clock: JsClock,
    journal: bool,
}

fn store_options_arg(value: &JsValue) -> JsResult<StoreOptions> {
    let object =
        options_object(value, "options")?.ok_or_else(|| invalid("options.secret is required"))?;
    let secret = field(&object, "secret")?;
    let not_bytes = || invalid("options.secret must be a Uint8Array");
    if !secret.is_instance_of::<Uint8Array>() {
        return Err(not_bytes());
    }
    // A Proxy, or an object that merely inherits from Uint8Array.prototype,
    // passes `instanceof` but throws when read: read the length through
    // Reflect (caught), then copy into a genuine Uint8Array (caught).
    let length = Reflect::get(&secret, &JsValue::from_str("length"))
        .ok()
        .and_then(|length| length.as_f64())
        .ok_or_else(not_bytes)?;
    if length < 32.0 {
        return Err(invalid("secret must be at least 32 bytes"));
    }
    if length > 4096.0 {
        return Err(invalid("secret must be at most 4096 bytes"));
    }
    let secret = try_uint8_array_from(&secret).map_err(|_| not_bytes())?;
    if !(32..=4096).contains(&secret.length()) {
        return Err(not_bytes());
    }
    let mut config = StoreConfig::default();
    let format = field(&object, "format")?;
    if !format.is_undefined() {
        let name = format
            .as_string()
            .ok_or_else(|| invalid("format must be \"v2\" or \"mlua-swarm\""))?;
        config.format = throw(SigningFormat::parse(&name))?;
    }
    let depth = field(&object, "maxSpawnDepth")?;
    if !depth.is_undefined() {
        let depth = integer_arg(&depth, "maxSpawnDepth", u64::from(u32::MAX))?;
        config.max_spawn_depth = u32::try_from(depth).map_err(|_| invalid("maxSpawnDepth"))?;
    }
    let ttl = field(&object, "workerTokenTtlSecs")?;
    if !ttl.is_undefined() {
        config.worker_token_ttl_secs = integer_arg(&ttl, "workerTokenTtlSecs", MAX_SAFE_INTEGER)?;
    }
    let gate = field(&object, "gate")?;
    if !gate.is_undefined() {
        config.gate = gate_arg(&gate)?;
    }
    let limits = &mut config.limits;
    for (name, slot) in [
        ("maxRecords", &mut limits.max_records),
        ("maxTasks", &mut limits.max_tasks),
        ("maxTasksPerTree", &mut limits.max_tasks_per_tree),
        ("maxChildrenPerTask", &mut limits.max_children_per_task),
        (
            "maxMadePerWorkerToken",
            &mut limits.max_made_per_worker_token,
        ),
    ] {
        let value = field(&object, name)?;
        if !value.is_undefined() {
            let n = integer_arg(&value, name, u64::from(u32::MAX))?;
            *slot = u32::try_from(n).map_err(|_| invalid(format!("{name} is too large")))?;
        }
    }
    let now = field(&object, "now")?;
    let clock = if now.is_undefined() {
        JsClock(None)
    } else {
        JsClock(Some(
            now.dyn_into::<Function>()
                .map_err(|_| invalid("options.now must be a function"))?,
        ))
    };
    let journal = field(&object, "journal")?;
    let journal = if journal.is_undefined() {
        false
    } else {
        journal
            .as_bool()
            .ok_or_else(|| invalid("options.journal must be a boolean"))?
    };
    Ok(StoreOptions {
        secret: secret.to_vec(),
        config,
        clock,
        journal,
    })
}

/// `Partial<Record<Role, Verb[]>>`: each role given replaces its default row.
fn gate_arg(value: &JsValue) -> JsResult<Gate> {
    let object = options_object(value, "gate")?.ok_or_else(|| invalid("gate must be an object"))?;
    let keys = try_keys(&object).map_err(|_| invalid("gate must be a plain object"))?;
    let mut gate = Gate::default();
    for key in keys.iter() {
        let role = role_arg(&key).map_err(|_| invalid("gate has a key that is not a role"))?;
        let verbs = string_list_arg(&field(&object, role.as_str())?, "gate verbs", 64)?;
        let verbs: Vec<Verb> = throw(verbs.iter().map(|v| v.parse()).collect())?;
        gate = gate.with(role, &verbs);
    }
    Ok(gate)
}

// ---- result conversion -----------------------------------------------

/// `value` as JavaScript: serde_json's text read back by `JSON.parse`, so
/// plain objects (fields in order), arrays, strings, numbers and nulls.
fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // Plain strings, integers within 2^53 and nulls always convert.
    serde_json::to_string(value)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::NULL)
}

#[derive(Serialize)]
struct MintedJs<'a> {
    bearer: &'a str,
    token: &'a CapToken,
    fingerprint: String,
}

fn minted_js(minted: &Minted) -> JsValue {
    to_js(&MintedJs {
        bearer: &minted.bearer,
        token: &minted.token,
        fingerprint: minted.fingerprint.to_string(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantJs<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<bool>,
    fingerprint: String,
    agent_id: &'a str,
    role: Role,
    scopes: &'a [&'a str],
    task_id: Option<&'a str>,
    uses_left: Option<u32>,
}

/// A `check` result: an allowed Decision, or a denial with its code.
fn decision_js(decision: Result<GrantRef<'_>, CapTokenError>) -> JsValue {
    match decision {
        Ok(grant) => grant_js(&grant, Some(true)),
        Err(error) => {
            let denied = Object::new();
            set(&denied, "allowed", &JsValue::FALSE);
            set(&denied, "code", &error.code().as_str().into());
            set(&denied, "message", &error.to_string().into());
            denied.into()
        }
    }
}

/// Writes a Grant's fingerprint, agent id and task id into the outbox and
/// returns the byte lengths of the last two (-1: no task), or `None` when
/// they do not fit.
fn write_outbox(grant: &GrantRef<'_>) -> Option<(i32, i32)> {
    let agent = grant.agent_id().as_bytes();
    let task = grant.task_id().map(str::as_bytes);
    OUTBOX.with(|outbox| {
        let mut outbox = outbox.try_borrow_mut().ok()?;
        let (hex, rest) = outbox.split_at_mut_checked(64)?;
        base16ct::lower::encode(grant.fingerprint().as_bytes(), hex).ok()?;
        let (agent_area, rest) = rest.split_at_mut_checked(agent.len())?;
        agent_area.copy_from_slice(agent);
        let task_len = match task {
            Some(task) => {
                rest.get_mut(..task.len())?.copy_from_slice(task);
                i32::try_from(task.len()).ok()?
            }
            None => -1,
        };
        Some((i32::try_from(agent.len()).ok()?, task_len))
    })
}

fn grant_js(grant: &GrantRef<'_>, allowed: Option<bool>) -> JsValue {
    let factory = GRANT_FACTORY.with(|slot| slot.borrow().clone());
    if let Some(factory) = factory {
        let scopes = if grant.is_unscoped() {
            JsValue::UNDEFINED
        } else {
            grant
                .scopes()
                .map(JsValue::from_str)
                .collect::<Array>()
                .into()
        };
        let allowed = allowed.unwrap_or(false);
        let role = grant.role().code();
        let mut hex = [0u8; 64];
        let (agent_len, task_len, fingerprint, agent_id, task_id) = match write_outbox(grant) {
            Some((agent_len, task_len)) => (agent_len, task_len, None, None, None),
            // Too long for the outbox: the strings go as arguments.
            None => (
                -1,
                -1,
                base16ct::lower::encode_str(grant.fingerprint().as_bytes(), &mut hex).ok(),
                Some(grant.agent_id()),
                grant.task_id(),
            ),
        };
        return factory.make_grant(
            &JsValue::UNDEFINED,
            allowed,
            role,
            &scopes,
            grant.uses_left(),
            agent_len,
            task_len,
            fingerprint,
            agent_id,
            task_id,
        );
    }
    // Loaded without the package entry: build it field by field.
    let scopes: Vec<&str> = grant.scopes().collect();
    to_js(&GrantJs {
        allowed,
        fingerprint: grant.fingerprint().to_string(),
        agent_id: grant.agent_id(),
        role: grant.role(),
        scopes: &scopes,
        task_id: grant.task_id(),
        uses_left: grant.uses_left(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskInfoJs<'a> {
    task_id: &'a str,
    parent_id: Option<&'a str>,
    spawn_depth: u32,
}

fn task_js(task: &TaskInfo) -> JsValue {
    to_js(&TaskInfoJs {
        task_id: &task.task_id,
        parent_id: task.parent_id.as_deref(),
        spawn_depth: task.spawn_depth,
    })
}

/// `CapTokenRecordJSON`: the seed's shape plus the fingerprint.
#[derive(Serialize, Deserialize)]
struct RecordJson {
    token: CapToken,
    uses_left: Option<u32>,
    revoked: bool,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    fingerprint: Option<Fingerprint>,
}

// ---- CapTokenRecord ----------------------------------------------------

/// The JavaScript `CapTokenRecord`: a seed record plus its fingerprint. It
/// never hands back a nonce: its token's nonce is always empty.
#[wasm_bindgen(js_name = CapTokenRecord)]
pub struct JsCapTokenRecord {
    record: CapTokenRecord,
    fingerprint: Fingerprint,
}

impl JsCapTokenRecord {
    fn new(mut record: CapTokenRecord, fingerprint: Fingerprint) -> Self {
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

// ---- TokenStore --------------------------------------------------------

/// The JavaScript `TokenStore`.
#[wasm_bindgen(js_name = TokenStore)]
pub struct JsTokenStore {
    store: TokenStore,
}

fn fingerprint_arg(value: &JsValue) -> JsResult<Fingerprint> {
    let text = value
        .dyn_ref::<JsString>()
        .filter(|s| s.length() == 64)
        .ok_or_else(|| invalid("fingerprint must be 64 lowercase hex characters"))?;
    throw(String::from(text).parse())
}

#[wasm_bindgen(js_class = TokenStore)]
impl JsTokenStore {
    /// An empty store.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<JsTokenStore> {
        let options = store_options_arg(&options)?;
        let mut store = throw(TokenStore::new(
            &options.secret,
            options.config,
            Box::new(options.clock),
        ))?;
        store.set_journaling(options.journal);
        Ok(JsTokenStore { store })
    }

    /// A store rebuilt from `snapshot()` text, then the journal written after it.
    pub fn restore(
        snapshot: JsValue,
        options: JsValue,
        journal: JsValue,
    ) -> JsResult<JsTokenStore> {
        let snapshot = state_text_arg(&snapshot, "snapshot")?;
        Self::restore_text(&snapshot, &options, &journal)
    }

    fn restore_text(
        snapshot: &str,
        options: &JsValue,
        journal: &JsValue,
    ) -> JsResult<JsTokenStore> {
        let journal = if journal.is_undefined() {
            String::new()
        } else {
            state_text_arg(journal, "journal")?
        };
        let options = store_options_arg(options)?;
        let mut store = throw(TokenStore::restore_with_journal(
            snapshot,
            &journal,
            &options.secret,
            options.config,
            Box::new(options.clock),
        ))?;
        store.set_journaling(options.journal);
        Ok(JsTokenStore { store })
    }

    /// `restore` of snapshot text the entry module staged (see [`stage`]).
    #[wasm_bindgen(js_name = "__restoreStaged")]
    pub fn restore_staged(
        len: usize,
        options: JsValue,
        journal: JsValue,
    ) -> JsResult<JsTokenStore> {
        let snapshot = throw(take_stage(len))?;
        Self::restore_text(&snapshot, &options, &journal)
    }

    /// The journal lines written since the last call (needs `journal: true`).
    #[wasm_bindgen(js_name = takeJournal)]
    pub fn take_journal(&mut self) -> String {
        self.store.take_journal()
    }

    /// Attach an Operator: mint its session token.
    #[wasm_bindgen(js_name = attachOperator)]
    pub fn attach_operator(&mut self, agent_id: JsValue, options: JsValue) -> JsResult<JsValue> {
        let agent_id = string_arg(&agent_id, "agentId")?;
        let options = mint_options_arg(&options)?;
        let minted = throw(self.store.attach_operator(&agent_id, options))?;
        Ok(minted_js(&minted))
    }

    /// Mint a token of any role.
    pub fn mint(
        &mut self,
        agent_id: JsValue,
        role: JsValue,
        options: JsValue,
    ) -> JsResult<JsValue> {
        let agent_id = string_arg(&agent_id, "agentId")?;
        let role = role_arg(&role)?;
        let options = mint_options_arg(&options)?;
        let minted = throw(self.store.mint(&agent_id, role, options))?;
        Ok(minted_js(&minted))
    }

    /// Record a token minted elsewhere with the same secret; returns its fingerprint.
    pub fn adopt(&mut self, bearer: JsValue, task_id: JsValue) -> JsResult<String> {
        let bearer = throw(bearer_arg(&bearer))?;
        let task_id = optional_string_arg(&task_id, "taskId")?;
        let fingerprint = throw(self.store.adopt(&bearer, task_id.as_deref()))?;
        Ok(fingerprint.to_string())
    }

    /// `start_task`: a root task, or a child of `parentId` (for a Worker, by
    /// default of its bound task; its children's ids are made by the store).
    #[wasm_bindgen(js_name = startTask)]
    pub fn start_task(&mut self, bearer: JsValue, options: JsValue) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let (task_id, parent_id) = match options_object(&options, "options")? {
            Some(object) => (
                optional_string_arg(&field(&object, "taskId")?, "taskId")?,
                optional_string_arg(&field(&object, "parentId")?, "parentId")?,
            ),
            None => (None, None),
        };
        let task = throw(self.store.start_task_under(
            &bearer,
            parent_id.as_deref(),
            task_id.as_deref(),
        ))?;
        Ok(task_js(&task))
    }

    /// `dispatch_attempt`: mint a Worker token bound to a tracked task.
    #[wasm_bindgen(js_name = dispatchAttempt)]
    pub fn dispatch_attempt(
        &mut self,
        bearer: JsValue,
        task_id: JsValue,
        options: JsValue,
    ) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let task_id = string_arg(&task_id, "taskId")?;
        let options = mint_options_arg(&options)?;
        let minted = throw(self.store.dispatch_attempt(&bearer, &task_id, options))?;
        Ok(minted_js(&minted))
    }

    /// Decide a call and spend one use; throws `CapTokenError` when denied.
    pub fn verify(
        &mut self,
        bearer: JsValue,
        verb: JsValue,
        task_id: JsValue,
    ) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        self.verify_str(&bearer, &verb, &task_id)
    }

    /// `verify` for a bearer and task id the entry module wrote into the
    /// inbox (see [`INBOX_LEN`]), with the verb as its index in
    /// `__verbNames()`: the same decision without the glue's string copies.
    #[wasm_bindgen(js_name = "__verifyInbox")]
    pub fn verify_inbox(&mut self, len: usize, verb: u8, task_len: i32) -> JsResult<JsValue> {
        with_inbox(len, task_len, |bearer, task_id| {
            let bearer = throw(bearer)?;
            let verb = throw(verb_code_arg(verb))?;
            self.verify_decoded(bearer, verb, throw(task_id)?)
        })
    }

    fn verify_str(&mut self, bearer: &str, verb: &JsValue, task_id: &JsValue) -> JsResult<JsValue> {
        let verb = throw(verb_arg(verb))?;
        let task_id = throw(optional_task_arg(task_id))?;
        self.verify_decoded(bearer, verb, task_id.as_deref())
    }

    fn verify_decoded(
        &mut self,
        bearer: &str,
        verb: Verb,
        task_id: Option<&str>,
    ) -> JsResult<JsValue> {
        let grant = throw(self.store.verify_ref(bearer, verb, task_id))?;
        Ok(grant_js(&grant, None))
    }

    /// Decide a call as `verify` would, spending nothing; never throws.
    pub fn check(&self, bearer: JsValue, verb: JsValue, task_id: JsValue) -> JsValue {
        self.check_with(bearer_arg(&bearer), &verb, &task_id)
    }

    /// `check` for a bearer and task id in the inbox (see `__verifyInbox`).
    #[wasm_bindgen(js_name = "__checkInbox")]
    pub fn check_inbox(&self, len: usize, verb: u8, task_len: i32) -> JsValue {
        with_inbox(len, task_len, |bearer, task_id| {
            decision_js(bearer.and_then(|bearer| {
                let verb = verb_code_arg(verb)?;
                self.store.check_ref(bearer, verb, task_id?)
            }))
        })
    }

    fn check_with(
        &self,
        bearer: Result<String, CapTokenError>,
        verb: &JsValue,
        task_id: &JsValue,
    ) -> JsValue {
        decision_js(bearer.and_then(|bearer| {
            let verb = verb_arg(verb)?;
            let task_id = optional_task_arg(task_id)?;
            self.store.check_ref(&bearer, verb, task_id.as_deref())
        }))
    }

    /// Revoke one token by fingerprint; true when it was live.
    pub fn revoke(&mut self, fingerprint: JsValue) -> JsResult<bool> {
        let fingerprint = fingerprint_arg(&fingerprint)?;
        Ok(self.store.revoke(&fingerprint))
    }

    /// Revoke every token bound to a task or its descendants; returns how many.
    #[wasm_bindgen(js_name = revokeTask)]
    pub fn revoke_task(&mut self, task_id: JsValue) -> JsResult<u32> {
        let task_id = string_arg(&task_id, "taskId")?;
        let revoked = self.store.revoke_task(&task_id);
        Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
    }

    /// Remint a late Worker token.
    pub fn remint(&mut self, bearer: JsValue) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let minted = throw(self.store.remint(&bearer))?;
        Ok(minted_js(&minted))
    }

    /// Remove the records of expired tokens; returns how many.
    #[wasm_bindgen(js_name = purgeExpired)]
    pub fn purge_expired(&mut self) -> u32 {
        u32::try_from(self.store.purge_expired()).unwrap_or(u32::MAX)
    }

    /// One record, or `undefined`.
    pub fn record(&self, fingerprint: JsValue) -> JsResult<Option<JsCapTokenRecord>> {
        let fingerprint = fingerprint_arg(&fingerprint)?;
        Ok(self
            .store
            .record(&fingerprint)
            .map(|record| JsCapTokenRecord::new(record, fingerprint)))
    }

    /// One task, or `undefined`.
    pub fn task(&self, task_id: JsValue) -> JsResult<JsValue> {
        let task_id = string_arg(&task_id, "taskId")?;
        Ok(self
            .store
            .task(&task_id)
            .map_or(JsValue::UNDEFINED, |task| task_js(&task)))
    }

    /// Every record as `CapTokenRecordJSON`, ordered by fingerprint.
    pub fn records(&self) -> JsValue {
        let records: Vec<RecordJson> = self
            .store
            .records()
            .into_iter()
            .map(|(fingerprint, record)| RecordJson {
                token: record.token,
                uses_left: record.uses_left,
                revoked: record.revoked,
                task_id: record.task_id,
                fingerprint: Some(fingerprint),
            })
            .collect();
        to_js(&records)
    }

    /// Every tracked task.
    pub fn tasks(&self) -> JsValue {
        let tasks: Vec<JsValue> = self.store.tasks().iter().map(task_js).collect();
        tasks.into_iter().collect::<Array>().into()
    }

    /// How many records the store holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.store.len()).unwrap_or(u32::MAX)
    }

    /// The whole state as JSON text.
    pub fn snapshot(&self) -> String {
        self.store.snapshot()
    }
}
