//! Snapshot and restore: round trips keep every decision, snapshots hold no
//! nonce, and every corrupted variant is refused with ERR_SNAPSHOT_INVALID.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{
    CapTokenError, ErrorCode, FixedClock, MintOptions, Minted, Role, SigningFormat, StoreConfig,
    TokenStore, Verb,
};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

struct Rich {
    store: TokenStore,
    clock: Arc<FixedClock>,
    minted: Vec<Minted>,
}

/// A store with a bit of everything: tasks three deep, budgets spent,
/// revoked, exhausted, expired and untracked-bound tokens, every role.
fn rich(config: StoreConfig) -> Rich {
    let (mut store, clock) = store_with(config);
    let mut minted = Vec::new();
    let op = store.attach_operator("op-1", uses(50)).unwrap();
    let op2 = store.attach_operator("op-2", ttl(5)).unwrap();
    store.start_task(&op.bearer, Some("root")).unwrap();
    store.start_task(&op.bearer, Some("other-root")).unwrap();
    let w0 = store
        .dispatch_attempt(&op.bearer, "root", uses(20))
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("root"), Some("child"))
        .unwrap();
    let w1 = store
        .dispatch_attempt(&op.bearer, "child", MintOptions::default())
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("child"), Some("grandchild"))
        .unwrap();
    let w2 = store
        .dispatch_attempt(&op.bearer, "grandchild", uses(3))
        .unwrap();
    let revoked = store.dispatch_attempt(&op.bearer, "root", uses(4)).unwrap();
    store.revoke(&revoked.fingerprint);
    let exhausted = worker(&mut store, "child", Some(1));
    store
        .verify(&exhausted.bearer, Verb::FetchPrompt, Some("child"))
        .unwrap();
    let untracked = worker(&mut store, "ext-1", Some(6));
    let one_time = worker(&mut store, "other-root", Some(1));
    let short = store
        .mint(
            "short",
            Role::Worker,
            MintOptions {
                ttl_secs: Some(10),
                task_id: Some("root".into()),
                max_uses: Some(9),
                scopes: Some(vec!["read".into(), "write".into()]),
            },
        )
        .unwrap();
    let observer = store.mint("obs", Role::Observer, uses(5)).unwrap();
    let senior = store
        .mint("sen", Role::Senior, MintOptions::default())
        .unwrap();
    let loose = store
        .mint("loose", Role::Worker, MintOptions::default())
        .unwrap();
    store.verify(&w0.bearer, Verb::FetchData, None).unwrap();
    clock.advance(20);
    minted.extend([
        op, op2, w0, w1, w2, revoked, exhausted, untracked, one_time, short, observer, senior,
        loose,
    ]);
    Rich {
        store,
        clock,
        minted,
    }
}

fn calls(minted: &[Minted]) -> Vec<(String, Verb, Option<&'static str>)> {
    let mut calls = Vec::new();
    for m in minted {
        for verb in [
            Verb::FetchPrompt,
            Verb::PostResult,
            Verb::FetchData,
            Verb::Heartbeat,
            Verb::ReadTaskState,
            Verb::ReadTrace,
            Verb::PauseLoop,
            Verb::StartTask,
        ] {
            for arg in [
                None,
                Some("root"),
                Some("child"),
                Some("grandchild"),
                Some("ext-1"),
            ] {
                calls.push((m.bearer.clone(), verb, arg));
            }
        }
    }
    calls
}

