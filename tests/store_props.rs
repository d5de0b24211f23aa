//! Property tests over random sequences of store operations.
//!
//! Two worlds run the same sequence on a shared clock: world A never
//! snapshots, world B replaces its store by `restore(snapshot())` at every
//! `Snapshot` step. Tokens are random (fresh nonces), so the worlds hold
//! different tokens at the same index; decisions are compared with each
//! fingerprint replaced by its index. Along the way, each world checks:
//!
//! * uses left never grow for a fingerprint (a remint makes a new one), and a
//!   record that is gone never comes back;
//! * a revoked token is never accepted again;
//! * a token is accepted at most `max_uses` times (a one-time token once);
//! * `check` spends nothing.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{
    CapTokenError, Fingerprint, FixedClock, MintOptions, Minted, Role, StoreConfig, TokenStore,
    Verb,
};
use common::{nonce_of, SECRET, T0};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

const TASKS: [&str; 7] = ["t0", "t1", "t2", "t3", "t4", "t5", "ext"];
const VERBS: [Verb; 12] = [
    Verb::FetchPrompt,
    Verb::PostResult,
    Verb::ReadTaskState,
    Verb::PollTask,
    Verb::CancelTask,
    Verb::FetchData,
    Verb::EmitOutput,
    Verb::StartTask,
    Verb::DispatchAttempt,
    Verb::Heartbeat,
    Verb::ReadTrace,
    Verb::PauseLoop,
];
const ROLES: [Role; 4] = [Role::Operator, Role::Worker, Role::Observer, Role::Senior];

#[derive(Debug, Clone)]
enum Op {
    Mint {
        role: usize,
        max_uses: Option<u32>,
        task: Option<usize>,
        ttl: u64,
    },
    /// Minted by a store with the same secret that this one never saw.
    MintElsewhere {
        max_uses: Option<u32>,
        task: Option<usize>,
    },
    Verify {
        tok: usize,
        verb: usize,
        task: Option<usize>,
    },
    Check {
        tok: usize,
        verb: usize,
        task: Option<usize>,
    },
    Revoke {
        tok: usize,
    },
    RevokeTask {
        task: usize,
    },
    /// `start_task_under(parent, id)`: a Worker must leave `id` out.
    StartTask {
        tok: usize,
        parent: Option<usize>,
        id: Option<usize>,
    },
    Dispatch {
        tok: usize,
        task: usize,
        max_uses: Option<u32>,
    },
    Remint {
        tok: usize,
    },
    Adopt {
        tok: usize,
        task: Option<usize>,
    },
    Purge,
    Snapshot,
    Advance {
        secs: u64,
    },
}

/// A shallow tree, so that random sequences reach the spawn-depth limit.
fn config() -> StoreConfig {
    StoreConfig {
        max_spawn_depth: 2,
        ..StoreConfig::default()
    }
}

fn budget() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (0u32..4).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    let task = || proptest::option::of(0..TASKS.len());
    prop_oneof![
        3 => (prop_oneof![3 => Just(1usize), 1 => 0..ROLES.len()], budget(), task(), 1u64..4000)
            .prop_map(|(role, max_uses, task, ttl)| Op::Mint { role, max_uses, task, ttl }),
        1 => (budget(), task()).prop_map(|(max_uses, task)| Op::MintElsewhere { max_uses, task }),
        6 => (any::<usize>(), 0..VERBS.len(), task())
            .prop_map(|(tok, verb, task)| Op::Verify { tok, verb, task }),
        2 => (any::<usize>(), 0..VERBS.len(), task())
            .prop_map(|(tok, verb, task)| Op::Check { tok, verb, task }),
        1 => any::<usize>().prop_map(|tok| Op::Revoke { tok }),
        1 => (0..TASKS.len()).prop_map(|task| Op::RevokeTask { task }),
        3 => (any::<usize>(), task(), proptest::option::of(0..6usize))
            .prop_map(|(tok, parent, id)| Op::StartTask { tok, parent, id }),
        3 => (any::<usize>(), 0..TASKS.len(), budget())
            .prop_map(|(tok, task, max_uses)| Op::Dispatch { tok, task, max_uses }),
        2 => any::<usize>().prop_map(|tok| Op::Remint { tok }),
        1 => (any::<usize>(), task()).prop_map(|(tok, task)| Op::Adopt { tok, task }),
        1 => Just(Op::Purge),
        2 => Just(Op::Snapshot),
        2 => (0u64..1500).prop_map(|secs| Op::Advance { secs }),
    ]
}

