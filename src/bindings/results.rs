//! Results out: plain JavaScript objects built by `serde_wasm_bindgen` with
//! its JSON-compatible serializer (plain objects rather than `Map`s, `null`
//! for `None`), fields in declaration order. Grants on the hot path are built
//! by the fast path's factory instead (see `fast_path`).

use crate::error::CapTokenError;
use crate::role::Role;
use crate::store::{GrantRef, Minted};
use crate::task::TaskInfo;
use crate::token::{CapToken, Fingerprint};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

/// `value` as a plain JavaScript value.
pub(super) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    // What this module serializes (strings, integers below 2^53, bools,
    // options, sequences and structs) always converts.
    value.serialize(&serializer).unwrap_or(JsValue::NULL)
}

#[derive(Serialize)]
struct MintedJs<'a> {
    bearer: &'a str,
    token: &'a CapToken,
    fingerprint: String,
}

/// `{ bearer, token, fingerprint }`.
pub(super) fn minted_js(minted: &Minted) -> JsValue {
    to_js(&MintedJs {
        bearer: &minted.bearer,
        token: &minted.token,
        fingerprint: minted.fingerprint.to_string(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskInfoJs<'a> {
    task_id: &'a str,
    parent_id: Option<&'a str>,
    spawn_depth: u32,
}

fn task_ref(task: &TaskInfo) -> TaskInfoJs<'_> {
    TaskInfoJs {
        task_id: &task.task_id,
        parent_id: task.parent_id.as_deref(),
        spawn_depth: task.spawn_depth,
    }
}

/// `{ taskId, parentId, spawnDepth }`.
pub(super) fn task_js(task: &TaskInfo) -> JsValue {
    to_js(&task_ref(task))
}

/// Every task, as an array.
pub(super) fn tasks_js(tasks: &[TaskInfo]) -> JsValue {
    let tasks: Vec<TaskInfoJs<'_>> = tasks.iter().map(task_ref).collect();
    to_js(&tasks)
}

/// `CapTokenRecordJSON`: the seed's shape plus the fingerprint. Read back by
/// `CapTokenRecord.fromJSON` too.
#[derive(Serialize, Deserialize)]
pub(super) struct RecordJson {
    pub(super) token: CapToken,
    pub(super) uses_left: Option<u32>,
    pub(super) revoked: bool,
    #[serde(default)]
    pub(super) task_id: Option<String>,
    #[serde(default)]
    pub(super) fingerprint: Option<Fingerprint>,
}

#[derive(Serialize)]
struct Denied<'a> {
    allowed: bool,
    code: &'a str,
    message: String,
}

/// A `check` result: an allowed Decision, or a denial with its code.
pub(super) fn decision_js(decision: Result<GrantRef<'_>, CapTokenError>) -> JsValue {
    match decision {
        Ok(grant) => super::fast_path::grant_js(&grant, Some(true)),
        Err(error) => to_js(&Denied {
            allowed: false,
            code: error.code().as_str(),
            message: error.to_string(),
        }),
    }
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

/// A Grant built field by field, for a module loaded without the package
/// entry (no grant factory registered).
pub(super) fn plain_grant_js(grant: &GrantRef<'_>, allowed: Option<bool>) -> JsValue {
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
