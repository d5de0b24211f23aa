//! Forged and tampered tokens on the Rust side, in both signing formats:
//!
//! * every single-field change of a valid token (each field set to a few
//!   other values, removed, or joined by an extra field) is refused by
//!   `verify` and `check` with `ERR_MALFORMED_TOKEN` or `ERR_BAD_SIGNATURE`;
//! * so is every bit flip of the bearer's JSON bytes and every change of one
//!   character of the bearer string to any other base64url character;
//! * a token signed with another secret, or in the other format with the same
//!   secret, is a bad signature;
//! * no refusal spends or changes anything, and no error names a nonce or
//!   the secret.
//!
//! A token has one bearer string (docs/protocol.md, "Bearer"): any other
//! spelling of a valid token (spaces, key order, escapes, the role's
//! capitals, padding) is `ERR_MALFORMED_TOKEN`, in both formats.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use captoken::{
    CapToken, CapTokenError, ErrorCode, FixedClock, MintOptions, Minted, Role, SigningFormat,
    StoreConfig, TokenStore, Verb,
};
use common::{state_text, store_on, OTHER_SECRET, SECRET, T0};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn config(format: SigningFormat) -> StoreConfig {
    StoreConfig {
        format,
        ..StoreConfig::default()
    }
}

/// A store with an operator, a root task, a worker (3 uses) and a one-time
/// worker, and the calls each token may make.
struct World {
    store: TokenStore,
    targets: Vec<(Minted, Verb, Option<&'static str>)>,
    nonces: Vec<String>,
}

fn world(format: SigningFormat) -> World {
    let clock = Arc::new(FixedClock::new(T0));
    let mut store = store_on(&SECRET, config(format), &clock);
    let op = store
        .attach_operator("op-1", MintOptions::default())
        .unwrap();
    store.start_task(&op.bearer, Some("root")).unwrap();
    let worker = store
        .dispatch_attempt(
            &op.bearer,
            "root",
            MintOptions {
                max_uses: Some(3),
                ..MintOptions::default()
            },
        )
        .unwrap();
    let once = store
        .mint(
            "agent-7",
            Role::Worker,
            MintOptions {
                max_uses: Some(1),
                task_id: Some("root".into()),
                scopes: Some(vec!["read".into(), "write".into()]),
                ttl_secs: None,
            },
        )
        .unwrap();
    let nonces = [&op, &worker, &once]
        .iter()
        .map(|m| m.token.nonce.clone())
        .collect();
    World {
        store,
        targets: vec![
            (worker, Verb::FetchPrompt, Some("root")),
            (op, Verb::Heartbeat, None),
            (once, Verb::PostResult, Some("root")),
        ],
        nonces,
    }
}

fn json_text(bearer: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(bearer).unwrap()
}

impl World {
    /// `verify` and `check` both refuse `bearer` as malformed or badly
    /// signed, with the same code, changing nothing, naming no secret.
    fn refused(&mut self, bearer: &str, verb: Verb, task: Option<&str>, what: &str) -> ErrorCode {
        let before = state_text(&mut self.store);
        let error = match self.store.verify(bearer, verb, task) {
            Ok(grant) => panic!("{what} was allowed: {grant:?}"),
            Err(error) => error,
        };
        assert!(
            matches!(
                error.code(),
                ErrorCode::MalformedToken | ErrorCode::BadSignature
            ),
            "{what} was refused as {:?}",
            error.code()
        );
        let checked = self.store.check(bearer, verb, task).unwrap_err();
        assert_eq!(checked.code(), error.code(), "{what}: check disagrees");
        assert_eq!(
            state_text(&mut self.store),
            before,
            "{what}: a refusal changed the state"
        );
        self.no_secrets(&error);
        error.code()
    }

    fn no_secrets(&self, error: &CapTokenError) {
        let text = format!("{error} {error:?}");
        for nonce in &self.nonces {
            assert!(
                !text.contains(nonce.as_str()),
                "an error names a nonce: {text}"
            );
        }
        for secret in [&SECRET[..], &OTHER_SECRET[..]] {
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            let joined: Vec<String> = secret.iter().map(u8::to_string).collect();
            assert!(!text.contains(&hex), "an error names the secret: {text}");
            assert!(
                !text.contains(&joined.join(",")),
                "an error names the secret: {text}"
            );
            assert!(
                !text.contains(&joined.join(", ")),
                "an error names the secret: {text}"
            );
        }
    }

