//! [`TokenStore`]: the engine's token table and task table, deciding calls.
//!
//! A decision runs the stateless steps in [`crate::verifier`] and then the
//! stateful ones against [`crate::state`]. A call that fails at any step,
//! including a later step of a compound call, spends and changes nothing:
//! every check runs before the first write.

use crate::changes::{Change, Changes};
use crate::clock::Clock;
use crate::entry::{Entry, Scopes};
use crate::error::CapTokenError;
use crate::gate::Gate;
use crate::record::CapTokenRecord;
use crate::role::{Role, Verb};
use crate::seal::Seal;
use crate::signer::{Signer, SigningFormat};
use crate::state::{MemoryState, TaskNode};
use crate::task::{TaskId, TaskInfo, MAX_TASK_ID_LEN};
use crate::token::{CapToken, Fingerprint, TokenFields, MAX_BEARER_LEN, MAX_SAFE_INTEGER};
use crate::verifier::Verifier;
use core::cell::Cell;

/// The longest agent id accepted at minting, in bytes.
pub const MAX_AGENT_ID_LEN: usize = 256;
/// The most scopes a minted token may carry.
pub const MAX_SCOPES: usize = 32;
/// The longest scope accepted at minting, in bytes.
pub const MAX_SCOPE_LEN: usize = 128;

/// How a store is set up. `Default` gives docs/protocol.md's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The signing format minted and accepted (default `v2`).
    pub format: SigningFormat,
    /// Child tasks may exist at depths below this (default 4: depths 0 to 3).
    pub max_spawn_depth: u32,
    /// Lifetime of minted tokens unless told otherwise (default 1800 s).
    pub worker_token_ttl_secs: u64,
    /// Which role may call which verb (default: the table of docs/protocol.md).
    pub gate: Gate,
    /// How much the store holds at most (default: [`Limits::default`]).
    pub limits: Limits,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            format: SigningFormat::V2,
            max_spawn_depth: 4,
            worker_token_ttl_secs: 1800,
            gate: Gate::default(),
            limits: Limits::default(),
        }
    }
}

/// What one token holder can make a store hold (docs/protocol.md, "Limits"). Past a
/// limit the call is [`CapTokenError::LimitExceeded`] and nothing changes.
///
/// Workers may fill the store-wide limits only up to nine tenths: the last
/// tenth (rounded up) is kept for the other roles, so however far Workers' subtrees grow,
/// an Operator can still start new root tasks and dispatch to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records in the store (`maxRecords`, default 2,000,000).
    pub max_records: u32,
    /// Tasks in the store (`maxTasks`, default 1,000,000).
    pub max_tasks: u32,
    /// Tasks in one root task's tree, the root included (`maxTasksPerTree`,
    /// default 10,000).
    pub max_tasks_per_tree: u32,
    /// Tasks started directly under one task (`maxChildrenPerTask`, default 1,000).
    pub max_children_per_task: u32,
    /// Tasks and tokens one Worker token may make with `start_task` and
    /// `dispatch_attempt` (`maxMadePerWorkerToken`, default 1,000).
    pub max_made_per_worker_token: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_records: 2_000_000,
            max_tasks: 1_000_000,
            max_tasks_per_tree: 10_000,
            max_children_per_task: 1_000,
            max_made_per_worker_token: 1_000,
        }
    }
}

impl Limits {
    /// Refuse when `count` has reached `max`: for a Worker, nine tenths of
    /// it (see the type's docs).
    fn check(
        count: usize,
        max: u32,
        name: &'static str,
        worker: bool,
    ) -> Result<(), CapTokenError> {
        let cap = if worker { max - max.div_ceil(10) } else { max };
        if count >= cap as usize {
            return Err(CapTokenError::LimitExceeded {
                limit: name,
                max: u64::from(max),
            });
        }
        Ok(())
    }
}

/// Options for minting; `Default` gives scopes `["*"]`, unlimited uses,
/// the store's token lifetime and no bound task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintOptions {
    /// The token's scopes (default `["*"]`).
    pub scopes: Option<Vec<String>>,
    /// Seconds until expiry (default: the store's `worker_token_ttl_secs`).
    pub ttl_secs: Option<u64>,
    /// The use budget (default `None`: unlimited).
    pub max_uses: Option<u32>,
    /// Bind the token to this task, tracked by the store or not.
    pub task_id: Option<TaskId>,
}

/// A freshly minted token: the bearer to hand out, the token, its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The bearer string (carries the nonce: hand it only to its holder).
    pub bearer: String,
    /// The token itself.
    pub token: CapToken,
    /// The token's public identity.
    pub fingerprint: Fingerprint,
}

