//! Nothing returned or thrown ever contains a nonce or the secret: collect the
//! errors of every kind the store can give and search their text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use captoken::store::Limits;
use captoken::{
    CapTokenError, ErrorCode, FixedClock, MintOptions, Minted, Role, SigningFormat, StoreConfig,
    TokenStore, Verb,
};
use common::{bound, decode, encode, nonce_of, tamper, uses, OTHER_SECRET, T0, TTL};
use serde_json::{json, Value};
use std::sync::Arc;

const LOUD_SECRET: &[u8] = b"correct horse battery staple, 0123456789 and more";

fn loud_store(format: SigningFormat, clock: &Arc<FixedClock>) -> TokenStore {
    TokenStore::new(
        LOUD_SECRET,
        StoreConfig {
            format,
            ..StoreConfig::default()
        },
        Box::new(Arc::clone(clock)),
    )
    .unwrap()
}

/// Every error the scenario below produces, with every nonce it has seen.
struct Collected {
    errors: Vec<CapTokenError>,
    nonces: Vec<String>,
}

impl Collected {
    fn push<T: std::fmt::Debug>(&mut self, result: Result<T, CapTokenError>) {
        self.errors.push(result.expect_err("expected an error"));
    }
    fn minted(&mut self, m: &Minted) {
        self.nonces.push(nonce_of(&m.bearer));
    }
}

