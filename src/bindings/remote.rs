//! The JavaScript face of [`crate::remote`], for `captoken/redis`: arguments
//! read by the binding layer's own functions ([`super::args`]), the stateless
//! steps, and signing. The state and steps 5 to 7 live in the server's
//! scripts (js/redis/*.lua); this layer never sees them. Results are built by
//! [`super::remote_results`].
//!
//! Built only with the `remote` feature (the Node flavour: a browser cannot
//! reach Redis). Not part of the public API: the class is `__RemoteCore`,
//! used by js/redis.cjs, which copies every options object to plain data
//! first (js/args.js), as the `TokenStore` entry does.

use super::args::{
    bearer_arg, fingerprint_arg, mint_options_arg, optional_string_arg, optional_task_arg,
    role_arg, start_task_arg, state_text_arg, store_options_arg, string_arg, verb_arg, JsClock,
};
use super::errors::{throw, to_js_error, JsResult};
use super::fast_path::{verb_code_arg, with_inbox, write_outbox_parts};
use super::remote_results::{
    hex, new_record_js, object, opt_text, opt_u32, ownership_kind, prepared_js, presented_js,
    refusal, set,
};
use super::results::{minted_js, to_js};
use crate::clock::Clock;
use crate::entry::Scopes;
use crate::error::CapTokenError;
use crate::remote::{record_digest, record_json, RemoteCore};
use crate::role::{Role, Verb};
use crate::signer::SigningFormat;
use crate::store::{check_task_id, MintOptions};
use crate::token::{TokenFields, MAX_SAFE_INTEGER};
use wasm_bindgen::prelude::*;

/// When a token stops being accepted (step 3), in seconds: its `expire_at`,
/// or infinity for a role whose tokens never expire.
fn expires_at(token: &impl TokenFields) -> f64 {
    if token.role().expires() {
        token.expire_at().min(MAX_SAFE_INTEGER) as f64
    } else {
        f64::INFINITY
    }
}

/// A `notAfter` argument: a whole number of seconds, or none (negative,
/// `null`, `undefined`).
fn not_after_arg(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0).then(|| value.min(MAX_SAFE_INTEGER as f64) as u64)
}

fn opt_time(value: Option<u64>) -> JsValue {
    value.map_or(JsValue::NULL, |at| {
        JsValue::from(at.min(MAX_SAFE_INTEGER) as f64)
    })
}

/// The remote store's core (see the module docs).
#[wasm_bindgen(js_name = "__RemoteCore")]
pub struct JsRemoteCore {
    core: RemoteCore,
    clock: JsClock,
    secret: Vec<u8>,
    /// Reused buffer for decoding bearers.
    scratch: core::cell::Cell<Vec<u8>>,
}

