//! What a step returns to its invoker: outcome, timing and API calls, never a secret.

use serde::{Deserialize, Serialize};

use crate::event::Step;

/// What a step did (the `outcome` of its report and log line). How the step ended as part of a
/// rotation, for metrics and events, is [`crate::telemetry::Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The step did its work.
    Done,
    /// The step found its work already done (a retry or a re-run after a crash) and changed nothing.
    AlreadyDone,
    /// The token is already AWSCURRENT: the rotation finished, nothing to do.
    AlreadyCurrent,
    /// Outside the secret's rotation window (tag `rotation-window`): no rotation was started
    /// and the step changed nothing ([`crate::window`]).
    OutsideWindow,
}

impl Outcome {
    /// A short lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already_done",
            Outcome::AlreadyCurrent => "already_current",
            Outcome::OutsideWindow => "outside_window",
        }
    }
}

/// The result of one step, returned as the function's response and logged as one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// The step that ran (Secrets Manager's spelling).
    pub step: String,
    /// The secret's ARN.
    pub secret_arn: String,
    /// The ClientRequestToken (the new version's id; not secret).
    pub token: String,
    /// The provider that handled the secret, when the step read the secret.
    pub provider: Option<String>,
    /// The provider's strategy (single-user, alternating-users, ...).
    pub strategy: Option<String>,
    /// What the step did.
    pub outcome: Outcome,
    /// Wall time of the step in milliseconds.
    pub duration_ms: u64,
    /// Secrets Manager API calls the step made.
    pub secrets_manager_calls: u32,
    /// Warnings an operator should see (for example, TLS turned off by the secret).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the step did nothing, when it declined (outside the rotation window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the step found and did about live sessions: the in-use check before it
    /// invalidated a credential, the sessions a compromise response terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<crate::providers::sessions::SessionFacts>,
}

impl StepReport {
    /// The step as parsed back from the report.
    pub fn step(&self) -> Option<Step> {
        self.step.parse().ok()
    }
}
