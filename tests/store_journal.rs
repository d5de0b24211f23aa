//! The journal: a snapshot plus the journal written after it rebuilds the
//! store exactly; it holds no nonce; a damaged journal is refused whole.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{ErrorCode, FixedClock, MintOptions, Minted, Role, StoreConfig, TokenStore, Verb};
use common::*;
use proptest::prelude::*;
use std::sync::Arc;

fn replayed(snapshot: &str, journal: &str, clock: &Arc<FixedClock>) -> TokenStore {
    TokenStore::restore_with_journal(
        snapshot,
        journal,
        &SECRET,
        StoreConfig::default(),
        Box::new(Arc::clone(clock)),
    )
    .unwrap()
}

fn same_state(a: &TokenStore, b: &TokenStore) {
    assert_eq!(a.records(), b.records());
    assert_eq!(a.tasks(), b.tasks());
}

#[test]
fn journal_is_off_until_asked_for() {
    let (mut store, _) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    assert_eq!(store.take_journal(), "");
}

#[test]
fn every_kind_of_change_is_journaled_and_replays() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let before = store.snapshot().unwrap();
    store.set_journaling(true);

    let w = store.dispatch_attempt(&op.bearer, "root", uses(5)).unwrap();
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("root"))
        .unwrap();
    let child = store.start_task(&w.bearer, None).unwrap().task_id;
    let c = store.dispatch_attempt(&w.bearer, &child, uses(1)).unwrap();
    let short = store.mint("short", Role::Observer, ttl(10)).unwrap();
    let spare = worker(&mut store, "elsewhere", Some(2));
    store.revoke(&spare.fingerprint);
    clock.advance(20);
    assert_eq!(store.purge_expired(), 1);
    let fresh = store.remint(&w.bearer).unwrap();
    assert_eq!(store.revoke_task("root"), 2); // c and the reminted token
    let journal = store.take_journal();

    let ops: Vec<String> = journal
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["op"].as_str().unwrap().to_owned()
        })
        .collect();
    // dispatch by the unlimited operator (record only), verify (consume),
    // start (consume + task), dispatch (consume + record), mint, mint,
    // revoke, purge, remint (revoke + record), revoke_task (two revokes).
    assert_eq!(
        ops,
        [
            "record", "consume", "consume", "task", "consume", "record", "record", "record",
            "revoke", "purge", "revoke", "record", "revoke", "revoke"
        ]
        .map(String::from)
    );
    for minted in [&op, &w, &c, &short, &spare, &fresh] {
        assert!(!journal.contains(&nonce_of(&minted.bearer)));
    }
    assert!(
        store.take_journal().is_empty(),
        "taking empties the journal"
    );

    let rebuilt = replayed(&before, &journal, &clock);
    same_state(&store, &rebuilt);
    assert!(!rebuilt
        .records()
        .iter()
        .any(|(fp, _)| *fp == short.fingerprint));
}

#[test]
fn unlimited_uses_write_no_line() {
    let (mut store, _) = store();
    let op = operator(&mut store);
    store.set_journaling(true);
    for _ in 0..5 {
        store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
    }
    store.check(&op.bearer, Verb::Heartbeat, None).unwrap();
    assert_eq!(store.take_journal(), "");
    let w = worker(&mut store, "t", Some(2));
    store.take_journal();
    store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    // One sealed line: its MAC first, then the event.
    let line = store.take_journal();
    let event = format!(
        "\"op\":\"consume\",\"fingerprint\":\"{}\"}}\n",
        w.fingerprint
    );
    assert!(line.starts_with("{\"mac\":\""), "{line}");
    assert_eq!(line.len(), 8 + 64 + 2 + event.len(), "{line}");
    assert!(line.ends_with(&event), "{line}");
    // A denied call writes nothing.
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("other"))
        .unwrap_err();
    assert_eq!(store.take_journal(), "");
}

#[test]
fn a_spent_one_time_token_stays_spent_after_replay() {
    let (mut store, clock) = store();
    let before = store.snapshot().unwrap();
    store.set_journaling(true);
    let once = worker(&mut store, "t", Some(1));
    store
        .verify(&once.bearer, Verb::FetchPrompt, Some("t"))
        .unwrap();
    let mut rebuilt = replayed(&before, &store.take_journal(), &clock);
    assert_eq!(
        code(rebuilt.verify(&once.bearer, Verb::FetchPrompt, Some("t"))),
        ErrorCode::TokenUsesExhausted
    );
}

