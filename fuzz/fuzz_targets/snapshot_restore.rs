//! `TokenStore::restore` on arbitrary text never panics; when it succeeds, the
//! restored store's `snapshot()` restores again to an equal snapshot, and the
//! store still works (reads, purges, mints and decides).
#![no_main]

use captoken::{FixedClock, MintOptions, SigningFormat, StoreConfig, TokenStore, Verb};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::Arc;

const SECRET: [u8; 32] = [7u8; 32];
const T0: u64 = 1_764_150_000;

/// A snapshot with its records ordered by fingerprint (the text lists them in
/// the store's own order, which need not survive a round trip).
fn normalised(snapshot: &str) -> Value {
    let mut value: Value = serde_json::from_str(snapshot).expect("a snapshot is JSON");
    let records = value
        .get_mut("records")
        .and_then(Value::as_array_mut)
        .expect("a snapshot has records");
    records.sort_by(|a, b| a["fingerprint"].as_str().cmp(&b["fingerprint"].as_str()));
    value
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let config = StoreConfig {
            format,
            ..StoreConfig::default()
        };
        let clock = Arc::new(FixedClock::new(T0));
        let restored =
            TokenStore::restore(&text, &SECRET, config.clone(), Box::new(Arc::clone(&clock)));
        let Ok(mut store) = restored else { continue };

        let first = store.snapshot();
        let again = TokenStore::restore(
            &first,
            &SECRET,
            config.clone(),
            Box::new(Arc::clone(&clock)),
        )
        .expect("a store's own snapshot restores");
        let second = again.snapshot();
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
});
