//! Random sequences of store operations on a `TokenStore` with a `FixedClock`,
//! checked against the store's invariants after every step:
//!
//! * the uses left of a fingerprint never grow (`None` stays `None`);
//! * a revoked fingerprint stays revoked and is never accepted again;
//! * a token spends at most `max_uses` uses (a one-time token once; a limited
//!   Worker's dispatch spends one plus the budget it hands on), and a remint
//!   chain at most its first token's `max_uses` in all;
//! * a Worker-minted token is never wider than its minter (scopes within its
//!   scopes, expiry no later, limited when the minter is), and a limited
//!   Worker and everything minted or reminted below it make at most its
//!   budget of calls in all;
//! * a Worker never chooses a task id, and never names a task outside its
//!   own subtree in start_task or dispatch_attempt;
//! * no task sits at or past `max_spawn_depth`, the store never holds more
//!   records or tasks than its (small) limits, and every `ERR_LIMIT_EXCEEDED`
//!   names one of the configured limits with its value;
//! * a record that is gone (purged) never comes back;
//! * `check` never changes the state (snapshot text before and after), and
//!   decides as `verify` then does;
//! * a failed call (verify, start_task, dispatch_attempt, remint, adopt, mint)
//!   changes no state;
//! * a tampered bearer is refused as malformed or badly signed;
//! * `restore(snapshot())` gives the same records, tasks and decisions;
//! * no snapshot and no error message contains a nonce.
#![no_main]

use arbitrary::Arbitrary;
use captoken::store::Limits;
use captoken::{
    CapToken, CapTokenError, ErrorCode, Fingerprint, FixedClock, Grant, MintOptions, Minted, Role,
    StoreConfig, TokenStore, Verb,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

const SECRET: [u8; 32] = [7u8; 32];
const T0: u64 = 1_764_150_000;
const FIXED_TASKS: [&str; 4] = ["t0", "t1", "t2", "ext"];
const MAX_OPS: usize = 96;
/// The scopes a dispatch may ask for: a mask over these (0 asks for none).
const SCOPE_NAMES: [&str; 3] = ["read", "write", "*"];

#[derive(Arbitrary, Debug)]
enum Op {
    Mint {
        role: u8,
        max_uses: Option<u8>,
        task: Option<u8>,
        ttl: u16,
    },
    Verify {
        token: u8,
        verb: u8,
        task: Option<u8>,
    },
    Check {
        token: u8,
        verb: u8,
        task: Option<u8>,
    },
    VerifyTampered {
        token: u8,
        verb: u8,
        pos: u16,
        bit: u8,
    },
    Revoke {
        token: u8,
    },
    RevokeTask {
        task: u8,
    },
    /// `start_task_under(parent, task)`.
    StartTask {
        token: u8,
        parent: Option<u8>,
        task: Option<u8>,
    },
    /// `task` `None` is the caller's own bound task (a tracked one if any).
    Dispatch {
        token: u8,
        task: Option<u8>,
        max_uses: Option<u8>,
        scopes: Option<u8>,
        ttl: Option<u16>,
    },
    Remint {
        token: u8,
    },
    Adopt {
        token: u8,
        task: Option<u8>,
    },
    Purge,
    SnapshotRestore,
    Advance {
        secs: u16,
    },
}

struct Tok {
    bearer: String,
    nonce: String,
    fp: Fingerprint,
    max_uses: Option<u32>,
    lineage: usize,
    /// The Worker token whose budget this one came out of: the Worker that
    /// dispatched it, or the token it was reminted from.
    minter: Option<usize>,
    /// Calls allowed with this very token.
    calls: u32,
}

struct Lineage {
    budget: Option<u32>,
    accepted: u32,
}

#[derive(Clone, Copy)]
struct Seen {
    uses_left: Option<u32>,
    revoked: bool,
    gone: bool,
    accepted: u32,
}

struct World {
    store: TokenStore,
    clock: Arc<FixedClock>,
    tokens: Vec<Tok>,
    lineages: Vec<Lineage>,
    seen: HashMap<Fingerprint, Seen>,
    tasks: Vec<String>,
}

/// Small limits and a shallow tree, so that sequences reach them.
fn config() -> StoreConfig {
    StoreConfig {
        max_spawn_depth: 3,
        limits: Limits {
            max_records: 48,
            max_tasks: 24,
            max_tasks_per_tree: 12,
            max_children_per_task: 4,
            max_made_per_worker_token: 6,
        },
        ..StoreConfig::default()
    }
}

/// The limit an `ERR_LIMIT_EXCEEDED` names must be one of the store's, with its value.
fn known_limit(error: &CapTokenError) {
    if let CapTokenError::LimitExceeded { limit, max } = error {
        let limits = config().limits;
        let expected = match *limit {
            "maxRecords" => limits.max_records,
            "maxTasks" => limits.max_tasks,
            "maxTasksPerTree" => limits.max_tasks_per_tree,
            "maxChildrenPerTask" => limits.max_children_per_task,
            "maxMadePerWorkerToken" => limits.max_made_per_worker_token,
            other => panic!("unknown limit {other}"),
        };
        assert_eq!(*max, u64::from(expected), "limit {limit}");
    }
}

fn scope_list(mask: Option<u8>) -> Option<Vec<String>> {
    mask.map(|mask| {
        SCOPE_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect()
    })
}

/// Snapshot text without its seal (bytes 48..112): each seal has a fresh
/// nonce, so equal states give equal text only without it.
fn without_seal(text: &str) -> String {
    let mut text = text.to_owned();
    text.replace_range(48..112, &"0".repeat(64));
    text
}

fn normalised(snapshot: &str) -> Value {
    let mut value: Value = serde_json::from_str(snapshot).expect("a snapshot is JSON");
    // The MAC covers the records in their written order.
    if let Some(object) = value.as_object_mut() {
        object.remove("mac");
    }
    if let Some(records) = value.get_mut("records").and_then(Value::as_array_mut) {
        records.sort_by(|a, b| a["fingerprint"].as_str().cmp(&b["fingerprint"].as_str()));
    }
    value
}

fn small_uses(n: Option<u8>) -> Option<u32> {
    n.map(|n| u32::from(n % 4))
}

fn verb(n: u8) -> Verb {
    Verb::ALL[usize::from(n) % Verb::ALL.len()]
}

/// The same decision: equal grants, or errors of the same code.
fn same_decision(a: &Result<Grant, CapTokenError>, b: &Result<Grant, CapTokenError>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.code() == b.code(),
        _ => false,
    }
}

