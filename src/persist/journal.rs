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
//!
//! Every line is sealed and chained (see [`crate::seal`] and
//! `docs/snapshot-and-journal.md`): it starts with its MAC,
//! `{"mac":"<64 hex>",` and then the event's fields, `"op":…}`. The MAC covers
//! the previous line's MAC (the snapshot's for the first line) and the bytes
//! after the MAC field, so replay refuses a line edited, deleted in the middle,
//! moved, duplicated or from another chain. Complete lines cut off the end
//! cannot be told from a crash, and are not refused.

use crate::changes::Change;
use crate::error::CapTokenError;
use crate::persist::records::{
    check_depth, not_a_snapshot, validate_record, RecordIn, RecordOut, TokenIn,
};
use crate::seal::{same_tag, Seal, Tag, JOURNAL_LABEL};
use crate::signer::SigningFormat;
use crate::state::{MemoryState, TaskNode};
use crate::store::{check_task_id, TokenStore};
use crate::task::TaskInfo;
use crate::token::{Fingerprint, Text};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// One state change, as written.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Event<'a> {
    Record(RecordOut<'a>),
    /// `uses` is written only when above one: a Worker's dispatch spends
    /// its own use plus the budget it hands over.
    Consume {
        fingerprint: &'a Fingerprint,
        #[serde(skip_serializing_if = "is_one")]
        uses: u32,
    },
    Revoke {
        fingerprint: &'a Fingerprint,
    },
    Task {
        task_id: &'a str,
        parent_id: Option<&'a str>,
        spawn_depth: u32,
        /// The Worker token that started the task (its count for
        /// `maxMadePerWorkerToken`); written only then.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<&'a Fingerprint>,
    },
    Purge {
        now: u64,
    },
}

fn is_one(uses: &u32) -> bool {
    *uses == 1
}

/// One state change, as read back.
enum EventIn<'a> {
    Record(RecordIn<'a>),
    Consume { fingerprint: Fingerprint, uses: u32 },
    Revoke { fingerprint: Fingerprint },
    Task(TaskInfo, Option<Fingerprint>),
    Purge { now: u64 },
}

/// The value of a line's `op` field.
#[derive(Clone, Copy, Deserialize)]
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

// Second pass: the line read again as the fields its `op` names, by one
// visitor for every op. As the tagged enum's variants did, `record` and `task`
// refuse unknown fields and the others ignore them; a field that may be null
// reads as null when an object leaves it out (an array may leave out only a
// record's `task_id`); an array lists the fields in order after the op.

#[derive(Clone, Copy)]
enum Field {
    Tag,
    Fingerprint,
    Token,
    UsesLeft,
    Revoked,
    BoundTask,
    TaskId,
    ParentId,
    SpawnDepth,
    Now,
    Uses,
    NotAfter,
    Made,
    By,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Tag => "op",
            Field::Fingerprint => "fingerprint",
            Field::Token => "token",
            Field::UsesLeft => "uses_left",
            Field::Revoked => "revoked",
            Field::BoundTask | Field::TaskId => "task_id",
            Field::ParentId => "parent_id",
            Field::SpawnDepth => "spawn_depth",
            Field::Now => "now",
            Field::Uses => "uses",
            Field::NotAfter => "not_after",
            Field::Made => "made",
            Field::By => "by",
        }
    }
}

impl Op {
    /// The fields of a line of this op, in order, and whether other fields
    /// are refused.
    fn fields(self) -> (&'static [Field], bool) {
        use Field::*;
        match self {
            Self::Record => (
                &[
                    Tag,
                    Fingerprint,
                    Token,
                    UsesLeft,
                    Revoked,
                    BoundTask,
                    NotAfter,
                    Made,
                    By,
                ],
                true,
            ),
            Self::Consume => (&[Tag, Fingerprint, Uses], false),
            Self::Revoke => (&[Tag, Fingerprint], false),
            Self::Task => (&[Tag, TaskId, ParentId, SpawnDepth, By], true),
            Self::Purge => (&[Tag, Now], false),
        }
    }
}

/// The fields read from one line; which ones depends on its op.
#[derive(Default)]
struct Fields<'a> {
    fingerprint: Option<Fingerprint>,
    token: Option<TokenIn<'a>>,
    uses_left: Option<Option<u32>>,
    revoked: Option<bool>,
    bound_task: Option<Option<Text<'a>>>,
    task_id: Option<String>,
    parent_id: Option<Option<String>>,
    spawn_depth: Option<u32>,
    now: Option<u64>,
    uses: Option<u32>,
    not_after: Option<Option<u64>>,
    made: Option<u32>,
    by: Option<Option<Fingerprint>>,
}

/// Reads the value of one field into its place.
struct Slot<'f, 'a> {
    fields: &'f mut Fields<'a>,
    field: Field,
}

