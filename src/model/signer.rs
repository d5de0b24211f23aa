//! [`Signer`]: HMAC-SHA256 over a token, in the `v2` or the `mlua-swarm` format.

use crate::error::CapTokenError;
use crate::token::{CapToken, TokenFields, V2};
use core::fmt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The shortest secret a [`Signer`] accepts, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// The bytes a `v2` signing input starts with.
pub const V2_DOMAIN: &[u8] = b"captoken-v2";

/// Which bytes a signature covers. A store mints and accepts exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SigningFormat {
    /// Length-prefixed binary encoding, unambiguous; tokens carry `"v": 2`.
    #[default]
    #[serde(rename = "v2")]
    V2,
    /// The reference engine's `|`-joined text, for wire compatibility with it.
    #[serde(rename = "mlua-swarm")]
    MluaSwarm,
}

impl SigningFormat {
    /// The wire name: `"v2"` or `"mlua-swarm"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningFormat::V2 => "v2",
            SigningFormat::MluaSwarm => "mlua-swarm",
        }
    }

    /// Parse a wire name.
    pub fn parse(name: &str) -> Result<Self, CapTokenError> {
        match name {
            "v2" => Ok(SigningFormat::V2),
            "mlua-swarm" => Ok(SigningFormat::MluaSwarm),
            _ => Err(CapTokenError::invalid(
                "format must be \"v2\" or \"mlua-swarm\"",
            )),
        }
    }

    /// Whether a token with this agent id and these scopes signs a text
    /// that cannot be re-read with its fields shifted. Always so in `v2`; in
    /// `mlua-swarm`, only without `|` in the agent id or any scope and
    /// without `,` in any scope. Without this rule a Worker whose agent id
    /// is `worker-of-x|Operator|*` would hold a valid Operator token.
    pub fn is_unambiguous<'s>(
        self,
        agent_id: &str,
        mut scopes: impl Iterator<Item = &'s str>,
    ) -> bool {
        match self {
            SigningFormat::V2 => true,
            SigningFormat::MluaSwarm => {
                !agent_id.contains('|') && scopes.all(|scope| !scope.contains(['|', ',']))
            }
        }
    }

    /// The `v` field tokens of this format carry.
    pub const fn version_field(self) -> Option<u8> {
        match self {
            SigningFormat::V2 => Some(V2),
            SigningFormat::MluaSwarm => None,
        }
    }
}

/// Signs and verifies tokens with one secret in one format.
///
/// The HMAC key schedule is computed once at construction; each signature
/// clones that state instead of rehashing the key.
#[derive(Clone)]
pub struct Signer {
    keyed: Hmac<Sha256>,
    format: SigningFormat,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer keyed by `secret`, which must be at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8], format: SigningFormat) -> Result<Self, CapTokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(CapTokenError::invalid("secret must be at least 32 bytes"));
        }
        let keyed = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| CapTokenError::invalid("secret is not a usable HMAC key"))?;
        Ok(Signer { keyed, format })
    }

    /// The format this signer mints and accepts.
    pub fn format(&self) -> SigningFormat {
        self.format
    }

    /// The signature of `token` in this signer's format (its `sig_hex` is ignored).
    pub fn signature(&self, token: &impl TokenFields) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        match self.format {
            SigningFormat::V2 => write_v2(token, &mut |bytes| mac.update(bytes)),
            SigningFormat::MluaSwarm => {
                // Writing into a MAC cannot fail.
                let _ = write_mlua_swarm(token, &mut MacWriter(&mut mac));
            }
        }
        mac.finalize().into_bytes().into()
    }

    /// Set `token.v` and `token.sig_hex` for this signer's format.
    pub fn seal(&self, token: &mut CapToken) {
        token.v = self.format.version_field();
        let mut buf = [0u8; 64];
        // Signed as the borrowed TokenRef a decision verifies, so the module
        // holds one instance of the signing code, not one per token type.
        let signature = self.signature(&token.as_token_ref());
        token.sig_hex = base16ct::lower::encode_str(&signature, &mut buf)
            .map(str::to_owned)
            .unwrap_or_default();
    }

    /// Step 2 of a decision: the token is of this signer's format and its
    /// signature matches, compared in constant time. Anything else is
    /// [`CapTokenError::BadSignature`], so a token of the other format is
    /// refused (no downgrade).
    pub fn verify(&self, token: &impl TokenFields) -> Result<(), CapTokenError> {
        if token.v() != self.format.version_field() {
            return Err(CapTokenError::BadSignature);
        }
        let presented: [u8; 32] =
            crate::hex::decode_lower(token.sig_hex()).ok_or(CapTokenError::BadSignature)?;
        if bool::from(self.signature(token).ct_eq(&presented)) {
            Ok(())
        } else {
            Err(CapTokenError::BadSignature)
        }
    }
}