/// What an allowed call may do: who the caller is, and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's public identity.
    pub fingerprint: Fingerprint,
    /// The token's agent.
    pub agent_id: String,
    /// The token's role.
    pub role: Role,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// The task the token is bound to.
    pub task_id: Option<TaskId>,
    /// Uses left: after this call's use for `verify`, as they stand for `check`.
    pub uses_left: Option<u32>,
}

/// The token table and task table of one orchestrator.
pub struct TokenStore {
    verifier: Verifier,
    state: MemoryState,
    config: StoreConfig,
    clock: Box<dyn Clock>,
    /// Reused buffer for decoding bearers, so a decision allocates nothing.
    scratch: Cell<Vec<u8>>,
    /// Derived from the secret once: seals snapshots and journal lines.
    seal: Seal,
    changes: Changes,
}

impl core::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenStore")
            .field("config", &self.config)
            .field("records", &self.state.len())
            .finish_non_exhaustive()
    }
}

/// A decision that passed steps 1 to 7 and has not spent anything yet.
#[derive(Debug, Clone, Copy)]
struct Allowed {
    fingerprint: Fingerprint,
    role: Role,
    /// The HMAC ran for this decision (the record was not yet known good).
    signature_ran: bool,
}

/// An allowed call, borrowed from the store: what [`Grant`] owns.
#[derive(Debug, Clone, Copy)]
pub struct GrantRef<'a> {
    fingerprint: Fingerprint,
    entry: &'a Entry,
}

impl<'a> GrantRef<'a> {
    /// The token's public identity.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
    /// The token's agent.
    pub fn agent_id(&self) -> &'a str {
        &self.entry.agent_id
    }
    /// The token's role.
    pub fn role(&self) -> Role {
        self.entry.role
    }
    /// The token's scopes, in order.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &'a str> {
        self.entry.scopes.iter()
    }
    /// Whether the scopes are exactly `["*"]`.
    pub fn is_unscoped(&self) -> bool {
        matches!(self.entry.scopes, crate::entry::Scopes::All)
    }
    /// The task the token is bound to.
    pub fn task_id(&self) -> Option<&'a str> {
        self.entry.task_id.as_deref()
    }
    /// Uses left: after this call's use for `verify`, as they stand for `check`.
    pub fn uses_left(&self) -> Option<u32> {
        self.entry.uses_left
    }
    /// The owned [`Grant`].
    pub fn to_grant(&self) -> Grant {
        Grant {
            fingerprint: self.fingerprint,
            agent_id: self.agent_id().to_owned(),
            role: self.role(),
            scopes: self.scopes().map(str::to_owned).collect(),
            task_id: self.task_id().map(str::to_owned),
            uses_left: self.uses_left(),
        }
    }
}

impl TokenStore {
    /// An empty store. The secret must be at least 32 bytes.
    pub fn new(
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
    ) -> Result<Self, CapTokenError> {
        let mut store = Self::with_state(secret, config, clock, MemoryState::default())?;
        // A fresh store's journal chains as after any empty snapshot.
        let head = store.seal.empty_head(store.config.format);
        store.changes.restart(head);
        Ok(store)
    }

    pub(crate) fn with_state(
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
        state: MemoryState,
    ) -> Result<Self, CapTokenError> {
        if config.max_spawn_depth == 0 {
            return Err(CapTokenError::invalid("maxSpawnDepth must be at least 1"));
        }
        if config.worker_token_ttl_secs == 0 || config.worker_token_ttl_secs > MAX_SAFE_INTEGER {
            return Err(CapTokenError::invalid(
                "workerTokenTtlSecs must be a positive safe integer",
            ));
        }
        let limits = config.limits;
        if [
            limits.max_records,
            limits.max_tasks,
            limits.max_tasks_per_tree,
            limits.max_children_per_task,
            limits.max_made_per_worker_token,
        ]
        .contains(&0)
        {
            return Err(CapTokenError::invalid("every limit must be at least 1"));
        }
        let signer = Signer::new(secret, config.format)?;
        let mut store = TokenStore {
            verifier: Verifier::new(signer, config.gate),
            state: MemoryState::default(),
            config,
            clock,
            scratch: Cell::new(Vec::new()),
            seal: Seal::new(secret),
            changes: Changes::default(),
        };
        store.replace_state(state)?;
        Ok(store)
    }

