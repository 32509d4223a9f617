//! The error type of the rotation engine.
//!
//! Messages name the step, the field or the credential that failed, and never carry a secret
//! value: database errors are reduced to their cause and [`redact`]ed of the secrets in play,
//! JSON errors to the field name.

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
    /// The secret's rotation window (tag `rotation-window`) is malformed.
    #[error("secret {secret}: {problem}")]
    InvalidWindow {
        /// The secret's ARN or name.
        secret: String,
        /// The tag, what is wrong with its value and what is expected.
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
        /// The driver's message, [`redact`]ed of every secret the session sent.
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
    /// A step, or a wait inside it, ran out of its time: its own bound or the invocation's
    /// deadline (kept short of it so that the failure is reported, not killed by Lambda).
    #[error("{what} did not finish in time: {detail}")]
    Timeout {
        /// What was waited for, naming the resource.
        what: String,
        /// How long it took, what bounded it and what to do.
        detail: String,
    },
    /// createSecret refused to revoke an access key used since the previous rotation finished,
    /// because strict revocation is on. Nothing was deleted or created.
    #[error("refusing to revoke access key {key_id} of IAM user {user:?}: it was last used at {last_used}, after the previous rotation finished ({since}), so something still uses it; strict revocation is on (`strictRevocation` in the secret, ROTATION_IAM_STRICT_REVOCATION, or the secret's tag rotation-in-use = refuse or wait)")]
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
    /// setSecret refused to replace a password still in use: the secret's tag
    /// `rotation-in-use` is `refuse`, or `wait` and the consumers stayed. Nothing was changed.
    #[error("refusing to change the password of user {user:?}: it is in use: {sessions}; the secret's tag rotation-in-use is {policy}{waited}; nothing was changed: move those consumers to the AWSCURRENT credentials (or set the tag to warn) and rotate again")]
    CredentialInUse {
        /// The user whose password the step would replace.
        user: String,
        /// Its sessions: count, addresses, application names, oldest start (never a secret).
        sessions: String,
        /// The policy that refused (`refuse` or `wait`).
        policy: &'static str,
        /// How long the step waited, for `wait`.
        waited: String,
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
            RotationError::InvalidWindow { .. } => "InvalidWindow",
            RotationError::Config(_) => "Configuration",
            RotationError::SecretsManager { .. } => "SecretsManager",
            RotationError::Database { .. } => "Database",
            RotationError::Rds { .. } => "Rds",
            RotationError::NoWorkingCredential { .. } => "NoWorkingCredential",
            RotationError::TestFailed(_) => "TestFailed",
            RotationError::Iam { .. } => "Iam",
            RotationError::RevocationRefused { .. } => "RevocationRefused",
            RotationError::CredentialInUse { .. } => "CredentialInUse",
            RotationError::Timeout { .. } => "Timeout",
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

/// What replaces a secret in error text.
pub const REDACTED: &str = "<redacted>";

/// The shortest run of a secret's characters that [`redact`] removes when it appears on its
/// own: a server echoing a statement cuts it after a fixed number of characters (MySQL's
/// "near '...'" shows 80), so a password or hash may appear truncated.
pub const MIN_REDACTED_FRAGMENT: usize = 8;

/// `text` with every secret of `secrets` replaced by [`REDACTED`]: the whole secret, and any
/// run of [`MIN_REDACTED_FRAGMENT`] or more of its consecutive characters (a secret shorter
/// than that only whole). Database error text goes through this before it becomes a
/// [`RotationError`], so that a server or proxy echoing a statement (with a password, a hash or
/// a verifier in it) cannot carry the secret into a log, an event, an outcome or the CLI.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut hidden = vec![false; chars.len()];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let secret: Vec<char> = secret.chars().collect();
        let shortest = secret.len().min(MIN_REDACTED_FRAGMENT);
        // common[j]: how many characters of `text` from position i match `secret` from j,
        // computed from the end of `text` backwards (one row of the classic table).
        let mut next = vec![0usize; secret.len() + 1];
        for i in (0..chars.len()).rev() {
            let mut row = vec![0usize; secret.len() + 1];
            let mut longest = 0;
            for j in (0..secret.len()).rev() {
                if chars[i] == secret[j] {
                    row[j] = next[j + 1] + 1;
                    longest = longest.max(row[j]);
                }
            }
            if longest >= shortest {
                hidden[i..i + longest].iter_mut().for_each(|h| *h = true);
            }
            next = row;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut previous_hidden = false;
    for (c, hide) in chars.into_iter().zip(hidden) {
        if !hide {
            out.push(c);
        } else if !previous_hidden {
            out.push_str(REDACTED);
        }
        previous_hidden = hide;
    }
    out
}

/// The result type of the rotation engine.
pub type Result<T, E = RotationError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_truncated_secrets_are_redacted() {
        let password = "Zq8#pL2!vR7@kW4$mN9%";
        let text = format!(
            "You have an error in your SQL syntax near 'IDENTIFIED BY '{password}' RETAIN' and near '{}",
            &password[..11]
        );
        let redacted = redact(&text, &[password]);
        assert_eq!(
            redacted,
            "You have an error in your SQL syntax near 'IDENTIFIED BY '<redacted>' RETAIN' and near '<redacted>"
        );
        assert!(!redacted.contains(&password[..MIN_REDACTED_FRAGMENT]));
    }

    #[test]
    fn every_secret_and_fragment_goes_and_the_rest_stays() {
        let hash = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19";
        let text = format!("hash {hash} tail {} end", &hash[20..]);
        assert_eq!(
            redact(&text, &["unused", hash]),
            "hash <redacted> tail <redacted> end"
        );
        // Short runs that happen to match a few characters stay: readable errors.
        assert_eq!(
            redact("access denied for user app", &[hash, "app"]),
            "access denied for user <redacted>"
        );
        assert_eq!(
            redact("table t2470 is missing", &[hash]),
            "table t2470 is missing"
        );
        assert_eq!(redact("anything", &[""]), "anything");
        assert_eq!(
            redact("ünïcode pässwörd ok", &["pässwörd"]),
            "ünïcode <redacted> ok"
        );
    }
}