#[wasm_bindgen(js_class = "__RemoteCore")]
impl JsRemoteCore {
    /// A core with `TokenStore`'s options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<JsRemoteCore> {
        let options = store_options_arg(&options)?;
        let core = throw(RemoteCore::new(&options.secret, options.config))?;
        Ok(JsRemoteCore {
            core,
            clock: options.clock,
            secret: options.secret,
            scratch: core::cell::Cell::new(Vec::new()),
        })
    }

    /// The store's clock, read once per call (unix seconds).
    pub fn now(&self) -> f64 {
        self.clock.now() as f64
    }

    /// The configuration the scripts need.
    pub fn config(&self) -> JsValue {
        let config = self.core.config();
        let limits = config.limits;
        let out: JsValue = js_sys::Object::new().into();
        set(&out, "maxSpawnDepth", &config.max_spawn_depth.into());
        set(&out, "maxRecords", &limits.max_records.into());
        set(&out, "maxTasks", &limits.max_tasks.into());
        set(&out, "maxTasksPerTree", &limits.max_tasks_per_tree.into());
        set(
            &out,
            "maxChildrenPerTask",
            &limits.max_children_per_task.into(),
        );
        set(
            &out,
            "maxMadePerWorkerToken",
            &limits.max_made_per_worker_token.into(),
        );
        set(
            &out,
            "format",
            &match config.format {
                SigningFormat::V2 => "v2",
                SigningFormat::MluaSwarm => "mlua-swarm",
            }
            .into(),
        );
        out
    }

    /// `verify`/`check`'s arguments and steps 1 to 4; throws CapTokenError.
    pub fn authorize(
        &self,
        bearer: JsValue,
        verb: JsValue,
        task_id: JsValue,
        now: f64,
    ) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let verb = throw(verb_arg(&verb))?;
        let task_arg = task_id;
        let task_id = throw(optional_task_arg(&task_arg))?;
        throw(self.authorize_in(&bearer, verb, (task_id.as_deref(), &task_arg), now as u64))
    }

    /// `authorize` for a bearer and task id the entry module wrote into the
    /// inbox (see `fast_path`), with the verb as its index in the layout's
    /// `verbNames`. The result's `taskArg` is left for the entry to set.
    #[wasm_bindgen(js_name = "__authorizeInbox")]
    pub fn authorize_inbox(
        &self,
        len: usize,
        verb: u8,
        task_len: i32,
        now: f64,
    ) -> JsResult<JsValue> {
        with_inbox(len, task_len, |bearer, task_id| {
            let bearer = throw(bearer)?;
            let verb = throw(verb_code_arg(verb))?;
            let task_id = throw(task_id)?;
            throw(self.authorize_in(bearer, verb, (task_id, &JsValue::UNDEFINED), now as u64))
        })
    }

    /// Steps 1 to 4 on the hot path: decoded into a buffer kept from call
    /// to call, the token borrowed from it, the result built without JSON.
    fn authorize_in(
        &self,
        bearer: &str,
        verb: Verb,
        task: (Option<&str>, &JsValue),
        now: u64,
    ) -> Result<JsValue, CapTokenError> {
        let mut buf = self.scratch.take();
        let out = self.authorize_with(&mut buf, bearer, verb, task, now);
        self.scratch.set(buf);
        out
    }

    fn authorize_with(
        &self,
        buf: &mut Vec<u8>,
        bearer: &str,
        verb: Verb,
        (task_id, task_arg): (Option<&str>, &JsValue),
        now: u64,
    ) -> Result<JsValue, CapTokenError> {
        let verifier = self.core.verifier();
        let token = verifier.decode(bearer, buf)?;
        verifier.check_signature(&token)?;
        let fingerprint = token.fingerprint();
        verifier.check_expiry(&token, fingerprint, now)?;
        verifier.check_gate(token.role(), verb)?;
        let mut hex_buf = [0u8; 64];
        let fp_hex =
            base16ct::lower::encode_str(fingerprint.as_bytes(), &mut hex_buf).unwrap_or_default();
        // One call into JavaScript with the strings in the outbox, instead
        // of a crossing per field (measured: 7.8 µs per authorize the other
        // way, against 2.2 µs for a whole local verify).
        let factory = PRESENTED_FACTORY.with(|slot| slot.borrow().clone());
        if let Some(factory) = factory {
            let mut digest_buf = [0u8; 64];
            let digest_hex = base16ct::lower::encode_str(&record_digest(&token), &mut digest_buf)
                .unwrap_or_default();
            let agent = token.agent_id();
            if let (true, Ok(agent_len)) = (
                write_outbox_parts(&[fp_hex.as_bytes(), digest_hex.as_bytes(), agent.as_bytes()]),
                i32::try_from(agent.len()),
            ) {
                let scopes = if Scopes::All.is(token.scopes()) {
                    JsValue::UNDEFINED
                } else {
                    token
                        .scopes()
                        .map(JsValue::from_str)
                        .collect::<js_sys::Array>()
                        .into()
                };
                return Ok(factory.make(
                    &JsValue::UNDEFINED,
                    token.role().code(),
                    ownership_kind(verb),
                    &scopes,
                    agent_len,
                    task_arg,
                    expires_at(&token),
                ));
            }
        }
        let out: JsValue = js_sys::Object::new().into();
        set(&out, "fingerprint", &fp_hex.into());
        set(&out, "digest", &hex(&record_digest(&token)).into());
        set(&out, "role", &token.role().as_str().into());
        set(&out, "agentId", &token.agent_id().into());
        let scopes: js_sys::Array = token.scopes().map(JsValue::from_str).collect();
        set(&out, "scopes", &scopes);
        set(&out, "kind", &ownership_kind(verb).into());
        set(
            &out,
            "taskArg",
            &task_id.map_or(JsValue::NULL, JsValue::from_str),
        );
        set(&out, "expiresAt", &expires_at(&token).into());
        Ok(out)
    }

    /// The store's gate as `{ role: { verb: kind } }`, each verb the role
    /// may call with its ownership kind (0 no rule, 1 the bound task, 2 the
    /// bound task or below): what steps 4 and 5 need of a role and a verb,
    /// for captoken/redis's admitted bearers (js/admitted.cjs).
    #[wasm_bindgen(js_name = gateKinds)]
    pub fn gate_kinds(&self) -> JsValue {
        let out: JsValue = js_sys::Object::new().into();
        for role in Role::ALL {
            let verbs: JsValue = js_sys::Object::new().into();
            for verb in Verb::ALL {
                if self.core.verifier().check_gate(role, verb).is_ok() {
                    set(&verbs, verb.as_str(), &ownership_kind(verb).into());
                }
            }
            set(&out, role.as_str(), &verbs);
        }
        out
    }

    /// `adopt`'s arguments, steps 1 to 3 and the task id rule.
    #[wasm_bindgen(js_name = adoptPrepare)]
    pub fn adopt_prepare(&self, bearer: JsValue, task_id: JsValue, now: f64) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let task_id = optional_string_arg(&task_id, "taskId")?;
        let presented = throw(self.core.authenticate(&bearer, Some(now as u64)))?;
        if let Some(task_id) = &task_id {
            throw(check_task_id(task_id))?;
        }
        let out = presented_js(&presented, None, None);
        set(&out, "json", &record_json(&presented.token).into());
        set(
            &out,
            "taskId",
            &task_id.map_or(JsValue::NULL, |task| task.into()),
        );
        Ok(out)
    }

    /// `remint`'s argument, steps 1 and 2 and the role rule.
    #[wasm_bindgen(js_name = remintPrepare)]
    pub fn remint_prepare(&self, bearer: JsValue) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let presented = throw(self.core.authenticate(&bearer, None))?;
        if presented.token.role != Role::Worker {
            return Err(to_js_error(&CapTokenError::invalid(
                "only worker tokens can be reminted",
            )));
        }
        Ok(presented_js(&presented, None, None))
    }

    /// The new token of a remint at the store's clock (read once): the
    /// bearer's agent and scopes, at most one lifetime late, the same
    /// lifetime from now but never past `notAfter` (the expiry of the Worker
    /// that minted the token; negative: none), `usesLeft` (negative:
    /// unlimited) and the bound task. `{ deferred }` holds the refusal. Four
    /// arguments, as the entry's guard passes.
    #[wasm_bindgen(js_name = remintMint)]
    pub fn remint_mint(
        &self,
        bearer: JsValue,
        uses_left: f64,
        task_id: JsValue,
        not_after: f64,
    ) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let presented = throw(self.core.authenticate(&bearer, None))?;
        let task_id = task_id.as_string();
        let not_after = not_after_arg(not_after);
        let uses_left = (uses_left >= 0.0).then_some(uses_left as u32);
        let now = self.clock.now();
        let prepared =
            RemoteCore::remint_options(&presented, uses_left, task_id.clone(), not_after, now)
                .and_then(|options| {
                    self.core
                        .mint(&presented.token.agent_id, Role::Worker, &options, None, now)
                });
        Ok(prepared_js(prepared, task_id.as_deref(), not_after))
    }

    /// `mint`'s (and `attachOperator`'s) arguments and the signed token, or
    /// the error to report after the records limit.
    pub fn mint(
        &self,
        agent_id: JsValue,
        role: JsValue,
        options: JsValue,
        now: f64,
    ) -> JsResult<JsValue> {
        let agent_id = string_arg(&agent_id, "agentId")?;
        let role = role_arg(&role)?;
        let options = mint_options_arg(&options)?;
        let prepared = self.core.mint(&agent_id, role, &options, None, now as u64);
        Ok(prepared_js(prepared, options.task_id.as_deref(), None))
    }

    /// `dispatchAttempt`'s arguments, steps 1 to 4, and the signed token.
    /// `stage` says where a refusal found here stands among the script's
    /// checks: 1 right after steps 5 to 7 (options.taskId), 2 after the
    /// task and the Worker's limit (scopes), 3 after the budget and the
    /// records limit (minting).
    #[wasm_bindgen(js_name = dispatchPrepare)]
    pub fn dispatch_prepare(
        &self,
        bearer: JsValue,
        task_id: JsValue,
        options: JsValue,
        now: f64,
    ) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let task_id = string_arg(&task_id, "taskId")?;
        let options = mint_options_arg(&options)?;
        let now = now as u64;
        let presented = throw(self.core.authorize(&bearer, Verb::DispatchAttempt, now))?;
        let out = presented_js(&presented, Some(Verb::DispatchAttempt), Some(&task_id));
        let asked = options.max_uses;
        let stage_error = |stage: u8, error: CapTokenError| {
            set(&out, "stage", &stage.into());
            set(&out, "deferred", &to_js_error(&error));
        };
        if options.task_id.as_deref().is_some_and(|id| id != task_id) {
            stage_error(
                1,
                CapTokenError::invalid("options.taskId must match the dispatched task"),
            );
            return Ok(out);
        }
        let mut options = MintOptions {
            task_id: Some(task_id.clone()),
            ..options
        };
        let mut cap = None;
        if presented.token.role == Role::Worker {
            match self
                .core
                .narrower_scopes(options.scopes.take(), &presented.token.scopes)
            {
                Ok(scopes) => options.scopes = Some(scopes),
                Err(error) => {
                    stage_error(2, error);
                    return Ok(out);
                }
            }
            cap = Some(presented.token.expire_at);
        }
        let agent = format!("worker-of-{task_id}");
        match self.core.mint(&agent, Role::Worker, &options, cap, now) {
            Ok(minted) => {
                set(&out, "stage", &0.into());
                // Neither the token nor any remint of it outlives the minting Worker.
                set(&out, "record", &new_record_js(&minted, Some(&task_id), cap));
                set(&out, "minted", &minted_js(&minted.minted));
            }
            Err(error) => stage_error(3, error),
        }
        set(&out, "asked", &asked.map_or(JsValue::NULL, JsValue::from));
        Ok(out)
    }

    /// `startTask`'s arguments and steps 1 to 4; `deferred` is the task id's
    /// refusal, reported after the parent and depth checks.
    #[wasm_bindgen(js_name = startPrepare)]
    pub fn start_prepare(&self, bearer: JsValue, options: JsValue, now: f64) -> JsResult<JsValue> {
        let bearer = throw(bearer_arg(&bearer))?;
        let (task_id, parent_id) = start_task_arg(&options)?;
        let presented = throw(self.core.authorize(&bearer, Verb::StartTask, now as u64))?;
        let out = presented_js(&presented, Some(Verb::StartTask), parent_id.as_deref());
        if let Some(id) = &task_id {
            let refusal = if presented.token.role == Role::Worker {
                Some(CapTokenError::invalid(
                    "a Worker's child tasks get ids made by the store: leave taskId out",
                ))
            } else if let Err(error) = check_task_id(id) {
                Some(error)
            } else if self.core.config().format == SigningFormat::MluaSwarm && id.contains('|') {
                Some(CapTokenError::invalid(
                    "in the mlua-swarm format a task id may not hold '|' (it names the agent worker-of-<task id>)",
                ))
            } else {
                None
            };
            if let Some(error) = refusal {
                set(&out, "deferred", &to_js_error(&error));
            }
            set(&out, "taskId", &id.into());
        }
        Ok(out)
    }

    /// A fingerprint argument, checked as `TokenStore` checks it.
    #[wasm_bindgen(js_name = fingerprintArg)]
    pub fn fingerprint_arg(&self, value: JsValue) -> JsResult<String> {
        fingerprint_arg(&value).map(|fingerprint| fingerprint.to_string())
    }

    /// A task id argument (`revokeTask`, `task`), checked as `TokenStore` does.
    #[wasm_bindgen(js_name = taskIdArg)]
    pub fn task_id_arg(&self, value: JsValue) -> JsResult<String> {
        string_arg(&value, "taskId")
    }

    /// The CapTokenError for a script's refusal: `code` and its details.
    pub fn error(&self, code: &str, fingerprint: JsValue, a: JsValue, b: JsValue) -> JsValue {
        to_js_error(&refusal(code, &fingerprint, &a, &b))
    }

    /// The store's sealed snapshot text from the unsealed text js/redis.cjs
    /// assembles (see [`RemoteCore::finish_snapshot`]).
    #[wasm_bindgen(js_name = finishSnapshot)]
    pub fn finish_snapshot(&self, text: JsValue) -> JsResult<String> {
        let text = state_text_arg(&text, "snapshot")?;
        throw(self.core.finish_snapshot(&text, &self.secret))
    }

    /// Snapshot text's records and tasks, validated as `TokenStore.restore`
    /// validates them: `{ records: [...], tasks: [...] }`.
    #[wasm_bindgen(js_name = readSnapshot)]
    pub fn read_snapshot(&self, text: JsValue) -> JsResult<JsValue> {
        let text = state_text_arg(&text, "snapshot")?;
        let (records, tasks) = throw(self.core.read_snapshot(&text, &self.secret))?;
        let rows: js_sys::Array = records
            .iter()
            .map(|r| {
                object(&[
                    ("fingerprint", r.fingerprint.to_string().into()),
                    ("digest", hex(&r.digest).into()),
                    ("json", r.json.as_str().into()),
                    ("role", r.role.as_str().into()),
                    (
                        "issuedAt",
                        (r.issued_at.min(MAX_SAFE_INTEGER) as f64).into(),
                    ),
                    (
                        "expireAt",
                        (r.expire_at.min(MAX_SAFE_INTEGER) as f64).into(),
                    ),
                    ("usesLeft", opt_u32(r.uses_left)),
                    ("revoked", r.revoked.into()),
                    ("taskId", opt_text(r.task_id.as_deref())),
                    ("notAfter", opt_time(r.not_after)),
                    ("made", r.made.into()),
                ])
            })
            .collect();
        let out: JsValue = js_sys::Object::new().into();
        set(&out, "records", &rows);
        set(&out, "tasks", &to_js(&tasks));
        Ok(out)
    }
}

