//! Clear messages for the failures an on-call engineer meets: each names the secret, says what
//! is wrong and what to do. Built from the SDK's and the functions' errors, which never carry
//! secret values.

use rotation::compromise::CompromiseError;
use rotation::RotationError;

use crate::invoke::InvokeError;

/// A failure of the command line, with what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CliError {
    /// The SDK found no usable AWS credentials (for the profile, when one is selected).
    #[error("{}", no_credentials(detail, profile.as_deref()))]
    NoCredentials {
        /// What the SDK said.
        detail: String,
        /// The profile selected with AWS_PROFILE, if any.
        profile: Option<String>,
    },
    /// No region is configured.
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
    /// The secret's ARN names another region than the one configured.
    #[error("secret {secret} lives in region {secret_region}, but the region is {region}: pass --region {secret_region}")]
    WrongRegion {
        /// The secret's ARN.
        secret: String,
        /// The region in the ARN.
        secret_region: String,
        /// The configured region.
        region: String,
    },
    /// Secrets Manager (or the endpoint) cannot be reached.
    #[error("cannot reach Secrets Manager in region {region}: {detail}. Check --region / AWS_REGION, --endpoint-url / AWS_ENDPOINT_URL and the network")]
    Unreachable {
        /// The configured region.
        region: String,
        /// What the SDK said.
        detail: String,
    },
    /// No such secret in this account and region.
    #[error("secret {secret} not found in region {region}: check its name or ARN, the account (AWS_PROFILE) and the region (--region)")]
    NotFound {
        /// The secret as given.
        secret: String,
        /// The configured region.
        region: String,
    },
    /// The secret cannot be rotated as configured.
    #[error("rotation is not configured for {secret}: {problem}")]
    NotConfigured {
        /// The secret.
        secret: String,
        /// What is missing.
        problem: String,
    },
    /// A rotation is in progress (AWSPENDING on a version other than AWSCURRENT).
    #[error("a rotation of {secret} is already in progress: AWSPENDING is on version {pending} (AWSCURRENT is {current}). Secrets Manager retries a failed rotation by itself; on the local stack, finish it with `rotator rotate --local --resume {secret}`. To abandon it instead run: aws secretsmanager update-secret-version-stage --secret-id {secret} --version-stage AWSPENDING --remove-from-version-id {pending}")]
    InProgress {
        /// The secret.
        secret: String,
        /// The version labelled AWSPENDING.
        pending: String,
        /// The version labelled AWSCURRENT.
        current: String,
    },
    /// The secret's rotation window is closed: the functions would decline the rotation.
    #[error("not rotating {secret}: {reason}; the functions would decline the rotation, so wait until the window opens (after a compromise, `rotate --compromised` ignores the window)")]
    OutsideWindow {
        /// The secret.
        secret: String,
        /// The window, the time now and when it opens next.
        reason: String,
    },
    /// `rollback` refused: the AWSPREVIOUS credential is not proved to work (or cannot).
    #[error("not rolling back {secret}: {reason}")]
    RollbackRefused {
        /// The secret.
        secret: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A rotation function did not answer in time.
    #[error("function {function} timed out on {secret} after {seconds}s: the rotation is left in progress (AWSPENDING stays); check the function's log, then resume with --resume or abandon it as `status` shows")]
    FunctionTimedOut {
        /// The secret.
        secret: String,
        /// The function.
        function: String,
        /// The timeout.
        seconds: u64,
    },
    /// A rotation failed; the secret is left as `state` says.
    #[error("{detail}")]
    RotationFailed {
        /// What failed, and the secret's state.
        detail: String,
    },
    /// A request the command line refuses (bad option, nothing selected).
    #[error("{0}")]
    Usage(String),
    /// Anything else, with the SDK's or function's message.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// A stable name of the failure, for `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::NoCredentials { .. } => "NoCredentials",
            CliError::NoRegion => "NoRegion",
            CliError::WrongRegion { .. } => "WrongRegion",
            CliError::Unreachable { .. } => "Unreachable",
            CliError::NotFound { .. } => "SecretNotFound",
            CliError::NotConfigured { .. } => "RotationNotConfigured",
            CliError::InProgress { .. } => "RotationInProgress",
            CliError::RollbackRefused { .. } => "RollbackRefused",
            CliError::OutsideWindow { .. } => "OutsideWindow",
            CliError::FunctionTimedOut { .. } => "FunctionTimedOut",
            CliError::RotationFailed { .. } => "RotationFailed",
            CliError::Usage(_) => "Usage",
            CliError::Other(_) => "Error",
        }
    }
}

