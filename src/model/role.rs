//! Roles and verbs, with their snake_case wire names.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Who holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The orchestrator's session; exempt from expiry.
    #[serde(alias = "Operator")]
    Operator,
    /// An agent dispatched for one task.
    #[serde(alias = "Worker")]
    Worker,
    /// Read-only access.
    #[serde(alias = "Observer")]
    Observer,
    /// Human oversight.
    #[serde(alias = "Senior")]
    Senior,
}

impl Role {
    /// Every role, in the order of their v2 codes.
    pub const ALL: [Role; 4] = [Role::Operator, Role::Worker, Role::Observer, Role::Senior];

    /// The wire name, e.g. `"worker"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Worker => "worker",
            Role::Observer => "observer",
            Role::Senior => "senior",
        }
    }

    /// The capitalised name the `mlua-swarm` signing text uses, e.g. `"Worker"`.
    pub const fn capitalised(self) -> &'static str {
        match self {
            Role::Operator => "Operator",
            Role::Worker => "Worker",
            Role::Observer => "Observer",
            Role::Senior => "Senior",
        }
    }

    /// The one-byte code of the `v2` signing format.
    pub const fn code(self) -> u8 {
        match self {
            Role::Operator => 0,
            Role::Worker => 1,
            Role::Observer => 2,
            Role::Senior => 3,
        }
    }

    /// Operator tokens never leave the orchestrator, so they are exempt from expiry.
    pub const fn expires(self) -> bool {
        !matches!(self, Role::Operator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! verbs {
    ($($variant:ident => $wire:literal,)*) => {
        /// An action a token holder asks the orchestrator to perform.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum Verb {
            $(
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )*
        }

        impl Verb {
            /// Every verb, in declaration order.
            pub const ALL: [Verb; 24] = [$(Verb::$variant,)*];

            /// The wire name, e.g. `"fetch_prompt"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Verb::$variant => $wire,)*
                }
            }
        }
    };
}

verbs! {
    StartTask => "start_task",
    DispatchAttempt => "dispatch_attempt",
    MintWorkerToken => "mint_worker_token",
    ReadTaskState => "read_task_state",
    CancelTask => "cancel_task",
    QuerySenior => "query_senior",
    MarkPass => "mark_pass",
    MarkBlocked => "mark_blocked",
    AttachSession => "attach_session",
    DetachSession => "detach_session",
    Heartbeat => "heartbeat",
    PollTask => "poll_task",
    FetchPrompt => "fetch_prompt",
    FetchData => "fetch_data",
    PostResult => "post_result",
    VerifyToken => "verify_token",
    EmitOutput => "emit_output",
    SubscribeEvents => "subscribe_events",
    ReadTrace => "read_trace",
    AnswerQuery => "answer_query",
    OverrideVerdict => "override_verdict",
    PauseLoop => "pause_loop",
    ResumeLoop => "resume_loop",
    InjectDirective => "inject_directive",
}

impl Verb {
    /// The bit of this verb in a [`crate::Gate`] row.
    pub(crate) const fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// Verbs that touch one task's state: a Worker must name its own bound
    /// task (docs/protocol.md step 6; the reference engine gates the same six, its
    /// output submission checking `emit_output`).
    pub const fn is_ownership_gated(self) -> bool {
        matches!(
            self,
            Verb::FetchPrompt
                | Verb::PostResult
                | Verb::EmitOutput
                | Verb::ReadTaskState
                | Verb::CancelTask
                | Verb::PollTask
        )
    }
}

impl Verb {
    /// Verbs that make something under a task: a Worker may name its own
    /// bound task or a task below it, nothing else. (The reference engine
    /// exempts these two; that lets any Worker mint itself an unlimited
    /// token for any task in the store.)
    pub const fn is_subtree_gated(self) -> bool {
        matches!(self, Verb::StartTask | Verb::DispatchAttempt)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            let capitalised = format!("\"{}\"", role.capitalised());
            assert_eq!(serde_json::from_str::<Role>(&capitalised).unwrap(), role);
        }
        let mut names: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
        for verb in Verb::ALL {
            assert_eq!(verb.as_str().parse::<Verb>().unwrap(), verb);
            let json = serde_json::to_string(&verb).unwrap();
            assert_eq!(json, format!("\"{}\"", verb.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 24);
    }

    #[test]
    fn unknown_names_are_invalid_arguments() {
        assert_eq!(
            "Operator".parse::<Role>().unwrap_err().code(),
            crate::ErrorCode::InvalidArgument
        );
        assert!("fetch-prompt".parse::<Verb>().is_err());
        assert!("".parse::<Verb>().is_err());
    }

    #[test]
    fn role_codes_and_capitals() {
        let codes: Vec<u8> = Role::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3]);
        assert_eq!(Role::Senior.capitalised(), "Senior");
        assert!(!Role::Operator.expires());
        assert!(Role::Worker.expires());
    }
}