#[test]
fn damaged_journals_are_refused_whole() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    let before = store.snapshot().unwrap();
    store.set_journaling(true);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = worker(&mut store, "t", Some(1));
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t"))
        .unwrap();
    let good = store.take_journal();
    let lines: Vec<&str> = good.lines().collect();
    let fp = w.fingerprint.to_string();
    let bad = [
        format!("{good}not json\n"),
        format!("{good}{{\"op\":\"explode\"}}\n"),
        format!("{good}{{\"op\":\"consume\",\"fingerprint\":\"{fp}\"}}\n"),
        format!("{good}{{\"op\":\"consume\",\"fingerprint\":\"{}\"}}\n", "0".repeat(64)),
        format!("{good}{{\"op\":\"revoke\",\"fingerprint\":\"{}\"}}\n", "0".repeat(64)),
        format!("{good}{}\n", lines[1]),
        format!("{good}{{\"op\":\"task\",\"task_id\":\"x\",\"parent_id\":\"nope\",\"spawn_depth\":1}}\n"),
        format!("{good}{{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null,\"spawn_depth\":0}}\n"),
        format!("{good}{{\"op\":\"consume\",\"fingerprint\":\"{fp}\",\"nonce\":\"{}\"}}\n", "0".repeat(32)),
        [lines[0], lines[2]].join("\n"),
    ];
    for (i, journal) in bad.iter().enumerate() {
        let err = TokenStore::restore_with_journal(
            &before,
            journal,
            &SECRET,
            StoreConfig::default(),
            Box::new(Arc::clone(&clock)),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "case {i}: {err}");
        assert!(!err.to_string().contains(&nonce_of(&w.bearer)));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Mint(Option<u32>, u8),
    Verify(usize, bool),
    Revoke(usize),
    RevokeTask(u8),
    Start(usize, u8),
    Dispatch(u8, Option<u32>),
    Remint(usize),
    Purge,
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (proptest::option::of(0u32..4), 0u8..4).prop_map(|(u, t)| Op::Mint(u, t)),
        (0usize..64, any::<bool>()).prop_map(|(i, right)| Op::Verify(i, right)),
        (0usize..64).prop_map(Op::Revoke),
        (0u8..4).prop_map(Op::RevokeTask),
        (0usize..64, 0u8..4).prop_map(|(i, t)| Op::Start(i, t)),
        (0u8..4, proptest::option::of(1u32..4)).prop_map(|(t, u)| Op::Dispatch(t, u)),
        (0usize..64).prop_map(Op::Remint),
        Just(Op::Purge),
        (0u16..1200).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happens, snapshot-then-journal rebuilds the same state, and
    /// the rebuilt store decides every later call the same way.
    #[test]
    fn snapshot_plus_journal_rebuilds_the_store(
        split in 0usize..40,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let (mut store, clock) = store();
        let op_token = operator(&mut store);
        store.start_task(&op_token.bearer, Some("t0")).unwrap();
        let mut minted: Vec<(Minted, String)> = vec![(op_token.clone(), "t0".into())];
        let mut snapshot = store.snapshot().unwrap();
        for (i, op) in ops.iter().enumerate() {
            if i == split {
                snapshot = store.snapshot().unwrap();
                store.take_journal();
                store.set_journaling(true);
            }
            let task = |t: &u8| format!("t{t}");
            match op {
                Op::Mint(uses, t) => {
                    let m = worker(&mut store, &task(t), *uses);
                    minted.push((m, task(t)));
                }
                Op::Verify(i, right) => {
                    let (m, t) = &minted[i % minted.len()];
                    let arg = if *right { t.clone() } else { "wrong".into() };
                    let _ = store.verify(&m.bearer, Verb::FetchPrompt, Some(&arg));
                }
                Op::Revoke(i) => {
                    let fp = minted[i % minted.len()].0.fingerprint;
                    store.revoke(&fp);
                }
                Op::RevokeTask(t) => {
                    store.revoke_task(&task(t));
                }
                Op::Start(i, t) => {
                    let (m, _) = &minted[i % minted.len()];
                    let _ = store.start_task(&m.bearer, Some(&format!("{}-{i}", task(t))));
                }
                Op::Dispatch(t, uses) => {
                    let options = MintOptions { max_uses: *uses, ..MintOptions::default() };
                    if let Ok(m) = store.dispatch_attempt(&op_token.bearer, &task(t), options) {
                        minted.push((m, task(t)));
                    }
                }
                Op::Remint(i) => {
                    let (m, t) = minted[i % minted.len()].clone();
                    if let Ok(fresh) = store.remint(&m.bearer) {
                        minted.push((fresh, t));
                    }
                }
                Op::Purge => {
                    store.purge_expired();
                }
                Op::Advance(secs) => clock.advance(u64::from(*secs)),
            }
        }
        if split >= ops.len() {
            snapshot = store.snapshot().unwrap();
        }
        let journal = store.take_journal();
        let mut rebuilt = replayed(&snapshot, &journal, &clock);
        prop_assert_eq!(store.records(), rebuilt.records());
        prop_assert_eq!(store.tasks(), rebuilt.tasks());
        for (m, t) in &minted {
            for _ in 0..2 {
                let a = store.verify(&m.bearer, Verb::FetchPrompt, Some(t)).map(|g| g.uses_left);
                let b = rebuilt.verify(&m.bearer, Verb::FetchPrompt, Some(t)).map(|g| g.uses_left);
                prop_assert_eq!(a, b);
            }
        }
    }
}