impl<'de> DeserializeSeed<'de> for Slot<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let fields = self.fields;
        match self.field {
            Field::Tag => {
                IgnoredAny::deserialize(deserializer)?;
            }
            Field::Fingerprint => {
                fields.fingerprint = Some(Deserialize::deserialize(deserializer)?)
            }
            Field::Token => fields.token = Some(Deserialize::deserialize(deserializer)?),
            Field::UsesLeft => fields.uses_left = Some(Deserialize::deserialize(deserializer)?),
            Field::Revoked => fields.revoked = Some(Deserialize::deserialize(deserializer)?),
            Field::BoundTask => fields.bound_task = Some(Deserialize::deserialize(deserializer)?),
            Field::TaskId => fields.task_id = Some(Deserialize::deserialize(deserializer)?),
            Field::ParentId => fields.parent_id = Some(Deserialize::deserialize(deserializer)?),
            Field::SpawnDepth => fields.spawn_depth = Some(Deserialize::deserialize(deserializer)?),
            Field::Now => fields.now = Some(Deserialize::deserialize(deserializer)?),
            Field::Uses => fields.uses = Some(Deserialize::deserialize(deserializer)?),
            Field::NotAfter => fields.not_after = Some(Deserialize::deserialize(deserializer)?),
            Field::Made => fields.made = Some(Deserialize::deserialize(deserializer)?),
            Field::By => fields.by = Some(Deserialize::deserialize(deserializer)?),
        }
        Ok(())
    }
}

struct Shape(Op);

impl<'de> Visitor<'de> for Shape {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let (known, strict) = self.0.fields();
        let mut fields = Fields::default();
        let mut seen = 0u16;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match known.iter().find(|field| field.name() == key.0) {
                Some(&field) => {
                    let bit = 1 << field as u16;
                    if seen & bit != 0 {
                        return Err(de::Error::custom("duplicate field"));
                    }
                    seen |= bit;
                    map.next_value_seed(Slot {
                        fields: &mut fields,
                        field,
                    })?;
                }
                None if strict => return Err(de::Error::custom("unknown field")),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fields<'de>, A::Error> {
        let (known, _) = self.0.fields();
        let mut fields = Fields::default();
        for &field in known {
            let slot = Slot {
                fields: &mut fields,
                field,
            };
            if seq.next_element_seed(slot)?.is_none()
                && !matches!(
                    field,
                    Field::BoundTask | Field::Uses | Field::NotAfter | Field::Made | Field::By
                )
            {
                return Err(de::Error::custom("missing element"));
            }
        }
        Ok(fields)
    }
}

/// Read one line. Once the first pass has read the whole line as JSON, a
/// fault is always one of shape, with no position: as the tagged enum, which
/// read the variant from its buffer, reported it.
fn read_event(line: &str) -> Result<EventIn<'_>, serde_json::Error> {
    let Tagged(op) = serde_json::from_str(line)?;
    read_shape(line, op).ok_or_else(|| de::Error::custom("not an event"))
}

fn read_shape(line: &str, op: Op) -> Option<EventIn<'_>> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let fields = (&mut deserializer).deserialize_any(Shape(op)).ok()?;
    deserializer.end().ok()?;
    Some(match op {
        Op::Record => EventIn::Record(RecordIn {
            fingerprint: fields.fingerprint?,
            token: fields.token?,
            uses_left: fields.uses_left.flatten(),
            revoked: fields.revoked?,
            task_id: fields.bound_task.flatten(),
            not_after: fields.not_after.flatten(),
            made: fields.made.unwrap_or(0),
            by: fields.by.flatten(),
        }),
        Op::Consume => EventIn::Consume {
            fingerprint: fields.fingerprint?,
            uses: fields.uses.unwrap_or(1),
        },
        Op::Revoke => EventIn::Revoke {
            fingerprint: fields.fingerprint?,
        },
        Op::Task => EventIn::Task(
            TaskInfo {
                task_id: fields.task_id?,
                parent_id: fields.parent_id.flatten(),
                spawn_depth: fields.spawn_depth?,
            },
            fields.by.flatten(),
        ),
        Op::Purge => EventIn::Purge { now: fields.now? },
    })
}

// A sealed line: `{"mac":"` MAC `",` then the event's fields.
const LINE_HEAD: &[u8] = b"{\"mac\":\"";
const LINE_MAC_HEX_LEN: usize = 64;
const LINE_HEAD_END: &[u8] = b"\",";
const LINE_FIELDS_AT: usize = LINE_HEAD.len() + LINE_MAC_HEX_LEN + LINE_HEAD_END.len();