    /// Nothing was spent: each target decides as when it was minted.
    fn untouched(&mut self) {
        for (minted, verb, task) in &self.targets {
            let grant = self.store.check(&minted.bearer, *verb, *task).unwrap();
            let record = self.store.record(&minted.fingerprint).unwrap();
            assert_eq!(grant.uses_left, minted.token.max_uses);
            assert_eq!(record.uses_left, minted.token.max_uses);
            assert!(!record.revoked);
        }
    }
}

/// Other values for one field: same type, other types, and absence (`None`).
fn alternatives(field: &str, value: &Value) -> Vec<Option<Value>> {
    let text = value.as_str().unwrap_or_default();
    let number = value.as_u64().unwrap_or_default();
    let mut values: Vec<Value> = match field {
        "v" => vec![
            json!(1),
            json!(3),
            json!("2"),
            json!(2.5),
            json!(0),
            json!(256),
        ],
        "agent_id" => vec![
            json!(""),
            json!("agent-8"),
            json!(format!("{text} ")),
            json!(text.to_uppercase()),
            json!(format!("{text}|Worker")),
            json!("a".repeat(300)),
        ],
        "role" => {
            let mut roles: Vec<Value> = Role::ALL
                .iter()
                .flat_map(|r| [json!(r.as_str()), json!(r.capitalised())])
                .collect();
            roles.extend([json!("WORKER"), json!("admin"), json!("")]);
            roles
        }
        "scopes" => vec![
            json!(["*"]),
            json!(["read"]),
            json!(["read", "write"]),
            json!(["read,write"]),
            json!([]),
            json!(["*", "*"]),
            json!([""]),
            json!("*"),
            json!([1]),
        ],
        "issued_at" | "expire_at" => vec![
            json!(number + 1),
            json!(number - 1),
            json!(0),
            json!((1u64 << 53) - 1),
            json!(1u64 << 53),
            json!(-1),
            json!(number as f64 + 0.5),
            json!(number.to_string()),
        ],
        "max_uses" => vec![
            json!(null),
            json!(0),
            json!(1),
            json!(2),
            json!(3),
            json!(4),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(-1),
        ],
        "nonce" | "sig_hex" => {
            let last = if text.ends_with('0') { "1" } else { "0" };
            vec![
                json!("0".repeat(text.len())),
                json!(text.to_uppercase()),
                json!(&text[1..]),
                json!(format!("{text}0")),
                json!(format!("{}{last}", &text[..text.len() - 1])),
                json!("g".repeat(text.len())),
            ]
        }
        _ => Vec::new(),
    };
    values.extend([
        json!(null),
        json!(true),
        json!("x"),
        json!(0),
        json!([]),
        json!({}),
    ]);
    values.retain(|alt| alt != value);
    values.dedup();
    let mut all: Vec<Option<Value>> = values.into_iter().map(Some).collect();
    all.push(None);
    all
}

fn sweep_field_changes(format: SigningFormat) {
    let mut w = world(format);
    for (minted, verb, task) in w.targets.clone() {
        let json: BTreeMap<String, Value> =
            serde_json::from_slice(&json_text(&minted.bearer)).unwrap();
        let mut probes = 0;
        for (field, value) in &json {
            for alt in alternatives(field, value) {
                let mut changed = json.clone();
                match &alt {
                    Some(alt) => changed.insert(field.clone(), alt.clone()),
                    None => changed.remove(field),
                };
                let text = serde_json::to_string(&changed).unwrap();
                let bearer = URL_SAFE_NO_PAD.encode(&text);
                let what = format!("{format:?} {field} = {alt:?}");
                // The same change written in the token's own key order too.
                let ordered = reorder_like(&minted.bearer, &changed);
                for bearer in [bearer, ordered] {
                    assert_ne!(
                        CapToken::from_bearer(&bearer).ok().as_ref(),
                        Some(&minted.token),
                        "{what}: another bearer of the same token"
                    );
                    w.refused(&bearer, verb, task, &what);
                }
                probes += 1;
            }
        }
        for (key, extra) in [
            ("extra", json!(1)),
            ("v", json!(2)),
            ("v", json!(null)),
            ("task_id", json!("root")),
            ("fingerprint", json!(minted.fingerprint.to_string())),
        ] {
            if json.contains_key(key) {
                continue;
            }
            let mut changed = json.clone();
            changed.insert(key.into(), extra);
            let bearer = URL_SAFE_NO_PAD.encode(serde_json::to_string(&changed).unwrap());
            w.refused(&bearer, verb, task, &format!("{format:?} added {key}"));
            probes += 1;
        }
        assert!(probes > 60, "only {probes} field changes");
    }
    w.untouched();
}

/// `changed` serialised with its keys in the order of `bearer`'s JSON (then
/// any new key), so that a change is tried in the canonical layout too.
fn reorder_like(bearer: &str, changed: &BTreeMap<String, Value>) -> String {
    let original: Value = serde_json::from_slice(&json_text(bearer)).unwrap();
    let token: CapToken = serde_json::from_value(original).unwrap();
    let order: Vec<&str> = {
        let text = serde_json::to_string(&token).unwrap();
        let mut keys: Vec<(usize, &str)> = changed
            .keys()
            .map(|k| {
                (
                    text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX),
                    k.as_str(),
                )
            })
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| k).collect()
    };
    let body: Vec<String> = order
        .iter()
        .map(|k| format!("{}:{}", json!(k), changed[*k]))
        .collect();
    URL_SAFE_NO_PAD.encode(format!("{{{}}}", body.join(",")))
}

