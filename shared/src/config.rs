//! Function configuration, read once per process from environment variables.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, RotationError};
use crate::password::PasswordPolicy;

/// Environment variable: extra PEM file of CA certificates trusted for database TLS, on top of
/// the system roots and the Amazon RDS CA bundle compiled into the binary.
pub const ENV_DB_CA_FILE: &str = "ROTATION_DB_CA_FILE";
/// Environment variable: seconds allowed for one database connection (TCP, TLS and login).
pub const ENV_DB_CONNECT_TIMEOUT: &str = "ROTATION_DB_CONNECT_TIMEOUT_SECONDS";
/// Environment variable: seconds allowed for one database statement once logged in (a
/// connection that accepts and then hangs fails within this bound).
pub const ENV_DB_STATEMENT_TIMEOUT: &str = "ROTATION_DB_STATEMENT_TIMEOUT_SECONDS";
/// Environment variable: seconds allowed for one attempt of an AWS API call (the SDK retries
/// a timed-out attempt while attempts and the operation timeout allow).
pub const ENV_AWS_ATTEMPT_TIMEOUT: &str = "ROTATION_AWS_ATTEMPT_TIMEOUT_SECONDS";
/// Environment variable: seconds allowed for one AWS API call, all retries included.
pub const ENV_AWS_OPERATION_TIMEOUT: &str = "ROTATION_AWS_OPERATION_TIMEOUT_SECONDS";
/// Environment variable: milliseconds createSecret waits after its put, where nothing reserved
/// the rotation (workflow mode, the local driver), before it re-reads the labels to settle a
/// race with a concurrent rotation (see [`crate::concurrent`]).
pub const ENV_RACE_SETTLE: &str = "ROTATION_RACE_SETTLE_MILLISECONDS";
/// The bound on opening a connection to an AWS endpoint (the SDK's default).
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// Environment variable: where to connect instead of a secret's (or RDS's) endpoint, as
/// `PATTERN:PORT=HOST:PORT` entries separated by commas or semicolons; PATTERN may start with `*.` (for
/// example a tunnel, or the local stack standing in for RDS).
pub const ENV_DB_HOST_OVERRIDES: &str = "ROTATION_DB_HOST_OVERRIDES";
/// Environment variable: the longest MySQL user name (AWS's templates: 16).
pub const ENV_USERNAME_LIMIT: &str = "USERNAME_CHARACTER_LIMIT";
/// Environment variable: seconds to wait for an RDS instance or cluster to be available again
/// after its master password changed.
pub const ENV_RDS_WAIT: &str = "ROTATION_RDS_WAIT_SECONDS";

/// One entry of [`ENV_DB_HOST_OVERRIDES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOverride {
    /// Host name, or `*.suffix`.
    pub pattern: String,
    /// Port the entry applies to.
    pub port: u16,
    /// Host to connect to instead.
    pub to_host: String,
    /// Port to connect to instead.
    pub to_port: u16,
}

impl HostOverride {
    fn matches(&self, host: &str, port: u16) -> bool {
        port == self.port
            && match self.pattern.strip_prefix('*') {
                Some(suffix) => host.ends_with(suffix),
                None => host == self.pattern,
            }
    }
}

fn parse_overrides(raw: &str) -> Result<Vec<HostOverride>> {
    let bad = |entry: &str| {
        RotationError::Config(format!(
            "{ENV_DB_HOST_OVERRIDES}: entry {entry:?} is not PATTERN:PORT=HOST:PORT"
        ))
    };
    let host_port = |text: &str, entry: &str| -> Result<(String, u16)> {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad(entry))?;
        let port = port.parse::<u16>().map_err(|_| bad(entry))?;
        if host.is_empty() {
            return Err(bad(entry));
        }
        Ok((host.to_owned(), port))
    };
    raw.split([',', ';'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (from, to) = entry.split_once('=').ok_or_else(|| bad(entry))?;
            let (pattern, port) = host_port(from, entry)?;
            let (to_host, to_port) = host_port(to, entry)?;
            Ok(HostOverride {
                pattern,
                port,
                to_host,
                to_port,
            })
        })
        .collect()
}

