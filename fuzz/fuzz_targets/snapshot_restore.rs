//! `TokenStore::restore` on arbitrary text never panics; when it succeeds, the
//! restored store's `snapshot()` restores again to an equal snapshot, and the
//! store still works (reads, purges, mints and decides).
//!
//! Three ways in: the raw input (the seal refuses nearly all of it, so this
//! fuzzes the seal check and the unsealed opt-in); the input sealed with the
//! known secret (so the parser and every check below the seal are fuzzed);
//! and the input as journal lines, sealed and chained after a known
//! snapshot (so replay is fuzzed below the seal too).
#![no_main]

use captoken::snapshot::{seal_journal_text, seal_snapshot_text};
use captoken::{
    FixedClock, MintOptions, RestoreOptions, SigningFormat, StoreConfig, TokenStore, Verb,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::Arc;

const SECRET: [u8; 32] = [7u8; 32];
const T0: u64 = 1_764_150_000;

/// A snapshot with its records ordered by fingerprint (the text lists them in
/// the store's own order, which need not survive a round trip).
fn normalised(snapshot: &str) -> Value {
    let mut value: Value = serde_json::from_str(snapshot).expect("a snapshot is JSON");
    // The MAC covers the records in their written order.
    value.as_object_mut().expect("an object").remove("mac");
    let records = value
        .get_mut("records")
        .and_then(Value::as_array_mut)
        .expect("a snapshot has records");
    records.sort_by(|a, b| a["fingerprint"].as_str().cmp(&b["fingerprint"].as_str()));
    value
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Seeds are whole snapshots: their `"version":1` is the sealed header's.
    let body = match text.strip_prefix("{\"version\":1,") {
        Some(rest) => format!("{{{rest}"),
        None => text.to_string(),
    };
    let sealed = seal_snapshot_text(&body, &SECRET).ok();
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let config = StoreConfig {
            format,
            ..StoreConfig::default()
        };
        let clock = Arc::new(FixedClock::new(T0));
        let restore = |snapshot: &str, journal: &str, allow_unsealed: bool| {
            TokenStore::restore_with(
                snapshot,
                journal,
                &SECRET,
                config.clone(),
                Box::new(Arc::clone(&clock)),
                RestoreOptions { allow_unsealed },
            )
        };
        // The known snapshot the journal path replays after: a small state.
        let mut base = TokenStore::new(&SECRET, config.clone(), Box::new(Arc::clone(&clock)))
            .expect("a store");
        let op = base
            .attach_operator("op", MintOptions::default())
            .expect("an operator");
        base.start_task(&op.bearer, Some("t")).expect("a task");
        let base = base.snapshot().expect("a snapshot");
        let journal = seal_journal_text(&base, &text, &SECRET).expect("sealed lines");
        let attempts = [
            restore(&text, "", false),
            restore(&text, "", true),
            sealed
                .as_deref()
                .map_or_else(|| restore("", "", false), |s| restore(s, "", false)),
            restore(&base, &journal, false),
            restore(&base, &text, false),
        ];
        for restored in attempts {
            let Ok(store) = restored else { continue };
            exercise(store, &config, &clock);
        }
    }
});

fn exercise(mut store: TokenStore, config: &StoreConfig, clock: &Arc<FixedClock>) {
    {
        let config = config.clone();
        let first = store.snapshot().expect("a snapshot");
        let mut again =
            TokenStore::restore(&first, &SECRET, config.clone(), Box::new(Arc::clone(clock)))
                .expect("a store's own snapshot restores");
        let second = again.snapshot().expect("a snapshot");
        assert_eq!(
            normalised(&first),
            normalised(&second),
            "round trip changed the snapshot"
        );
        assert_eq!(
            store.records(),
            again.records(),
            "round trip changed the records"
        );
        assert_eq!(store.tasks(), again.tasks(), "round trip changed the tasks");
        assert_eq!(store.len(), again.len());

        // Reading and deciding on the restored state.
        for (fingerprint, record) in store.records() {
            assert!(record.token.nonce.is_empty(), "a record hands back a nonce");
            assert_eq!(store.record(&fingerprint), Some(record));
        }
        for task in store.tasks() {
            assert_eq!(store.task(&task.task_id).as_ref(), Some(&task));
            let _ = store.revoke_task(&task.task_id);
        }
        clock.advance(3600);
        let _ = store.purge_expired();
        let minted = store
            .attach_operator("op-1", MintOptions::default())
            .expect("a restored store mints");
        let info = store
            .start_task(&minted.bearer, None)
            .expect("a restored store starts a task");
        let worker = store
            .dispatch_attempt(&minted.bearer, &info.task_id, MintOptions::default())
            .expect("a restored store dispatches");
        store
            .verify(&worker.bearer, Verb::FetchPrompt, Some(&info.task_id))
            .expect("a restored store decides");
        let _ = store.snapshot();
    }
}