#[test]
fn every_single_field_change_is_refused_v2() {
    sweep_field_changes(SigningFormat::V2);
}

#[test]
fn every_single_field_change_is_refused_mlua_swarm() {
    sweep_field_changes(SigningFormat::MluaSwarm);
}

fn sweep_bit_flips(format: SigningFormat) {
    let mut w = world(format);
    for (minted, verb, task) in w.targets.clone() {
        let bytes = json_text(&minted.bearer);
        let (mut malformed, mut bad_signature) = (0, 0);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                let bearer = URL_SAFE_NO_PAD.encode(&flipped);
                // The decoder alone: an error, or another token.
                assert_ne!(
                    CapToken::from_bearer(&bearer).ok().as_ref(),
                    Some(&minted.token),
                    "byte {i} bit {bit}: another bearer of the same token"
                );
                match w.refused(
                    &bearer,
                    verb,
                    task,
                    &format!("{format:?} byte {i} bit {bit}"),
                ) {
                    ErrorCode::MalformedToken => malformed += 1,
                    _ => bad_signature += 1,
                }
            }
        }
        assert!(malformed > 0 && bad_signature > 0);
    }
    w.untouched();
}

#[test]
fn every_bit_flip_is_refused_v2() {
    sweep_bit_flips(SigningFormat::V2);
}

#[test]
fn every_bit_flip_is_refused_mlua_swarm() {
    sweep_bit_flips(SigningFormat::MluaSwarm);
}

fn sweep_character_changes(format: SigningFormat) {
    let mut w = world(format);
    for (minted, verb, task) in w.targets.clone() {
        let bearer = minted.bearer.as_bytes();
        for i in 0..bearer.len() {
            for &c in BASE64URL.iter().chain(b"=+/. \n") {
                if c == bearer[i] {
                    continue;
                }
                let mut changed = bearer.to_vec();
                changed[i] = c;
                let changed = String::from_utf8(changed).unwrap();
                let what = format!("{format:?} position {i} -> {}", c as char);
                let error = w.store.verify(&changed, verb, task).expect_err(&what);
                assert!(
                    matches!(
                        error.code(),
                        ErrorCode::MalformedToken | ErrorCode::BadSignature
                    ),
                    "{what}: {:?}",
                    error.code()
                );
            }
        }
        let text = &minted.bearer;
        for changed in [
            text[..text.len() - 1].to_owned(),
            text[1..].to_owned(),
            format!("{text}A"),
            format!("{text}="),
            format!("A{text}"),
            text.repeat(2),
        ] {
            w.refused(&changed, verb, task, "truncated or extended");
        }
    }
    w.untouched();
}

