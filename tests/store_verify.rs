//! "Deciding a call": every step of docs/protocol.md in order, check() versus verify(),
//! and what a Grant carries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::token::MAX_BEARER_LEN;
use captoken::{
    CapToken, CapTokenError, ErrorCode, MintOptions, Role, Signer, SigningFormat, StoreConfig,
    TokenStore, Verb,
};
use common::*;
use serde_json::json;

// ---- step 1: decode ------------------------------------------------------

#[test]
fn garbage_bearers_are_malformed() {
    let (mut store, _clock) = store();
    let good = worker(&mut store, "t1", None);
    let mut missing_nonce = decode(&good.bearer);
    missing_nonce.as_object_mut().unwrap().remove("nonce");
    let mut extra = decode(&good.bearer);
    extra["extra"] = json!(1);
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "hello, world".to_owned()),
        ("not base64", "$$$%%%^^^".to_owned()),
        ("padded", format!("{}=", good.bearer)),
        (
            "standard alphabet",
            good.bearer.replace('-', "+").replace('_', "/") + "+/",
        ),
        ("base64 of text", encode_text("not json at all")),
        ("json null", encode_text("null")),
        ("json array", encode_text("[1,2,3]")),
        ("json string", encode_text("\"token\"")),
        ("empty object", encode_text("{}")),
        (
            "wrong shape",
            encode_text(r#"{"agent_id":5,"role":"worker"}"#),
        ),
        ("missing nonce", encode(&missing_nonce)),
        ("unknown field", encode(&extra)),
        ("unknown role", tamper(&good.bearer, "role", json!("admin"))),
        ("short nonce", tamper(&good.bearer, "nonce", json!("abcd"))),
        (
            "uppercase nonce",
            tamper(
                &good.bearer,
                "nonce",
                json!(nonce_of(&good.bearer).to_uppercase() + ""),
            ),
        ),
        ("short sig", tamper(&good.bearer, "sig_hex", json!("00ff"))),
        (
            "negative time",
            tamper(&good.bearer, "issued_at", json!(-1)),
        ),
        (
            "time over 2^53-1",
            tamper(&good.bearer, "expire_at", json!(1u64 << 53)),
        ),
        (
            "uses over u32",
            tamper(&good.bearer, "max_uses", json!(1u64 << 32)),
        ),
        (
            "scopes not a list",
            tamper(&good.bearer, "scopes", json!("*")),
        ),
        ("unknown version", tamper(&good.bearer, "v", json!(3))),
        ("over the size limit", "A".repeat(MAX_BEARER_LEN + 1)),
    ];
    for (what, bearer) in cases {
        // The uppercase case only differs when the nonce has a letter in it.
        if what == "uppercase nonce"
            && !nonce_of(&good.bearer)
                .bytes()
                .any(|b| b.is_ascii_alphabetic())
        {
            continue;
        }
        for verb in [Verb::FetchPrompt, Verb::StartTask, Verb::Heartbeat] {
            let err = store.verify(&bearer, verb, Some("t1")).unwrap_err();
            assert!(
                matches!(err, CapTokenError::MalformedToken { .. }),
                "{what}: {err:?}"
            );
            assert_eq!(err.code(), ErrorCode::MalformedToken, "{what}");
            assert_eq!(store.check(&bearer, verb, Some("t1")).unwrap_err(), err);
        }
    }
    // The good bearer still works and nothing was spent along the way.
    assert_eq!(uses_left(&store, &good.fingerprint), None);
    store
        .verify(&good.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
}

#[test]
fn an_oversized_but_correctly_signed_token_is_malformed_not_accepted() {
    // Step 1 refuses on length alone, before the signature is looked at.
    let (first, _clock) = store();
    let signer = Signer::new(&SECRET, SigningFormat::V2).unwrap();
    let mut token = CapToken {
        v: None,
        agent_id: "a".repeat(MAX_BEARER_LEN),
        role: Role::Operator,
        scopes: vec!["*".into()],
        issued_at: T0,
        expire_at: T0 + TTL,
        max_uses: None,
        nonce: "00112233445566778899aabbccddeeff".into(),
        sig_hex: String::new(),
    };
    signer.seal(&mut token);
    signer.verify(&token).unwrap();
    let bearer = token.to_bearer();
    assert!(bearer.len() > MAX_BEARER_LEN);
    let err = first.check(&bearer, Verb::Heartbeat, None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MalformedToken);
    // Well under the limit it is decoded (and then is simply unknown here).
    let (store2, _c) = store();
    let mut small = token.clone();
    small.agent_id = "a".repeat(100);
    signer.seal(&mut small);
    let err = store2
        .check(&small.to_bearer(), Verb::Heartbeat, None)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenNotFound);
}

