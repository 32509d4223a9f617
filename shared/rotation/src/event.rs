//! The rotation event Secrets Manager (or the workflow, or a developer) sends to a function.

use std::fmt;
use std::str::FromStr;

use rotation_json::Fields;
use secrecy::SecretString;
use serde_json::Value;

use crate::error::{Result, RotationError};

/// One of the four steps of Secrets Manager's rotation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// createSecret: generate new credentials and store them as AWSPENDING.
    Create,
    /// setSecret: make the pending credentials valid in the target system.
    Set,
    /// testSecret: prove the pending credentials work.
    Test,
    /// finishSecret: move AWSCURRENT to the pending version.
    Finish,
}

impl Step {
    /// All steps, in protocol order.
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

    /// The spelling Secrets Manager sends (`createSecret`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }

    /// The name of the Lambda binary that runs only this step.
    pub const fn function_name(self) -> &'static str {
        match self {
            Step::Create => "create-secret",
            Step::Set => "set-secret",
            Step::Test => "test-secret",
            Step::Finish => "finish-secret",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Step {
    type Err = RotationError;

    /// Accepts `createSecret` and `create_secret` (both spellings appear in AWS's documentation).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "createSecret" | "create_secret" => Ok(Step::Create),
            "setSecret" | "set_secret" => Ok(Step::Set),
            "testSecret" | "test_secret" => Ok(Step::Test),
            "finishSecret" | "finish_secret" => Ok(Step::Finish),
            other => Err(RotationError::InvalidEvent(format!(
                "field `Step`: unknown step {other:?}; expected createSecret, setSecret, testSecret or finishSecret"
            ))),
        }
    }
}

/// What the invoker knows about the rotation beyond Secrets Manager's four fields. The workflow
/// passes it to finishSecret (which reads no secret value) so that the rotation's outcome names
/// its provider and duration; Secrets Manager sends none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationContext {
    /// `Provider`: the provider an earlier step reported (e.g. `postgres`).
    pub provider: Option<String>,
    /// `Strategy`: the strategy an earlier step reported (e.g. `alternating-users`).
    pub strategy: Option<String>,
    /// `StartedAt`: when the rotation started, as an RFC 3339 date-time.
    pub started_at: Option<String>,
}

/// A rotation event: which step to run for which secret version.
///
/// `RotationToken` is sensitive (it authorises PutSecretValue across accounts): it is kept as a
/// [`SecretString`], so Debug output redacts it, and it is never logged.
#[derive(Debug, Clone)]
pub struct RotationEvent {
    /// The step to run.
    pub step: Step,
    /// The secret's ARN (or name).
    pub secret_id: String,
    /// The version id of the new secret version (AWSPENDING).
    pub client_request_token: String,
    /// Token to pass to PutSecretValue, when Secrets Manager sends one.
    pub rotation_token: Option<SecretString>,
    /// What the invoker knows about the rotation (optional; see [`RotationContext`]).
    pub context: RotationContext,
}

