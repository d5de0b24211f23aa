//! Allocation failure on the big paths is an error, not an abort: a
//! snapshot that does not fit is `ERR_LIMIT_EXCEEDED` (limit `memory`) and
//! changes nothing; a restore of text whose state may not fit is
//! `ERR_SNAPSHOT_INVALID` and creates nothing. This binary's allocator
//! refuses, while a test asks it to, every allocation above a size: the
//! honest way to make memory run out at a chosen point.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use captoken::{CapTokenError, ErrorCode, StoreConfig, Verb};
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Allocations larger than this fail (usize::MAX: none does).
static LARGEST: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The tests of this file run one at a time: the limit is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

struct Limited;

unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST.load(Ordering::SeqCst) {
            return core::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST.load(Ordering::SeqCst) {
            return core::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;

/// Run `f` with allocations above `largest` bytes failing.
fn limited<T>(largest: usize, f: impl FnOnce() -> T) -> T {
    LARGEST.store(largest, Ordering::SeqCst);
    let out = f();
    LARGEST.store(usize::MAX, Ordering::SeqCst);
    out
}

#[test]
fn a_snapshot_that_does_not_fit_is_limit_exceeded_and_changes_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut store, clock) = store();
    let op = operator(&mut store);
    store.set_journaling(true);
    let minted: Vec<_> = (0..5000)
        .map(|_| worker(&mut store, "t", Some(3)))
        .collect();
    let pending = store.take_journal();
    store
        .verify(&minted[0].bearer, Verb::FetchPrompt, Some("t"))
        .unwrap();
    let before = store.records();
    // ~1.7 MB of text; nothing above 1 MB may be allocated.
    let err = limited(1 << 20, || store.snapshot()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::LimitExceeded, "{err}");
    assert!(
        matches!(err, CapTokenError::LimitExceeded { limit: "memory", max } if max > 1 << 20),
        "{err:?}"
    );
    // Nothing changed: not the records, not the journal chain (the line not
    // yet taken is still there and still chains to the last snapshot).
    assert_eq!(store.records(), before);
    let line = store.take_journal();
    assert_eq!(line.lines().count(), 1);
    let snapshot = store.snapshot().unwrap();
    let back = restore(&snapshot, StoreConfig::default(), &clock).unwrap();
    assert_eq!(back.records(), store.records());
    assert!(!pending.is_empty());
    store.verify(&op.bearer, Verb::Heartbeat, None).unwrap();
}

#[test]
fn a_restore_whose_state_may_not_fit_is_refused_and_creates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut store, clock) = store();
    for _ in 0..5000 {
        worker(&mut store, "t", Some(3));
    }
    let text = store.snapshot().unwrap();
    assert!(text.len() > 1 << 20);
    let err = limited(1 << 20, || {
        restore(&text, StoreConfig::default(), &clock).map(|s| s.len())
    })
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotInvalid, "{err}");
    assert!(err.to_string().contains("too large"), "{err}");
    assert_eq!(
        restore(&text, StoreConfig::default(), &clock)
            .unwrap()
            .len(),
        5000
    );
}
