//! [`CapTokenError`]: every denial and every bad input, each with a stable code.
//!
//! Messages name fingerprints, roles, verbs and task ids, never a nonce or a secret:
//! the only token-derived text an error can carry is a [`Fingerprint`].

use crate::fingerprint::Fingerprint;
use crate::role::{Role, Verb};
use core::fmt;
use core::str::FromStr;

/// The fourteen stable error codes of docs/protocol.md, as strings via [`ErrorCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `ERR_MALFORMED_TOKEN`
    MalformedToken,
    /// `ERR_BAD_SIGNATURE`
    BadSignature,
    /// `ERR_TOKEN_EXPIRED`
    TokenExpired,
    /// `ERR_ROLE_VIOLATION`
    RoleViolation,
    /// `ERR_TOKEN_NOT_FOUND`
    TokenNotFound,
    /// `ERR_TOKEN_TASK_MISMATCH`
    TokenTaskMismatch,
    /// `ERR_TOKEN_REVOKED`
    TokenRevoked,
    /// `ERR_TOKEN_USES_EXHAUSTED`
    TokenUsesExhausted,
    /// `ERR_SPAWN_DEPTH_EXCEEDED`
    SpawnDepthExceeded,
    /// `ERR_TASK_NOT_FOUND`
    TaskNotFound,
    /// `ERR_INVALID_ARGUMENT`
    InvalidArgument,
    /// `ERR_SNAPSHOT_INVALID`
    SnapshotInvalid,
    /// `ERR_LIMIT_EXCEEDED`
    LimitExceeded,
    /// `ERR_STORE_UNAVAILABLE`
    StoreUnavailable,
}

impl ErrorCode {
    /// Every code, in the order of docs/protocol.md.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::MalformedToken,
        ErrorCode::BadSignature,
        ErrorCode::TokenExpired,
        ErrorCode::RoleViolation,
        ErrorCode::TokenNotFound,
        ErrorCode::TokenTaskMismatch,
        ErrorCode::TokenRevoked,
        ErrorCode::TokenUsesExhausted,
        ErrorCode::SpawnDepthExceeded,
        ErrorCode::TaskNotFound,
        ErrorCode::InvalidArgument,
        ErrorCode::SnapshotInvalid,
        ErrorCode::LimitExceeded,
        ErrorCode::StoreUnavailable,
    ];

    /// The wire string, e.g. `"ERR_TOKEN_REVOKED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedToken => "ERR_MALFORMED_TOKEN",
            ErrorCode::BadSignature => "ERR_BAD_SIGNATURE",
            ErrorCode::TokenExpired => "ERR_TOKEN_EXPIRED",
            ErrorCode::RoleViolation => "ERR_ROLE_VIOLATION",
            ErrorCode::TokenNotFound => "ERR_TOKEN_NOT_FOUND",
            ErrorCode::TokenTaskMismatch => "ERR_TOKEN_TASK_MISMATCH",
            ErrorCode::TokenRevoked => "ERR_TOKEN_REVOKED",
            ErrorCode::TokenUsesExhausted => "ERR_TOKEN_USES_EXHAUSTED",
            ErrorCode::SpawnDepthExceeded => "ERR_SPAWN_DEPTH_EXCEEDED",
            ErrorCode::TaskNotFound => "ERR_TASK_NOT_FOUND",
            ErrorCode::InvalidArgument => "ERR_INVALID_ARGUMENT",
            ErrorCode::SnapshotInvalid => "ERR_SNAPSHOT_INVALID",
            ErrorCode::LimitExceeded => "ERR_LIMIT_EXCEEDED",
            ErrorCode::StoreUnavailable => "ERR_STORE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Displays an optional task id as `task "id"` or `no task`.
struct MaybeTask<'a>(&'a Option<String>);

impl fmt::Display for MaybeTask<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(task) => write!(f, "task {task:?}"),
            None => f.write_str("no task"),
        }
    }
}

