//! What one step invocation tells the outside world about a rotation: the facts the functions
//! log as metrics and publish as an EventBridge event. Never a secret value: names, ARNs, the
//! version id, the provider, durations and the error's kind and message (which carry no secret,
//! see [`crate::error`]). What the step did, as its invoker sees it, is [`crate::report`]; the
//! events are sent by [`crate::publisher`].

use serde_json::{json, Value};

use crate::event::Step;
use crate::mode::Mode;
use crate::providers::sessions::SessionFacts;

/// The `source` of the outcome events the functions publish.
pub const EVENT_SOURCE: &str = "secret-rotation";
/// `detail-type` of the event published when a rotation finished.
pub const DETAIL_TYPE_SUCCEEDED: &str = "Secret Rotation Succeeded";
/// `detail-type` of the event published when a step failed.
pub const DETAIL_TYPE_FAILED: &str = "Secret Rotation Failed";
/// `detail-type` of the event published when createSecret declined a rotation outside the
/// secret's rotation window.
pub const DETAIL_TYPE_OUTSIDE_WINDOW: &str = "Secret Rotation Outside Window";
/// `detail-type` of the event `rotator rollback` publishes when it moved AWSCURRENT back to
/// the AWSPREVIOUS version.
pub const DETAIL_TYPE_ROLLED_BACK: &str = "Secret Rotation Rolled Back";
/// `detail-type` of the event published when a step invalidated a credential still in use
/// (the in-use policy let it go on).
pub const DETAIL_TYPE_IN_USE: &str = "Secret Rotation Credential In Use";
/// `detail-type` of the event published when a compromise response's step terminated the
/// sessions that predate a new password.
pub const DETAIL_TYPE_SESSIONS_TERMINATED: &str = "Secret Rotation Sessions Terminated";

/// How a step invocation ended, seen as part of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The step succeeded and the rotation goes on (create, set, test).
    StepDone,
    /// The step finished the rotation: the new version is AWSCURRENT.
    Succeeded,
    /// The step failed: the rotation stops here (the invoker may retry it).
    Failed,
    /// createSecret declined the rotation outside the secret's rotation window.
    OutsideWindow,
}

impl Status {
    /// Lowercase name for events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::StepDone => "step_done",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::OutsideWindow => "outside_window",
        }
    }
}

/// The facts about one step invocation that metrics and events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTelemetry {
    /// How it ended.
    pub status: Status,
    /// The function that ran (`rotate`, `finish-secret`, ...).
    pub function: &'static str,
    /// The step.
    pub step: Step,
    /// The secret's ARN (the event's SecretId when DescribeSecret did not answer).
    pub secret_arn: String,
    /// The secret's name, when DescribeSecret answered.
    pub secret_name: Option<String>,
    /// The secret's rotation mode, when known.
    pub mode: Option<Mode>,
    /// The version being rotated in (the ClientRequestToken; not secret).
    pub version: String,
    /// The provider, when known.
    pub provider: Option<String>,
    /// The provider's strategy, when known.
    pub strategy: Option<String>,
    /// Wall time of this step.
    pub step_duration_ms: u64,
    /// Wall time of the whole rotation, when this step finished it and its start is known.
    pub rotation_duration_ms: Option<u64>,
    /// The kind of failure ([`crate::RotationError::kind`]).
    pub error_type: Option<&'static str>,
    /// The failure's message (names the step and the secret, never a secret value).
    pub error_message: Option<String>,
    /// Why the step declined (outside the rotation window), when it did.
    pub reason: Option<String>,
    /// What the step found and did about live sessions, when it looked.
    pub sessions: Option<SessionFacts>,
}

impl StepTelemetry {
    /// The secret's name for metric dimensions: its name, else the id the event gave.
    pub fn secret_label(&self) -> &str {
        self.secret_name.as_deref().unwrap_or(&self.secret_arn)
    }

