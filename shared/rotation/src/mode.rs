//! Which mode rotates a secret. A secret is rotated by exactly one of them:
//!
//! - **Secrets Manager mode** (the default): Secrets Manager's own rotation invokes the `rotate`
//!   function; rotation must be enabled on the secret.
//! - **workflow mode** (tag `rotation-mode` = `workflow`): a Step Functions state machine on an
//!   EventBridge schedule invokes the four step functions; Secrets Manager's rotation must be
//!   off, so that nothing else rotates the secret.
//!
//! A function refuses a secret configured for the other mode.

use std::collections::HashMap;
use std::fmt;

use crate::error::{Result, RotationError};
use crate::event::Step;
use crate::secrets_manager::SecretMetadata;

/// The tag that names a secret's rotation mode.
pub const MODE_TAG: &str = "rotation-mode";

/// How a secret is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Secrets Manager invokes the `rotate` function (tag absent or `secrets-manager`).
    SecretsManager,
    /// The workflow invokes the step functions (tag `workflow`).
    Workflow,
}

impl Mode {
    /// The tag value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SecretsManager => "secrets-manager",
            Mode::Workflow => "workflow",
        }
    }

    /// The mode a secret's tags ask for.
    pub fn of(tags: &HashMap<String, String>, secret: &str) -> Result<Self> {
        match tags.get(MODE_TAG).map(|v| v.trim()) {
            None | Some("secrets-manager") => Ok(Mode::SecretsManager),
            Some("workflow") => Ok(Mode::Workflow),
            Some(other) => Err(RotationError::WrongMode {
                secret: secret.to_owned(),
                problem: format!(
                    "tag `{MODE_TAG}` has the unsupported value {other:?}; expected secrets-manager or workflow"
                ),
            }),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which function is running: `rotate` (any step) or one step function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The `rotate` function: Secrets Manager mode.
    Rotate,
    /// A step function (`create-secret`, ...): workflow mode, this step only.
    Step(Step),
}

impl Caller {
    /// The function that runs `step` of a secret rotated in `mode`.
    pub const fn of(mode: Mode, step: Step) -> Caller {
        match mode {
            Mode::SecretsManager => Caller::Rotate,
            Mode::Workflow => Caller::Step(step),
        }
    }

    /// The function's name.
    pub const fn function_name(self) -> &'static str {
        match self {
            Caller::Rotate => "rotate",
            Caller::Step(step) => step.function_name(),
        }
    }
}

/// The name of the compromise response's function.
pub const COMPROMISE_FUNCTION: &str = "compromise";

/// Every Lambda function of this project by name: `rotate`, the four step functions in protocol
/// order, and `compromise`.
pub const FUNCTIONS: [&str; 6] = [
    Caller::Rotate.function_name(),
    Caller::Step(Step::Create).function_name(),
    Caller::Step(Step::Set).function_name(),
    Caller::Step(Step::Test).function_name(),
    Caller::Step(Step::Finish).function_name(),
    COMPROMISE_FUNCTION,
];

/// Refuses a secret configured for the other mode, and checks what each mode requires of
/// Secrets Manager's rotation setting.
pub fn check(caller: Caller, metadata: &SecretMetadata) -> Result<Mode> {
    let mode = Mode::of(&metadata.tags, &metadata.arn)?;
    let wrong = |problem: String| RotationError::WrongMode {
        secret: metadata.arn.clone(),
        problem,
    };
    match (caller, mode) {
        (Caller::Rotate, Mode::SecretsManager) if !metadata.rotation_enabled => {
            Err(RotationError::RotationDisabled {
                secret: metadata.arn.clone(),
            })
        }
        (Caller::Rotate, Mode::SecretsManager) => Ok(mode),
        (Caller::Rotate, Mode::Workflow) => Err(wrong(format!(
            "the secret is tagged {MODE_TAG}=workflow: the step functions rotate it, not the rotate function"
        ))),
        (Caller::Step(_), Mode::SecretsManager) => Err(wrong(format!(
            "the secret is rotated by Secrets Manager through the rotate function; tag it {MODE_TAG}=workflow (and turn Secrets Manager's rotation off) to rotate it with the step functions"
        ))),
        (Caller::Step(_), Mode::Workflow) if metadata.rotation_enabled => Err(wrong(format!(
            "the secret is tagged {MODE_TAG}=workflow but Secrets Manager's rotation is also enabled; turn one of them off"
        ))),
        (Caller::Step(_), Mode::Workflow) => Ok(mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_runs_a_step_in_its_own_function() {
        assert_eq!(Caller::of(Mode::SecretsManager, Step::Set), Caller::Rotate);
        assert_eq!(
            Caller::of(Mode::Workflow, Step::Set),
            Caller::Step(Step::Set)
        );
        assert_eq!(
            FUNCTIONS,
            [
                "rotate",
                "create-secret",
                "set-secret",
                "test-secret",
                "finish-secret",
                "compromise"
            ]
        );
    }

    fn metadata(tag: Option<&str>, enabled: bool) -> SecretMetadata {
        SecretMetadata {
            arn: "arn".into(),
            name: "name".into(),
            rotation_enabled: enabled,
            versions: Default::default(),
            tags: tag
                .map(|t| HashMap::from([(MODE_TAG.to_owned(), t.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn each_function_accepts_only_its_mode() {
        let step = Caller::Step(Step::Set);
        assert_eq!(
            check(Caller::Rotate, &metadata(None, true)).unwrap(),
            Mode::SecretsManager
        );
        assert_eq!(
            check(Caller::Rotate, &metadata(Some("secrets-manager"), true)).unwrap(),
            Mode::SecretsManager
        );
        assert_eq!(
            check(step, &metadata(Some("workflow"), false)).unwrap(),
            Mode::Workflow
        );
        for (caller, tag, enabled, needle) in [
            (Caller::Rotate, None, false, "rotation is not enabled"),
            (
                Caller::Rotate,
                Some("workflow"),
                false,
                "not the rotate function",
            ),
            (step, None, true, "tag it rotation-mode=workflow"),
            (step, Some("workflow"), true, "turn one of them off"),
            (step, Some("cron"), false, "unsupported value"),
        ] {
            let err = check(caller, &metadata(tag, enabled))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }
}
