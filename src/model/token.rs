//! [`CapToken`]: the signed token, its bearer string and its [`Fingerprint`].

use crate::error::CapTokenError;
pub use crate::fingerprint::Fingerprint;
use crate::role::Role;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// The longest bearer string [`CapToken::from_bearer`] will look at.
pub const MAX_BEARER_LEN: usize = 8 * 1024;

/// The largest time or count a token may carry: JavaScript's `Number.MAX_SAFE_INTEGER`,
/// so that every token survives a trip through a JavaScript number unchanged.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The `v` value carried by tokens of the `v2` signing format.
pub const V2: u8 = 2;

/// A capability token, in the JSON shape of docs/protocol.md.
///
/// `Debug` redacts the nonce: it is secret material.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapToken {
    /// `Some(2)` for the `v2` signing format; absent for `mlua-swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Who the token was minted for.
    pub agent_id: String,
    /// The holder's role; decides which verbs the gate lets through.
    pub role: Role,
    /// Free-form scopes; `"*"` means unrestricted.
    pub scopes: Vec<String>,
    /// Unix seconds at minting.
    pub issued_at: u64,
    /// Unix seconds from which the token is expired (Operator tokens excepted).
    pub expire_at: u64,
    /// `None` for unlimited, else the use budget at minting.
    pub max_uses: Option<u32>,
    /// 32 lowercase hex characters of CSPRNG output. Secret: never logged.
    /// Empty in records read back from a store.
    pub nonce: String,
    /// 64 lowercase hex characters: the HMAC-SHA256 signature.
    pub sig_hex: String,
}

impl fmt::Debug for CapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapToken")
            .field("v", &self.v)
            .field("agent_id", &self.agent_id)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("issued_at", &self.issued_at)
            .field("expire_at", &self.expire_at)
            .field("max_uses", &self.max_uses)
            .field("nonce", &"<redacted>")
            .field("sig_hex", &self.sig_hex)
            .finish()
    }
}

impl CapToken {
    /// The bearer string: URL-safe base64 without padding of the token's JSON.
    pub fn to_bearer(&self) -> String {
        // Serialising plain strings and integers cannot fail; an empty bearer
        // would simply be refused as malformed if it ever did.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decode a bearer string (step 1 of a decision). Anything that is not
    /// base64url of a well-formed token, or is longer than [`MAX_BEARER_LEN`],
    /// is [`CapTokenError::MalformedToken`].
    pub fn from_bearer(bearer: &str) -> Result<Self, CapTokenError> {
        let mut buf = Vec::new();
        TokenRef::decode(bearer, &mut buf).map(|token| token.to_owned_token())
    }

    /// Check the fields a signature cannot vouch for the shape of.
    pub fn check_shape(&self) -> Result<(), CapTokenError> {
        check_shape(self)
    }

    /// This token as a borrowed [`TokenRef`].
    pub fn as_token_ref(&self) -> TokenRef<'_> {
        TokenRef {
            v: self.v,
            agent_id: Text(Cow::Borrowed(&self.agent_id)),
            role: self.role,
            scopes: self
                .scopes
                .iter()
                .map(|scope| Text(Cow::Borrowed(scope.as_str())))
                .collect(),
            issued_at: self.issued_at,
            expire_at: self.expire_at,
            max_uses: self.max_uses,
            nonce: Text(Cow::Borrowed(&self.nonce)),
            sig_hex: Text(Cow::Borrowed(&self.sig_hex)),
        }
    }

    /// The token's public identity: hex SHA-256 of the nonce's text.
    pub fn fingerprint(&self) -> Fingerprint {
        TokenFields::fingerprint(self)
    }

    /// Whether the token is past its expiry at `now` (Operator tokens never are).
    pub fn is_expired(&self, now: u64) -> bool {
        TokenFields::is_expired(self, now)
    }
}