    /// The EventBridge `detail-type` of this outcome, or None when it is no rotation outcome
    /// (a step in the middle of a rotation that succeeded and found nobody using the credential
    /// it invalidated).
    pub fn detail_type(&self) -> Option<&'static str> {
        match self.status {
            Status::StepDone => match &self.sessions {
                Some(facts) if facts.terminated.as_ref().is_some_and(|t| t.count > 0) => {
                    Some(DETAIL_TYPE_SESSIONS_TERMINATED)
                }
                Some(facts) if facts.in_use.is_some() => Some(DETAIL_TYPE_IN_USE),
                _ => None,
            },
            Status::Succeeded => Some(DETAIL_TYPE_SUCCEEDED),
            Status::Failed => Some(DETAIL_TYPE_FAILED),
            Status::OutsideWindow => Some(DETAIL_TYPE_OUTSIDE_WINDOW),
        }
    }

    /// The event's `detail` (the schema is documented in docs/outcomes.md).
    pub fn detail(&self) -> Value {
        json!({
            "status": self.status.as_str(),
            "secretArn": self.secret_arn,
            "secretName": self.secret_name,
            "mode": self.mode.map(Mode::as_str),
            "function": self.function,
            "step": self.step.as_str(),
            "version": self.version,
            "provider": self.provider,
            "strategy": self.strategy,
            "stepDurationMs": self.step_duration_ms,
            "rotationDurationMs": self.rotation_duration_ms,
            "errorType": self.error_type,
            "errorMessage": self.error_message,
            "reason": self.reason,
            "sessions": self.sessions,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mode::Caller;

    /// A finished rotation's outcome.
    pub(crate) fn succeeded() -> StepTelemetry {
        StepTelemetry {
            status: Status::Succeeded,
            function: Caller::Rotate.function_name(),
            step: Step::Finish,
            secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf".into(),
            secret_name: Some("app".into()),
            mode: Some(Mode::SecretsManager),
            version: "v2".into(),
            provider: Some("postgres".into()),
            strategy: Some("single-user".into()),
            step_duration_ms: 12,
            rotation_duration_ms: Some(340),
            error_type: None,
            error_message: None,
            reason: None,
            sessions: None,
        }
    }

    #[test]
    fn only_rotation_outcomes_are_events() {
        let mut outcome = succeeded();
        assert_eq!(outcome.detail_type(), Some(DETAIL_TYPE_SUCCEEDED));
        let detail = outcome.detail();
        assert_eq!(detail["status"], "succeeded");
        assert_eq!(detail["provider"], "postgres");
        assert_eq!(detail["rotationDurationMs"], 340);
        assert_eq!(detail["mode"], "secrets-manager");
        outcome.status = Status::StepDone;
        assert_eq!(outcome.detail_type(), None);
        outcome.status = Status::Failed;
        assert_eq!(outcome.detail_type(), Some(DETAIL_TYPE_FAILED));
        outcome.status = Status::OutsideWindow;
        outcome.reason = Some("outside the rotation window".into());
        assert_eq!(outcome.detail_type(), Some(DETAIL_TYPE_OUTSIDE_WINDOW));
        assert_eq!(outcome.detail()["reason"], "outside the rotation window");
    }

    #[test]
    fn a_step_that_found_consumers_or_terminated_sessions_is_an_event_naming_them() {
        use crate::providers::sessions::{Policy, Session, Sessions};
        let mut outcome = succeeded();
        outcome.status = Status::StepDone;
        outcome.step = Step::Set;
        let consumer = Session {
            id: 7,
            address: Some("10.0.0.5".into()),
            application: Some("billing".into()),
            started: Some("2026-12-07T23:00:00Z".into()),
            visible: true,
        };
        let found = Sessions::of("app", [&consumer]);
        outcome.sessions = Some(SessionFacts {
            policy: Policy::Warn,
            ..SessionFacts::default()
        });
        assert_eq!(outcome.detail_type(), None, "nobody in use: no event");
        outcome.sessions = Some(SessionFacts {
            policy: Policy::Warn,
            in_use: Some(found.clone()),
            ..SessionFacts::default()
        });
        assert_eq!(outcome.detail_type(), Some(DETAIL_TYPE_IN_USE));
        let detail = outcome.detail();
        assert_eq!(detail["sessions"]["policy"], "warn");
        assert_eq!(detail["sessions"]["inUse"]["addresses"][0], "10.0.0.5");
        assert_eq!(
            detail["sessions"]["inUse"]["applicationNames"][0],
            "billing"
        );
        outcome.sessions = Some(SessionFacts {
            terminated: Some(found),
            ..SessionFacts::default()
        });
        assert_eq!(outcome.detail_type(), Some(DETAIL_TYPE_SESSIONS_TERMINATED));
        assert_eq!(outcome.detail()["sessions"]["terminated"]["count"], 1);
    }
}