    /// Hold `state` (read back by a restore) instead of the current one,
    /// after checking it fits the store's limits and depth cap; its counts
    /// are made anew. On a fault nothing changes.
    pub(crate) fn replace_state(&mut self, state: MemoryState) -> Result<(), CapTokenError> {
        let (limits, max_spawn_depth) = (self.config.limits, self.config.max_spawn_depth);
        let mut state = state;
        if state.len() > limits.max_records as usize {
            return Err(CapTokenError::snapshot("more records than maxRecords"));
        }
        if state.task_count() > limits.max_tasks as usize {
            return Err(CapTokenError::snapshot("more tasks than maxTasks"));
        }
        if let Some((task_id, _)) = state
            .tasks()
            .find(|(_, node)| node.spawn_depth >= max_spawn_depth)
        {
            return Err(CapTokenError::snapshot(format!(
                "task {task_id:?} sits at or past maxSpawnDepth"
            )));
        }
        state.recount();
        self.state = state;
        Ok(())
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The stateless verifier (steps 1 to 4).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn state(&self) -> &MemoryState {
        &self.state
    }

    /// The seal key, for the snapshot and the journal.
    pub(crate) fn seal(&self) -> &Seal {
        &self.seal
    }

    /// The changes not yet journaled, for the snapshot and the journal.
    pub(crate) fn changes_mut(&mut self) -> &mut Changes {
        &mut self.changes
    }

    /// The seal key and the changes at once (the journal reads one while
    /// it drains the other).
    pub(crate) fn seal_and_changes(&mut self) -> (&Seal, &mut Changes) {
        (&self.seal, &mut self.changes)
    }

    /// The store's clock, in unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// How many token records the store holds.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether the store holds no token record.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    // ---- minting -------------------------------------------------------

    /// Attach an Operator: mint its session token (no bound task by default).
    pub fn attach_operator(
        &mut self,
        agent_id: &str,
        options: MintOptions,
    ) -> Result<Minted, CapTokenError> {
        self.mint(agent_id, Role::Operator, options)
    }

    /// Mint a token of any role, optionally bound to a task.
    pub fn mint(
        &mut self,
        agent_id: &str,
        role: Role,
        options: MintOptions,
    ) -> Result<Minted, CapTokenError> {
        self.check_records(false)?;
        let (minted, entry) = self.prepare_mint(agent_id, role, &options, None)?;
        self.insert_record(minted.fingerprint, entry, None);
        Ok(minted)
    }

    /// Build and sign a token and its entry without touching the state.
    /// `expiry_cap` is the latest expiry allowed (a minting Worker's own):
    /// a default lifetime is cut to it, an explicit one past it is refused.
    pub(crate) fn prepare_mint(
        &self,
        agent_id: &str,
        role: Role,
        options: &MintOptions,
        expiry_cap: Option<u64>,
    ) -> Result<(Minted, Entry), CapTokenError> {
        check_text("agentId", agent_id, MAX_AGENT_ID_LEN)?;
        let scopes = match &options.scopes {
            Some(scopes) => {
                if scopes.len() > MAX_SCOPES {
                    return Err(CapTokenError::invalid("too many scopes (at most 32)"));
                }
                for scope in scopes {
                    check_text("scope", scope, MAX_SCOPE_LEN)?;
                }
                scopes.clone()
            }
            None => vec!["*".to_owned()],
        };
        if !self
            .config
            .format
            .is_unambiguous(agent_id, scopes.iter().map(String::as_str))
        {
            return Err(CapTokenError::invalid(
                "in the mlua-swarm format an agent id or scope may not hold '|', nor a scope ','",
            ));
        }
        if let Some(task_id) = &options.task_id {
            check_task_id(task_id)?;
        }
        let ttl = options
            .ttl_secs
            .unwrap_or(self.config.worker_token_ttl_secs);
        let now = self.now().min(MAX_SAFE_INTEGER);
        let mut expire_at = now
            .checked_add(ttl)
            .filter(|at| *at <= MAX_SAFE_INTEGER)
            .ok_or_else(|| CapTokenError::invalid("ttlSecs is too large"))?;
        if let Some(cap) = expiry_cap.filter(|cap| expire_at > *cap) {
            if options.ttl_secs.is_some() {
                return Err(CapTokenError::invalid(
                    "ttlSecs would outlive the minting token",
                ));
            }
            expire_at = cap;
        }
        let mut token = CapToken {
            v: None,
            agent_id: agent_id.to_owned(),
            role,
            scopes,
            issued_at: now,
            expire_at,
            max_uses: options.max_uses,
            nonce: random_hex::<16>()?,
            sig_hex: String::new(),
        };
        self.verifier.signer().seal(&mut token);
        let bearer = token.to_bearer();
        if bearer.len() > MAX_BEARER_LEN {
            return Err(CapTokenError::invalid(
                "token would exceed the bearer size limit",
            ));
        }
        let fingerprint = token.fingerprint();
        let entry = Entry::new(&token, options.task_id.as_deref());
        Ok((
            Minted {
                bearer,
                token,
                fingerprint,
            },
            entry,
        ))
    }

    /// Record a token minted elsewhere with the same secret, optionally bound
    /// to a task. It must pass steps 1 to 3. Adopting a token already recorded
    /// changes nothing: a spent budget is never reset (a token that shares the
    /// recorded one's fingerprint but differs from it is a bad signature).
    pub fn adopt(
        &mut self,
        bearer: &str,
        task_id: Option<&str>,
    ) -> Result<Fingerprint, CapTokenError> {
        let verified = self.verifier.authenticate(bearer, self.now())?;
        if let Some(task_id) = task_id {
            check_task_id(task_id)?;
        }
        match self.state.entry(&verified.fingerprint) {
            Some(existing) if !existing.matches(&verified.token) => {
                return Err(CapTokenError::BadSignature);
            }
            Some(_) => {}
            None => self.check_records(false)?,
        }
        let entry = Entry::new(&verified.token, task_id);
        self.insert_record(verified.fingerprint, entry, None);
        Ok(verified.fingerprint)
    }

    // ---- deciding ------------------------------------------------------

    /// Steps 1 to 7 without spending.
    fn decide(
        &self,
        bearer: &str,
        verb: Verb,
        task_arg: Option<&str>,
    ) -> Result<Allowed, CapTokenError> {
        let mut buf = self.scratch.take();
        let decision = self.decide_in(&mut buf, bearer, verb, task_arg);
        self.scratch.set(buf);
        decision
    }

    fn decide_in(
        &self,
        buf: &mut Vec<u8>,
        bearer: &str,
        verb: Verb,
        task_arg: Option<&str>,
    ) -> Result<Allowed, CapTokenError> {
        let now = self.now();
        let token = self.verifier.decode(bearer, buf)?;
        let fingerprint = token.fingerprint();
        let entry = self.state.entry(&fingerprint);
        // A record matches only the exact token it was made from (the
        // fingerprint binds the nonce, the rest is compared field by field).
        let matches = entry.is_some_and(|entry| entry.matches(&token));
        // Step 2. A token identical to a record whose token already passed the
        // HMAC here would pass it again: the check is skipped, not the rule.
        let known_good = matches && entry.is_some_and(|entry| entry.sig_checked);
        if !known_good {
            self.verifier.check_signature(&token)?;
        }
        self.verifier.check_expiry(&token, fingerprint, now)?;
        let role = token.role();
        self.verifier.check_gate(role, verb)?;
        let entry = entry.ok_or(CapTokenError::TokenNotFound { fingerprint })?;
        // A well-signed token that differs from its record (a field-shifted
        // mlua-swarm token) is not the token that was recorded.
        if !matches {
            return Err(CapTokenError::BadSignature);
        }
        if role == Role::Worker && !self.owns(entry.task_id.as_deref(), verb, task_arg) {
            return Err(CapTokenError::TokenTaskMismatch {
                fingerprint,
                bound: entry.task_id.as_deref().map(str::to_owned),
                arg: task_arg.map(str::to_owned),
            });
        }
        entry
            .can_consume()
            .map_err(|e| CapTokenError::from_consume(e, fingerprint))?;
        Ok(Allowed {
            fingerprint,
            role,
            signature_ran: !known_good,
        })
    }

    /// Step 6 for a Worker bound to `bound`: the six task-state verbs must
    /// name that very task; start_task and dispatch_attempt may name it or a
    /// task below it (start_task naming none means its own task).
    fn owns(&self, bound: Option<&str>, verb: Verb, task_arg: Option<&str>) -> bool {
        if verb.is_ownership_gated() {
            return bound.is_some() && bound == task_arg;
        }
        if !verb.is_subtree_gated() {
            return true;
        }
        match (bound, task_arg) {
            (Some(bound), Some(named)) => named == bound || self.state.is_below(named, bound),
            // Its own task (refused later when it is not tracked), or no task
            // at all: start_task then finds no parent.
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// Spend one use of an allowed decision.
    fn spend(&mut self, allowed: Allowed) -> Result<(), CapTokenError> {
        self.spend_uses(allowed, 1)
    }

    /// Spend `uses` uses of an allowed decision at once.
    fn spend_uses(&mut self, allowed: Allowed, uses: u32) -> Result<(), CapTokenError> {
        let fingerprint = allowed.fingerprint;
        match self
            .state
            .consume(&fingerprint, uses, allowed.signature_ran)
        {
            Some(Ok(left)) => {
                // An unlimited token's use changes no state: nothing to journal.
                if left.is_some() {
                    self.changes.push(Change::Consume { fingerprint, uses });
                }
                Ok(())
            }
            Some(Err(e)) => Err(CapTokenError::from_consume(e, fingerprint)),
            None => Err(CapTokenError::TokenNotFound { fingerprint }),
        }
    }

    fn grant_ref(&self, fingerprint: Fingerprint) -> Result<GrantRef<'_>, CapTokenError> {
        let entry = self
            .state
            .entry(&fingerprint)
            .ok_or(CapTokenError::TokenNotFound { fingerprint })?;
        Ok(GrantRef { fingerprint, entry })
    }

    /// Decide a call and, when allowed, spend one use. `task_id` is the task
    /// the call is about (required for a Worker's task-state verbs).
    pub fn verify(
        &mut self,
        bearer: &str,
        verb: Verb,
        task_id: Option<&str>,
    ) -> Result<Grant, CapTokenError> {
        self.verify_ref(bearer, verb, task_id)
            .map(|grant| grant.to_grant())
    }

    /// [`verify`](Self::verify), returning the grant borrowed from the store.
    pub fn verify_ref(
        &mut self,
        bearer: &str,
        verb: Verb,
        task_id: Option<&str>,
    ) -> Result<GrantRef<'_>, CapTokenError> {
        let allowed = self.decide(bearer, verb, task_id)?;
        self.spend(allowed)?;
        self.grant_ref(allowed.fingerprint)
    }

    /// Decide a call exactly as [`verify`](Self::verify) would, spending nothing.
    pub fn check(
        &self,
        bearer: &str,
        verb: Verb,
        task_id: Option<&str>,
    ) -> Result<Grant, CapTokenError> {
        self.check_ref(bearer, verb, task_id)
            .map(|grant| grant.to_grant())
    }

    /// [`check`](Self::check), returning the grant borrowed from the store.
    pub fn check_ref(
        &self,
        bearer: &str,
        verb: Verb,
        task_id: Option<&str>,
    ) -> Result<GrantRef<'_>, CapTokenError> {
        let allowed = self.decide(bearer, verb, task_id)?;
        self.grant_ref(allowed.fingerprint)
    }

