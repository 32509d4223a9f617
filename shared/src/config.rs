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

/// Environment variable: `true` makes createSecret refuse to revoke an IAM access key used
/// since the previous rotation finished (a secret's `strictRevocation` overrides it).
pub const ENV_IAM_STRICT_REVOCATION: &str = "ROTATION_IAM_STRICT_REVOCATION";
/// Environment variable: seconds setSecret waits for IAM to accept a new access key.
pub const ENV_IAM_PROPAGATION_TIMEOUT: &str = "ROTATION_IAM_PROPAGATION_TIMEOUT_SECONDS";

/// Everything a step needs to know that does not come from the event or the secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// How new passwords are generated (AWS's PASSWORD_LENGTH, EXCLUDE_* variables).
    pub password: PasswordPolicy,
    /// Extra CA file for database TLS.
    pub db_ca_file: Option<PathBuf>,
    /// Bound on one database connection.
    pub db_connect_timeout: Duration,
    /// Refuse to revoke an IAM access key used since the previous rotation (default false).
    pub iam_strict_revocation: bool,
    /// How long setSecret waits for IAM to accept a new access key.
    pub iam_propagation_timeout: Duration,
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
        Ok(Config {
            password: PasswordPolicy::from_lookup(&lookup)?,
            db_ca_file: lookup(ENV_DB_CA_FILE)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
            db_connect_timeout,
            iam_strict_revocation,
            iam_propagation_timeout,
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
        assert!(!config.iam_strict_revocation);
        assert_eq!(config.iam_propagation_timeout, Duration::from_secs(30));
        let env: HashMap<&str, &str> = [
            (ENV_DB_CONNECT_TIMEOUT, "9"),
            (ENV_DB_CA_FILE, "/tmp/ca.pem"),
            (ENV_IAM_STRICT_REVOCATION, "TRUE"),
            (ENV_IAM_PROPAGATION_TIMEOUT, "90"),
        ]
        .into();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.db_connect_timeout, Duration::from_secs(9));
        assert_eq!(config.db_ca_file.unwrap(), PathBuf::from("/tmp/ca.pem"));
        assert!(config.iam_strict_revocation);
        assert_eq!(config.iam_propagation_timeout, Duration::from_secs(90));
    }

    #[test]
    fn rejects_a_bad_timeout_naming_the_variable() {
        let err = Config::from_lookup(|k| (k == ENV_DB_CONNECT_TIMEOUT).then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENV_DB_CONNECT_TIMEOUT), "{err}");
        for name in [ENV_IAM_STRICT_REVOCATION, ENV_IAM_PROPAGATION_TIMEOUT] {
            let err = Config::from_lookup(|k| (k == name).then(|| "maybe".into()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
