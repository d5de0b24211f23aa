//! The pure model: roles and verbs, the gate, tokens and their fingerprints,
//! signing and sealing, records, tasks, errors. Nothing here holds state.

pub mod clock;
pub mod error;
pub mod fingerprint;
pub mod gate;
pub(crate) mod hex;
pub mod record;
pub mod role;
pub(crate) mod seal;
pub mod signer;
pub mod task;
pub mod token;