    // ---- tasks ---------------------------------------------------------

    /// `start_task` with the task id chosen by the caller or made by the
    /// store: see [`start_task_under`](Self::start_task_under).
    pub fn start_task(
        &mut self,
        bearer: &str,
        task_id: Option<&str>,
    ) -> Result<TaskInfo, CapTokenError> {
        self.start_task_under(bearer, None, task_id)
    }

    /// `start_task`: a task under `parent_id`, or a root task at depth 0.
    ///
    /// A Worker starts a child of its bound task when it names no parent, or
    /// of a task below its bound task; the child's id is always made by the
    /// store (a Worker cannot take ids outside its own subtree), and a
    /// Worker bound to a task the store does not track cannot spawn: its
    /// depth is unknown. Other roles start a root task, or a child of any
    /// tracked task. A child sits at its parent's depth + 1, refused when
    /// that reaches `max_spawn_depth`.
    pub fn start_task_under(
        &mut self,
        bearer: &str,
        parent_id: Option<&str>,
        task_id: Option<&str>,
    ) -> Result<TaskInfo, CapTokenError> {
        let allowed = self.decide(bearer, Verb::StartTask, parent_id)?;
        let worker = allowed.role == Role::Worker;
        let entry = self
            .state
            .entry(&allowed.fingerprint)
            .ok_or(CapTokenError::TokenNotFound {
                fingerprint: allowed.fingerprint,
            })?;
        let parent_id = match parent_id {
            Some(parent) => Some(parent.to_owned()),
            None if worker => Some(
                entry
                    .task_id
                    .as_deref()
                    .map(str::to_owned)
                    .ok_or(CapTokenError::TaskNotFound { task_id: None })?,
            ),
            None => None,
        };
        let made = entry.made;
        let spawn_depth = match parent_id.as_deref() {
            Some(parent) => {
                let node = self
                    .state
                    .task(parent)
                    .ok_or_else(|| CapTokenError::TaskNotFound {
                        task_id: Some(parent.to_owned()),
                    })?;
                let depth = node.spawn_depth.saturating_add(1);
                if depth >= self.config.max_spawn_depth {
                    return Err(CapTokenError::SpawnDepthExceeded {
                        current: depth,
                        max: self.config.max_spawn_depth,
                    });
                }
                depth
            }
            None => 0,
        };
        let task_id = match task_id {
            Some(_) if worker => {
                return Err(CapTokenError::invalid(
                    "a Worker's child tasks get ids made by the store: leave taskId out",
                ))
            }
            Some(id) => {
                check_task_id(id)?;
                if self.config.format == SigningFormat::MluaSwarm && id.contains('|') {
                    return Err(CapTokenError::invalid(
                        "in the mlua-swarm format a task id may not hold '|' (it names the agent worker-of-<task id>)",
                    ));
                }
                if self.state.task(id).is_some() {
                    return Err(CapTokenError::invalid("a task with this id already exists"));
                }
                id.to_owned()
            }
            None => self.new_task_id()?,
        };
        self.check_task_limits(parent_id.as_deref(), worker, made)?;
        self.spend(allowed)?;
        if worker {
            self.state.note_made(&allowed.fingerprint);
        }
        let node = TaskNode::new(parent_id.as_deref(), spawn_depth);
        let info = node.info(&task_id);
        self.state.insert_task(&task_id, node);
        if self.changes.is_on() {
            let by = worker.then_some(allowed.fingerprint);
            self.changes.push(Change::Task {
                task: info.clone(),
                by,
            });
        }
        Ok(info)
    }

