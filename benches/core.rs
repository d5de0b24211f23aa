//! Criterion benches of the native core: the ceiling the WebAssembly build
//! chases. `npm run bench` runs these and reads their medians; run them alone
//! with `cargo bench --bench core`.
//!
//! Sizes come from the environment (the smoke run uses tiny ones):
//! * `CAPTOKEN_BENCH_TOKENS`: live worker tokens in the verify/check store (default 100000);
//! * `CAPTOKEN_BENCH_RECORDS`: records in the snapshot/restore store (default 1000000);
//! * `CAPTOKEN_BENCH_QUICK=1`: short warm-up and measurement, few samples.
//!
//! Bench ids (directories under `target/criterion` or `$CRITERION_HOME`):
//! `verify`, `check`, `check_hmac`, `consume`, `mint`, `snapshot`, `restore`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use captoken::{CapTokenRecord, FixedClock, MintOptions, Role, StoreConfig, TokenStore, Verb};
use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode};
use std::sync::Arc;
use std::time::Duration;

/// The SPEC's test-vector secret: the 32 bytes 0x01..0x20.
const SECRET: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = (i + 1) as u8;
        i += 1;
    }
    s
};
/// A fixed "now" (unix seconds); tokens expire 1800 s later, so never here.
const T0: u64 = 1_764_150_000;
const TASK: &str = "task-bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn quick() -> bool {
    std::env::var("CAPTOKEN_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn new_store() -> TokenStore {
    let clock = Arc::new(FixedClock::new(T0));
    TokenStore::new(&SECRET, StoreConfig::default(), Box::new(clock)).unwrap()
}

/// A store with an operator, one tracked task and `n` live worker tokens
/// (unlimited uses) bound to it, minted by `dispatch_attempt`.
fn store_with_workers(n: usize) -> (TokenStore, String, Vec<String>) {
    let mut store = new_store();
    let operator = store
        .attach_operator("op-bench", MintOptions::default())
        .unwrap()
        .bearer;
    store.start_task(&operator, Some(TASK)).unwrap();
    let bearers = (0..n)
        .map(|_| {
            store
                .dispatch_attempt(&operator, TASK, MintOptions::default())
                .unwrap()
                .bearer
        })
        .collect();
    (store, operator, bearers)
}

fn verify_and_check(c: &mut Criterion) {
    let n = env_usize("CAPTOKEN_BENCH_TOKENS", 100_000);
    let (mut store, _operator, bearers) = store_with_workers(n);

    // verify: decode, signature, expiry, gate, lookup, ownership, consume.
    let mut i = 0usize;
    c.bench_function("verify", |b| {
        b.iter(|| {
            let bearer = &bearers[i % n];
            i = i.wrapping_add(1);
            let grant = store
                .verify_ref(black_box(bearer), Verb::FetchPrompt, Some(TASK))
                .unwrap();
            black_box(grant.uses_left());
        });
    });

    // check: the same decision, nothing spent.
    let mut i = 0usize;
    c.bench_function("check", |b| {
        b.iter(|| {
            let bearer = &bearers[i % n];
            i = i.wrapping_add(1);
            let grant = store
                .check_ref(black_box(bearer), Verb::FetchPrompt, Some(TASK))
                .unwrap();
            black_box(grant.uses_left());
        });
    });

    // check on a store restored from a snapshot: its records have not passed
    // the HMAC in this process, and check never marks them, so every call
    // runs the signature (the path the JavaScript peers always take).
    let restored = TokenStore::restore(
        &store.snapshot().unwrap(),
        &SECRET,
        StoreConfig::default(),
        Box::new(Arc::new(FixedClock::new(T0))),
    )
    .unwrap();
    drop(store);
    let mut i = 0usize;
    c.bench_function("check_hmac", |b| {
        b.iter(|| {
            let bearer = &bearers[i % n];
            i = i.wrapping_add(1);
            let grant = restored
                .check_ref(black_box(bearer), Verb::FetchPrompt, Some(TASK))
                .unwrap();
            black_box(grant.uses_left());
        });
    });
}

fn consume(c: &mut Criterion) {
    let mut store = new_store();
    let minted = store
        .mint(
            "worker-1",
            Role::Worker,
            MintOptions {
                max_uses: Some(u32::MAX),
                task_id: Some(TASK.to_owned()),
                ..MintOptions::default()
            },
        )
        .unwrap();
    let mut record = CapTokenRecord::from_worker_token(minted.token, TASK.to_owned());
    c.bench_function("consume", |b| {
        b.iter(|| {
            // u32::MAX uses: the bench never runs out (and a refill keeps it so).
            if record.uses_left == Some(0) {
                record.uses_left = Some(u32::MAX);
            }
            black_box(&mut record).consume().unwrap();
        });
    });
}

fn mint(c: &mut Criterion) {
    // Criterion runs millions of iterations into this one store: lift the
    // store-wide record limit (the default, 2,000,000, would stop it).
    let config = StoreConfig {
        limits: captoken::store::Limits {
            max_records: u32::MAX,
            ..captoken::store::Limits::default()
        },
        ..StoreConfig::default()
    };
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = TokenStore::new(&SECRET, config, Box::new(clock)).unwrap();
    let operator = store
        .attach_operator("op-bench", MintOptions::default())
        .unwrap()
        .bearer;
    store.start_task(&operator, Some(TASK)).unwrap();
    // Each iteration adds a record, as a real dispatch does.
    c.bench_function("mint", |b| {
        b.iter(|| {
            black_box(
                store
                    .dispatch_attempt(black_box(&operator), TASK, MintOptions::default())
                    .unwrap(),
            )
        });
    });
}

fn snapshot_restore(c: &mut Criterion) {
    let n = env_usize("CAPTOKEN_BENCH_RECORDS", 1_000_000);
    let (mut store, _operator, _bearers) = store_with_workers(n);
    let mut group = c.benchmark_group("store");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    if !quick() {
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(10));
    }
    group.bench_function("snapshot", |b| {
        b.iter_with_large_drop(|| store.snapshot().unwrap());
    });
    let text = store.snapshot().unwrap();
    drop(store);
    group.bench_function("restore", |b| {
        b.iter_with_large_drop(|| {
            TokenStore::restore(
                black_box(&text),
                &SECRET,
                StoreConfig::default(),
                Box::new(Arc::new(FixedClock::new(T0))),
            )
            .unwrap()
        });
    });
    group.finish();
}

fn config() -> Criterion {
    let c = Criterion::default();
    if quick() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
    } else {
        c
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = verify_and_check, consume, mint, snapshot_restore
}
criterion_main!(benches);
