//! The attacks of the security issue, one test each. Every one of them
//! succeeded under the old rules (a Worker could dispatch to any task, mint
//! any scopes, lifetime and budget, choose task ids, and fill the store);
//! each test asserts the refusal the new rules give, and that the refusal
//! spends and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::store::Limits;
use captoken::{
    CapTokenError, ErrorCode, Fingerprint, MintOptions, Minted, Role, SigningFormat, StoreConfig,
    TaskInfo, TokenStore, Verb,
};
use common::*;

/// Everything a refused call must leave as it was.
fn state(store: &TokenStore) -> (Vec<(Fingerprint, captoken::CapTokenRecord)>, Vec<TaskInfo>) {
    (store.records(), store.tasks())
}

/// Mint options for a Worker's dispatch: scopes, lifetime, budget.
fn opts(scopes: Option<&[&str]>, ttl_secs: Option<u64>, max_uses: Option<u32>) -> MintOptions {
    MintOptions {
        scopes: scopes.map(|s| s.iter().map(|&x| x.to_owned()).collect()),
        ttl_secs,
        max_uses,
        task_id: None,
    }
}

/// Two Operators, each with a root task; a Worker dispatched by the first
/// with the given options on its task "a-root".
fn two_operators(worker_options: MintOptions) -> (TokenStore, Minted, Minted, Minted) {
    let (mut store, _clock) = store();
    let op_a = store
        .attach_operator("op-a", MintOptions::default())
        .unwrap();
    let op_b = store
        .attach_operator("op-b", MintOptions::default())
        .unwrap();
    store.start_task(&op_a.bearer, Some("a-root")).unwrap();
    store.start_task(&op_b.bearer, Some("b-root")).unwrap();
    let w = store
        .dispatch_attempt(&op_a.bearer, "a-root", worker_options)
        .unwrap();
    (store, op_a, op_b, w)
}

// ---- (a) one use, read only, 60 s: no unlimited token for someone else's task

#[test]
fn a_one_use_worker_cannot_dispatch_to_another_operators_task() {
    let (mut store, _op_a, _op_b, w) = two_operators(opts(Some(&["read"]), Some(60), Some(1)));
    let before = state(&store);
    // The old rules minted an unlimited ["*"] token for 1800 s on b-root here.
    for options in [
        MintOptions::default(),
        opts(Some(&["read"]), Some(10), Some(1)),
        opts(Some(&["*"]), Some(TTL), None),
    ] {
        let err = store
            .dispatch_attempt(&w.bearer, "b-root", options)
            .unwrap_err();
        assert_eq!(
            err,
            CapTokenError::TokenTaskMismatch {
                fingerprint: w.fingerprint,
                bound: Some("a-root".into()),
                arg: Some("b-root".into()),
            }
        );
    }
    assert_eq!(state(&store), before, "nothing spent, nothing minted");
    assert_eq!(uses_left(&store, &w.fingerprint), Some(1));
    assert!(store
        .records()
        .iter()
        .all(|(_, r)| r.task_id.as_deref() != Some("b-root")));

    // Its own task: with one use there is nothing to hand on.
    for options in [
        MintOptions::default(),
        opts(None, None, Some(1)),
        opts(Some(&["read"]), Some(10), Some(1)),
    ] {
        assert_eq!(
            store.dispatch_attempt(&w.bearer, "a-root", options),
            Err(CapTokenError::TokenUsesExhausted {
                fingerprint: w.fingerprint
            })
        );
    }
    assert_eq!(state(&store), before, "nothing spent, nothing minted");
    // The one use is still there for the Worker's own work.
    store
        .verify(&w.bearer, Verb::PostResult, Some("a-root"))
        .unwrap();
    assert_eq!(uses_left(&store, &w.fingerprint), Some(0));
}

// ---- (b) nothing wider than itself: scopes and lifetime ----------------------

