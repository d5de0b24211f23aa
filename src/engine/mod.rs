//! The engine: a store's records and tasks, and the decisions made on them
//! (the stateless steps in `verifier`, the stateful ones in `state`).

pub(crate) mod changes;
pub(crate) mod entry;
pub mod state;
pub mod store;
pub(crate) mod table;
pub mod verifier;
