//! Snapshot and restore: a store's whole state as JSON text.
//!
//! ```json
//! { "version": 1, "format": "v2",
//!   "records": [ { "fingerprint": "…", "token": { "v": 2, "agent_id": "…", "role": "worker",
//!                  "scopes": ["*"], "issued_at": 0, "expire_at": 0, "max_uses": null,
//!                  "sig_hex": "…" },
//!                  "uses_left": null, "revoked": false, "task_id": "…" } ],
//!   "tasks": [ { "task_id": "…", "parent_id": null, "spawn_depth": 0 } ] }
//! ```
//!
//! A snapshot holds no nonce and no secret: a record carries its fingerprint
//! instead of the nonce, and the token object has no `nonce` field at all (one
//! that does is refused). So a leaked snapshot lets no one act as any token.

use crate::clock::Clock;
use crate::error::CapTokenError;
use crate::record::uses_fit;
use crate::role::Role;
use crate::signer::SigningFormat;
use crate::state::{Entry, MemoryState, Scopes, TaskNode};
use crate::store::{check_task_id, StoreConfig, TokenStore};
use crate::task::TaskInfo;
use crate::token::{Fingerprint, Text, MAX_SAFE_INTEGER};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The snapshot format version this crate writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    format: SigningFormat,
    records: RecordsOut<'a>,
    tasks: Vec<TaskInfo>,
}

struct RecordsOut<'a>(&'a MemoryState);

impl Serialize for RecordsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (fingerprint, entry) in self.0.entries() {
            seq.serialize_element(&RecordOut { fingerprint, entry })?;
        }
        seq.end()
    }
}

pub(crate) struct RecordOut<'a> {
    pub(crate) fingerprint: &'a Fingerprint,
    pub(crate) entry: &'a Entry,
}

#[derive(Serialize)]
struct RecordShape<'a> {
    fingerprint: &'a Fingerprint,
    token: TokenShape<'a>,
    uses_left: Option<u32>,
    revoked: bool,
    task_id: Option<&'a str>,
}

#[derive(Serialize)]
struct TokenShape<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u8>,
    agent_id: &'a str,
    role: Role,
    scopes: ScopesOut<'a>,
    issued_at: u64,
    expire_at: u64,
    max_uses: Option<u32>,
    sig_hex: &'a str,
}

struct ScopesOut<'a>(&'a Scopes);

impl Serialize for ScopesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Scopes::All => serializer.collect_seq(["*"]),
            Scopes::List(list) => serializer.collect_seq(list.iter()),
        }
    }
}

impl Serialize for RecordOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.entry;
        let mut buf = [0u8; 64];
        let sig_hex = base16ct::lower::encode_str(&entry.sig, &mut buf)
            .map_err(|_| serde::ser::Error::custom("signature"))?;
        RecordShape {
            fingerprint: self.fingerprint,
            token: TokenShape {
                v: entry.v,
                agent_id: &entry.agent_id,
                role: entry.role,
                scopes: ScopesOut(&entry.scopes),
                issued_at: entry.issued_at,
                expire_at: entry.expire_at,
                max_uses: entry.max_uses,
                sig_hex,
            },
            uses_left: entry.uses_left,
            revoked: entry.revoked,
            task_id: entry.task_id.as_deref(),
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordIn<'a> {
    pub(crate) fingerprint: Fingerprint,
    #[serde(borrow)]
    pub(crate) token: TokenIn<'a>,
    pub(crate) uses_left: Option<u32>,
    pub(crate) revoked: bool,
    #[serde(default, borrow)]
    pub(crate) task_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenIn<'a> {
    #[serde(default)]
    v: Option<u8>,
    #[serde(borrow)]
    agent_id: Text<'a>,
    #[serde(deserialize_with = "wire_role")]
    role: Role,
    #[serde(borrow)]
    scopes: Vec<Text<'a>>,
    issued_at: u64,
    expire_at: u64,
    max_uses: Option<u32>,
    #[serde(borrow)]
    sig_hex: Text<'a>,
}

