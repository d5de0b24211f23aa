//! Tasks and spawn depth: start_task, dispatch_attempt, and compound calls
//! that fail without spending.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{
    CapTokenError, ErrorCode, MintOptions, Role, StoreConfig, TaskInfo, TokenStore, Verb,
};
use common::*;

fn task(id: &str, parent: Option<&str>, depth: u32) -> TaskInfo {
    TaskInfo {
        task_id: id.to_owned(),
        parent_id: parent.map(str::to_owned),
        spawn_depth: depth,
    }
}

#[test]
fn an_operator_starts_root_tasks_at_depth_zero() {
    let (mut store, _clock) = store();
    let op = store.attach_operator("op-1", uses(5)).unwrap();
    let root = store.start_task(&op.bearer, Some("root-1")).unwrap();
    assert_eq!(root, task("root-1", None, 0));
    assert_eq!(store.task("root-1"), Some(root.clone()));
    assert_eq!(uses_left(&store, &op.fingerprint), Some(4));

    let generated = store.start_task(&op.bearer, None).unwrap();
    assert!(
        generated.task_id.starts_with("task-"),
        "{}",
        generated.task_id
    );
    assert_eq!(generated.task_id.len(), "task-".len() + 12);
    assert_eq!(generated.parent_id, None);
    assert_eq!(generated.spawn_depth, 0);
    let again = store.start_task(&op.bearer, None).unwrap();
    assert_ne!(again.task_id, generated.task_id);
    assert_eq!(store.tasks().len(), 3);
    assert_eq!(uses_left(&store, &op.fingerprint), Some(2));
}

#[test]
fn a_worker_starts_a_child_of_its_bound_task_one_level_down() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("root")).unwrap();
    let w0 = store
        .dispatch_attempt(&op.bearer, "root", MintOptions::default())
        .unwrap();
    let child = store.start_task(&w0.bearer, None).unwrap();
    assert_eq!(child.parent_id.as_deref(), Some("root"));
    assert_eq!(child.spawn_depth, 1);
    let sibling = store.start_task(&w0.bearer, None).unwrap();
    assert_eq!(sibling.parent_id.as_deref(), Some("root"));
    assert_eq!(sibling.spawn_depth, 1);
    let w1 = store
        .dispatch_attempt(&w0.bearer, &child.task_id, MintOptions::default())
        .unwrap();
    let grandchild = store.start_task(&w1.bearer, None).unwrap();
    assert_eq!(grandchild.parent_id, Some(child.task_id.clone()));
    assert_eq!(grandchild.spawn_depth, 2);
    // The root's worker may also start one below its child directly.
    let under = store
        .start_task_under(&w0.bearer, Some(&child.task_id), None)
        .unwrap();
    assert_eq!(under.parent_id, Some(child.task_id.clone()));
    // tasks() is ordered by depth, then id.
    let depths: Vec<u32> = store.tasks().iter().map(|t| t.spawn_depth).collect();
    assert_eq!(depths, vec![0, 1, 1, 2, 2]);
}

/// Root plus a chain of workers; returns the workers, one per depth.
fn chain(store: &mut TokenStore, levels: u32) -> Vec<captoken::Minted> {
    let op = operator(store);
    store.start_task(&op.bearer, Some("d0")).unwrap();
    let mut workers = vec![store.dispatch_attempt(&op.bearer, "d0", uses(10)).unwrap()];
    for depth in 1..levels {
        // The Operator names each child so that the tests can find it.
        let child = store
            .start_task_under(
                &op.bearer,
                Some(&format!("d{}", depth - 1)),
                Some(&format!("d{depth}")),
            )
            .unwrap();
        assert_eq!(child.spawn_depth, depth);
        assert_eq!(child.parent_id, Some(format!("d{}", depth - 1)));
        workers.push(
            store
                .dispatch_attempt(&op.bearer, &child.task_id, uses(10))
                .unwrap(),
        );
    }
    workers
}

