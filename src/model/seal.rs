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
//! - a snapshot's seal: 16 random bytes (the nonce), then the Poly1305 tag,
//!   keyed by `HMAC-SHA256(seal_key, "captoken-snapshot-key-v1" || nonce)`,
//!   of every byte of the text except the 64 hex characters of the seal
//!   itself. Poly1305, not HMAC, because a snapshot of a million records is
//!   359 MB: in WebAssembly HMAC-SHA256 hashes ~500 MB/s and Poly1305
//!   ~2 GB/s. A Poly1305 key must seal one text only, hence the fresh nonce
//!   per snapshot;
//! - a journal line's MAC: `HMAC-SHA256(seal_key, "captoken-journal-v1\n" ||
//!   previous MAC (32 bytes) || the line after its MAC field)`, where the
//!   previous MAC of the first line after a snapshot is that snapshot's
//!   seal (nonce and tag).

use crate::signer::SigningFormat;
use hmac::{Hmac, Mac};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::{Block, Poly1305};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A MAC: 32 bytes of HMAC-SHA256, or a snapshot's seal (nonce and tag).
pub(crate) type Tag = [u8; 32];

/// Bytes of a snapshot seal's nonce; the other 16 are the Poly1305 tag.
pub(crate) const NONCE_LEN: usize = 16;

const SEAL_LABEL: &[u8] = b"captoken-seal-v1";
const KEY_ID_LABEL: &[u8] = b"captoken-key-id-v1";
const SNAPSHOT_KEY_LABEL: &[u8] = b"captoken-snapshot-key-v1";
pub(crate) const JOURNAL_LABEL: &[u8] = b"captoken-journal-v1\n";
/// The chain head of an empty state (see [`Seal::empty_head`]).
const EMPTY_LABEL: &[u8] = b"captoken-empty-v1\n";
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

    /// The running seal of a snapshot sealed with `nonce`, which must be
    /// fresh from the CSPRNG for every snapshot written.
    pub(crate) fn start_snapshot(&self, nonce: &[u8; NONCE_LEN]) -> SnapshotMac {
        let key = self.mac(&[SNAPSHOT_KEY_LABEL, nonce]);
        SnapshotMac {
            poly: Poly1305::new(&key.into()),
            nonce: *nonce,
            pending: Block::default(),
            pending_len: 0,
        }
    }

    /// The chain head of a snapshot of an empty state (no record, no task),
    /// in place of its seal: a seal has a fresh nonce each time, but the
    /// journal of a store that never took a snapshot must restore after any
    /// empty snapshot of the same secret and format, as it did when the
    /// seal was deterministic. An empty state holds nothing to revive. (The
    /// lines of one empty-state chain replay after any empty snapshot of
    /// the same secret and format, another store's too, as before: a seal
    /// vouches that this secret wrote the text, not which store did.)
    pub(crate) fn empty_head(&self, format: SigningFormat) -> Tag {
        self.mac(&[EMPTY_LABEL, format.as_str().as_bytes()])
    }

    /// The chain head after an unsealed restore.
    pub(crate) fn unsealed_head(&self) -> Tag {
        self.mac(&[UNSEALED_LABEL])
    }
}

/// Blocks handed to Poly1305 at a time: one call per 1 KB instead of one
/// per block (measured in WebAssembly: 2.6 against 2.2 GB/s).
const BATCH: usize = 64;

/// A snapshot's seal being computed piece by piece, over text too large to
/// hold twice. The pieces are one message: whole blocks go to Poly1305 as
/// they come, and a partial one waits for the next piece or for `finish`.
pub(crate) struct SnapshotMac {
    poly: Poly1305,
    nonce: [u8; NONCE_LEN],
    pending: Block,
    pending_len: usize,
}

impl SnapshotMac {
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.pending_len > 0 {
            let take = bytes.len().min(self.pending.len() - self.pending_len);
            let (head, rest) = bytes.split_at(take);
            if let Some(room) = self
                .pending
                .get_mut(self.pending_len..self.pending_len + take)
            {
                room.copy_from_slice(head);
            }
            self.pending_len += take;
            bytes = rest;
            if self.pending_len < self.pending.len() {
                return;
            }
            self.poly.update(&[self.pending]);
            self.pending_len = 0;
        }
        let mut batches = bytes.chunks_exact(BATCH * 16);
        let mut blocks = [Block::default(); BATCH];
        for batch in &mut batches {
            for (block, bytes) in blocks.iter_mut().zip(batch.chunks_exact(16)) {
                block.copy_from_slice(bytes);
            }
            self.poly.update(&blocks);
        }
        let mut rest = batches.remainder().chunks_exact(16);
        for bytes in &mut rest {
            if let Some(block) = blocks.first_mut() {
                block.copy_from_slice(bytes);
                self.poly.update(core::slice::from_ref(block));
            }
        }
        let tail = rest.remainder();
        if let Some(room) = self.pending.get_mut(..tail.len()) {
            room.copy_from_slice(tail);
            self.pending_len = tail.len();
        }
    }

    /// The seal: the nonce, then the tag (RFC 8439's Poly1305 of the
    /// message: a last partial block is padded with a 1 byte, not zeros).
    pub(crate) fn finish(self) -> Tag {
        let pending = self.pending.get(..self.pending_len).unwrap_or_default();
        let tag = self.poly.compute_unpadded(pending);
        let mut seal = [0u8; 32];
        let (nonce, mac) = seal.split_at_mut(NONCE_LEN);
        nonce.copy_from_slice(&self.nonce);
        mac.copy_from_slice(&tag);
        seal
    }
}

/// The nonce a snapshot's seal starts with.
pub(crate) fn nonce_of(seal: &Tag) -> [u8; NONCE_LEN] {
    seal.first_chunk().copied().unwrap_or_default()
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

    #[test]
    fn a_snapshot_seal_is_one_poly1305_over_its_pieces_however_they_are_cut() {
        let seal = Seal::new(&[7u8; 32]);
        let nonce = [3u8; NONCE_LEN];
        let text: Vec<u8> = (0..2_500u32).map(|i| (i * 31 % 251) as u8).collect();
        let key = seal.mac(&[SNAPSHOT_KEY_LABEL, &nonce]);
        let whole = Poly1305::new(&key.into()).compute_unpadded(&text);
        for cuts in [
            vec![],
            vec![1],
            vec![15, 16, 17],
            vec![48],
            vec![1023, 1024, 1025, 2047],
            vec![7, 9, 300, 1100, 2499],
        ] {
            let mut mac = seal.start_snapshot(&nonce);
            let mut from = 0;
            for cut in cuts.iter().copied().chain([text.len()]) {
                mac.update(&text[from..cut]);
                from = cut;
            }
            let sealed = mac.finish();
            assert_eq!(sealed[..NONCE_LEN], nonce);
            assert_eq!(sealed[NONCE_LEN..], whole[..], "cut at {cuts:?}");
        }
        // Another nonce, another key.
        let mut other = seal.start_snapshot(&[4u8; NONCE_LEN]);
        other.update(&text);
        assert_ne!(other.finish()[NONCE_LEN..], whole[..]);
    }
}
