//! The record and token shapes that snapshots and journal lines share
//! (docs/snapshot-and-journal.md), and the checks every record and task read
//! back must pass.

use crate::entry::{Entry, Scopes, NO_CAP};
use crate::error::CapTokenError;
use crate::record::uses_fit;
use crate::role::Role;
use crate::signer::SigningFormat;
use crate::state::MemoryState;
use crate::store::check_task_id;
use crate::task::TaskInfo;
use crate::token::{Fingerprint, Text, MAX_SAFE_INTEGER};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) struct RecordOut<'a> {
    pub(crate) fingerprint: &'a Fingerprint,
    pub(crate) entry: &'a Entry,
    /// On a journal line: the Worker token that made this one (its count
    /// for `maxMadePerWorkerToken`); never in a snapshot.
    pub(crate) by: Option<&'a Fingerprint>,
}

#[derive(Serialize)]
struct RecordShape<'a> {
    fingerprint: &'a Fingerprint,
    token: TokenShape<'a>,
    uses_left: Option<u32>,
    revoked: bool,
    task_id: Option<&'a str>,
    /// Written only for tokens a Worker minted (docs/snapshot-and-journal.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<u64>,
    /// Tasks and tokens a Worker made with this token; written when not 0.
    #[serde(skip_serializing_if = "is_zero")]
    made: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<&'a Fingerprint>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
            not_after: (entry.not_after != NO_CAP).then_some(entry.not_after),
            made: entry.made,
            by: self.by,
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
    #[serde(default)]
    pub(crate) not_after: Option<u64>,
    /// Tasks and tokens made through this token (snapshots).
    #[serde(default)]
    pub(crate) made: u32,
    /// The Worker token that made this record (journal lines).
    #[serde(default)]
    pub(crate) by: Option<Fingerprint>,
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
    scopes: ScopesIn,
    issued_at: u64,
    expire_at: u64,
    max_uses: Option<u32>,
    #[serde(borrow)]
    sig_hex: Text<'a>,
}

/// A scope list read straight into [`Scopes`]: no list of borrowed scopes
/// on the way, and none at all for the common `["*"]` (a snapshot of a
/// million records would otherwise allocate and free a million lists).
pub(crate) struct ScopesIn(Scopes);

impl<'de> Deserialize<'de> for ScopesIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> serde::de::Visitor<'de> for List {
            type Value = ScopesIn;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a list of scopes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ScopesIn, A::Error> {
                let Some(first) = seq.next_element::<Text<'de>>()? else {
                    return Ok(ScopesIn(Scopes::List(Box::new([]))));
                };
                let Some(second) = seq.next_element::<Text<'de>>()? else {
                    return Ok(ScopesIn(Scopes::one(&first.0)));
                };
                let mut list: Vec<Box<str>> = vec![(*first.0).into(), (*second.0).into()];
                while let Some(scope) = seq.next_element::<Text<'de>>()? {
                    list.push((*scope.0).into());
                }
                Ok(ScopesIn(Scopes::List(list.into_boxed_slice())))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// Snapshots name roles by their wire names only.
fn wire_role<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Role, D::Error> {
    // Borrowed: `Cow<str>` would copy every role name into a String first.
    let name = Text::deserialize(deserializer)?;
    name.0
        .parse()
        .map_err(|_| serde::de::Error::custom("unknown role"))
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

/// Check a record read back and make its entry, with its agent and task
/// ids shared through `state`'s names (no copy of a name already held).
pub(crate) fn validate_record(
    record: RecordIn<'_>,
    format: SigningFormat,
    state: &mut MemoryState,
) -> Result<Entry, CapTokenError> {
    let fingerprint = record.fingerprint;
    let fault = |what: &str| CapTokenError::snapshot(format!("record {fingerprint}: {what}"));
    let token = record.token;
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
    let not_after = match record.not_after {
        None => NO_CAP,
        Some(at) if at >= token.expire_at && at <= MAX_SAFE_INTEGER => at,
        Some(_) => return Err(fault("not_after is before expire_at or out of range")),
    };
    Ok(Entry {
        agent_id: state.intern(&token.agent_id.0),
        scopes: token.scopes.0,
        issued_at: token.issued_at,
        expire_at: token.expire_at,
        max_uses: token.max_uses,
        uses_left: record.uses_left,
        task_id: record.task_id.as_ref().map(|task| state.intern(&task.0)),
        sig,
        role: token.role,
        v: token.v,
        revoked: record.revoked,
        made: record.made,
        not_after,
        // Nothing in a snapshot was signature-checked here: the first decision
        // for each record runs the HMAC.
        sig_checked: false,
    })
}

/// A task at or past `maxSpawnDepth` could never have been started by this
/// store: restoring it would let its Workers spawn deeper than the cap.
pub(crate) fn check_depth(task: &TaskInfo, max_depth: u32) -> Result<(), CapTokenError> {
    if task.spawn_depth >= max_depth {
        return Err(CapTokenError::snapshot(format!(
            "task {:?} is at depth {}, but maxSpawnDepth is {max_depth}",
            task.task_id, task.spawn_depth
        )));
    }
    Ok(())
}