struct Tok {
    bearer: String,
    fp: Fingerprint,
    nonce: String,
    max_uses: Option<u32>,
}

impl Tok {
    fn of(m: &Minted) -> Self {
        Tok {
            bearer: m.bearer.clone(),
            fp: m.fingerprint,
            nonce: nonce_of(&m.bearer),
            max_uses: m.token.max_uses,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    NotYet,
    Present(Option<u32>),
    Gone,
}

struct World {
    store: TokenStore,
    elsewhere: TokenStore,
    clock: Arc<FixedClock>,
    round_trips: bool,
    tokens: Vec<Tok>,
    seen: Vec<Seen>,
    revoked: HashSet<usize>,
    /// Uses spent by each token: one per allowed call, plus the budget a
    /// limited Worker hands to a token it dispatches.
    accepted: Vec<u32>,
    /// Task ids made by the store, in order: each world makes its own, so
    /// they are compared by position.
    generated: Vec<String>,
}

impl World {
    fn new(clock: &Arc<FixedClock>, round_trips: bool) -> Self {
        let make = || TokenStore::new(&SECRET, config(), Box::new(Arc::clone(clock))).unwrap();
        let mut world = World {
            store: make(),
            elsewhere: make(),
            clock: Arc::clone(clock),
            round_trips,
            tokens: Vec::new(),
            seen: Vec::new(),
            revoked: HashSet::new(),
            accepted: Vec::new(),
            generated: Vec::new(),
        };
        let op = world
            .store
            .attach_operator("op", MintOptions::default())
            .unwrap();
        world.store.start_task(&op.bearer, Some("t0")).unwrap();
        world.store.start_task(&op.bearer, Some("t1")).unwrap();
        world.push(Tok::of(&op));
        world.observe();
        world
    }

    fn push(&mut self, tok: Tok) {
        self.tokens.push(tok);
        self.seen.push(Seen::NotYet);
        self.accepted.push(0);
    }

    fn tok(&self, i: usize) -> usize {
        i % self.tokens.len()
    }

    /// Replace each known fingerprint by its index, and each task id the
    /// store made by its position.
    fn norm(&self, text: String) -> String {
        let mut text = text;
        for (i, t) in self.tokens.iter().enumerate() {
            text = text.replace(&t.fp.to_string(), &format!("#{i}"));
        }
        for (i, id) in self.generated.iter().enumerate() {
            text = text.replace(id.as_str(), &format!("g#{i}"));
        }
        text
    }

    fn norm_result<T: std::fmt::Debug>(&self, r: &Result<T, CapTokenError>) -> String {
        self.norm(format!("{r:?}"))
    }

    fn norm_minted(&self, r: &Result<Minted, CapTokenError>) -> String {
        match r {
            Ok(m) => format!(
                "Ok({}, {:?}, {:?}, {}, {}, {:?}, {:?}, {:?})",
                m.token.agent_id,
                m.token.role,
                m.token.scopes,
                m.token.issued_at,
                m.token.expire_at,
                m.token.max_uses,
                m.token.v,
                self.store
                    .record(&m.fingerprint)
                    .map(|r| (r.uses_left, r.task_id)),
            ),
            Err(e) => self.norm(format!("Err({e:?})")),
        }
    }

    /// A call that spends on success: count it and check it may be accepted.
    fn accepted_by(&mut self, i: usize, ok: bool) {
        self.spent_by(i, ok, 1);
    }

    /// A call that spends `uses` on success (a limited Worker's dispatch
    /// spends its own use and the budget it hands on).
    fn spent_by(&mut self, i: usize, ok: bool, uses: u32) {
        if !ok {
            return;
        }
        assert!(
            !self.revoked.contains(&i),
            "revoked token #{i} was accepted"
        );
        self.accepted[i] += uses;
        if let Some(max) = self.tokens[i].max_uses {
            assert!(
                self.accepted[i] <= max,
                "token #{i} accepted {} times with max_uses {max}",
                self.accepted[i]
            );
        }
    }

    fn apply(&mut self, op: &Op) -> String {
        match op {
            Op::Mint {
                role,
                max_uses,
                task,
                ttl,
            } => {
                let options = MintOptions {
                    max_uses: *max_uses,
                    task_id: task.map(|t| TASKS[t].to_owned()),
                    ttl_secs: Some(*ttl),
                    scopes: None,
                };
                let r = self.store.mint("agent", ROLES[*role], options);
                let out = self.norm_minted(&r);
                if let Ok(m) = r {
                    self.push(Tok::of(&m));
                }
                out
            }
            Op::MintElsewhere { max_uses, task } => {
                let options = MintOptions {
                    max_uses: *max_uses,
                    task_id: task.map(|t| TASKS[t].to_owned()),
                    ..MintOptions::default()
                };
                let m = self
                    .elsewhere
                    .mint("remote", Role::Worker, options)
                    .unwrap();
                self.push(Tok::of(&m));
                format!("elsewhere {:?}", m.token.max_uses)
            }
            Op::Verify { tok, verb, task } => {
                let i = self.tok(*tok);
                let r =
                    self.store
                        .verify(&self.tokens[i].bearer, VERBS[*verb], task.map(|t| TASKS[t]));
                self.accepted_by(i, r.is_ok());
                self.norm_result(&r)
            }
            Op::Check { tok, verb, task } => {
                let i = self.tok(*tok);
                let before = self.store.records();
                let r =
                    self.store
                        .check(&self.tokens[i].bearer, VERBS[*verb], task.map(|t| TASKS[t]));
                assert_eq!(self.store.records(), before, "check spent something");
                if r.is_ok() {
                    assert!(!self.revoked.contains(&i), "check accepted revoked #{i}");
                    if self.tokens[i].max_uses.is_some() {
                        assert!(
                            Some(self.accepted[i]) < self.tokens[i].max_uses,
                            "check accepted an exhausted token #{i}"
                        );
                    }
                }
                self.norm_result(&r)
            }
            Op::Revoke { tok } => {
                let i = self.tok(*tok);
                let r = self.store.revoke(&self.tokens[i].fp);
                if r {
                    assert!(!self.revoked.contains(&i), "revoked twice: #{i}");
                }
                format!("{r}")
            }
            Op::RevokeTask { task } => format!("{}", self.store.revoke_task(TASKS[*task])),
            Op::StartTask { tok, parent, id } => {
                let i = self.tok(*tok);
                let role = self.store.record(&self.tokens[i].fp).map(|r| r.token.role);
                let r = self.store.start_task_under(
                    &self.tokens[i].bearer,
                    parent.map(|t| TASKS[t]),
                    id.map(|t| TASKS[t]),
                );
                if id.is_some() && role == Some(Role::Worker) {
                    assert!(r.is_err(), "a Worker chose a task id");
                }
                if let Ok(info) = &r {
                    assert!(info.spawn_depth < config().max_spawn_depth);
                    if id.is_none() {
                        self.generated.push(info.task_id.clone());
                    }
                }
                self.accepted_by(i, r.is_ok());
                self.norm_result(&r)
            }
            Op::Dispatch {
                tok,
                task,
                max_uses,
            } => {
                let i = self.tok(*tok);
                let options = MintOptions {
                    max_uses: *max_uses,
                    ..MintOptions::default()
                };
                let limited = self
                    .store
                    .record(&self.tokens[i].fp)
                    .is_some_and(|r| r.token.role == Role::Worker && r.uses_left.is_some());
                let r = self
                    .store
                    .dispatch_attempt(&self.tokens[i].bearer, TASKS[*task], options);
                let handed = if limited { max_uses.unwrap_or(0) } else { 0 };
                self.spent_by(i, r.is_ok(), 1 + handed);
                let out = self.norm_minted(&r);
                if let Ok(m) = r {
                    self.push(Tok::of(&m));
                }
                out
            }
            Op::Remint { tok } => {
                let i = self.tok(*tok);
                let before = self.store.record(&self.tokens[i].fp);
                let r = self.store.remint(&self.tokens[i].bearer);
                let out = self.norm_minted(&r);
                if let Ok(m) = r {
                    assert!(!self.revoked.contains(&i), "reminted revoked #{i}");
                    let before = before.unwrap();
                    // Never wider than what was left.
                    assert_eq!(m.token.max_uses, before.uses_left);
                    assert_eq!(m.token.scopes, before.token.scopes);
                    assert_eq!(m.token.agent_id, before.token.agent_id);
                    assert_eq!(
                        self.store.record(&m.fingerprint).unwrap().task_id,
                        before.task_id
                    );
                    assert!(self.store.record(&self.tokens[i].fp).unwrap().revoked);
                    self.push(Tok::of(&m));
                }
                out
            }
            Op::Adopt { tok, task } => {
                let i = self.tok(*tok);
                let before = self.store.record(&self.tokens[i].fp);
                let r = self
                    .store
                    .adopt(&self.tokens[i].bearer, task.map(|t| TASKS[t]));
                if let (Ok(_), Some(before)) = (&r, before) {
                    assert_eq!(self.store.record(&self.tokens[i].fp), Some(before));
                }
                self.norm_result(&r)
            }
            Op::Purge => format!("{}", self.store.purge_expired()),
            Op::Snapshot => {
                if self.round_trips {
                    let text = self.store.snapshot().unwrap();
                    for t in &self.tokens {
                        assert!(!text.contains(&t.nonce), "snapshot holds a nonce");
                    }
                    let before = self.store.records();
                    self.store = TokenStore::restore(
                        &text,
                        &SECRET,
                        config(),
                        Box::new(Arc::clone(&self.clock)),
                    )
                    .unwrap();
                    assert_eq!(self.store.records(), before);
                }
                "snapshot".to_owned()
            }
            Op::Advance { .. } => "advance".to_owned(),
        }
    }

    /// Check the per-fingerprint invariants after a step.
    fn observe(&mut self) {
        for i in 0..self.tokens.len() {
            let record = self.store.record(&self.tokens[i].fp);
            let now = match (&record, self.seen[i]) {
                (Some(r), Seen::Present(prev)) => {
                    match (prev, r.uses_left) {
                        (None, None) => {}
                        (Some(p), Some(n)) => assert!(n <= p, "uses of #{i} grew {p} -> {n}"),
                        (p, n) => panic!("budget of #{i} changed kind {p:?} -> {n:?}"),
                    }
                    Seen::Present(r.uses_left)
                }
                (Some(_), Seen::Gone) => panic!("record #{i} came back"),
                (Some(r), Seen::NotYet) => {
                    assert_eq!(
                        r.uses_left,
                        self.tokens[i]
                            .max_uses
                            .map(|m| { m.saturating_sub(self.accepted[i]) })
                    );
                    Seen::Present(r.uses_left)
                }
                (None, Seen::Present(_) | Seen::Gone) => Seen::Gone,
                (None, Seen::NotYet) => Seen::NotYet,
            };
            self.seen[i] = now;
            if let Some(r) = record {
                if r.revoked {
                    self.revoked.insert(i);
                } else {
                    assert!(!self.revoked.contains(&i), "#{i} was un-revoked");
                }
                if let (Some(max), Some(left)) = (self.tokens[i].max_uses, r.uses_left) {
                    assert_eq!(left, max - self.accepted[i], "uses of #{i}");
                }
            }
        }
    }

    /// The state, with fingerprints replaced by indexes.
    fn summary(&self) -> String {
        let records: Vec<String> = self
            .tokens
            .iter()
            .map(|t| {
                self.store.record(&t.fp).map_or_else(
                    || "-".to_owned(),
                    |r| {
                        format!(
                            "{:?} {} {:?} {} {:?} {:?} {} {} {:?} {:?}",
                            r.uses_left,
                            r.revoked,
                            r.task_id,
                            r.token.agent_id,
                            r.token.role,
                            r.token.scopes,
                            r.token.issued_at,
                            r.token.expire_at,
                            r.token.max_uses,
                            r.token.v
                        )
                    },
                )
            })
            .collect();
        let mut tasks: Vec<String> = self
            .store
            .tasks()
            .iter()
            .map(|t| self.norm(format!("{t:?}")))
            .collect();
        tasks.sort();
        format!("{} {:?} {:?}", self.store.len(), tasks, records)
    }
}

fn run(ops: &[Op]) {
    let clock = Arc::new(FixedClock::new(T0));
    let mut plain = World::new(&clock, false);
    let mut trips = World::new(&clock, true);
    for (step, op) in ops.iter().enumerate() {
        if let Op::Advance { secs } = op {
            clock.advance(*secs);
        }
        let a = plain.apply(op);
        let b = trips.apply(op);
        assert_eq!(a, b, "step {step}: {op:?}");
        plain.observe();
        trips.observe();
        assert_eq!(plain.summary(), trips.summary(), "step {step}: {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_keep_the_invariants_and_survive_round_trips(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(&ops);
    }
}

/// A fixed sequence that hits every kind of step, so the harness itself is
/// known to exercise spending, revocation, remint, purge and restore.
#[test]
fn a_scripted_sequence_through_the_harness() {
    let ops = vec![
        Op::Dispatch {
            tok: 0,
            task: 0,
            max_uses: Some(2),
        },
        Op::Verify {
            tok: 1,
            verb: 0,
            task: Some(0),
        },
        Op::Snapshot,
        Op::Verify {
            tok: 1,
            verb: 0,
            task: Some(0),
        },
        Op::Verify {
            tok: 1,
            verb: 0,
            task: Some(0),
        },
        Op::StartTask {
            tok: 0,
            parent: None,
            id: Some(1),
        },
        Op::Dispatch {
            tok: 0,
            task: 1,
            max_uses: Some(1),
        },
        Op::StartTask {
            tok: 2,
            parent: None,
            id: Some(2),
        },
        Op::StartTask {
            tok: 2,
            parent: None,
            id: None,
        },
        Op::StartTask {
            tok: 0,
            parent: Some(1),
            id: None,
        },
        Op::Remint { tok: 2 },
        Op::Snapshot,
        Op::Verify {
            tok: 2,
            verb: 5,
            task: None,
        },
        Op::Verify {
            tok: 3,
            verb: 5,
            task: None,
        },
        Op::MintElsewhere {
            max_uses: Some(1),
            task: Some(6),
        },
        Op::Verify {
            tok: 4,
            verb: 0,
            task: Some(6),
        },
        Op::Adopt {
            tok: 4,
            task: Some(6),
        },
        Op::Verify {
            tok: 4,
            verb: 0,
            task: Some(6),
        },
        Op::Adopt { tok: 4, task: None },
        Op::Verify {
            tok: 4,
            verb: 0,
            task: Some(6),
        },
        Op::RevokeTask { task: 0 },
        Op::Snapshot,
        Op::Verify {
            tok: 1,
            verb: 0,
            task: Some(0),
        },
        Op::Advance { secs: 1800 },
        Op::Purge,
        Op::Snapshot,
        Op::Verify {
            tok: 3,
            verb: 5,
            task: None,
        },
        Op::Mint {
            role: 1,
            max_uses: None,
            task: Some(1),
            ttl: 10,
        },
        Op::Check {
            tok: 5,
            verb: 0,
            task: Some(1),
        },
        Op::Revoke { tok: 5 },
        Op::Check {
            tok: 5,
            verb: 0,
            task: Some(1),
        },
    ];
    run(&ops);
}

// ---- Worker subtrees: nothing wider, budgets transferred, depth capped -------

/// The scopes a tree test draws from; a token's scopes are a subset, or `["*"]`.
const SCOPE_NAMES: [&str; 3] = ["read", "write", "exec"];
/// The Worker verbs a tree test calls (the six task-state verbs and two others).
const WORKER_VERBS: [Verb; 8] = [
    Verb::FetchPrompt,
    Verb::PostResult,
    Verb::EmitOutput,
    Verb::ReadTaskState,
    Verb::CancelTask,
    Verb::PollTask,
    Verb::FetchData,
    Verb::VerifyToken,
];

/// Small limits, so that random sequences reach them too.
fn tree_config() -> StoreConfig {
    StoreConfig {
        max_spawn_depth: 3,
        worker_token_ttl_secs: 600,
        limits: captoken::store::Limits {
            max_records: 200,
            max_tasks: 40,
            max_tasks_per_tree: 24,
            max_children_per_task: 5,
            max_made_per_worker_token: 8,
        },
        ..StoreConfig::default()
    }
}

/// `None` is `["*"]`; otherwise the names of the set bits.
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

#[derive(Debug, Clone)]
enum TreeOp {
    /// `start_task_under(parent, None)` by a Worker.
    Start {
        tok: usize,
        parent: Option<usize>,
    },
    /// `dispatch_attempt` by a Worker, with random options; `task` `None`
    /// is the Worker's own bound task.
    Dispatch {
        tok: usize,
        task: Option<usize>,
        scopes: Option<Option<u8>>,
        ttl: Option<u64>,
        max_uses: Option<u32>,
    },
    /// `task` `None` is the Worker's own bound task.
    Verify {
        tok: usize,
        verb: usize,
        task: Option<usize>,
        no_task: bool,
    },
    Revoke {
        tok: usize,
    },
    Advance {
        secs: u64,
    },
}

fn tree_op() -> impl Strategy<Value = TreeOp> {
    // Mostly the caller's own task, sometimes any task of the store.
    let task = || prop_oneof![2 => Just(None), 1 => any::<usize>().prop_map(Some)];
    prop_oneof![
        6 => (any::<usize>(), task())
            .prop_map(|(tok, parent)| TreeOp::Start { tok, parent }),
        10 => (
            any::<usize>(),
            task(),
            proptest::option::of(proptest::option::of(0u8..8)),
            proptest::option::of(prop_oneof![1u64..700, 700u64..5000]),
            proptest::option::of(prop_oneof![3 => 1u32..4, 1 => 0u32..12]),
        )
            .prop_map(|(tok, task, scopes, ttl, max_uses)| TreeOp::Dispatch {
                tok,
                task,
                scopes,
                ttl,
                max_uses,
            }),
        10 => (any::<usize>(), 0..WORKER_VERBS.len(), task(), prop::bool::weighted(0.1))
            .prop_map(|(tok, verb, task, no_task)| TreeOp::Verify { tok, verb, task, no_task }),
        1 => any::<usize>().prop_map(|tok| TreeOp::Revoke { tok }),
        2 => (0u64..120).prop_map(|secs| TreeOp::Advance { secs }),
    ]
}

/// The Workers an Operator hands out at the start: (budget, scopes, ttl).
fn first_workers() -> impl Strategy<Value = Vec<(Option<u32>, Option<u8>, u64)>> {
    proptest::collection::vec(
        (
            prop_oneof![1 => Just(None), 3 => (1u32..24).prop_map(Some)],
            proptest::option::of(0u8..8),
            prop_oneof![1 => 1u64..300, 3 => 300u64..3000],
        ),
        1..4,
    )
}

struct TreeTok {
    bearer: String,
    fp: Fingerprint,
    /// The token that minted it (`None`: the Operator).
    minter: Option<usize>,
    max_uses: Option<u32>,
    /// Successful calls made with this very token.
    calls: u32,
}

struct Tree {
    store: TokenStore,
    clock: Arc<FixedClock>,
    tokens: Vec<TreeTok>,
    tasks: Vec<String>,
}

impl Tree {
    fn new(workers: &[(Option<u32>, Option<u8>, u64)]) -> Self {
        let clock = Arc::new(FixedClock::new(T0));
        let mut store =
            TokenStore::new(&SECRET, tree_config(), Box::new(Arc::clone(&clock))).unwrap();
        let op = store.attach_operator("op", MintOptions::default()).unwrap();
        let mut tasks = Vec::new();
        for root in ["root-a", "root-b"] {
            tasks.push(store.start_task(&op.bearer, Some(root)).unwrap().task_id);
        }
        let mut tree = Tree {
            store,
            clock,
            tokens: Vec::new(),
            tasks,
        };
        for (i, (max_uses, scopes, ttl)) in workers.iter().enumerate() {
            let options = MintOptions {
                scopes: scope_list(*scopes),
                ttl_secs: Some(*ttl),
                max_uses: *max_uses,
                task_id: None,
            };
            let root = if i % 2 == 0 { "root-a" } else { "root-b" };
            let m = tree
                .store
                .dispatch_attempt(&op.bearer, root, options)
                .unwrap();
            tree.push(&m, None);
        }
        tree
    }

    fn push(&mut self, m: &Minted, minter: Option<usize>) {
        self.tokens.push(TreeTok {
            bearer: m.bearer.clone(),
            fp: m.fingerprint,
            minter,
            max_uses: m.token.max_uses,
            calls: 0,
        });
    }

    fn tok(&self, n: usize) -> usize {
        n % self.tokens.len()
    }

    fn task(&self, n: usize) -> String {
        self.tasks[n % self.tasks.len()].clone()
    }

    /// Task `n` of the store, or (`None`) the task token `i` is bound to.
    fn task_or_bound(&self, n: Option<usize>, i: usize) -> Option<String> {
        match n {
            Some(n) => Some(self.task(n)),
            None => self
                .store
                .record(&self.tokens[i].fp)
                .and_then(|r| r.task_id),
        }
    }

    /// Property (i): a Worker-minted token is never wider than its minter.
    fn narrower(&self, child: &Minted, minter: usize) {
        let parent = self.store.record(&self.tokens[minter].fp).unwrap().token;
        let token = &child.token;
        assert_eq!(token.role, Role::Worker);
        if parent.scopes != ["*"] {
            assert!(
                token.scopes.iter().all(|s| parent.scopes.contains(s)),
                "scopes {:?} minted by {:?}",
                token.scopes,
                parent.scopes
            );
        }
        assert!(
            token.expire_at <= parent.expire_at,
            "expiry {} minted by a token expiring at {}",
            token.expire_at,
            parent.expire_at
        );
        if parent.max_uses.is_some() {
            assert!(
                token.max_uses.is_some(),
                "a limited Worker minted an unlimited token"
            );
        }
    }

    fn apply(&mut self, op: &TreeOp) {
        let before = (self.store.records(), self.store.tasks());
        let ok = match op {
            TreeOp::Start { tok, parent } => {
                let i = self.tok(*tok);
                let parent = parent.map(|p| self.task(p));
                let r =
                    self.store
                        .start_task_under(&self.tokens[i].bearer, parent.as_deref(), None);
                if let Ok(info) = &r {
                    self.tokens[i].calls += 1;
                    self.tasks.push(info.task_id.clone());
                }
                r.is_ok()
            }
            TreeOp::Dispatch {
                tok,
                task,
                scopes,
                ttl,
                max_uses,
            } => {
                let i = self.tok(*tok);
                let options = MintOptions {
                    scopes: scopes
                        .map(scope_list)
                        .map(|s| s.unwrap_or_else(|| vec!["*".into()])),
                    ttl_secs: *ttl,
                    max_uses: *max_uses,
                    task_id: None,
                };
                let task = self.task_or_bound(*task, i).unwrap_or_default();
                let r = self
                    .store
                    .dispatch_attempt(&self.tokens[i].bearer, &task, options);
                if let Ok(m) = &r {
                    self.narrower(m, i);
                    self.tokens[i].calls += 1;
                    self.push(m, Some(i));
                }
                r.is_ok()
            }
            TreeOp::Verify {
                tok,
                verb,
                task,
                no_task,
            } => {
                let i = self.tok(*tok);
                let task = self.task_or_bound(*task, i).filter(|_| !no_task);
                let r =
                    self.store
                        .verify(&self.tokens[i].bearer, WORKER_VERBS[*verb], task.as_deref());
                if r.is_ok() {
                    self.tokens[i].calls += 1;
                }
                r.is_ok()
            }
            TreeOp::Revoke { tok } => {
                let i = self.tok(*tok);
                self.store.revoke(&self.tokens[i].fp);
                true
            }
            TreeOp::Advance { secs } => {
                self.clock.advance(*secs);
                true
            }
        };
        if !ok {
            assert_eq!(
                (self.store.records(), self.store.tasks()),
                before,
                "a refused call changed the state: {op:?}"
            );
        }
        self.invariants();
    }

    fn invariants(&self) {
        // (ii) A Worker and everything minted below it never make more calls
        // than the Worker's budget.
        let mut subtree_calls: Vec<u32> = self.tokens.iter().map(|t| t.calls).collect();
        for i in (0..self.tokens.len()).rev() {
            // Minters come before what they mint, so children are summed first.
            if let Some(minter) = self.tokens[i].minter {
                subtree_calls[minter] += subtree_calls[i];
            }
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if let Some(budget) = t.max_uses {
                assert!(
                    subtree_calls[i] <= budget,
                    "token #{i} and its subtree made {} calls on a budget of {budget}",
                    subtree_calls[i]
                );
            }
        }
        // (iii) No task sits at or past max_spawn_depth.
        let max = tree_config().max_spawn_depth;
        for task in self.store.tasks() {
            assert!(task.spawn_depth < max, "{task:?}");
        }
    }

    /// Spend every token to the end with its cheapest call, then check (ii)
    /// once more: all budgets are used up and still not exceeded.
    fn drain(&mut self) {
        for i in 0..self.tokens.len() {
            let task = self
                .store
                .record(&self.tokens[i].fp)
                .and_then(|r| r.task_id);
            while self
                .store
                .verify(&self.tokens[i].bearer, Verb::PollTask, task.as_deref())
                .is_ok()
            {
                self.tokens[i].calls += 1;
                if self.tokens[i].max_uses.is_none() {
                    break;
                }
            }
        }
        self.invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    })]

    #[test]
    fn worker_subtrees_never_widen_never_outspend_and_never_reach_max_depth(
        workers in first_workers(),
        ops in proptest::collection::vec(tree_op(), 1..80)
    ) {
        let mut tree = Tree::new(&workers);
        for op in &ops {
            tree.apply(op);
        }
        tree.drain();
    }
}
