//! Snapshot and restore: a store's whole state as JSON text.
//!
//! ```json
//! { "version": 1, "key_id": "<16 hex>", "mac": "<64 hex>", "format": "v2",
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
//!
//! The text is sealed (see [`crate::seal`] and `docs/snapshot-and-journal.md`):
//! it always starts with the same fixed-length header, `{"version":1,
//! "key_id":"…","mac":"…",`, so the seal is found and checked at fixed byte
//! offsets before anything is parsed. The MAC covers every other byte of the
//! text, so a changed `uses_left`, `revoked` or `task_id` is refused.

use crate::clock::Clock;
use crate::error::CapTokenError;
use crate::persist::records::{check_depth, not_a_snapshot, validate_record, RecordIn, RecordOut};
use crate::seal::{nonce_of, same_tag, Seal, Tag, KEY_ID_HEX_LEN, NONCE_LEN};
use crate::signer::SigningFormat;
use crate::state::{MemoryState, TaskNode};
use crate::store::{check_task_id, StoreConfig, TokenStore};
use crate::task::TaskInfo;
use crate::token::Text;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serialize, Serializer};

/// The snapshot format version this crate writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    key_id: &'a str,
    mac: &'a str,
    format: SigningFormat,
    records: RecordsOut<'a>,
    tasks: Vec<TaskInfo>,
}

struct RecordsOut<'a>(&'a MemoryState);

impl Serialize for RecordsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (fingerprint, entry) in self.0.entries() {
            seq.serialize_element(&RecordOut {
                fingerprint,
                entry,
                by: None,
            })?;
        }
        seq.end()
    }
}

/// How restore treats its input beyond the store's own configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Accept a snapshot of the old, unsealed shape (and a journal of
    /// unsealed lines after it). Nothing vouches for such text: whoever could
    /// write it could have edited any record. Off by default.
    pub allow_unsealed: bool,
}

// The sealed header: `{"version":1,"key_id":"` KEY_ID `","mac":"` MAC `",`,
// then the rest of the object. Fixed offsets, so the seal is checked before
// anything is parsed.
const HEAD_KEY_ID: &[u8] = b"{\"version\":1,\"key_id\":\"";
const HEAD_MAC: &[u8] = b"\",\"mac\":\"";
const HEAD_END: &[u8] = b"\",";
const MAC_AT: usize = HEAD_KEY_ID.len() + KEY_ID_HEX_LEN + HEAD_MAC.len();
const MAC_HEX_LEN: usize = 64;
const HEADER_LEN: usize = MAC_AT + MAC_HEX_LEN + HEAD_END.len();

/// Bytes a JSON string of `len` bytes takes at most: serde_json writes a
/// control character as `\u00XX` (6 bytes), anything else as itself or as a
/// 2-byte escape; plus the quotes.
fn json_str_max(len: usize) -> usize {
    len.saturating_mul(6).saturating_add(2)
}

/// An upper bound on the snapshot's length, so that its buffer is reserved
/// once, fallibly, and serde_json never grows it (an infallible growth would
/// abort the module on a huge state). Writing into a plain `Vec<u8>` keeps
/// one copy of serde_json's serializer in the .wasm: the bearer encoder uses
/// the same one (a writer of our own cost 11 KB).
fn snapshot_max_len(state: &MemoryState, tasks: &[TaskInfo]) -> usize {
    // Everything of a record but its strings: keys, punctuation, the 64-hex
    // fingerprint and signature, the widest numbers, the longest role name.
    // (356 bytes counted for the widest record, 29 more for `not_after`
    // and 18 for `made` at their widest, and a comma.)
    const RECORD_FIXED: usize = 448;
    const TASK_FIXED: usize = 64;
    let mut total: usize = 512;
    for (_, entry) in state.entries() {
        let scopes = entry.scopes.iter().fold(0usize, |sum, scope| {
            sum.saturating_add(json_str_max(scope.len()) + 1)
        });
        let task = entry
            .task_id
            .as_deref()
            .map_or(4, |task| json_str_max(task.len()));
        total = total
            .saturating_add(RECORD_FIXED)
            .saturating_add(json_str_max(entry.agent_id.len()))
            .saturating_add(scopes)
            .saturating_add(task);
    }
    for task in tasks {
        let parent = task
            .parent_id
            .as_deref()
            .map_or(4, |p| json_str_max(p.len()));
        total = total
            .saturating_add(TASK_FIXED)
            .saturating_add(json_str_max(task.task_id.len()))
            .saturating_add(parent);
    }
    total
}

fn out_of_memory(bytes: usize) -> CapTokenError {
    CapTokenError::LimitExceeded {
        limit: "memory",
        max: u64::try_from(bytes).unwrap_or(u64::MAX),
    }
}

