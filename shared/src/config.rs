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

/// Environment variable: the EventBridge event bus (name or ARN) that receives one event per
/// rotation outcome. Unset or empty: no event is published.
pub const ENV_EVENT_BUS: &str = "ROTATION_EVENT_BUS";
/// Environment variable: the CloudWatch namespace of the metrics the functions log in Embedded
/// Metric Format.
pub const ENV_METRICS_NAMESPACE: &str = "ROTATION_METRICS_NAMESPACE";
/// The metrics namespace when [`ENV_METRICS_NAMESPACE`] is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "SecretRotation";

/// Everything a step needs to know that does not come from the event or the secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// How new passwords are generated (AWS's PASSWORD_LENGTH, EXCLUDE_* variables).
    pub password: PasswordPolicy,
    /// Extra CA file for database TLS.
    pub db_ca_file: Option<PathBuf>,
    /// Bound on one database connection.
    pub db_connect_timeout: Duration,
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
        let db_connect_timeout = match lookup(ENV_DB_CONNECT_TIMEOUT) {
            None => Duration::from_secs(5),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) if (1..=300).contains(&secs) => Duration::from_secs(secs),
                _ => {
                    return Err(RotationError::Config(format!(
                        "{ENV_DB_CONNECT_TIMEOUT} must be a whole number of seconds from 1 to 300, got {raw:?}"
                    )))
                }
            },
        };
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
        Ok(Config {
            password: PasswordPolicy::from_lookup(&lookup)?,
            db_ca_file: lookup(ENV_DB_CA_FILE)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            db_connect_timeout,
            event_bus: lookup(ENV_EVENT_BUS)
                .map(|b| b.trim().to_owned())
                .filter(|b| !b.is_empty()),
            metrics_namespace,
        })
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
        assert!(config.db_ca_file.is_none());
        assert!(
            config.event_bus.is_none(),
            "no events unless a bus is named"
        );
        assert_eq!(config.metrics_namespace, DEFAULT_METRICS_NAMESPACE);
        let env: HashMap<&str, &str> = [
            (ENV_DB_CONNECT_TIMEOUT, "9"),
            (ENV_DB_CA_FILE, "/tmp/ca.pem"),
            (ENV_EVENT_BUS, " rotation-outcomes "),
            (ENV_METRICS_NAMESPACE, "Team/Rotation"),
        ]
        .into();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.db_connect_timeout, Duration::from_secs(9));
        assert_eq!(config.db_ca_file.unwrap(), PathBuf::from("/tmp/ca.pem"));
        assert_eq!(config.event_bus.as_deref(), Some("rotation-outcomes"));
        assert_eq!(config.metrics_namespace, "Team/Rotation");
        let blank = Config::from_lookup(|k| (k == ENV_EVENT_BUS).then(|| " ".into())).unwrap();
        assert!(
            blank.event_bus.is_none(),
            "an empty bus name turns events off"
        );
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
    fn rejects_a_bad_timeout_naming_the_variable() {
        let err = Config::from_lookup(|k| (k == ENV_DB_CONNECT_TIMEOUT).then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_DB_CONNECT_TIMEOUT), "{err}");
    }
}
