//! The stateful half of a decision: token records keyed by fingerprint, and
//! the task table (steps 5 to 7 of SPEC.md read and change this).
//!
//! [`MemoryState`] holds it in process, compactly: the nonce is never kept,
//! the common `["*"]` scope list costs nothing, and the signature is raw bytes.
//! A backend that keeps this state elsewhere (e.g. Redis) replaces this module
//! and leaves [`crate::verifier`] untouched.

use crate::record::{consume_verdict, CapTokenConsumeError, CapTokenRecord};
use crate::role::Role;
use crate::table::RecordTable;
use crate::task::TaskInfo;
use crate::token::{CapToken, Fingerprint, TokenFields};
use std::collections::{HashMap, HashSet};
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
    pub(crate) fn from_iter<'a>(scopes: impl ExactSizeIterator<Item = &'a str>) -> Self {
        let scopes: Box<[Box<str>]> = scopes.map(Into::into).collect();
        match &*scopes {
            [only] if &**only == "*" => Scopes::All,
            _ => Scopes::List(scopes),
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
    /// Counted in this process only: a restore starts it again at 0.
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

/// A task as the table holds it, with the counts its limits need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskNode {
    pub(crate) parent_id: Option<Box<str>>,
    pub(crate) spawn_depth: u32,
    /// Tasks started directly under this one.
    pub(crate) children: u32,
    /// For a root task: the tasks of its whole tree, itself included.
    pub(crate) tree_size: u32,
}

impl TaskNode {
    /// A task under `parent_id` (a root when `None`) at `spawn_depth`; its
    /// counts are kept by [`MemoryState::insert_task`].
    pub(crate) fn new(parent_id: Option<&str>, spawn_depth: u32) -> Self {
        TaskNode {
            parent_id: parent_id.map(Box::from),
            spawn_depth,
            children: 0,
            tree_size: 1,
        }
    }
}

impl From<&TaskInfo> for TaskNode {
    fn from(task: &TaskInfo) -> Self {
        TaskNode::new(task.parent_id.as_deref(), task.spawn_depth)
    }
}

/// The records and tasks of one store, in process memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    records: RecordTable,
    tasks: HashMap<Box<str>, TaskNode>,
}

