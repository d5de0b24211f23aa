//! Issue 10: sealed snapshots and chained, sealed journal lines. Every edit,
//! deletion, duplication and move of a line is refused; cutting complete
//! lines off the end is not (it looks like a crash); another secret is named;
//! unsealed text needs an explicit opt-in; tasks too deep are refused.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::snapshot::{seal_journal_text, seal_snapshot_text};
use captoken::{
    CapTokenError, ErrorCode, FixedClock, MintOptions, RestoreOptions, Role, StoreConfig,
    TokenStore, Verb,
};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

fn restore_all(
    snapshot: &str,
    journal: &str,
    clock: &Arc<FixedClock>,
) -> Result<TokenStore, CapTokenError> {
    TokenStore::restore_with_journal(
        snapshot,
        journal,
        &SECRET,
        StoreConfig::default(),
        Box::new(Arc::clone(clock)),
    )
}

fn refused(result: Result<TokenStore, CapTokenError>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: accepted"),
        Err(err) => {
            assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "{what}: {err}");
            err.to_string()
        }
    }
}

/// A snapshot, then a real journal of every kind of change (at least 15
/// lines): mint, dispatch, consume, revoke, start tasks, purge.
struct Journaled {
    snapshot: String,
    lines: Vec<String>,
    clock: Arc<FixedClock>,
    spent: captoken::Minted,
    revoked: captoken::Minted,
}

fn journaled() -> Journaled {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    store.set_journaling(true);
    let snapshot = store.snapshot().unwrap();
    let w = store.dispatch_attempt(&op.bearer, "root", uses(6)).unwrap();
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("root"))
        .unwrap();
    let child = store.start_task(&w.bearer, None).unwrap().task_id;
    let spent = store.dispatch_attempt(&op.bearer, &child, uses(1)).unwrap();
    store
        .verify(&spent.bearer, Verb::FetchPrompt, Some(&child))
        .unwrap();
    let revoked = worker(&mut store, "root", Some(3));
    store.revoke(&revoked.fingerprint);
    store.start_task(&op.bearer, Some("second")).unwrap();
    let short = store.mint("short", Role::Observer, ttl(5)).unwrap();
    store.verify(&short.bearer, Verb::ReadTrace, None).ok();
    for i in 0..3 {
        let m = worker(&mut store, "second", Some(2));
        store
            .verify(&m.bearer, Verb::FetchData, Some("second"))
            .unwrap();
        if i == 1 {
            store.revoke(&m.fingerprint);
        }
    }
    store.revoke_task(&child);
    clock.advance(10);
    store.purge_expired();
    let journal = store.take_journal();
    let lines: Vec<String> = journal.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 15, "{} lines", lines.len());
    // The real journal replays, and the spent and revoked tokens stay so.
    let mut back = restore_all(&snapshot, &journal, &clock).unwrap();
    assert_eq!(back.records(), store.records());
    assert_eq!(
        back.verify(&spent.bearer, Verb::FetchPrompt, Some(&child))
            .unwrap_err()
            .code(),
        ErrorCode::TokenRevoked
    );
    Journaled {
        snapshot,
        lines,
        clock,
        spent,
        revoked,
    }
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn every_single_byte_flip_in_every_line_is_refused() {
    let j = journaled();
    for (i, line) in j.lines.iter().enumerate() {
        for at in 0..line.len() {
            let mut bytes = line.clone().into_bytes();
            // Flip a low bit, staying ASCII; never into a newline.
            bytes[at] ^= if bytes[at] == 0x0b { 2 } else { 1 };
            let Ok(edited) = String::from_utf8(bytes) else {
                continue;
            };
            let mut lines = j.lines.clone();
            lines[i] = edited;
            refused(
                restore_all(&j.snapshot, &join(&lines), &j.clock),
                &format!("line {i} byte {at}"),
            );
        }
    }
}

#[test]
fn deleting_duplicating_or_swapping_any_line_is_refused_but_the_last_may_be_cut() {
    let j = journaled();
    let n = j.lines.len();
    for i in 0..n {
        let mut deleted = j.lines.clone();
        deleted.remove(i);
        let result = restore_all(&j.snapshot, &join(&deleted), &j.clock);
        if i + 1 == n {
            // The last line deleted: indistinguishable from a crash before it.
            assert!(result.is_ok(), "deleting the last line");
        } else {
            let message = refused(result, &format!("delete {i}"));
            assert!(message.contains("seal does not match"), "{message}");
        }
        let mut duplicated = j.lines.clone();
        duplicated.insert(i, j.lines[i].clone());
        refused(
            restore_all(&j.snapshot, &join(&duplicated), &j.clock),
            &format!("duplicate {i}"),
        );
        if i + 1 < n {
            let mut swapped = j.lines.clone();
            swapped.swap(i, i + 1);
            refused(
                restore_all(&j.snapshot, &join(&swapped), &j.clock),
                &format!("swap {i}"),
            );
        }
    }
    // Any number of complete lines cut off the end is accepted.
    for keep in 0..=n {
        restore_all(&j.snapshot, &join(&j.lines[..keep]), &j.clock).unwrap();
    }
    // The whole journal twice, and a torn last line, are refused here (the
    // durable store drops a torn last line itself before replaying).
    let all = join(&j.lines);
    refused(
        restore_all(&j.snapshot, &format!("{all}{all}"), &j.clock),
        "replayed twice",
    );
    let torn = &all[..all.len() - 10];
    refused(restore_all(&j.snapshot, torn, &j.clock), "torn last line");
}

