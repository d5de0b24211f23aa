//! [`RecordTable`]: the records of a store keyed by fingerprint, laid out for
//! a million live tokens in little memory.
//!
//! Records live in fixed-size chunks, so growing never copies the table (in
//! WebAssembly, linear memory never shrinks: a doubling `Vec` would leave its
//! old half behind). The index maps the first eight bytes of a fingerprint to
//! a slot; the rare fingerprints that share those bytes with a live one go to
//! a small overflow map. Agent and task ids are interned: the thousands of
//! tokens dispatched for one task share two strings.

use crate::entry::Entry;
use crate::token::Fingerprint;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

const CHUNK: usize = 4096;

/// A hash keyed by a per-store random key. Fingerprints of minted tokens are
/// already uniform, but a restored snapshot may name any fingerprints it
/// likes: with an unkeyed hash, thousands sharing their first bytes would
/// fall into one probe sequence and make restore quadratic. The mix is keyed
/// by two words from the operating system's CSPRNG.
#[derive(Clone, Copy)]
pub(crate) struct KeyedState([u64; 2]);

impl Default for KeyedState {
    fn default() -> Self {
        let mut bytes = [0u8; 16];
        // Without randomness no token can be minted either; a fixed key
        // then only costs the resistance to crafted snapshots.
        let _ = getrandom::fill(&mut bytes);
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = bytes;
        KeyedState([
            u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            u64::from_le_bytes([i, j, k, l, m, n, o, p]) | 1,
        ])
    }
}

impl core::fmt::Debug for KeyedState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyedState(..)")
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            key: self.0,
            state: self.0[0],
        }
    }
}

pub(crate) struct KeyedHasher {
    key: [u64; 2],
    state: u64,
}

impl Hasher for KeyedHasher {
    /// MurmurHash3's finaliser: every bit of the state reaches every bit of
    /// the hash. (64-bit multiplies only: a 128-bit one is a library call
    /// in wasm32, and the index is hashed on every decision.)
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(chunk) {
                *to = *from;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    /// Keyed: the state starts at one random word and each input is mixed
    /// in by a multiply with the other (odd), so which inputs collide is
    /// unknown to whoever chose them.
    fn write_u64(&mut self, n: u64) {
        let mixed = (self.state ^ n).wrapping_mul(self.key[1]);
        self.state = mixed ^ (mixed >> 29);
    }
}

type Prefixed<K, V> = HashMap<K, V, KeyedState>;

fn prefix(fingerprint: &Fingerprint) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *fingerprint.as_bytes();
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

#[derive(Debug, Clone)]
struct Slot {
    fingerprint: Fingerprint,
    entry: Entry,
}

/// Records keyed by fingerprint (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordTable {
    chunks: Vec<Vec<Option<Slot>>>,
    free: Vec<u32>,
    index: Prefixed<u64, u32>,
    overflow: Prefixed<Fingerprint, u32>,
    names: HashSet<Rc<str>>,
    /// The names interned last: records come in runs of one agent and task
    /// (a restore reads them in the order they were written), and a hit here
    /// skips hashing the name.
    recent: [Option<Rc<str>>; 2],
    /// Where the last record found sits: a decision looks its record up
    /// two or three times (decide, spend, the grant), and only the first
    /// need probe the index. Checked against the slot's fingerprint on use,
    /// so a slot freed and reused since can never answer for another record.
    last_found: Cell<u32>,
    len: usize,
}

