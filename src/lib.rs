//! Capability tokens for agent swarms: signed bearer tokens with use budgets,
//! task binding and a spawn-depth cap, decided synchronously.
//!
//! The crate is organised in layers, each a folder, each using only the ones
//! below it (docs/protocol.md is the behaviour contract):
//!
//! * `model/` — the pure model, no state:
//! * [`role`] — roles and verbs with their wire names;
//! * [`gate`] — which role may call which verb;
//! * [`token`] — the token, its bearer string and its fingerprint;
//! * [`signer`] — HMAC-SHA256 signing in the `v2` and `mlua-swarm` formats;
//! * [`verifier`] — the stateless steps of a decision (decode, signature, expiry, gate);
//! * [`record`] — [`CapTokenRecord`], the state paired with one minted token;
//! * [`state`] — the records and tasks a decision reads and changes (kept
//!   compactly by `table`);
//! * [`store`] — [`TokenStore`], which joins the two halves;
//! * [`snapshot`] — the store's state as JSON text;
//! * [`journal`] — every state change as a line of JSON, replayable after a snapshot;
//! * [`remote`] — the state of a store kept elsewhere (Redis): records as
//!   hashes and what a script does with them;
//! * `seal` — the MACs that seal snapshots and chain journal lines;
//! * [`error`] — [`CapTokenError`] and its stable codes.
//!
//! No public function panics on any input: every bad input is a [`CapTokenError`].

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

pub mod engine;
pub mod model;
pub mod persist;

// Every module at the crate root too: `captoken::store::TokenStore`,
// `crate::token::CapToken`, as before the layers had folders.
pub(crate) use engine::{changes, entry, table};
pub use engine::{state, store, verifier};
pub use model::{clock, error, fingerprint, gate, record, role, signer, task, token};
pub(crate) use model::{hex, seal};
pub use persist::{journal, remote, snapshot};

#[cfg(target_arch = "wasm32")]
pub mod bindings;

#[cfg(not(target_arch = "wasm32"))]
pub use clock::SystemClock;
pub use clock::{Clock, FixedClock};
pub use error::{CapTokenError, ErrorCode};
pub use gate::Gate;
pub use record::{CapTokenConsumeError, CapTokenRecord};
pub use role::{Role, Verb};
pub use signer::{Signer, SigningFormat};
pub use snapshot::RestoreOptions;
pub use store::{Grant, GrantRef, MintOptions, Minted, StoreConfig, TokenStore};
pub use task::{TaskId, TaskInfo};
pub use token::{CapToken, Fingerprint};