fn collect(format: SigningFormat) -> Collected {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = loud_store(format, &clock);
    let mut twin = loud_store(format, &clock);
    let mut foreign = TokenStore::new(
        &OTHER_SECRET,
        StoreConfig {
            format,
            ..StoreConfig::default()
        },
        Box::new(Arc::clone(&clock)),
    )
    .unwrap();
    let mut c = Collected {
        errors: Vec::new(),
        nonces: Vec::new(),
    };

    let op = store.attach_operator("op", MintOptions::default()).unwrap();
    c.minted(&op);
    store.start_task(&op.bearer, Some("t1")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "t1", uses(1)).unwrap();
    c.minted(&w);
    let w_unlimited = store
        .dispatch_attempt(&op.bearer, "t1", MintOptions::default())
        .unwrap();
    c.minted(&w_unlimited);
    let obs = store
        .mint("obs", Role::Observer, MintOptions::default())
        .unwrap();
    c.minted(&obs);
    let ext = store.mint("ext", Role::Worker, bound("ext", None)).unwrap();
    c.minted(&ext);
    let stranger = twin.mint("s", Role::Worker, bound("t1", None)).unwrap();
    c.minted(&stranger);
    let alien = foreign.mint("a", Role::Worker, bound("t1", None)).unwrap();
    c.minted(&alien);

    // Malformed, in every way.
    for bearer in [
        String::new(),
        "garbage".to_owned(),
        format!("{}=", w.bearer),
        "A".repeat(9000),
        tamper(&w.bearer, "role", json!("admin")),
        tamper(
            &w.bearer,
            "nonce",
            json!(nonce_of(&w.bearer)[..20].to_owned()),
        ),
        tamper(&w.bearer, "sig_hex", json!(nonce_of(&w.bearer))),
        tamper(&w.bearer, "v", json!(9)),
        URL_SAFE_NO_PAD.encode(format!("{} junk", decode(&w.bearer))),
        // The nonce where a number belongs, and as an unknown key.
        tamper(&w.bearer, "issued_at", json!(nonce_of(&w.bearer))),
        {
            let mut v = decode(&w.bearer);
            v[nonce_of(&w.bearer)] = json!(1);
            encode(&v)
        },
        // The nonce as the whole bearer, and the raw JSON as a bearer.
        nonce_of(&w.bearer),
        decode(&w.bearer).to_string(),
    ] {
        c.push(store.verify(&bearer, Verb::FetchPrompt, Some("t1")));
        c.push(store.check(&bearer, Verb::FetchPrompt, Some("t1")));
        c.push(store.adopt(&bearer, None));
        c.push(store.remint(&bearer));
        c.push(store.start_task(&bearer, None));
    }
    // Bad signatures.
    for bearer in [
        alien.bearer.clone(),
        tamper(&w.bearer, "max_uses", json!(99)),
        tamper(&op.bearer, "agent_id", json!("root")),
    ] {
        c.push(store.verify(&bearer, Verb::FetchData, None));
        c.push(store.adopt(&bearer, Some("t1")));
        c.push(store.remint(&bearer));
        c.push(store.dispatch_attempt(&bearer, "t1", MintOptions::default()));
    }
    // Role violations, not found, mismatches, exhausted, revoked.
    c.push(store.verify(&w.bearer, Verb::Heartbeat, None));
    c.push(store.verify(&obs.bearer, Verb::StartTask, None));
    c.push(store.start_task(&obs.bearer, Some("x")));
    c.push(store.verify(&stranger.bearer, Verb::FetchPrompt, Some("t1")));
    c.push(store.remint(&stranger.bearer));
    c.push(store.verify(&w.bearer, Verb::FetchPrompt, Some("t2")));
    c.push(store.verify(&w.bearer, Verb::PostResult, None));
    store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    c.push(store.verify(&w.bearer, Verb::FetchData, None));
    c.push(store.remint(&w.bearer));
    store.revoke(&w_unlimited.fingerprint);
    c.push(store.verify(&w_unlimited.bearer, Verb::FetchData, None));
    c.push(store.remint(&w_unlimited.bearer));
    // Tasks.
    c.push(store.start_task(&ext.bearer, None));
    c.push(store.dispatch_attempt(&op.bearer, "nope", MintOptions::default()));
    c.push(store.start_task(&op.bearer, Some("t1")));
    c.push(store.dispatch_attempt(&op.bearer, "t1", bound("t2", None)));
    let mut shallow = TokenStore::new(
        LOUD_SECRET,
        StoreConfig {
            format,
            max_spawn_depth: 1,
            ..StoreConfig::default()
        },
        Box::new(Arc::clone(&clock)),
    )
    .unwrap();
    let shallow_op = shallow
        .attach_operator("op", MintOptions::default())
        .unwrap();
    c.minted(&shallow_op);
    shallow.start_task(&shallow_op.bearer, Some("r")).unwrap();
    let shallow_w = shallow
        .dispatch_attempt(&shallow_op.bearer, "r", MintOptions::default())
        .unwrap();
    c.minted(&shallow_w);
    c.push(shallow.start_task(&shallow_w.bearer, None));
    // The subtree and budget rules of a Worker's compound calls.
    store.start_task(&op.bearer, Some("t3")).unwrap();
    let limited = store.dispatch_attempt(&op.bearer, "t3", uses(3)).unwrap();
    c.minted(&limited);
    c.push(store.dispatch_attempt(&limited.bearer, "t1", uses(1)));
    c.push(store.start_task_under(&limited.bearer, Some("t1"), None));
    c.push(store.start_task_under(&limited.bearer, None, Some("mine")));
    c.push(store.dispatch_attempt(&limited.bearer, "t3", MintOptions::default()));
    c.push(store.dispatch_attempt(&limited.bearer, "t3", uses(0)));
    c.push(store.dispatch_attempt(&limited.bearer, "t3", uses(3)));
    c.push(store.dispatch_attempt(
        &limited.bearer,
        "t3",
        MintOptions {
            max_uses: Some(1),
            ttl_secs: Some(TTL + 1),
            ..MintOptions::default()
        },
    ));
    let narrow = store
        .dispatch_attempt(
            &op.bearer,
            "t3",
            MintOptions {
                scopes: Some(vec!["read".into()]),
                max_uses: Some(1),
                ..MintOptions::default()
            },
        )
        .unwrap();
    c.minted(&narrow);
    c.push(store.dispatch_attempt(&narrow.bearer, "t3", uses(1)));
    // Limits.
    let mut small = TokenStore::new(
        LOUD_SECRET,
        StoreConfig {
            format,
            limits: Limits {
                max_records: 4,
                max_tasks: 3,
                max_tasks_per_tree: 2,
                max_children_per_task: 1,
                max_made_per_worker_token: 1,
            },
            ..StoreConfig::default()
        },
        Box::new(Arc::clone(&clock)),
    )
    .unwrap();
    let small_op = small.attach_operator("op", MintOptions::default()).unwrap();
    c.minted(&small_op);
    small.start_task(&small_op.bearer, Some("r")).unwrap();
    small
        .start_task_under(&small_op.bearer, Some("r"), Some("r-c"))
        .unwrap();
    c.push(small.start_task_under(&small_op.bearer, Some("r"), Some("r-d")));
    c.push(small.start_task_under(&small_op.bearer, Some("r-c"), Some("r-e")));
    let small_w = small
        .dispatch_attempt(&small_op.bearer, "r", MintOptions::default())
        .unwrap();
    c.minted(&small_w);
    let small_w2 = small
        .dispatch_attempt(&small_w.bearer, "r", MintOptions::default())
        .unwrap();
    c.minted(&small_w2);
    c.push(small.dispatch_attempt(&small_w.bearer, "r", MintOptions::default()));
    small
        .mint("m", Role::Observer, MintOptions::default())
        .unwrap();
    c.push(small.mint("m", Role::Observer, MintOptions::default()));
    small.start_task(&small_op.bearer, Some("s")).unwrap();
    c.push(small.start_task(&small_op.bearer, Some("u")));
    // Invalid arguments.
    c.push(store.mint("", Role::Worker, MintOptions::default()));
    c.push(store.mint("a", Role::Worker, common::ttl(1 << 60)));
    c.push(store.remint(&op.bearer));
    c.push(nonce_of(&w.bearer).parse::<captoken::Fingerprint>());
    c.push(TokenStore::new(
        &LOUD_SECRET[..31],
        StoreConfig::default(),
        Box::new(Arc::clone(&clock)),
    ));
    // Expired.
    clock.advance(TTL);
    c.push(store.verify(&ext.bearer, Verb::FetchPrompt, Some("ext")));
    c.push(store.adopt(&stranger.bearer, None));

    // Snapshots, corrupted in ways that put a nonce into the text.
    let nonce = nonce_of(&ext.bearer);
    let good: Value = serde_json::from_str(&store.snapshot().unwrap()).unwrap();
    let mut variants: Vec<String> = vec![
        nonce.clone(),
        format!("{{\"{nonce}\": 1}}"),
        format!("{{\"version\": 1, \"format\": \"{nonce}\"}}"),
        decode(&ext.bearer).to_string(),
        ext.bearer.clone(),
    ];
    for (path, value) in [
        (vec!["version"], json!(nonce)),
        (vec!["format"], json!(nonce)),
        (vec!["records"], json!(nonce)),
        (
            vec!["tasks"],
            json!([{"task_id": "t", "parent_id": null, "spawn_depth": nonce}]),
        ),
        (vec![nonce.as_str()], json!(true)),
    ] {
        let mut v = good.clone();
        v[path[0]] = value;
        variants.push(v.to_string());
    }
    for field in ["uses_left", "revoked", "task_id", nonce.as_str()] {
        let mut v = good.clone();
        v["records"][0][field] = json!(nonce);
        if field == "task_id" {
            v["records"][0][field] = json!(5);
        }
        variants.push(v.to_string());
    }
    for field in [
        "role",
        "issued_at",
        "max_uses",
        "v",
        "scopes",
        "agent_id",
        "nonce",
        nonce.as_str(),
    ] {
        let mut v = good.clone();
        v["records"][0]["token"][field] = json!(nonce);
        if field == "agent_id" {
            v["records"][0]["token"][field] = json!(7);
        }
        variants.push(v.to_string());
    }
    for text in &variants {
        let err = TokenStore::restore(
            text,
            LOUD_SECRET,
            StoreConfig {
                format,
                ..StoreConfig::default()
            },
            Box::new(Arc::clone(&clock)),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "{text}");
        c.errors.push(err);
    }
    c
}

