//! The stateful half of a decision: token records keyed by fingerprint, and
//! the task table (steps 5 to 7 of docs/protocol.md read and change this).
//!
//! [`MemoryState`] holds it in process, compactly: the nonce is never kept,
//! the common `["*"]` scope list costs nothing, and the signature is raw bytes.
//! A backend that keeps this state elsewhere (e.g. Redis) replaces this module
//! and leaves [`crate::verifier`] untouched.

use crate::entry::Entry;
use crate::record::CapTokenConsumeError;
use crate::table::RecordTable;
use crate::task::TaskInfo;
use crate::token::Fingerprint;
use std::collections::{HashMap, HashSet};

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

    /// The state's one shared copy of an agent or task id.
    pub(crate) fn intern(&mut self, name: &str) -> std::rc::Rc<str> {
        self.records.intern(name)
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