#[test]
fn a_worker_cannot_mint_wider_scopes_or_a_longer_life() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store
        .dispatch_attempt(
            &op.bearer,
            "t",
            opts(Some(&["read", "list"]), Some(60), None),
        )
        .unwrap();
    assert_eq!(w.token.expire_at, T0 + 60);
    let before = state(&store);
    for scopes in [
        &["*"][..],
        &["read", "write"][..],
        &["write"][..],
        &["READ"][..],
        &["read", "*"][..],
    ] {
        assert_eq!(
            code(store.dispatch_attempt(&w.bearer, "t", opts(Some(scopes), None, None))),
            ErrorCode::InvalidArgument,
            "{scopes:?}"
        );
    }
    // An explicit lifetime past its own expiry is refused, at any time.
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "t", opts(None, Some(61), None))),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "t", opts(None, Some(TTL), None))),
        ErrorCode::InvalidArgument
    );
    clock.advance(20);
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "t", opts(None, Some(41), None))),
        ErrorCode::InvalidArgument
    );
    assert_eq!(state(&store), before, "refusals mint and spend nothing");

    // What it may mint: within its scopes, expiring no later than itself.
    let exact = store
        .dispatch_attempt(&w.bearer, "t", opts(Some(&["list"]), Some(40), None))
        .unwrap();
    assert_eq!(exact.token.scopes, vec!["list".to_owned()]);
    assert_eq!(exact.token.expire_at, T0 + 60);
    // Left out, scopes and lifetime default to the narrower: its own.
    let defaulted = store
        .dispatch_attempt(&w.bearer, "t", MintOptions::default())
        .unwrap();
    assert_eq!(defaulted.token.scopes, w.token.scopes);
    assert_eq!(defaulted.token.expire_at, w.token.expire_at);
    assert_eq!(defaulted.token.max_uses, None);
    // ... and the child cannot widen back what its minter could not.
    assert_eq!(
        code(store.dispatch_attempt(&exact.bearer, "t", opts(Some(&["read"]), None, None))),
        ErrorCode::InvalidArgument
    );
    // A default lifetime is cut to the minter's remaining life ...
    let long = store
        .dispatch_attempt(&op.bearer, "t", MintOptions::default())
        .unwrap();
    clock.advance(100);
    let shorter = store
        .dispatch_attempt(&long.bearer, "t", MintOptions::default())
        .unwrap();
    assert_eq!(shorter.token.expire_at, long.token.expire_at);
    // ... and the minter's life to the store's lifetime, when that is shorter.
    let short_store = StoreConfig {
        worker_token_ttl_secs: 30,
        ..StoreConfig::default()
    };
    let (mut small, _c) = store_with(short_store);
    let op = operator(&mut small);
    small.start_task(&op.bearer, Some("t")).unwrap();
    let w = small.dispatch_attempt(&op.bearer, "t", ttl(600)).unwrap();
    let child = small
        .dispatch_attempt(&w.bearer, "t", MintOptions::default())
        .unwrap();
    assert_eq!(child.token.expire_at, T0 + 30);
    // A ["*"] Worker may narrow to anything.
    let star = small
        .dispatch_attempt(&w.bearer, "t", opts(Some(&["x", "y"]), Some(10), None))
        .unwrap();
    assert_eq!(star.token.scopes, vec!["x".to_owned(), "y".to_owned()]);
}

// ---- (c) a budget is transferred down the tree, never multiplied -------------