#[test]
fn the_largest_mintable_token_fits_the_bearer_limit_and_larger_mints_are_refused() {
    let (mut store, _clock) = store();
    let scopes: Vec<String> = (0..32).map(|i| format!("{i:0>128}")).collect();
    let big = store
        .mint(
            &"x".repeat(256),
            Role::Worker,
            MintOptions {
                scopes: Some(scopes.clone()),
                task_id: Some("t".repeat(256)),
                ..MintOptions::default()
            },
        )
        .unwrap();
    assert!(big.bearer.len() <= MAX_BEARER_LEN);
    let grant = store
        .verify(&big.bearer, Verb::FetchPrompt, Some(&"t".repeat(256)))
        .unwrap();
    assert_eq!(grant.scopes, scopes);

    let too_many: Vec<String> = (0..33).map(|i| i.to_string()).collect();
    let bad = vec![
        ("x".repeat(257), MintOptions::default()),
        (String::new(), MintOptions::default()),
        (
            "a".into(),
            MintOptions {
                scopes: Some(too_many),
                ..MintOptions::default()
            },
        ),
        (
            "a".into(),
            MintOptions {
                scopes: Some(vec!["s".repeat(129)]),
                ..MintOptions::default()
            },
        ),
        (
            "a".into(),
            MintOptions {
                scopes: Some(vec![String::new()]),
                ..MintOptions::default()
            },
        ),
        ("a".into(), bound(&"t".repeat(257), None)),
        ("a".into(), bound("", None)),
        ("a".into(), ttl(1 << 53)),
    ];
    for (agent, options) in bad {
        let err = store
            .mint(&agent, Role::Worker, options.clone())
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{options:?}");
    }
    assert_eq!(store.len(), 1);
}

// ---- step 2: signature -----------------------------------------------------

#[test]
fn any_tampered_field_is_a_bad_signature() {
    let (mut store, _clock) = store();
    let w = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["read".into()]),
                max_uses: Some(1),
                task_id: Some("t1".into()),
                ttl_secs: None,
            },
        )
        .unwrap();
    let sig = decode(&w.bearer)["sig_hex"].as_str().unwrap().to_owned();
    let flipped_sig = {
        let mut chars: Vec<char> = sig.chars().collect();
        chars[10] = if chars[10] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let other_nonce = if nonce_of(&w.bearer) == "0".repeat(32) {
        "1".repeat(32)
    } else {
        "0".repeat(32)
    };
    let variants = vec![
        ("agent_id", json!("agent-8")),
        ("role", json!("operator")),
        ("scopes", json!(["*"])),
        ("scopes", json!(["read", "write"])),
        ("issued_at", json!(T0 - 1)),
        ("expire_at", json!(T0 + 10 * TTL)),
        ("max_uses", json!(null)),
        ("max_uses", json!(1000)),
        ("nonce", json!(other_nonce)),
        ("sig_hex", json!(flipped_sig)),
        ("sig_hex", json!("0".repeat(64))),
    ];
    for (field, value) in variants {
        let bearer = tamper(&w.bearer, field, value.clone());
        for verb in [Verb::FetchPrompt, Verb::Heartbeat] {
            let err = store.verify(&bearer, verb, Some("t1")).unwrap_err();
            assert_eq!(err, CapTokenError::BadSignature, "{field} = {value}");
            assert_eq!(store.check(&bearer, verb, Some("t1")).unwrap_err(), err);
        }
    }
    // Dropping the v2 marker is a downgrade attempt: bad signature too.
    let mut no_v = decode(&w.bearer);
    no_v.as_object_mut().unwrap().remove("v");
    assert_eq!(
        store.verify(&encode(&no_v), Verb::FetchPrompt, Some("t1")),
        Err(CapTokenError::BadSignature)
    );
    // Nothing of the one use was spent by any of it.
    assert_eq!(uses_left(&store, &w.fingerprint), Some(1));
    // Re-encoding the same JSON (field order may change) still verifies.
    let same = encode(&decode(&w.bearer));
    assert_eq!(
        store
            .verify(&same, Verb::FetchPrompt, Some("t1"))
            .unwrap()
            .uses_left,
        Some(0)
    );
}