#[test]
fn depths_zero_to_three_exist_and_the_spawn_at_four_is_refused() {
    let (mut store, _clock) = store();
    assert_eq!(store.config().max_spawn_depth, 4);
    let workers = chain(&mut store, 4);
    assert_eq!(store.task("d3").unwrap().spawn_depth, 3);
    let deepest = &workers[3];
    let before = store.records();
    let err = store.start_task(&deepest.bearer, Some("d4")).unwrap_err();
    assert_eq!(
        err,
        CapTokenError::SpawnDepthExceeded { current: 4, max: 4 }
    );
    assert_eq!(err.code(), ErrorCode::SpawnDepthExceeded);
    let err = store.start_task(&deepest.bearer, None).unwrap_err();
    assert_eq!(
        err,
        CapTokenError::SpawnDepthExceeded { current: 4, max: 4 }
    );
    assert_eq!(store.task("d4"), None);
    assert_eq!(store.tasks().len(), 4);
    assert_eq!(store.records(), before, "a refused spawn spends nothing");
    assert_eq!(uses_left(&store, &deepest.fingerprint), Some(10));
    // The depth-2 worker can still spawn (a second child at depth 3).
    let ok = store.start_task(&workers[2].bearer, None).unwrap();
    assert_eq!(ok.parent_id.as_deref(), Some("d2"));
    assert_eq!(ok.spawn_depth, 3);
}

#[test]
fn a_custom_max_spawn_depth_is_honoured() {
    for max in [1u32, 2, 3, 6] {
        let (mut store, _clock) = store_with(StoreConfig {
            max_spawn_depth: max,
            ..StoreConfig::default()
        });
        let workers = chain(&mut store, max);
        let last = workers.last().unwrap();
        assert_eq!(
            store.start_task(&last.bearer, None),
            Err(CapTokenError::SpawnDepthExceeded { current: max, max }),
            "max {max}"
        );
        assert_eq!(store.tasks().len(), max as usize);
    }
    // An Operator's root task is always allowed, even with max 1.
    let (mut store, _clock) = store_with(StoreConfig {
        max_spawn_depth: 1,
        ..StoreConfig::default()
    });
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("r")).unwrap();
}

#[test]
fn a_max_spawn_depth_of_zero_or_a_zero_ttl_is_refused() {
    let clock = std::sync::Arc::new(captoken::FixedClock::new(T0));
    for config in [
        StoreConfig {
            max_spawn_depth: 0,
            ..StoreConfig::default()
        },
        StoreConfig {
            worker_token_ttl_secs: 0,
            ..StoreConfig::default()
        },
    ] {
        let err =
            TokenStore::new(&SECRET, config, Box::new(std::sync::Arc::clone(&clock))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
}

#[test]
fn dispatch_mints_a_worker_bound_to_the_task() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("job-9")).unwrap();
    clock.advance(100);
    let now = T0 + 100;
    let w = store
        .dispatch_attempt(&op.bearer, "job-9", MintOptions::default())
        .unwrap();
    assert_eq!(w.token.agent_id, "worker-of-job-9");
    assert_eq!(w.token.role, Role::Worker);
    assert_eq!(w.token.scopes, vec!["*".to_owned()]);
    assert_eq!(w.token.max_uses, None);
    assert_eq!(w.token.issued_at, now);
    assert_eq!(w.token.expire_at, now + 1800);
    assert_eq!(w.token.v, Some(2));
    assert_eq!(decode(&w.bearer)["agent_id"], "worker-of-job-9");
    let record = store.record(&w.fingerprint).unwrap();
    assert_eq!(record.task_id.as_deref(), Some("job-9"));
    assert_eq!(record.uses_left, None);
    assert!(!record.revoked);
    assert_eq!(record.token.agent_id, "worker-of-job-9");

    let grant = store
        .verify(&w.bearer, Verb::FetchPrompt, Some("job-9"))
        .unwrap();
    assert_eq!(grant.task_id.as_deref(), Some("job-9"));
    assert_eq!(grant.agent_id, "worker-of-job-9");
    clock.set(now + 1799);
    store
        .verify(&w.bearer, Verb::PostResult, Some("job-9"))
        .unwrap();
    clock.set(now + 1800);
    assert_eq!(
        code(store.verify(&w.bearer, Verb::PostResult, Some("job-9"))),
        ErrorCode::TokenExpired
    );
}

