//! The fast path: verify and check without the glue's string copies, and
//! snapshots staged without its per-character copy.
//!
//! Memory protocol (the entry's `js/fast_path.js` is the other half, and
//! reads every offset and limit from [`layout`] at init, so both sides share
//! one declaration):
//!
//! * **inbox** — the entry UTF-8-encodes the bearer at offset 0 and the task
//!   id at `inboxTaskAt` with `TextEncoder.encodeInto`, then calls
//!   `__verifyInbox(bearerBytes, verbCode, taskBytes | -1)`; the verb travels
//!   as its index in `verbNames`. Strings that do not fit take the ordinary
//!   path.
//! * **outbox** — the module writes a Grant's fingerprint (64 hex digits),
//!   agent id and task id back to back there and calls the registered grant
//!   factory once with their byte lengths; strings that do not fit travel as
//!   arguments instead.
//! * **stage** — `restore` encodes the snapshot (and journal) text into a
//!   buffer grown by `__stage(len)`, then calls `__restoreStaged`.

use super::errors::{throw, JsResult};
use super::results::plain_grant_js;
use crate::error::CapTokenError;
use crate::role::{Role, Verb};
use crate::store::GrantRef;
use crate::token::MAX_BEARER_LEN;
use js_sys::{Array, Function};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The inbox's bearer area: a UTF-16 unit takes at most 3 bytes of UTF-8.
const INBOX_BEARER_BYTES: usize = 3 * MAX_BEARER_LEN;
/// Longer task ids take the ordinary path.
const INBOX_TASK_UNITS: usize = 256;
const INBOX_LEN: usize = INBOX_BEARER_BYTES + 3 * INBOX_TASK_UNITS;
/// Room for a Grant's strings; most grants' fit many times over.
const OUTBOX_LEN: usize = 4096;
/// The longest snapshot or journal text accepted, in UTF-16 units (1 GiB).
pub(super) const MAX_SNAPSHOT_LEN: u32 = 1 << 30;

/// What the entry reads once at init: where things are, how large, and the
/// limits it checks before choosing a path.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    inbox: usize,
    inbox_task_at: usize,
    inbox_task_bytes: usize,
    inbox_task_units: usize,
    max_bearer_len: usize,
    outbox: usize,
    outbox_len: usize,
    max_snapshot_len: u32,
    max_string_arg: u32,
    max_list_len: u32,
    verb_names: Vec<&'static str>,
    /// Indexed by the role code the grant factory gets.
    role_names: Vec<&'static str>,
}

/// The fast path's layout and limits (see the module documentation).
#[wasm_bindgen(js_name = "__layout")]
pub fn layout() -> JsValue {
    let mut roles = Role::ALL;
    roles.sort_by_key(|role| role.code());
    super::results::to_js(&Layout {
        inbox: INBOX.with(|inbox| inbox.borrow_mut().as_mut_ptr()) as usize,
        inbox_task_at: INBOX_BEARER_BYTES,
        inbox_task_bytes: 3 * INBOX_TASK_UNITS,
        inbox_task_units: INBOX_TASK_UNITS,
        max_bearer_len: MAX_BEARER_LEN,
        outbox: OUTBOX.with(|outbox| outbox.borrow().as_ptr()) as usize,
        outbox_len: OUTBOX_LEN,
        max_snapshot_len: MAX_SNAPSHOT_LEN,
        max_string_arg: super::args::MAX_STRING_ARG,
        max_list_len: super::args::MAX_LIST_LEN,
        verb_names: Verb::ALL.iter().map(|verb| verb.as_str()).collect(),
        role_names: roles.iter().map(|role| role.as_str()).collect(),
    })
}

/// The module's `WebAssembly.Memory`, for the entry's views of the boxes.
#[wasm_bindgen(js_name = "__memory")]
pub fn memory() -> JsValue {
    wasm_bindgen::memory()
}