#[test]
fn a_token_signed_with_another_secret_is_a_bad_signature() {
    let (mut store, clock) = store();
    let mut other = store_on(&OTHER_SECRET, StoreConfig::default(), &clock);
    let foreign = other
        .attach_operator("op-1", MintOptions::default())
        .unwrap();
    assert_eq!(
        store.verify(&foreign.bearer, Verb::Heartbeat, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        store.check(&foreign.bearer, Verb::Heartbeat, None),
        Err(CapTokenError::BadSignature)
    );
    assert_eq!(
        code(store.start_task(&foreign.bearer, Some("t"))),
        ErrorCode::BadSignature
    );
    // And it works where it came from.
    other
        .verify(&foreign.bearer, Verb::Heartbeat, None)
        .unwrap();
    assert!(store.tasks().is_empty());
}

#[test]
fn a_short_secret_is_refused() {
    let clock = std::sync::Arc::new(captoken::FixedClock::new(T0));
    let err = TokenStore::new(&[1u8; 31], StoreConfig::default(), Box::new(clock)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

// ---- step 3: expiry --------------------------------------------------------

#[test]
fn expiry_is_now_at_or_after_expire_at() {
    let (mut store, clock) = store();
    let w = worker(&mut store, "t1", None);
    assert_eq!(w.token.issued_at, T0);
    assert_eq!(w.token.expire_at, T0 + TTL);
    clock.set(T0 + TTL - 1);
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    clock.set(T0 + TTL);
    let err = store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap_err();
    assert_eq!(
        err,
        CapTokenError::TokenExpired {
            fingerprint: w.fingerprint
        }
    );
    assert_eq!(err.fingerprint(), Some(&w.fingerprint));
    clock.set(T0 + 100 * TTL);
    assert_eq!(
        code(store.check(&w.bearer, Verb::FetchPrompt, Some("t1"))),
        ErrorCode::TokenExpired
    );
}

#[test]
fn every_role_but_operator_expires() {
    let (mut store, clock) = store();
    let op = store.attach_operator("op", ttl(10)).unwrap();
    let obs = store.mint("obs", Role::Observer, ttl(10)).unwrap();
    let sen = store.mint("sen", Role::Senior, ttl(10)).unwrap();
    let wrk = store.mint("wrk", Role::Worker, ttl(10)).unwrap();
    clock.set(T0 + 10);
    assert_eq!(
        store.verify(&obs.bearer, Verb::ReadTrace, None),
        Err(CapTokenError::TokenExpired {
            fingerprint: obs.fingerprint
        })
    );
    assert_eq!(
        store.verify(&sen.bearer, Verb::PauseLoop, None),
        Err(CapTokenError::TokenExpired {
            fingerprint: sen.fingerprint
        })
    );
    assert_eq!(
        code(store.verify(&wrk.bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    clock.set(T0 + 1_000_000_000);
    let grant = store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
    assert_eq!(grant.role, Role::Operator);
    let root = store.start_task(&op.bearer, Some("late")).unwrap();
    assert_eq!(root.spawn_depth, 0);
}

// ---- step 4: gate ----------------------------------------------------------

fn spec_table(role: Role) -> Vec<&'static str> {
    match role {
        Role::Operator => vec![
            "start_task",
            "dispatch_attempt",
            "mint_worker_token",
            "read_task_state",
            "cancel_task",
            "query_senior",
            "mark_pass",
            "mark_blocked",
            "attach_session",
            "detach_session",
            "heartbeat",
            "poll_task",
        ],
        Role::Worker => vec![
            "fetch_prompt",
            "fetch_data",
            "post_result",
            "verify_token",
            "emit_output",
            "start_task",
            "dispatch_attempt",
            "read_task_state",
            "poll_task",
            "cancel_task",
        ],
        Role::Observer => vec!["subscribe_events", "read_trace", "read_task_state"],
        Role::Senior => vec![
            "answer_query",
            "override_verdict",
            "pause_loop",
            "resume_loop",
            "inject_directive",
        ],
    }
}

#[test]
fn the_default_gate_decides_every_role_and_verb_as_the_spec_table() {
    let (mut store, _clock) = store();
    for role in Role::ALL {
        let t = store
            .mint(&format!("{role}-1"), role, bound("t1", None))
            .unwrap();
        let allowed = spec_table(role);
        let mut n_allowed = 0;
        for verb in Verb::ALL {
            let checked = store.check(&t.bearer, verb, Some("t1"));
            let verified = store.verify(&t.bearer, verb, Some("t1"));
            if allowed.contains(&verb.as_str()) {
                n_allowed += 1;
                let grant = verified.unwrap_or_else(|e| panic!("{role} {verb}: {e}"));
                assert_eq!(grant.role, role);
                assert_eq!(checked.unwrap(), grant);
            } else {
                let err = verified.unwrap_err();
                assert_eq!(err, CapTokenError::RoleViolation { role, verb });
                assert_eq!(err.code(), ErrorCode::RoleViolation);
                assert_eq!(checked.unwrap_err(), err);
                let text = err.to_string();
                assert!(text.contains(role.as_str()), "{text}");
                assert!(text.contains(verb.as_str()), "{text}");
            }
        }
        assert_eq!(n_allowed, allowed.len(), "{role}");
    }
}

#[test]
fn a_custom_gate_replaces_the_default_table() {
    let gate = captoken::Gate::default().with(Role::Observer, &[Verb::Heartbeat]);
    let (mut store, _clock) = store_with(StoreConfig {
        gate,
        ..StoreConfig::default()
    });
    let obs = store
        .mint("obs", Role::Observer, MintOptions::default())
        .unwrap();
    store.verify(&obs.bearer, Verb::Heartbeat, None).unwrap();
    assert_eq!(
        store.verify(&obs.bearer, Verb::ReadTrace, None),
        Err(CapTokenError::RoleViolation {
            role: Role::Observer,
            verb: Verb::ReadTrace
        })
    );
}

// ---- step 5: record lookup ---------------------------------------------------

#[test]
fn a_well_signed_token_the_store_never_recorded_is_not_found() {
    let (mut store, clock) = store();
    let mut twin = store_on(&SECRET, StoreConfig::default(), &clock);
    let stranger = twin
        .mint("agent-7", Role::Worker, bound("t1", Some(3)))
        .unwrap();
    let err = store
        .verify(&stranger.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap_err();
    assert_eq!(
        err,
        CapTokenError::TokenNotFound {
            fingerprint: stranger.fingerprint
        }
    );
    assert_eq!(err.fingerprint(), Some(&stranger.fingerprint));
    assert!(err.to_string().contains(&stranger.fingerprint.to_string()));
    assert_eq!(
        store
            .check(&stranger.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap_err(),
        err
    );
    let op = twin.attach_operator("op", MintOptions::default()).unwrap();
    assert_eq!(
        store.start_task(&op.bearer, Some("t9")),
        Err(CapTokenError::TokenNotFound {
            fingerprint: op.fingerprint
        })
    );
    assert!(store.is_empty());
    assert!(store.tasks().is_empty());
    // The twin, which recorded it, allows it.
    assert_eq!(
        twin.verify(&stranger.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap()
            .uses_left,
        Some(2)
    );
}

// ---- step 6: ownership -------------------------------------------------------

const GATED: [Verb; 6] = [
    Verb::FetchPrompt,
    Verb::PostResult,
    Verb::EmitOutput,
    Verb::ReadTaskState,
    Verb::CancelTask,
    Verb::PollTask,
];

#[test]
fn the_ownership_gated_verbs_are_exactly_the_six_of_the_spec() {
    let mut gated: Vec<Verb> = Verb::ALL
        .into_iter()
        .filter(|v| v.is_ownership_gated())
        .collect();
    let mut expected = GATED.to_vec();
    gated.sort();
    expected.sort();
    assert_eq!(gated, expected);
    // start_task and dispatch_attempt are gated to the bound task's subtree.
    let subtree: Vec<Verb> = Verb::ALL
        .into_iter()
        .filter(|v| v.is_subtree_gated())
        .collect();
    assert_eq!(subtree, vec![Verb::StartTask, Verb::DispatchAttempt]);
    assert!(subtree.iter().all(|v| !v.is_ownership_gated()));
}

#[test]
fn a_worker_must_name_its_bound_task_for_task_state_verbs() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(100));
    for verb in GATED {
        let grant = store.verify(&w.bearer, verb, Some("t1")).unwrap();
        assert_eq!(grant.task_id.as_deref(), Some("t1"));

        let before = uses_left(&store, &w.fingerprint);
        let err = store.verify(&w.bearer, verb, Some("t2")).unwrap_err();
        assert_eq!(
            err,
            CapTokenError::TokenTaskMismatch {
                fingerprint: w.fingerprint,
                bound: Some("t1".into()),
                arg: Some("t2".into()),
            },
            "{verb}"
        );
        assert_eq!(store.check(&w.bearer, verb, Some("t2")).unwrap_err(), err);
        let text = err.to_string();
        assert!(text.contains("t1") && text.contains("t2"), "{text}");

        let err = store.verify(&w.bearer, verb, None).unwrap_err();
        assert_eq!(
            err,
            CapTokenError::TokenTaskMismatch {
                fingerprint: w.fingerprint,
                bound: Some("t1".into()),
                arg: None,
            },
            "{verb}"
        );
        // A prefix or a case variant of the bound task is another task.
        for near in ["t", "t10", "T1", " t1", ""] {
            assert_eq!(
                code(store.verify(&w.bearer, verb, Some(near))),
                ErrorCode::TokenTaskMismatch,
                "{verb} {near:?}"
            );
        }
        assert_eq!(uses_left(&store, &w.fingerprint), before);
    }
    assert_eq!(uses_left(&store, &w.fingerprint), Some(94));
}

#[test]
fn other_worker_verbs_ignore_the_task_argument() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", None);
    for verb in [Verb::FetchData, Verb::VerifyToken] {
        for arg in [None, Some("t1"), Some("elsewhere")] {
            store.verify(&w.bearer, verb, arg).unwrap();
        }
    }
    // emit_output is not among them any more: it writes the task's output.
    store
        .verify(&w.bearer, Verb::EmitOutput, Some("t1"))
        .unwrap();
    for arg in [None, Some("elsewhere")] {
        assert_eq!(
            code(store.verify(&w.bearer, Verb::EmitOutput, arg)),
            ErrorCode::TokenTaskMismatch
        );
    }
}

#[test]
fn an_unbound_worker_cannot_touch_any_task_state() {
    let (mut store, _clock) = store();
    let w = store
        .mint("loose", Role::Worker, MintOptions::default())
        .unwrap();
    for verb in GATED {
        for arg in [None, Some("t1")] {
            assert_eq!(
                store.verify(&w.bearer, verb, arg),
                Err(CapTokenError::TokenTaskMismatch {
                    fingerprint: w.fingerprint,
                    bound: None,
                    arg: arg.map(str::to_owned),
                })
            );
        }
    }
    store.verify(&w.bearer, Verb::FetchData, None).unwrap();
}

#[test]
fn start_task_and_dispatch_attempt_are_gated_to_the_bound_subtree() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("mine")).unwrap();
    store.start_task(&op.bearer, Some("theirs")).unwrap();
    store
        .start_task_under(&op.bearer, Some("mine"), Some("mine-c"))
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("mine-c"), Some("mine-gc"))
        .unwrap();
    store
        .start_task_under(&op.bearer, Some("theirs"), Some("theirs-c"))
        .unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "mine", MintOptions::default())
        .unwrap();
    // Its own task, anything below it, or (start_task) no task at all.
    for arg in [None, Some("mine"), Some("mine-c"), Some("mine-gc")] {
        store.check(&w.bearer, Verb::StartTask, arg).unwrap();
        store.verify(&w.bearer, Verb::DispatchAttempt, arg).unwrap();
    }
    // Anything else is a mismatch: another tree, a task above, an unknown one,
    // a near miss of its own id.
    for arg in ["theirs", "theirs-c", "unknown", "min", "mine "] {
        for verb in [Verb::StartTask, Verb::DispatchAttempt] {
            assert_eq!(
                store.check(&w.bearer, verb, Some(arg)),
                Err(CapTokenError::TokenTaskMismatch {
                    fingerprint: w.fingerprint,
                    bound: Some("mine".into()),
                    arg: Some(arg.into()),
                }),
                "{verb} {arg}"
            );
        }
    }
    // A worker below cannot reach up to its parent's task.
    let below = store
        .dispatch_attempt(&op.bearer, "mine-c", MintOptions::default())
        .unwrap();
    assert_eq!(
        code(store.check(&below.bearer, Verb::DispatchAttempt, Some("mine"))),
        ErrorCode::TokenTaskMismatch
    );
    // The compound calls agree: dispatch below works, on another tree it does not.
    let under = store
        .dispatch_attempt(&w.bearer, "mine-gc", MintOptions::default())
        .unwrap();
    assert_eq!(under.token.agent_id, "worker-of-mine-gc");
    let len = store.len();
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "theirs", MintOptions::default())),
        ErrorCode::TokenTaskMismatch
    );
    assert_eq!(
        code(store.start_task_under(&w.bearer, Some("theirs"), None)),
        ErrorCode::TokenTaskMismatch
    );
    assert_eq!(store.len(), len);
    let child = store.start_task(&w.bearer, None).unwrap();
    assert_eq!(child.parent_id.as_deref(), Some("mine"));
    let deeper = store
        .start_task_under(&w.bearer, Some("mine-c"), None)
        .unwrap();
    assert_eq!(deeper.parent_id.as_deref(), Some("mine-c"));
    assert_eq!(deeper.spawn_depth, 2);
}

