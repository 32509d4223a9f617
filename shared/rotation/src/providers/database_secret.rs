//! The database secret JSON, exactly as AWS documents it for its rotation templates.
//!
//! `engine`, `host`, `username`, `password`, optional `port`, `dbname`, `ssl`, `masterarn`,
//! `dbInstanceIdentifier`, `dbClusterIdentifier`; every other key is carried to the new version
//! unchanged. Errors name the field and never show a value.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::secret_fields;
use crate::config::{Config, ENV_DB_HOST_OVERRIDES};
use crate::error::Result;

/// Internal key listing the fields RDS discovery ([`super::rds`]) added, so that the next
/// version of the secret carries only what the user wrote (a NUL-prefixed key no secret uses).
pub const DISCOVERED: &str = "\u{0}discovered";

/// Whether the database connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS required, certificate chain and host name verified (the default).
    Verified,
    /// No TLS: only when the secret says `"ssl": false`; every step logs a warning.
    Disabled,
}

/// How a database secret is rotated: the `strategy` field, or alternating users when the
/// secret names a `masterarn`, else single-user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The user changes its own password (single-phase).
    SingleUser,
    /// A master user alternates the secret between `user` and `user_clone` (dual-phase).
    AlternatingUsers,
    /// The RDS master user's password, changed through the RDS API (single-phase).
    RdsMaster,
}

impl Strategy {
    /// Rotations in a row that retire every password valid before the first of them: 2 when
    /// the previous password stays valid until the next rotation (alternating users; MySQL's
    /// `RETAIN CURRENT PASSWORD`, which the engine `mysql` / `aurora-mysql` may use), else 1.
    pub fn rotations_to_retire(self, engine: &str) -> u8 {
        match self {
            Strategy::AlternatingUsers => 2,
            Strategy::SingleUser if matches!(engine, "mysql" | "aurora-mysql") => 2,
            Strategy::SingleUser | Strategy::RdsMaster => 1,
        }
    }

    /// Name for reports, logs and the `strategy` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
            Strategy::RdsMaster => "rds-master",
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address; the server certificate must name it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database to connect to, when the secret names one.
    pub dbname: Option<String>,
    /// TLS mode.
    pub tls: TlsMode,
}

impl Endpoint {
    /// The endpoint a database secret names.
    pub fn of(secret: &DatabaseSecret) -> Self {
        Endpoint {
            host: secret.host.clone(),
            port: secret.port,
            dbname: secret.dbname.clone(),
            tls: secret.tls,
        }
    }

