//! [`Gate`]: which role may call which verb.

use crate::role::{Role, Verb};

/// A role-to-verbs table, one bit per verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    rows: [u32; 4],
}

const fn row(verbs: &[Verb]) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < verbs.len() {
        // A const loop cannot use iterators; `i < len` keeps this in bounds.
        #[allow(clippy::indexing_slicing)]
        {
            bits |= verbs[i].bit();
        }
        i += 1;
    }
    bits
}

const OPERATOR_VERBS: &[Verb] = &[
    Verb::StartTask,
    Verb::DispatchAttempt,
    Verb::MintWorkerToken,
    Verb::ReadTaskState,
    Verb::CancelTask,
    Verb::QuerySenior,
    Verb::MarkPass,
    Verb::MarkBlocked,
    Verb::AttachSession,
    Verb::DetachSession,
    Verb::Heartbeat,
    Verb::PollTask,
];
const WORKER_VERBS: &[Verb] = &[
    Verb::FetchPrompt,
    Verb::FetchData,
    Verb::PostResult,
    Verb::VerifyToken,
    Verb::EmitOutput,
    Verb::StartTask,
    Verb::DispatchAttempt,
    Verb::ReadTaskState,
    Verb::PollTask,
    Verb::CancelTask,
];
const OBSERVER_VERBS: &[Verb] = &[Verb::SubscribeEvents, Verb::ReadTrace, Verb::ReadTaskState];
const SENIOR_VERBS: &[Verb] = &[
    Verb::AnswerQuery,
    Verb::OverrideVerdict,
    Verb::PauseLoop,
    Verb::ResumeLoop,
    Verb::InjectDirective,
];

impl Default for Gate {
    /// The default table of docs/protocol.md.
    fn default() -> Self {
        Gate {
            rows: [
                row(OPERATOR_VERBS),
                row(WORKER_VERBS),
                row(OBSERVER_VERBS),
                row(SENIOR_VERBS),
            ],
        }
    }
}

impl Gate {
    /// A table that allows nothing; build a custom one with [`Gate::with`].
    pub const fn deny_all() -> Self {
        Gate { rows: [0; 4] }
    }

    /// This table with `role`'s row replaced by exactly `verbs`.
    pub fn with(mut self, role: Role, verbs: &[Verb]) -> Self {
        *self.row_mut(role) = row(verbs);
        self
    }

    /// Whether `role` may call `verb`.
    pub fn allows(&self, role: Role, verb: Verb) -> bool {
        self.row(role) & verb.bit() != 0
    }

    /// The verbs `role` may call, in [`Verb::ALL`] order.
    pub fn verbs(&self, role: Role) -> Vec<Verb> {
        Verb::ALL
            .into_iter()
            .filter(|verb| self.allows(role, *verb))
            .collect()
    }

    fn row(&self, role: Role) -> u32 {
        let [operator, worker, observer, senior] = self.rows;
        match role {
            Role::Operator => operator,
            Role::Worker => worker,
            Role::Observer => observer,
            Role::Senior => senior,
        }
    }

    fn row_mut(&mut self, role: Role) -> &mut u32 {
        let [operator, worker, observer, senior] = &mut self.rows;
        match role {
            Role::Operator => operator,
            Role::Worker => worker,
            Role::Observer => observer,
            Role::Senior => senior,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_spec() {
        let gate = Gate::default();
        let names = |role| -> Vec<&str> { gate.verbs(role).iter().map(|v| v.as_str()).collect() };
        assert_eq!(
            names(Role::Operator),
            [
                "start_task",
                "dispatch_attempt",
                "mint_worker_token",
                "read_task_state",
                "cancel_task",
                "query_senior",
                "mark_pass",
                "mark_blocked",
                "attach_session",
                "detach_session",
                "heartbeat",
                "poll_task"
            ]
        );
        assert_eq!(
            names(Role::Worker),
            [
                "start_task",
                "dispatch_attempt",
                "read_task_state",
                "cancel_task",
                "poll_task",
                "fetch_prompt",
                "fetch_data",
                "post_result",
                "verify_token",
                "emit_output"
            ]
        );
        assert_eq!(
            names(Role::Observer),
            ["read_task_state", "subscribe_events", "read_trace"]
        );
        assert_eq!(
            names(Role::Senior),
            [
                "answer_query",
                "override_verdict",
                "pause_loop",
                "resume_loop",
                "inject_directive"
            ]
        );
        // Every verb is callable by some role in the default table.
        for verb in Verb::ALL {
            assert!(Role::ALL.iter().any(|r| gate.allows(*r, verb)), "{verb}");
        }
    }

    #[test]
    fn custom_table_replaces_only_the_named_row() {
        let gate = Gate::default().with(Role::Observer, &[Verb::Heartbeat]);
        assert!(gate.allows(Role::Observer, Verb::Heartbeat));
        assert!(!gate.allows(Role::Observer, Verb::ReadTrace));
        assert!(gate.allows(Role::Worker, Verb::FetchPrompt));
        let none = Gate::deny_all();
        for role in Role::ALL {
            assert!(none.verbs(role).is_empty());
        }
    }
}