/// Read access to a token's fields, shared by the owned [`CapToken`] and the
/// borrowed [`TokenRef`] a decision decodes into without copying.
pub trait TokenFields {
    /// `Some(2)` for v2 tokens.
    fn v(&self) -> Option<u8>;
    /// The agent id.
    fn agent_id(&self) -> &str;
    /// The role.
    fn role(&self) -> Role;
    /// The scopes, in order.
    fn scopes(&self) -> impl ExactSizeIterator<Item = &str>;
    /// Unix seconds at minting.
    fn issued_at(&self) -> u64;
    /// Unix seconds of expiry.
    fn expire_at(&self) -> u64;
    /// The use budget at minting.
    fn max_uses(&self) -> Option<u32>;
    /// The nonce's text (secret).
    fn nonce(&self) -> &str;
    /// The signature's hex text.
    fn sig_hex(&self) -> &str;

    /// The token's public identity: hex SHA-256 of the nonce's text.
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_nonce(self.nonce())
    }

    /// Whether the token is past its expiry at `now` (Operator tokens never are).
    fn is_expired(&self, now: u64) -> bool {
        self.role().expires() && now >= self.expire_at()
    }
}

impl TokenFields for CapToken {
    fn v(&self) -> Option<u8> {
        self.v
    }
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
    fn role(&self) -> Role {
        self.role
    }
    fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.scopes.iter().map(String::as_str)
    }
    fn issued_at(&self) -> u64 {
        self.issued_at
    }
    fn expire_at(&self) -> u64 {
        self.expire_at
    }
    fn max_uses(&self) -> Option<u32> {
        self.max_uses
    }
    fn nonce(&self) -> &str {
        &self.nonce
    }
    fn sig_hex(&self) -> &str {
        &self.sig_hex
    }
}

/// A string field of a [`TokenRef`]: borrowed from the decoded JSON unless it
/// had escapes to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A token decoded from a bearer without copying its strings: what every
/// decision works on. [`CapToken`] is its owned twin.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRef<'a> {
    v: Option<u8>,
    agent_id: Text<'a>,
    role: Role,
    scopes: Vec<Text<'a>>,
    issued_at: u64,
    expire_at: u64,
    max_uses: Option<u32>,
    nonce: Text<'a>,
    sig_hex: Text<'a>,
}

impl fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_owned_token(), f)
    }
}

/// Reads a token's JSON object, refusing any key that is not the next one in
/// the canonical order (`v` (v2 only), `agent_id`, `role`, `scopes`,
/// `issued_at`, `expire_at`, `max_uses`, `nonce`, `sig_hex`): a missing,
/// extra, repeated or reordered key is not the canonical spelling. (Spaces and escapes are caught by the length
/// check in [`TokenRef::decode`].)
struct InOrder;

impl<'de> serde::de::Visitor<'de> for InOrder {
    type Value = TokenRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token object with its keys in order")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        // `v` is optional and first; every other key must follow in order.
        let first = map.next_key::<Text<'de>>()?;
        let v = match first.as_ref().map(|key| &*key.0) {
            Some("v") => {
                let v = map.next_value::<u8>()?;
                expect_key(&mut map, "agent_id")?;
                Some(v)
            }
            Some("agent_id") => None,
            _ => return Err(A::Error::custom("keys out of order")),
        };
        let agent_id = map.next_value()?;
        expect_key(&mut map, "role")?;
        // The wire name only: the capitalised aliases `Role` also reads
        // (record JSON) are the same length, so the length check cannot
        // tell them apart.
        let role_name = map.next_value::<Text<'de>>()?;
        let role = Role::ALL
            .into_iter()
            .find(|role| role.as_str() == role_name.0)
            .ok_or_else(|| A::Error::custom("unknown role"))?;
        expect_key(&mut map, "scopes")?;
        let scopes = map.next_value()?;
        expect_key(&mut map, "issued_at")?;
        let issued_at = map.next_value()?;
        expect_key(&mut map, "expire_at")?;
        let expire_at = map.next_value()?;
        expect_key(&mut map, "max_uses")?;
        let max_uses = map.next_value()?;
        expect_key(&mut map, "nonce")?;
        let nonce = map.next_value()?;
        expect_key(&mut map, "sig_hex")?;
        let sig_hex = map.next_value()?;
        if map.next_key::<Text<'de>>()?.is_some() {
            return Err(A::Error::custom("unknown field"));
        }
        Ok(TokenRef {
            v,
            agent_id,
            role,
            scopes,
            issued_at,
            expire_at,
            max_uses,
            nonce,
            sig_hex,
        })
    }
}