#[test]
fn a_budget_of_ten_buys_ten_calls_for_the_whole_subtree() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "root", uses(10))
        .unwrap();
    let child_task = store.start_task(&w.bearer, None).unwrap().task_id;
    assert_eq!(uses_left(&store, &w.fingerprint), Some(9));

    // The ways to copy a budget instead of handing it on are refused.
    let before = state(&store);
    for max_uses in [None, Some(0), Some(9), Some(u32::MAX)] {
        assert_eq!(
            code(store.dispatch_attempt(&w.bearer, &child_task, opts(None, None, max_uses))),
            ErrorCode::InvalidArgument,
            "{max_uses:?}"
        );
    }
    assert_eq!(state(&store), before);

    // Hand 5 to a child: 1 + 5 spent.
    let child = store
        .dispatch_attempt(&w.bearer, &child_task, uses(5))
        .unwrap();
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    assert_eq!(child.token.max_uses, Some(5));
    // The child hands 2 to a grandchild: 1 + 2 spent.
    let grand_task = store.start_task(&child.bearer, None).unwrap().task_id;
    let grandchild = store
        .dispatch_attempt(&child.bearer, &grand_task, uses(2))
        .unwrap();
    assert_eq!(uses_left(&store, &child.fingerprint), Some(1));
    // Revoking the grandchild gives nothing back.
    store.revoke(&grandchild.fingerprint);
    assert_eq!(uses_left(&store, &child.fingerprint), Some(1));
    // The child's last use cannot be split any more.
    assert_eq!(
        code(store.dispatch_attempt(&child.bearer, &grand_task, uses(1))),
        ErrorCode::TokenUsesExhausted
    );
    // The top Worker reaches two levels down with what it has left.
    let grandchild2 = store
        .dispatch_attempt(&w.bearer, &grand_task, uses(1))
        .unwrap();
    assert_eq!(uses_left(&store, &w.fingerprint), Some(1));

    // Now spend everything with every token until all are exhausted, and
    // count every call allowed. So far: w start_task, w dispatch (child),
    // child start_task, child dispatch (grandchild), w dispatch (grandchild2).
    let mut calls = 5;
    let tokens = [
        (&w, "root"),
        (&child, child_task.as_str()),
        (&grandchild, grand_task.as_str()),
        (&grandchild2, grand_task.as_str()),
    ];
    loop {
        let mut any = false;
        for (token, task) in tokens {
            for verb in [Verb::FetchPrompt, Verb::FetchData, Verb::PollTask] {
                if store.verify(&token.bearer, verb, Some(task)).is_ok() {
                    calls += 1;
                    any = true;
                }
            }
            if store.start_task(&token.bearer, None).is_ok() {
                calls += 1;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    // 10 for the whole subtree, minus the 2 given to the revoked grandchild.
    assert_eq!(calls, 8);
    assert!(calls <= 10);
    for token in [&w, &child, &grandchild2] {
        assert_eq!(uses_left(&store, &token.fingerprint), Some(0));
    }
}

#[test]
fn an_unrevoked_subtree_spends_exactly_its_budget() {
    // The same tree without a revocation: exactly ten calls in all.
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "root", uses(10))
        .unwrap();
    let child = store.dispatch_attempt(&w.bearer, "root", uses(5)).unwrap();
    let grandchild = store
        .dispatch_attempt(&child.bearer, "root", uses(2))
        .unwrap();
    let mut calls = 2;
    for token in [&w, &child, &grandchild] {
        while store
            .verify(&token.bearer, Verb::FetchPrompt, Some("root"))
            .is_ok()
        {
            calls += 1;
        }
        // Nothing left to hand on, whatever is asked.
        for max_uses in [None, Some(1)] {
            assert!(store
                .dispatch_attempt(&token.bearer, "root", opts(None, None, max_uses))
                .is_err());
        }
    }
    assert_eq!(calls, 10);
}

// ---- (d) depth and ownership cannot be side-stepped --------------------------

#[test]
fn a_worker_at_the_depth_cap_cannot_escape_through_a_root() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("d0")).unwrap();
    store.start_task(&op.bearer, Some("other-root")).unwrap();
    for depth in 1..4 {
        store
            .start_task_under(
                &op.bearer,
                Some(&format!("d{}", depth - 1)),
                Some(&format!("d{depth}")),
            )
            .unwrap();
    }
    let deep = store
        .dispatch_attempt(&op.bearer, "d3", MintOptions::default())
        .unwrap();
    let before = state(&store);
    assert_eq!(
        store.start_task(&deep.bearer, None),
        Err(CapTokenError::SpawnDepthExceeded { current: 4, max: 4 })
    );
    // The old way out: a fresh Worker on a root (its own or any other), whose
    // children sit at depth 1 again.
    for root in ["d0", "other-root", "d2"] {
        assert_eq!(
            code(store.dispatch_attempt(&deep.bearer, root, MintOptions::default())),
            ErrorCode::TokenTaskMismatch,
            "{root}"
        );
        assert_eq!(
            code(store.start_task_under(&deep.bearer, Some(root), None)),
            ErrorCode::TokenTaskMismatch,
            "{root}"
        );
    }
    // A Worker dispatched on its own task at the cap is still at the cap.
    let again = store
        .dispatch_attempt(&deep.bearer, "d3", MintOptions::default())
        .unwrap();
    let after_dispatch = state(&store);
    assert_eq!(
        code(store.start_task(&again.bearer, None)),
        ErrorCode::SpawnDepthExceeded
    );
    assert_eq!(state(&store), after_dispatch);
    assert_eq!(before.1, after_dispatch.1, "no task was made");
    assert!(store.tasks().iter().all(|t| t.spawn_depth < 4));
}

