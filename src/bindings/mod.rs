//! The JavaScript face of the crate: converts arguments, delegates to the
//! core, converts results and errors. No token logic lives here.
//!
//! The layers, in the order a call passes them:
//!
//! * [`args`] — arguments in: strings checked here, options objects read by
//!   `serde_wasm_bindgen` (the package entry, `js/args.js`, copies them into
//!   plain data first, so no caller code runs while the module is busy);
//! * [`store`] and [`record`] — the exported classes, which only delegate;
//! * [`results`] — records, tasks, minted tokens and denials out, through
//!   `serde_wasm_bindgen`;
//! * [`errors`] — every failure as a `CapTokenError`;
//! * `remote` (feature `remote`, the Node flavour only) — `__RemoteCore`,
//!   the process half of `captoken/redis`;
//! * [`fast_path`] — verify and check through linear memory (inbox, outbox,
//!   grant factory) and the snapshot stage, with the layout the entry reads.
//!
//! A wrong type, a missing argument or garbage becomes a `CapTokenError` with
//! code `ERR_INVALID_ARGUMENT` instead of a trap or a glue `TypeError`.

mod args;
mod errors;
mod fast_path;
mod record;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
mod remote_results;
mod results;
mod store;

pub use errors::register_error_class;
pub use fast_path::register_grant_factory;
pub use record::JsCapTokenRecord;
#[cfg(feature = "remote")]
pub use remote::JsRemoteCore;
pub use store::JsTokenStore;

use wasm_bindgen::prelude::*;

/// Bytes of linear memory the module holds now (for the benchmarks).
#[wasm_bindgen(js_name = "__memoryBytes")]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) as f64) * 65536.0
}
