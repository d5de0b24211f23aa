//! [`Entry`]: what a store keeps of one minted token (its record without the
//! nonce), and [`Scopes`], its scope list held compactly.

use crate::record::{consume_verdict, CapTokenConsumeError, CapTokenRecord};
use crate::role::Role;
use crate::token::{CapToken, TokenFields};
use std::rc::Rc;

/// [`Entry::not_after`] of a token no Worker minted.
pub(crate) const NO_CAP: u64 = u64::MAX;

/// A token's scopes, with the default `["*"]` held without allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scopes {
    All,
    List(Box<[Box<str>]>),
}

impl Scopes {
    pub(crate) fn from_iter<'a>(mut scopes: impl ExactSizeIterator<Item = &'a str>) -> Self {
        // The common `["*"]` without allocating a list only to drop it.
        if scopes.len() == 1 {
            if let Some(only) = scopes.next() {
                return Self::one(only);
            }
        }
        Scopes::List(scopes.map(Into::into).collect())
    }

    /// A list of the one scope `scope`.
    pub(crate) fn one(scope: &str) -> Self {
        if scope == "*" {
            Scopes::All
        } else {
            Scopes::List(Box::new([scope.into()]))
        }
    }

    /// Whether these are exactly `scopes`, in order.
    pub(crate) fn is<'a>(&self, mut scopes: impl ExactSizeIterator<Item = &'a str>) -> bool {
        match self {
            Scopes::All => scopes.len() == 1 && scopes.next() == Some("*"),
            Scopes::List(list) => {
                list.len() == scopes.len() && list.iter().zip(scopes).all(|(a, b)| **a == *b)
            }
        }
    }

    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        let list: &[Box<str>] = match self {
            Scopes::All => &[],
            Scopes::List(list) => list,
        };
        let all = matches!(self, Scopes::All).then_some("*");
        ScopesIter {
            all,
            rest: list.iter(),
        }
    }

    pub(crate) fn to_list(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

struct ScopesIter<'a> {
    all: Option<&'static str>,
    rest: core::slice::Iter<'a, Box<str>>,
}

impl<'a> Iterator for ScopesIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.all.take().or_else(|| self.rest.next().map(|s| &**s))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.all.is_some()) + self.rest.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for ScopesIter<'_> {}

/// What the store keeps of one minted token: the record without the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) agent_id: Rc<str>,
    pub(crate) scopes: Scopes,
    pub(crate) issued_at: u64,
    pub(crate) expire_at: u64,
    pub(crate) max_uses: Option<u32>,
    pub(crate) uses_left: Option<u32>,
    pub(crate) task_id: Option<Rc<str>>,
    pub(crate) sig: [u8; 32],
    pub(crate) role: Role,
    pub(crate) v: Option<u8>,
    pub(crate) revoked: bool,
    /// Tasks and tokens made through this token by a Worker (its
    /// `start_task` and `dispatch_attempt`), for `maxMadePerWorkerToken`.
    /// Kept in snapshots (`made`) and journal lines (`by`).
    pub(crate) made: u32,
    /// The latest expiry this token or any token reminted from it may have:
    /// the expiry of the Worker that minted it ([`NO_CAP`] for tokens the
    /// orchestrator minted). Without it a chain of remints, each within one
    /// lifetime, would outlive the minting Worker.
    pub(crate) not_after: u64,
    /// The token this entry was made from passed the signature check in this
    /// process (minted, adopted, or verified once since a restore). Only then
    /// may an exact match with the entry stand in for the HMAC.
    pub(crate) sig_checked: bool,
}

impl Entry {
    /// A fresh entry for `token` (uses_left = max_uses, not revoked).
    /// A fresh entry for a token whose signature was checked (uses_left =
    /// max_uses, not revoked).
    pub(crate) fn new(token: &impl TokenFields, task_id: Option<&str>) -> Self {
        // The signer has already checked sig_hex is 64 hex characters.
        let sig = crate::hex::decode_lower(token.sig_hex()).unwrap_or([0; 32]);
        Entry {
            agent_id: token.agent_id().into(),
            scopes: Scopes::from_iter(token.scopes()),
            issued_at: token.issued_at(),
            expire_at: token.expire_at(),
            max_uses: token.max_uses(),
            uses_left: token.max_uses(),
            task_id: task_id.map(Into::into),
            sig,
            role: token.role(),
            v: token.v(),
            revoked: false,
            made: 0,
            not_after: NO_CAP,
            sig_checked: true,
        }
    }

    /// The token as recorded: every field but the nonce, which is empty.
    pub(crate) fn token(&self) -> CapToken {
        let mut buf = [0u8; 64];
        CapToken {
            v: self.v,
            agent_id: self.agent_id.to_string(),
            role: self.role,
            scopes: self.scopes.to_list(),
            issued_at: self.issued_at,
            expire_at: self.expire_at,
            max_uses: self.max_uses,
            nonce: String::new(),
            sig_hex: base16ct::lower::encode_str(&self.sig, &mut buf)
                .map(str::to_owned)
                .unwrap_or_default(),
        }
    }

    /// The seed-shaped record (its token's nonce is empty).
    pub(crate) fn to_record(&self) -> CapTokenRecord {
        CapTokenRecord {
            token: self.token(),
            uses_left: self.uses_left,
            revoked: self.revoked,
            task_id: self.task_id.as_deref().map(str::to_owned),
        }
    }

    /// Whether `token` is the token this entry was recorded from: every field
    /// but the nonce (which the fingerprint already binds) is the same. A token
    /// can pass the signature check and still differ: the mlua-swarm signing
    /// text lets a holder move bytes between agent_id, role and scopes through
    /// `|` and `,` without changing the signed text. The record is the authority.
    pub(crate) fn matches(&self, token: &impl TokenFields) -> bool {
        crate::hex::decode_lower(token.sig_hex()).is_some_and(|sig| same_signature(&sig, &self.sig))
            && self.role == token.role()
            && *self.agent_id == *token.agent_id()
            && self.scopes.is(token.scopes())
            && self.issued_at == token.issued_at()
            && self.expire_at == token.expire_at()
            && self.max_uses == token.max_uses()
            && self.v == token.v()
    }

    /// Step 7 without spending: revoked first, then uses left.
    pub(crate) fn can_consume(&self) -> Result<(), CapTokenConsumeError> {
        consume_verdict(self.revoked, self.uses_left)
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.role.expires() && now >= self.expire_at
    }
}

/// Constant-time equality of two signatures: the differences are folded into
/// one word, and only that word goes through `subtle` (its per-byte barrier
/// would cost 32 optimisation fences on every decision).
fn same_signature(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .fold(0u64, |acc, (x, y)| {
            let word = |c: &[u8]| c.iter().fold(0u64, |w, byte| (w << 8) | u64::from(*byte));
            acc | (word(x) ^ word(y))
        });
    bool::from(subtle::ConstantTimeEq::ct_eq(&diff, &0))
}

#[cfg(test)]
mod tests {
    use super::same_signature;

    #[test]
    fn signatures_differing_in_any_bit_are_not_the_same() {
        let a: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        assert!(same_signature(&a, &a));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!same_signature(&a, &b), "byte {byte} bit {bit}");
            }
        }
    }
}