#[test]
fn deleting_the_consume_line_does_not_revive_the_one_time_token() {
    let j = journaled();
    let fingerprint = j.spent.fingerprint.to_string();
    let consume = j
        .lines
        .iter()
        .position(|l| l.contains("\"op\":\"consume\"") && l.contains(&fingerprint))
        .unwrap();
    let mut lines = j.lines.clone();
    lines.remove(consume);
    refused(
        restore_all(&j.snapshot, &join(&lines), &j.clock),
        "consume deleted",
    );
    // Deleting the revoke line likewise.
    let revoked = j.revoked.fingerprint.to_string();
    let revoke = j
        .lines
        .iter()
        .position(|l| l.contains("\"op\":\"revoke\"") && l.contains(&revoked))
        .unwrap();
    let mut lines = j.lines.clone();
    lines.remove(revoke);
    refused(
        restore_all(&j.snapshot, &join(&lines), &j.clock),
        "revoke deleted",
    );
}

#[test]
fn lines_of_another_store_or_another_snapshot_are_refused() {
    let a = journaled();
    // Another store of the same secret: its chain starts at its own snapshot.
    let (mut other, _) = store();
    other.set_journaling(true);
    let _ = other.snapshot().unwrap();
    other.attach_operator("someone", uses(3)).unwrap();
    let foreign = other.take_journal();
    refused(
        restore_all(&a.snapshot, &foreign, &a.clock),
        "foreign lines",
    );
    // Another secret.
    let (mut stranger, clock) = store_with_secret(&OTHER_SECRET);
    stranger.set_journaling(true);
    stranger.attach_operator("x", uses(3)).unwrap();
    refused(
        restore_all(&a.snapshot, &stranger.take_journal(), &clock),
        "another secret",
    );
}

fn store_with_secret(secret: &[u8]) -> (TokenStore, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(T0));
    let store = store_on(secret, StoreConfig::default(), &clock);
    (store, clock)
}

#[test]
fn the_chain_goes_on_after_a_restore_and_restarts_at_each_snapshot() {
    let j = journaled();
    let journal = join(&j.lines);
    let mut back = TokenStore::restore_with_journal(
        &j.snapshot,
        &journal,
        &SECRET,
        StoreConfig::default(),
        Box::new(Arc::clone(&j.clock)),
    )
    .unwrap();
    back.set_journaling(true);
    let late = back.attach_operator("late", uses(2)).unwrap();
    back.verify(&late.bearer, Verb::Heartbeat, None).unwrap();
    let more = back.take_journal();
    let mut again = restore_all(&j.snapshot, &format!("{journal}{more}"), &j.clock).unwrap();
    assert_eq!(again.records(), back.records());
    assert_eq!(
        again
            .verify(&late.bearer, Verb::Heartbeat, None)
            .unwrap()
            .uses_left,
        Some(0)
    );
    // A snapshot starts a new chain, and drops the lines not yet taken.
    back.verify(&late.bearer, Verb::Heartbeat, None).ok();
    let next = back.snapshot().unwrap();
    assert_eq!(back.take_journal(), "");
    refused(
        restore_all(&next, &more, &j.clock),
        "old lines after a new snapshot",
    );
    // A fresh store's lines chain to its empty snapshot.
    let (mut fresh, clock) = store();
    fresh.set_journaling(true);
    fresh.attach_operator("op", uses(2)).unwrap();
    let lines = fresh.take_journal();
    let (mut empty, _) = store();
    let empty = empty.snapshot().unwrap();
    assert_eq!(restore_all(&empty, &lines, &clock).unwrap().len(), 1);
}

