//! Errors of the compromise response: they name the field, the secret or the version, never a
//! secret value.

use std::time::Duration;

use crate::error::RotationError;

/// Why the compromise response could not retire a secret's credentials.
#[derive(Debug, thiserror::Error)]
pub enum CompromiseError {
    /// The request is not a valid "Secret Compromised" event.
    #[error("invalid compromise request: {0}")]
    Request(String),
    /// The function's configuration does not allow the response.
    #[error("configuration: {0}")]
    Configuration(String),
    /// Reading the secret or its rotation state failed.
    #[error(transparent)]
    Rotation(#[from] RotationError),
    /// The secret cannot be rotated as it is configured.
    #[error("secret {secret}: {problem}")]
    NotRotatable {
        /// The secret's ARN.
        secret: String,
        /// What prevents its rotation.
        problem: String,
    },
    /// Starting a rotation failed.
    #[error("secret {secret}: cannot start rotation {version}: {detail}")]
    Start {
        /// The secret's ARN.
        secret: String,
        /// The version the rotation would create.
        version: String,
        /// What failed.
        detail: String,
    },
    /// A rotation did not finish in time.
    #[error("secret {secret}: rotation {version} did not finish within {}s ({state})", waited.as_secs())]
    Timeout {
        /// The secret's ARN.
        secret: String,
        /// The version being rotated in.
        version: String,
        /// How long the response waited.
        waited: Duration,
        /// The labels last seen.
        state: String,
    },
    /// A bound on the response (secrets per incident, rotations per secret per hour) would be
    /// passed: nothing was rotated.
    #[error("refused: {0}")]
    Bound(String),
    /// A rotation's version lost AWSPENDING without becoming AWSCURRENT: the rotation was
    /// abandoned (its AWSPENDING label removed) and will not finish.
    #[error("secret {secret}: rotation {version} was abandoned: it is neither AWSPENDING nor AWSCURRENT ({state})")]
    Abandoned {
        /// The secret's ARN.
        secret: String,
        /// The version that was being rotated in.
        version: String,
        /// The labels seen.
        state: String,
    },
}

impl CompromiseError {
    /// A stable name for the kind of failure: the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            CompromiseError::Request(_) => "InvalidRequest",
            CompromiseError::Configuration(_) => "Configuration",
            CompromiseError::Rotation(e) => e.kind(),
            CompromiseError::NotRotatable { .. } => "NotRotatable",
            CompromiseError::Start { .. } => "RotationNotStarted",
            CompromiseError::Timeout { .. } => "RotationTimeout",
            CompromiseError::Abandoned { .. } => "RotationAbandoned",
            CompromiseError::Bound(_) => "LimitExceeded",
        }
    }
}
