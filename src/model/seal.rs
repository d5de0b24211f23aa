//! The seal on snapshots and journal lines (see `docs/snapshot-and-journal.md`).
//!
//! A store derives one seal key from its secret when it is made:
//! `seal_key = HMAC-SHA256(secret, "captoken-seal-v1")`. The secret itself
//! never keys a seal, so a seal says nothing about the signing key beyond
//! what HMAC leaks (nothing). From the seal key come:
//!
//! - the key id, the first 8 bytes (16 lowercase hex characters) of
//!   `HMAC-SHA256(seal_key, "captoken-key-id-v1")`: a snapshot names it so
//!   that restore can tell "another secret" from "edited";
//! - a snapshot's MAC: `HMAC-SHA256(seal_key, "captoken-snapshot-v1\n" ||
//!   every byte of the text except the 64 hex characters of the MAC itself)`;
//! - a journal line's MAC: `HMAC-SHA256(seal_key, "captoken-journal-v1\n" ||
//!   previous MAC (32 bytes) || the line after its MAC field)`, where the
//!   previous MAC of the first line after a snapshot is that snapshot's MAC.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A MAC: 32 bytes of HMAC-SHA256.
pub(crate) type Tag = [u8; 32];

const SEAL_LABEL: &[u8] = b"captoken-seal-v1";
const KEY_ID_LABEL: &[u8] = b"captoken-key-id-v1";
pub(crate) const SNAPSHOT_LABEL: &[u8] = b"captoken-snapshot-v1\n";
pub(crate) const JOURNAL_LABEL: &[u8] = b"captoken-journal-v1\n";
/// The chain head after restoring an unsealed (old-shape) snapshot: nothing
/// sealed vouches for that state, so the chain restarts from a constant.
const UNSEALED_LABEL: &[u8] = b"captoken-unsealed-v1";

/// Bytes of the key id, and its length in hex.
pub(crate) const KEY_ID_LEN: usize = 8;
pub(crate) const KEY_ID_HEX_LEN: usize = 2 * KEY_ID_LEN;

/// The seal key, kept as a keyed HMAC state: every MAC clones it instead of
/// hashing the key pads again (two SHA-256 blocks saved per journal line).
#[derive(Clone)]
pub(crate) struct Seal {
    keyed: HmacSha256,
    key_id: [u8; KEY_ID_LEN],
}

impl core::fmt::Debug for Seal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key never appears in any output.
        f.write_str("Seal { .. }")
    }
}

impl Seal {
    /// Derive the seal key from the store's secret.
    pub(crate) fn new(secret: &[u8]) -> Self {
        let seal_key = mac_of(keyed(secret), &[SEAL_LABEL]);
        let keyed = self::keyed(&seal_key);
        let id = mac_of(keyed.clone(), &[KEY_ID_LABEL]);
        let mut key_id = [0u8; KEY_ID_LEN];
        for (to, from) in key_id.iter_mut().zip(id.iter()) {
            *to = *from;
        }
        Seal { keyed, key_id }
    }

    /// The key id, as 16 lowercase hex characters.
    pub(crate) fn key_id_hex(&self) -> [u8; KEY_ID_HEX_LEN] {
        let mut out = [0u8; KEY_ID_HEX_LEN];
        // 8 bytes always fit 16 hex characters.
        let _ = base16ct::lower::encode(&self.key_id, &mut out);
        out
    }

    /// Whether `hex` names this seal key (not secret: compared plainly).
    pub(crate) fn is_key_id(&self, hex: &[u8]) -> bool {
        hex == self.key_id_hex()
    }

    /// HMAC over the concatenation of `parts`.
    // Not inlined, here and below: the HMAC code then exists once in the
    // .wasm instead of once per caller (measured: ~3 KB).
    #[inline(never)]
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Tag {
        mac_of(self.keyed.clone(), parts)
    }

    /// A running MAC for text too large to hold twice.
    pub(crate) fn start(&self, label: &[u8]) -> Running {
        let mut mac = self.keyed.clone();
        mac.update(label);
        Running(mac)
    }

    /// The chain head after an unsealed restore.
    pub(crate) fn unsealed_head(&self) -> Tag {
        self.mac(&[UNSEALED_LABEL])
    }
}

/// A MAC being computed piece by piece.
pub(crate) struct Running(HmacSha256);

impl Running {
    #[inline(never)]
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    #[inline(never)]
    pub(crate) fn finish(self) -> Tag {
        self.0.finalize().into_bytes().into()
    }
}

/// Compare two MACs in constant time.
pub(crate) fn same_tag(a: &Tag, b: &Tag) -> bool {
    a.ct_eq(b).into()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()))
}

#[inline(never)]
fn mac_of(mut mac: HmacSha256, parts: &[&[u8]]) -> Tag {
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_key_is_hmac_of_the_label_and_not_the_secret() {
        let secret = [7u8; 32];
        let seal = Seal::new(&secret);
        let mut direct = <HmacSha256 as Mac>::new_from_slice(&secret).unwrap();
        direct.update(SEAL_LABEL);
        let seal_key: Tag = direct.finalize().into_bytes().into();
        let mut by_key = <HmacSha256 as Mac>::new_from_slice(&seal_key).unwrap();
        by_key.update(b"x");
        let expected: Tag = by_key.finalize().into_bytes().into();
        assert_eq!(seal.mac(&[b"x"]), expected);
        let mut by_secret = <HmacSha256 as Mac>::new_from_slice(&secret).unwrap();
        by_secret.update(b"x");
        let wrong: Tag = by_secret.finalize().into_bytes().into();
        assert_ne!(seal.mac(&[b"x"]), wrong);
        assert_ne!(Seal::new(&[8u8; 32]).key_id_hex(), seal.key_id_hex());
    }
}