    /// `host:port`, for messages.
    pub fn display(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl Config {
    /// The endpoint to connect to: `endpoint`, or where an override
    /// ([`crate::config::ENV_DB_HOST_OVERRIDES`]) sends it. It lives beside [`Endpoint`] so
    /// that the configuration depends on no provider.
    pub fn endpoint_for(&self, endpoint: Endpoint) -> Endpoint {
        match self.host_override(&endpoint.host, endpoint.port) {
            Some(o) => {
                tracing::debug!(from = %endpoint.display(), to_host = %o.to_host, to_port = o.to_port, "endpoint overridden by {ENV_DB_HOST_OVERRIDES}");
                Endpoint {
                    host: o.to_host.clone(),
                    port: o.to_port,
                    ..endpoint
                }
            }
            None => endpoint,
        }
    }
}

/// A parsed database secret. Debug output never shows the password.
#[derive(Clone)]
pub struct DatabaseSecret {
    /// `engine`, as given.
    pub engine: String,
    /// `host`.
    pub host: String,
    /// `port`, or the engine's default.
    pub port: u16,
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: SecretString,
    /// `dbname`, when given.
    pub dbname: Option<String>,
    /// `ssl`: TLS unless the secret turns it off explicitly.
    pub tls: TlsMode,
    /// `masterarn`: the master secret of the alternating-users strategy.
    pub masterarn: Option<String>,
    /// The rotation strategy.
    pub strategy: Strategy,
    /// `dbInstanceIdentifier`, when given.
    pub db_instance_identifier: Option<String>,
    /// `dbClusterIdentifier`, when given.
    pub db_cluster_identifier: Option<String>,
    /// Every field as read, password removed, to be carried into the next version.
    fields: Map<String, Value>,
}

impl fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .field("masterarn", &self.masterarn)
            .field("strategy", &self.strategy)
            .field("other_fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DatabaseSecret {
    /// The strategy a database secret asks for (field `strategy`, else `masterarn`'s presence),
    /// read without the connection fields: a secret whose endpoint RDS discovery provides (no
    /// `host`) is planned like any other.
    pub fn strategy_of(
        fields: &Map<String, Value>,
        secret: &str,
        version: &str,
    ) -> Result<Strategy> {
        let reader = secret_fields(fields, secret, version);
        let masterarn = reader.optional_str("masterarn")?;
        let db_instance_identifier = reader.optional_str("dbInstanceIdentifier")?;
        let db_cluster_identifier = reader.optional_str("dbClusterIdentifier")?;
        Ok(match (reader.optional_str("strategy")?, masterarn) {
            (None, None) => Strategy::SingleUser,
            (None, Some(_)) => Strategy::AlternatingUsers,
            (Some("single-user"), _) => Strategy::SingleUser,
            (Some("alternating-users"), Some(_)) => Strategy::AlternatingUsers,
            (Some("alternating-users"), None) => {
                return Err(reader.error("masterarn", "is missing: the alternating-users strategy needs the master user's secret"))
            }
            (Some("rds-master"), _)
                if db_instance_identifier.is_none() && db_cluster_identifier.is_none() =>
            {
                return Err(reader.error(
                    "dbInstanceIdentifier",
                    "is missing: the rds-master strategy needs dbInstanceIdentifier or dbClusterIdentifier",
                ))
            }
            (Some("rds-master"), _) => Strategy::RdsMaster,
            (Some(other), _) => {
                return Err(reader.error(
                    "strategy",
                    format!("unsupported value {other:?}; expected single-user, alternating-users or rds-master"),
                ))
            }
        })
    }

    /// Parses a database secret; `default_port` is the engine's port when `port` is absent.
    pub fn parse(
        fields: Map<String, Value>,
        secret: &str,
        version: &str,
        default_port: u16,
    ) -> Result<Self> {
        let reader = secret_fields(&fields, secret, version);
        let engine = reader.required_str("engine")?.to_owned();
        let host = reader.required_str("host")?.to_owned();
        let username = reader.required_str("username")?.to_owned();
        let password = SecretString::from(reader.required_str("password")?.to_owned());
        let port = reader.optional_port("port")?.unwrap_or(default_port);
        let dbname = reader.optional_str("dbname")?.map(str::to_owned);
        let tls = match reader.optional_bool("ssl")? {
            Some(false) => TlsMode::Disabled,
            Some(true) | None => TlsMode::Verified,
        };
        let masterarn = reader.optional_str("masterarn")?.map(str::to_owned);
        let db_instance_identifier = reader
            .optional_str("dbInstanceIdentifier")?
            .map(str::to_owned);
        let db_cluster_identifier = reader
            .optional_str("dbClusterIdentifier")?
            .map(str::to_owned);
        let strategy = Self::strategy_of(&fields, secret, version)?;
        let mut fields = fields;
        fields.remove("password");
        // Values RDS discovery added are used for this step, not carried into the next version.
        if let Some(Value::Array(added)) = fields.remove(DISCOVERED) {
            for key in added.iter().filter_map(Value::as_str) {
                fields.remove(key);
            }
        }
        Ok(DatabaseSecret {
            engine,
            host,
            port,
            username,
            password,
            dbname,
            tls,
            masterarn,
            strategy,
            db_instance_identifier,
            db_cluster_identifier,
            fields,
        })
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The next version of this secret: every field carried over, with a new user name and
    /// password.
    pub fn next_version(&self, username: &str, password: &SecretString) -> SecretString {
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(username.to_owned()));
        fields.insert(
            "password".into(),
            Value::String(password.expose_secret().to_owned()),
        );
        SecretString::from(Value::Object(fields).to_string())
    }
}

/// A master secret: `username` and `password`, and the endpoint when the secret has one (an
/// RDS-managed master secret holds only the credentials). The master's connection settings
/// (TLS, database) come from this secret only, never from the secret being rotated.
#[derive(Clone)]
pub struct MasterSecret {
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: SecretString,
    /// `host`, when given.
    pub host: Option<String>,
    /// `port`, when given.
    pub port: Option<u16>,
    /// `dbname`, when given.
    pub dbname: Option<String>,
    /// `ssl`: TLS unless the master secret itself turns it off.
    pub tls: TlsMode,
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterSecret")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .finish()
    }
}

impl MasterSecret {
    /// Parses a master secret.
    pub fn parse(fields: &Map<String, Value>, secret: &str) -> Result<Self> {
        let reader = secret_fields(fields, secret, "master secret AWSCURRENT");
        Ok(MasterSecret {
            username: reader.required_str("username")?.to_owned(),
            password: SecretString::from(reader.required_str("password")?.to_owned()),
            host: reader.optional_str("host")?.map(str::to_owned),
            port: reader.optional_port("port")?,
            dbname: reader.optional_str("dbname")?.map(str::to_owned),
            tls: match reader.optional_bool("ssl")? {
                Some(false) => TlsMode::Disabled,
                Some(true) | None => TlsMode::Verified,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<DatabaseSecret> {
        DatabaseSecret::parse(value.as_object().unwrap().clone(), "s", "AWSCURRENT", 5432)
    }

    #[test]
    fn parses_aws_shape_and_carries_unknown_keys() {
        let secret = parse(json!({
            "engine": "postgres", "host": "db", "username": "app", "password": "hunter2-secret",
            "port": "6543", "dbname": "appdb", "team": {"owner": "x"}, "ssl": "true"
        }))
        .unwrap();
        assert_eq!(secret.port, 6543);
        assert_eq!(secret.tls, TlsMode::Verified);
        let debug = format!("{secret:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        let next = secret.next_version("app_clone", &SecretString::from("n3w".to_owned()));
        let next: Value = serde_json::from_str(next.expose_secret()).unwrap();
        assert_eq!(next["team"]["owner"], "x");
        assert_eq!(next["port"], "6543");
        assert_eq!(next["username"], "app_clone");
        assert_eq!(next["password"], "n3w");
        assert_eq!(next["ssl"], "true");
    }

    #[test]
    fn tls_is_on_unless_turned_off() {
        let base = json!({"engine": "postgres", "host": "db", "username": "u", "password": "p"});
        assert_eq!(parse(base.clone()).unwrap().tls, TlsMode::Verified);
        let mut off = base.clone();
        off["ssl"] = json!(false);
        assert_eq!(parse(off).unwrap().tls, TlsMode::Disabled);
        let mut bad = base;
        bad["ssl"] = json!("maybe");
        assert!(parse(bad).unwrap_err().to_string().contains("`ssl`"));
    }

    #[test]
    fn the_master_secret_alone_decides_the_masters_tls() {
        let master = |value: Value| MasterSecret::parse(value.as_object().unwrap(), "m").unwrap();
        let managed = master(json!({"username": "admin", "password": "p"}));
        assert_eq!(managed.tls, TlsMode::Verified);
        assert_eq!((managed.host, managed.dbname), (None, None));
        let off = master(json!({"username": "admin", "password": "p", "ssl": "false"}));
        assert_eq!(off.tls, TlsMode::Disabled);
    }

    #[test]
    fn errors_name_the_field_but_not_the_value() {
        for (value, field) in [
            (
                json!({"host": "db", "username": "u", "password": "p"}),
                "`engine`",
            ),
            (
                json!({"engine": "postgres", "username": "u", "password": "p"}),
                "`host`",
            ),
            (
                json!({"engine": "postgres", "host": "db", "password": "p"}),
                "`username`",
            ),
            (
                json!({"engine": "postgres", "host": "db", "username": "u"}),
                "`password`",
            ),
            (
                json!({"engine": "postgres", "host": "db", "username": "u", "password": 12345}),
                "`password`",
            ),
            (
                json!({"engine": "postgres", "host": "db", "username": "u", "password": "p", "port": 70000}),
                "`port`",
            ),
        ] {
            let err = parse(value).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
            assert!(!err.contains("12345"), "{err}");
        }
    }
}