/// The message for missing credentials: with a profile, what to do about that profile (an
/// IAM Identity Center profile needs `aws sso login`, a `credential_process` must print
/// credentials); without one, how to select credentials.
fn no_credentials(detail: &str, profile: Option<&str>) -> String {
    match profile {
        Some(profile) => format!(
            "no AWS credentials from profile `{profile}` (AWS_PROFILE): {detail}. If it is an IAM Identity Center (SSO) profile, run `aws sso login --profile {profile}`; if it uses credential_process, check that the command prints credentials"
        ),
        None => format!(
            "no AWS credentials: {detail}. Set AWS_PROFILE (and run `aws sso login`), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ),
    }
}

/// Where the command line talks to, for messages.
#[derive(Debug, Clone)]
pub struct Context {
    /// The configured region.
    pub region: String,
    /// The profile selected with AWS_PROFILE, if any (its credentials are the ones used).
    pub profile: Option<String>,
}

impl Context {
    /// Classifies an AWS SDK error message about `secret`.
    pub fn aws(&self, secret: &str, message: &str) -> CliError {
        let message = short(message);
        let has = |needle: &str| message.contains(needle);
        if has("`region`") {
            CliError::Usage(format!(
                "invalid AWS region {:?}: pass --region, e.g. --region eu-west-1",
                self.region
            ))
        } else if has("ResourceNotFoundException") || has("can't find the specified secret") {
            CliError::NotFound {
                secret: secret.to_owned(),
                region: self.region.clone(),
            }
        } else if has("UnrecognizedClientException")
            || has("InvalidSignatureException")
            || has("ExpiredToken")
            || has("InvalidClientTokenId")
            || has("credentials")
            || has("credential provider")
        {
            CliError::NoCredentials {
                detail: message.to_owned(),
                profile: self.profile.clone(),
            }
        } else if has("dispatch failure") || has("dns error") || has("Connection refused") {
            CliError::Unreachable {
                region: self.region.clone(),
                detail: message.to_owned(),
            }
        } else if has("previous rotation isn't complete") || has("rotation in progress") {
            CliError::RotationFailed {
                detail: format!(
                    "{secret}: Secrets Manager refused to start: {message}; run `rotator status {secret}` to see the AWSPENDING version"
                ),
            }
        } else {
            CliError::Other(format!("{secret}: {message}"))
        }
    }

    /// Classifies an error of the shared compromise pieces (plan, runner).
    pub fn compromise(&self, secret: &str, err: &CompromiseError) -> CliError {
        match err {
            CompromiseError::NotRotatable { secret, problem } => CliError::NotConfigured {
                secret: secret.clone(),
                problem: problem.clone(),
            },
            CompromiseError::Rotation(RotationError::SecretsManager { message, .. }) => {
                self.aws(secret, message)
            }
            CompromiseError::Rotation(RotationError::WrongMode { .. }) => CliError::NotConfigured {
                secret: secret.to_owned(),
                problem: err.to_string(),
            },
            CompromiseError::Start { detail, .. } => self.aws(secret, detail),
            CompromiseError::Timeout { .. } | CompromiseError::Abandoned { .. } => {
                CliError::RotationFailed {
                    detail: err.to_string(),
                }
            }
            other => CliError::Other(other.to_string()),
        }
    }

    /// Classifies a failed function invocation of a local rotation.
    pub fn invoke(&self, secret: &str, err: &InvokeError, timeout_secs: u64) -> CliError {
        match err {
            InvokeError::Transport {
                function, detail, ..
            } if detail.contains("timed out") || detail.contains("operation timed out") => {
                CliError::FunctionTimedOut {
                    secret: secret.to_owned(),
                    function: function.clone(),
                    seconds: timeout_secs,
                }
            }
            InvokeError::Function { error_type, .. } if error_type.contains("Timeout") => {
                CliError::FunctionTimedOut {
                    secret: secret.to_owned(),
                    function: err.to_string(),
                    seconds: timeout_secs,
                }
            }
            other => CliError::RotationFailed {
                detail: format!("{secret}: {other}"),
            },
        }
    }
}

/// An SDK message without the debug dump the SDK appends after the readable part.
fn short(message: &str) -> &str {
    [
        " (DispatchFailure(",
        " (ConstructionFailure(",
        " (TimeoutError(",
        " (ResponseError(",
        " (ServiceError(",
    ]
    .iter()
    .filter_map(|marker| message.find(marker))
    .min()
    .map_or(message, |end| &message[..end])
}

/// The region in a Secrets Manager ARN (`arn:aws:secretsmanager:REGION:...`), if it is one.
pub fn arn_region(secret: &str) -> Option<&str> {
    let mut parts = secret.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(_), Some("secretsmanager"), Some(region), Some(_)) => Some(region),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            region: "eu-west-1".into(),
            profile: None,
        }
    }

    #[test]
    fn names_a_missing_secret_with_its_region() {
        let e = ctx().aws(
            "app",
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
        );
        assert_eq!(e.kind(), "SecretNotFound");
        assert!(e.to_string().contains("app not found in region eu-west-1"));
    }

    #[test]
    fn recognises_missing_credentials_and_unreachable_endpoints() {
        let e = ctx().aws(
            "app",
            "dispatch failure: other: no credentials in the chain",
        );
        assert_eq!(e.kind(), "NoCredentials");
        let e = ctx().aws(
            "app",
            "dispatch failure: io error: Connection refused (DispatchFailure(DispatchFailure { x }))",
        );
        assert_eq!(e.kind(), "Unreachable");
        assert!(!e.to_string().contains("DispatchFailure {"), "{e}");
        let e = ctx().aws("app", "UnrecognizedClientException: bad token");
        assert_eq!(e.kind(), "NoCredentials");
    }

    #[test]
    fn missing_credentials_name_the_selected_profile_and_what_to_run() {
        let with_profile = Context {
            profile: Some("oncall".into()),
            ..ctx()
        };
        let e = with_profile.aws("app", "dispatch failure: other: failed to load credentials");
        assert_eq!(e.kind(), "NoCredentials");
        let text = e.to_string();
        assert!(text.contains("profile `oncall`"), "{text}");
        assert!(text.contains("aws sso login --profile oncall"), "{text}");
        let text = ctx().aws("app", "no credentials in the chain").to_string();
        assert!(text.contains("Set AWS_PROFILE"), "{text}");
    }

    #[test]
    fn in_progress_gives_the_exact_command() {
        let e = CliError::InProgress {
            secret: "app".into(),
            pending: "v2".into(),
            current: "v1".into(),
        };
        assert!(e.to_string().contains(
            "aws secretsmanager update-secret-version-stage --secret-id app --version-stage AWSPENDING --remove-from-version-id v2"
        ));
    }

    #[test]
    fn reads_the_region_of_an_arn() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:us-west-2:123456789012:secret:app-AbCdEf"),
            Some("us-west-2")
        );
        assert_eq!(arn_region("app"), None);
        assert_eq!(arn_region("arn:aws:iam::123:user/x"), None);
    }

    #[test]
    fn a_function_timeout_is_named() {
        let e = ctx().invoke(
            "app",
            &InvokeError::Transport {
                function: rotation::Caller::Rotate.function_name().into(),
                endpoint: "http://x".into(),
                detail: "error sending request: operation timed out".into(),
            },
            30,
        );
        assert_eq!(e.kind(), "FunctionTimedOut");
        assert!(e.to_string().contains("rotate timed out on app after 30s"));
    }
}
