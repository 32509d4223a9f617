//! The error type of the rotation engine.
//!
//! Messages name the step, the field or the credential that failed, and never carry a secret
//! value: database errors are reduced to their cause, JSON errors to the field name.

use std::fmt;

use crate::event::Step;

/// Which credential a database login used, so that an error can say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The AWSCURRENT version of the secret.
    Current,
    /// The AWSPREVIOUS version of the secret.
    Previous,
    /// The AWSPENDING version of the secret (the one being rotated in).
    Pending,
    /// The master secret named by `masterarn`.
    Master,
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::Current => "current (AWSCURRENT)",
            Credential::Previous => "previous (AWSPREVIOUS)",
            Credential::Pending => "pending (AWSPENDING)",
            Credential::Master => "master (masterarn)",
        })
    }
}

/// Why a database connection or statement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The server rejected the user name or password.
    Authentication,
    /// The server could not be reached, refused the connection or did not answer in time.
    Network,
    /// The TLS handshake failed: no TLS on the server, an untrusted or mismatched certificate.
    Tls,
    /// The server accepted the login but refused a statement.
    Statement,
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DbFailure::Authentication => "authentication failed",
            DbFailure::Network => "network error",
            DbFailure::Tls => "TLS error",
            DbFailure::Statement => "statement failed",
        })
    }
}

/// Everything that can make a rotation step fail.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The invocation event is not a valid rotation event.
    #[error("invalid rotation event: {0}")]
    InvalidEvent(String),
    /// A step function was invoked for a step it does not run.
    #[error("this function runs only the {expected} step, but the event asks for {got}")]
    WrongStep {
        /// The step the function runs.
        expected: Step,
        /// The step the event asked for.
        got: Step,
    },
    /// The secret's rotation is not enabled in Secrets Manager.
    #[error("secret {secret}: rotation is not enabled")]
    RotationDisabled {
        /// The secret's ARN or name.
        secret: String,
    },
    /// The secret is configured for the other rotation mode (see [`crate::mode`]).
    #[error("secret {secret}: {problem}")]
    WrongMode {
        /// The secret's ARN or name.
        secret: String,
        /// What is wrong.
        problem: String,
    },
    /// The ClientRequestToken is not in the state the step needs.
    #[error("secret {secret}: version {token} {problem}")]
    BadToken {
        /// The secret's ARN or name.
        secret: String,
        /// The ClientRequestToken of the event.
        token: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Another rotation of the secret is in progress: its AWSPENDING version is neither this
    /// rotation's token nor AWSCURRENT.
    #[error(
        "secret {secret}: rotation in progress: AWSPENDING is on version {pending}, not on this \
         rotation's version {token}; let that rotation finish (running the rotation again resumes it)"
    )]
    RotationInProgress {
        /// The secret's ARN or name.
        secret: String,
        /// The ClientRequestToken of the event.
        token: String,
        /// The version of the other rotation.
        pending: String,
    },
    /// The secret's JSON is invalid: the message names the field, never its value.
    #[error("secret {secret} ({version}): {problem}")]
    InvalidSecret {
        /// The secret's ARN or name.
        secret: String,
        /// Which version: AWSCURRENT, AWSPENDING, AWSPREVIOUS or the master secret.
        version: String,
        /// The field and what is wrong with it.
        problem: String,
    },
    /// The function's configuration (environment variables) is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A Secrets Manager call failed.
    #[error("Secrets Manager {operation} on {secret} failed: {message}")]
    SecretsManager {
        /// The API operation.
        operation: &'static str,
        /// The secret's ARN or name.
        secret: String,
        /// The service's error, without secret values (Secrets Manager never echoes them).
        message: String,
    },
    /// An RDS API call failed.
    #[error("RDS {operation} failed: {message}")]
    Rds {
        /// The API operation.
        operation: &'static str,
        /// The service's error.
        message: String,
    },
    /// A database login or statement failed.
    #[error("{credential} credentials for user {user:?} on {endpoint}: {failure}: {detail}")]
    Database {
        /// Which credential was used.
        credential: Credential,
        /// The user name that logged in (not secret).
        user: String,
        /// host:port of the database.
        endpoint: String,
        /// The class of failure.
        failure: DbFailure,
        /// The driver's message, which never contains the password.
        detail: String,
    },
    /// No credential the step may use could log in.
    #[error("cannot log in to {endpoint} as {user:?} with the current or the previous credentials: current: {current}; previous: {previous}")]
    NoWorkingCredential {
        /// host:port of the database.
        endpoint: String,
        /// The user name.
        user: String,
        /// Why the current credentials failed.
        current: String,
        /// Why the previous credentials failed (or that there are none).
        previous: String,
    },
    /// The pending credentials failed the test step.
    #[error("the pending credentials do not work: {0}")]
    TestFailed(String),
    /// An IAM call failed.
    #[error("IAM {operation} for user {user:?} failed: {message}")]
    Iam {
        /// The API operation.
        operation: &'static str,
        /// The IAM user name (not secret).
        user: String,
        /// The service's error (IAM never echoes a secret access key).
        message: String,
    },
    /// createSecret refused to revoke an access key used since the previous rotation finished,
    /// because strict revocation is on. Nothing was deleted or created.
    #[error("refusing to revoke access key {key_id} of IAM user {user:?}: it was last used at {last_used}, after the previous rotation finished ({since}), so something still uses it; strict revocation is on (`strictRevocation` in the secret, or ROTATION_IAM_STRICT_REVOCATION)")]
    RevocationRefused {
        /// The IAM user name.
        user: String,
        /// The access key id (not secret).
        key_id: String,
        /// When IAM says the key was last used.
        last_used: String,
        /// When the previous rotation finished (the AWSCURRENT version's creation).
        since: String,
    },
}

impl RotationError {
    /// A stable name for the kind of failure: the Lambda error type callers can match on.
    pub fn kind(&self) -> &'static str {
        match self {
            RotationError::InvalidEvent(_) => "InvalidEvent",
            RotationError::WrongStep { .. } => "WrongStep",
            RotationError::RotationDisabled { .. } => "RotationDisabled",
            RotationError::WrongMode { .. } => "WrongMode",
            RotationError::BadToken { .. } => "BadToken",
            RotationError::RotationInProgress { .. } => "RotationInProgress",
            RotationError::InvalidSecret { .. } => "InvalidSecret",
            RotationError::Config(_) => "Configuration",
            RotationError::SecretsManager { .. } => "SecretsManager",
            RotationError::Database { .. } => "Database",
            RotationError::Rds { .. } => "Rds",
            RotationError::NoWorkingCredential { .. } => "NoWorkingCredential",
            RotationError::TestFailed(_) => "TestFailed",
            RotationError::Iam { .. } => "Iam",
            RotationError::RevocationRefused { .. } => "RevocationRefused",
        }
    }

    /// Whether this is a database authentication failure (wrong user name or password).
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            RotationError::Database {
                failure: DbFailure::Authentication,
                ..
            }
        )
    }

    /// Builds an [`RotationError::InvalidSecret`] for one field of one version of a secret.
    pub fn invalid_secret(secret: &str, version: &str, problem: impl Into<String>) -> Self {
        RotationError::InvalidSecret {
            secret: secret.to_owned(),
            version: version.to_owned(),
            problem: problem.into(),
        }
    }
}

/// The result type of the rotation engine.
pub type Result<T, E = RotationError> = std::result::Result<T, E>;