    /// The limits a new task under `parent_id` must fit.
    fn check_task_limits(
        &self,
        parent_id: Option<&str>,
        worker: bool,
        made: u32,
    ) -> Result<(), CapTokenError> {
        let limits = self.config.limits;
        if worker {
            self.check_made(made)?;
        }
        if let Some(parent) = parent_id {
            let children = self.state.task(parent).map_or(0, |node| node.children);
            Limits::check(
                children as usize,
                limits.max_children_per_task,
                "maxChildrenPerTask",
                false,
            )?;
            let tree = self
                .state
                .root_of(parent)
                .and_then(|root| self.state.task(root))
                .map_or(0, |root| root.tree_size);
            Limits::check(
                tree as usize,
                limits.max_tasks_per_tree,
                "maxTasksPerTree",
                false,
            )?;
        }
        Limits::check(
            self.state.task_count(),
            limits.max_tasks,
            "maxTasks",
            worker,
        )
    }

    /// Whether a Worker token that made `made` tasks and tokens may make one more.
    fn check_made(&self, made: u32) -> Result<(), CapTokenError> {
        Limits::check(
            made as usize,
            self.config.limits.max_made_per_worker_token,
            "maxMadePerWorkerToken",
            false,
        )
    }

    /// Whether one more record fits (`worker`: within the Workers' share).
    fn check_records(&self, worker: bool) -> Result<(), CapTokenError> {
        Limits::check(
            self.state.len(),
            self.config.limits.max_records,
            "maxRecords",
            worker,
        )
    }

