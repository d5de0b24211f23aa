//! Lifecycle: revoke, revoke_task, remint, adopt, purge_expired.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{
    CapTokenError, ErrorCode, Fingerprint, MintOptions, Minted, Role, StoreConfig, TokenStore, Verb,
};
use common::*;
use serde_json::json;

fn live(store: &TokenStore, m: &Minted) -> bool {
    !store.record(&m.fingerprint).unwrap().revoked
}

// ---- revoke ----------------------------------------------------------------

#[test]
fn revoke_by_fingerprint_returns_true_once() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(3));
    let other = worker(&mut store, "t1", Some(3));
    assert!(store.revoke(&w.fingerprint));
    assert!(!store.revoke(&w.fingerprint));
    assert!(!store.revoke(&w.fingerprint));
    assert!(store.record(&w.fingerprint).unwrap().revoked);
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    assert_eq!(
        store.verify(&w.bearer, Verb::FetchData, None),
        Err(CapTokenError::TokenRevoked {
            fingerprint: w.fingerprint
        })
    );
    // Unknown fingerprints are not revoked, and nothing else is touched.
    assert!(!store.revoke(&Fingerprint::of_nonce("never minted")));
    assert!(live(&store, &other));
    store.verify(&other.bearer, Verb::FetchData, None).unwrap();
}

#[test]
fn revoke_task_reaches_children_and_grandchildren_but_not_siblings() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("a")).unwrap();
    store.start_task(&op.bearer, Some("b")).unwrap();
    let wa = store
        .dispatch_attempt(&op.bearer, "a", MintOptions::default())
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("a"), Some("a1"))
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("a"), Some("a2"))
        .unwrap();
    let wa1 = store
        .dispatch_attempt(&op.bearer, "a1", MintOptions::default())
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("a1"), Some("a1x"))
        .unwrap();
    let wa1x = store
        .dispatch_attempt(&op.bearer, "a1x", MintOptions::default())
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("a1x"), Some("a1xy"))
        .unwrap();
    let wa1xy = store
        .dispatch_attempt(&op.bearer, "a1xy", MintOptions::default())
        .unwrap();
    let wa1xy_2 = worker(&mut store, "a1xy", Some(2));
    let wa2 = store
        .dispatch_attempt(&op.bearer, "a2", MintOptions::default())
        .unwrap();
    let wb = store
        .dispatch_attempt(&op.bearer, "b", MintOptions::default())
        .unwrap();
    let observer = store
        .mint("obs", Role::Observer, bound("a1", None))
        .unwrap();

    // a1's subtree: a1, a1x, a1xy (4 worker tokens plus the bound observer).
    assert_eq!(store.revoke_task("a1"), 5);
    for m in [&wa1, &wa1x, &wa1xy, &wa1xy_2, &observer] {
        assert!(!live(&store, m), "{}", m.token.agent_id);
        assert_eq!(
            code(store.verify(&m.bearer, Verb::FetchData, None)),
            if m.token.role == Role::Worker {
                ErrorCode::TokenRevoked
            } else {
                ErrorCode::RoleViolation
            }
        );
    }
    for m in [&op, &wa, &wa2, &wb] {
        assert!(live(&store, m), "{}", m.token.agent_id);
    }
    store
        .verify(&wa2.bearer, Verb::FetchPrompt, Some("a2"))
        .unwrap();
    store
        .verify(&wb.bearer, Verb::FetchPrompt, Some("b"))
        .unwrap();
    store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
    // Again: nothing newly revoked.
    assert_eq!(store.revoke_task("a1"), 0);
    // The root: a and a2 now; b and the unbound operator stay.
    assert_eq!(store.revoke_task("a"), 2);
    assert!(!live(&store, &wa) && !live(&store, &wa2));
    assert!(live(&store, &wb) && live(&store, &op));
    // Tasks themselves stay tracked.
    assert_eq!(store.tasks().len(), 6);
}