/// Environment variable: `true` makes createSecret refuse to revoke an IAM access key used
/// since the previous rotation finished (a secret's `strictRevocation` overrides it).
pub const ENV_IAM_STRICT_REVOCATION: &str = "ROTATION_IAM_STRICT_REVOCATION";
/// Environment variable: seconds setSecret waits for IAM to accept a new access key.
pub const ENV_IAM_PROPAGATION_TIMEOUT: &str = "ROTATION_IAM_PROPAGATION_TIMEOUT_SECONDS";

/// Environment variable: the EventBridge event bus (name or ARN) that receives one event per
/// rotation outcome. Unset or empty: no event is published.
pub const ENV_EVENT_BUS: &str = "ROTATION_EVENT_BUS";
/// Environment variable: the CloudWatch namespace of the metrics the functions log in Embedded
/// Metric Format.
pub const ENV_METRICS_NAMESPACE: &str = "ROTATION_METRICS_NAMESPACE";
/// The metrics namespace when [`ENV_METRICS_NAMESPACE`] is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "SecretRotation";

/// Environment variable (compromise function): most secrets one incident may rotate; an event
/// selecting more is refused before anything rotates.
pub const ENV_COMPROMISE_MAX_SECRETS: &str = "ROTATION_COMPROMISE_MAX_SECRETS";
/// Environment variable (compromise function): most versions a secret may gain in an hour
/// (rotations and puts, counted from the versions' creation dates); a response that would pass
/// it is refused for that secret before it rotates.
pub const ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR: &str =
    "ROTATION_COMPROMISE_MAX_ROTATIONS_PER_HOUR";

/// Everything a step needs to know that does not come from the event or the secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// How new passwords are generated (AWS's PASSWORD_LENGTH, EXCLUDE_* variables).
    pub password: PasswordPolicy,
    /// Extra CA file for database TLS.
    pub db_ca_file: Option<PathBuf>,
    /// Bound on one database connection.
    pub db_connect_timeout: Duration,
    /// Bound on one database statement.
    pub db_statement_timeout: Duration,
    /// Bound on one attempt of an AWS API call.
    pub aws_attempt_timeout: Duration,
    /// Bound on one AWS API call, retries included.
    pub aws_operation_timeout: Duration,
    /// How long createSecret waits after its put before it settles a race.
    pub race_settle: Duration,
    /// Where to connect instead of an endpoint.
    pub db_host_overrides: Vec<HostOverride>,
    /// The longest MySQL user name.
    pub mysql_username_limit: usize,
    /// Bound on waiting for RDS to be available after a master password change.
    pub rds_wait: Duration,
    /// Refuse to revoke an IAM access key used since the previous rotation (default false).
    pub iam_strict_revocation: bool,
    /// How long setSecret waits for IAM to accept a new access key.
    pub iam_propagation_timeout: Duration,
    /// The event bus receiving rotation outcomes, if any.
    pub event_bus: Option<String>,
    /// The CloudWatch namespace of the functions' metrics.
    pub metrics_namespace: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number =
            |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64> {
                match lookup(name) {
                    None => Ok(default),
                    Some(raw) => raw
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| {
                            RotationError::Config(format!(
                                "{name} must be a whole number from {} to {}, got {raw:?}",
                                range.start(),
                                range.end()
                            ))
                        }),
                }
            };
        let iam_strict_revocation = match lookup(ENV_IAM_STRICT_REVOCATION) {
            None => false,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" | "" => false,
                _ => {
                    return Err(RotationError::Config(format!(
                        "{ENV_IAM_STRICT_REVOCATION} must be true or false, got {raw:?}"
                    )))
                }
            },
        };
        let iam_propagation_timeout = match lookup(ENV_IAM_PROPAGATION_TIMEOUT) {
            None => Duration::from_secs(30),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) if (1..=600).contains(&secs) => Duration::from_secs(secs),
                _ => {
                    return Err(RotationError::Config(format!(
                        "{ENV_IAM_PROPAGATION_TIMEOUT} must be a whole number of seconds from 1 to 600, got {raw:?}"
                    )))
                }
            },
        };
        let db_connect_timeout = Duration::from_secs(number(ENV_DB_CONNECT_TIMEOUT, 5, 1..=300)?);
        let db_statement_timeout =
            Duration::from_secs(number(ENV_DB_STATEMENT_TIMEOUT, 30, 1..=600)?);
        let aws_attempt_timeout =
            Duration::from_secs(number(ENV_AWS_ATTEMPT_TIMEOUT, 10, 1..=300)?);
        let aws_operation_timeout =
            Duration::from_secs(number(ENV_AWS_OPERATION_TIMEOUT, 30, 1..=900)?);
        if aws_operation_timeout < aws_attempt_timeout {
            return Err(RotationError::Config(format!(
                "{ENV_AWS_OPERATION_TIMEOUT} ({} s) must not be shorter than {ENV_AWS_ATTEMPT_TIMEOUT} ({} s)",
                aws_operation_timeout.as_secs(),
                aws_attempt_timeout.as_secs()
            )));
        }
        let metrics_namespace = match lookup(ENV_METRICS_NAMESPACE) {
            None => DEFAULT_METRICS_NAMESPACE.to_owned(),
            Some(raw) => {
                let name = raw.trim();
                if name.is_empty() || name.len() > 255 || name.starts_with("AWS/") {
                    return Err(RotationError::Config(format!(
                        "{ENV_METRICS_NAMESPACE} must be 1 to 255 characters and not start with AWS/, got {raw:?}"
                    )));
                }
                name.to_owned()
            }
        };
        let race_settle = Duration::from_millis(number(ENV_RACE_SETTLE, 1000, 0..=60_000)?);
        Ok(Config {
            race_settle,
            db_host_overrides: parse_overrides(&lookup(ENV_DB_HOST_OVERRIDES).unwrap_or_default())?,
            mysql_username_limit: usize::try_from(number(ENV_USERNAME_LIMIT, 16, 1..=255)?)
                .unwrap_or(16),
            rds_wait: Duration::from_secs(number(ENV_RDS_WAIT, 600, 1..=3600)?),
            password: PasswordPolicy::from_lookup(&lookup)?,
            db_ca_file: lookup(ENV_DB_CA_FILE)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            db_connect_timeout,
            db_statement_timeout,
            aws_attempt_timeout,
            aws_operation_timeout,
            iam_strict_revocation,
            iam_propagation_timeout,
            event_bus: lookup(ENV_EVENT_BUS)
                .map(|b| b.trim().to_owned())
                .filter(|b| !b.is_empty()),
            metrics_namespace,
        })
    }
}