    /// `dispatch_attempt` on a tracked task: mint a Worker token bound to it
    /// (agent `worker-of-<task id>`). Options as for [`mint`](Self::mint);
    /// their `task_id`, if given, must name the same task.
    ///
    /// A Worker dispatches only to its own task or a task below it, and
    /// what it mints is never wider than itself: scopes within its own,
    /// expiry no later than its own, and, when its uses are limited, a
    /// `max_uses` it names and pays for: its uses left drop by that many on
    /// top of this call's own use (budgets are transferred, never copied).
    pub fn dispatch_attempt(
        &mut self,
        bearer: &str,
        task_id: &str,
        options: MintOptions,
    ) -> Result<Minted, CapTokenError> {
        let allowed = self.decide(bearer, Verb::DispatchAttempt, Some(task_id))?;
        if options.task_id.as_deref().is_some_and(|id| id != task_id) {
            return Err(CapTokenError::invalid(
                "options.taskId must match the dispatched task",
            ));
        }
        if self.state.task(task_id).is_none() {
            return Err(CapTokenError::TaskNotFound {
                task_id: Some(task_id.to_owned()),
            });
        }
        let mut options = MintOptions {
            task_id: Some(task_id.to_owned()),
            ..options
        };
        let worker = allowed.role == Role::Worker;
        let (handed, expiry_cap) = if worker {
            let caller =
                self.state
                    .entry(&allowed.fingerprint)
                    .ok_or(CapTokenError::TokenNotFound {
                        fingerprint: allowed.fingerprint,
                    })?;
            self.check_made(caller.made)?;
            options.scopes = Some(narrower_scopes(options.scopes.take(), &caller.scopes)?);
            let handed =
                transferred_budget(allowed.fingerprint, caller.uses_left, options.max_uses)?;
            (handed, Some(caller.expire_at))
        } else {
            (0, None)
        };
        self.check_records(worker)?;
        let (minted, mut entry) = self.prepare_mint(
            &format!("worker-of-{task_id}"),
            Role::Worker,
            &options,
            expiry_cap,
        )?;
        // Neither the token nor any remint of it outlives the minting Worker.
        if let Some(cap) = expiry_cap {
            entry.not_after = cap;
        }
        self.spend_uses(allowed, handed.saturating_add(1))?;
        if worker {
            self.state.note_made(&allowed.fingerprint);
        }
        self.insert_record(
            minted.fingerprint,
            entry,
            worker.then_some(allowed.fingerprint),
        );
        Ok(minted)
    }

    fn new_task_id(&self) -> Result<TaskId, CapTokenError> {
        loop {
            let id = format!("task-{}", random_hex::<6>()?);
            if self.state.task(&id).is_none() {
                return Ok(id);
            }
        }
    }

    // ---- lifecycle -----------------------------------------------------

    /// Revoke one token; true when it was live and is now revoked.
    pub fn revoke(&mut self, fingerprint: &Fingerprint) -> bool {
        let revoked = self.state.revoke(fingerprint);
        if revoked {
            self.changes.push(Change::Revoke {
                fingerprint: *fingerprint,
            });
        }
        revoked
    }

