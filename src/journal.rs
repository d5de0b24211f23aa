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
use crate::snapshot::{not_a_snapshot, validate_record, RecordIn, RecordOut, TokenIn};
use crate::state::{Entry, MemoryState, TaskNode};
use crate::store::check_task_id;
use crate::task::TaskInfo;
use crate::token::{Fingerprint, Text};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

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
enum EventIn<'a> {
    Record(RecordIn<'a>),
    Consume { fingerprint: Fingerprint },
    Revoke { fingerprint: Fingerprint },
    Task(TaskInfo),
    Purge { now: u64 },
}

/// The value of a line's `op` field.
#[derive(Deserialize)]
#[serde(variant_identifier, rename_all = "snake_case")]
enum Op {
    Record,
    Consume,
    Revoke,
    Task,
    Purge,
}

/// First pass over a line: its `op`, every other value read as any JSON
/// value and dropped. Together with the second pass (the line read again as
/// the shape its `op` names) this accepts and refuses exactly the lines that
/// `#[serde(tag = "op")]` did, without its buffering of every value (much
/// code): an object with one `op` anywhere in it, or an array whose first
/// element is the op and whose other elements are the fields in order.
struct Tagged(Op);

impl<'de> Deserialize<'de> for Tagged {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TagVisitor)
    }
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Tagged;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tagged, A::Error> {
        let mut op = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if key.0 == "op" {
                if op.is_some() {
                    return Err(de::Error::duplicate_field("op"));
                }
                op = Some(map.next_value::<Op>()?);
            } else {
                map.next_value::<AnyValue>()?;
            }
        }
        op.map(Tagged).ok_or_else(|| de::Error::missing_field("op"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tagged, A::Error> {
        let op = seq
            .next_element::<Op>()?
            .ok_or_else(|| de::Error::missing_field("op"))?;
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(Tagged(op))
    }
}

/// Any JSON value, read in full (numbers in range, strings well-formed) and
/// dropped.
struct AnyValue;

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyValue)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = AnyValue;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_str<E>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_unit<E>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        while map.next_entry::<AnyValue, AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }
}

// Second pass: the line as the shape its `op` names, `op` included (first, for
// the array form). Like the variants of the tagged enum they replace, `record`
// and `task` refuse unknown fields, the others ignore them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine<'a> {
    #[serde(rename = "op")]
    _op: IgnoredAny,
    fingerprint: Fingerprint,
    #[serde(borrow)]
    token: TokenIn<'a>,
    uses_left: Option<u32>,
    revoked: bool,
    #[serde(default, borrow)]
    task_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct FingerprintLine {
    #[serde(rename = "op")]
    _op: IgnoredAny,
    fingerprint: Fingerprint,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskLine {
    #[serde(rename = "op")]
    _op: IgnoredAny,
    task_id: String,
    parent_id: Option<String>,
    spawn_depth: u32,
}

#[derive(Deserialize)]
struct PurgeLine {
    #[serde(rename = "op")]
    _op: IgnoredAny,
    now: u64,
}

/// Read one line. Once the first pass has read the whole line as JSON, a
/// fault is always one of shape, with no position: as the tagged enum, which
/// read the variant from its buffer, reported it.
fn read_event(line: &str) -> Result<EventIn<'_>, serde_json::Error> {
    let Tagged(op) = serde_json::from_str(line)?;
    read_shape(line, op).map_err(|_| de::Error::custom("not an event"))
}