#[test]
fn a_round_trip_keeps_every_decision() {
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let text = store.snapshot().unwrap();
    let mut back = restore(&text, StoreConfig::default(), &clock).unwrap();
    assert_eq!(back.records(), store.records());
    assert_eq!(back.tasks(), store.tasks());
    assert_eq!(back.len(), store.len());

    // Checks first (spend nothing), then verifies, twice over, then the
    // compound calls, then once more after the clock moves.
    let calls = calls(&minted);
    for _round in 0..2 {
        for (bearer, verb, arg) in &calls {
            assert_eq!(
                back.check(bearer, *verb, *arg),
                store.check(bearer, *verb, *arg)
            );
        }
        for (bearer, verb, arg) in &calls {
            assert_eq!(
                back.verify(bearer, *verb, *arg),
                store.verify(bearer, *verb, *arg),
                "{verb} {arg:?}"
            );
        }
        assert_eq!(back.records(), store.records());
    }
    for (i, m) in minted.iter().enumerate() {
        let id = format!("new-{i}");
        assert_eq!(
            back.start_task(&m.bearer, Some(&id)),
            store.start_task(&m.bearer, Some(&id)),
            "{}",
            m.token.agent_id
        );
        let a = back.dispatch_attempt(&m.bearer, "grandchild", MintOptions::default());
        let b = store.dispatch_attempt(&m.bearer, "grandchild", MintOptions::default());
        assert_eq!(a.is_ok(), b.is_ok());
        if let (Err(a), Err(b)) = (&a, &b) {
            assert_eq!(a, b);
        }
    }
    assert_eq!(back.tasks(), store.tasks());
    for m in &minted {
        assert_eq!(back.record(&m.fingerprint), store.record(&m.fingerprint));
        assert_eq!(
            back.remint(&m.bearer).is_ok(),
            store.remint(&m.bearer).is_ok()
        );
    }
    clock.advance(TTL);
    for (bearer, verb, arg) in &calls {
        assert_eq!(
            back.verify(bearer, *verb, *arg),
            store.verify(bearer, *verb, *arg)
        );
    }
    assert_eq!(back.purge_expired(), store.purge_expired());
    assert_eq!(back.len(), store.len());
    for m in &minted {
        assert_eq!(
            back.record(&m.fingerprint).map(|r| r.uses_left),
            store.record(&m.fingerprint).map(|r| r.uses_left)
        );
    }
}

