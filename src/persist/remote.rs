//! What a store whose records and tasks live in a server (Redis) needs from
//! the core: the stateless steps of a decision, signing a new token without
//! touching any state, and the digest a record is compared by.
//!
//! The server keeps, per fingerprint, the [`record_digest`] of the token it
//! was made from: SHA-256 over every field but the nonce, the signature
//! included. A presented token matches its record exactly when the digests
//! are equal,
//! which is [`crate::state::Entry::matches`]'s rule ("the record is the
//! authority"), checked inside the server's script. Nothing sent to the
//! server holds a nonce, a bearer or the secret.

use crate::clock::Clock;
use crate::entry::Scopes;
use crate::error::CapTokenError;
use crate::role::{Role, Verb};
use crate::signer::{write_fields, write_string};
use crate::snapshot::RestoreOptions;
use crate::store::{narrower_scopes, MintOptions, Minted, StoreConfig, TokenStore};
use crate::task::TaskInfo;
use crate::token::{CapToken, Fingerprint, TokenFields};
use crate::verifier::Verified;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::rc::Rc;

/// A clock the caller sets before each call: the remote store reads its own
/// clock once per call and hands the same `now` to the core and the script.
#[derive(Debug, Clone, Default)]
struct SetClock(Rc<Cell<u64>>);

impl Clock for SetClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

/// A token's fields in [`CapToken`]'s serde shape, with an empty nonce,
/// borrowed from any [`TokenFields`] (a decoded bearer needs no copy).
#[derive(Serialize)]
#[serde(bound = "")]
struct BareToken<'a, T: TokenFields> {
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u8>,
    agent_id: &'a str,
    role: Role,
    scopes: ScopeList<'a, T>,
    issued_at: u64,
    expire_at: u64,
    max_uses: Option<u32>,
    nonce: &'static str,
    sig_hex: &'a str,
}

struct ScopeList<'a, T>(&'a T);

impl<T: TokenFields> Serialize for ScopeList<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.scopes())
    }
}

/// The bytes every record digest starts with.
const RECORD_DIGEST_DOMAIN: &[u8] = b"captoken-record-v1";

/// What a record is compared by: SHA-256 over every field but the nonce
/// (which the fingerprint already binds), the signature included, each
/// length-prefixed or fixed-width as the `v2` signing input writes them
/// ([`crate::signer`]), so equal digests mean equal tokens for
/// the same fingerprint in either format ([`crate::state`]'s `Entry::matches`
/// rule, "the record is the authority"). The signature alone would not do:
/// a record restored from an unsealed snapshot (`allowUnsealed`) and sealed
/// again can hold fields its signature never covered, and an `mlua-swarm`
/// signing text lets bytes move between fields. Hashed without JSON: about
/// 110 bytes, two SHA-256 blocks.
pub fn record_digest(token: &impl TokenFields) -> [u8; 32] {
    // Written out first and hashed in one call: smaller code than a
    // hasher fed field by field.
    let mut bytes = Vec::with_capacity(128);
    let mut out = |part: &[u8]| bytes.extend_from_slice(part);
    out(RECORD_DIGEST_DOMAIN);
    match token.v() {
        None => out(&[0]),
        Some(v) => out(&[1, v]),
    }
    write_fields(token, &mut out);
    // The signature as its 32 bytes when it is canonical hex, else as text
    // (never minted or accepted, but compared all the same).
    match crate::hex::decode_lower::<32>(token.sig_hex()) {
        Some(signature) => {
            out(&[1]);
            out(&signature);
        }
        None => {
            out(&[0]);
            write_string(&mut out, token.sig_hex());
        }
    }
    Sha256::digest(&bytes).into()
}

