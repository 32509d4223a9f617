//! Function configuration, read once per process from environment variables.

pub mod variables;

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, RotationError};
use crate::password::PasswordPolicy;
use variables::Variable;

/// Environment variable [`variables::DB_CA_FILE`].
pub const ENV_DB_CA_FILE: &str = variables::DB_CA_FILE.name;
/// Environment variable [`variables::DB_CONNECT_TIMEOUT`].
pub const ENV_DB_CONNECT_TIMEOUT: &str = variables::DB_CONNECT_TIMEOUT.name;
/// Environment variable [`variables::DB_STATEMENT_TIMEOUT`].
pub const ENV_DB_STATEMENT_TIMEOUT: &str = variables::DB_STATEMENT_TIMEOUT.name;
/// Environment variable [`variables::AWS_ATTEMPT_TIMEOUT`].
pub const ENV_AWS_ATTEMPT_TIMEOUT: &str = variables::AWS_ATTEMPT_TIMEOUT.name;
/// Environment variable [`variables::AWS_OPERATION_TIMEOUT`].
pub const ENV_AWS_OPERATION_TIMEOUT: &str = variables::AWS_OPERATION_TIMEOUT.name;
/// Environment variable [`variables::RACE_SETTLE`].
pub const ENV_RACE_SETTLE: &str = variables::RACE_SETTLE.name;
/// The bound on opening a connection to an AWS endpoint (the SDK's default).
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// Environment variable [`variables::DB_HOST_OVERRIDES`].
pub const ENV_DB_HOST_OVERRIDES: &str = variables::DB_HOST_OVERRIDES.name;
/// Environment variable [`variables::USERNAME_LIMIT`].
pub const ENV_USERNAME_LIMIT: &str = variables::USERNAME_LIMIT.name;
/// Environment variable [`variables::RDS_WAIT`].
pub const ENV_RDS_WAIT: &str = variables::RDS_WAIT.name;
/// Environment variable [`variables::IN_USE_WAIT`].
pub const ENV_IN_USE_WAIT: &str = variables::IN_USE_WAIT.name;

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

/// Environment variable [`variables::IAM_STRICT_REVOCATION`].
pub const ENV_IAM_STRICT_REVOCATION: &str = variables::IAM_STRICT_REVOCATION.name;
/// Environment variable [`variables::IAM_PROPAGATION_TIMEOUT`].
pub const ENV_IAM_PROPAGATION_TIMEOUT: &str = variables::IAM_PROPAGATION_TIMEOUT.name;

/// Environment variable [`variables::PUBLISH_TIMEOUT`].
pub const ENV_PUBLISH_TIMEOUT: &str = variables::PUBLISH_TIMEOUT.name;
/// Environment variable [`variables::WORKFLOW_RESUME_AFTER`].
pub const ENV_WORKFLOW_RESUME_AFTER: &str = variables::WORKFLOW_RESUME_AFTER.name;
/// What a step keeps before the invocation's deadline beyond publishing its outcome: the
/// report, the log and metrics lines, the runtime's answer.
pub const REPORT_MARGIN: Duration = Duration::from_secs(1);

/// Environment variable [`variables::EVENT_BUS`].
pub const ENV_EVENT_BUS: &str = variables::EVENT_BUS.name;
/// Environment variable [`variables::METRICS_NAMESPACE`].
pub const ENV_METRICS_NAMESPACE: &str = variables::METRICS_NAMESPACE.name;
/// The metrics namespace when [`ENV_METRICS_NAMESPACE`] is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = match variables::METRICS_NAMESPACE.default_text() {
    Some(namespace) => namespace,
    None => panic!("the metrics namespace has a default"),
};