/// The next key of `map`, which must be `key`.
fn expect_key<'de, A: serde::de::MapAccess<'de>>(map: &mut A, key: &str) -> Result<(), A::Error> {
    match map.next_key::<Text<'de>>()? {
        Some(found) if *found.0 == *key => Ok(()),
        _ => Err(serde::de::Error::custom("keys out of order")),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TokenRef<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(InOrder)
    }
}

/// The length of `text` as serde_json writes it: quoted, with `"`, `\\` and
/// control characters escaped (short escapes where JSON has them).
fn json_string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Whether JSON text holds a `\uXXXX` escape with a capital hex digit (an
/// escaped backslash followed by `u` is not an escape).
fn has_capital_unicode_escape(json: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        if byte != b'\\' {
            at += 1;
        } else if json.get(at + 1) == Some(&b'u') {
            if json
                .get(at + 2..at + 6)
                .is_some_and(|hex| hex.iter().any(u8::is_ascii_uppercase))
            {
                return true;
            }
            at += 6;
        } else {
            at += 2;
        }
    }
    false
}

/// The number of decimal digits of `n`. (`ilog10`, not a loop of divisions:
/// a 64-bit division costs tens of cycles, and this runs on every decision.)
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

impl<'a> TokenRef<'a> {
    /// Step 1 of a decision: base64url-decode `bearer` into `buf` and parse
    /// the token from it, borrowing its strings from `buf`. The bearer must
    /// be the token's one canonical spelling (docs/protocol.md, "Bearer"):
    /// any other spelling of the same token (spaces, key order, escapes) is
    /// malformed, so nothing keyed by bearer text can be bypassed.
    pub fn decode(bearer: &str, buf: &'a mut Vec<u8>) -> Result<Self, CapTokenError> {
        if bearer.len() > MAX_BEARER_LEN {
            return Err(malformed("bearer is longer than the size limit"));
        }
        buf.clear();
        // URL-safe, no padding, and (the engine's default) no stray bits in
        // the last character: one base64 text per byte string.
        URL_SAFE_NO_PAD
            .decode_vec(bearer, buf)
            .map_err(|_| malformed("bearer is not URL-safe base64 without padding"))?;
        // As text: the module then holds one instance of serde_json's parser
        // (every other input is text). JSON that from_slice would accept is
        // UTF-8 throughout, and StrRead skips the per-string UTF-8 check.
        let json: &'a [u8] = buf;
        let token: TokenRef<'a> = core::str::from_utf8(json)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or(malformed("bearer is not a token's JSON"))?;
        check_shape(&token)?;
        // Every key is there, in order (the parse checked it), so the text
        // can differ from the canonical one only by whitespace or by other
        // escapes, number or null spellings, each of which is longer than
        // serde_json's: equal length means equal text. (The fuzz target
        // bearer_decode checks that every decoded bearer re-encodes to itself.)
        if json.len() != token.canonical_len() {
            return Err(malformed("bearer is not the token's canonical spelling"));
        }
        // One spelling has the same length: a `\u00XX` escape with capital
        // hex digits (serde_json writes small ones). Only a control
        // character other than the five with short escapes is written so.
        let long_escaped = |text: &str| {
            text.bytes()
                .any(|byte| byte < 0x20 && !matches!(byte, 0x08 | 0x0c | b'\n' | b'\r' | b'\t'))
        };
        if (long_escaped(&token.agent_id.0) || token.scopes.iter().any(|s| long_escaped(&s.0)))
            && has_capital_unicode_escape(json)
        {
            return Err(malformed("bearer is not the token's canonical spelling"));
        }
        Ok(token)
    }

