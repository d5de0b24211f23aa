//! Shared helpers for the store integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use captoken::{
    CapTokenError, ErrorCode, Fingerprint, FixedClock, MintOptions, Minted, Role, StoreConfig,
    TokenStore,
};
use std::sync::Arc;

/// The secret every test store uses unless told otherwise.
pub const SECRET: [u8; 32] = [7u8; 32];
/// A second secret, for "signed by someone else".
pub const OTHER_SECRET: [u8; 32] = [8u8; 32];
/// The clock's starting point (the protocol's example time).
pub const T0: u64 = 1_764_150_000;
/// The default token lifetime.
pub const TTL: u64 = 1800;

/// A store with the default config and a clock the test can move.
pub fn store() -> (TokenStore, Arc<FixedClock>) {
    store_with(StoreConfig::default())
}

/// A store with `config` and a clock the test can move.
pub fn store_with(config: StoreConfig) -> (TokenStore, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(T0));
    let store = store_on(&SECRET, config, &clock);
    (store, clock)
}

/// A store with `secret` and `config` reading the given (shared) clock.
pub fn store_on(secret: &[u8], config: StoreConfig, clock: &Arc<FixedClock>) -> TokenStore {
    TokenStore::new(secret, config, Box::new(Arc::clone(clock))).unwrap()
}

/// Restore `snapshot` with the test secret and `config`, on the shared clock.
pub fn restore(
    snapshot: &str,
    config: StoreConfig,
    clock: &Arc<FixedClock>,
) -> Result<TokenStore, CapTokenError> {
    TokenStore::restore(snapshot, &SECRET, config, Box::new(Arc::clone(clock)))
}

/// Mint options bound to a task, with an optional budget.
pub fn bound(task: &str, max_uses: Option<u32>) -> MintOptions {
    MintOptions {
        task_id: Some(task.to_owned()),
        max_uses,
        ..MintOptions::default()
    }
}

/// Mint options with a budget and nothing else.
pub fn uses(max_uses: u32) -> MintOptions {
    MintOptions {
        max_uses: Some(max_uses),
        ..MintOptions::default()
    }
}

/// Mint options with a lifetime and nothing else.
pub fn ttl(secs: u64) -> MintOptions {
    MintOptions {
        ttl_secs: Some(secs),
        ..MintOptions::default()
    }
}

/// An unlimited Operator session token.
pub fn operator(store: &mut TokenStore) -> Minted {
    store
        .attach_operator("op-1", MintOptions::default())
        .unwrap()
}

/// A Worker token bound to `task` (tracked or not) with a budget.
pub fn worker(store: &mut TokenStore, task: &str, max_uses: Option<u32>) -> Minted {
    store
        .mint("agent-7", Role::Worker, bound(task, max_uses))
        .unwrap()
}

/// The JSON inside a bearer.
pub fn decode(bearer: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(bearer).unwrap()).unwrap()
}

/// The order of a token's fields in its canonical JSON (docs/protocol.md).
pub const CANONICAL_ORDER: [&str; 9] = [
    "v",
    "agent_id",
    "role",
    "scopes",
    "issued_at",
    "expire_at",
    "max_uses",
    "nonce",
    "sig_hex",
];

/// A JSON value as text, an object's keys in the canonical token order
/// (other keys after them): how a forger who knows the rules would write it.
pub fn canonical_text(value: &serde_json::Value) -> String {
    let Some(object) = value.as_object() else {
        return value.to_string();
    };
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort_by_key(|key| {
        CANONICAL_ORDER
            .iter()
            .position(|known| known == key)
            .unwrap_or(CANONICAL_ORDER.len())
    });
    let fields: Vec<String> = keys
        .into_iter()
        .map(|key| format!("{}:{}", serde_json::Value::from(key.as_str()), object[key]))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The bearer of a JSON value, written in the canonical field order.
pub fn encode(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(canonical_text(value))
}

/// The bearer of raw text.
pub fn encode_text(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// The nonce a bearer carries.
pub fn nonce_of(bearer: &str) -> String {
    decode(bearer)["nonce"].as_str().unwrap().to_owned()
}

/// A bearer with one field of its JSON replaced.
pub fn tamper(bearer: &str, field: &str, value: serde_json::Value) -> String {
    let mut json = decode(bearer);
    json[field] = value;
    encode(&json)
}

/// The uses left in a record, which must exist.
pub fn uses_left(store: &TokenStore, fp: &Fingerprint) -> Option<u32> {
    store.record(fp).expect("record exists").uses_left
}

/// The code of an error result.
pub fn code<T: std::fmt::Debug>(result: Result<T, CapTokenError>) -> ErrorCode {
    result.expect_err("call should be denied").code()
}

/// The store's state as snapshot text without its seal (each snapshot's
/// seal has a fresh nonce): equal for equal states.
pub fn state_text(store: &mut TokenStore) -> String {
    let mut text = store.snapshot().unwrap();
    text.replace_range(48..112, &"0".repeat(64));
    text
}