fn read_shape(line: &str, op: Op) -> Result<EventIn<'_>, serde_json::Error> {
    Ok(match op {
        Op::Record => {
            let record: RecordLine = serde_json::from_str(line)?;
            EventIn::Record(RecordIn {
                fingerprint: record.fingerprint,
                token: record.token,
                uses_left: record.uses_left,
                revoked: record.revoked,
                task_id: record.task_id,
            })
        }
        Op::Consume => EventIn::Consume {
            fingerprint: serde_json::from_str::<FingerprintLine>(line)?.fingerprint,
        },
        Op::Revoke => EventIn::Revoke {
            fingerprint: serde_json::from_str::<FingerprintLine>(line)?.fingerprint,
        },
        Op::Task => {
            let task: TaskLine = serde_json::from_str(line)?;
            EventIn::Task(TaskInfo {
                task_id: task.task_id,
                parent_id: task.parent_id,
                spawn_depth: task.spawn_depth,
            })
        }
        Op::Purge => EventIn::Purge {
            now: serde_json::from_str::<PurgeLine>(line)?.now,
        },
    })
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
        let event = read_event(line).map_err(|e| {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The representation `read_event` replaced, kept as its oracle.
    #[derive(Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum TaggedEnum<'a> {
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

    fn kind(event: &EventIn<'_>) -> &'static str {
        match event {
            EventIn::Record(_) => "record",
            EventIn::Consume { .. } => "consume",
            EventIn::Revoke { .. } => "revoke",
            EventIn::Task(_) => "task",
            EventIn::Purge { .. } => "purge",
        }
    }

    fn old_kind(event: &TaggedEnum<'_>) -> &'static str {
        match event {
            TaggedEnum::Record(_) => "record",
            TaggedEnum::Consume { .. } => "consume",
            TaggedEnum::Revoke { .. } => "revoke",
            TaggedEnum::Task(_) => "task",
            TaggedEnum::Purge { .. } => "purge",
        }
    }

    #[test]
    fn reads_exactly_what_the_tagged_enum_read() {
        let fp = format!("\"{}\"", "ab".repeat(32));
        let token = format!(
            "{{\"v\":2,\"agent_id\":\"a\",\"role\":\"worker\",\"scopes\":[\"*\"],\"issued_at\":1,\"expire_at\":2,\"max_uses\":3,\"sig_hex\":\"{}\"}}",
            "cd".repeat(32)
        );
        let record =
            format!("\"fingerprint\":{fp},\"token\":{token},\"uses_left\":3,\"revoked\":false");
        let lines = [
            format!("{{\"op\":\"record\",{record},\"task_id\":\"t\"}}"),
            format!("{{\"op\":\"record\",{record}}}"),
            format!("{{{record},\"op\":\"record\"}}"),
            format!("{{\"op\":\"record\",{record},\"task_id\":null}}"),
            format!("{{\"op\":\"record\",{record},\"extra\":1}}"),
            format!("{{\"op\":\"record\",{record},\"op\":\"record\"}}"),
            format!("{{\"op\":\"record\",{record},\"revoked\":true}}"),
            format!("{{\"op\":\"record\",\"fingerprint\":{fp}}}"),
            format!("[\"record\",{fp},{token},3,false]"),
            format!("[\"record\",{fp},{token},3,false,\"t\"]"),
            format!("[\"record\",{fp},{token},3,false,\"t\",1]"),
            format!("[\"record\",{fp},{token},null,false,null]"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp}}}"),
            format!("{{\"fingerprint\":{fp},\"op\":\"consume\"}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"nonce\":\"x\"}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"x\":1e999}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"x\":\"\\ud800\"}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"x\":[1,{{\"a\":[-1.5e3,null,true]}}]}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"x\":1,\"x\":2}}"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"fingerprint\":{fp}}}"),
            "{\"op\":\"consume\",\"fingerprint\":\"AB\"}".into(),
            "{\"op\":\"consume\",\"fingerprint\":5}".into(),
            "{\"op\":\"consume\"}".into(),
            format!("[\"consume\",{fp}]"),
            format!("[\"consume\",{fp},1]"),
            "[\"consume\"]".into(),
            format!("{{\"op\":\"revoke\",\"fingerprint\":{fp}}}"),
            format!("{{\"op\":\"revoke\",\"fingerprint\":{fp},\"token\":{{}}}}"),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null,\"spawn_depth\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":\"p\",\"spawn_depth\":1}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"spawn_depth\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null,\"spawn_depth\":0,\"x\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null,\"spawn_depth\":-1}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null,\"spawn_depth\":1.0}".into(),
            "[\"task\",\"t\",null,0]".into(),
            "{\"op\":\"purge\",\"now\":5}".into(),
            "{\"op\":\"purge\",\"now\":5,\"then\":6}".into(),
            "{\"op\":\"purge\",\"now\":\"5\"}".into(),
            "{\"op\":\"purge\"}".into(),
            "[\"purge\",5]".into(),
            "[\"purge\",5,6]".into(),
            "{\"op\":\"explode\"}".into(),
            "{\"op\":null}".into(),
            "{\"op\":0}".into(),
            "{\"op\":{\"purge\":null},\"now\":5}".into(),
            "{\"o\\u0070\":\"purge\",\"now\":5}".into(),
            "{\"op\":\"purge\",\"op\":\"purge\",\"now\":5}".into(),
            "{}".into(),
            "[]".into(),
            "[0]".into(),
            "null".into(),
            "5".into(),
            "\"purge\"".into(),
            "{\"op\":\"purge\",\"now\":5} x".into(),
            "{\"op\":\"purge\",\"now\":5".into(),
            "{\"op\":\"purge\",\"now\":5,}".into(),
            "{\"now\":5,\"op\":\"purge\",\"x\":[1,2}".into(),
            "{\"now\":\"x,\"op\":\"purge\"}".into(),
            "not json".into(),
            format!("{{\"op\":\"record\",{},\"task_id\":\"t\\n\"}}", record.replace("\"a\"", "\"a\\u00e9\"")),
            format!("{{\"op\":\"record\",{}}}", record.replace("\"v\":2,", "\"v\":2,\"nonce\":\"00\",")),
            format!("{{\"op\":\"record\",{}}}", record.replace("\"v\":2,", "\"v\":\"2\",")),
            format!(" {{ \"op\" : \"consume\" , \"fingerprint\" : {fp} }} "),
            "{\"op\":\"purge\",\"now\":5,\"op\":7}".into(),
            "{\"op\":\"purge\",\"now\":18446744073709551616}".into(),
            "{\"op\":\"purge\",\"now\":5,\"x\":18446744073709551616}".into(),
            "{\"op\":\"purge\",\"now\":5,\"x\":-9223372036854775809}".into(),
            "{\"op\":\"purge\",\"now\":5,\"x\":\"\\q\"}".into(),
            format!("{{\"op\":\"purge\",\"now\":5,\"x\":{}{}}}", "[".repeat(140), "]".repeat(140)),
            format!("{{\"op\":\"purge\",\"now\":5,\"x\":{}{}}}", "[".repeat(100), "]".repeat(100)),
        ];
        for line in &lines {
            let new = read_event(line);
            let old = serde_json::from_str::<TaggedEnum>(line);
            match (&new, &old) {
                (Ok(new), Ok(old)) => assert_eq!(kind(new), old_kind(old), "{line}"),
                (Err(new), Err(old)) => assert_eq!(
                    (new.classify(), new.line(), new.column()),
                    (old.classify(), old.line(), old.column()),
                    "{line}: {new} / {old}"
                ),
                _ => panic!(
                    "{line}: new {:?}, old {:?}",
                    new.as_ref().map(kind).map_err(ToString::to_string),
                    old.as_ref().map(old_kind).map_err(ToString::to_string)
                ),
            }
        }
    }
}