fn secret_forms() -> Vec<String> {
    let mut forms = vec![
        String::from_utf8(LOUD_SECRET.to_vec()).unwrap(),
        LOUD_SECRET.iter().map(|b| format!("{b:02x}")).collect(),
        LOUD_SECRET.iter().map(|b| format!("{b:02X}")).collect(),
        STANDARD.encode(LOUD_SECRET),
        URL_SAFE_NO_PAD.encode(LOUD_SECRET),
        format!("{:?}", LOUD_SECRET),
    ];
    // A recognisable stretch of it is enough to count as a leak.
    forms.push("correct horse".to_owned());
    forms
}

#[test]
fn no_error_message_contains_a_nonce_or_the_secret() {
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let c = collect(format);
        assert!(c.errors.len() > 100, "{}", c.errors.len());
        assert!(c.nonces.len() >= 7);
        let mut codes: Vec<ErrorCode> = c.errors.iter().map(CapTokenError::code).collect();
        codes.sort_by_key(|c| c.as_str());
        codes.dedup();
        // Every code but ERR_STORE_UNAVAILABLE (for server-backed stores).
        assert_eq!(codes.len(), 13, "every code was produced: {codes:?}");
        assert!(!codes.contains(&ErrorCode::StoreUnavailable));
        for err in &c.errors {
            for text in [err.to_string(), format!("{err:?}")] {
                for nonce in &c.nonces {
                    assert!(!text.contains(nonce.as_str()), "nonce in {text}");
                    assert!(!text.contains(&nonce[..12]), "part of a nonce in {text}");
                }
                for secret in secret_forms() {
                    assert!(!text.contains(&secret), "secret in {text}");
                }
            }
            assert!(!err.to_string().is_empty());
        }
    }
}