impl World {
    fn task(&self, n: u8) -> String {
        let all = FIXED_TASKS.len() + self.tasks.len();
        let i = usize::from(n) % all;
        match FIXED_TASKS.get(i) {
            Some(t) => (*t).to_owned(),
            None => self.tasks[i - FIXED_TASKS.len()].clone(),
        }
    }

    fn opt_task(&self, n: Option<u8>) -> Option<String> {
        n.map(|n| self.task(n))
    }

    fn token(&self, n: u8) -> Option<usize> {
        if self.tokens.is_empty() {
            None
        } else {
            Some(usize::from(n) % self.tokens.len())
        }
    }

    fn add(&mut self, minted: &Minted, lineage: Option<usize>, minter: Option<usize>) {
        let lineage = lineage.unwrap_or_else(|| {
            self.lineages.push(Lineage {
                budget: minted.token.max_uses,
                accepted: 0,
            });
            self.lineages.len() - 1
        });
        assert!(
            !self.seen.contains_key(&minted.fingerprint),
            "a fingerprint was minted twice"
        );
        self.seen.insert(
            minted.fingerprint,
            Seen {
                uses_left: minted.token.max_uses,
                revoked: false,
                gone: false,
                accepted: 0,
            },
        );
        self.tokens.push(Tok {
            bearer: minted.bearer.clone(),
            nonce: minted.token.nonce.clone(),
            fp: minted.fingerprint,
            max_uses: minted.token.max_uses,
            lineage,
            minter,
            calls: 0,
        });
    }

    /// Whether `task` is `bound` or a task below it, by the store's task table.
    fn in_subtree(&self, task: &str, bound: &str) -> bool {
        let mut at = Some(task.to_owned());
        while let Some(id) = at {
            if id == bound {
                return true;
            }
            at = self.store.task(&id).and_then(|t| t.parent_id);
        }
        false
    }

    /// A call by token `i` was allowed and spent one use.
    fn accepted(&mut self, i: usize) {
        self.spent(i, 1);
    }

    /// A call by token `i` was allowed and spent `uses` uses (one, plus the
    /// budget a limited Worker hands on when it dispatches).
    fn spent(&mut self, i: usize, uses: u32) {
        self.tokens[i].calls += 1;
        let tok = &self.tokens[i];
        let seen = self.seen.get_mut(&tok.fp).expect("a known token");
        assert!(!seen.revoked, "a revoked token was accepted");
        assert!(!seen.gone, "a purged token was accepted");
        seen.accepted += uses;
        if let Some(max) = tok.max_uses {
            assert!(
                seen.accepted <= max,
                "a token spent more than max_uses uses"
            );
        }
        let lineage = &mut self.lineages[tok.lineage];
        lineage.accepted += uses;
        if let Some(budget) = lineage.budget {
            assert!(
                lineage.accepted <= budget,
                "a remint chain outspent its first budget"
            );
        }
    }