/// Make sure, fallibly, that memory can hold a state as large as the text
/// before parsing it: the state a text rebuilds takes fewer bytes than the
/// text (a record of ~330 bytes of JSON is ~150 bytes of state), but its
/// tables and strings grow through allocations that cannot fail gracefully
/// (they would abort the module). A block of that size is reserved and
/// given back at once; in WebAssembly the memory it grew stays with the
/// allocator, for the parse to use.
fn reserve_headroom(bytes: usize) -> Result<(), CapTokenError> {
    let mut headroom: Vec<u8> = Vec::new();
    headroom
        .try_reserve_exact(bytes)
        .map_err(|_| CapTokenError::snapshot("the snapshot is too large for the memory left"))
}

/// The seal of snapshot text under `nonce`: every byte but the seal's own
/// hex.
fn snapshot_mac(seal: &Seal, nonce: &[u8; NONCE_LEN], text: &[u8]) -> Tag {
    let mut mac = seal.start_snapshot(nonce);
    mac.update(text.get(..MAC_AT).unwrap_or_default());
    mac.update(text.get(MAC_AT + MAC_HEX_LEN..).unwrap_or_default());
    mac.finish()
}

/// Where the journal chain of a snapshot with seal `mac` starts: at the
/// seal, or, for an empty state, at [`Seal::empty_head`].
fn chain_head(seal: &Seal, format: SigningFormat, state: &MemoryState, mac: Tag) -> Tag {
    if state.is_empty() && state.task_count() == 0 {
        seal.empty_head(format)
    } else {
        mac
    }
}

/// A fresh nonce for a snapshot's seal: each Poly1305 key seals one text.
fn fresh_nonce() -> Result<[u8; NONCE_LEN], CapTokenError> {
    crate::store::random_bytes()
}

/// Seal `text` (written with 64 `0`s for the seal) in place; returns the
/// seal.
fn seal_in_place(seal: &Seal, text: &mut [u8]) -> Result<Tag, CapTokenError> {
    let mac = snapshot_mac(seal, &fresh_nonce()?, text);
    let mut hex = [0u8; MAC_HEX_LEN];
    let hex = base16ct::lower::encode(&mac, &mut hex).unwrap_or_default();
    if let Some(slot) = text.get_mut(MAC_AT..MAC_AT + MAC_HEX_LEN) {
        slot.copy_from_slice(hex);
    }
    Ok(mac)
}

/// Check the seal of snapshot text before it is parsed. `Some(mac)` for a
/// sealed text whose seal holds; `None` for unsealed text the caller opted
/// into.
fn check_seal(
    text: &[u8],
    seal: &Seal,
    options: RestoreOptions,
) -> Result<Option<Tag>, CapTokenError> {
    if !text.starts_with(HEAD_KEY_ID) {
        if options.allow_unsealed {
            return Ok(None);
        }
        return Err(CapTokenError::snapshot(
            "the snapshot is not sealed (an unsealed, old-shape snapshot restores only with allowUnsealed)",
        ));
    }
    let damaged = || CapTokenError::snapshot("the seal is damaged: the snapshot was edited");
    let key_id = text
        .get(HEAD_KEY_ID.len()..HEAD_KEY_ID.len() + KEY_ID_HEX_LEN)
        .ok_or_else(damaged)?;
    let header_ok = text.get(HEAD_KEY_ID.len() + KEY_ID_HEX_LEN..MAC_AT) == Some(HEAD_MAC)
        && text.get(MAC_AT + MAC_HEX_LEN..HEADER_LEN) == Some(HEAD_END);
    let mac_hex = text.get(MAC_AT..MAC_AT + MAC_HEX_LEN).ok_or_else(damaged)?;
    let mac = core::str::from_utf8(mac_hex)
        .ok()
        .and_then(crate::hex::decode_lower);
    let (true, Some(mac)) = (header_ok, mac) else {
        return Err(damaged());
    };
    if !seal.is_key_id(key_id) {
        return Err(CapTokenError::snapshot(
            "the snapshot was sealed under another secret: the secret does not match",
        ));
    }
    if !same_tag(&snapshot_mac(seal, &nonce_of(&mac), text), &mac) {
        return Err(CapTokenError::snapshot(
            "the seal does not match: the snapshot was edited",
        ));
    }
    Ok(Some(mac))
}