#[test]
fn revoke_task_of_a_leaf_or_an_untracked_task() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("p")).unwrap();
    let wp = store
        .dispatch_attempt(&op.bearer, "p", MintOptions::default())
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("p"), Some("leaf"))
        .unwrap();
    let leaf = store
        .dispatch_attempt(&op.bearer, "leaf", MintOptions::default())
        .unwrap();
    let ext = worker(&mut store, "ext", None);
    let ext2 = worker(&mut store, "ext-2", None);
    assert_eq!(store.revoke_task("leaf"), 1);
    assert!(!live(&store, &leaf));
    assert!(live(&store, &wp), "a parent is not below its child");
    assert_eq!(store.revoke_task("ext"), 1);
    assert!(!live(&store, &ext));
    assert!(live(&store, &ext2), "ext-2 is not ext");
    assert_eq!(store.revoke_task("nothing-here"), 0);
}

// ---- remint ----------------------------------------------------------------

#[test]
fn remint_keeps_agent_scopes_task_and_uses_left_with_a_fresh_expiry() {
    let (mut store, clock) = store();
    let w = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["read".into(), "write".into()]),
                max_uses: Some(5),
                task_id: Some("t1".into()),
                ttl_secs: Some(30),
            },
        )
        .unwrap();
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    clock.advance(50);
    // It arrived late: expired (20 s ago, within one 30 s lifetime).
    assert_eq!(
        code(store.verify(&w.bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    let fresh = store.remint(&w.bearer).unwrap();
    assert_ne!(fresh.fingerprint, w.fingerprint);
    assert_ne!(nonce_of(&fresh.bearer), nonce_of(&w.bearer));
    assert_eq!(fresh.token.agent_id, "agent-7");
    assert_eq!(fresh.token.role, Role::Worker);
    assert_eq!(
        fresh.token.scopes,
        vec!["read".to_owned(), "write".to_owned()]
    );
    assert_eq!(fresh.token.max_uses, Some(3));
    // The same lifetime, counted from now: a 30 s token stays a 30 s token.
    assert_eq!(fresh.token.issued_at, T0 + 50);
    assert_eq!(fresh.token.expire_at, T0 + 50 + 30);
    let record = store.record(&fresh.fingerprint).unwrap();
    assert_eq!(record.task_id.as_deref(), Some("t1"));
    assert_eq!(record.uses_left, Some(3));
    assert!(!record.revoked);
    // The old record is revoked; its uses are left as they were.
    let old = store.record(&w.fingerprint).unwrap();
    assert!(old.revoked);
    assert_eq!(old.uses_left, Some(3));

    let grant = store
        .verify(&fresh.bearer, Verb::PostResult, Some("t1"))
        .unwrap();
    assert_eq!(grant.uses_left, Some(2));
    assert_eq!(grant.task_id.as_deref(), Some("t1"));
    assert_eq!(
        code(store.verify(&fresh.bearer, Verb::PostResult, Some("t2"))),
        ErrorCode::TokenTaskMismatch
    );
}

/// Remint delivers a late token; it never revives a long-dead one nor
/// stretches its lifetime (the security issue: a 60 s token became an
/// 1800 s one, and a token expired a year ago came back).
#[test]
fn remint_refuses_tokens_expired_more_than_one_lifetime_ago() {
    let (mut store, clock) = store();
    let short = store.mint("w", Role::Worker, bound("t1", Some(2))).unwrap();
    let minute = store
        .mint(
            "w",
            Role::Worker,
            MintOptions {
                ttl_secs: Some(60),
                ..bound("t1", Some(2))
            },
        )
        .unwrap();
    clock.advance(TTL + TTL); // exactly one lifetime past the default expiry
    let len = store.len();
    assert_eq!(
        store.remint(&minute.bearer),
        Err(CapTokenError::TokenExpired {
            fingerprint: minute.fingerprint
        })
    );
    let fresh = store.remint(&short.bearer).unwrap();
    assert_eq!(fresh.token.expire_at - fresh.token.issued_at, TTL);
    clock.advance(365 * 24 * 3600);
    for m in [&short, &fresh] {
        assert_eq!(code(store.remint(&m.bearer)), {
            if m.fingerprint == short.fingerprint {
                ErrorCode::TokenRevoked
            } else {
                ErrorCode::TokenExpired
            }
        });
    }
    assert_eq!(store.len(), len + 1);
    assert!(!store.record(&minute.fingerprint).unwrap().revoked);
}

#[test]
fn after_remint_the_old_token_is_refused() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", None);
    let fresh = store.remint(&w.bearer).unwrap();
    assert_eq!(fresh.token.max_uses, None);
    assert_eq!(
        store.verify(&w.bearer, Verb::FetchPrompt, Some("t1")),
        Err(CapTokenError::TokenRevoked {
            fingerprint: w.fingerprint
        })
    );
    // And it cannot be reminted a second time (no forking of the budget).
    assert_eq!(
        store.remint(&w.bearer),
        Err(CapTokenError::TokenRevoked {
            fingerprint: w.fingerprint
        })
    );
    // The fresh one can be reminted in turn.
    let third = store.remint(&fresh.bearer).unwrap();
    assert_eq!(
        code(store.verify(&fresh.bearer, Verb::FetchData, None)),
        ErrorCode::TokenRevoked
    );
    store.verify(&third.bearer, Verb::FetchData, None).unwrap();
}

#[test]
fn revoked_exhausted_unknown_or_forged_tokens_cannot_be_reminted() {
    let (mut store, clock) = store();
    let mut twin = store_on(&SECRET, StoreConfig::default(), &clock);
    let mut foreign = store_on(&OTHER_SECRET, StoreConfig::default(), &clock);

    let revoked = worker(&mut store, "t1", Some(4));
    store.revoke(&revoked.fingerprint);
    let exhausted = worker(&mut store, "t1", Some(1));
    store
        .verify(&exhausted.bearer, Verb::FetchData, None)
        .unwrap();
    let via_task = worker(&mut store, "t9", Some(4));
    store.revoke_task("t9");
    let stranger = worker(&mut twin, "t1", Some(4));
    let alien = worker(&mut foreign, "t1", Some(4));
    let op = operator(&mut store);
    let obs = store
        .mint("obs", Role::Observer, MintOptions::default())
        .unwrap();
    let good = worker(&mut store, "t1", Some(4));
    // Expired, but less than one lifetime ago: still remintable.
    clock.advance(TTL + TTL / 2);

    let len = store.len();
    let records = store.records();
    assert_eq!(
        store.remint(&revoked.bearer),
        Err(CapTokenError::TokenRevoked {
            fingerprint: revoked.fingerprint
        })
    );
    assert_eq!(
        code(store.remint(&via_task.bearer)),
        ErrorCode::TokenRevoked
    );
    assert_eq!(
        store.remint(&exhausted.bearer),
        Err(CapTokenError::TokenUsesExhausted {
            fingerprint: exhausted.fingerprint
        })
    );
    assert_eq!(
        store.remint(&stranger.bearer),
        Err(CapTokenError::TokenNotFound {
            fingerprint: stranger.fingerprint
        })
    );
    assert_eq!(
        store.remint(&alien.bearer),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        store.remint(&tamper(&good.bearer, "max_uses", json!(1000))),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        store.remint(&tamper(&good.bearer, "scopes", json!(["admin"]))),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(code(store.remint("garbage")), ErrorCode::MalformedToken);
    assert_eq!(code(store.remint(&op.bearer)), ErrorCode::InvalidArgument);
    assert_eq!(code(store.remint(&obs.bearer)), ErrorCode::InvalidArgument);
    assert_eq!(store.len(), len, "a failed remint mints nothing");
    assert_eq!(store.records(), records, "a failed remint changes nothing");
    // The good, expired one can.
    let fresh = store.remint(&good.bearer).unwrap();
    assert_eq!(fresh.token.max_uses, Some(4));
}

#[test]
fn remint_never_widens() {
    let (mut store, _clock) = store();
    for (scopes, max_uses) in [
        (vec!["read".to_owned()], Some(1)),
        (vec!["a".to_owned(), "b".to_owned()], Some(7)),
        (vec!["*".to_owned()], None),
    ] {
        let w = store
            .mint(
                "agent-7",
                Role::Worker,
                MintOptions {
                    scopes: Some(scopes.clone()),
                    max_uses,
                    task_id: Some("t1".into()),
                    ttl_secs: None,
                },
            )
            .unwrap();
        if max_uses.is_some() {
            store.verify(&w.bearer, Verb::FetchData, None).ok();
        }
        let left = uses_left(&store, &w.fingerprint);
        if left == Some(0) {
            assert_eq!(code(store.remint(&w.bearer)), ErrorCode::TokenUsesExhausted);
            continue;
        }
        let fresh = store.remint(&w.bearer).unwrap();
        assert_eq!(fresh.token.scopes, scopes);
        assert_eq!(fresh.token.max_uses, left);
        assert_eq!(fresh.token.role, Role::Worker);
        assert_eq!(fresh.token.agent_id, w.token.agent_id);
        assert_eq!(
            store.record(&fresh.fingerprint).unwrap().task_id,
            store.record(&w.fingerprint).unwrap().task_id
        );
        // Together, old and new can spend no more than the old had left.
        let mut spent = 0;
        for bearer in [&w.bearer, &fresh.bearer] {
            while store.verify(bearer, Verb::FetchData, None).is_ok() {
                spent += 1;
                if spent > 100 {
                    break;
                }
            }
        }
        match left {
            Some(n) => assert_eq!(spent, n),
            None => assert!(spent > 100),
        }
    }
}

#[test]
fn remint_of_an_untracked_or_unbound_worker_keeps_it_that_way() {
    let (mut store, _clock) = store();
    let ext = worker(&mut store, "ext", Some(2));
    let fresh = store.remint(&ext.bearer).unwrap();
    assert_eq!(
        store.record(&fresh.fingerprint).unwrap().task_id.as_deref(),
        Some("ext")
    );
    let loose = store
        .mint("loose", Role::Worker, MintOptions::default())
        .unwrap();
    let fresh = store.remint(&loose.bearer).unwrap();
    assert_eq!(store.record(&fresh.fingerprint).unwrap().task_id, None);
}

// ---- adopt -----------------------------------------------------------------

#[test]
fn adopt_records_a_token_minted_elsewhere_with_the_same_secret() {
    let (mut store, clock) = store();
    let mut elsewhere = store_on(&SECRET, StoreConfig::default(), &clock);
    let m = elsewhere
        .mint(
            "remote",
            Role::Worker,
            MintOptions {
                max_uses: Some(3),
                scopes: Some(vec!["read".into()]),
                ..MintOptions::default()
            },
        )
        .unwrap();
    assert_eq!(
        code(store.verify(&m.bearer, Verb::FetchData, None)),
        ErrorCode::TokenNotFound
    );
    let fp = store.adopt(&m.bearer, Some("t1")).unwrap();
    assert_eq!(fp, m.fingerprint);
    let record = store.record(&fp).unwrap();
    assert_eq!(record.uses_left, Some(3));
    assert_eq!(record.task_id.as_deref(), Some("t1"));
    assert!(!record.revoked);
    assert_eq!(record.token.agent_id, "remote");
    assert_eq!(record.token.scopes, vec!["read".to_owned()]);
    assert_eq!(record.token.nonce, "");
    let grant = store
        .verify(&m.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    assert_eq!(grant.uses_left, Some(2));
    assert_eq!(grant.task_id.as_deref(), Some("t1"));

    // Adopted without a task: unbound.
    let op = elsewhere
        .attach_operator("op", MintOptions::default())
        .unwrap();
    let fp = store.adopt(&op.bearer, None).unwrap();
    assert_eq!(store.record(&fp).unwrap().task_id, None);
    store.start_task(&op.bearer, Some("r")).unwrap();
}

#[test]
fn adopting_a_recorded_token_changes_nothing() {
    let (mut store, clock) = store();
    let mut elsewhere = store_on(&SECRET, StoreConfig::default(), &clock);
    let m = worker(&mut elsewhere, "t1", Some(3));
    store.adopt(&m.bearer, Some("t1")).unwrap();
    store.verify(&m.bearer, Verb::FetchData, None).unwrap();
    store.verify(&m.bearer, Verb::FetchData, None).unwrap();
    assert_eq!(uses_left(&store, &m.fingerprint), Some(1));
    // Adopting again neither resets the budget nor rebinds.
    assert_eq!(store.adopt(&m.bearer, Some("t2")).unwrap(), m.fingerprint);
    assert_eq!(store.adopt(&m.bearer, None).unwrap(), m.fingerprint);
    let record = store.record(&m.fingerprint).unwrap();
    assert_eq!(record.uses_left, Some(1));
    assert_eq!(record.task_id.as_deref(), Some("t1"));
    store.verify(&m.bearer, Verb::FetchData, None).unwrap();
    assert_eq!(
        code(store.verify(&m.bearer, Verb::FetchData, None)),
        ErrorCode::TokenUsesExhausted
    );
    store.adopt(&m.bearer, Some("t1")).unwrap();
    assert_eq!(uses_left(&store, &m.fingerprint), Some(0));
    // Nor un-revokes.
    store.revoke(&m.fingerprint);
    store.adopt(&m.bearer, Some("t1")).unwrap();
    assert!(store.record(&m.fingerprint).unwrap().revoked);
    // A token minted by this very store likewise.
    let own = worker(&mut store, "t1", Some(2));
    store.verify(&own.bearer, Verb::FetchData, None).unwrap();
    store.adopt(&own.bearer, None).unwrap();
    let record = store.record(&own.fingerprint).unwrap();
    assert_eq!(record.uses_left, Some(1));
    assert_eq!(record.task_id.as_deref(), Some("t1"));
    assert_eq!(store.len(), 2);
}

#[test]
fn adopt_refuses_what_verify_would_refuse_before_the_record() {
    let (mut store, clock) = store();
    let mut foreign = store_on(&OTHER_SECRET, StoreConfig::default(), &clock);
    let mut elsewhere = store_on(&SECRET, StoreConfig::default(), &clock);
    let alien = worker(&mut foreign, "t1", None);
    assert_eq!(
        store.adopt(&alien.bearer, None),
        Err(CapTokenError::BadSignature)
    );
    let m = worker(&mut elsewhere, "t1", None);
    assert_eq!(
        store.adopt(&tamper(&m.bearer, "max_uses", json!(5)), None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        store.adopt(&tamper(&m.bearer, "expire_at", json!(T0 + 999_999)), None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(code(store.adopt("%%%", None)), ErrorCode::MalformedToken);
    assert_eq!(
        code(store.adopt(&m.bearer, Some(""))),
        ErrorCode::InvalidArgument
    );
    let op = elsewhere.attach_operator("op", ttl(5)).unwrap();
    clock.advance(TTL);
    assert_eq!(
        store.adopt(&m.bearer, Some("t1")),
        Err(CapTokenError::TokenExpired {
            fingerprint: m.fingerprint
        })
    );
    assert!(store.is_empty(), "refused adoptions record nothing");
    // Operators are exempt from expiry, here too.
    assert_eq!(store.adopt(&op.bearer, None).unwrap(), op.fingerprint);
    assert_eq!(store.len(), 1);
}

// ---- purge -----------------------------------------------------------------

#[test]
fn purge_removes_expired_records_and_keeps_operators() {
    let (mut store, clock) = store();
    let op = store.attach_operator("op", ttl(10)).unwrap();
    let short = store.mint("w", Role::Worker, ttl(10)).unwrap();
    let obs = store.mint("o", Role::Observer, ttl(10)).unwrap();
    let sen = store.mint("s", Role::Senior, ttl(11)).unwrap();
    let long = store.mint("w2", Role::Worker, ttl(1000)).unwrap();
    clock.set(T0 + 9);
    assert_eq!(store.purge_expired(), 0);
    clock.set(T0 + 10);
    assert_eq!(store.purge_expired(), 2);
    assert_eq!(store.record(&short.fingerprint), None);
    assert_eq!(store.record(&obs.fingerprint), None);
    assert!(store.record(&sen.fingerprint).is_some());
    assert!(store.record(&op.fingerprint).is_some());
    assert!(store.record(&long.fingerprint).is_some());
    assert_eq!(store.len(), 3);
    // A purged token is still refused as expired (step 3 comes before lookup).
    assert_eq!(
        code(store.verify(&short.bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    clock.set(T0 + 1_000_000);
    assert_eq!(store.purge_expired(), 2);
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(store.len(), 1);
    store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
    // An expired token's record is gone, so it cannot be reminted either.
    assert_eq!(code(store.remint(&long.bearer)), ErrorCode::TokenNotFound);
}

#[test]
fn purge_keeps_revoked_but_live_records_and_tasks() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "t", MintOptions::default())
        .unwrap();
    store.revoke(&w.fingerprint);
    assert_eq!(store.purge_expired(), 0);
    assert!(store.record(&w.fingerprint).unwrap().revoked);
    clock.advance(TTL);
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.tasks().len(), 1);
}

#[test]
fn an_empty_store_reports_empty() {
    let (mut store, _clock) = store();
    assert!(store.is_empty());
    assert_eq!(store.len(), 0);
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(store.revoke_task("x"), 0);
    assert!(store.records().is_empty());
    let _ = operator(&mut store);
    assert!(!store.is_empty());
    assert_eq!(store.records().len(), 1);
}