    fn no_nonce_in(&self, text: &str) {
        for tok in &self.tokens {
            assert!(!text.contains(&tok.nonce), "a nonce leaked: {text}");
        }
    }

    fn refused(&self, error: &CapTokenError) {
        self.no_nonce_in(&format!("{error} {error:?}"));
    }

    /// A limited Worker and everything minted or reminted out of its budget
    /// make at most its budget of calls in all; no task sits at or past the
    /// spawn-depth cap; the store stays within its limits.
    fn check_trees(&self) {
        let mut calls: Vec<u32> = self.tokens.iter().map(|t| t.calls).collect();
        // A minter always comes before what it mints.
        for i in (0..self.tokens.len()).rev() {
            if let Some(minter) = self.tokens[i].minter {
                calls[minter] += calls[i];
            }
        }
        for (i, tok) in self.tokens.iter().enumerate() {
            if let Some(budget) = tok.max_uses {
                assert!(
                    calls[i] <= budget,
                    "a Worker's subtree made {} calls on a budget of {budget}",
                    calls[i]
                );
            }
        }
        let config = config();
        let tasks = self.store.tasks();
        assert!(tasks.iter().all(|t| t.spawn_depth < config.max_spawn_depth));
        assert!(tasks.len() <= config.limits.max_tasks as usize);
        assert!(self.store.len() <= config.limits.max_records as usize);
    }

    /// The invariants that hold between any two steps.
    fn check_records(&mut self, purged: bool) {
        for tok in &self.tokens {
            let seen = self.seen.get_mut(&tok.fp).expect("a known token");
            match self.store.record(&tok.fp) {
                None => {
                    assert!(seen.gone || purged, "a record vanished outside a purge");
                    seen.gone = true;
                }
                Some(record) => {
                    assert!(!seen.gone, "a purged record came back");
                    assert!(
                        record.token.nonce.is_empty(),
                        "a record hands back its nonce"
                    );
                    match (seen.uses_left, record.uses_left) {
                        (None, None) => {}
                        (Some(before), Some(now)) => assert!(now <= before, "uses left grew"),
                        (before, now) => panic!("uses left went from {before:?} to {now:?}"),
                    }
                    assert!(
                        !seen.revoked || record.revoked,
                        "a revoked record came back to life"
                    );
                    seen.uses_left = record.uses_left;
                    seen.revoked = record.revoked;
                }
            }
        }
    }