#[test]
fn a_worker_cannot_touch_another_tasks_state() {
    let (mut store, _op_a, _op_b, w) = two_operators(uses(50));
    let before = state(&store);
    for verb in [
        Verb::PostResult,
        Verb::CancelTask,
        Verb::EmitOutput,
        Verb::FetchPrompt,
        Verb::ReadTaskState,
        Verb::PollTask,
    ] {
        for arg in [Some("b-root"), None] {
            assert_eq!(
                store.verify(&w.bearer, verb, arg),
                Err(CapTokenError::TokenTaskMismatch {
                    fingerprint: w.fingerprint,
                    bound: Some("a-root".into()),
                    arg: arg.map(str::to_owned),
                }),
                "{verb} {arg:?}"
            );
        }
    }
    // Not even on a task below its own: these six name their task exactly.
    let below = store.start_task(&w.bearer, None).unwrap().task_id;
    let after_start = state(&store);
    for verb in [Verb::PostResult, Verb::CancelTask, Verb::EmitOutput] {
        assert_eq!(
            code(store.verify(&w.bearer, verb, Some(&below))),
            ErrorCode::TokenTaskMismatch
        );
    }
    assert_eq!(state(&store), after_start);
    assert_eq!(before.1.len() + 1, after_start.1.len());
    assert_eq!(uses_left(&store, &w.fingerprint), Some(49));
}

// ---- (e) task-id squatting -------------------------------------------------------

#[test]
fn a_worker_cannot_choose_task_ids() {
    let (mut store, op_a, op_b, w) = two_operators(MintOptions::default());
    let before = state(&store);
    // Taking a root's future id, another tree's id, or any id at all.
    for id in [
        "b-next",
        "b-root",
        "a-root",
        "anything",
        "task-000000000000",
    ] {
        for parent in [None, Some("a-root")] {
            assert_eq!(
                code(store.start_task_under(&w.bearer, parent, Some(id))),
                ErrorCode::InvalidArgument,
                "{parent:?} {id}"
            );
        }
        // Under another tree it is not even its subtree.
        assert_eq!(
            code(store.start_task_under(&w.bearer, Some("b-root"), Some(id))),
            ErrorCode::TokenTaskMismatch
        );
    }
    assert_eq!(state(&store), before);
    // The Operators' names stay free for them.
    let next = store.start_task(&op_b.bearer, Some("b-next")).unwrap();
    assert_eq!(next.spawn_depth, 0);
    let named = store
        .start_task_under(&op_a.bearer, Some("a-root"), Some("anything"))
        .unwrap();
    assert_eq!(named.parent_id.as_deref(), Some("a-root"));
    // The Worker's own children get ids the store makes, none of them taken.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let child = store.start_task(&w.bearer, None).unwrap();
        assert!(child.task_id.starts_with("task-"), "{}", child.task_id);
        assert_eq!(child.parent_id.as_deref(), Some("a-root"));
        assert!(seen.insert(child.task_id));
    }
}

#[test]
fn an_mlua_swarm_task_id_with_a_separator_is_refused() {
    // worker-of-<id> with '|' in it would re-read as another role's token.
    let (mut store, _clock) = store_with(StoreConfig {
        format: SigningFormat::MluaSwarm,
        ..StoreConfig::default()
    });
    let op = operator(&mut store);
    let before = state(&store);
    for id in ["x|Operator|*", "|", "a|b"] {
        assert_eq!(
            code(store.start_task(&op.bearer, Some(id))),
            ErrorCode::InvalidArgument,
            "{id}"
        );
    }
    assert_eq!(state(&store), before);
    // A ',' is fine in a task id (it is not in a scope).
    store.start_task(&op.bearer, Some("a,b")).unwrap();
}

// ---- (f) memory exhaustion ---------------------------------------------------------

fn small_limits() -> Limits {
    Limits {
        max_records: 40,
        max_tasks: 20,
        max_tasks_per_tree: 1000,
        max_children_per_task: 1000,
        max_made_per_worker_token: 1000,
    }
}

fn limited_store(limits: Limits) -> (TokenStore, std::sync::Arc<captoken::FixedClock>) {
    store_with(StoreConfig {
        limits,
        ..StoreConfig::default()
    })
}