#[test]
fn dispatch_honours_options_and_the_configured_ttl() {
    let (mut store, _clock) = store_with(StoreConfig {
        worker_token_ttl_secs: 60,
        ..StoreConfig::default()
    });
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store
        .dispatch_attempt(&op.bearer, "t", MintOptions::default())
        .unwrap();
    assert_eq!(w.token.expire_at, T0 + 60);
    let limited = store
        .dispatch_attempt(
            &op.bearer,
            "t",
            MintOptions {
                max_uses: Some(2),
                ttl_secs: Some(5),
                scopes: Some(vec!["read".into()]),
                task_id: Some("t".into()),
            },
        )
        .unwrap();
    assert_eq!(limited.token.max_uses, Some(2));
    assert_eq!(limited.token.expire_at, T0 + 5);
    assert_eq!(limited.token.scopes, vec!["read".to_owned()]);
    assert_eq!(uses_left(&store, &limited.fingerprint), Some(2));
    // options.task_id naming another task is refused, spending nothing.
    let op_limited = store.attach_operator("op-2", uses(3)).unwrap();
    let before = store.len();
    assert_eq!(
        code(store.dispatch_attempt(&op_limited.bearer, "t", bound("other", None))),
        ErrorCode::InvalidArgument
    );
    assert_eq!(store.len(), before);
    assert_eq!(uses_left(&store, &op_limited.fingerprint), Some(3));
}

#[test]
fn dispatch_on_an_unknown_task_is_refused_and_spends_nothing() {
    let (mut store, _clock) = store();
    let op = store.attach_operator("op-1", uses(2)).unwrap();
    let before = store.records();
    let err = store
        .dispatch_attempt(&op.bearer, "nope", MintOptions::default())
        .unwrap_err();
    assert_eq!(
        err,
        CapTokenError::TaskNotFound {
            task_id: Some("nope".into())
        }
    );
    assert_eq!(err.code(), ErrorCode::TaskNotFound);
    assert!(err.to_string().contains("nope"));
    assert_eq!(store.records(), before);
    assert_eq!(uses_left(&store, &op.fingerprint), Some(2));
    // A worker dispatching on its own task the store does not track likewise
    // (it may name only its own task or one below it: "nope" is neither).
    let w = worker(&mut store, "ext", Some(2));
    let before = store.records();
    assert_eq!(
        store.dispatch_attempt(&w.bearer, "ext", uses(1)),
        Err(CapTokenError::TaskNotFound {
            task_id: Some("ext".into())
        })
    );
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "nope", uses(1))),
        ErrorCode::TokenTaskMismatch
    );
    assert_eq!(store.records(), before);
    assert_eq!(uses_left(&store, &w.fingerprint), Some(2));
}

#[test]
fn a_worker_bound_to_an_untracked_task_works_but_cannot_spawn() {
    let (mut store, _clock) = store();
    let w = worker(&mut store, "ext-1", Some(10));
    assert_eq!(store.task("ext-1"), None);
    for verb in [
        Verb::FetchPrompt,
        Verb::PostResult,
        Verb::ReadTaskState,
        Verb::CancelTask,
        Verb::PollTask,
    ] {
        store.verify(&w.bearer, verb, Some("ext-1")).unwrap();
    }
    assert_eq!(uses_left(&store, &w.fingerprint), Some(5));
    // It passes the gate for start_task ...
    store.check(&w.bearer, Verb::StartTask, None).unwrap();
    // ... but its depth is unknown, so the spawn is refused, spending nothing.
    for id in [None, Some("child")] {
        assert_eq!(
            store.start_task(&w.bearer, id),
            Err(CapTokenError::TaskNotFound {
                task_id: Some("ext-1".into())
            })
        );
    }
    assert!(store.tasks().is_empty());
    assert_eq!(uses_left(&store, &w.fingerprint), Some(5));

    // A worker bound to no task at all cannot spawn either.
    let loose = store.mint("loose", Role::Worker, uses(3)).unwrap();
    assert_eq!(
        store.start_task(&loose.bearer, Some("x")),
        Err(CapTokenError::TaskNotFound { task_id: None })
    );
    assert_eq!(uses_left(&store, &loose.fingerprint), Some(3));
    assert!(store.tasks().is_empty());
}

#[test]
fn an_untracked_task_is_never_treated_as_depth_zero() {
    // Even when the caller later tracks a task of the same name as a root,
    // only the tracked depth counts.
    let (mut store, _clock) = store_with(StoreConfig {
        max_spawn_depth: 2,
        ..StoreConfig::default()
    });
    let op = operator(&mut store);
    let w = worker(&mut store, "ext", None);
    assert_eq!(
        code(store.start_task(&w.bearer, None)),
        ErrorCode::TaskNotFound
    );
    store.start_task(&op.bearer, Some("ext")).unwrap();
    let child = store.start_task(&w.bearer, None).unwrap();
    assert_eq!(child.parent_id.as_deref(), Some("ext"));
    assert_eq!(child.spawn_depth, 1);
    assert_eq!(store.task(&child.task_id), Some(child.clone()));
    // One level further is max_spawn_depth 2: refused.
    assert_eq!(
        store.start_task_under(&w.bearer, Some(&child.task_id), None),
        Err(CapTokenError::SpawnDepthExceeded { current: 2, max: 2 })
    );
}