#[test]
fn operators_and_observers_are_not_ownership_gated() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    let bound_op = store.attach_operator("op-2", bound("t1", None)).unwrap();
    let obs = store
        .mint("obs", Role::Observer, bound("t1", None))
        .unwrap();
    for arg in [None, Some("t1"), Some("t2")] {
        for verb in [Verb::ReadTaskState, Verb::CancelTask, Verb::PollTask] {
            store.verify(&op.bearer, verb, arg).unwrap();
            store.verify(&bound_op.bearer, verb, arg).unwrap();
        }
        store.verify(&obs.bearer, Verb::ReadTaskState, arg).unwrap();
    }
}

// ---- step 7: revoked, exhausted ------------------------------------------------

#[test]
fn uses_count_down_to_exhausted() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(2));
    assert_eq!(
        store
            .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap()
            .uses_left,
        Some(1)
    );
    assert_eq!(
        store
            .verify(&w.bearer, Verb::FetchData, None)
            .unwrap()
            .uses_left,
        Some(0)
    );
    for _ in 0..3 {
        let err = store
            .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap_err();
        assert_eq!(
            err,
            CapTokenError::TokenUsesExhausted {
                fingerprint: w.fingerprint
            }
        );
        assert_eq!(
            store
                .check(&w.bearer, Verb::FetchPrompt, Some("t1"))
                .unwrap_err(),
            err
        );
    }
    assert_eq!(uses_left(&store, &w.fingerprint), Some(0));
}