    /// The length of this token's canonical JSON text.
    fn canonical_len(&self) -> usize {
        let value = |key: &str, len: usize| key.len() + 3 + len;
        let scopes = self
            .scopes
            .iter()
            .map(|scope| json_string_len(&scope.0))
            .sum::<usize>()
            + self.scopes.len().saturating_sub(1)
            + 2;
        let fields = [
            self.v.map_or(0, |v| value("v", digits(u64::from(v))) + 1),
            value("agent_id", json_string_len(&self.agent_id.0)),
            value("role", self.role.as_str().len() + 2),
            value("scopes", scopes),
            value("issued_at", digits(self.issued_at)),
            value("expire_at", digits(self.expire_at)),
            value(
                "max_uses",
                self.max_uses.map_or(4, |n| digits(u64::from(n))),
            ),
            // Lowercase hex (checked by check_shape): nothing to escape.
            value("nonce", self.nonce.0.len() + 2),
            value("sig_hex", self.sig_hex.0.len() + 2),
        ];
        // Braces, and a comma between the eight fields always there.
        2 + 7 + fields.iter().sum::<usize>()
    }

    /// The owned twin.
    pub fn to_owned_token(&self) -> CapToken {
        CapToken {
            v: self.v,
            agent_id: self.agent_id.0.to_string(),
            role: self.role,
            scopes: self.scopes.iter().map(|s| s.0.to_string()).collect(),
            issued_at: self.issued_at,
            expire_at: self.expire_at,
            max_uses: self.max_uses,
            nonce: self.nonce.0.to_string(),
            sig_hex: self.sig_hex.0.to_string(),
        }
    }
}

impl TokenFields for TokenRef<'_> {
    fn v(&self) -> Option<u8> {
        self.v
    }
    fn agent_id(&self) -> &str {
        &self.agent_id.0
    }
    fn role(&self) -> Role {
        self.role
    }
    fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.scopes.iter().map(|scope| &*scope.0)
    }
    fn issued_at(&self) -> u64 {
        self.issued_at
    }
    fn expire_at(&self) -> u64 {
        self.expire_at
    }
    fn max_uses(&self) -> Option<u32> {
        self.max_uses
    }
    fn nonce(&self) -> &str {
        &self.nonce.0
    }
    fn sig_hex(&self) -> &str {
        &self.sig_hex.0
    }
}

/// Check the fields a signature cannot vouch for the shape of.
fn check_shape(token: &impl TokenFields) -> Result<(), CapTokenError> {
    if !matches!(token.v(), None | Some(V2)) {
        return Err(malformed("unknown token version"));
    }
    if !is_lower_hex(token.nonce(), 32) {
        return Err(malformed("nonce is not 32 lowercase hex characters"));
    }
    if !is_lower_hex(token.sig_hex(), 64) {
        return Err(malformed("sig_hex is not 64 lowercase hex characters"));
    }
    if token.issued_at() > MAX_SAFE_INTEGER || token.expire_at() > MAX_SAFE_INTEGER {
        return Err(malformed("time is out of range"));
    }
    Ok(())
}

fn malformed(reason: &'static str) -> CapTokenError {
    CapTokenError::MalformedToken { reason }
}

