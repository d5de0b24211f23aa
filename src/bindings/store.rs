//! The JavaScript `TokenStore` class: converts arguments (see `args`),
//! delegates to [`TokenStore`], converts results (see `results`).

use super::args::{
    bearer_arg, fingerprint_arg, mint_options_arg, optional_string_arg, optional_task_arg,
    role_arg, start_task_arg, state_text_arg, store_options_arg, string_arg, verb_arg,
};
use super::errors::{throw, JsResult};
use super::fast_path::{grant_js, take_staged, verb_code_arg, with_inbox};
use super::record::JsCapTokenRecord;
use super::results::{decision_js, minted_js, task_js, tasks_js, to_js, RecordJson};
use crate::error::CapTokenError;
use crate::role::Verb;
use crate::snapshot::RestoreOptions;
use crate::store::TokenStore;
use wasm_bindgen::prelude::*;

/// The JavaScript `TokenStore`.
#[wasm_bindgen(js_name = TokenStore)]
pub struct JsTokenStore {
    store: TokenStore,
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
        Self::restore_texts(snapshot, &journal, options)
    }

    fn restore_texts(snapshot: &str, journal: &str, options: &JsValue) -> JsResult<JsTokenStore> {
        let options = store_options_arg(options)?;
        let mut store = throw(TokenStore::restore_with(
            snapshot,
            journal,
            &options.secret,
            options.config,
            Box::new(options.clock),
            RestoreOptions {
                allow_unsealed: options.allow_unsealed,
            },
        ))?;
        store.set_journaling(options.journal);
        Ok(JsTokenStore { store })
    }

    /// `restore` of snapshot text the entry module staged (see `fast_path`),
    /// `len` bytes; with `journal_len`, the journal's bytes follow it in the
    /// stage (staged too: passing a string of a gigabyte through the glue
    /// allocates infallibly, and a failure there would trap), else the
    /// journal is the `journal` argument.
    #[wasm_bindgen(js_name = "__restoreStaged")]
    pub fn restore_staged(
        len: usize,
        options: JsValue,
        journal: JsValue,
        journal_len: Option<u32>,
    ) -> JsResult<JsTokenStore> {
        match take_staged(len, journal_len)? {
            (snapshot, Some(journal)) => Self::restore_texts(&snapshot, &journal, &options),
            (snapshot, None) => Self::restore_text(&snapshot, &options, &journal),
        }
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
        let (task_id, parent_id) = start_task_arg(&options)?;
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
    /// inbox (see `fast_path`), with the verb as its index in
    /// the layout's `verbNames`: the same decision without the glue's string copies.
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
        tasks_js(&self.store.tasks())
    }

    /// How many records the store holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        u32::try_from(self.store.len()).unwrap_or(u32::MAX)
    }

    /// The whole state as sealed JSON text; the journal chain restarts at it.
    pub fn snapshot(&mut self) -> JsResult<String> {
        throw(self.store.snapshot())
    }
}