#[test]
fn an_edited_snapshot_is_refused_and_another_secret_is_named() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("a")).unwrap();
    store.start_task(&op.bearer, Some("b")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "a", uses(1)).unwrap();
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("a"))
        .unwrap();
    store.revoke(&w.fingerprint);
    let text = store.snapshot().unwrap();
    for (from, to) in [
        ("\"uses_left\":0", "\"uses_left\":1"),
        ("\"revoked\":true", "\"revoked\":false"),
        ("\"task_id\":\"a\"", "\"task_id\":\"b\""),
        ("\"format\":\"v2\"", "\"format\":\"v2\" "),
        ("\"version\":1", "\"version\":2"),
    ] {
        assert!(text.contains(from), "{from}");
        let edited = text.replacen(from, to, 1);
        let message = refused(restore(&edited, StoreConfig::default(), &clock), from);
        assert!(
            message.contains("edited") || message.contains("not sealed"),
            "{from}: {message}"
        );
    }
    // Every byte of a small snapshot, flipped.
    let (mut small, _) = store_with(StoreConfig::default());
    small.attach_operator("op", uses(2)).unwrap();
    let small = small.snapshot().unwrap();
    for at in 0..small.len() {
        let mut bytes = small.clone().into_bytes();
        bytes[at] ^= 1;
        if let Ok(edited) = String::from_utf8(bytes) {
            refused(
                restore(&edited, StoreConfig::default(), &clock),
                &format!("byte {at}"),
            );
        }
    }
    let message = refused(
        TokenStore::restore(
            &text,
            &OTHER_SECRET,
            StoreConfig::default(),
            Box::new(Arc::clone(&clock)),
        ),
        "another secret",
    );
    assert!(message.contains("the secret does not match"), "{message}");
    let mut back = restore(&text, StoreConfig::default(), &clock).unwrap();
    assert_eq!(
        back.verify(&w.bearer, Verb::FetchPrompt, Some("a"))
            .unwrap_err()
            .code(),
        ErrorCode::TokenRevoked
    );
}

#[test]
fn unsealed_snapshots_need_the_opt_in() {
    let (mut store, clock) = store();
    let op = store.attach_operator("op", uses(4)).unwrap();
    let mut v: Value = serde_json::from_str(&store.snapshot().unwrap()).unwrap();
    let object = v.as_object_mut().unwrap();
    object.remove("key_id");
    object.remove("mac");
    let old = v.to_string();
    let message = refused(restore(&old, StoreConfig::default(), &clock), "unsealed");
    assert!(message.contains("not sealed"), "{message}");
    let opt_in = |text: &str, journal: &str| {
        TokenStore::restore_with(
            text,
            journal,
            &SECRET,
            StoreConfig::default(),
            Box::new(Arc::clone(&clock)),
            RestoreOptions {
                allow_unsealed: true,
            },
        )
    };
    let mut back = opt_in(&old, "").unwrap();
    assert_eq!(
        back.verify(&op.bearer, Verb::Heartbeat, None)
            .unwrap()
            .uses_left,
        Some(3)
    );
    // Unsealed lines after an unsealed snapshot, with the opt-in.
    let consume = format!(
        "{}\n",
        json!({"op": "consume", "fingerprint": op.fingerprint.to_string()})
    );
    let mut replayed = opt_in(&old, &consume).unwrap();
    assert_eq!(
        replayed
            .verify(&op.bearer, Verb::Heartbeat, None)
            .unwrap()
            .uses_left,
        Some(2)
    );
    // Seal fields in an unsealed text are not accepted as a seal.
    let mut fake = v.clone();
    fake["mac"] = json!("0".repeat(64));
    refused(opt_in(&fake.to_string(), ""), "seal fields out of place");
    // A sealed snapshot's lines must be sealed.
    let sealed = store.snapshot().unwrap();
    refused(restore_all(&sealed, &consume, &clock), "unsealed line");
    let resealed = seal_journal_text(&sealed, &consume, &SECRET).unwrap();
    assert_eq!(restore_all(&sealed, &resealed, &clock).unwrap().len(), 1);
}

#[test]
fn tasks_at_or_past_max_spawn_depth_are_refused() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("d0")).unwrap();
    let mut parent = "d0".to_owned();
    for depth in 1..4 {
        let w = store
            .dispatch_attempt(&op.bearer, &parent, MintOptions::default())
            .unwrap();
        let _ = depth;
        parent = store.start_task(&w.bearer, None).unwrap().task_id;
    }
    store.set_journaling(true);
    let text = store.snapshot().unwrap();
    restore(&text, StoreConfig::default(), &clock).unwrap();
    for max_spawn_depth in 1..4 {
        let config = StoreConfig {
            max_spawn_depth,
            ..StoreConfig::default()
        };
        let message = refused(restore(&text, config, &clock), "too deep");
        assert!(message.contains("maxSpawnDepth"), "{message}");
    }
    // A sealed snapshot body and a sealed journal line holding a task at
    // depth 4 (what an old store with a larger maxSpawnDepth wrote).
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let object = v.as_object_mut().unwrap();
    for field in ["version", "key_id", "mac"] {
        object.remove(field);
    }
    let base = seal_snapshot_text(&v.to_string(), &SECRET).unwrap();
    restore(&base, StoreConfig::default(), &clock).unwrap();
    v["tasks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"task_id": "d4", "parent_id": "d3", "spawn_depth": 4}));
    let deep = seal_snapshot_text(&v.to_string(), &SECRET).unwrap();
    let message = refused(restore(&deep, StoreConfig::default(), &clock), "depth 4");
    assert!(message.contains("maxSpawnDepth is 4"), "{message}");
    let line = format!(
        "{}\n",
        json!({"op": "task", "task_id": "d4", "parent_id": "d3", "spawn_depth": 4})
    );
    let journal = seal_journal_text(&base, &line, &SECRET).unwrap();
    let message = refused(restore_all(&base, &journal, &clock), "journal depth 4");
    assert!(message.contains("maxSpawnDepth"), "{message}");
}