/// The token's JSON with an empty nonce: what a record shows of its token.
pub fn record_json(token: &impl TokenFields) -> String {
    let bare = BareToken {
        v: token.v(),
        agent_id: token.agent_id(),
        role: token.role(),
        scopes: ScopeList(token),
        issued_at: token.issued_at(),
        expire_at: token.expire_at(),
        max_uses: token.max_uses(),
        nonce: "",
        sig_hex: token.sig_hex(),
    };
    // Only strings and integers: serialising cannot fail.
    serde_json::to_string(&bare).unwrap_or_default()
}

/// A token that passed the stateless steps, with what the server compares.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The decoded token (it carries its nonce: keep it in the process).
    pub token: CapToken,
    /// The token's public identity.
    pub fingerprint: Fingerprint,
    /// [`record_digest`] of the token.
    pub digest: [u8; 32],
}

impl From<Verified> for Presented {
    fn from(verified: Verified) -> Self {
        Presented {
            digest: record_digest(&verified.token),
            fingerprint: verified.fingerprint,
            token: verified.token,
        }
    }
}

/// A token signed for a remote store, not yet recorded anywhere.
#[derive(Debug, Clone)]
pub struct RemoteMinted {
    /// The bearer, token and fingerprint, as [`TokenStore::mint`] gives them.
    pub minted: Minted,
    /// [`record_digest`] of the token.
    pub digest: [u8; 32],
    /// [`record_json`] of the token.
    pub json: String,
}

/// One record of a snapshot, as a remote store keeps it.
#[derive(Debug, Clone)]
pub struct RemoteRecord {
    /// The token's public identity.
    pub fingerprint: Fingerprint,
    /// [`record_digest`] of the token.
    pub digest: [u8; 32],
    /// [`record_json`] of the token.
    pub json: String,
    /// The token's role.
    pub role: Role,
    /// The token's issue time.
    pub issued_at: u64,
    /// The token's expiry.
    pub expire_at: u64,
    /// Uses left (`None`: unlimited).
    pub uses_left: Option<u32>,
    /// Whether the record is revoked.
    pub revoked: bool,
    /// The bound task.
    pub task_id: Option<String>,
    /// The expiry of the Worker that minted the token, which no remint
    /// outlives (`None`: not minted by a Worker).
    pub not_after: Option<u64>,
    /// The tasks and tokens a Worker made with this token, counted against
    /// `maxMadePerWorkerToken`.
    pub made: u32,
}

/// The core of a store whose state lives elsewhere: the store's signer,
/// gate and configuration, and no records or tasks at all.
pub struct RemoteCore {
    /// An empty store: its rules for minting are reused, its state never is.
    store: TokenStore,
    now: Rc<Cell<u64>>,
}

impl core::fmt::Debug for RemoteCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteCore")
            .field("config", self.store.config())
            .finish_non_exhaustive()
    }
}