struct MacWriter<'a>(&'a mut Hmac<Sha256>);

impl fmt::Write for MacWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// The `mlua-swarm` signing text:
/// `agent_id|Role|scopes|issued_at|expire_at|max_uses|nonce`.
pub fn mlua_swarm_signing_text(token: &CapToken) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = write_mlua_swarm(token, &mut text);
    text
}

fn write_mlua_swarm(token: &impl TokenFields, out: &mut impl fmt::Write) -> fmt::Result {
    write!(out, "{}|{}|", token.agent_id(), token.role().capitalised())?;
    for (i, scope) in token.scopes().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str(scope)?;
    }
    write!(out, "|{}|{}|", token.issued_at(), token.expire_at())?;
    match token.max_uses() {
        Some(n) => write!(out, "Some({n})")?,
        None => out.write_str("None")?,
    }
    write!(out, "|{}", token.nonce())
}

/// The `v2` signing input: `captoken-v2`, then every field length-prefixed.
pub fn v2_signing_bytes(token: &CapToken) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_v2(token, &mut |part| bytes.extend_from_slice(part));
    bytes
}

fn write_v2(token: &impl TokenFields, out: &mut impl FnMut(&[u8])) {
    out(V2_DOMAIN);
    write_fields(token, out);
    write_string(out, token.nonce());
}