fn limit_of(result: Result<impl std::fmt::Debug, CapTokenError>) -> (&'static str, u64) {
    match result.expect_err("a limit should refuse this") {
        CapTokenError::LimitExceeded { limit, max } => (limit, max),
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn looping_workers_hit_the_store_limits_and_an_operator_still_gets_through() {
    let (mut store, clock) = limited_store(small_limits());
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "root", MintOptions::default())
        .unwrap();
    // Tasks: the Worker loops start_task until the store refuses.
    let mut started = 0;
    let err = loop {
        match store.start_task(&w.bearer, None) {
            Ok(_) => started += 1,
            Err(err) => break err,
        }
        assert!(started < 100, "no limit stopped the loop");
    };
    assert_eq!(
        err,
        CapTokenError::LimitExceeded {
            limit: "maxTasks",
            max: 20
        }
    );
    assert_eq!(err.code(), ErrorCode::LimitExceeded);
    // Workers fill nine tenths: 18 tasks, the root included.
    assert_eq!(store.tasks().len(), 18);
    assert_eq!(started, 17);
    // Records: the Worker loops dispatch_attempt.
    let mut minted = 0;
    let err = loop {
        match store.dispatch_attempt(&w.bearer, "root", MintOptions::default()) {
            Ok(_) => minted += 1,
            Err(err) => break err,
        }
        assert!(minted < 100, "no limit stopped the loop");
    };
    assert_eq!(
        err,
        CapTokenError::LimitExceeded {
            limit: "maxRecords",
            max: 40
        }
    );
    assert_eq!(store.len(), 36);
    let before = state(&store);
    assert_eq!(
        limit_of(store.start_task(&w.bearer, None)),
        ("maxTasks", 20)
    );
    assert_eq!(
        limit_of(store.dispatch_attempt(&w.bearer, "root", MintOptions::default())),
        ("maxRecords", 40)
    );
    assert_eq!(
        state(&store),
        before,
        "a refusal past a limit changes nothing"
    );

    // The store keeps working: decisions, snapshot and restore.
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("root"))
        .unwrap();
    let text = store.snapshot().unwrap();
    let restored = restore(
        &text,
        StoreConfig {
            limits: small_limits(),
            ..StoreConfig::default()
        },
        &clock,
    )
    .unwrap();
    assert_eq!(restored.records(), store.records());
    assert_eq!(restored.tasks(), store.tasks());

    // The Operator starts a new root and dispatches a Worker to it.
    let root2 = store.start_task(&op.bearer, Some("root-2")).unwrap();
    assert_eq!(root2.spawn_depth, 0);
    let w2 = store
        .dispatch_attempt(&op.bearer, "root-2", uses(3))
        .unwrap();
    store
        .verify(&w2.bearer, Verb::FetchPrompt, Some("root-2"))
        .unwrap();
    // The new Worker is held to the Workers' share too.
    assert_eq!(
        limit_of(store.start_task(&w2.bearer, None)),
        ("maxTasks", 20)
    );
    assert_eq!(uses_left(&store, &w2.fingerprint), Some(2));
    // The Operator may use the last tenth to the end, and no further.
    let mut roots = 1;
    let err = loop {
        match store.start_task(&op.bearer, None) {
            Ok(_) => roots += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(roots, 2);
    assert_eq!(store.tasks().len(), 20);
    assert_eq!(
        err,
        CapTokenError::LimitExceeded {
            limit: "maxTasks",
            max: 20
        }
    );
    // Purging expired Worker tokens frees records for Workers again.
    clock.advance(TTL);
    assert!(store.purge_expired() > 0);
    let fresh = store
        .dispatch_attempt(&op.bearer, "root", MintOptions::default())
        .unwrap();
    store
        .dispatch_attempt(&fresh.bearer, "root", MintOptions::default())
        .unwrap();
}

#[test]
fn each_limit_is_named_with_its_value() {
    // maxChildrenPerTask: a Worker filling its own task's children can still
    // go one level down; the Operator is held to it too.
    let (mut store, _clock) = limited_store(Limits {
        max_children_per_task: 3,
        ..Limits::default()
    });
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("r")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "r", MintOptions::default())
        .unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| store.start_task(&w.bearer, None).unwrap().task_id)
        .collect();
    let before = state(&store);
    assert_eq!(
        limit_of(store.start_task(&w.bearer, None)),
        ("maxChildrenPerTask", 3)
    );
    assert_eq!(
        limit_of(store.start_task_under(&op.bearer, Some("r"), Some("x"))),
        ("maxChildrenPerTask", 3)
    );
    assert_eq!(state(&store), before);
    store
        .start_task_under(&w.bearer, Some(&kids[0]), None)
        .unwrap();

    // maxTasksPerTree: the root's whole tree, the root included; another
    // root is a fresh tree.
    let (mut store, _clock) = limited_store(Limits {
        max_tasks_per_tree: 5,
        ..Limits::default()
    });
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("r")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "r", MintOptions::default())
        .unwrap();
    let child = store.start_task(&w.bearer, None).unwrap().task_id;
    store.start_task(&w.bearer, None).unwrap();
    store
        .start_task_under(&w.bearer, Some(&child), None)
        .unwrap();
    store
        .start_task_under(&w.bearer, Some(&child), None)
        .unwrap();
    let before = state(&store);
    for parent in [None, Some(child.as_str())] {
        assert_eq!(
            limit_of(store.start_task_under(&w.bearer, parent, None)),
            ("maxTasksPerTree", 5)
        );
    }
    assert_eq!(state(&store), before);
    store.start_task(&op.bearer, Some("r2")).unwrap();
    store
        .start_task_under(&op.bearer, Some("r2"), Some("r2-c"))
        .unwrap();

    // maxMadePerWorkerToken: tasks and tokens together, per token.
    let (mut store, _clock) = limited_store(Limits {
        max_made_per_worker_token: 4,
        ..Limits::default()
    });
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("r")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "r", uses(100)).unwrap();
    store.start_task(&w.bearer, None).unwrap();
    store.start_task(&w.bearer, None).unwrap();
    store.dispatch_attempt(&w.bearer, "r", uses(1)).unwrap();
    let child = store.dispatch_attempt(&w.bearer, "r", uses(10)).unwrap();
    let before = state(&store);
    assert_eq!(
        limit_of(store.start_task(&w.bearer, None)),
        ("maxMadePerWorkerToken", 4)
    );
    assert_eq!(
        limit_of(store.dispatch_attempt(&w.bearer, "r", uses(1))),
        ("maxMadePerWorkerToken", 4)
    );
    assert_eq!(state(&store), before, "nothing spent past the limit");
    // The Worker's other calls still work, and its child has its own count.
    store
        .verify(&w.bearer, Verb::FetchPrompt, Some("r"))
        .unwrap();
    store.start_task(&child.bearer, None).unwrap();

    // maxRecords bounds every role at the full value (Workers at 9/10).
    let (mut store, _clock) = limited_store(Limits {
        max_records: 3,
        ..Limits::default()
    });
    let _op = operator(&mut store);
    store
        .mint("a", Role::Observer, MintOptions::default())
        .unwrap();
    store
        .mint("b", Role::Observer, MintOptions::default())
        .unwrap();
    assert_eq!(
        limit_of(store.mint("c", Role::Observer, MintOptions::default())),
        ("maxRecords", 3)
    );
    assert_eq!(store.len(), 3);
}

