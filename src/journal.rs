//! The journal: every state change as one line of JSON, so that a snapshot
//! plus the journal written after it rebuilds the store exactly.
//!
//! ```text
//! {"op":"record","fingerprint":"…","token":{…},"uses_left":3,"revoked":false,"task_id":"t1"}
//! {"op":"consume","fingerprint":"…"}
//! {"op":"revoke","fingerprint":"…"}
//! {"op":"task","task_id":"t1.1","parent_id":"t1","spawn_depth":1}
//! {"op":"purge","now":1764150000}
//! ```
//!
//! Like a snapshot, a journal holds no nonce and no secret: records name
//! their fingerprint. A use spent on an unlimited token changes no state and
//! writes no line.

use crate::error::CapTokenError;
use crate::signer::SigningFormat;
use crate::snapshot::{not_a_snapshot, validate_record, RecordIn, RecordOut};
use crate::state::{Entry, MemoryState, TaskNode};
use crate::store::check_task_id;
use crate::task::TaskInfo;
use crate::token::Fingerprint;
use serde::{Deserialize, Serialize};

/// One state change, as written.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Event<'a> {
    Record(RecordOut<'a>),
    Consume {
        fingerprint: &'a Fingerprint,
    },
    Revoke {
        fingerprint: &'a Fingerprint,
    },
    Task {
        task_id: &'a str,
        parent_id: Option<&'a str>,
        spawn_depth: u32,
    },
    Purge {
        now: u64,
    },
}

/// One state change, as read back.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum EventIn<'a> {
    #[serde(borrow)]
    Record(RecordIn<'a>),
    Consume {
        fingerprint: Fingerprint,
    },
    Revoke {
        fingerprint: Fingerprint,
    },
    Task(TaskInfo),
    Purge {
        now: u64,
    },
}

/// Pending journal lines, written only while journaling is on.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    on: bool,
    lines: Vec<u8>,
}

impl Journal {
    pub(crate) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.lines.clear();
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    pub(crate) fn push(&mut self, event: &Event<'_>) {
        if self.on {
            // Only strings and integers: writing into a Vec cannot fail.
            if serde_json::to_writer(&mut self.lines, event).is_ok() {
                self.lines.push(b'\n');
            }
        }
    }

    pub(crate) fn record(&mut self, fingerprint: &Fingerprint, entry: &Entry) {
        if self.on {
            self.push(&Event::Record(RecordOut { fingerprint, entry }));
        }
    }

    /// The lines written since the last call, and forget them.
    pub(crate) fn take(&mut self) -> String {
        let lines = core::mem::take(&mut self.lines);
        // Built from serde_json output and newlines only.
        String::from_utf8(lines).unwrap_or_default()
    }
}

fn fault(line: usize, what: &str) -> CapTokenError {
    CapTokenError::snapshot(format!("journal line {line}: {what}"))
}

/// Replay `journal` onto `state`, line by line. A fault anywhere fails the
/// whole replay (the caller discards `state`).
pub(crate) fn replay(
    state: &mut MemoryState,
    journal: &str,
    format: SigningFormat,
) -> Result<(), CapTokenError> {
    for (index, line) in journal.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event: EventIn = serde_json::from_str(line).map_err(|e| {
            let CapTokenError::SnapshotInvalid { reason } = not_a_snapshot(e) else {
                return fault(number, "not an event");
            };
            fault(number, &reason)
        })?;
        match event {
            EventIn::Record(record) => {
                let fingerprint = record.fingerprint;
                let entry = validate_record(record, format)?;
                if !state.insert(fingerprint, entry) {
                    return Err(fault(number, "record already exists"));
                }
            }
            EventIn::Consume { fingerprint } => {
                if !state.replay_consume(&fingerprint) {
                    return Err(fault(number, "consume of an unknown or spent record"));
                }
            }
            EventIn::Revoke { fingerprint } => {
                if state.entry(&fingerprint).is_none() {
                    return Err(fault(number, "revoke of an unknown record"));
                }
                state.revoke(&fingerprint);
            }
            EventIn::Task(task) => {
                check_task_id(&task.task_id).map_err(|_| fault(number, "invalid task id"))?;
                if state.task(&task.task_id).is_some() {
                    return Err(fault(number, "task already exists"));
                }
                let fits = match task.parent_id.as_deref() {
                    None => task.spawn_depth == 0,
                    Some(parent) => state.task(parent).is_some_and(|parent| {
                        parent.spawn_depth.checked_add(1) == Some(task.spawn_depth)
                    }),
                };
                if !fits {
                    return Err(fault(number, "task does not fit its parent"));
                }
                state.insert_task(
                    &task.task_id,
                    TaskNode {
                        parent_id: task.parent_id.map(String::into_boxed_str),
                        spawn_depth: task.spawn_depth,
                    },
                );
            }
            EventIn::Purge { now } => {
                state.purge_expired(now);
            }
        }
    }
    Ok(())
}