#[test]
fn errors_about_a_token_name_its_fingerprint() {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = loud_store(SigningFormat::V2, &clock);
    let w = store.mint("w", Role::Worker, bound("t1", Some(1))).unwrap();
    let fp = w.fingerprint.to_string();
    let mismatch = store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t2"))
        .unwrap_err();
    store.verify(&w.bearer, Verb::FetchData, None).unwrap();
    let exhausted = store.verify(&w.bearer, Verb::FetchData, None).unwrap_err();
    store.revoke(&w.fingerprint);
    let revoked = store.verify(&w.bearer, Verb::FetchData, None).unwrap_err();
    clock.advance(TTL);
    let expired = store.verify(&w.bearer, Verb::FetchData, None).unwrap_err();
    for err in [mismatch, exhausted, revoked, expired] {
        assert_eq!(err.fingerprint(), Some(&w.fingerprint));
        assert!(err.to_string().contains(&fp), "{err}");
        assert!(!err.to_string().contains(&nonce_of(&w.bearer)));
    }
    // Debug of a minted token and its record redacts the nonce as well.
    let text = format!("{:?} {:?}", w.token, store.record(&w.fingerprint));
    assert!(!text.contains(&nonce_of(&w.bearer)), "{text}");
    assert!(!format!("{store:?}").contains(&nonce_of(&w.bearer)));
}

#[test]
fn the_store_keeps_working_after_any_error() {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = loud_store(SigningFormat::V2, &clock);
    let op = store.attach_operator("op", MintOptions::default()).unwrap();
    for junk in ["", "\u{0}", "💥", &"x".repeat(100_000)] {
        let _ = store.verify(junk, Verb::Heartbeat, Some(junk));
        let _ = store.start_task(junk, Some(junk));
        let _ = store.start_task(&op.bearer, Some(junk));
        let _ = store.dispatch_attempt(&op.bearer, junk, MintOptions::default());
        let _ = store.adopt(junk, Some(junk));
        let _ = store.remint(junk);
        let _ = store.revoke_task(junk);
        let _ = TokenStore::restore(
            junk,
            LOUD_SECRET,
            StoreConfig::default(),
            Box::new(Arc::clone(&clock)),
        );
    }
    store.start_task(&op.bearer, Some("after")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "after", MintOptions::default())
        .unwrap();
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("after"))
        .unwrap();
    // The one odd-but-valid task id ("💥") is the only extra task.
    assert!(store.tasks().len() <= 3);
}
