//! [`CapTokenRecord`]: the server-side state paired 1:1 with a minted token.

use crate::error::CapTokenError;
use crate::fingerprint::Fingerprint;
use crate::task::TaskId;
use crate::token::CapToken;
use serde::{Deserialize, Serialize};

/// Why [`CapTokenRecord::consume`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapTokenConsumeError {
    /// The record is revoked; this wins over any uses left.
    #[error("token is revoked")]
    Revoked,
    /// No uses are left.
    #[error("token has no uses left")]
    Exhausted,
}

/// Server-side counter and state holder paired 1:1 with a minted [`CapToken`].
///
/// Tracks remaining uses, revocation and, for Worker tokens, the task the token
/// is bound to. Operator tokens leave `task_id` as `None` and may touch any task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapTokenRecord {
    /// The token this record backs.
    pub token: CapToken,
    /// Remaining verb-consuming calls; `None` means unlimited, `Some(0)` makes
    /// [`consume`](Self::consume) fail.
    pub uses_left: Option<u32>,
    /// When true, [`consume`](Self::consume) always fails whatever the uses left.
    pub revoked: bool,
    /// The task a Worker token is bound to: a Worker's child tasks get this
    /// task's depth + 1, and its task-state verbs must name this task.
    #[serde(default)]
    pub task_id: Option<TaskId>,
}

impl CapTokenRecord {
    /// Wrap a freshly minted token with no bound task: the Operator/session shape.
    pub fn from_token(token: CapToken) -> Self {
        CapTokenRecord {
            uses_left: token.max_uses,
            token,
            revoked: false,
            task_id: None,
        }
    }

    /// Wrap a freshly minted Worker token, bound to `task_id`.
    pub fn from_worker_token(token: CapToken, task_id: TaskId) -> Self {
        CapTokenRecord {
            task_id: Some(task_id),
            ..CapTokenRecord::from_token(token)
        }
    }

    /// Whether [`consume`](Self::consume) would succeed, spending nothing.
    pub fn can_consume(&self) -> Result<(), CapTokenConsumeError> {
        consume_verdict(self.revoked, self.uses_left)
    }

    /// Spend one use. Revoked fails whatever the uses left; unlimited always
    /// succeeds; `Some(0)` fails; otherwise one use is spent.
    pub fn consume(&mut self) -> Result<(), CapTokenConsumeError> {
        self.can_consume()?;
        if let Some(left) = self.uses_left.as_mut() {
            *left = left.saturating_sub(1);
        }
        Ok(())
    }
}

impl CapTokenError {
    /// The store-level error for a record's refused [`consume`](crate::CapTokenRecord::consume).
    pub fn from_consume(error: CapTokenConsumeError, fingerprint: Fingerprint) -> Self {
        match error {
            CapTokenConsumeError::Revoked => CapTokenError::TokenRevoked { fingerprint },
            CapTokenConsumeError::Exhausted => CapTokenError::TokenUsesExhausted { fingerprint },
        }
    }
}

/// Step 7 without spending, for any holder of these two fields: revoked
/// first, whatever the uses left; then no uses left.
pub(crate) fn consume_verdict(
    revoked: bool,
    uses_left: Option<u32>,
) -> Result<(), CapTokenConsumeError> {
    if revoked {
        Err(CapTokenConsumeError::Revoked)
    } else if uses_left == Some(0) {
        Err(CapTokenConsumeError::Exhausted)
    } else {
        Ok(())
    }
}

/// Whether a record's uses left fit its token's budget: both unlimited, or
/// no more left than the token ever had.
pub(crate) fn uses_fit(max_uses: Option<u32>, uses_left: Option<u32>) -> bool {
    match (max_uses, uses_left) {
        (None, None) => true,
        (Some(max), Some(left)) => left <= max,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    fn token(max_uses: Option<u32>) -> CapToken {
        CapToken {
            v: Some(2),
            agent_id: "a".into(),
            role: Role::Worker,
            scopes: vec!["*".into()],
            issued_at: 1,
            expire_at: 2,
            max_uses,
            nonce: "0".repeat(32),
            sig_hex: "0".repeat(64),
        }
    }

    #[test]
    fn constructors() {
        let record = CapTokenRecord::from_token(token(Some(3)));
        assert_eq!(record.uses_left, Some(3));
        assert!(!record.revoked);
        assert_eq!(record.task_id, None);
        let worker = CapTokenRecord::from_worker_token(token(None), "t1".into());
        assert_eq!(worker.uses_left, None);
        assert_eq!(worker.task_id.as_deref(), Some("t1"));
    }

    #[test]
    fn consume_counts_down_to_exhausted() {
        let mut record = CapTokenRecord::from_token(token(Some(2)));
        record.consume().unwrap();
        assert_eq!(record.uses_left, Some(1));
        record.consume().unwrap();
        assert_eq!(record.uses_left, Some(0));
        assert_eq!(record.consume(), Err(CapTokenConsumeError::Exhausted));
        assert_eq!(record.uses_left, Some(0));
    }

    #[test]
    fn unlimited_always_consumes() {
        let mut record = CapTokenRecord::from_token(token(None));
        for _ in 0..1000 {
            record.consume().unwrap();
        }
        assert_eq!(record.uses_left, None);
    }

    #[test]
    fn revoked_beats_uses_left() {
        for uses in [None, Some(0), Some(5)] {
            let mut record = CapTokenRecord::from_token(token(uses));
            record.revoked = true;
            assert_eq!(record.consume(), Err(CapTokenConsumeError::Revoked));
            assert_eq!(record.can_consume(), Err(CapTokenConsumeError::Revoked));
            assert_eq!(record.uses_left, uses);
        }
    }

    #[test]
    fn one_time_token_consumes_once() {
        let mut record = CapTokenRecord::from_token(token(Some(1)));
        assert!(record.consume().is_ok());
        assert_eq!(record.consume(), Err(CapTokenConsumeError::Exhausted));
    }

    #[test]
    fn json_shape_and_missing_task_id() {
        let record = CapTokenRecord::from_worker_token(token(Some(1)), "t".into());
        let json = serde_json::to_value(&record).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
        for key in ["token", "uses_left", "revoked", "task_id"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let mut without = json.clone();
        without.as_object_mut().unwrap().remove("task_id");
        let back: CapTokenRecord = serde_json::from_value(without).unwrap();
        assert_eq!(back.task_id, None);
        let round: CapTokenRecord = serde_json::from_value(json).unwrap();
        assert_eq!(round, record);
    }
}