/// Snapshots name roles by their wire names only.
fn wire_role<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Role, D::Error> {
    let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom("unknown role"))
}

impl TokenStore {
    /// The whole state as JSON text (see the module docs). Holds no nonce and
    /// no secret.
    pub fn snapshot(&self) -> String {
        let doc = SnapshotOut {
            version: SNAPSHOT_VERSION,
            format: self.config().format,
            records: RecordsOut(self.state()),
            tasks: self.tasks(),
        };
        // Only strings and integers: serialising cannot fail.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Rebuild a store from [`snapshot`](Self::snapshot) text. Everything is
    /// validated first; on any fault this is [`CapTokenError::SnapshotInvalid`]
    /// and nothing is created.
    pub fn restore(
        snapshot: &str,
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
    ) -> Result<Self, CapTokenError> {
        Self::restore_with_journal(snapshot, "", secret, config, clock)
    }

    /// [`restore`](Self::restore), then replay the journal written after that
    /// snapshot (see [`crate::journal`]). Any fault in either is
    /// [`CapTokenError::SnapshotInvalid`] and nothing is created.
    pub fn restore_with_journal(
        snapshot: &str,
        journal: &str,
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
    ) -> Result<Self, CapTokenError> {
        let mut state = parse(snapshot, config.format)?;
        crate::journal::replay(&mut state, journal, config.format)?;
        TokenStore::with_state(secret, config, clock, state)
    }
}

/// Parse and validate a snapshot straight into a state: records are checked
/// and inserted as they are read, never held as a second copy.
fn parse(snapshot: &str, format: SigningFormat) -> Result<MemoryState, CapTokenError> {
    let mut state = MemoryState::default();
    let mut fault = None;
    let seed = SnapshotSeed {
        state: &mut state,
        format,
        fault: &mut fault,
    };
    let mut deserializer = serde_json::Deserializer::from_str(snapshot);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match (parsed, fault) {
        (Ok(()), _) => Ok(state),
        // Our own findings name fingerprints and fields, never the input.
        (Err(_), Some(fault)) => Err(fault),
        (Err(error), None) => Err(not_a_snapshot(error)),
    }
}

struct SnapshotSeed<'s> {
    state: &'s mut MemoryState,
    format: SigningFormat,
    fault: &'s mut Option<CapTokenError>,
}

impl SnapshotSeed<'_> {
    fn fail<E: serde::de::Error>(&mut self, fault: CapTokenError) -> E {
        let error = E::custom("invalid snapshot");
        *self.fault = Some(fault);
        error
    }
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let (mut version, mut format, mut records, mut tasks) = (None, None, false, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let duplicate = match &*key.0 {
                "version" => version.replace(map.next_value::<u32>()?).is_some(),
                "format" => format.replace(map.next_value::<SigningFormat>()?).is_some(),
                "tasks" => tasks.replace(map.next_value::<Vec<TaskInfo>>()?).is_some(),
                "records" => {
                    map.next_value_seed(RecordsSeed {
                        state: &mut *self.state,
                        format: self.format,
                        fault: &mut *self.fault,
                    })?;
                    core::mem::replace(&mut records, true)
                }
                _ => return Err(serde::de::Error::custom("unknown field")),
            };
            if duplicate {
                return Err(serde::de::Error::custom("duplicate field"));
            }
        }
        let (Some(version), Some(format), true, Some(tasks)) = (version, format, records, tasks)
        else {
            return Err(serde::de::Error::custom("missing field"));
        };
        if version != SNAPSHOT_VERSION {
            let fault = CapTokenError::snapshot(format!("unsupported version {version}"));
            return Err(self.fail(fault));
        }
        if format != self.format {
            let fault = CapTokenError::snapshot(format!(
                "snapshot is of format {} but the store uses {}",
                format.as_str(),
                self.format.as_str()
            ));
            return Err(self.fail(fault));
        }
        insert_tasks(self.state, &tasks).map_err(|fault| self.fail(fault))
    }
}