thread_local! {
    static INBOX: RefCell<Box<[u8]>> = RefCell::new(vec![0; INBOX_LEN].into_boxed_slice());
    static OUTBOX: RefCell<Box<[u8]>> = RefCell::new(vec![0; OUTBOX_LEN].into_boxed_slice());
    /// The strings [`with_inbox`] copies into, kept from call to call.
    static INBOX_COPIES: Cell<(String, String)> = const { Cell::new((String::new(), String::new())) };
    static GRANT_FACTORY: RefCell<Option<GrantFactory>> = const { RefCell::new(None) };
    static STAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A verb by its index in [`Verb::ALL`].
pub(super) fn verb_code_arg(code: u8) -> Result<Verb, CapTokenError> {
    Verb::ALL
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| CapTokenError::invalid("verb must be one of the verb names"))
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
pub(super) fn with_inbox<R>(
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

#[wasm_bindgen]
extern "C" {
    /// `factory(allowed, roleIndex, scopes, usesLeft, agentLen, taskLen,
    /// fingerprint, agentId, taskId)`: builds a Grant in one crossing instead
    /// of one per field. With `agentLen >= 0` the strings are in the outbox
    /// and the last three arguments are undefined.
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
/// Grant objects (see js/fast_path.js).
#[wasm_bindgen(js_name = "__registerGrantFactory")]
pub fn register_grant_factory(factory: JsValue) {
    if factory.is_function() {
        GRANT_FACTORY.with(|slot| *slot.borrow_mut() = Some(factory.unchecked_into()));
    }
}

/// Writes a Grant's fingerprint, agent id and task id into the outbox and
/// returns the byte lengths of the last two (-1: no task), or `None` when
/// they do not fit.
fn write_outbox(grant: &GrantRef<'_>) -> Option<(i32, i32)> {
    let mut hex = [0u8; 64];
    let hex = base16ct::lower::encode(grant.fingerprint().as_bytes(), &mut hex).ok()?;
    let agent = grant.agent_id().as_bytes();
    let task = grant.task_id().map(str::as_bytes);
    if !write_outbox_parts(&[hex, agent, task.unwrap_or_default()]) {
        return None;
    }
    let task_len = match task {
        Some(task) => i32::try_from(task.len()).ok()?,
        None => -1,
    };
    Some((i32::try_from(agent.len()).ok()?, task_len))
}

/// Writes `parts` back to back at the start of the outbox; false when they
/// do not fit (the caller then passes its strings another way).
pub(super) fn write_outbox_parts(parts: &[&[u8]]) -> bool {
    OUTBOX.with(|outbox| {
        let Ok(mut outbox) = outbox.try_borrow_mut() else {
            return false;
        };
        let mut rest: &mut [u8] = &mut outbox;
        for part in parts {
            let Some((area, after)) = rest.split_at_mut_checked(part.len()) else {
                return false;
            };
            area.copy_from_slice(part);
            rest = after;
        }
        true
    })
}

/// A Grant (or, with `allowed`, an allowed Decision) through the factory.
pub(super) fn grant_js(grant: &GrantRef<'_>, allowed: Option<bool>) -> JsValue {
    let Some(factory) = GRANT_FACTORY.with(|slot| slot.borrow().clone()) else {
        return plain_grant_js(grant, allowed);
    };
    let scopes = if grant.is_unscoped() {
        JsValue::UNDEFINED
    } else {
        grant
            .scopes()
            .map(JsValue::from_str)
            .collect::<Array>()
            .into()
    };
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
    factory.make_grant(
        &JsValue::UNDEFINED,
        allowed.unwrap_or(false),
        grant.role().code(),
        &scopes,
        grant.uses_left(),
        agent_len,
        task_len,
        fingerprint,
        agent_id,
        task_id,
    )
}

/// Grows the stage to hold at least `len` bytes, keeping what it holds, and
/// returns where it starts; null when linear memory cannot hold that much.
/// A snapshot of a million records is hundreds of MB, and the glue's
/// per-character copy of it cost more than parsing it.
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

/// The staged snapshot (`len` bytes) and, with `journal_len`, the journal
/// staged right after it.
pub(super) fn take_staged(
    len: usize,
    journal_len: Option<u32>,
) -> JsResult<(String, Option<String>)> {
    let Some(journal_len) = journal_len else {
        return Ok((throw(take_stage(len))?, None));
    };
    let journal_len = usize::try_from(journal_len).unwrap_or(usize::MAX);
    let mut text = throw(take_stage(len.saturating_add(journal_len)))?;
    if !text.is_char_boundary(len) {
        return Err(super::errors::to_js_error(&CapTokenError::snapshot(
            "snapshot and journal were not staged",
        )));
    }
    let journal = text.split_off(len);
    Ok((text, Some(journal)))
}