#[test]
fn limits_of_zero_are_refused() {
    let clock = std::sync::Arc::new(captoken::FixedClock::new(T0));
    for limits in [
        Limits {
            max_records: 0,
            ..Limits::default()
        },
        Limits {
            max_tasks: 0,
            ..Limits::default()
        },
        Limits {
            max_tasks_per_tree: 0,
            ..Limits::default()
        },
        Limits {
            max_children_per_task: 0,
            ..Limits::default()
        },
        Limits {
            max_made_per_worker_token: 0,
            ..Limits::default()
        },
    ] {
        let config = StoreConfig {
            limits,
            ..StoreConfig::default()
        };
        let err =
            TokenStore::new(&SECRET, config, Box::new(std::sync::Arc::clone(&clock))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
}

// ---- (g) crafted fingerprints sharing their first bytes --------------------------

#[test]
fn a_snapshot_of_fingerprints_sharing_their_first_eight_bytes_restores_correctly() {
    // The crafted text is sealed with the store's secret: the attack is on
    // the record table's hash, below the seal.
    const CRAFTED: usize = 20_000;
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "t", uses(5)).unwrap();
    let text = store.snapshot().unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records = doc["records"].as_array().unwrap().clone();
    let template = records
        .iter()
        .find(|r| r["fingerprint"] == w.fingerprint.to_string())
        .unwrap()
        .clone();
    // Every crafted fingerprint starts with the real Worker's first 8 bytes.
    let prefix = &w.fingerprint.to_string()[..16];
    let mut crafted = Vec::with_capacity(CRAFTED);
    let mut all = records.clone();
    for i in 0..CRAFTED {
        let fp = format!("{prefix}{:048x}", i + 1);
        let mut record = template.clone();
        record["fingerprint"] = fp.clone().into();
        record["uses_left"] = ((i % 5) as u32).into();
        record["revoked"] = (i % 7 == 0).into();
        all.push(record);
        crafted.push(fp.parse::<Fingerprint>().unwrap());
    }
    doc["records"] = all.into();
    for sealed_field in ["version", "key_id", "mac"] {
        doc.as_object_mut().unwrap().remove(sealed_field);
    }
    let sealed = captoken::snapshot::seal_snapshot_text(&doc.to_string(), &SECRET).unwrap();
    let restored = restore(&sealed, StoreConfig::default(), &clock).unwrap();
    let mut restored = restored;
    assert_eq!(restored.len(), CRAFTED + 2);
    for (i, fp) in crafted.iter().enumerate() {
        let record = restored.record(fp).expect("every crafted record is found");
        assert_eq!(record.uses_left, Some((i % 5) as u32), "#{i}");
        assert_eq!(record.revoked, i % 7 == 0, "#{i}");
        assert_eq!(record.task_id.as_deref(), Some("t"));
    }
    // The real tokens decide as before, the Worker among its look-alikes.
    assert_eq!(
        restored
            .verify(&w.bearer, Verb::FetchPrompt, Some("t"))
            .unwrap()
            .uses_left,
        Some(4)
    );
    restored.start_task(&op.bearer, Some("t2")).unwrap();
    // A crafted record cannot be used (no one holds its nonce), but it can
    // be revoked like any other, and only it.
    let target = crafted[1];
    assert!(restored.revoke(&target));
    assert!(restored.record(&target).unwrap().revoked);
    assert!(!restored.record(&crafted[2]).unwrap().revoked);
    assert!(!restored.record(&w.fingerprint).unwrap().revoked);
    // An unknown fingerprint with the same prefix is not found.
    let unknown: Fingerprint = format!("{prefix}{:048x}", CRAFTED + 1).parse().unwrap();
    assert!(restored.record(&unknown).is_none());
    // Listing and a second round trip keep them all.
    let listed = restored.records();
    assert_eq!(listed.len(), CRAFTED + 2);
    let again = restore(
        &restored.snapshot().unwrap(),
        StoreConfig::default(),
        &clock,
    )
    .unwrap();
    assert_eq!(again.records(), listed);
    // Purging them (expired) leaves the Operator's record.
    clock.advance(TTL);
    let mut again = again;
    assert_eq!(again.purge_expired(), CRAFTED + 1);
    assert_eq!(again.len(), 1);
    assert!(again.record(&op.fingerprint).is_some());
}

// ---- remint cannot resurrect or lengthen -----------------------------------------

#[test]
fn remint_keeps_the_lifetime_and_refuses_the_long_dead() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "t", ttl(60)).unwrap();
    clock.advance(100);
    // 40 s past expiry, within one lifetime: a late delivery.
    let again = store.remint(&w.bearer).unwrap();
    assert_eq!(again.token.expire_at - again.token.issued_at, 60);
    assert_eq!(again.token.expire_at, T0 + 160);
    // More than one lifetime past expiry: refused, nothing changes.
    clock.advance(121);
    let before = state(&store);
    assert_eq!(code(store.remint(&again.bearer)), ErrorCode::TokenExpired);
    assert_eq!(state(&store), before);
}