/// Every way a call can be denied or an input refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapTokenError {
    /// The bearer is not URL-safe base64 of a token's JSON, or is too long.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What was wrong, in words that never quote the input.
        reason: &'static str,
    },
    /// The signature does not match, or the token is of the store's other format.
    #[error("bad signature")]
    BadSignature,
    /// The token's `expire_at` has passed.
    #[error("token {fingerprint} expired")]
    TokenExpired {
        /// The token's public identity.
        fingerprint: Fingerprint,
    },
    /// The gate does not let this role call this verb.
    #[error("role {role} may not call {verb}")]
    RoleViolation {
        /// The token's role.
        role: Role,
        /// The verb it tried.
        verb: Verb,
    },
    /// The store holds no record for this token.
    #[error("no record for token {fingerprint}")]
    TokenNotFound {
        /// The token's public identity.
        fingerprint: Fingerprint,
    },
    /// A Worker token named a task other than the one it is bound to.
    #[error("token {fingerprint} is bound to {} but the call names {}", MaybeTask(.bound), MaybeTask(.arg))]
    TokenTaskMismatch {
        /// The token's public identity.
        fingerprint: Fingerprint,
        /// The task the token is bound to.
        bound: Option<String>,
        /// The task the call named.
        arg: Option<String>,
    },
    /// The token was revoked.
    #[error("token {fingerprint} is revoked")]
    TokenRevoked {
        /// The token's public identity.
        fingerprint: Fingerprint,
    },
    /// The token has no uses left.
    #[error("token {fingerprint} has no uses left")]
    TokenUsesExhausted {
        /// The token's public identity.
        fingerprint: Fingerprint,
    },
    /// A child task would reach the maximum spawn depth.
    #[error("spawn depth {current} would reach the maximum of {max}")]
    SpawnDepthExceeded {
        /// The depth the child task would have.
        current: u32,
        /// The store's `max_spawn_depth`.
        max: u32,
    },
    /// The store tracks no task with this id.
    #[error("{} is not tracked", MaybeTask(.task_id))]
    TaskNotFound {
        /// The task id that was looked up (`None` for a Worker bound to no task).
        task_id: Option<String>,
    },
    /// An argument was missing, of the wrong type, or out of range.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// A snapshot could not be restored.
    #[error("invalid snapshot: {reason}")]
    SnapshotInvalid {
        /// What was wrong.
        reason: String,
    },
    /// The call would take the store past one of its limits; nothing changed.
    #[error("limit {limit} of {max} reached")]
    LimitExceeded {
        /// The limit's option name, e.g. `maxTasksPerTree`.
        limit: &'static str,
        /// The limit's value.
        max: u64,
    },
    /// The store cannot answer: closed, failed, or its server did not answer
    /// in time. The call may or may not have taken effect.
    #[error("store unavailable: {reason}")]
    StoreUnavailable {
        /// What happened, in words that never quote the input.
        reason: String,
    },
}

impl CapTokenError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CapTokenError::MalformedToken { .. } => ErrorCode::MalformedToken,
            CapTokenError::BadSignature => ErrorCode::BadSignature,
            CapTokenError::TokenExpired { .. } => ErrorCode::TokenExpired,
            CapTokenError::RoleViolation { .. } => ErrorCode::RoleViolation,
            CapTokenError::TokenNotFound { .. } => ErrorCode::TokenNotFound,
            CapTokenError::TokenTaskMismatch { .. } => ErrorCode::TokenTaskMismatch,
            CapTokenError::TokenRevoked { .. } => ErrorCode::TokenRevoked,
            CapTokenError::TokenUsesExhausted { .. } => ErrorCode::TokenUsesExhausted,
            CapTokenError::SpawnDepthExceeded { .. } => ErrorCode::SpawnDepthExceeded,
            CapTokenError::TaskNotFound { .. } => ErrorCode::TaskNotFound,
            CapTokenError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            CapTokenError::SnapshotInvalid { .. } => ErrorCode::SnapshotInvalid,
            CapTokenError::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            CapTokenError::StoreUnavailable { .. } => ErrorCode::StoreUnavailable,
        }
    }

    /// The fingerprint of the token the error is about, where one is known.
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        match self {
            CapTokenError::TokenExpired { fingerprint }
            | CapTokenError::TokenNotFound { fingerprint }
            | CapTokenError::TokenTaskMismatch { fingerprint, .. }
            | CapTokenError::TokenRevoked { fingerprint }
            | CapTokenError::TokenUsesExhausted { fingerprint } => Some(fingerprint),
            _ => None,
        }
    }

    // Out of line, as `snapshot`: only ever on a refusal, and reached from
    // many places that would each get a copy.
    #[inline(never)]
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        CapTokenError::InvalidArgument {
            reason: reason.into(),
        }
    }

    #[inline(never)]
    pub(crate) fn snapshot(reason: impl Into<String>) -> Self {
        CapTokenError::SnapshotInvalid {
            reason: reason.into(),
        }
    }
}

// Parsing wire names and hex: the one place these types meet the error type,
// so that `role` and `fingerprint` stay below `error`.

impl FromStr for Role {
    type Err = CapTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| CapTokenError::invalid("unknown role"))
    }
}

impl FromStr for Verb {
    type Err = CapTokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verb::ALL
            .into_iter()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| CapTokenError::invalid("unknown verb"))
    }
}

impl FromStr for Fingerprint {
    type Err = CapTokenError;

    /// Parse 64 lowercase hex characters.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::from_hex(s)
            .ok_or_else(|| CapTokenError::invalid("fingerprint is not 64 lowercase hex characters"))
    }
}