pub(crate) fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn sample() -> CapToken {
        CapToken {
            v: Some(2),
            agent_id: "agent-7".into(),
            role: Role::Worker,
            scopes: vec!["read".into(), "write".into()],
            issued_at: 1_764_150_000,
            expire_at: 1_764_151_800,
            max_uses: Some(3),
            nonce: "00112233445566778899aabbccddeeff".into(),
            sig_hex: "ab".repeat(32),
        }
    }

    #[test]
    fn fingerprint_matches_spec_vector() {
        assert_eq!(
            Fingerprint::of_nonce("00112233445566778899aabbccddeeff").to_string(),
            "5947d7c33d783f94b3b4c1a96ebc8991ed28f1b069b71e03376cba8caa98a720"
        );
    }

    #[test]
    fn bearer_round_trips_and_is_url_safe_unpadded() {
        let token = sample();
        let bearer = token.to_bearer();
        assert!(bearer
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(CapToken::from_bearer(&bearer).unwrap(), token);
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&bearer).unwrap()).unwrap();
        assert_eq!(json["role"], "worker");
        assert_eq!(json["v"], 2);
        assert_eq!(json["max_uses"], 3);
    }

    #[test]
    fn v_is_omitted_for_mlua_swarm_tokens() {
        let mut token = sample();
        token.v = None;
        let json = serde_json::to_string(&token).unwrap();
        assert!(!json.contains("\"v\""));
        assert_eq!(CapToken::from_bearer(&token.to_bearer()).unwrap(), token);
    }

    fn bearer_of(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn bad_bearers_are_malformed() {
        let good = serde_json::to_value(sample()).unwrap();
        let mut cases: Vec<String> = vec![
            String::new(),
            "!!!".into(),
            format!("{}=", sample().to_bearer()),
            "a".repeat(MAX_BEARER_LEN + 1),
            bearer_of("null"),
            bearer_of("[]"),
            bearer_of("{}"),
            bearer_of("not json"),
        ];
        let mut variants: Vec<(&str, serde_json::Value)> = vec![
            ("v", 3.into()),
            ("role", "admin".into()),
            ("role", "WORKER".into()),
            ("nonce", "00112233".into()),
            ("nonce", "00112233445566778899AABBCCDDEEFF".into()),
            ("sig_hex", "zz".repeat(32).into()),
            ("issued_at", (-1).into()),
            ("expire_at", (MAX_SAFE_INTEGER + 1).into()),
            ("max_uses", (u64::from(u32::MAX) + 1).into()),
            ("max_uses", 1.5.into()),
            ("scopes", "*".into()),
            ("agent_id", 7.into()),
            ("extra", true.into()),
        ];
        for (field, value) in variants.drain(..) {
            let mut json = good.clone();
            json[field] = value;
            cases.push(bearer_of(&json.to_string()));
        }
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("nonce");
        cases.push(bearer_of(&missing.to_string()));
        for bearer in cases {
            let err = CapToken::from_bearer(&bearer).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedToken, "{bearer}");
        }
    }

    /// The length check of `decode` stands in for re-serialising: it must
    /// agree with serde_json's text for every kind of string and number.
    #[test]
    fn canonical_len_is_the_length_of_the_canonical_text() {
        let texts = [
            "",
            "a",
            "agent-7",
            "q\"uote",
            "back\\slash",
            "slash/",
            "tab\t",
            "nl\n",
            "cr\r",
            "\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "é",
            "日本",
            "🦀",
            "|,*",
            "a b",
        ];
        for agent_id in texts {
            for scopes in [vec![], vec!["*"], vec!["read", "wr\"ite"], texts.to_vec()] {
                for (v, max_uses, at) in [
                    (Some(V2), None, 0),
                    (None, Some(0), 9),
                    (Some(V2), Some(u32::MAX), MAX_SAFE_INTEGER),
                    (None, Some(10), 1_764_150_000),
                ] {
                    let mut token = sample();
                    token.v = v;
                    token.agent_id = agent_id.into();
                    token.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
                    token.max_uses = max_uses;
                    token.issued_at = at;
                    token.expire_at = at / 2;
                    let json = serde_json::to_vec(&token).unwrap();
                    let mut buf = Vec::new();
                    let decoded = TokenRef::decode(&token.to_bearer(), &mut buf).unwrap();
                    assert_eq!(decoded.canonical_len(), json.len(), "{token:?}");
                }
            }
        }
    }

    #[test]
    fn debug_redacts_the_nonce() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("00112233445566778899aabbccddeeff"));
        assert!(text.contains("redacted"));
    }

    #[test]
    fn fingerprint_parses_only_lowercase_hex() {
        let fp = Fingerprint::of_nonce("x");
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        assert!(fp
            .to_string()
            .to_uppercase()
            .parse::<Fingerprint>()
            .is_err());
        assert!("abc".parse::<Fingerprint>().is_err());
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn operator_tokens_never_expire() {
        let mut token = sample();
        assert!(token.is_expired(token.expire_at));
        assert!(!token.is_expired(token.expire_at - 1));
        token.role = Role::Operator;
        assert!(!token.is_expired(u64::MAX));
    }
}