#[test]
fn a_round_trip_keeps_uses_left_revocation_and_binding() {
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let mut back = restore(&store.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    let by_agent = |name: &str| minted.iter().find(|m| m.token.agent_id == name).unwrap();
    // w0: 20 uses, spent one dispatch, one start_task... as recorded.
    for m in &minted {
        let (a, b) = (
            store.record(&m.fingerprint).unwrap(),
            back.record(&m.fingerprint).unwrap(),
        );
        assert_eq!(a.uses_left, b.uses_left);
        assert_eq!(a.revoked, b.revoked);
        assert_eq!(a.task_id, b.task_id);
        assert_eq!(a.token, b.token);
    }
    let exhausted = &minted[6];
    assert_eq!(
        back.verify(&exhausted.bearer, Verb::FetchPrompt, Some("child")),
        Err(CapTokenError::TokenUsesExhausted {
            fingerprint: exhausted.fingerprint
        })
    );
    let revoked = &minted[5];
    assert_eq!(
        code(back.verify(&revoked.bearer, Verb::FetchData, None)),
        ErrorCode::TokenRevoked
    );
    // The expired short worker and the expired-but-exempt operator.
    assert_eq!(
        code(back.verify(&by_agent("short").bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    back.verify(&by_agent("op-2").bearer, Verb::Heartbeat, None)
        .unwrap();
    // Depths survive: the grandchild's worker may spawn (depth 3), its child not.
    let w2 = &minted[4];
    let d3 = back.start_task(&w2.bearer, None).unwrap();
    assert_eq!(d3.spawn_depth, 3);
    let w3 = back
        .dispatch_attempt(&w2.bearer, &d3.task_id, uses(1))
        .unwrap();
    assert_eq!(
        back.start_task(&w3.bearer, None),
        Err(CapTokenError::SpawnDepthExceeded { current: 4, max: 4 })
    );
    // Untracked stays untracked.
    assert_eq!(
        code(back.start_task(&minted[7].bearer, None)),
        ErrorCode::TaskNotFound
    );
    // revoke_task reaches through restored parent links.
    let before = back.records().iter().filter(|(_, r)| r.revoked).count();
    assert!(back.revoke_task("root") >= 4);
    assert_eq!(
        code(back.verify(&w2.bearer, Verb::FetchData, None)),
        ErrorCode::TokenRevoked
    );
    assert!(back.records().iter().filter(|(_, r)| r.revoked).count() > before);
}

#[test]
fn snapshots_of_snapshots_are_stable_and_an_empty_store_round_trips() {
    let Rich {
        mut store, clock, ..
    } = rich(StoreConfig::default());
    let mut once = restore(&store.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    let mut twice = restore(&once.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    assert_eq!(
        normalise(&store.snapshot().unwrap()),
        normalise(&twice.snapshot().unwrap())
    );
    let (mut empty, clock) = common::store();
    let text = empty.snapshot().unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let mac = v.as_object_mut().unwrap().remove("mac").unwrap();
    let key_id = v.as_object_mut().unwrap().remove("key_id").unwrap();
    assert_eq!(mac.as_str().unwrap().len(), 64);
    assert_eq!(key_id.as_str().unwrap().len(), 16);
    assert!(text.starts_with("{\"version\":1,\"key_id\":\""), "{text}");
    assert_eq!(
        v,
        json!({"version": 1, "format": "v2", "records": [], "tasks": []})
    );
    assert!(restore(&text, StoreConfig::default(), &clock)
        .unwrap()
        .is_empty());
}

/// The snapshot as a value with its records in fingerprint order, and
/// without its MAC (which depends on that order).
fn normalise(text: &str) -> Value {
    let mut v: Value = serde_json::from_str(text).unwrap();
    v.as_object_mut().unwrap().remove("mac");
    let records = v["records"].as_array_mut().unwrap();
    records.sort_by(|a, b| {
        a["fingerprint"]
            .as_str()
            .unwrap()
            .cmp(b["fingerprint"].as_str().unwrap())
    });
    v
}

#[test]
fn the_snapshot_has_the_documented_shape() {
    let Rich {
        mut store, minted, ..
    } = rich(StoreConfig::default());
    let v = normalise(&store.snapshot().unwrap());
    assert_eq!(v["version"], json!(1));
    assert!(v["version"].is_u64());
    assert_eq!(v["format"], json!("v2"));
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), minted.len());
    for m in &minted {
        let r = records
            .iter()
            .find(|r| r["fingerprint"] == json!(m.fingerprint.to_string()))
            .unwrap();
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        for k in ["fingerprint", "token", "uses_left", "revoked", "task_id"] {
            assert!(r.get(k).is_some(), "{k}");
        }
        let t = &r["token"];
        assert!(t.get("nonce").is_none());
        assert_eq!(t["role"], json!(m.token.role.as_str()));
        assert_eq!(t["agent_id"], json!(m.token.agent_id));
        assert_eq!(t["scopes"], json!(m.token.scopes));
        assert_eq!(t["sig_hex"], json!(m.token.sig_hex));
        assert_eq!(t["v"], json!(2));
        assert_eq!(t["max_uses"], json!(m.token.max_uses));
        let record = store.record(&m.fingerprint).unwrap();
        assert_eq!(r["uses_left"], json!(record.uses_left));
        assert_eq!(r["revoked"], json!(record.revoked));
        assert_eq!(r["task_id"], json!(record.task_id));
    }
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    assert!(
        tasks.contains(&json!({"task_id": "grandchild", "parent_id": "child", "spawn_depth": 2}))
    );
    assert!(tasks.contains(&json!({"task_id": "root", "parent_id": null, "spawn_depth": 0})));
}

#[test]
fn the_snapshot_holds_no_nonce_and_no_secret() {
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let Rich {
            mut store, minted, ..
        } = rich(StoreConfig {
            format,
            ..StoreConfig::default()
        });
        let text = store.snapshot().unwrap();
        assert!(!minted.is_empty());
        for m in &minted {
            let nonce = nonce_of(&m.bearer);
            assert_eq!(nonce.len(), 32);
            assert!(!text.contains(&nonce), "snapshot contains a nonce");
            assert!(
                !text.contains(&nonce[..16]),
                "snapshot contains half a nonce"
            );
            assert!(!text.contains(&m.bearer), "snapshot contains a bearer");
            assert!(text.contains(&m.fingerprint.to_string()));
        }
        assert!(!text.contains("nonce"));
        assert!(!text.contains(&"07".repeat(32)));
        assert!(!text.contains(&String::from_utf8(SECRET.to_vec()).unwrap()));
        // Nor does any record read back from the store.
        for (_, record) in store.records() {
            assert_eq!(record.token.nonce, "");
        }
    }
}

#[test]
fn a_leaked_snapshot_lets_no_one_act_as_any_token() {
    // Rebuilding a bearer from a snapshot record needs the nonce; without it,
    // the best an attacker can do is guess, which fails the signature.
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let v: Value = serde_json::from_str(&store.snapshot().unwrap()).unwrap();
    let mut back = restore(&store.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    for r in v["records"].as_array().unwrap() {
        let mut token = r["token"].clone();
        token["nonce"] = json!("0".repeat(32));
        let bearer = encode(&token);
        assert_eq!(
            back.verify(&bearer, Verb::Heartbeat, None),
            Err(CapTokenError::BadSignature)
        );
    }
    assert!(!minted.is_empty());
}

// ---- corrupted snapshots -----------------------------------------------------

fn base() -> (Value, Arc<FixedClock>) {
    let Rich {
        mut store, clock, ..
    } = rich(StoreConfig::default());
    (normalise(&store.snapshot().unwrap()), clock)
}

/// `v` sealed with the test secret, so that restore looks below the seal.
/// A `version` of 1 is the sealed header's; any other stays in the body (a
/// duplicate field, refused).
fn sealed(v: &Value) -> String {
    let mut body = v.clone();
    if body["version"] == json!(1) {
        body.as_object_mut().unwrap().remove("version");
    }
    for field in ["key_id", "mac"] {
        body.as_object_mut().unwrap().remove(field);
    }
    captoken::snapshot::seal_snapshot_text(&body.to_string(), &SECRET).unwrap()
}

/// `v`, sealed, is refused for what it holds, not for its seal.
fn refused_sealed(v: &Value, clock: &Arc<FixedClock>, what: &str) {
    let err = restore(&sealed(v), StoreConfig::default(), clock)
        .err()
        .unwrap_or_else(|| panic!("{what}: a corrupted snapshot was restored"));
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "{what}: {err}");
    let text = err.to_string();
    assert!(
        !text.contains("seal") && !text.contains("secret"),
        "{what}: {text}"
    );
}

fn refused(text: &str, clock: &Arc<FixedClock>, what: &str) {
    match restore(text, StoreConfig::default(), clock) {
        Ok(_) => panic!("{what}: a corrupted snapshot was restored"),
        Err(err) => {
            assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "{what}: {err}");
            assert!(
                matches!(err, CapTokenError::SnapshotInvalid { .. }),
                "{what}"
            );
        }
    }
}

/// Index of the first record with this agent.
fn record_of(v: &Value, agent: &str) -> usize {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["token"]["agent_id"] == json!(agent))
        .unwrap()
}

fn task_of(v: &Value, id: &str) -> usize {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .position(|t| t["task_id"] == json!(id))
        .unwrap()
}

#[test]
fn the_unmodified_base_restores() {
    let (v, clock) = base();
    restore(&sealed(&v), StoreConfig::default(), &clock).unwrap();
    // A record without task_id means an unbound one.
    let mut v2 = v.clone();
    let i = record_of(&v2, "op-1");
    v2["records"][i].as_object_mut().unwrap().remove("task_id");
    let back = restore(&sealed(&v2), StoreConfig::default(), &clock).unwrap();
    assert_eq!(back.len(), v["records"].as_array().unwrap().len());
}

#[test]
fn truncated_or_non_json_text_is_refused() {
    let (v, clock) = base();
    let text = v.to_string();
    for cut in [
        0,
        1,
        text.len() / 4,
        text.len() / 2,
        text.len() - 2,
        text.len() - 1,
    ] {
        refused(&text[..cut], &clock, &format!("truncated at {cut}"));
    }
    for junk in [
        "",
        "null",
        "[]",
        "{}",
        "1",
        "\"snapshot\"",
        "{\"version\":1}",
        "garbage",
    ] {
        refused(junk, &clock, junk);
    }
    refused(&format!("{text} trailing"), &clock, "trailing text");
}

#[test]
fn a_wrong_or_missing_version_is_refused() {
    let (v, clock) = base();
    for version in [
        json!(0),
        json!(2),
        json!(-1),
        json!(1.5),
        json!("1"),
        json!(null),
        json!([1]),
        json!(u64::MAX),
    ] {
        let mut bad = v.clone();
        bad["version"] = version.clone();
        refused_sealed(&bad, &clock, &format!("version {version}"));
    }
    let mut missing = v.clone();
    missing.as_object_mut().unwrap().remove("version");
    // A sealed text always starts with version 1; without it, it is not sealed.
    refused(&missing.to_string(), &clock, "no version");
}

#[test]
fn unknown_or_missing_top_level_fields_are_refused() {
    let (v, clock) = base();
    for field in ["format", "records", "tasks"] {
        let mut bad = v.clone();
        bad.as_object_mut().unwrap().remove(field);
        refused_sealed(&bad, &clock, &format!("missing {field}"));
    }
    let mut extra = v.clone();
    extra["secret"] = json!("x");
    refused_sealed(&extra, &clock, "extra top-level field");
    for format in [json!("v3"), json!("V2"), json!(2), json!(null)] {
        let mut bad = v.clone();
        bad["format"] = format.clone();
        refused_sealed(&bad, &clock, &format!("format {format}"));
    }
}

#[test]
fn a_duplicate_fingerprint_is_refused() {
    let (v, clock) = base();
    let mut bad = v.clone();
    let copy = bad["records"][0].clone();
    bad["records"].as_array_mut().unwrap().push(copy);
    refused_sealed(&bad, &clock, "duplicate record");
    // Same fingerprint, otherwise different record.
    let mut bad = v.clone();
    let fp = bad["records"][0]["fingerprint"].clone();
    bad["records"][1]["fingerprint"] = fp;
    refused_sealed(&bad, &clock, "duplicate fingerprint");
}

#[test]
fn bad_fingerprints_and_signatures_are_refused() {
    let (v, clock) = base();
    let fp = v["records"][0]["fingerprint"].as_str().unwrap().to_owned();
    let sig = v["records"][0]["token"]["sig_hex"]
        .as_str()
        .unwrap()
        .to_owned();
    for value in [
        json!(fp.to_uppercase()),
        json!(&fp[..63]),
        json!(format!("{fp}0")),
        json!("zz".repeat(32)),
        json!(null),
        json!(5),
    ] {
        let mut bad = v.clone();
        bad["records"][0]["fingerprint"] = value.clone();
        if value == json!(fp) {
            continue;
        }
        refused_sealed(&bad, &clock, &format!("fingerprint {value}"));
    }
    for value in [
        json!(sig.to_uppercase()),
        json!(&sig[..62]),
        json!("g".repeat(64)),
        json!(""),
    ] {
        if value == json!(sig) {
            continue;
        }
        let mut bad = v.clone();
        bad["records"][0]["token"]["sig_hex"] = value.clone();
        refused_sealed(&bad, &clock, &format!("sig_hex {value}"));
    }
}

#[test]
fn negative_and_out_of_range_numbers_are_refused() {
    let (v, clock) = base();
    let limited = record_of(&v, "op-1"); // max_uses 50
    let over_u32 = json!(u64::from(u32::MAX) + 1);
    let over_safe = json!(1u64 << 53);
    let cases: Vec<(&str, &str, Value)> = vec![
        ("record", "uses_left", json!(-1)),
        ("token", "max_uses", json!(-1)),
        ("token", "issued_at", json!(-1)),
        ("token", "expire_at", json!(-1)),
        ("record", "uses_left", over_u32.clone()),
        ("token", "max_uses", over_u32),
        ("token", "issued_at", over_safe.clone()),
        ("token", "expire_at", over_safe),
        ("token", "expire_at", json!(u64::MAX)),
        ("token", "issued_at", json!(1.5)),
        ("record", "uses_left", json!(2.5)),
        ("token", "issued_at", json!("1764150000")),
        ("record", "uses_left", json!("3")),
    ];
    for (level, field, value) in cases {
        let mut bad = v.clone();
        let target = if level == "record" {
            &mut bad["records"][limited]
        } else {
            &mut bad["records"][limited]["token"]
        };
        target[field] = value.clone();
        refused_sealed(&bad, &clock, &format!("{field} = {value}"));
    }
    // Largest legal values restore.
    let mut ok = v.clone();
    ok["records"][limited]["token"]["expire_at"] = json!((1u64 << 53) - 1);
    ok["records"][limited]["token"]["max_uses"] = json!(u32::MAX);
    ok["records"][limited]["uses_left"] = json!(u32::MAX);
    restore(&sealed(&ok), StoreConfig::default(), &clock).unwrap();
    // Spawn depth: negative, over u32.
    for depth in [json!(-1), json!(u64::from(u32::MAX) + 1)] {
        let mut bad = v.clone();
        let i = task_of(&bad, "root");
        bad["tasks"][i]["spawn_depth"] = depth.clone();
        refused_sealed(&bad, &clock, &format!("spawn_depth {depth}"));
    }
}

#[test]
fn uses_left_must_fit_max_uses() {
    let (v, clock) = base();
    let limited = record_of(&v, "op-1"); // max_uses 50
    let unlimited = record_of(&v, "sen"); // max_uses null
    for (i, uses) in [
        (limited, json!(51)),
        (limited, json!(null)),
        (unlimited, json!(0)),
        (unlimited, json!(1)),
    ] {
        let mut bad = v.clone();
        bad["records"][i]["uses_left"] = uses.clone();
        refused_sealed(&bad, &clock, &format!("uses_left {uses}"));
    }
    let mut missing = v.clone();
    missing["records"][limited]
        .as_object_mut()
        .unwrap()
        .remove("uses_left");
    refused(
        &missing.to_string(),
        &clock,
        "missing uses_left on a limited token",
    );
    let mut ok = v.clone();
    ok["records"][limited]["uses_left"] = json!(50);
    restore(&sealed(&ok), StoreConfig::default(), &clock).unwrap();
}

#[test]
fn roles_must_be_wire_names() {
    let (v, clock) = base();
    let i = record_of(&v, "op-1");
    for role in [
        json!("admin"),
        json!("Operator"),
        json!("Worker"),
        json!("OPERATOR"),
        json!(" operator"),
        json!(""),
        json!(0),
        json!(null),
    ] {
        let mut bad = v.clone();
        bad["records"][i]["token"]["role"] = role.clone();
        refused_sealed(&bad, &clock, &format!("role {role}"));
    }
}

#[test]
fn a_nonce_or_any_unknown_field_is_refused() {
    let (v, clock) = base();
    let mut bad = v.clone();
    bad["records"][0]["token"]["nonce"] = json!("00112233445566778899aabbccddeeff");
    refused_sealed(&bad, &clock, "nonce in token");
    let mut bad = v.clone();
    bad["records"][0]["nonce"] = json!("00112233445566778899aabbccddeeff");
    refused_sealed(&bad, &clock, "nonce in record");
    let mut bad = v.clone();
    bad["records"][0]["token"]["nonce"] = json!("");
    refused_sealed(&bad, &clock, "empty nonce in token");
    let mut bad = v.clone();
    bad["tasks"][0]["owner"] = json!("x");
    refused_sealed(&bad, &clock, "extra task field");
    for field in [
        "agent_id",
        "role",
        "scopes",
        "issued_at",
        "expire_at",
        "sig_hex",
    ] {
        let mut bad = v.clone();
        bad["records"][0]["token"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        refused_sealed(&bad, &clock, &format!("token without {field}"));
    }
    for field in ["fingerprint", "token", "revoked"] {
        let mut bad = v.clone();
        bad["records"][0].as_object_mut().unwrap().remove(field);
        refused_sealed(&bad, &clock, &format!("record without {field}"));
    }
    let mut bad = v.clone();
    bad["records"][0]["token"]["agent_id"] = json!("");
    refused_sealed(&bad, &clock, "empty agent_id");
    let mut bad = v.clone();
    bad["records"][0]["task_id"] = json!("");
    refused_sealed(&bad, &clock, "empty task_id");
    let mut bad = v.clone();
    bad["records"][0]["revoked"] = json!("no");
    refused_sealed(&bad, &clock, "revoked as a string");
}

#[test]
fn the_task_tree_must_be_well_formed() {
    let (v, clock) = base();
    let push = |v: &mut Value, task: Value| v["tasks"].as_array_mut().unwrap().push(task);
    let set = |v: &mut Value, id: &str, field: &str, value: Value| {
        let i = task_of(v, id);
        v["tasks"][i][field] = value;
    };

    // Cycles.
    let mut bad = v.clone();
    set(&mut bad, "root", "parent_id", json!("grandchild"));
    refused_sealed(&bad, &clock, "cycle through the root");
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "a", "parent_id": "b", "spawn_depth": 1}),
    );
    push(
        &mut bad,
        json!({"task_id": "b", "parent_id": "a", "spawn_depth": 2}),
    );
    refused_sealed(&bad, &clock, "two-task cycle");
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "s", "parent_id": "s", "spawn_depth": 1}),
    );
    refused_sealed(&bad, &clock, "self parent");
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "s", "parent_id": "s", "spawn_depth": 0}),
    );
    refused_sealed(&bad, &clock, "self parent at depth 0");

    // Dangling parent.
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "orphan", "parent_id": "nowhere", "spawn_depth": 1}),
    );
    refused_sealed(&bad, &clock, "dangling parent");
    let mut bad = v.clone();
    let i = task_of(&bad, "child");
    bad["tasks"].as_array_mut().unwrap().remove(i);
    refused_sealed(&bad, &clock, "removed middle task");

    // Wrong depth.
    for (id, depth) in [
        ("root", 1),
        ("child", 2),
        ("child", 0),
        ("grandchild", 1),
        ("grandchild", 3),
    ] {
        let mut bad = v.clone();
        set(&mut bad, id, "spawn_depth", json!(depth));
        refused_sealed(&bad, &clock, &format!("{id} at depth {depth}"));
    }

    // Duplicate id.
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "root", "parent_id": null, "spawn_depth": 0}),
    );
    refused_sealed(&bad, &clock, "duplicate root");
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "child", "parent_id": "other-root", "spawn_depth": 1}),
    );
    refused_sealed(&bad, &clock, "duplicate child");

    // Bad ids.
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "", "parent_id": null, "spawn_depth": 0}),
    );
    refused_sealed(&bad, &clock, "empty task id");
    let mut bad = v.clone();
    push(
        &mut bad,
        json!({"task_id": "x".repeat(257), "parent_id": null, "spawn_depth": 0}),
    );
    refused_sealed(&bad, &clock, "long task id");

    // A valid addition restores (order in the list does not matter).
    let mut ok = v.clone();
    push(
        &mut ok,
        json!({"task_id": "deep", "parent_id": "grandchild", "spawn_depth": 3}),
    );
    ok["tasks"].as_array_mut().unwrap().reverse();
    let back = restore(&sealed(&ok), StoreConfig::default(), &clock).unwrap();
    assert_eq!(back.task("deep").unwrap().spawn_depth, 3);
}