#[test]
fn a_duplicate_task_id_is_refused_and_spends_nothing() {
    let (mut store, _clock) = store();
    let op = store.attach_operator("op-1", uses(5)).unwrap();
    store.start_task(&op.bearer, Some("t1")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "t1", uses(5)).unwrap();
    // An Operator names the child's parent and id; a Worker may name neither
    // an id of its own nor a duplicate (its children's ids are the store's).
    store
        .start_task_under(&op.bearer, Some("t1"), Some("c1"))
        .unwrap();
    let before = store.records();
    let tasks = store.tasks();
    for (bearer, parent, id) in [
        (&op.bearer, None, "t1"),
        (&op.bearer, None, "c1"),
        (&op.bearer, Some("t1"), "c1"),
        (&op.bearer, Some("c1"), "t1"),
        (&w.bearer, None, "t1"),
        (&w.bearer, None, "c1"),
        (&w.bearer, Some("c1"), "c1"),
        (&w.bearer, None, "fresh"),
    ] {
        assert_eq!(
            code(store.start_task_under(bearer, parent, Some(id))),
            ErrorCode::InvalidArgument,
            "{parent:?} {id}"
        );
    }
    for bad in ["", &"x".repeat(257)] {
        assert_eq!(
            code(store.start_task(&op.bearer, Some(bad))),
            ErrorCode::InvalidArgument
        );
    }
    assert_eq!(store.records(), before);
    assert_eq!(store.tasks(), tasks);
    assert_eq!(store.task("c1"), Some(task("c1", Some("t1"), 1)));
    assert_eq!(store.task("fresh"), None);
    assert_eq!(uses_left(&store, &w.fingerprint), Some(5));
}

#[test]
fn failed_compound_calls_spend_nothing_even_on_one_time_tokens() {
    let (mut store, _clock) = store_with(StoreConfig {
        max_spawn_depth: 1,
        ..StoreConfig::default()
    });
    let op = store.attach_operator("op", uses(1)).unwrap();
    let op2 = operator(&mut store);
    store.start_task(&op2.bearer, Some("t")).unwrap();
    let w = store.dispatch_attempt(&op2.bearer, "t", uses(1)).unwrap();
    // depth exceeded
    assert_eq!(
        code(store.start_task(&w.bearer, None)),
        ErrorCode::SpawnDepthExceeded
    );
    // outside the worker's subtree
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, "missing", MintOptions::default())),
        ErrorCode::TokenTaskMismatch
    );
    // task not found
    let untracked = worker(&mut store, "gone", Some(1));
    assert_eq!(
        code(store.dispatch_attempt(&untracked.bearer, "gone", uses(1))),
        ErrorCode::TaskNotFound
    );
    assert_eq!(uses_left(&store, &untracked.fingerprint), Some(1));
    assert_eq!(
        code(store.dispatch_attempt(&op.bearer, "missing", MintOptions::default())),
        ErrorCode::TaskNotFound
    );
    // a dispatch that would hand on a budget the worker does not have beyond
    // this call's own use
    for options in [MintOptions::default(), uses(1)] {
        assert_eq!(
            code(store.dispatch_attempt(&w.bearer, "t", options)),
            ErrorCode::TokenUsesExhausted
        );
    }
    // duplicate task id
    assert_eq!(
        code(store.start_task(&op.bearer, Some("t"))),
        ErrorCode::InvalidArgument
    );
    // invalid mint options in a dispatch
    assert_eq!(
        code(store.dispatch_attempt(&op.bearer, "t", ttl(1 << 53))),
        ErrorCode::InvalidArgument
    );
    assert_eq!(uses_left(&store, &op.fingerprint), Some(1));
    assert_eq!(uses_left(&store, &w.fingerprint), Some(1));
    // The one use is still there for a call that succeeds.
    store
        .verify(&w.bearer, Verb::PostResult, Some("t"))
        .unwrap();
    assert_eq!(uses_left(&store, &w.fingerprint), Some(0));
    store.start_task(&op.bearer, Some("t2")).unwrap();
    assert_eq!(uses_left(&store, &op.fingerprint), Some(0));
    assert_eq!(
        code(store.start_task(&op.bearer, Some("t3"))),
        ErrorCode::TokenUsesExhausted
    );
    assert_eq!(store.task("t3"), None);
}