impl RemoteCore {
    /// A core with this secret (at least 32 bytes) and configuration.
    pub fn new(secret: &[u8], config: StoreConfig) -> Result<Self, CapTokenError> {
        let clock = SetClock::default();
        let now = clock.0.clone();
        Ok(RemoteCore {
            store: TokenStore::new(secret, config, Box::new(clock))?,
            now,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        self.store.config()
    }

    /// The stateless verifier (steps 1 to 4), for callers that decode into
    /// their own buffer.
    pub fn verifier(&self) -> &crate::verifier::Verifier {
        self.store.verifier()
    }

    /// Steps 1 to 4 at `now`: decode, signature, expiry, gate.
    pub fn authorize(
        &self,
        bearer: &str,
        verb: Verb,
        now: u64,
    ) -> Result<Presented, CapTokenError> {
        self.store
            .verifier()
            .authorize(bearer, verb, now)
            .map(Presented::from)
    }

    /// Steps 1 to 3 at `now` (adopt), or 1 and 2 (`now` = `None`: remint).
    pub fn authenticate(&self, bearer: &str, now: Option<u64>) -> Result<Presented, CapTokenError> {
        let verifier = self.store.verifier();
        match now {
            Some(now) => verifier.authenticate(bearer, now),
            None => verifier.authenticate_ignoring_expiry(bearer),
        }
        .map(Presented::from)
    }

    /// Build and sign a token at `now` without recording it, by the rules
    /// of [`TokenStore::mint`] (`expiry_cap`: a minting Worker's own expiry).
    pub fn mint(
        &self,
        agent_id: &str,
        role: Role,
        options: &MintOptions,
        expiry_cap: Option<u64>,
        now: u64,
    ) -> Result<RemoteMinted, CapTokenError> {
        self.now.set(now);
        let (minted, _) = self
            .store
            .prepare_mint(agent_id, role, options, expiry_cap)?;
        Ok(RemoteMinted {
            digest: record_digest(&minted.token),
            json: record_json(&minted.token),
            minted,
        })
    }

    /// The scopes a Worker holding `own` hands on when it asks for `asked`.
    pub fn narrower_scopes(
        &self,
        asked: Option<Vec<String>>,
        own: &[String],
    ) -> Result<Vec<String>, CapTokenError> {
        narrower_scopes(asked, &Scopes::from_iter(own.iter().map(String::as_str)))
    }

    /// The options of a remint at `now` of a Worker token (as presented)
    /// whose record has `uses_left` and `task_id` and was minted by a Worker
    /// that expires at `not_after`, by [`TokenStore::remint`]'s rules: at
    /// most one lifetime late, the same lifetime from now but never past
    /// `not_after` (else [`CapTokenError::TokenExpired`]).
    pub fn remint_options(
        presented: &Presented,
        uses_left: Option<u32>,
        task_id: Option<String>,
        not_after: Option<u64>,
        now: u64,
    ) -> Result<MintOptions, CapTokenError> {
        let token = &presented.token;
        let lifetime = token.expire_at.saturating_sub(token.issued_at);
        if now.saturating_sub(token.expire_at) > lifetime {
            return Err(CapTokenError::TokenExpired {
                fingerprint: presented.fingerprint,
            });
        }
        let ttl = match not_after {
            Some(cap) => {
                let left = cap.saturating_sub(now);
                if left == 0 {
                    return Err(CapTokenError::TokenExpired {
                        fingerprint: presented.fingerprint,
                    });
                }
                lifetime.min(left)
            }
            None => lifetime,
        };
        Ok(MintOptions {
            scopes: Some(token.scopes.clone()),
            ttl_secs: Some(ttl),
            max_uses: uses_left,
            task_id,
        })
    }

    /// Sealed snapshot text in the store's own format from the unsealed
    /// text the remote store assembles from its records and tasks (trusted:
    /// this process built it from what the server holds): restored, and so
    /// validated, exactly as [`TokenStore::restore`] does with
    /// `allow_unsealed`, then written and sealed by [`TokenStore::snapshot`].
    /// With [`read_snapshot`](Self::read_snapshot), the only code that
    /// knows the snapshot format.
    pub fn finish_snapshot(&self, assembled: &str, secret: &[u8]) -> Result<String, CapTokenError> {
        let mut store = TokenStore::restore_with(
            assembled,
            "",
            secret,
            self.store.config().clone(),
            Box::new(SetClock::default()),
            RestoreOptions {
                allow_unsealed: true,
            },
        )?;
        store.snapshot()
    }

    /// The records and tasks of sealed snapshot text, its seal checked with
    /// `secret` and everything validated exactly as [`TokenStore::restore`]
    /// does (unsealed text, or text sealed with another secret, is refused).
    pub fn read_snapshot(
        &self,
        snapshot: &str,
        secret: &[u8],
    ) -> Result<(Vec<RemoteRecord>, Vec<TaskInfo>), CapTokenError> {
        let store = TokenStore::restore(
            snapshot,
            secret,
            self.store.config().clone(),
            Box::new(SetClock::default()),
        )?;
        let records = store
            .records()
            .into_iter()
            .map(|(fingerprint, record)| RemoteRecord {
                fingerprint,
                digest: record_digest(&record.token),
                json: record_json(&record.token),
                role: record.token.role,
                issued_at: record.token.issued_at,
                expire_at: record.token.expire_at,
                uses_left: record.uses_left,
                revoked: record.revoked,
                not_after: store.not_after(&fingerprint),
                made: store.made(&fingerprint),
                task_id: record.task_id,
            })
            .collect();
        Ok((records, store.tasks()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn a_minted_token_authorizes_with_its_digest() {
        let core = RemoteCore::new(&SECRET, StoreConfig::default()).unwrap();
        let minted = core
            .mint("w", Role::Worker, &MintOptions::default(), None, 1000)
            .unwrap();
        let presented = core
            .authorize(&minted.minted.bearer, Verb::FetchPrompt, 1000)
            .unwrap();
        assert_eq!(presented.fingerprint, minted.minted.fingerprint);
        assert_eq!(presented.digest, minted.digest);
        assert!(!minted.json.contains(&minted.minted.token.nonce));
        // The borrowed shape is CapToken's own serde shape with an empty nonce.
        let mut bare = minted.minted.token.clone();
        bare.nonce.clear();
        assert_eq!(minted.json, serde_json::to_string(&bare).unwrap());
        let mlua = RemoteCore::new(
            &SECRET,
            StoreConfig {
                format: crate::SigningFormat::MluaSwarm,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        let scoped = mlua
            .mint(
                "a",
                Role::Observer,
                &MintOptions {
                    scopes: Some(vec!["x".into(), "y".into()]),
                    max_uses: Some(2),
                    ..Default::default()
                },
                None,
                5,
            )
            .unwrap();
        let mut bare = scoped.minted.token.clone();
        bare.nonce.clear();
        assert_eq!(scoped.json, serde_json::to_string(&bare).unwrap());
        assert_eq!(
            core.authorize(&minted.minted.bearer, Verb::FetchPrompt, 1000 + 1800)
                .unwrap_err()
                .code()
                .as_str(),
            "ERR_TOKEN_EXPIRED"
        );
    }

    #[test]
    fn a_digest_changes_with_every_field_but_the_nonce() {
        let core = RemoteCore::new(&SECRET, StoreConfig::default()).unwrap();
        let minted = core
            .mint(
                "a",
                Role::Observer,
                &MintOptions {
                    scopes: Some(vec!["x".into(), "y".into()]),
                    max_uses: Some(0),
                    ..Default::default()
                },
                None,
                5,
            )
            .unwrap();
        let token = minted.minted.token.clone();
        assert_eq!(record_digest(&token), minted.digest);
        let mut renonced = token.clone();
        renonced.nonce = "00".repeat(16);
        assert_eq!(record_digest(&renonced), minted.digest);
        type Edit = Box<dyn Fn(&mut CapToken)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("v", Box::new(|t| t.v = None)),
            ("agent_id", Box::new(|t| t.agent_id = "b".into())),
            (
                "agent_id into role",
                Box::new(|t| t.agent_id = "a\u{1}".into()),
            ),
            ("role", Box::new(|t| t.role = Role::Worker)),
            ("scopes joined", Box::new(|t| t.scopes = vec!["x,y".into()])),
            (
                "scopes split",
                Box::new(|t| t.scopes = vec!["x".into(), "".into(), "y".into()]),
            ),
            ("scopes", Box::new(|t| t.scopes = vec!["*".into()])),
            ("issued_at", Box::new(|t| t.issued_at += 1)),
            ("expire_at", Box::new(|t| t.expire_at -= 1)),
            ("max_uses none", Box::new(|t| t.max_uses = None)),
            ("max_uses", Box::new(|t| t.max_uses = Some(1))),
            (
                "signature",
                Box::new(|t| t.sig_hex.replace_range(..2, "ff")),
            ),
            (
                "signature spelling",
                Box::new(|t| t.sig_hex = t.sig_hex.to_uppercase()),
            ),
        ];
        let mut seen = vec![minted.digest];
        for (what, edit) in edits {
            let mut edited = token.clone();
            edit(&mut edited);
            let digest = record_digest(&edited);
            assert!(!seen.contains(&digest), "{what}");
            seen.push(digest);
        }
    }

    #[test]
    fn remint_options_follow_the_store_rules() {
        let core = RemoteCore::new(&SECRET, StoreConfig::default()).unwrap();
        let options = MintOptions {
            ttl_secs: Some(100),
            ..MintOptions::default()
        };
        let minted = core.mint("w", Role::Worker, &options, None, 1000).unwrap();
        let presented = core.authenticate(&minted.minted.bearer, None).unwrap();
        let ttl = |not_after, now| {
            RemoteCore::remint_options(&presented, Some(2), None, not_after, now)
                .map(|options| options.ttl_secs)
                .map_err(|e| e.code().as_str())
        };
        // The same lifetime, cut to what is left of the minting Worker's.
        assert_eq!(ttl(None, 1150), Ok(Some(100)));
        assert_eq!(ttl(Some(1180), 1150), Ok(Some(30)));
        // At or past the cap, or more than one lifetime late: expired.
        assert_eq!(ttl(Some(1150), 1150), Err("ERR_TOKEN_EXPIRED"));
        assert_eq!(ttl(None, 1201), Err("ERR_TOKEN_EXPIRED"));
        assert_eq!(ttl(None, 1200), Ok(Some(100)));
    }

    #[test]
    fn snapshot_records_keep_their_digest() {
        let mut store = TokenStore::new(
            &SECRET,
            StoreConfig::default(),
            Box::new(FixedClock::new(50)),
        )
        .unwrap();
        let op = store.attach_operator("op", MintOptions::default()).unwrap();
        store.start_task(&op.bearer, Some("t")).unwrap();
        let w = store
            .dispatch_attempt(
                &op.bearer,
                "t",
                MintOptions {
                    max_uses: Some(3),
                    ..Default::default()
                },
            )
            .unwrap();
        let core = RemoteCore::new(&SECRET, StoreConfig::default()).unwrap();
        let (records, tasks) = core
            .read_snapshot(&store.snapshot().unwrap(), &SECRET)
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(tasks.len(), 1);
        let row = records
            .iter()
            .find(|r| r.fingerprint == w.fingerprint)
            .unwrap();
        assert_eq!(row.digest, record_digest(&w.token));
        assert_eq!(row.uses_left, Some(3));
        assert_eq!(row.task_id.as_deref(), Some("t"));
        // An unsealed assembly comes back sealed, as the store writes it
        // (each seal has its own nonce: the 64 hex characters differ).
        let sealed = store.snapshot().unwrap();
        let body = sealed.split_once(",\"mac\":\"").unwrap().1;
        let unsealed = format!("{{\"version\":1,{}", &body[66..]);
        let finished = core.finish_snapshot(&unsealed, &SECRET).unwrap();
        assert_eq!(
            (&finished[..48], &finished[112..]),
            (&sealed[..48], &sealed[112..])
        );
        assert_ne!(finished[48..112], sealed[48..112]);
        core.read_snapshot(&finished, &SECRET).unwrap();
        // Import refuses unsealed text and text sealed with another secret.
        for (text, secret) in [(unsealed.as_str(), SECRET), (sealed.as_str(), [8; 32])] {
            let other = RemoteCore::new(&secret, StoreConfig::default()).unwrap();
            assert_eq!(
                other
                    .read_snapshot(text, &secret)
                    .unwrap_err()
                    .code()
                    .as_str(),
                "ERR_SNAPSHOT_INVALID"
            );
        }
        assert_eq!(
            core.finish_snapshot("{", &SECRET)
                .unwrap_err()
                .code()
                .as_str(),
            "ERR_SNAPSHOT_INVALID"
        );
    }
}
