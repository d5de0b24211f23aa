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

/// The protocol's first test vector, as the reference engine would send it (its
/// `Role` serialises snake_case: mlua-swarm 0.32.1, src/types.rs; only its
/// signing text capitalises the role).
fn reference_worker_bearer() -> String {
    encode(&json!({
        "agent_id": "agent-7",
        "role": "worker",
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
/// move bytes between fields and keep the signature. So an mlua-swarm store
/// never mints such a token, and refuses one presented as malformed.
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
    // The signature alone cannot tell...
    let signer = captoken::Signer::new(&SECRET, SigningFormat::MluaSwarm).unwrap();
    signer
        .verify(&captoken::CapToken::from_bearer(&shifted).unwrap())
        .unwrap();
    // ...the separator rule does, at step 1.
    for result in [
        store.verify(&shifted, Verb::FetchData, None).map(|_| ()),
        store.check(&shifted, Verb::FetchData, None).map(|_| ()),
        store.remint(&shifted).map(|_| ()),
        store.adopt(&shifted, Some("t1")).map(|_| ()),
    ] {
        assert_eq!(code(result), ErrorCode::MalformedToken);
    }
    assert_eq!(store.adopt(&w.bearer, Some("t1")), Ok(w.fingerprint));
    assert_eq!(uses_left(&store, &w.fingerprint), Some(5));
    assert!(!store.record(&w.fingerprint).unwrap().revoked);
    let grant = store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    assert_eq!(grant.scopes, vec!["a".to_owned(), "b".to_owned()]);
}

#[test]
fn an_mlua_swarm_store_never_mints_a_separator_into_a_signed_field() {
    let (mut ml, _clock) = store_with(mlua());
    let store = &mut ml;
    let op = operator(store);
    for (agent, scopes) in [
        ("x|Worker|*,z", vec!["y"]),
        ("x|Operator", vec!["*"]),
        ("x", vec!["a,b"]),
        ("x", vec!["ok", "z|Worker|y"]),
    ] {
        let options = MintOptions {
            scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
            ..MintOptions::default()
        };
        assert_eq!(
            code(store.mint(agent, Role::Worker, options.clone())),
            ErrorCode::InvalidArgument,
            "{agent} {scopes:?}"
        );
        assert_eq!(
            code(store.attach_operator(agent, options)),
            ErrorCode::InvalidArgument
        );
    }
    // A task id feeds the agent id `worker-of-<task id>`: refused at the start.
    assert_eq!(
        code(store.start_task(&op.bearer, Some("x|Operator|*"))),
        ErrorCode::InvalidArgument
    );
    assert!(store.tasks().is_empty());
    assert_eq!(store.len(), 1);
    // The same names are fine in v2, whose signing input is unambiguous.
    let (mut v2, _clock) = self::store();
    let v2_op = operator(&mut v2);
    v2.start_task(&v2_op.bearer, Some("x|Operator|*")).unwrap();
    let w = v2
        .dispatch_attempt(&v2_op.bearer, "x|Operator|*", MintOptions::default())
        .unwrap();
    assert_eq!(w.token.agent_id, "worker-of-x|Operator|*");
}

/// The forged Operator of the security issue: a Worker's token whose agent
/// id is `worker-of-x|Operator|*`, re-read as an Operator token. It cannot be
/// made (above), and a forged one is refused by every way in, including a
/// second store with the same secret and no record of it.
#[test]
fn a_forged_mlua_swarm_operator_is_refused_by_every_way_in() {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = store_on(&SECRET, mlua(), &clock);
    // Forge the token the reference engine would have minted.
    let signer = captoken::Signer::new(&SECRET, SigningFormat::MluaSwarm).unwrap();
    let mut token = captoken::CapToken {
        v: None,
        agent_id: "worker-of-x".into(),
        role: Role::Operator,
        scopes: vec!["*|Worker|*".into()],
        issued_at: T0,
        expire_at: T0 + TTL,
        max_uses: None,
        nonce: "00112233445566778899aabbccddeeff".into(),
        sig_hex: String::new(),
    };
    signer.seal(&mut token);
    let forged = token.to_bearer();
    assert_eq!(code(store.adopt(&forged, None)), ErrorCode::MalformedToken);
    assert_eq!(
        code(store.start_task(&forged, Some("r"))),
        ErrorCode::MalformedToken
    );
    assert_eq!(
        code(store.verify(&forged, Verb::MintWorkerToken, None)),
        ErrorCode::MalformedToken
    );
    clock.advance(10 * 365 * 24 * 3600);
    assert_eq!(code(store.adopt(&forged, None)), ErrorCode::MalformedToken);
    assert!(store.is_empty());
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