/// Environment variable [`variables::COMPROMISE_MAX_SECRETS`].
pub const ENV_COMPROMISE_MAX_SECRETS: &str = variables::COMPROMISE_MAX_SECRETS.name;
/// Environment variable [`variables::COMPROMISE_MAX_ROTATIONS_PER_HOUR`].
pub const ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR: &str =
    variables::COMPROMISE_MAX_ROTATIONS_PER_HOUR.name;

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
    /// Bound on waiting for a credential's consumers to leave (in-use policy `wait`).
    pub in_use_wait: Duration,
    /// Refuse to revoke an IAM access key used since the previous rotation (default false).
    pub iam_strict_revocation: bool,
    /// How long setSecret waits for IAM to accept a new access key.
    pub iam_propagation_timeout: Duration,
    /// The event bus receiving rotation outcomes, if any.
    pub event_bus: Option<String>,
    /// Bound on publishing one outcome event.
    pub publish_timeout: Duration,
    /// Age after which a workflow mode createSecret resumes a pending rotation.
    pub workflow_resume_after: Duration,
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
        let number = |variable: &Variable| variable.number(&lookup).map_err(RotationError::Config);
        let seconds = |variable: &Variable| number(variable).map(Duration::from_secs);
        let iam_strict_revocation = variables::IAM_STRICT_REVOCATION
            .flag(&lookup)
            .map_err(RotationError::Config)?;
        let iam_propagation_timeout = seconds(&variables::IAM_PROPAGATION_TIMEOUT)?;
        let db_connect_timeout = seconds(&variables::DB_CONNECT_TIMEOUT)?;
        let db_statement_timeout = seconds(&variables::DB_STATEMENT_TIMEOUT)?;
        let aws_attempt_timeout = seconds(&variables::AWS_ATTEMPT_TIMEOUT)?;
        let aws_operation_timeout = seconds(&variables::AWS_OPERATION_TIMEOUT)?;
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
        let race_settle = Duration::from_millis(number(&variables::RACE_SETTLE)?);
        Ok(Config {
            race_settle,
            db_host_overrides: parse_overrides(&lookup(ENV_DB_HOST_OVERRIDES).unwrap_or_default())?,
            mysql_username_limit: usize::try_from(number(&variables::USERNAME_LIMIT)?)
                .unwrap_or(usize::MAX),
            rds_wait: seconds(&variables::RDS_WAIT)?,
            in_use_wait: seconds(&variables::IN_USE_WAIT)?,
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
            publish_timeout: Duration::from_millis(number(&variables::PUBLISH_TIMEOUT)?),
            workflow_resume_after: seconds(&variables::WORKFLOW_RESUME_AFTER)?,
        })
    }

    /// What a step leaves before the invocation's deadline for reporting its outcome
    /// (publishing it, and [`REPORT_MARGIN`]): waits end earlier, and a step still running then
    /// is stopped and reported as timed out.
    pub fn report_reserve(&self) -> Duration {
        self.publish_timeout + REPORT_MARGIN
    }
}

impl Config {
    /// The AWS configuration from the environment (region, credentials, endpoints, and the
    /// SDK's own `AWS_RETRY_MODE` and `AWS_MAX_ATTEMPTS`: standard mode, 3 attempts with
    /// exponential backoff and jitter by default), with every call bounded by the attempt and
    /// operation timeouts. The SDK's user agent names the calling function (app name
    /// `secret-rotation-<function>`, see [`app_name`]): CloudTrail's `userAgent` then shows
    /// which function made a call, and the test bed's policy gate evaluates each call against
    /// that function's role.
    pub async fn load_aws(&self, function: &str) -> aws_config::SdkConfig {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(AWS_CONNECT_TIMEOUT.min(self.aws_attempt_timeout))
            .operation_attempt_timeout(self.aws_attempt_timeout)
            .operation_timeout(self.aws_operation_timeout)
            .build();
        let loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
        let loader = match aws_config::AppName::new(app_name(function)) {
            Ok(app) => loader.app_name(app),
            Err(_) => loader,
        };
        loader.load().await
    }

    /// The override for connections to `host` and `port`, if one matches (the first).
    /// [`Config::endpoint_for`], beside the endpoint type in
    /// [`crate::providers::database_secret`], applies it.
    pub fn host_override(&self, host: &str, port: u16) -> Option<&HostOverride> {
        self.db_host_overrides
            .iter()
            .find(|o| o.matches(host, port))
    }
}

/// The SDK app name of `function` (a Cargo package of `functions/`, e.g. `set-secret`): what
/// the function's AWS calls carry in their user agent (`app/secret-rotation-set-secret`).
pub fn app_name(function: &str) -> String {
    format!("secret-rotation-{function}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_function_names_itself_in_a_valid_sdk_app_name() {
        for function in crate::mode::FUNCTIONS {
            let name = app_name(function);
            assert_eq!(name, format!("secret-rotation-{function}"));
            aws_config::AppName::new(name).expect("a valid app name");
        }
    }

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