    fn step(&mut self, op: &Op) {
        let before = self.store.snapshot().expect("a snapshot");
        let mut changed = true;
        let mut purged = false;
        match *op {
            Op::Mint {
                role,
                max_uses,
                task,
                ttl,
            } => {
                let role = Role::ALL[usize::from(role) % Role::ALL.len()];
                let options = MintOptions {
                    max_uses: small_uses(max_uses),
                    task_id: self.opt_task(task),
                    ttl_secs: Some(u64::from(ttl)),
                    scopes: None,
                };
                match self.store.mint("agent-7", role, options) {
                    Ok(minted) => self.add(&minted, None, None),
                    Err(error) => {
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Verify {
                token,
                verb: v,
                task,
            } => {
                let Some(i) = self.token(token) else { return };
                let task = self.opt_task(task);
                let bearer = self.tokens[i].bearer.clone();
                let checked = self.store.check(&bearer, verb(v), task.as_deref());
                assert_eq!(
                    without_seal(&self.store.snapshot().expect("a snapshot")),
                    without_seal(&before),
                    "check changed the state"
                );
                let verified = self.store.verify(&bearer, verb(v), task.as_deref());
                match (&checked, &verified) {
                    (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
                    _ => panic!("check {checked:?} but verify {verified:?}"),
                }
                if let (Err(a), Err(b)) = (&checked, &verified) {
                    assert_eq!(a.code(), b.code(), "check and verify disagree");
                }
                match verified {
                    Ok(grant) => {
                        self.accepted(i);
                        let left = self.seen[&self.tokens[i].fp].uses_left;
                        assert_eq!(
                            grant.uses_left,
                            left.map(|n| n - 1),
                            "verify spent other than one use"
                        );
                    }
                    Err(error) => {
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Check {
                token,
                verb: v,
                task,
            } => {
                let Some(i) = self.token(token) else { return };
                let task = self.opt_task(task);
                if let Err(error) =
                    self.store
                        .check(&self.tokens[i].bearer, verb(v), task.as_deref())
                {
                    self.refused(&error);
                }
                changed = false;
            }
            Op::VerifyTampered {
                token,
                verb: v,
                pos,
                bit,
            } => {
                let Some(i) = self.token(token) else { return };
                let original = self.tokens[i].bearer.clone();
                let mut bytes = original.clone().into_bytes();
                let pos = usize::from(pos) % bytes.len();
                bytes[pos] ^= 1 << (bit % 8);
                let tampered = String::from_utf8_lossy(&bytes).into_owned();
                let same =
                    CapToken::from_bearer(&tampered).ok() == CapToken::from_bearer(&original).ok();
                if !same {
                    let error = self
                        .store
                        .verify(&tampered, verb(v), None)
                        .expect_err("a tampered bearer was accepted");
                    assert!(
                        matches!(
                            error.code(),
                            ErrorCode::MalformedToken | ErrorCode::BadSignature
                        ),
                        "a tampered bearer was refused as {:?}",
                        error.code()
                    );
                    self.refused(&error);
                    changed = false;
                }
            }
            Op::Revoke { token } => {
                let Some(i) = self.token(token) else { return };
                let fp = self.tokens[i].fp;
                let live = self.store.record(&fp).is_some_and(|r| !r.revoked);
                assert_eq!(self.store.revoke(&fp), live, "revoke misreported");
                changed = live;
                if live {
                    assert!(self.store.record(&fp).is_some_and(|r| r.revoked));
                }
            }
            Op::RevokeTask { task } => {
                let task = self.task(task);
                changed = self.store.revoke_task(&task) > 0;
            }
            Op::StartTask {
                token,
                parent,
                task,
            } => {
                let Some(i) = self.token(token) else { return };
                let parent = self.opt_task(parent);
                let task = self.opt_task(task);
                let bearer = self.tokens[i].bearer.clone();
                let caller = self.store.record(&self.tokens[i].fp);
                match self
                    .store
                    .start_task_under(&bearer, parent.as_deref(), task.as_deref())
                {
                    Ok(info) => {
                        self.accepted(i);
                        assert_eq!(self.store.task(&info.task_id).as_ref(), Some(&info));
                        assert!(info.spawn_depth < self.store.config().max_spawn_depth);
                        let caller = caller.expect("the caller's record");
                        if caller.token.role == Role::Worker {
                            assert!(task.is_none(), "a Worker chose a task id");
                            let bound = caller.task_id.expect("a spawning Worker is bound");
                            let parent = info.parent_id.as_deref().expect("a Worker's child");
                            assert!(
                                self.in_subtree(parent, &bound),
                                "a Worker started a task outside its subtree"
                            );
                        } else if let Some(parent) = &parent {
                            assert_eq!(info.parent_id.as_ref(), Some(parent));
                        } else {
                            assert_eq!(info.spawn_depth, 0);
                        }
                        if !FIXED_TASKS.contains(&info.task_id.as_str()) {
                            self.tasks.push(info.task_id);
                        }
                    }
                    Err(error) => {
                        known_limit(&error);
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Dispatch {
                token,
                task,
                max_uses,
                scopes,
                ttl,
            } => {
                let Some(i) = self.token(token) else { return };
                let caller = self.store.record(&self.tokens[i].fp);
                let task = match task {
                    Some(task) => self.task(task),
                    None => caller
                        .as_ref()
                        .and_then(|r| r.task_id.clone())
                        .unwrap_or_else(|| self.task(0)),
                };
                let bearer = self.tokens[i].bearer.clone();
                let options = MintOptions {
                    max_uses: small_uses(max_uses),
                    scopes: scope_list(scopes),
                    ttl_secs: ttl.map(u64::from),
                    task_id: None,
                };
                let asked = options.max_uses;
                match self.store.dispatch_attempt(&bearer, &task, options) {
                    Ok(minted) => {
                        let caller = caller.expect("the caller's record");
                        assert_eq!(minted.token.role, Role::Worker);
                        assert_eq!(
                            self.store
                                .record(&minted.fingerprint)
                                .and_then(|r| r.task_id),
                            Some(task.clone())
                        );
                        let worker = caller.token.role == Role::Worker;
                        let mut handed = 0;
                        if worker {
                            // Never wider than the minter.
                            let bound = caller
                                .task_id
                                .clone()
                                .expect("a dispatching Worker is bound");
                            assert!(
                                self.in_subtree(&task, &bound),
                                "dispatch outside the subtree"
                            );
                            if caller.token.scopes != ["*"] {
                                assert!(
                                    minted
                                        .token
                                        .scopes
                                        .iter()
                                        .all(|s| caller.token.scopes.contains(s)),
                                    "a Worker minted wider scopes"
                                );
                            }
                            assert!(minted.token.expire_at <= caller.token.expire_at);
                            if caller.uses_left.is_some() {
                                assert_eq!(minted.token.max_uses, asked);
                                handed = asked.expect("a limited Worker names maxUses");
                                assert!(handed >= 1);
                            }
                        }
                        self.spent(i, 1 + handed);
                        self.add(&minted, None, worker.then_some(i));
                    }
                    Err(error) => {
                        known_limit(&error);
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Remint { token } => {
                let Some(i) = self.token(token) else { return };
                let bearer = self.tokens[i].bearer.clone();
                let old = self.store.record(&self.tokens[i].fp);
                match self.store.remint(&bearer) {
                    Ok(minted) => {
                        let old = old.expect("a reminted token had a record");
                        assert!(!old.revoked, "a revoked token was reminted");
                        assert_eq!(
                            minted.token.max_uses, old.uses_left,
                            "remint changed the budget"
                        );
                        assert_eq!(minted.token.role, Role::Worker);
                        assert_eq!(minted.token.scopes, old.token.scopes);
                        assert_eq!(minted.token.agent_id, old.token.agent_id);
                        let new = self
                            .store
                            .record(&minted.fingerprint)
                            .expect("a reminted record");
                        assert_eq!(new.task_id, old.task_id);
                        assert!(
                            self.store
                                .record(&self.tokens[i].fp)
                                .is_some_and(|r| r.revoked),
                            "remint left the old token live"
                        );
                        let lineage = self.tokens[i].lineage;
                        self.add(&minted, Some(lineage), Some(i));
                    }
                    Err(error) => {
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Adopt { token, task } => {
                let Some(i) = self.token(token) else { return };
                let task = self.opt_task(task);
                let bearer = self.tokens[i].bearer.clone();
                let gone = self.seen[&self.tokens[i].fp].gone;
                match self.store.adopt(&bearer, task.as_deref()) {
                    Ok(fp) => {
                        assert_eq!(fp, self.tokens[i].fp);
                        // Every token here was minted by this store: adopting it again
                        // changes nothing (a purged one is expired and is refused).
                        assert!(!gone, "a purged token was adopted back");
                        assert_eq!(
                            without_seal(&self.store.snapshot().expect("a snapshot")),
                            without_seal(&before),
                            "adopting a recorded token changed it"
                        );
                    }
                    Err(error) => self.refused(&error),
                }
                changed = false;
            }
            Op::Purge => {
                changed = self.store.purge_expired() > 0;
                purged = true;
            }
            Op::SnapshotRestore => {
                let snapshot = before.clone();
                self.no_nonce_in(&snapshot);
                let mut restored = TokenStore::restore(
                    &snapshot,
                    &SECRET,
                    config(),
                    Box::new(Arc::clone(&self.clock)),
                )
                .expect("a store's own snapshot restores");
                assert_eq!(
                    normalised(&restored.snapshot().expect("a snapshot")),
                    normalised(&snapshot)
                );
                assert_eq!(restored.records(), self.store.records());
                assert_eq!(restored.tasks(), self.store.tasks());
                for tok in &self.tokens {
                    for v in [
                        Verb::StartTask,
                        Verb::FetchPrompt,
                        Verb::Heartbeat,
                        Verb::ReadTrace,
                    ] {
                        let task = self.store.record(&tok.fp).and_then(|r| r.task_id);
                        let a = self.store.check(&tok.bearer, v, task.as_deref());
                        let b = restored.check(&tok.bearer, v, task.as_deref());
                        assert!(
                            same_decision(&a, &b),
                            "restore changed a decision: {a:?} vs {b:?}"
                        );
                    }
                }
                self.store = restored;
                changed = false;
            }
            Op::Advance { secs } => {
                self.clock.advance(u64::from(secs));
                changed = false;
            }
        }
        if !changed {
            assert_eq!(
                normalised(&self.store.snapshot().expect("a snapshot")),
                normalised(&before),
                "a call that failed or did nothing changed the state ({op:?})"
            );
        }
        self.check_records(purged);
        self.check_trees();
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let clock = Arc::new(FixedClock::new(T0));
    let store = TokenStore::new(&SECRET, config(), Box::new(Arc::clone(&clock))).expect("a store");
    let mut world = World {
        store,
        clock,
        tokens: Vec::new(),
        lineages: Vec::new(),
        seen: HashMap::new(),
        tasks: Vec::new(),
    };
    for op in ops.iter().take(MAX_OPS) {
        world.step(op);
    }
});