/// Seal `body`, the text of a JSON object without the seal's fields, as a
/// snapshot of a store with this secret: `{"version":1,"key_id":…,"mac":…,`
/// followed by the body's members. For tools and tests that build or migrate
/// snapshot text (the fuzz target seals its input with it); whoever holds the
/// secret could mint any token anyway. The body is not checked here: restore
/// checks it. A body holding `version` again is refused by restore as a
/// duplicate field.
#[doc(hidden)]
pub fn seal_snapshot_text(body: &str, secret: &[u8]) -> Result<String, CapTokenError> {
    if secret.len() < 32 {
        return Err(CapTokenError::invalid("secret must be at least 32 bytes"));
    }
    let Some(members) = body.trim_start().strip_prefix('{') else {
        return Err(CapTokenError::snapshot("the body is not a JSON object"));
    };
    let members = members.trim_start();
    let seal = Seal::new(secret);
    let key_id = seal.key_id_hex();
    let mut text: Vec<u8> = Vec::new();
    let len = HEADER_LEN.saturating_add(members.len());
    text.try_reserve(len).map_err(|_| out_of_memory(len))?;
    text.extend_from_slice(HEAD_KEY_ID);
    text.extend_from_slice(&key_id);
    text.extend_from_slice(HEAD_MAC);
    text.extend_from_slice(&[b'0'; MAC_HEX_LEN]);
    // An empty object keeps its closing brace right after the header's comma
    // (`,}`), which restore refuses: the body must hold the state's fields.
    text.extend_from_slice(HEAD_END);
    text.extend_from_slice(members.as_bytes());
    seal_in_place(&seal, &mut text)?;
    String::from_utf8(text).map_err(|_| CapTokenError::snapshot("not UTF-8 text"))
}

/// Seal `lines`, journal events of the unsealed shape (`{"op":…}` one a
/// line), as the journal written after the sealed `snapshot` by a store with
/// this secret. For tools and tests, like [`seal_snapshot_text`].
#[doc(hidden)]
pub fn seal_journal_text(
    snapshot: &str,
    lines: &str,
    secret: &[u8],
) -> Result<String, CapTokenError> {
    let seal = Seal::new(secret);
    let mac = check_seal(snapshot.as_bytes(), &seal, RestoreOptions::default())?
        .ok_or_else(|| CapTokenError::snapshot("the snapshot is not sealed"))?;
    let format = serde_json::from_str::<serde_json::Value>(snapshot)
        .ok()
        .and_then(|doc| doc.get("format")?.as_str().map(SigningFormat::parse))
        .ok_or_else(|| CapTokenError::snapshot("the snapshot names no format"))??;
    let state = parse(snapshot, format, u32::MAX, true)?;
    let head = chain_head(&seal, format, &state, mac);
    Ok(crate::journal::seal_lines(&seal, head, lines))
}

impl TokenStore {
    /// The whole state as sealed JSON text (see the module docs). Holds no
    /// nonce and no secret.
    ///
    /// Taking a snapshot starts a new journal chain: the journal lines not
    /// yet taken are dropped (the snapshot holds their changes), and the next
    /// line is chained to this snapshot's seal. Fails with
    /// [`CapTokenError::LimitExceeded`] (limit `memory`) when the text does
    /// not fit in memory; the store is unchanged then.
    pub fn snapshot(&mut self) -> Result<String, CapTokenError> {
        let seal = self.seal();
        let key_id = seal.key_id_hex();
        let key_id = core::str::from_utf8(&key_id).unwrap_or_default();
        let placeholder = "0".repeat(MAC_HEX_LEN);
        let tasks = self.tasks();
        let doc = SnapshotOut {
            version: SNAPSHOT_VERSION,
            key_id,
            mac: &placeholder,
            format: self.config().format,
            records: RecordsOut(self.state()),
            tasks,
        };
        let max = snapshot_max_len(self.state(), &doc.tasks);
        let mut text: Vec<u8> = Vec::new();
        text.try_reserve_exact(max)
            .map_err(|_| out_of_memory(max))?;
        // Only strings and integers: serialising cannot fail, and it stays
        // within the reserved bytes.
        serde_json::to_writer(&mut text, &doc)
            .map_err(|_| CapTokenError::snapshot("the state could not be written"))?;
        if text.get(..HEAD_KEY_ID.len()) != Some(HEAD_KEY_ID) {
            return Err(CapTokenError::snapshot(
                "the snapshot header is not as written",
            ));
        }
        let mac = seal_in_place(seal, &mut text)?;
        let head = chain_head(seal, self.config().format, self.state(), mac);
        let text = String::from_utf8(text)
            .map_err(|_| CapTokenError::snapshot("the snapshot is not UTF-8 text"))?;
        self.changes_mut().restart(head);
        Ok(text)
    }

    /// Rebuild a store from [`snapshot`](Self::snapshot) text. The seal is
    /// checked first, then everything is validated; on any fault this is
    /// [`CapTokenError::SnapshotInvalid`] and nothing is created.
    pub fn restore(
        snapshot: &str,
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
    ) -> Result<Self, CapTokenError> {
        Self::restore_with(
            snapshot,
            "",
            secret,
            config,
            clock,
            RestoreOptions::default(),
        )
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
        Self::restore_with(
            snapshot,
            journal,
            secret,
            config,
            clock,
            RestoreOptions::default(),
        )
    }