#[test]
fn every_character_change_is_refused_v2() {
    sweep_character_changes(SigningFormat::V2);
}

#[test]
fn every_character_change_is_refused_mlua_swarm() {
    sweep_character_changes(SigningFormat::MluaSwarm);
}

#[test]
fn v2_tokens_have_one_encoding() {
    let w = world(SigningFormat::V2);
    let (minted, _, _) = &w.targets[0];
    let text = String::from_utf8(json_text(&minted.bearer)).unwrap();
    for (from, to) in [
        ("\"role\":\"worker\"", "\"role\":\"Worker\""),
        ("\"max_uses\":3,", ""),
        ("\"v\":2,", "\"v\":null,"),
    ] {
        assert!(text.contains(from));
        let bearer = URL_SAFE_NO_PAD.encode(text.replacen(from, to, 1));
        let error = CapToken::from_bearer(&bearer).unwrap_err();
        assert_eq!(error.code(), ErrorCode::MalformedToken, "{to}");
    }
}

#[test]
fn tokens_signed_elsewhere_are_bad_signatures() {
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let mut w = world(format);
        let clock = Arc::new(FixedClock::new(T0));
        let mut elsewhere = store_on(&OTHER_SECRET, config(format), &clock);
        let other_format = match format {
            SigningFormat::V2 => SigningFormat::MluaSwarm,
            SigningFormat::MluaSwarm => SigningFormat::V2,
        };
        let mut sibling = store_on(&SECRET, config(other_format), &clock);
        let mut foreign = Vec::new();
        for store in [&mut elsewhere, &mut sibling] {
            let op = store
                .attach_operator("op-1", MintOptions::default())
                .unwrap();
            let worker = store
                .mint(
                    "worker-of-root",
                    Role::Worker,
                    MintOptions {
                        max_uses: Some(3),
                        task_id: Some("root".into()),
                        ..MintOptions::default()
                    },
                )
                .unwrap();
            w.nonces.push(op.token.nonce.clone());
            w.nonces.push(worker.token.nonce.clone());
            foreign.push(op);
            foreign.push(worker);
        }
        // Our own worker's fields and nonce under the other secret's signature.
        let (ours, _, _) = w.targets[0].clone();
        let mut stolen = ours.token.clone();
        stolen.sig_hex = foreign[1].token.sig_hex.clone();
        for minted in &foreign {
            for (verb, task) in [(Verb::FetchPrompt, Some("root")), (Verb::Heartbeat, None)] {
                let before = state_text(&mut w.store);
                let error = w.store.verify(&minted.bearer, verb, task).unwrap_err();
                assert_eq!(error.code(), ErrorCode::BadSignature);
                assert_eq!(
                    w.store
                        .check(&minted.bearer, verb, task)
                        .unwrap_err()
                        .code(),
                    ErrorCode::BadSignature
                );
                w.no_secrets(&error);
                assert_eq!(state_text(&mut w.store), before);
            }
            for result in [
                w.store.adopt(&minted.bearer, Some("root")).map(|_| ()),
                w.store.remint(&minted.bearer).map(|_| ()),
                w.store.start_task(&minted.bearer, None).map(|_| ()),
                w.store
                    .dispatch_attempt(&minted.bearer, "root", MintOptions::default())
                    .map(|_| ()),
            ] {
                assert_eq!(result.unwrap_err().code(), ErrorCode::BadSignature);
            }
        }
        assert_eq!(
            w.store
                .verify(&stolen.to_bearer(), Verb::FetchPrompt, Some("root"))
                .unwrap_err()
                .code(),
            ErrorCode::BadSignature
        );
        // And ours is refused there.
        assert_eq!(
            elsewhere
                .verify(&ours.bearer, Verb::FetchPrompt, Some("root"))
                .unwrap_err()
                .code(),
            ErrorCode::BadSignature
        );
        assert_eq!(
            sibling
                .verify(&ours.bearer, Verb::FetchPrompt, Some("root"))
                .unwrap_err()
                .code(),
            ErrorCode::BadSignature
        );
        w.untouched();
        let snapshot = w.store.snapshot().unwrap();
        for nonce in &w.nonces {
            assert!(
                !snapshot.contains(nonce.as_str()),
                "a snapshot holds a nonce"
            );
        }
    }
}