impl TokenStore {
    /// The journal lines (NDJSON, each ending in a newline) for the changes
    /// made since the last call, each sealed and chained to the line before
    /// it (docs/snapshot-and-journal.md). Holds no nonce and no secret.
    /// Replay them with [`TokenStore::restore_with_journal`]. Empty unless
    /// journaling is on ([`TokenStore::set_journaling`]).
    pub fn take_journal(&mut self) -> String {
        let (seal, changes) = self.seal_and_changes();
        let mut lines: Vec<u8> = Vec::new();
        let mut event = Vec::new();
        for change in changes.take() {
            event.clear();
            // Only strings and integers: writing into a Vec cannot fail. (A
            // failed allocation of these few hundred bytes aborts the module,
            // which the package then reports as unavailable: a change is
            // never left unjournaled.)
            if serde_json::to_writer(&mut event, &Event::of(&change)).is_err() {
                continue;
            }
            // The event is `{"op":…}`: its fields are everything after the brace.
            let fields = event.get(1..).unwrap_or_default();
            let mac = seal.mac(&[JOURNAL_LABEL, &changes.chain_head, fields]);
            let mut hex = [0u8; LINE_MAC_HEX_LEN];
            let hex = base16ct::lower::encode(&mac, &mut hex).unwrap_or_default();
            lines.extend_from_slice(LINE_HEAD);
            lines.extend_from_slice(hex);
            lines.extend_from_slice(LINE_HEAD_END);
            lines.extend_from_slice(fields);
            lines.push(b'\n');
            changes.chain_head = mac;
        }
        // Built from serde_json output, hex and newlines only.
        String::from_utf8(lines).unwrap_or_default()
    }
}

impl<'a> Event<'a> {
    /// The line an engine change is written as.
    fn of(change: &'a Change) -> Self {
        match change {
            Change::Record {
                fingerprint,
                entry,
                by,
            } => Event::Record(RecordOut {
                fingerprint,
                entry,
                by: by.as_ref(),
            }),
            Change::Consume { fingerprint, uses } => Event::Consume {
                fingerprint,
                uses: *uses,
            },
            Change::Revoke { fingerprint } => Event::Revoke { fingerprint },
            Change::Task { task, by } => Event::Task {
                task_id: &task.task_id,
                parent_id: task.parent_id.as_deref(),
                spawn_depth: task.spawn_depth,
                by: by.as_ref(),
            },
            Change::Purge { now } => Event::Purge { now: *now },
        }
    }
}

/// Seal unsealed event lines (`{"op":…}`) into a chain starting at `head`.
/// A line that is not an object is sealed as it is, after its first byte.
pub(crate) fn seal_lines(seal: &Seal, mut head: Tag, lines: &str) -> String {
    let mut out = String::new();
    for line in lines.lines() {
        let fields = line.get(1..).unwrap_or_default();
        head = seal.mac(&[JOURNAL_LABEL, &head, fields.as_bytes()]);
        let mut hex = [0u8; LINE_MAC_HEX_LEN];
        let hex = base16ct::lower::encode_str(&head, &mut hex).unwrap_or_default();
        out.push_str("{\"mac\":\"");
        out.push_str(hex);
        out.push_str("\",");
        out.push_str(fields);
        out.push('\n');
    }
    out
}

/// Check one sealed line against the chain and return its event's JSON
/// (written into `event`) and its MAC.
fn unseal_line(
    line: &str,
    seal: &Seal,
    head: &Tag,
    event: &mut String,
    number: usize,
) -> Result<Tag, CapTokenError> {
    let bytes = line.as_bytes();
    let broken = || {
        fault(
            number,
            "the seal does not match (the line was edited, or a line before it was deleted, \
             moved or duplicated, or it comes from another store or secret)",
        )
    };
    if !bytes.starts_with(LINE_HEAD)
        || bytes.get(LINE_FIELDS_AT - LINE_HEAD_END.len()..LINE_FIELDS_AT) != Some(LINE_HEAD_END)
    {
        return Err(fault(number, "the line is not sealed"));
    }
    let mac = line
        .get(LINE_HEAD.len()..LINE_HEAD.len() + LINE_MAC_HEX_LEN)
        .and_then(crate::hex::decode_lower)
        .ok_or_else(broken)?;
    let fields = line.get(LINE_FIELDS_AT..).ok_or_else(broken)?;
    let expected = seal.mac(&[JOURNAL_LABEL, head, fields.as_bytes()]);
    if !same_tag(&expected, &mac) {
        return Err(broken());
    }
    event.clear();
    event.push('{');
    event.push_str(fields);
    Ok(mac)
}
fn fault(line: usize, what: &str) -> CapTokenError {
    CapTokenError::snapshot(format!("journal line {line}: {what}"))
}