    /// Revoke every token bound to `task_id` or to any task below it; returns
    /// how many were newly revoked.
    pub fn revoke_task(&mut self, task_id: &str) -> usize {
        let revoked = self.state.revoke_task_tree(task_id);
        for fingerprint in &revoked {
            self.changes.push(Change::Revoke {
                fingerprint: *fingerprint,
            });
        }
        revoked.len()
    }

    /// Remint a Worker token whose delivery ran late. The presented token must
    /// carry a good signature and a live record, and must not have expired
    /// more than one lifetime (`expire_at - issued_at`) ago. The new token has
    /// the same agent, scopes and bound task, `max_uses` = the uses left, and
    /// the same lifetime counted from now, but never past the expiry of the
    /// Worker that minted the token; the old record is revoked, so the
    /// bearer's power never widens.
    pub fn remint(&mut self, bearer: &str) -> Result<Minted, CapTokenError> {
        let verified = self.verifier.authenticate_ignoring_expiry(bearer)?;
        let fingerprint = verified.fingerprint;
        if verified.token.role != Role::Worker {
            return Err(CapTokenError::invalid("only worker tokens can be reminted"));
        }
        let entry = self
            .state
            .entry(&fingerprint)
            .ok_or(CapTokenError::TokenNotFound { fingerprint })?;
        if !entry.matches(&verified.token) {
            return Err(CapTokenError::BadSignature);
        }
        entry
            .can_consume()
            .map_err(|e| CapTokenError::from_consume(e, fingerprint))?;
        // A late delivery, not a resurrection: at most one lifetime late,
        // and the new token lives exactly as long as the old one did.
        let lifetime = verified
            .token
            .expire_at
            .saturating_sub(verified.token.issued_at);
        if self.now().saturating_sub(verified.token.expire_at) > lifetime {
            return Err(CapTokenError::TokenExpired { fingerprint });
        }
        // Nor does it outlive the Worker that minted the token, nor start
        // its count of what it made (maxMadePerWorkerToken) again.
        let (not_after, made) = (entry.not_after, entry.made);
        let left_before_cap = not_after.saturating_sub(self.now());
        if left_before_cap == 0 {
            return Err(CapTokenError::TokenExpired { fingerprint });
        }
        let options = MintOptions {
            scopes: Some(verified.token.scopes.clone()),
            ttl_secs: Some(lifetime.min(left_before_cap)),
            max_uses: entry.uses_left,
            task_id: entry.task_id.as_deref().map(str::to_owned),
        };
        self.check_records(false)?;
        let (minted, mut entry) =
            self.prepare_mint(&verified.token.agent_id, Role::Worker, &options, None)?;
        entry.not_after = not_after;
        entry.made = made;
        self.revoke(&fingerprint);
        self.insert_record(minted.fingerprint, entry, None);
        Ok(minted)
    }

    /// Remove the records of expired tokens (Operator tokens stay); returns how many.
    pub fn purge_expired(&mut self) -> usize {
        let now = self.now();
        let purged = self.state.purge_expired(now);
        if purged > 0 {
            self.changes.push(Change::Purge { now });
        }
        purged
    }

    /// Record a new token; `by` is the Worker token that made it, if any.
    fn insert_record(&mut self, fingerprint: Fingerprint, entry: Entry, by: Option<Fingerprint>) {
        if self.state.insert(fingerprint, entry) && self.changes.is_on() {
            if let Some(entry) = self.state.entry(&fingerprint) {
                let entry = entry.clone();
                self.changes.push(Change::Record {
                    fingerprint,
                    entry,
                    by,
                });
            }
        }
    }

    // ---- journal -------------------------------------------------------

    /// Start or stop journaling. While on, every state change is kept until
    /// `take_journal` (in [`crate::journal`]) writes it out; stopping drops
    /// the changes not yet taken.
    pub fn set_journaling(&mut self, on: bool) {
        self.changes.set_on(on);
    }

    // ---- reading -------------------------------------------------------

    /// The record of one token (its token's nonce is empty).
    pub fn record(&self, fingerprint: &Fingerprint) -> Option<CapTokenRecord> {
        self.state.entry(fingerprint).map(|entry| entry.to_record())
    }

    /// The expiry of the Worker that minted this token, which no remint of
    /// it outlives (`None`: no record, or not minted by a Worker).
    pub(crate) fn not_after(&self, fingerprint: &Fingerprint) -> Option<u64> {
        self.state
            .entry(fingerprint)
            .map(|entry| entry.not_after)
            .filter(|at| *at != crate::entry::NO_CAP)
    }

