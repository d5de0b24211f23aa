//! [`CapToken`]: the signed token, its bearer string and its [`Fingerprint`].

use crate::error::CapTokenError;
use crate::role::Role;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The longest bearer string [`CapToken::from_bearer`] will look at.
pub const MAX_BEARER_LEN: usize = 8 * 1024;

/// The largest time or count a token may carry: JavaScript's `Number.MAX_SAFE_INTEGER`,
/// so that every token survives a trip through a JavaScript number unchanged.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The `v` value carried by tokens of the `v2` signing format.
pub const V2: u8 = 2;

/// A capability token, in the JSON shape of SPEC.md.
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
        if bearer.len() > MAX_BEARER_LEN {
            return Err(malformed("bearer is longer than the size limit"));
        }
        let json = URL_SAFE_NO_PAD
            .decode(bearer)
            .map_err(|_| malformed("bearer is not URL-safe base64 without padding"))?;
        let token: CapToken =
            serde_json::from_slice(&json).map_err(|_| malformed("bearer is not a token's JSON"))?;
        token.check_shape()?;
        Ok(token)
    }

    /// Check the fields a signature cannot vouch for the shape of.
    pub fn check_shape(&self) -> Result<(), CapTokenError> {
        if !matches!(self.v, None | Some(V2)) {
            return Err(malformed("unknown token version"));
        }
        if !is_lower_hex(&self.nonce, 32) {
            return Err(malformed("nonce is not 32 lowercase hex characters"));
        }
        if !is_lower_hex(&self.sig_hex, 64) {
            return Err(malformed("sig_hex is not 64 lowercase hex characters"));
        }
        if self.issued_at > MAX_SAFE_INTEGER || self.expire_at > MAX_SAFE_INTEGER {
            return Err(malformed("time is out of range"));
        }
        Ok(())
    }

    /// The token's public identity: hex SHA-256 of the nonce's text.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_nonce(&self.nonce)
    }

    /// Whether the token is past its expiry at `now` (Operator tokens never are).
    pub fn is_expired(&self, now: u64) -> bool {
        self.role.expires() && now >= self.expire_at
    }

    /// Whether this token is unrestricted in scope (`"*"`).
    pub fn is_unscoped(&self) -> bool {
        self.scopes.iter().any(|scope| scope == "*")
    }
}

fn malformed(reason: &'static str) -> CapTokenError {
    CapTokenError::MalformedToken { reason }
}

pub(crate) fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A token's public identity: SHA-256 of its nonce. Stores are keyed by it, and
/// every error, log line and snapshot names it instead of the nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a nonce given as its text.
    pub fn of_nonce(nonce: &str) -> Self {
        Fingerprint(Sha256::digest(nonce.as_bytes()).into())
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Build from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        let hex = base16ct::lower::encode_str(&self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(hex)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = CapTokenError;

    /// Parse 64 lowercase hex characters.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if !is_lower_hex(s, 64) {
            return Err(CapTokenError::invalid(
                "fingerprint is not 64 lowercase hex characters",
            ));
        }
        base16ct::lower::decode(s, &mut bytes)
            .map_err(|_| CapTokenError::invalid("fingerprint is not hex"))?;
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom("fingerprint is not 64 lowercase hex characters"))
    }
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
        assert!(fp.to_string().to_uppercase().parse::<Fingerprint>().is_err());
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