/// Remint never stretches a Worker-minted token past its minter: a chain of
/// remints, each within one lifetime, would otherwise outlive the Worker that
/// minted the token. The cap survives a snapshot round trip.
#[test]
fn reminting_a_worker_minted_token_never_outlives_the_minting_worker() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let minter = store
        .dispatch_attempt(
            &op.bearer,
            "root",
            MintOptions {
                ttl_secs: Some(60),
                ..MintOptions::default()
            },
        )
        .unwrap();
    clock.advance(50);
    let child = store
        .dispatch_attempt(&minter.bearer, "root", MintOptions::default())
        .unwrap();
    assert_eq!(child.token.expire_at, T0 + 60);
    clock.advance(5);
    // Reminted before the cap: what is left of the minter's life, no more.
    let again = store.remint(&child.bearer).unwrap();
    assert_eq!(again.token.expire_at, T0 + 60);
    // Past the cap, within one lifetime of the token's own expiry: refused.
    clock.advance(6);
    let mut back = restore(&store.snapshot().unwrap(), StoreConfig::default(), &clock).unwrap();
    for store in [&mut store, &mut back] {
        assert_eq!(
            code(store.remint(&again.bearer)),
            ErrorCode::TokenExpired,
            "a remint past the minting Worker's expiry"
        );
        assert_eq!(
            code(store.verify(&minter.bearer, Verb::FetchPrompt, Some("root"))),
            ErrorCode::TokenExpired
        );
    }
    // The Operator's own tokens carry no cap.
    let plain = store.dispatch_attempt(&op.bearer, "root", ttl(10)).unwrap();
    clock.advance(15);
    let fresh = store.remint(&plain.bearer).unwrap();
    assert_eq!(fresh.token.expire_at, T0 + 61 + 15 + 10);
}