struct RecordsSeed<'s> {
    state: &'s mut MemoryState,
    format: SigningFormat,
    fault: &'s mut Option<CapTokenError>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<RecordIn<'de>>()? {
            let fingerprint = record.fingerprint;
            let inserted = validate_record(record, self.format)
                .map(|entry| self.state.insert(fingerprint, entry));
            let fault = match inserted {
                Ok(true) => continue,
                Ok(false) => {
                    CapTokenError::snapshot(format!("duplicate fingerprint {fingerprint}"))
                }
                Err(fault) => fault,
            };
            *self.fault = Some(fault);
            return Err(serde::de::Error::custom("invalid snapshot"));
        }
        Ok(())
    }
}

/// Why the text is not a snapshot, without quoting it: serde_json's own
/// messages quote the offending value or key, which may be anything the
/// caller passed, a nonce included.
pub(crate) fn not_a_snapshot(error: serde_json::Error) -> CapTokenError {
    let what = match error.classify() {
        serde_json::error::Category::Io | serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Eof => "the text ends early",
        serde_json::error::Category::Data => "a field is missing, unknown or of the wrong type",
    };
    CapTokenError::snapshot(format!(
        "not a snapshot: {what} at line {} column {}",
        error.line(),
        error.column()
    ))
}

pub(crate) fn validate_record(
    record: RecordIn<'_>,
    format: SigningFormat,
) -> Result<Entry, CapTokenError> {
    let fault =
        |what: &str| CapTokenError::snapshot(format!("record {}: {what}", record.fingerprint));
    let token = &record.token;
    if token.v != format.version_field() {
        return Err(fault("token is not of the store's format"));
    }
    if token.agent_id.0.is_empty() {
        return Err(fault("empty agent_id"));
    }
    if token.issued_at > MAX_SAFE_INTEGER || token.expire_at > MAX_SAFE_INTEGER {
        return Err(fault("time out of range"));
    }
    let Some(sig) = crate::hex::decode_lower(&token.sig_hex.0) else {
        return Err(fault("sig_hex is not 64 lowercase hex characters"));
    };
    if !uses_fit(token.max_uses, record.uses_left) {
        return Err(fault("uses_left does not fit max_uses"));
    }
    if let Some(task_id) = &record.task_id {
        check_task_id(&task_id.0).map_err(|_| fault("invalid task_id"))?;
    }
    Ok(Entry {
        agent_id: (*token.agent_id.0).into(),
        scopes: Scopes::from_iter(token.scopes.iter().map(|scope| &*scope.0)),
        issued_at: token.issued_at,
        expire_at: token.expire_at,
        max_uses: token.max_uses,
        uses_left: record.uses_left,
        task_id: record.task_id.as_ref().map(|task| (*task.0).into()),
        sig,
        role: token.role,
        v: token.v,
        revoked: record.revoked,
        made: 0,
        // Nothing in a snapshot was signature-checked here: the first decision
        // for each record runs the HMAC.
        sig_checked: false,
    })
}

/// Unique ids, and every task where its depth says (see
/// [`MemoryState::fits_parent`]). Parents may come after their children, so
/// every task is inserted before any is checked; a fault discards the state.
fn insert_tasks(state: &mut MemoryState, tasks: &[TaskInfo]) -> Result<(), CapTokenError> {
    for task in tasks {
        check_task_id(&task.task_id).map_err(|_| CapTokenError::snapshot("invalid task id"))?;
        if state.task(&task.task_id).is_some() {
            return Err(CapTokenError::snapshot(format!(
                "duplicate task {:?}",
                task.task_id
            )));
        }
        state.insert_task(&task.task_id, TaskNode::from(task));
    }
    for task in tasks {
        if !state.fits_parent(task) {
            return Err(CapTokenError::snapshot(format!(
                "task {:?} does not fit its parent",
                task.task_id
            )));
        }
    }
    Ok(())
}