impl RotationEvent {
    /// Parses an event, naming the field that is missing or of the wrong type.
    pub fn from_value(value: &Value) -> Result<Self> {
        let fields = Fields::of(value, RotationError::InvalidEvent)?;
        let text = |field: &str| fields.maybe_empty_str(field);
        // An id of only blanks is as empty as no id.
        let required = |field: &str| match fields.required_str(field)? {
            blank if blank.trim().is_empty() => Err(fields.empty(field)),
            id => Ok(id),
        };
        let step = required("Step")?.parse()?;
        let secret_id = required("SecretId")?.to_owned();
        let client_request_token = required("ClientRequestToken")?.to_owned();
        let rotation_token = text("RotationToken")?
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned()));
        let started_at = text("StartedAt")?.map(str::to_owned);
        if let Some(raw) = &started_at {
            if aws_smithy_types::DateTime::from_str(
                raw,
                aws_smithy_types::date_time::Format::DateTime,
            )
            .is_err()
            {
                return Err(RotationError::InvalidEvent(
                    "field `StartedAt`: expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z"
                        .to_owned(),
                ));
            }
        }
        let context = RotationContext {
            provider: text("Provider")?.map(str::to_owned),
            strategy: text("Strategy")?.map(str::to_owned),
            started_at,
        };
        Ok(RotationEvent {
            step,
            secret_id,
            client_request_token,
            rotation_token,
            context,
        })
    }

    /// The event as JSON, in Secrets Manager's shape (`RotationToken` included when present).
    pub fn to_value(&self) -> Value {
        use secrecy::ExposeSecret;
        let mut value = serde_json::json!({
            "Step": self.step.as_str(),
            "SecretId": self.secret_id,
            "ClientRequestToken": self.client_request_token,
        });
        if let Some(token) = &self.rotation_token {
            value["RotationToken"] = Value::String(token.expose_secret().to_owned());
        }
        for (field, text) in [
            ("Provider", &self.context.provider),
            ("Strategy", &self.context.strategy),
            ("StartedAt", &self.context.started_at),
        ] {
            if let Some(text) = text {
                value[field] = Value::String(text.clone());
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_both_step_spellings() {
        for (a, b, step) in [
            ("createSecret", "create_secret", Step::Create),
            ("setSecret", "set_secret", Step::Set),
            ("testSecret", "test_secret", Step::Test),
            ("finishSecret", "finish_secret", Step::Finish),
        ] {
            assert_eq!(a.parse::<Step>().unwrap(), step);
            assert_eq!(b.parse::<Step>().unwrap(), step);
        }
    }

    #[test]
    fn parses_a_full_event_and_redacts_the_rotation_token() {
        let event = RotationEvent::from_value(&json!({
            "Step": "setSecret",
            "SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:x",
            "ClientRequestToken": "tok",
            "RotationToken": "very-sensitive-token"
        }))
        .unwrap();
        assert_eq!(event.step, Step::Set);
        assert_eq!(event.client_request_token, "tok");
        let debug = format!("{event:?}");
        assert!(!debug.contains("very-sensitive-token"), "{debug}");
        assert_eq!(event.to_value()["RotationToken"], "very-sensitive-token");
        assert_eq!(event.context, RotationContext::default());
    }

    #[test]
    fn carries_the_workflow_context_both_ways() {
        let value = json!({
            "Step": "finishSecret",
            "SecretId": "arn",
            "ClientRequestToken": "tok",
            "Provider": "postgres",
            "Strategy": "single-user",
            "StartedAt": "2024-05-01T12:00:00.123Z"
        });
        let event = RotationEvent::from_value(&value).unwrap();
        assert_eq!(event.context.provider.as_deref(), Some("postgres"));
        assert_eq!(event.context.strategy.as_deref(), Some("single-user"));
        assert_eq!(event.to_value(), value);
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (json!([]), "JSON object"),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t"}),
                "`Step` is missing",
            ),
            (
                json!({"Step": "rotate", "SecretId": "s", "ClientRequestToken": "t"}),
                "unknown step",
            ),
            (
                json!({"Step": "setSecret", "ClientRequestToken": "t"}),
                "`SecretId` is missing",
            ),
            (
                json!({"Step": "setSecret", "SecretId": 5, "ClientRequestToken": "t"}),
                "`SecretId`: expected a string",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": ""}),
                "`ClientRequestToken` is empty",
            ),
            (
                json!({"Step": "setSecret", "SecretId": " ", "ClientRequestToken": "t"}),
                "`SecretId` is empty",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 1}),
                "`RotationToken`",
            ),
            (
                json!({"Step": "finishSecret", "SecretId": "s", "ClientRequestToken": "t", "Provider": 1}),
                "`Provider`: expected a string",
            ),
            (
                json!({"Step": "finishSecret", "SecretId": "s", "ClientRequestToken": "t", "StartedAt": "yesterday"}),
                "`StartedAt`: expected an RFC 3339",
            ),
        ];
        for (value, expected) in cases {
            let err = RotationEvent::from_value(&value).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