#[test]
fn a_one_time_token_is_accepted_once() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(1));
    store
        .verify(&w.bearer, Verb::PostResult, Some("t1"))
        .unwrap();
    assert_eq!(
        code(store.verify(&w.bearer, Verb::PostResult, Some("t1"))),
        ErrorCode::TokenUsesExhausted
    );
}

#[test]
fn a_zero_budget_token_is_exhausted_from_the_start() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(0));
    assert_eq!(
        code(store.verify(&w.bearer, Verb::FetchData, None)),
        ErrorCode::TokenUsesExhausted
    );
}

#[test]
fn unlimited_tokens_never_run_out() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", None);
    for _ in 0..500 {
        assert_eq!(
            store
                .verify(&w.bearer, Verb::FetchData, None)
                .unwrap()
                .uses_left,
            None
        );
    }
}

#[test]
fn revoked_is_refused_and_beats_uses_left() {
    let (mut store, _clock) = store();
    let plenty = worker(&mut store, "t1", Some(5));
    let unlimited = worker(&mut store, "t1", None);
    let empty = worker(&mut store, "t1", Some(1));
    store.verify(&empty.bearer, Verb::FetchData, None).unwrap();
    for m in [&plenty, &unlimited, &empty] {
        assert!(store.revoke(&m.fingerprint));
        let err = store
            .verify(&m.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap_err();
        assert_eq!(
            err,
            CapTokenError::TokenRevoked {
                fingerprint: m.fingerprint
            }
        );
        assert_eq!(
            store
                .check(&m.bearer, Verb::FetchPrompt, Some("t1"))
                .unwrap_err(),
            err
        );
    }
    assert_eq!(uses_left(&store, &plenty.fingerprint), Some(5));
    assert_eq!(uses_left(&store, &empty.fingerprint), Some(0));
}

// ---- order -----------------------------------------------------------------

#[test]
fn the_first_failing_step_decides() {
    let (mut store, clock) = store();
    let mut twin = store_on(&SECRET, StoreConfig::default(), &clock);
    let mut foreign = store_on(&OTHER_SECRET, StoreConfig::default(), &clock);

    // expired AND revoked -> expired (3 before 7)
    let w = worker(&mut store, "t1", Some(3));
    store.revoke(&w.fingerprint);
    // role violation on a revoked token -> role violation (4 before 7)
    assert_eq!(
        store.verify(&w.bearer, Verb::Heartbeat, None),
        Err(CapTokenError::RoleViolation {
            role: Role::Worker,
            verb: Verb::Heartbeat
        })
    );
    // mismatch on a revoked token -> mismatch (6 before 7)
    assert_eq!(
        code(store.verify(&w.bearer, Verb::FetchPrompt, Some("t2"))),
        ErrorCode::TokenTaskMismatch
    );
    // exhausted AND mismatched -> mismatch
    let one = worker(&mut store, "t1", Some(1));
    store.verify(&one.bearer, Verb::FetchData, None).unwrap();
    assert_eq!(
        code(store.verify(&one.bearer, Verb::FetchPrompt, None)),
        ErrorCode::TokenTaskMismatch
    );
    // unknown AND mismatched -> not found (5 before 6)
    let stranger = worker(&mut twin, "t1", None);
    assert_eq!(
        code(store.verify(&stranger.bearer, Verb::FetchPrompt, Some("t2"))),
        ErrorCode::TokenNotFound
    );
    // unknown AND role violation -> role violation (4 before 5)
    assert_eq!(
        code(store.verify(&stranger.bearer, Verb::Heartbeat, None)),
        ErrorCode::RoleViolation
    );
    // other secret AND role violation -> bad signature (2 before 4)
    let alien = worker(&mut foreign, "t1", None);
    assert_eq!(
        code(store.verify(&alien.bearer, Verb::Heartbeat, None)),
        ErrorCode::BadSignature
    );

    clock.advance(TTL);
    assert_eq!(
        store.verify(&w.bearer, Verb::FetchPrompt, Some("t1")),
        Err(CapTokenError::TokenExpired {
            fingerprint: w.fingerprint
        })
    );
    // expired AND role violation -> expired (3 before 4)
    assert_eq!(
        code(store.verify(&w.bearer, Verb::Heartbeat, None)),
        ErrorCode::TokenExpired
    );
    // expired AND unknown -> expired (3 before 5)
    assert_eq!(
        code(store.verify(&stranger.bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    // expired AND other secret -> bad signature (2 before 3)
    assert_eq!(
        code(store.verify(&alien.bearer, Verb::FetchData, None)),
        ErrorCode::BadSignature
    );
    // tampered AND expired -> bad signature
    let tampered = tamper(&w.bearer, "agent_id", json!("x"));
    assert_eq!(
        code(store.verify(&tampered, Verb::FetchData, None)),
        ErrorCode::BadSignature
    );
}

// ---- a denied call changes nothing; check() agrees with verify() ---------------

/// A store with one token per outcome, and calls that reach every step.
fn every_outcome() -> (TokenStore, Vec<(String, Verb, Option<String>)>) {
    let (mut store, clock) = store();
    let mut twin = store_on(&SECRET, StoreConfig::default(), &clock);
    let mut foreign = store_on(&OTHER_SECRET, StoreConfig::default(), &clock);
    let op = store.attach_operator("op", uses(10)).unwrap();
    let live = worker(&mut store, "t1", Some(10));
    let unlimited = worker(&mut store, "t1", None);
    let revoked = worker(&mut store, "t1", Some(10));
    store.revoke(&revoked.fingerprint);
    let exhausted = worker(&mut store, "t1", Some(1));
    store
        .verify(&exhausted.bearer, Verb::FetchData, None)
        .unwrap();
    let expiring = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                ttl_secs: Some(5),
                max_uses: Some(10),
                task_id: Some("t1".into()),
                scopes: None,
            },
        )
        .unwrap();
    let observer = store.mint("obs", Role::Observer, uses(10)).unwrap();
    let stranger = worker(&mut twin, "t1", Some(10));
    let alien = worker(&mut foreign, "t1", Some(10));
    clock.advance(5);

    let mut calls = Vec::new();
    let bearers = [
        op.bearer.clone(),
        live.bearer.clone(),
        unlimited.bearer.clone(),
        revoked.bearer.clone(),
        exhausted.bearer.clone(),
        expiring.bearer.clone(),
        observer.bearer.clone(),
        stranger.bearer.clone(),
        alien.bearer.clone(),
        tamper(&live.bearer, "max_uses", json!(99)),
        "garbage".to_owned(),
    ];
    for bearer in bearers {
        for verb in [
            Verb::FetchPrompt,
            Verb::FetchData,
            Verb::Heartbeat,
            Verb::ReadTaskState,
            Verb::StartTask,
        ] {
            for arg in [None, Some("t1"), Some("t2")] {
                calls.push((bearer.clone(), verb, arg.map(str::to_owned)));
            }
        }
    }
    (store, calls)
}

#[test]
fn check_decides_as_verify_and_spends_nothing() {
    let (mut store, calls) = every_outcome();
    let mut seen = std::collections::HashSet::new();
    for (bearer, verb, arg) in &calls {
        let before = store.records();
        let first = store.check(bearer, *verb, arg.as_deref());
        let second = store.check(bearer, *verb, arg.as_deref());
        assert_eq!(first, second);
        assert_eq!(store.records(), before, "check spent something");

        let verified = store.verify(bearer, *verb, arg.as_deref());
        match (&first, &verified) {
            (Ok(checked), Ok(granted)) => {
                seen.insert(None);
                assert_eq!(
                    granted.uses_left,
                    checked.uses_left.map(|n| n - 1),
                    "verify spends exactly one use"
                );
                let mut same = granted.clone();
                same.uses_left = checked.uses_left;
                assert_eq!(&same, checked);
                assert_eq!(uses_left(&store, &granted.fingerprint), granted.uses_left);
            }
            (Err(a), Err(b)) => {
                seen.insert(Some(a.code()));
                assert_eq!(a, b);
                assert_eq!(store.records(), before, "a denied call spent something");
            }
            _ => panic!("check {first:?} but verify {verified:?}"),
        }
    }
    let mut expected: std::collections::HashSet<Option<ErrorCode>> = [
        ErrorCode::MalformedToken,
        ErrorCode::BadSignature,
        ErrorCode::TokenExpired,
        ErrorCode::RoleViolation,
        ErrorCode::TokenNotFound,
        ErrorCode::TokenTaskMismatch,
        ErrorCode::TokenRevoked,
        ErrorCode::TokenUsesExhausted,
    ]
    .into_iter()
    .map(Some)
    .collect();
    expected.insert(None);
    assert_eq!(seen, expected, "every outcome was exercised");
}

#[test]
fn denied_calls_leave_uses_left_unchanged() {
    let (mut store, clock) = store();
    let w = worker(&mut store, "t1", Some(3));
    let denials: Vec<(Verb, Option<&str>, ErrorCode)> = vec![
        (Verb::FetchPrompt, Some("t2"), ErrorCode::TokenTaskMismatch),
        (Verb::PostResult, None, ErrorCode::TokenTaskMismatch),
        (Verb::Heartbeat, None, ErrorCode::RoleViolation),
        (Verb::AnswerQuery, Some("t1"), ErrorCode::RoleViolation),
    ];
    for (verb, arg, expected) in denials {
        assert_eq!(code(store.verify(&w.bearer, verb, arg)), expected);
        assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    }
    let tampered = tamper(&w.bearer, "max_uses", json!(100));
    assert_eq!(
        code(store.verify(&tampered, Verb::FetchData, None)),
        ErrorCode::BadSignature
    );
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    clock.advance(TTL);
    assert_eq!(
        code(store.verify(&w.bearer, Verb::FetchData, None)),
        ErrorCode::TokenExpired
    );
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    let record = store.record(&w.fingerprint).unwrap();
    assert!(!record.revoked);
    assert_eq!(record.task_id.as_deref(), Some("t1"));
}

#[test]
fn a_grant_says_who_is_calling_and_what_is_left() {
    let (mut store, _clock) = store();
    let w = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                scopes: Some(vec!["read".into(), "write".into()]),
                max_uses: Some(3),
                task_id: Some("t1".into()),
                ttl_secs: None,
            },
        )
        .unwrap();
    let checked = store
        .check(&w.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    assert_eq!(checked.uses_left, Some(3));
    let grant = store
        .verify(&w.bearer, Verb::FetchPrompt, Some("t1"))
        .unwrap();
    assert_eq!(grant.fingerprint, w.fingerprint);
    assert_eq!(grant.agent_id, "agent-7");
    assert_eq!(grant.role, Role::Worker);
    assert_eq!(grant.scopes, vec!["read".to_owned(), "write".to_owned()]);
    assert_eq!(grant.task_id.as_deref(), Some("t1"));
    assert_eq!(grant.uses_left, Some(2));
    assert_eq!(
        store
            .check(&w.bearer, Verb::FetchPrompt, Some("t1"))
            .unwrap()
            .uses_left,
        Some(2)
    );
    assert_eq!(
        store
            .verify(&w.bearer, Verb::FetchData, None)
            .unwrap()
            .uses_left,
        Some(1)
    );
    assert_eq!(
        store
            .verify(&w.bearer, Verb::FetchData, None)
            .unwrap()
            .uses_left,
        Some(0)
    );

    let op = operator(&mut store);
    let g = store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
    assert_eq!(g.task_id, None);
    assert_eq!(g.uses_left, None);
    assert_eq!(g.scopes, vec!["*".to_owned()]);
    assert_eq!(g.agent_id, "op-1");
}

#[test]
fn minted_tokens_have_the_spec_shape() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "t1", Some(3));
    let json = decode(&w.bearer);
    let keys: std::collections::BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "v",
            "agent_id",
            "role",
            "scopes",
            "issued_at",
            "expire_at",
            "max_uses",
            "nonce",
            "sig_hex"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(json["v"], json!(2));
    assert_eq!(json["role"], json!("worker"));
    assert_eq!(json["scopes"], json!(["*"]));
    assert_eq!(json["max_uses"], json!(3));
    let nonce = json["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 32);
    assert!(nonce
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let sig = json["sig_hex"].as_str().unwrap();
    assert_eq!(sig.len(), 64);
    assert!(sig
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(w.fingerprint, captoken::Fingerprint::of_nonce(nonce));
    assert!(w
        .bearer
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // Two mints never share a nonce.
    let w2 = worker(&mut store, "t1", Some(3));
    assert_ne!(nonce_of(&w2.bearer), nonce);
    assert_ne!(w2.fingerprint, w.fingerprint);
    // The record of a minted token carries no nonce.
    assert_eq!(store.record(&w.fingerprint).unwrap().token.nonce, "");
}
