//! Writes the seed corpus: real bearers and snapshots made with the secret and
//! clock the fuzz targets use, plus a few near-misses.
//!
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --example seed_corpus`
//! (from the repository root). It replaces the `seed-*` files only; inputs
//! the fuzzer found and that were kept stay as they are.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use captoken::{FixedClock, MintOptions, Role, SigningFormat, StoreConfig, TokenStore, Verb};
use std::fs;
use std::path::Path;
use std::sync::Arc;

const SECRET: [u8; 32] = [7u8; 32];
const T0: u64 = 1_764_150_000;

fn store(format: SigningFormat) -> (TokenStore, Arc<FixedClock>) {
    let config = StoreConfig {
        format,
        ..StoreConfig::default()
    };
    let clock = Arc::new(FixedClock::new(T0));
    let store = TokenStore::new(&SECRET, config, Box::new(Arc::clone(&clock))).expect("a store");
    (store, clock)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus directory");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("corpus file");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let bearers = root.join("bearer_decode");
    let snapshots = root.join("snapshot_restore");
    let ops = root.join("store_ops");

    for (format, tag) in [
        (SigningFormat::V2, "v2"),
        (SigningFormat::MluaSwarm, "mlua"),
    ] {
        let (mut store, clock) = store(format);
        let op = store
            .attach_operator("op-1", MintOptions::default())
            .expect("operator");
        let root_task = store
            .start_task(&op.bearer, Some("root"))
            .expect("root task");
        let worker = store
            .dispatch_attempt(
                &op.bearer,
                &root_task.task_id,
                MintOptions {
                    max_uses: Some(3),
                    ..MintOptions::default()
                },
            )
            .expect("worker");
        let child = store.start_task(&worker.bearer, None).expect("child task");
        let once = store
            .mint(
                "agent-7",
                Role::Worker,
                MintOptions {
                    scopes: Some(vec!["read".into(), "write".into()]),
                    max_uses: Some(1),
                    task_id: Some(child.task_id.clone()),
                    ttl_secs: Some(60),
                },
            )
            .expect("one-time worker");
        let observer = store
            .mint("watcher", Role::Observer, MintOptions::default())
            .expect("observer");
        store
            .verify(&once.bearer, Verb::FetchPrompt, Some(&child.task_id))
            .expect("one use");
        store.revoke(&observer.fingerprint);

        write(&bearers, &format!("{tag}-operator"), op.bearer.as_bytes());
        write(&bearers, &format!("{tag}-worker"), worker.bearer.as_bytes());
        write(&bearers, &format!("{tag}-once"), once.bearer.as_bytes());
        write(
            &bearers,
            &format!("{tag}-json"),
            &URL_SAFE_NO_PAD.decode(&worker.bearer).expect("base64"),
        );
        write(
            &snapshots,
            &format!("{tag}-full"),
            store.snapshot().as_bytes(),
        );
        clock.advance(7200);
        store.purge_expired();
        write(
            &snapshots,
            &format!("{tag}-purged"),
            store.snapshot().as_bytes(),
        );
    }
    let (empty, _) = store(SigningFormat::V2);
    write(&snapshots, "v2-empty", empty.snapshot().as_bytes());
    write(&bearers, "empty", b"");
    write(&bearers, "not-base64", b"!!!!");
    write(&bearers, "null", URL_SAFE_NO_PAD.encode("null").as_bytes());
    write(
        &bearers,
        "empty-object",
        URL_SAFE_NO_PAD.encode("{}").as_bytes(),
    );

    // store_ops inputs are raw bytes that `arbitrary` turns into operations;
    // a few fixed patterns give the fuzzer non-empty sequences to start from.
    write(&ops, "zeros", &[0u8; 64]);
    write(&ops, "ramp", &(0u8..=255).collect::<Vec<_>>());
    let mut mixed = Vec::new();
    for i in 0u8..96 {
        mixed.extend_from_slice(&[i % 13, i.wrapping_mul(7), i % 4, 1, i, 2]);
    }
    write(&ops, "mixed", &mixed);
}