    /// The tasks and tokens a Worker made with this token (0: no record).
    pub(crate) fn made(&self, fingerprint: &Fingerprint) -> u32 {
        self.state.entry(fingerprint).map_or(0, |entry| entry.made)
    }

    /// One tracked task.
    pub fn task(&self, task_id: &str) -> Option<TaskInfo> {
        self.state.task(task_id).map(|node| node.info(task_id))
    }

    /// Every record with its fingerprint, ordered by fingerprint.
    pub fn records(&self) -> Vec<(Fingerprint, CapTokenRecord)> {
        let entries: Vec<_> = self.state.entries().collect();
        let keys = entries
            .iter()
            .map(|(fingerprint, _)| (0, fingerprint.as_bytes().as_slice()));
        ascending(keys)
            .filter_map(|at| entries.get(at))
            .map(|(fingerprint, entry)| (**fingerprint, entry.to_record()))
            .collect()
    }

    /// Every tracked task, ordered by depth, then id.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let tasks: Vec<_> = self.state.tasks().collect();
        let keys = tasks
            .iter()
            .map(|(task_id, node)| (node.spawn_depth, task_id.as_bytes()));
        ascending(keys)
            .filter_map(|at| tasks.get(at))
            .map(|(task_id, node)| node.info(task_id))
            .collect()
    }
}

/// The positions of `keys` in ascending order of the keys, which are unique
/// (fingerprints, task ids). Every ordered listing sorts through here, so
/// the module holds one instance of the sort (ordering the small keys rather
/// than the listed items also moves less).
fn ascending<'a>(keys: impl Iterator<Item = (u32, &'a [u8])>) -> impl Iterator<Item = usize> + 'a {
    let mut keys: Vec<(u32, &[u8], usize)> = keys
        .enumerate()
        .map(|(at, (rank, key))| (rank, key, at))
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|(_, _, at)| at)
}

/// The scopes a Worker's dispatch hands on: the ones asked for when each is
/// among the caller's own (anything, for a caller with `["*"]`), the caller's
/// own when none are asked for.
pub(crate) fn narrower_scopes(
    asked: Option<Vec<String>>,
    own: &Scopes,
) -> Result<Vec<String>, CapTokenError> {
    match (asked, own) {
        (None, own) => Ok(own.to_list()),
        (Some(asked), Scopes::All) => Ok(asked),
        (Some(asked), Scopes::List(own)) => {
            // Exactly `["*"]` is unrestricted; a list that merely holds "*"
            // among others is not, so it cannot hand out `["*"]`.
            let unrestricted = matches!(asked.as_slice(), [only] if only == "*");
            let within = asked
                .iter()
                .all(|scope| own.iter().any(|mine| **mine == **scope));
            if within && !unrestricted {
                Ok(asked)
            } else {
                Err(CapTokenError::invalid(
                    "scopes must be within the minting token's own scopes",
                ))
            }
        }
    }
}

/// The uses a Worker with `uses_left` hands to the token it mints, on top of
/// this call's own use: nothing from an unlimited Worker; from a limited one,
/// exactly the `max_uses` it names, which must fit what is left after this
/// call's own use.
fn transferred_budget(
    fingerprint: Fingerprint,
    uses_left: Option<u32>,
    asked: Option<u32>,
) -> Result<u32, CapTokenError> {
    let Some(left) = uses_left else {
        return Ok(0);
    };
    let spare = left.saturating_sub(1);
    if spare == 0 {
        return Err(CapTokenError::TokenUsesExhausted { fingerprint });
    }
    match asked {
        None => Err(CapTokenError::invalid(
            "a Worker with limited uses must name maxUses (at least 1) for the token it mints",
        )),
        Some(0) => Err(CapTokenError::invalid("maxUses must be at least 1")),
        Some(n) if n > spare => Err(CapTokenError::invalid(format!(
            "maxUses {n} is more than the {spare} uses the minting token has left to give"
        ))),
        Some(n) => Ok(n),
    }
}

fn no_randomness() -> CapTokenError {
    CapTokenError::invalid("the system random number generator is unavailable")
}

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CapTokenError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| no_randomness())?;
    Ok(bytes)
}

/// `N` bytes from the operating system's CSPRNG, in lowercase hex.
fn random_hex<const N: usize>() -> Result<String, CapTokenError> {
    Ok(base16ct::lower::encode_string(&random_bytes::<N>()?))
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), CapTokenError> {
    if text.is_empty() {
        return Err(CapTokenError::invalid(format!("{what} must not be empty")));
    }
    if text.len() > max {
        return Err(CapTokenError::invalid(format!(
            "{what} is longer than {max} bytes"
        )));
    }
    Ok(())
}

pub(crate) fn check_task_id(task_id: &str) -> Result<(), CapTokenError> {
    check_text("taskId", task_id, MAX_TASK_ID_LEN)
}
