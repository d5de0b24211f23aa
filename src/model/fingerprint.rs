//! [`Fingerprint`]: a token's public identity, the hex SHA-256 of its nonce's
//! text (docs/protocol.md, "Fingerprint").

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

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

    /// Parse 64 lowercase hex characters (`str::parse` gives the same as a
    /// [`CapTokenError`](crate::CapTokenError)).
    pub fn from_hex(text: &str) -> Option<Self> {
        crate::hex::decode_lower(text).map(Fingerprint)
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

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Decoded from the text in place: `Cow<str>` would copy every
        // fingerprint of a snapshot into a String first.
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Fingerprint;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("64 lowercase hex characters")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Fingerprint, E> {
                Fingerprint::from_hex(text)
                    .ok_or_else(|| E::custom("fingerprint is not 64 lowercase hex characters"))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}