#[test]
fn denied_compound_calls_create_no_task_and_no_token() {
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let obs = store
        .mint("obs", Role::Observer, MintOptions::default())
        .unwrap();
    let revoked = worker(&mut store, "t", None);
    store.revoke(&revoked.fingerprint);
    let len = store.len();
    assert_eq!(
        store.start_task(&obs.bearer, Some("x")),
        Err(CapTokenError::RoleViolation {
            role: Role::Observer,
            verb: Verb::StartTask
        })
    );
    assert_eq!(
        store.dispatch_attempt(&obs.bearer, "t", MintOptions::default()),
        Err(CapTokenError::RoleViolation {
            role: Role::Observer,
            verb: Verb::DispatchAttempt
        })
    );
    assert_eq!(
        code(store.start_task(&revoked.bearer, Some("x"))),
        ErrorCode::TokenRevoked
    );
    assert_eq!(
        code(store.dispatch_attempt(&revoked.bearer, "t", MintOptions::default())),
        ErrorCode::TokenRevoked
    );
    let expiring = worker(&mut store, "t", None);
    clock.advance(TTL);
    assert_eq!(
        code(store.start_task(&expiring.bearer, Some("x"))),
        ErrorCode::TokenExpired
    );
    assert_eq!(store.len(), len + 1);
    assert_eq!(store.task("x"), None);
    assert_eq!(store.tasks().len(), 1);
}

#[test]
fn start_task_and_dispatch_spend_one_use_of_the_caller() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    store.start_task(&op.bearer, Some("t")).unwrap();
    let w = store.dispatch_attempt(&op.bearer, "t", uses(4)).unwrap();
    let c = store.start_task(&w.bearer, None).unwrap();
    assert_eq!(c.parent_id.as_deref(), Some("t"));
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    // A limited worker's dispatch spends its one use plus the budget it hands
    // on; with no budget named it is refused and spends nothing.
    assert_eq!(
        code(store.dispatch_attempt(&w.bearer, &c.task_id, MintOptions::default())),
        ErrorCode::InvalidArgument
    );
    assert_eq!(uses_left(&store, &w.fingerprint), Some(3));
    let child_worker = store
        .dispatch_attempt(&w.bearer, &c.task_id, uses(1))
        .unwrap();
    assert_eq!(uses_left(&store, &w.fingerprint), Some(1));
    assert_eq!(uses_left(&store, &child_worker.fingerprint), Some(1));
    assert_eq!(child_worker.token.max_uses, Some(1));
    assert_eq!(
        store
            .record(&child_worker.fingerprint)
            .unwrap()
            .task_id
            .as_deref(),
        Some(c.task_id.as_str())
    );
    // An unlimited worker spends nothing countable and may hand on anything.
    let free = store
        .dispatch_attempt(&op.bearer, "t", MintOptions::default())
        .unwrap();
    let unlimited_child = store
        .dispatch_attempt(&free.bearer, &c.task_id, MintOptions::default())
        .unwrap();
    assert_eq!(uses_left(&store, &unlimited_child.fingerprint), None);
    assert_eq!(uses_left(&store, &free.fingerprint), None);
}

#[test]
fn listings_are_ordered_tasks_by_depth_then_id_records_by_fingerprint() {
    let (mut store, _clock) = store();
    let op = operator(&mut store);
    for root in ["r-b", "r-a", "r-c"] {
        store.start_task(&op.bearer, Some(root)).unwrap();
    }
    for (parent, child) in [("r-c", "c-a"), ("r-a", "c-b"), ("r-b", "b"), ("r-a", "a")] {
        // The Operator names children; a Worker's get ids from the store.
        store
            .start_task_under(&op.bearer, Some(parent), Some(child))
            .unwrap();
        let w = store
            .dispatch_attempt(&op.bearer, child, MintOptions::default())
            .unwrap();
        store.start_task(&w.bearer, None).unwrap();
    }
    let ids: Vec<(u32, String)> = store
        .tasks()
        .into_iter()
        .map(|t| (t.spawn_depth, t.task_id))
        .collect();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(ids.len(), 11);
    let fingerprints: Vec<_> = store.records().into_iter().map(|(fp, _)| fp).collect();
    let mut expected = fingerprints.clone();
    expected.sort();
    assert_eq!(fingerprints, expected);
    assert_eq!(fingerprints.len(), 5);
}