/// `s`, prefixed with its length in bytes (4, big-endian).
pub(crate) fn write_string(out: &mut impl FnMut(&[u8]), s: &str) {
    // Inputs are bounded far below 4 GiB (bearer and argument limits).
    out(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out(s.as_bytes());
}

/// The fields between the `v2` domain and the nonce, each length-prefixed
/// or fixed-width, so that no two field tuples write the same bytes: agent
/// id, role, scopes, issue and expiry times, use budget. The record digest
/// (`crate::remote::record_digest`) is written with them too.
pub(crate) fn write_fields(token: &impl TokenFields, out: &mut impl FnMut(&[u8])) {
    write_string(out, token.agent_id());
    out(&[token.role().code()]);
    out(&u32::try_from(token.scopes().len())
        .unwrap_or(u32::MAX)
        .to_be_bytes());
    for scope in token.scopes() {
        write_string(out, scope);
    }
    out(&token.issued_at().to_be_bytes());
    out(&token.expire_at().to_be_bytes());
    match token.max_uses() {
        None => out(&[0]),
        Some(n) => {
            out(&[1]);
            out(&n.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;
    use crate::ErrorCode;

    fn spec_secret() -> Vec<u8> {
        (1..=32).collect()
    }

    fn vector_one() -> CapToken {
        CapToken {
            v: None,
            agent_id: "agent-7".into(),
            role: Role::Worker,
            scopes: vec!["read".into(), "write".into()],
            issued_at: 1_764_150_000,
            expire_at: 1_764_151_800,
            max_uses: Some(3),
            nonce: "00112233445566778899aabbccddeeff".into(),
            sig_hex: String::new(),
        }
    }

    fn vector_two() -> CapToken {
        CapToken {
            v: None,
            agent_id: "op-1".into(),
            role: Role::Operator,
            scopes: vec!["*".into()],
            issued_at: 1_764_150_000,
            expire_at: 1_764_236_400,
            max_uses: None,
            nonce: "ffeeddccbbaa99887766554433221100".into(),
            sig_hex: String::new(),
        }
    }

    #[test]
    fn mlua_swarm_vectors_reproduce() {
        let signer = Signer::new(&spec_secret(), SigningFormat::MluaSwarm).unwrap();
        let mut one = vector_one();
        assert_eq!(
            mlua_swarm_signing_text(&one),
            "agent-7|Worker|read,write|1764150000|1764151800|Some(3)|00112233445566778899aabbccddeeff"
        );
        signer.seal(&mut one);
        assert_eq!(one.v, None);
        assert_eq!(
            one.sig_hex,
            "fde2cdfb79f02bd21b58fd16246b5d07eba932140fb3f2153ab438133f45b2dc"
        );
        let mut two = vector_two();
        assert_eq!(
            mlua_swarm_signing_text(&two),
            "op-1|Operator|*|1764150000|1764236400|None|ffeeddccbbaa99887766554433221100"
        );
        signer.seal(&mut two);
        assert_eq!(
            two.sig_hex,
            "4907bc2ff879fab8e00ef8ed3fb0bb70b3a7ebee95004e96ccd117014d1b8619"
        );
        signer.verify(&one).unwrap();
        signer.verify(&two).unwrap();
    }

    #[test]
    fn v2_encoding_is_length_prefixed() {
        let token = vector_one();
        let mut expected = b"captoken-v2".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"agent-7");
        expected.push(1);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 4]);
        expected.extend_from_slice(b"read");
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(b"write");
        expected.extend_from_slice(&1_764_150_000u64.to_be_bytes());
        expected.extend_from_slice(&1_764_151_800u64.to_be_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice(b"00112233445566778899aabbccddeeff");
        assert_eq!(v2_signing_bytes(&token), expected);
        let mut unlimited = token;
        unlimited.max_uses = None;
        assert_eq!(v2_signing_bytes(&unlimited)[expected.len() - 41], 0);
    }

    #[test]
    fn v2_separates_what_the_text_format_confuses() {
        let signer = Signer::new(&spec_secret(), SigningFormat::V2).unwrap();
        let text = Signer::new(&spec_secret(), SigningFormat::MluaSwarm).unwrap();
        let mut joined = vector_one();
        joined.scopes = vec!["a,b".into()];
        let mut split = vector_one();
        split.scopes = vec!["a".into(), "b".into()];
        assert_eq!(text.signature(&joined), text.signature(&split));
        assert_ne!(signer.signature(&joined), signer.signature(&split));

        let mut piped = vector_one();
        piped.agent_id = "agent|Worker".into();
        piped.scopes = vec![];
        let mut plain = vector_one();
        plain.agent_id = "agent".into();
        plain.role = Role::Worker;
        plain.scopes = vec!["Worker|".into()];
        assert_ne!(signer.signature(&piped), signer.signature(&plain));
    }

    #[test]
    fn formats_refuse_each_other() {
        let v2 = Signer::new(&spec_secret(), SigningFormat::V2).unwrap();
        let v1 = Signer::new(&spec_secret(), SigningFormat::MluaSwarm).unwrap();
        let mut a = vector_one();
        v2.seal(&mut a);
        assert_eq!(a.v, Some(2));
        v2.verify(&a).unwrap();
        assert_eq!(v1.verify(&a), Err(CapTokenError::BadSignature));
        let mut b = vector_one();
        v1.seal(&mut b);
        assert_eq!(v2.verify(&b), Err(CapTokenError::BadSignature));
        // Relabelling the version does not help: the signature covers other bytes.
        b.v = Some(2);
        assert_eq!(v2.verify(&b), Err(CapTokenError::BadSignature));
    }

    #[test]
    fn every_field_is_covered() {
        let signer = Signer::new(&spec_secret(), SigningFormat::V2).unwrap();
        let mut base = vector_one();
        signer.seal(&mut base);
        let edits: [fn(&mut CapToken); 9] = [
            |t| t.agent_id.push('x'),
            |t| t.role = Role::Operator,
            |t| t.scopes.push("*".into()),
            |t| t.issued_at += 1,
            |t| t.expire_at += 1,
            |t| t.max_uses = None,
            |t| t.max_uses = Some(4),
            |t| t.nonce = "f".repeat(32),
            |t| t.sig_hex = "0".repeat(64),
        ];
        for edit in edits {
            let mut token = base.clone();
            edit(&mut token);
            assert_eq!(signer.verify(&token), Err(CapTokenError::BadSignature));
        }
        let other = Signer::new(&[9u8; 32], SigningFormat::V2).unwrap();
        assert_eq!(other.verify(&base), Err(CapTokenError::BadSignature));
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = Signer::new(&[0u8; 31], SigningFormat::V2).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(Signer::new(&[0u8; 32], SigningFormat::V2).is_ok());
        assert!(Signer::new(&[0u8; 200], SigningFormat::MluaSwarm).is_ok());
        let debug = format!("{:?}", Signer::new(&[0x5a; 32], SigningFormat::V2).unwrap());
        assert_eq!(debug, "Signer { format: V2, .. }");
    }

    #[test]
    fn format_names() {
        for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
            assert_eq!(SigningFormat::parse(format.as_str()).unwrap(), format);
        }
        assert!(SigningFormat::parse("v1").is_err());
        assert_eq!(SigningFormat::default(), SigningFormat::V2);
    }
}