/// Replay `journal` onto `state`, line by line. A fault anywhere fails the
/// whole replay (the caller discards `state`).
///
/// With `chain` (the seal and the sealed snapshot's MAC) every line must be
/// sealed and chained to the one before; the MAC of the last line (or the
/// snapshot's, for no line) is returned: the chain goes on from there.
/// Without it (an unsealed snapshot the caller opted into) the lines are
/// read in the old, unsealed shape and `None` is returned.
pub(crate) fn replay(
    state: &mut MemoryState,
    journal: &str,
    format: SigningFormat,
    max_depth: u32,
    chain: Option<(&Seal, Tag)>,
) -> Result<Option<Tag>, CapTokenError> {
    let mut head = chain.as_ref().map(|(_, mac)| *mac);
    let mut unsealed = String::new();
    for (index, line) in journal.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let line = match (&chain, &mut head) {
            (Some((seal, _)), Some(head)) => {
                *head = unseal_line(line, seal, head, &mut unsealed, number)?;
                unsealed.as_str()
            }
            _ => line,
        };
        let event = read_event(line).map_err(|e| {
            let CapTokenError::SnapshotInvalid { reason } = not_a_snapshot(e) else {
                return fault(number, "not an event");
            };
            fault(number, &reason)
        })?;
        match event {
            EventIn::Record(record) => {
                let fingerprint = record.fingerprint;
                let by = record.by;
                let entry = validate_record(record, format, state)?;
                if !state.insert(fingerprint, entry) {
                    return Err(fault(number, "record already exists"));
                }
                if let Some(by) = by {
                    state.note_made(&by);
                }
            }
            EventIn::Consume { fingerprint, uses } => {
                if !state.replay_consume(&fingerprint, uses) {
                    return Err(fault(number, "consume of an unknown or spent record"));
                }
            }
            EventIn::Revoke { fingerprint } => {
                if state.entry(&fingerprint).is_none() {
                    return Err(fault(number, "revoke of an unknown record"));
                }
                state.revoke(&fingerprint);
            }
            EventIn::Task(task, by) => {
                check_task_id(&task.task_id).map_err(|_| fault(number, "invalid task id"))?;
                check_depth(&task, max_depth)
                    .map_err(|_| fault(number, "task at or past maxSpawnDepth"))?;
                if state.task(&task.task_id).is_some() {
                    return Err(fault(number, "task already exists"));
                }
                if !state.fits_parent(&task) {
                    return Err(fault(number, "task does not fit its parent"));
                }
                state.insert_task(&task.task_id, TaskNode::from(&task));
                // The maker's count (a purged maker has nothing to count).
                if let Some(by) = by {
                    state.note_made(&by);
                }
            }
            EventIn::Purge { now } => {
                state.purge_expired(now);
            }
        }
    }
    Ok(head)
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
            #[serde(default)]
            uses: Option<u32>,
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
            EventIn::Task(..) => "task",
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
            format!("{{\"op\":\"record\",\"fingerprint\":{fp},\"token\":{token},\"revoked\":true}}"),
            format!("{{\"op\":\"record\",\"fingerprint\":{fp},\"token\":{token},\"uses_left\":1}}"),
            format!("{{\"op\":\"record\",\"token\":{token},\"uses_left\":1,\"revoked\":true}}"),
            format!("{{\"op\":\"record\",{record},\"task_id\":5}}"),
            format!("{{\"op\":\"record\",{record},\"now\":5}}"),
            format!("{{\"op\":\"record\",{record},\"task_id\":\"t\",\"task_id\":\"t\"}}"),
            format!("[\"record\",{fp},{token},3]"),
            format!("[\"record\",{fp},{token},null,true,null]"),
            format!("[\"record\",{fp},{token},3,false,\"t\",]"),
            format!("{{\"op\":\"consume\",\"fingerprint\":{fp},\"now\":\"x\",\"token\":7}}"),
            "{\"op\":\"revoke\"}".into(),
            format!("[\"revoke\",{fp}]"),
            "[\"revoke\",5]".into(),
            "{\"op\":\"task\",\"parent_id\":null,\"spawn_depth\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"parent_id\":null}".into(),
            "{\"op\":\"task\",\"task_id\":null,\"parent_id\":null,\"spawn_depth\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"task_id\":\"u\",\"spawn_depth\":0}".into(),
            "{\"op\":\"task\",\"task_id\":\"t\",\"spawn_depth\":0,\"now\":1}".into(),
            "[\"task\",\"t\",null]".into(),
            "[\"task\",\"t\"]".into(),
            "[\"task\",\"t\",\"p\",1,2]".into(),
            "{\"op\":\"purge\",\"now\":5,\"now\":5}".into(),
            "{\"op\":\"purge\",\"now\":null}".into(),
            "{\"op\":\"purge\",\"now\":-5}".into(),
            "[\"purge\"]".into(),
            "[\"explode\",5]".into(),
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