impl MemoryState {
    /// How many records are held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.len() == 0
    }

    pub(crate) fn entry(&self, fingerprint: &Fingerprint) -> Option<&Entry> {
        self.records.get(fingerprint)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Fingerprint, &Entry)> {
        self.records.iter()
    }

    /// Insert a new record; an existing one is left as it is (returns false).
    pub(crate) fn insert(&mut self, fingerprint: Fingerprint, entry: Entry) -> bool {
        self.records.insert(fingerprint, entry)
    }

    /// Spend `uses` uses (step 7; more than one when a Worker hands part of
    /// its budget to a token it mints). Returns the uses left afterwards; a
    /// limited record with fewer than `uses` left is exhausted and keeps
    /// them all. `signature_checked` records that the token passed the HMAC
    /// just now.
    pub(crate) fn consume(
        &mut self,
        fingerprint: &Fingerprint,
        uses: u32,
        signature_checked: bool,
    ) -> Option<Result<Option<u32>, CapTokenConsumeError>> {
        let entry = self.records.get_mut(fingerprint)?;
        entry.sig_checked |= signature_checked;
        Some(entry.can_consume().and_then(|()| {
            if let Some(left) = entry.uses_left.as_mut() {
                *left = left
                    .checked_sub(uses)
                    .ok_or(CapTokenConsumeError::Exhausted)?;
            }
            Ok(entry.uses_left)
        }))
    }

    /// Count one task or token made through a Worker's token.
    pub(crate) fn note_made(&mut self, fingerprint: &Fingerprint) {
        if let Some(entry) = self.records.get_mut(fingerprint) {
            entry.made = entry.made.saturating_add(1);
        }
    }

    /// Revoke one record; true when it was live before.
    pub(crate) fn revoke(&mut self, fingerprint: &Fingerprint) -> bool {
        match self.records.get_mut(fingerprint) {
            Some(entry) if !entry.revoked => {
                entry.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Revoke every live record bound to `task_id` or to a task below it;
    /// returns their fingerprints.
    pub(crate) fn revoke_task_tree(&mut self, task_id: &str) -> Vec<Fingerprint> {
        let task_ids = subtree(&self.tasks, task_id);
        let mut revoked = Vec::new();
        for (fingerprint, entry) in self.records.iter_mut() {
            let bound = entry
                .task_id
                .as_deref()
                .is_some_and(|task| task_ids.contains(task));
            if bound && !entry.revoked {
                entry.revoked = true;
                revoked.push(*fingerprint);
            }
        }
        revoked
    }

    /// Replay `uses` journaled uses: true when the record had that many
    /// limited uses left.
    pub(crate) fn replay_consume(&mut self, fingerprint: &Fingerprint, uses: u32) -> bool {
        match self.records.get_mut(fingerprint) {
            Some(Entry {
                uses_left: Some(left),
                ..
            }) if uses > 0 && *left >= uses => {
                *left -= uses;
                true
            }
            _ => false,
        }
    }

    /// Remove the records of expired tokens; returns how many.
    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        self.records.retain(|entry| !entry.is_expired(now))
    }

    pub(crate) fn task(&self, task_id: &str) -> Option<&TaskNode> {
        self.tasks.get(task_id)
    }

    pub(crate) fn tasks(&self) -> impl Iterator<Item = (&str, &TaskNode)> {
        self.tasks.iter().map(|(id, node)| (&**id, node))
    }

    /// How many tasks are tracked.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Track a new task, counting it in its parent's children and its root's
    /// tree when they are already here (a snapshot may list a child before
    /// its parent: [`recount`](Self::recount) puts that right).
    pub(crate) fn insert_task(&mut self, task_id: &str, node: TaskNode) {
        let parent = node.parent_id.clone();
        if self.tasks.insert(task_id.into(), node).is_some() {
            return;
        }
        if let Some(parent) = parent.as_deref() {
            if let Some(parent) = self.tasks.get_mut(parent) {
                parent.children = parent.children.saturating_add(1);
            }
            if let Some(root) = self.root_of(task_id).map(Box::<str>::from) {
                if let Some(root) = self.tasks.get_mut(&root) {
                    root.tree_size = root.tree_size.saturating_add(1);
                }
            }
        }
    }

    /// The root of the tree `task_id` sits in. Depth falls by one per step
    /// up (checked when a task is inserted), so the walk is at most
    /// `maxSpawnDepth` steps long.
    pub(crate) fn root_of<'s>(&'s self, task_id: &'s str) -> Option<&'s str> {
        let mut at = task_id;
        let mut node = self.tasks.get(at)?;
        while let Some(parent) = node.parent_id.as_deref() {
            let up = self.tasks.get(parent)?;
            if up.spawn_depth.checked_add(1) != Some(node.spawn_depth) {
                return None;
            }
            at = parent;
            node = up;
        }
        Some(at)
    }

    /// Whether `task_id` is a task strictly below `ancestor`.
    pub(crate) fn is_below(&self, task_id: &str, ancestor: &str) -> bool {
        let Some(floor) = self.tasks.get(ancestor).map(|node| node.spawn_depth) else {
            return false;
        };
        let mut node = self.tasks.get(task_id);
        while let Some(at) = node {
            if at.spawn_depth <= floor {
                return false;
            }
            match at.parent_id.as_deref() {
                Some(parent) if parent == ancestor => return true,
                Some(parent) => node = self.tasks.get(parent),
                None => return false,
            }
        }
        false
    }

    /// Count every task's children and every tree's size again from the
    /// parent links: after a restore, whose tasks may come in any order.
    pub(crate) fn recount(&mut self) {
        for node in self.tasks.values_mut() {
            node.children = 0;
            node.tree_size = 1;
        }
        let links: Vec<(Box<str>, Box<str>)> = self
            .tasks
            .iter()
            .filter_map(|(id, node)| {
                let parent = node.parent_id.clone()?;
                let root = self.root_of(id).map(Box::from)?;
                Some((parent, root))
            })
            .collect();
        for (parent, root) in links {
            if let Some(parent) = self.tasks.get_mut(&parent) {
                parent.children = parent.children.saturating_add(1);
            }
            if let Some(root) = self.tasks.get_mut(&root) {
                root.tree_size = root.tree_size.saturating_add(1);
            }
        }
    }

    /// Whether a task read back (from a snapshot or a journal) sits where its
    /// depth says: a root at depth 0, or one below a parent held here. Depth
    /// rising by exactly one per edge also rules out cycles.
    pub(crate) fn fits_parent(&self, task: &TaskInfo) -> bool {
        match task.parent_id.as_deref() {
            None => task.spawn_depth == 0,
            Some(parent) => self
                .task(parent)
                .is_some_and(|parent| parent.spawn_depth.checked_add(1) == Some(task.spawn_depth)),
        }
    }
}

/// `task_id` and every task below it.
fn subtree<'a>(tasks: &'a HashMap<Box<str>, TaskNode>, task_id: &'a str) -> HashSet<&'a str> {
    let mut found: HashSet<&str> = HashSet::from([task_id]);
    // Depth grows by one per generation, so each pass reaches one level
    // further down; stop when a pass finds nothing new.
    loop {
        let before = found.len();
        for (id, node) in tasks {
            if let Some(parent) = node.parent_id.as_deref() {
                if found.contains(parent) {
                    found.insert(id);
                }
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

impl TaskNode {
    pub(crate) fn info(&self, task_id: &str) -> TaskInfo {
        TaskInfo {
            task_id: task_id.to_owned(),
            parent_id: self.parent_id.as_deref().map(str::to_owned),
            spawn_depth: self.spawn_depth,
        }
    }
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