#[wasm_bindgen]
extern "C" {
    /// `factory(roleIndex, kind, scopes, agentLen, taskArg, expiresAt)`: builds what
    /// `authorize` returns in one crossing. The fingerprint's and the
    /// record digest's hex (64 characters each) and the agent id are in the
    /// outbox, back to back; `scopes` is undefined for `["*"]`; `taskArg`
    /// is the caller's task id argument, already checked.
    #[wasm_bindgen(extends = js_sys::Function)]
    #[derive(Clone)]
    type PresentedFactory;

    #[wasm_bindgen(method, js_name = call)]
    fn make(
        this: &PresentedFactory,
        context: &JsValue,
        role: u8,
        kind: u8,
        scopes: &JsValue,
        agent_len: i32,
        task_arg: &JsValue,
        expires_at: f64,
    ) -> JsValue;
}

thread_local! {
    static PRESENTED_FACTORY: core::cell::RefCell<Option<PresentedFactory>> =
        const { core::cell::RefCell::new(None) };
}

/// Called once by the package's entry module with the function that builds
/// `authorize`'s result (see js/fast_path.js).
#[wasm_bindgen(js_name = "__registerPresentedFactory")]
pub fn register_presented_factory(factory: JsValue) {
    if factory.is_function() {
        PRESENTED_FACTORY.with(|slot| *slot.borrow_mut() = Some(factory.unchecked_into()));
    }
}