    /// [`restore_with_journal`](Self::restore_with_journal) with
    /// [`RestoreOptions`]. The journal chain goes on from the last line
    /// replayed (or from the snapshot's seal), so the journal lines this store
    /// writes next append to the same journal.
    pub fn restore_with(
        snapshot: &str,
        journal: &str,
        secret: &[u8],
        config: StoreConfig,
        clock: Box<dyn Clock>,
        options: RestoreOptions,
    ) -> Result<Self, CapTokenError> {
        // Made first: a bad secret or configuration is the caller's error,
        // and the seal key comes from it.
        let mut store = TokenStore::with_state(secret, config, clock, MemoryState::default())?;
        reserve_headroom(snapshot.len().saturating_add(journal.len()))?;
        let seal = store.seal().clone();
        let sealed = check_seal(snapshot.as_bytes(), &seal, options)?;
        let max_depth = store.config().max_spawn_depth;
        let format = store.config().format;
        let mut state = parse(snapshot, format, max_depth, sealed.is_some())?;
        let start = sealed.map(|mac| (&seal, chain_head(&seal, format, &state, mac)));
        let head =
            crate::journal::replay(&mut state, journal, store.config().format, max_depth, start)?;
        store.replace_state(state)?;
        store
            .changes_mut()
            .restart(head.unwrap_or_else(|| seal.unsealed_head()));
        Ok(store)
    }
}

/// Parse and validate a snapshot straight into a state: records are checked
/// and inserted as they are read, never held as a second copy.
fn parse(
    snapshot: &str,
    format: SigningFormat,
    max_depth: u32,
    sealed: bool,
) -> Result<MemoryState, CapTokenError> {
    let mut state = MemoryState::default();
    let mut fault = None;
    let seed = SnapshotSeed {
        state: &mut state,
        format,
        max_depth,
        sealed,
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
    max_depth: u32,
    /// The seal was checked: its two header fields are expected (and were
    /// read before parsing). Unsealed text may not carry them.
    sealed: bool,
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
        let (mut key_id, mut mac) = (false, false);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let duplicate = match &*key.0 {
                "version" => version.replace(map.next_value::<u32>()?).is_some(),
                "key_id" if self.sealed => {
                    map.next_value::<Text<'de>>()?;
                    core::mem::replace(&mut key_id, true)
                }
                "mac" if self.sealed => {
                    map.next_value::<Text<'de>>()?;
                    core::mem::replace(&mut mac, true)
                }
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
        insert_tasks(self.state, &tasks, self.max_depth).map_err(|fault| self.fail(fault))
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
            let inserted = validate_record(record, self.format, self.state)
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

/// Unique ids, and every task where its depth says (see
/// [`MemoryState::fits_parent`]). Parents may come after their children, so
/// every task is inserted before any is checked; a fault discards the state.
fn insert_tasks(
    state: &mut MemoryState,
    tasks: &[TaskInfo],
    max_depth: u32,
) -> Result<(), CapTokenError> {
    for task in tasks {
        check_task_id(&task.task_id).map_err(|_| CapTokenError::snapshot("invalid task id"))?;
        check_depth(task, max_depth)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::role::Role;
    use crate::store::MintOptions;
    use crate::token::MAX_SAFE_INTEGER;

    /// The reservation is an upper bound even for the widest records: the
    /// longest names, control characters (6 bytes each once escaped), the
    /// widest numbers, so serde_json never grows the buffer.
    #[test]
    fn the_reserved_length_bounds_the_widest_snapshot() {
        let config = StoreConfig {
            worker_token_ttl_secs: MAX_SAFE_INTEGER,
            ..StoreConfig::default()
        };
        let mut store = TokenStore::new(&[3u8; 32], config, Box::new(FixedClock::new(0))).unwrap();
        let wide = "\u{1}".repeat(crate::store::MAX_AGENT_ID_LEN);
        let task = "\u{1}".repeat(crate::task::MAX_TASK_ID_LEN);
        for role in [Role::Observer, Role::Worker] {
            store
                .mint(
                    &wide,
                    role,
                    MintOptions {
                        scopes: Some(vec!["\u{1}".repeat(crate::store::MAX_SCOPE_LEN); 4]),
                        max_uses: Some(u32::MAX),
                        task_id: Some(task.clone()),
                        ttl_secs: Some(MAX_SAFE_INTEGER),
                    },
                )
                .unwrap();
            store.mint("a", role, MintOptions::default()).unwrap();
        }
        let max = snapshot_max_len(store.state(), &store.tasks());
        let text = store.snapshot().unwrap();
        assert!(text.len() <= max, "{} > {max}", text.len());
    }
}
