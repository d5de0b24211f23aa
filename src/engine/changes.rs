//! [`Changes`]: what a store changed, kept while journaling is on so that the
//! persistence layer can write it out (`crate::journal`). The engine records
//! what changed; the journal's format, its seal and its chain live above it.

use crate::entry::Entry;
use crate::task::TaskInfo;
use crate::token::Fingerprint;

/// One change to a store's state.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A new record, as it was made; `by`: the Worker token that made it.
    Record {
        fingerprint: Fingerprint,
        entry: Entry,
        by: Option<Fingerprint>,
    },
    /// `uses` uses spent at once (more than one when a Worker hands part of
    /// its budget to a token it mints).
    Consume { fingerprint: Fingerprint, uses: u32 },
    /// A record revoked.
    Revoke { fingerprint: Fingerprint },
    /// A new task; `by`: the Worker token that started it.
    Task {
        task: TaskInfo,
        by: Option<Fingerprint>,
    },
    /// The records of tokens expired at `now` dropped.
    Purge { now: u64 },
}

/// The changes not yet taken, and where the journal's chain stands.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    on: bool,
    pending: Vec<Change>,
    /// The MAC the next journal line chains to: the last line's, or the seal
    /// of the last snapshot taken or restored. Kept with the store, written
    /// only by the journal and the snapshot.
    pub(crate) chain_head: [u8; 32],
}

impl Changes {
    /// Start or stop keeping changes; stopping drops those not yet taken.
    pub(crate) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.pending.clear();
        }
    }

    /// Whether changes are kept (callers skip building a change otherwise).
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    pub(crate) fn push(&mut self, change: Change) {
        if self.on {
            self.pending.push(change);
        }
    }

    /// The changes since the last call, in order, and forget them.
    pub(crate) fn take(&mut self) -> Vec<Change> {
        core::mem::take(&mut self.pending)
    }

    /// Start a new chain at `head` (a snapshot was taken or restored). The
    /// changes not yet taken are dropped: the snapshot holds them.
    pub(crate) fn restart(&mut self, head: [u8; 32]) {
        self.chain_head = head;
        self.pending.clear();
    }
}