impl RecordTable {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, at: u32) -> Option<&Slot> {
        let at = at as usize;
        self.chunks.get(at / CHUNK)?.get(at % CHUNK)?.as_ref()
    }

    fn slot_mut(&mut self, at: u32) -> Option<&mut Slot> {
        let at = at as usize;
        self.chunks
            .get_mut(at / CHUNK)?
            .get_mut(at % CHUNK)?
            .as_mut()
    }

    fn position(&self, fingerprint: &Fingerprint) -> Option<u32> {
        let holds = |at: u32| {
            self.slot(at)
                .is_some_and(|slot| slot.fingerprint == *fingerprint)
        };
        let last = self.last_found.get();
        if holds(last) {
            return Some(last);
        }
        let found = match self.index.get(&prefix(fingerprint)) {
            Some(&at) if holds(at) => Some(at),
            _ if self.overflow.is_empty() => None,
            _ => self.overflow.get(fingerprint).copied(),
        };
        if let Some(at) = found {
            self.last_found.set(at);
        }
        found
    }

    pub(crate) fn get(&self, fingerprint: &Fingerprint) -> Option<&Entry> {
        let at = self.position(fingerprint)?;
        self.slot(at).map(|slot| &slot.entry)
    }

    pub(crate) fn get_mut(&mut self, fingerprint: &Fingerprint) -> Option<&mut Entry> {
        let at = self.position(fingerprint)?;
        self.slot_mut(at).map(|slot| &mut slot.entry)
    }

    /// The table's one copy of `name`, made on first use.
    pub(crate) fn intern(&mut self, name: &str) -> Rc<str> {
        for recent in self.recent.iter().flatten() {
            if **recent == *name {
                return Rc::clone(recent);
            }
        }
        let shared = match self.names.get(name) {
            Some(shared) => Rc::clone(shared),
            None => {
                let shared: Rc<str> = name.into();
                self.names.insert(Rc::clone(&shared));
                shared
            }
        };
        let [first, second] = &mut self.recent;
        *second = first.replace(Rc::clone(&shared));
        shared
    }

    /// `name` itself when it is the table's copy already (no hashing).
    fn interned(&mut self, name: Rc<str>) -> Rc<str> {
        if self
            .recent
            .iter()
            .flatten()
            .any(|recent| Rc::ptr_eq(recent, &name))
        {
            name
        } else {
            self.intern(&name)
        }
    }

    /// Insert a new record; an existing one is left as it is (returns false).
    pub(crate) fn insert(&mut self, fingerprint: Fingerprint, mut entry: Entry) -> bool {
        if self.position(&fingerprint).is_some() {
            return false;
        }
        entry.agent_id = self.interned(entry.agent_id);
        if let Some(task) = entry.task_id.take() {
            entry.task_id = Some(self.interned(task));
        }
        let slot = Some(Slot { fingerprint, entry });
        let at = match self.free.pop() {
            Some(at) => {
                if let Some(chunk) = self.chunks.get_mut(at as usize / CHUNK) {
                    if let Some(place) = chunk.get_mut(at as usize % CHUNK) {
                        *place = slot;
                    }
                }
                at
            }
            None => {
                if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let full = (self.chunks.len() - 1) * CHUNK;
                let Some(chunk) = self.chunks.last_mut() else {
                    return false;
                };
                let at = full + chunk.len();
                chunk.push(slot);
                // More than 4 billion records cannot fit in wasm32 memory.
                u32::try_from(at).unwrap_or(u32::MAX)
            }
        };
        match self.index.entry(prefix(&fingerprint)) {
            std::collections::hash_map::Entry::Vacant(place) => {
                place.insert(at);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.overflow.insert(fingerprint, at);
            }
        }
        self.len += 1;
        true
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Fingerprint, &Entry)> {
        self.chunks
            .iter()
            .flatten()
            .flatten()
            .map(|slot| (&slot.fingerprint, &slot.entry))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Fingerprint, &mut Entry)> {
        self.chunks
            .iter_mut()
            .flatten()
            .flatten()
            .map(|slot| (&slot.fingerprint, &mut slot.entry))
    }

    /// Keep only the records `keep` says yes to; returns how many went.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let mut removed = 0;
        for (c, chunk) in self.chunks.iter_mut().enumerate() {
            for (i, place) in chunk.iter_mut().enumerate() {
                let Some(slot) = place else { continue };
                if keep(&slot.entry) {
                    continue;
                }
                let at = u32::try_from(c * CHUNK + i).unwrap_or(u32::MAX);
                let key = prefix(&slot.fingerprint);
                if self.index.get(&key) == Some(&at) {
                    self.index.remove(&key);
                } else {
                    self.overflow.remove(&slot.fingerprint);
                }
                *place = None;
                self.free.push(at);
                removed += 1;
            }
        }
        // A record whose index place went may leave an overflow record with
        // the same prefix behind: lookups check the overflow map, so that is
        // only a slower path, never a lost record.
        self.len -= removed;
        // Names no record uses any more (held only by the interner; the
        // cache's own references would keep them alive, so it goes first).
        self.recent = [None, None];
        self.names.retain(|name| Rc::strong_count(name) > 1);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;
    use crate::token::CapToken;

    fn entry(agent: &str, task: Option<&str>) -> Entry {
        let token = CapToken {
            v: Some(2),
            agent_id: agent.into(),
            role: Role::Worker,
            scopes: vec!["*".into()],
            issued_at: 1,
            expire_at: 10,
            max_uses: None,
            nonce: "0".repeat(32),
            sig_hex: "0".repeat(64),
        };
        Entry::new(&token, task)
    }

    fn fp(prefix: u64, rest: u8) -> Fingerprint {
        let mut bytes = [rest; 32];
        bytes[..8].copy_from_slice(&prefix.to_le_bytes());
        Fingerprint::from_bytes(bytes)
    }

    #[test]
    fn prefix_collisions_keep_every_record_findable() {
        let mut table = RecordTable::default();
        assert!(table.insert(fp(7, 1), entry("a", None)));
        assert!(table.insert(fp(7, 2), entry("b", None)));
        assert!(table.insert(fp(7, 3), entry("c", None)));
        assert!(!table.insert(fp(7, 2), entry("dup", None)));
        assert_eq!(table.len(), 3);
        assert_eq!(&*table.get(&fp(7, 2)).unwrap().agent_id, "b");
        assert!(table.get(&fp(7, 4)).is_none());
        // Removing the one in the index leaves the overflow ones findable.
        assert_eq!(table.retain(|e| &*e.agent_id != "a"), 1);
        assert!(table.get(&fp(7, 1)).is_none());
        assert_eq!(&*table.get(&fp(7, 3)).unwrap().agent_id, "c");
        // A freed slot is reused.
        assert!(table.insert(fp(9, 9), entry("d", None)));
        assert_eq!(table.chunks[0].len(), 3);
        assert_eq!(table.iter().count(), 3);
    }

    #[test]
    fn names_are_shared_and_dropped_with_their_last_record() {
        let mut table = RecordTable::default();
        for i in 0..10u8 {
            table.insert(fp(u64::from(i), i), entry("worker-of-t", Some("t")));
        }
        let a = &table.get(&fp(0, 0)).unwrap().agent_id;
        let b = &table.get(&fp(9, 9)).unwrap().agent_id;
        assert!(Rc::ptr_eq(a, b));
        assert_eq!(table.names.len(), 2);
        table.retain(|_| false);
        assert_eq!(table.len(), 0);
        assert!(table.names.is_empty());
    }

    #[test]
    fn grows_in_chunks_without_moving_records() {
        let mut table = RecordTable::default();
        for i in 0..(CHUNK as u64 * 2 + 5) {
            assert!(table.insert(fp(i, 0), entry("w", None)));
        }
        assert_eq!(table.chunks.len(), 3);
        assert!(table.chunks.iter().all(|c| c.capacity() == CHUNK));
        assert_eq!(table.len(), CHUNK * 2 + 5);
        assert!(table.get(&fp(CHUNK as u64 + 1, 0)).is_some());
    }
}