#[test]
fn a_snapshot_of_the_other_format_is_refused() {
    let (v, clock) = base();
    // Restored into a store of the other format.
    let mlua = StoreConfig {
        format: SigningFormat::MluaSwarm,
        ..StoreConfig::default()
    };
    let err = TokenStore::restore(
        &sealed(&v),
        &SECRET,
        mlua.clone(),
        Box::new(Arc::clone(&clock)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid);
    // Relabelled, but its records still carry the v2 marker.
    let mut relabelled = v.clone();
    relabelled["format"] = json!("mlua-swarm");
    let err = TokenStore::restore(
        &sealed(&relabelled),
        &SECRET,
        mlua,
        Box::new(Arc::clone(&clock)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid);
    // One record stripped of its marker in a v2 snapshot.
    let mut stripped = v.clone();
    stripped["records"][0]["token"]
        .as_object_mut()
        .unwrap()
        .remove("v");
    refused_sealed(&stripped, &clock, "record without v");
    let mut wrong_v = v.clone();
    wrong_v["records"][0]["token"]["v"] = json!(3);
    refused_sealed(&wrong_v, &clock, "record with v 3");
}

#[test]
fn a_refused_restore_leaves_the_original_store_working() {
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let before = store.records();
    let text = store.snapshot().unwrap();
    refused(&text[..text.len() / 2], &clock, "half");
    assert_eq!(store.records(), before);
    store
        .verify(&minted[0].bearer, Verb::Heartbeat, None)
        .unwrap();
}

#[test]
fn restore_checks_the_secret_and_config_too() {
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let text = store.snapshot().unwrap();
    let err = TokenStore::restore(
        &text,
        &[1u8; 16],
        StoreConfig::default(),
        Box::new(Arc::clone(&clock)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    // Another secret: the seal says so, and nothing is created.
    let err = TokenStore::restore(
        &text,
        &OTHER_SECRET,
        StoreConfig::default(),
        Box::new(Arc::clone(&clock)),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid);
    assert!(
        err.to_string().contains("the secret does not match"),
        "{err}"
    );
    // Opening the unsealed body with another secret (opted in) restores, but
    // then no bearer verifies: the records are checked against the secret.
    let body = text.replacen(
        &text[..text.find(",\"format\"").unwrap() + 1],
        "{\"version\":1,",
        1,
    );
    let mut other = TokenStore::restore_with(
        &body,
        "",
        &OTHER_SECRET,
        StoreConfig::default(),
        Box::new(Arc::clone(&clock)),
        captoken::RestoreOptions {
            allow_unsealed: true,
        },
    )
    .unwrap();
    for m in &minted {
        assert_eq!(
            other.verify(&m.bearer, Verb::Heartbeat, None),
            Err(CapTokenError::BadSignature)
        );
    }
}

#[test]
fn an_edited_record_no_longer_matches_its_bearer() {
    // The record is the authority, so an edit to a record's token fields in a
    // snapshot makes the real bearer refused rather than widened.
    let Rich {
        mut store,
        clock,
        minted,
    } = rich(StoreConfig::default());
    let target = &minted[7]; // untracked worker, 6 uses
    let v = normalise(&store.snapshot().unwrap());
    let i = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["fingerprint"] == json!(target.fingerprint.to_string()))
        .unwrap();
    let mut unedited = restore(&sealed(&v), StoreConfig::default(), &clock).unwrap();
    unedited
        .verify(&target.bearer, Verb::FetchPrompt, Some("ext-1"))
        .unwrap();
    for (field, value) in [
        ("role", json!("operator")),
        ("scopes", json!(["*", "admin"])),
        ("expire_at", json!(T0 + 1_000_000)),
        ("agent_id", json!("someone-else")),
        ("max_uses", json!(1000)),
    ] {
        let mut edited = v.clone();
        edited["records"][i]["token"][field] = value.clone();
        let mut back = restore(&sealed(&edited), StoreConfig::default(), &clock).unwrap();
        for verb in [Verb::FetchPrompt, Verb::PostResult] {
            assert_eq!(
                back.verify(&target.bearer, verb, Some("ext-1")),
                Err(CapTokenError::BadSignature),
                "{field} = {value}, {verb}"
            );
        }
        assert_eq!(
            back.remint(&target.bearer),
            Err(CapTokenError::BadSignature)
        );
    }
}

/// A snapshot is not trusted with signatures: a record edited to match a
/// forged token (same nonce, other role, made-up signature) must not let that
/// token through, before or after the genuine token was verified.
#[test]
fn edited_snapshot_record_does_not_vouch_for_a_forged_token() {
    let (mut store, clock) = store();
    let worker = worker(&mut store, "t1", Some(5));
    let forged = tamper(
        &tamper(&worker.bearer, "role", json!("operator")),
        "sig_hex",
        json!("ab".repeat(32)),
    );
    let mut doc: Value = serde_json::from_str(&store.snapshot().unwrap()).unwrap();
    for record in doc["records"].as_array_mut().unwrap() {
        if record["fingerprint"] == json!(worker.fingerprint.to_string()) {
            record["token"]["role"] = json!("operator");
            record["token"]["sig_hex"] = json!("ab".repeat(32));
        }
    }
    let mut restored = restore(&sealed(&doc), StoreConfig::default(), &clock).unwrap();
    for _ in 0..3 {
        assert_eq!(
            code(restored.verify(&forged, Verb::Heartbeat, None)),
            ErrorCode::BadSignature
        );
        assert_eq!(
            code(restored.check(&forged, Verb::Heartbeat, None)),
            ErrorCode::BadSignature
        );
    }
    // The genuine token no longer matches its (edited) record either.
    assert_eq!(
        code(restored.verify(&worker.bearer, Verb::FetchPrompt, Some("t1"))),
        ErrorCode::BadSignature
    );
    assert_eq!(
        code(restored.verify(&forged, Verb::Heartbeat, None)),
        ErrorCode::BadSignature
    );
}

/// After a restore, the first decision of each record runs the HMAC; once a
/// genuine token passed, later decisions are the same as before the restore.
#[test]
fn restored_records_decide_like_the_original() {
    let (mut store, clock) = store();
    let worker = worker(&mut store, "t1", Some(3));
    store
        .verify(&worker.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    let mut restored = restore(&store.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    for expected in [Some(1), Some(0)] {
        let grant = restored
            .verify(&worker.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap();
        assert_eq!(grant.uses_left, expected);
    }
    assert_eq!(
        code(restored.verify(&worker.bearer, Verb::FetchPrompt, Some("t1"))),
        ErrorCode::TokenUsesExhausted
    );
}