impl Config {
    /// The AWS configuration from the environment (region, credentials, endpoints, and the
    /// SDK's own `AWS_RETRY_MODE` and `AWS_MAX_ATTEMPTS`: standard mode, 3 attempts with
    /// exponential backoff and jitter by default), with every call bounded by the attempt and
    /// operation timeouts.
    pub async fn load_aws(&self) -> aws_config::SdkConfig {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(AWS_CONNECT_TIMEOUT.min(self.aws_attempt_timeout))
            .operation_attempt_timeout(self.aws_attempt_timeout)
            .operation_timeout(self.aws_operation_timeout)
            .build();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await
    }

    /// The endpoint to connect to: `endpoint`, or where an override sends it.
    pub fn endpoint_for(
        &self,
        endpoint: crate::providers::database_secret::Endpoint,
    ) -> crate::providers::database_secret::Endpoint {
        match self
            .db_host_overrides
            .iter()
            .find(|o| o.matches(&endpoint.host, endpoint.port))
        {
            Some(o) => {
                tracing::debug!(from = %endpoint.display(), to_host = %o.to_host, to_port = o.to_port, "endpoint overridden by {ENV_DB_HOST_OVERRIDES}");
                crate::providers::database_secret::Endpoint {
                    host: o.to_host.clone(),
                    port: o.to_port,
                    ..endpoint
                }
            }
            None => endpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_overrides() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.db_connect_timeout, Duration::from_secs(5));
        assert_eq!(config.db_statement_timeout, Duration::from_secs(30));
        assert_eq!(config.aws_attempt_timeout, Duration::from_secs(10));
        assert_eq!(config.aws_operation_timeout, Duration::from_secs(30));
        assert!(config.db_ca_file.is_none());
        assert!(!config.iam_strict_revocation);
        assert_eq!(config.iam_propagation_timeout, Duration::from_secs(30));
        assert!(
            config.event_bus.is_none(),
            "no events unless a bus is named"
        );
        assert_eq!(config.metrics_namespace, DEFAULT_METRICS_NAMESPACE);
        assert_eq!(config.race_settle, Duration::from_secs(1));
        let env: HashMap<&str, &str> = [
            (ENV_RACE_SETTLE, "250"),
            (ENV_DB_CONNECT_TIMEOUT, "9"),
            (ENV_DB_STATEMENT_TIMEOUT, "7"),
            (ENV_AWS_ATTEMPT_TIMEOUT, "4"),
            (ENV_AWS_OPERATION_TIMEOUT, "12"),
            (ENV_DB_CA_FILE, "/tmp/ca.pem"),
            (ENV_IAM_STRICT_REVOCATION, "TRUE"),
            (ENV_IAM_PROPAGATION_TIMEOUT, "90"),
            (ENV_EVENT_BUS, " rotation-outcomes "),
            (ENV_METRICS_NAMESPACE, "Team/Rotation"),
        ]
        .into();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.db_connect_timeout, Duration::from_secs(9));
        assert_eq!(config.db_statement_timeout, Duration::from_secs(7));
        assert_eq!(config.race_settle, Duration::from_millis(250));
        assert_eq!(config.aws_attempt_timeout, Duration::from_secs(4));
        assert_eq!(config.aws_operation_timeout, Duration::from_secs(12));
        assert_eq!(config.db_ca_file.unwrap(), PathBuf::from("/tmp/ca.pem"));
        assert!(config.iam_strict_revocation);
        assert_eq!(config.event_bus.as_deref(), Some("rotation-outcomes"));
        assert_eq!(config.metrics_namespace, "Team/Rotation");
        let blank = Config::from_lookup(|k| (k == ENV_EVENT_BUS).then(|| " ".into())).unwrap();
        assert!(
            blank.event_bus.is_none(),
            "an empty bus name turns events off"
        );
        assert_eq!(config.iam_propagation_timeout, Duration::from_secs(90));
    }

    #[test]
    fn host_overrides_match_by_suffix_and_port() {
        let config = Config::from_lookup(|k| {
            (k == ENV_DB_HOST_OVERRIDES).then(|| {
                "*.rds.amazonaws.com:5432=127.0.0.1:45432; db.internal:3306=10.0.0.1:3307".into()
            })
        })
        .unwrap();
        let endpoint = |host: &str, port| crate::providers::database_secret::Endpoint {
            host: host.into(),
            port,
            dbname: None,
            tls: crate::providers::database_secret::TlsMode::Verified,
        };
        let moved = config.endpoint_for(endpoint("x.aaaa.us-east-1.rds.amazonaws.com", 5432));
        assert_eq!((moved.host.as_str(), moved.port), ("127.0.0.1", 45432));
        let kept = config.endpoint_for(endpoint("x.aaaa.us-east-1.rds.amazonaws.com", 3306));
        assert_eq!(kept.port, 3306);
        let exact = config.endpoint_for(endpoint("db.internal", 3306));
        assert_eq!((exact.host.as_str(), exact.port), ("10.0.0.1", 3307));
        let err = Config::from_lookup(|k| (k == ENV_DB_HOST_OVERRIDES).then(|| "nonsense".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_DB_HOST_OVERRIDES), "{err}");
    }

    #[test]
    fn rejects_an_aws_metrics_namespace_naming_the_variable() {
        let err =
            Config::from_lookup(|k| (k == ENV_METRICS_NAMESPACE).then(|| "AWS/Lambda".into()))
                .unwrap_err()
                .to_string();
        assert!(err.contains(ENV_METRICS_NAMESPACE), "{err}");
    }

    #[test]
    fn rejects_an_operation_timeout_shorter_than_an_attempt() {
        let env: HashMap<&str, &str> = [
            (ENV_AWS_ATTEMPT_TIMEOUT, "20"),
            (ENV_AWS_OPERATION_TIMEOUT, "10"),
        ]
        .into();
        let err = Config::from_lookup(|k| env.get(k).map(|v| v.to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_AWS_OPERATION_TIMEOUT), "{err}");
    }

    #[test]
    fn rejects_a_bad_timeout_naming_the_variable() {
        let err = Config::from_lookup(|k| (k == ENV_DB_CONNECT_TIMEOUT).then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_DB_CONNECT_TIMEOUT), "{err}");
        for name in [
            ENV_IAM_STRICT_REVOCATION,
            ENV_IAM_PROPAGATION_TIMEOUT,
            ENV_DB_STATEMENT_TIMEOUT,
            ENV_AWS_ATTEMPT_TIMEOUT,
            ENV_AWS_OPERATION_TIMEOUT,
            ENV_RACE_SETTLE,
        ] {
            let err = Config::from_lookup(|k| (k == name).then(|| "maybe".into()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
