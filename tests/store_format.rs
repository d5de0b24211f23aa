//! Signing formats at the store level: one format per store, no downgrade,
//! interoperability with the reference engine's test vectors, and the
//! ambiguity of the `mlua-swarm` signing text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{
    CapTokenError, ErrorCode, Fingerprint, FixedClock, MintOptions, Role, SigningFormat,
    StoreConfig, TokenStore, Verb,
};
use common::*;
use serde_json::json;
use std::sync::Arc;

fn mlua() -> StoreConfig {
    StoreConfig {
        format: SigningFormat::MluaSwarm,
        ..StoreConfig::default()
    }
}

#[test]
fn each_store_mints_its_own_format() {
    let (mut v2, clock) = store();
    let mut ml = store_on(&SECRET, mlua(), &clock);
    let a = worker(&mut v2, "t1", None);
    let b = worker(&mut ml, "t1", None);
    assert_eq!(decode(&a.bearer)["v"], json!(2));
    assert!(decode(&b.bearer).get("v").is_none());
    assert_eq!(a.token.v, Some(2));
    assert_eq!(b.token.v, None);
    v2.verify(&a.bearer, Verb::FetchData, None).unwrap();
    ml.verify(&b.bearer, Verb::FetchData, None).unwrap();
}

#[test]
fn neither_format_is_accepted_by_a_store_of_the_other_both_ways() {
    let (mut v2, clock) = store();
    let mut ml = store_on(&SECRET, mlua(), &clock);
    let v2_op = operator(&mut v2);
    let ml_op = operator(&mut ml);
    let v2_w = worker(&mut v2, "t1", Some(2));
    let ml_w = worker(&mut ml, "t1", Some(2));

    for (store, foreign) in [(&mut ml, [&v2_op, &v2_w]), (&mut v2, [&ml_op, &ml_w])] {
        for m in foreign {
            assert_eq!(
                store.verify(&m.bearer, Verb::FetchData, None),
                Err(CapTokenError::BadSignature)
            );
            assert_eq!(
                store.check(&m.bearer, Verb::Heartbeat, None),
                Err(CapTokenError::BadSignature)
            );
            assert_eq!(
                store.adopt(&m.bearer, None),
                Err(CapTokenError::BadSignature)
            );
            assert_eq!(store.remint(&m.bearer), Err(CapTokenError::BadSignature));
            assert_eq!(
                store.start_task(&m.bearer, Some("x")),
                Err(CapTokenError::BadSignature)
            );
        }
    }
    // A v2 token stripped of its marker is not a valid mlua-swarm token, and an
    // mlua-swarm token given the marker is not a valid v2 token.
    let mut stripped = decode(&v2_w.bearer);
    stripped.as_object_mut().unwrap().remove("v");
    assert_eq!(
        ml.verify(&encode(&stripped), Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        v2.verify(&encode(&stripped), Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    let marked = tamper(&ml_w.bearer, "v", json!(2));
    assert_eq!(
        v2.verify(&marked, Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        ml.verify(&marked, Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    // Nothing was spent or recorded by any of it.
    assert_eq!(uses_left(&v2, &v2_w.fingerprint), Some(2));
    assert_eq!(uses_left(&ml, &ml_w.fingerprint), Some(2));
    assert_eq!(v2.len(), 2);
    assert_eq!(ml.len(), 2);
    assert!(v2.tasks().is_empty() && ml.tasks().is_empty());
}

fn spec_secret() -> Vec<u8> {
    (1..=32).collect()
}

/// The SPEC's first test vector, as the reference engine would send it.
fn reference_worker_bearer() -> String {
    encode(&json!({
        "agent_id": "agent-7",
        "role": "Worker",
        "scopes": ["read", "write"],
        "issued_at": 1_764_150_000u64,
        "expire_at": 1_764_151_800u64,
        "max_uses": 3,
        "nonce": "00112233445566778899aabbccddeeff",
        "sig_hex": "fde2cdfb79f02bd21b58fd16246b5d07eba932140fb3f2153ab438133f45b2dc",
    }))
}

fn reference_operator_bearer() -> String {
    encode(&json!({
        "agent_id": "op-1",
        "role": "operator",
        "scopes": ["*"],
        "issued_at": 1_764_150_000u64,
        "expire_at": 1_764_236_400u64,
        "max_uses": null,
        "nonce": "ffeeddccbbaa99887766554433221100",
        "sig_hex": "4907bc2ff879fab8e00ef8ed3fb0bb70b3a7ebee95004e96ccd117014d1b8619",
    }))
}

#[test]
fn reference_engine_tokens_are_adopted_and_decided_by_an_mlua_swarm_store() {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = store_on(&spec_secret(), mlua(), &clock);
    let fp = store.adopt(&reference_worker_bearer(), Some("t1")).unwrap();
    assert_eq!(
        fp.to_string(),
        "5947d7c33d783f94b3b4c1a96ebc8991ed28f1b069b71e03376cba8caa98a720"
    );
    assert_eq!(
        fp,
        Fingerprint::of_nonce("00112233445566778899aabbccddeeff")
    );
    let grant = store
        .verify(&reference_worker_bearer(), Verb::FetchPrompt, Some("t1"))
        .unwrap();
    assert_eq!(grant.agent_id, "agent-7");
    assert_eq!(grant.role, Role::Worker);
    assert_eq!(grant.scopes, vec!["read".to_owned(), "write".to_owned()]);
    assert_eq!(grant.uses_left, Some(2));

    let op = store.adopt(&reference_operator_bearer(), None).unwrap();
    let root = store
        .start_task(&reference_operator_bearer(), Some("r"))
        .unwrap();
    assert_eq!(root.spawn_depth, 0);
    assert_eq!(store.record(&op).unwrap().token.role, Role::Operator);

    // The reference worker expires on time.
    clock.set(1_764_151_800);
    assert_eq!(
        store.verify(&reference_worker_bearer(), Verb::FetchData, None),
        Err(CapTokenError::TokenExpired { fingerprint: fp })
    );

    // With another secret, or in a v2 store, the same tokens are refused.
    clock.set(T0);
    let mut wrong_secret = store_on(&SECRET, mlua(), &clock);
    assert_eq!(
        wrong_secret.adopt(&reference_worker_bearer(), None),
        Err(CapTokenError::BadSignature)
    );
    let mut v2 = store_on(&spec_secret(), StoreConfig::default(), &clock);
    assert_eq!(
        v2.adopt(&reference_worker_bearer(), None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        v2.adopt(&reference_operator_bearer(), None),
        Err(CapTokenError::BadSignature)
    );
}

#[test]
fn tokens_minted_in_mlua_swarm_format_follow_the_reference_signing_text() {
    // Re-sign a token minted here with the reference recipe and compare.
    use hmac::{Hmac, Mac};
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = store_on(&spec_secret(), mlua(), &clock);
    let m = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["read".into(), "write".into()]),
                max_uses: Some(3),
                ..MintOptions::default()
            },
        )
        .unwrap();
    let text = format!(
        "agent-7|Worker|read,write|{}|{}|Some(3)|{}",
        T0,
        T0 + TTL,
        nonce_of(&m.bearer)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&spec_secret()).unwrap();
    mac.update(text.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m.token.sig_hex, expected);
}

// ---- the mlua-swarm text's ambiguity must not let a holder change its token ----

/// In the mlua-swarm text, `|` and `,` inside agent_id or scopes let a holder
/// move bytes between fields and keep the signature. The store's record is the
/// authority: a presented token whose fields differ from its record is refused.
#[test]
fn a_field_shifted_mlua_swarm_token_cannot_change_its_scopes() {
    let (mut store, _clock) = store_with(mlua());
    let w = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["a".into(), "b".into()]),
                task_id: Some("t1".into()),
                max_uses: Some(5),
                ttl_secs: None,
            },
        )
        .unwrap();
    let shifted = tamper(&w.bearer, "scopes", json!(["a,b"]));
    assert_eq!(
        store.verify(&shifted, Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        store.check(&shifted, Verb::FetchData, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(store.remint(&shifted), Err(CapTokenError::BadSignature));
    assert_eq!(
        store.adopt(&shifted, Some("t1")),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(store.adopt(&w.bearer, Some("t1")), Ok(w.fingerprint));
    assert_eq!(uses_left(&store, &w.fingerprint), Some(5));
    assert!(!store.record(&w.fingerprint).unwrap().revoked);
    let grant = store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    assert_eq!(grant.scopes, vec!["a".to_owned(), "b".to_owned()]);
}

#[test]
fn a_field_shifted_mlua_swarm_token_cannot_widen_to_unrestricted_scopes() {
    let (mut store, _clock) = store_with(mlua());
    // An agent id the orchestrator took from elsewhere, containing `|` and `,`.
    let w = store
        .mint(
            "x|Worker|*,z",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["y".into()]),
                task_id: Some("t1".into()),
                ..MintOptions::default()
            },
        )
        .unwrap();
    let mut json = decode(&w.bearer);
    json["agent_id"] = json!("x");
    json["scopes"] = json!(["*", "z|Worker|y"]);
    let shifted = encode(&json);
    // The signing text is unchanged: the signature alone cannot tell.
    let signer = captoken::Signer::new(&SECRET, SigningFormat::MluaSwarm).unwrap();
    let token = captoken::CapToken::from_bearer(&shifted).unwrap();
    signer.verify(&token).unwrap();
    // The store can.
    assert_eq!(
        code(store.verify(&shifted, Verb::FetchData, None)),
        ErrorCode::BadSignature
    );
    assert_eq!(code(store.remint(&shifted)), ErrorCode::BadSignature);
    let fresh = store.remint(&w.bearer).unwrap();
    assert_eq!(fresh.token.scopes, vec!["y".to_owned()]);
    assert_eq!(fresh.token.agent_id, "x|Worker|*,z");
}

#[test]
fn a_field_shifted_mlua_swarm_worker_cannot_become_an_operator() {
    let (mut store, clock) = store_with(mlua());
    let w = store
        .mint("x|Operator", Role::Worker, bound("t1", Some(3)))
        .unwrap();
    let mut json = decode(&w.bearer);
    json["agent_id"] = json!("x");
    json["role"] = json!("operator");
    json["scopes"] = json!(["Worker|*"]);
    let escalated = encode(&json);
    let token = captoken::CapToken::from_bearer(&escalated).unwrap();
    let signer = captoken::Signer::new(&SECRET, SigningFormat::MluaSwarm).unwrap();
    signer.verify(&token).unwrap();
    for verb in [Verb::Heartbeat, Verb::MarkPass, Verb::ReadTaskState] {
        assert_eq!(
            store.verify(&escalated, verb, Some("other")),
            Err(CapTokenError::BadSignature),
            "{verb}"
        );
    }
    assert_eq!(
        code(store.start_task(&escalated, Some("root"))),
        ErrorCode::BadSignature
    );
    assert!(store.tasks().is_empty());
    // Nor does it outlive the worker's expiry as an "operator".
    clock.advance(TTL);
    assert_eq!(
        code(store.verify(&escalated, Verb::Heartbeat, None)),
        ErrorCode::BadSignature
    );
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
}

#[test]
fn v2_signs_fields_unambiguously() {
    let (mut store, _clock) = store();
    let w = store
        .mint(
            "a|b",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["a".into(), "b".into()]),
                ..MintOptions::default()
            },
        )
        .unwrap();
    for (field, value) in [
        ("scopes", json!(["a,b"])),
        ("agent_id", json!("a")),
        ("scopes", json!(["a", "b", ""])),
    ] {
        assert_eq!(
            store.verify(&tamper(&w.bearer, field, value), Verb::FetchData, None),
            Err(CapTokenError::BadSignature)
        );
    }
}

#[test]
fn restore_refuses_a_snapshot_of_the_other_format() {
    let (mut v2, clock) = store();
    let _ = worker(&mut v2, "t1", None);
    let mut ml = store_on(&SECRET, mlua(), &clock);
    let _ = worker(&mut ml, "t1", None);
    let err = TokenStore::restore(
        &v2.snapshot().unwrap(),
        &SECRET,
        mlua(),
        Box::new(Arc::clone(&clock)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid);
    let err = restore(&ml.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid);
    // Each restores into its own format.
    restore(&v2.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    let back = TokenStore::restore(
        &ml.snapshot().unwrap(),
        &SECRET,
        mlua(),
        Box::new(Arc::clone(&clock)),
    )
    .unwrap();
    assert_eq!(back.len(), 1);
}