/// Only exactly `["*"]` is unrestricted: a Worker whose scopes merely hold
/// "*" among others cannot mint a token with exactly `["*"]` (found by the
/// attacker's review of this change).
#[test]
fn a_scope_list_holding_a_star_cannot_mint_an_unrestricted_token() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let w = store
        .dispatch_attempt(
            &op.bearer,
            "root",
            MintOptions {
                scopes: Some(vec!["read".into(), "*".into()]),
                ..MintOptions::default()
            },
        )
        .unwrap();
    let before = store.records();
    let star = MintOptions {
        scopes: Some(vec!["*".into()]),
        ..MintOptions::default()
    };
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "root", star)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(store.records(), before);
    // Its own list, or a part of it, is fine.
    let same = MintOptions {
        scopes: Some(vec!["read".into(), "*".into()]),
        ..MintOptions::default()
    };
    store.dispatch_attempt(&w.bearer, "root", same).unwrap();
    let read = MintOptions {
        scopes: Some(vec!["read".into()]),
        ..MintOptions::default()
    };
    store.dispatch_attempt(&w.bearer, "root", read).unwrap();
}

/// A Worker's count of what it made survives a restore, from a snapshot and
/// from a journal, so reopening a store never hands it a fresh allowance
/// (found by an attacker's review of this change).
/// A store whose Worker tokens may make two tasks or tokens each.
fn made_config() -> StoreConfig {
    StoreConfig {
        limits: Limits {
            max_made_per_worker_token: 2,
            ..Limits::default()
        },
        ..StoreConfig::default()
    }
}

/// A journaling store (and its snapshot before the Worker) with a Worker
/// that has made a task and a token: its allowance is spent.
fn worker_that_made_two() -> (
    TokenStore,
    std::sync::Arc<captoken::FixedClock>,
    String,
    Minted,
) {
    let (mut store, clock) = store_with(made_config());
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let base = store.snapshot().unwrap();
    store.set_journaling(true);
    let w = store
        .dispatch_attempt(&op.bearer, "root", MintOptions::default())
        .unwrap();
    store.start_task(&w.bearer, None).unwrap();
    store
        .dispatch_attempt(&w.bearer, "root", MintOptions::default())
        .unwrap();
    (store, clock, base, w)
}

#[test]
fn what_a_worker_made_is_still_counted_after_a_restore() {
    let config = made_config;
    let (mut store, clock, base, w) = worker_that_made_two();
    let third = |store: &mut TokenStore| code(store.start_task(&w.bearer, None));
    assert_eq!(third(&mut store), ErrorCode::LimitExceeded);
    let journal = store.take_journal();
    let snapshot = store.snapshot().unwrap();
    let mut from_snapshot = restore(&snapshot, config(), &clock).unwrap();
    assert_eq!(third(&mut from_snapshot), ErrorCode::LimitExceeded);
    let mut from_journal = TokenStore::restore_with_journal(
        &base,
        &journal,
        &SECRET,
        config(),
        Box::new(std::sync::Arc::clone(&clock)),
    )
    .unwrap();
    assert_eq!(third(&mut from_journal), ErrorCode::LimitExceeded);
}

#[test]
fn reminting_a_worker_token_keeps_what_it_made() {
    let config = made_config;
    let (mut store, clock, base, w) = worker_that_made_two();
    // Each remint hands the Worker a new token; none a new allowance.
    let mut bearer = w.bearer.clone();
    for _ in 0..3 {
        bearer = store.remint(&bearer).unwrap().bearer;
        assert_eq!(
            code(store.start_task(&bearer, None)),
            ErrorCode::LimitExceeded
        );
        assert_eq!(
            code(store.dispatch_attempt(&bearer, "root", MintOptions::default())),
            ErrorCode::LimitExceeded
        );
    }
    // Nor after a restore from the snapshot, or from the journal.
    let journal = store.take_journal();
    let mut from_snapshot = restore(&store.snapshot().unwrap(), config(), &clock).unwrap();
    assert_eq!(
        code(from_snapshot.start_task(&bearer, None)),
        ErrorCode::LimitExceeded
    );
    let mut from_journal = TokenStore::restore_with_journal(
        &base,
        &journal,
        &SECRET,
        config(),
        Box::new(std::sync::Arc::clone(&clock)),
    )
    .unwrap();
    assert_eq!(
        code(from_journal.start_task(&bearer, None)),
        ErrorCode::LimitExceeded
    );
}
