//! Random sequences of store operations on a `TokenStore` with a `FixedClock`,
//! checked against the store's invariants after every step:
//!
//! * the uses left of a fingerprint never grow (`None` stays `None`);
//! * a revoked fingerprint stays revoked and is never accepted again;
//! * a token is accepted at most `max_uses` times (a one-time token once), and
//!   a remint chain at most its first token's `max_uses` times in all;
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
    StartTask {
        token: u8,
        task: Option<u8>,
    },
    Dispatch {
        token: u8,
        task: u8,
        max_uses: Option<u8>,
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

fn config() -> StoreConfig {
    StoreConfig::default()
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

    fn add(&mut self, minted: &Minted, lineage: Option<usize>) {
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
        });
    }

    /// A call by token `i` was allowed and spent one use.
    fn accepted(&mut self, i: usize) {
        let tok = &self.tokens[i];
        let seen = self.seen.get_mut(&tok.fp).expect("a known token");
        assert!(!seen.revoked, "a revoked token was accepted");
        assert!(!seen.gone, "a purged token was accepted");
        seen.accepted += 1;
        if let Some(max) = tok.max_uses {
            assert!(
                seen.accepted <= max,
                "a token was accepted more than max_uses times"
            );
        }
        let lineage = &mut self.lineages[tok.lineage];
        lineage.accepted += 1;
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
                    Ok(minted) => self.add(&minted, None),
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
                assert_eq!(self.store.snapshot().expect("a snapshot"), before, "check changed the state");
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
            Op::StartTask { token, task } => {
                let Some(i) = self.token(token) else { return };
                let task = self.opt_task(task);
                let bearer = self.tokens[i].bearer.clone();
                match self.store.start_task(&bearer, task.as_deref()) {
                    Ok(info) => {
                        self.accepted(i);
                        assert_eq!(self.store.task(&info.task_id).as_ref(), Some(&info));
                        assert!(info.spawn_depth < self.store.config().max_spawn_depth);
                        if !FIXED_TASKS.contains(&info.task_id.as_str()) {
                            self.tasks.push(info.task_id);
                        }
                    }
                    Err(error) => {
                        self.refused(&error);
                        changed = false;
                    }
                }
            }
            Op::Dispatch {
                token,
                task,
                max_uses,
            } => {
                let Some(i) = self.token(token) else { return };
                let task = self.task(task);
                let bearer = self.tokens[i].bearer.clone();
                let options = MintOptions {
                    max_uses: small_uses(max_uses),
                    ..MintOptions::default()
                };
                match self.store.dispatch_attempt(&bearer, &task, options) {
                    Ok(minted) => {
                        self.accepted(i);
                        assert_eq!(minted.token.role, Role::Worker);
                        assert_eq!(
                            self.store
                                .record(&minted.fingerprint)
                                .and_then(|r| r.task_id),
                            Some(task)
                        );
                        self.add(&minted, None);
                    }
                    Err(error) => {
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
                        self.add(&minted, Some(lineage));
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
                            self.store.snapshot().expect("a snapshot"),
                            before,
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
                assert_eq!(normalised(&restored.snapshot().expect("a snapshot")), normalised(&snapshot));
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
