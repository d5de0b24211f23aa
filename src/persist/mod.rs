//! Persistence above the engine: the store's state as sealed snapshot text,
//! and its changes as chained, sealed journal lines.

pub mod journal;
pub(crate) mod records;
pub mod remote;
pub mod snapshot;