/// One token, one bearer string: every other spelling of a valid token is
/// malformed, so nothing keyed by bearer text (a deny-list, a cache) can be
/// bypassed by respelling it. The canonical one still decides.
fn sweep_respellings(format: SigningFormat) {
    let mut w = world(format);
    for (minted, verb, task) in w.targets.clone() {
        let text = String::from_utf8(json_text(&minted.bearer)).unwrap();
        let role = minted.token.role;
        let mut respelled = vec![
            ("a space after a colon", text.replacen("\":", "\": ", 1)),
            ("a leading space", format!(" {text}")),
            ("a trailing newline", format!("{text}\n")),
            (
                "an escaped letter",
                text.replacen("\"agent_id\"", "\"\\u0061gent_id\"", 1),
            ),
            (
                "an escaped value",
                text.replacen(
                    &format!("\"role\":\"{}\"", role.as_str()),
                    &format!(
                        "\"role\":\"\\u{:04x}{}\"",
                        role.as_str().as_bytes()[0],
                        &role.as_str()[1..]
                    ),
                    1,
                ),
            ),
            (
                "the role's capitals",
                text.replacen(
                    &format!("\"role\":\"{}\"", role.as_str()),
                    &format!("\"role\":\"{}\"", role.capitalised()),
                    1,
                ),
            ),
            ("another key order", {
                let json: Value = serde_json::from_str(&text).unwrap();
                serde_json::to_string(&json).unwrap()
            }),
        ];
        if minted.token.max_uses.is_none() {
            respelled.push((
                "max_uses left out",
                text.replacen(",\"max_uses\":null", "", 1),
            ));
        }
        for (what, json) in respelled {
            assert_ne!(json, text, "{what}: the respelling changed nothing");
            let bearer = URL_SAFE_NO_PAD.encode(&json);
            let code = w.refused(&bearer, verb, task, what);
            assert_eq!(code, ErrorCode::MalformedToken, "{what}");
        }
        // Padding and the standard alphabet spell the same bytes too.
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&text);
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&text);
        for bearer in [padded, standard] {
            if bearer != minted.bearer {
                w.refused(&bearer, verb, task, "another base64");
            }
        }
        w.store.check(&minted.bearer, verb, task).unwrap();
    }
    w.untouched();
}

#[test]
fn every_respelling_of_a_token_is_malformed_v2() {
    sweep_respellings(SigningFormat::V2);
}

#[test]
fn every_respelling_of_a_token_is_malformed_mlua_swarm() {
    sweep_respellings(SigningFormat::MluaSwarm);
}

/// A control character without a short escape is written `\u00xx`: the
/// same escape with capital hex digits has the same length, and is another
/// spelling all the same. A backslash followed by `u` in the text itself is
/// no escape, and its bearer decides.
#[test]
fn capital_hex_in_a_unicode_escape_is_another_spelling() {
    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let clock = Arc::new(FixedClock::new(T0));
        let mut store = store_on(&SECRET, config(format), &clock);
        let minted = store
            .mint(
                "job\u{b}1",
                Role::Observer,
                MintOptions {
                    scopes: Some(vec!["a\u{1f}".into(), "\\uABCD".into()]),
                    ..MintOptions::default()
                },
            )
            .unwrap();
        let text = String::from_utf8(json_text(&minted.bearer)).unwrap();
        assert!(
            text.contains("job\\u000b1") && text.contains("a\\u001f") && text.contains("\\\\uABCD")
        );
        store.check(&minted.bearer, Verb::ReadTrace, None).unwrap();
        for (from, to) in [("\\u000b", "\\u000B"), ("\\u001f", "\\u001F")] {
            let bearer = URL_SAFE_NO_PAD.encode(text.replacen(from, to, 1));
            let refused = store.check(&bearer, Verb::ReadTrace, None).unwrap_err();
            assert_eq!(refused.code(), ErrorCode::MalformedToken, "{format:?} {to}");
        }
    }
}
