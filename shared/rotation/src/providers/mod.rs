//! The provider seam: one module per kind of credential, chosen from the secret's JSON.
//!
//! The protocol ([`crate::protocol`]) handles Secrets Manager (labels, checks, idempotency of
//! createSecret and finishSecret); a provider only turns the current secret into a new one
//! (createSecret), makes it valid in the target system (setSecret) and proves it works
//! (testSecret).

pub mod database;
pub mod database_secret;
pub mod iam_access_key;
pub mod iam_secret;
pub mod keyring;
pub mod mysql;
pub mod postgres;
pub mod rds;
pub mod rds_master;
pub mod sessions;

use std::sync::{Arc, Mutex};

use rotation_json::{Fields, MakeError};
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::DbFailure;
use crate::error::{Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{SecretMetadata, SecretsManager, AWSCURRENT, AWSPENDING};
use database::Database as _;

/// What a provider may use during a step.
pub struct StepContext<'a> {
    /// The AWS configuration, for a provider's own service clients (IAM, STS, RDS...).
    pub aws: &'a aws_config::SdkConfig,
    /// Secrets Manager, for the versions and secrets a provider reads lazily (AWSPREVIOUS, master).
    pub secrets_manager: &'a SecretsManager,
    /// The function's configuration.
    pub config: &'a Config,
    /// TLS configuration for verified database connections.
    pub tls: &'a Arc<ClientConfig>,
    /// The secret being rotated.
    pub secret: &'a SecretMetadata,
    /// Warnings for the step's report.
    pub warnings: Mutex<Vec<String>>,
    /// The invocation's deadline: every wait ends [`Config::report_reserve`] before it.
    pub deadline: crate::deadline::Deadline,
    /// What the step found and did about live sessions ([`sessions`]), for its report,
    /// metrics and outcome event.
    pub sessions: Mutex<Option<sessions::SessionFacts>>,
}

impl StepContext<'_> {
    /// When a wait of at most `limit` must end: `limit` from now, or the deadline less the
    /// reserve for reporting the step's outcome, whichever comes first.
    pub fn wait_end(&self, limit: std::time::Duration) -> std::time::Instant {
        self.deadline.wait_end(limit, self.config.report_reserve())
    }

    /// Updates what the step records about live sessions ([`sessions::SessionFacts`]).
    pub fn record_sessions(&self, update: impl FnOnce(&mut sessions::SessionFacts)) {
        if let Ok(mut facts) = self.sessions.lock() {
            update(facts.get_or_insert_with(Default::default));
        }
    }

    /// Records a warning for the step's report and logs it.
    pub fn warn(&self, message: String) {
        tracing::warn!(secret_arn = %self.secret.arn, "{message}");
        if let Ok(mut warnings) = self.warnings.lock() {
            if !warnings.contains(&message) {
                warnings.push(message);
            }
        }
    }
}

/// The kinds of credential this project rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// PostgreSQL users (engines `postgres`, `aurora-postgresql`).
    Postgres,
    /// MySQL and MariaDB users (engines `mysql`, `aurora-mysql`, `mariadb`).
    MySql,
    /// IAM user access keys (`provider` = `iam-access-key`).
    IamAccessKey,
    /// An encryption keyring (`provider` = `keyring`).
    Keyring,
}

/// The database engines a secret's `engine` may name.
pub const ENGINES: &str = "postgres, aurora-postgresql, mysql, aurora-mysql, mariadb";

/// What a provider did, for the step's report.
#[derive(Debug, Clone)]
pub struct ProviderResult<T> {
    /// Provider name, e.g. `postgres`.
    pub provider: &'static str,
    /// Strategy, e.g. `single-user` or `alternating-users`.
    pub strategy: &'static str,
    /// The step's value.
    pub value: T,
}

impl ProviderKind {
    /// Chooses the provider from a secret's JSON (`engine`, or `provider` for non-database secrets).
    pub fn of(fields: &Map<String, Value>, secret: &str, version: &str) -> Result<Self> {
        let fields = secret_fields(fields, secret, version);
        if let Some(provider) = fields.maybe_empty_str("provider")? {
            return match provider {
                "postgres" => Ok(ProviderKind::Postgres),
                "mysql" => Ok(ProviderKind::MySql),
                iam_secret::PROVIDER => Ok(ProviderKind::IamAccessKey),
                rotation_keyring::PROVIDER => Ok(ProviderKind::Keyring),
                other => Err(RotationError::invalid_secret(
                    secret,
                    version,
                    format!(
                        "field `provider`: unsupported value {other:?}; expected postgres, mysql, {}, or {}",
                        iam_secret::PROVIDER,
                        rotation_keyring::PROVIDER
                    ),
                )),
            };
        }
        match fields.maybe_empty_str("engine")? {
            Some("postgres" | "aurora-postgresql") => Ok(ProviderKind::Postgres),
            Some("mysql" | "aurora-mysql" | "mariadb") => Ok(ProviderKind::MySql),
            Some(other) => Err(RotationError::invalid_secret(
                secret,
                version,
                format!("field `engine`: unsupported value {other:?}; expected {ENGINES}"),
            )),
            None => Err(RotationError::invalid_secret(
                secret,
                version,
                format!("field `engine` is missing: name the database engine ({ENGINES}), or set `provider` ({}, {})", iam_secret::PROVIDER, rotation_keyring::PROVIDER),
            )),
        }
    }
}

/// What a secret's value says about how it is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Provider name, e.g. `postgres`.
    pub provider: &'static str,
    /// Strategy, e.g. `single-user` or `alternating-users`.
    pub strategy: &'static str,
    /// How many rotations in a row retire every credential that was valid before the first of
    /// them: 1 for a single-phase strategy (the old credential stops working during the
    /// rotation), 2 for a dual-phase one (the previous credential stays valid until the next
    /// rotation replaces it).
    pub rotations_to_retire: u8,
}

/// The profile of a secret value (the provider's view of it), naming the field that is wrong.
pub fn profile(value: &SecretString, secret: &str, version: &str) -> Result<Profile> {
    let fields = parse_object(value, secret, version)?;
    match ProviderKind::of(&fields, secret, version)? {
        ProviderKind::Postgres => database::profile::<postgres::Postgres>(fields, secret, version),
        ProviderKind::MySql => database::profile::<mysql::MySql>(fields, secret, version),
        // The previous key stays valid until the next rotation deletes it.
        ProviderKind::IamAccessKey => Ok(Profile {
            provider: iam_secret::PROVIDER,
            strategy: "dual-phase",
            rotations_to_retire: 2,
        }),
        // A rotation makes a new key active; older keys only decrypt until retention ends.
        ProviderKind::Keyring => Ok(Profile {
            provider: rotation_keyring::PROVIDER,
            strategy: "keyring",
            rotations_to_retire: 1,
        }),
    }
}

/// Parses a secret's JSON text into an object, without ever quoting the text in an error.
pub fn parse_object(
    value: &SecretString,
    secret: &str,
    version: &str,
) -> Result<Map<String, Value>> {
    rotation_json::parse_object(value.expose_secret(), "the secret", |problem| {
        InvalidSecret { secret, version }.make(problem)
    })
}

/// Builds the errors of a secret version's fields: [`RotationError::InvalidSecret`] naming the
/// secret and the version.
#[derive(Debug, Clone, Copy)]
pub struct InvalidSecret<'a> {
    /// The secret's ARN or name.
    pub secret: &'a str,
    /// The version (`AWSCURRENT`, `master secret AWSCURRENT`, ...).
    pub version: &'a str,
}

impl MakeError for InvalidSecret<'_> {
    type Error = RotationError;

    fn make(&self, problem: String) -> RotationError {
        RotationError::invalid_secret(self.secret, self.version, problem)
    }
}

/// Typed access to the fields of a secret version's JSON.
pub type SecretFields<'a> = Fields<'a, InvalidSecret<'a>>;

/// The fields of `version` of `secret`: an error names the version and the field, never a
/// value.
pub fn secret_fields<'a>(
    fields: &'a Map<String, Value>,
    secret: &'a str,
    version: &'a str,
) -> SecretFields<'a> {
    Fields::new(fields, InvalidSecret { secret, version })
}

/// createSecret: the provider builds the new secret value from the current one.
pub async fn create(
    ctx: &StepContext<'_>,
    current: &SecretString,
) -> Result<ProviderResult<SecretString>> {
    let fields = parse_object(current, &ctx.secret.arn, AWSCURRENT)?;
    let fields = rds::with_discovered_endpoint(ctx, fields, AWSCURRENT).await?;
    match ProviderKind::of(&fields, &ctx.secret.arn, AWSCURRENT)? {
        ProviderKind::Postgres => {
            Box::pin(database::create::<postgres::Postgres>(ctx, fields)).await
        }
        ProviderKind::MySql => Box::pin(database::create::<mysql::MySql>(ctx, fields)).await,
        ProviderKind::IamAccessKey => Box::pin(iam_access_key::create(ctx, fields)).await,
        ProviderKind::Keyring => Box::pin(keyring::create(ctx, fields)).await,
    }
}

/// setSecret: the provider makes the pending credentials valid in the target system.
pub async fn set(
    ctx: &StepContext<'_>,
    current: &SecretString,
    pending: &SecretString,
) -> Result<ProviderResult<Outcome>> {
    let pending = parse_object(pending, &ctx.secret.arn, AWSPENDING)?;
    let pending = rds::with_discovered_endpoint(ctx, pending, AWSPENDING).await?;
    let current = parse_object(current, &ctx.secret.arn, AWSCURRENT)?;
    let current = rds::with_discovered_endpoint(ctx, current, AWSCURRENT).await?;
    let kind = ProviderKind::of(&pending, &ctx.secret.arn, AWSPENDING)?;
    if kind != ProviderKind::of(&current, &ctx.secret.arn, AWSCURRENT)? {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            AWSPENDING,
            "the pending version names another provider than the current version",
        ));
    }
    match kind {
        ProviderKind::Postgres => {
            Box::pin(database::set::<postgres::Postgres>(ctx, current, pending)).await
        }
        ProviderKind::MySql => Box::pin(database::set::<mysql::MySql>(ctx, current, pending)).await,
        ProviderKind::IamAccessKey => Box::pin(iam_access_key::set(ctx, current, pending)).await,
        ProviderKind::Keyring => Box::pin(keyring::set(ctx, current, pending)).await,
    }
}

/// testSecret: the provider proves the pending credentials work.
pub async fn test(ctx: &StepContext<'_>, pending: &SecretString) -> Result<ProviderResult<()>> {
    test_version(ctx, pending, AWSPENDING).await
}

/// The provider's testSecret on `value`, the secret's version labelled `stage`: proves that
/// its credentials work now (a database login and query, STS signed with an access key, a
/// keyring's self-test) and changes nothing. Errors name `stage`. testSecret runs it on
/// AWSPENDING, `rotator rollback` on AWSPREVIOUS.
pub async fn test_version(
    ctx: &StepContext<'_>,
    value: &SecretString,
    stage: &str,
) -> Result<ProviderResult<()>> {
    let fields = parse_object(value, &ctx.secret.arn, stage)?;
    let fields = rds::with_discovered_endpoint(ctx, fields, stage).await?;
    match ProviderKind::of(&fields, &ctx.secret.arn, stage)? {
        ProviderKind::Postgres => {
            Box::pin(database::test::<postgres::Postgres>(ctx, fields, stage)).await
        }
        ProviderKind::MySql => Box::pin(database::test::<mysql::MySql>(ctx, fields, stage)).await,
        ProviderKind::IamAccessKey => Box::pin(iam_access_key::test(ctx, fields, stage)).await,
        ProviderKind::Keyring => Box::pin(keyring::test(ctx, fields, stage)).await,
    }
}

/// The sessions of the user a database secret's `version` names, listed by that user itself,
/// logged in with the version's own credentials at the endpoint the version names (TLS
/// verified as the functions verify it: `tls`, and `ca_file` for MySQL), bounded by `timeout`:
/// every session but that login. What `rotator status` shows per credential. None for a
/// secret that is no database's.
pub async fn own_sessions(
    value: &SecretString,
    secret: &str,
    version: &str,
    tls: &Arc<ClientConfig>,
    ca_file: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<Option<sessions::Sessions>> {
    use database_secret::{DatabaseSecret, Endpoint};
    let fields = parse_object(value, secret, version)?;
    let kind = ProviderKind::of(&fields, secret, version)?;
    let credential = if version == AWSCURRENT {
        crate::error::Credential::Current
    } else {
        crate::error::Credential::Previous
    };
    let rows = match kind {
        ProviderKind::Postgres => {
            let db =
                DatabaseSecret::parse(fields, secret, version, postgres::Postgres::DEFAULT_PORT)?;
            postgres::own_sessions(
                tls,
                timeout,
                &Endpoint::of(&db),
                &db.username,
                &db.password,
                credential,
            )
            .await
            .map(|rows| (db.username, rows))?
        }
        ProviderKind::MySql => {
            let db = DatabaseSecret::parse(fields, secret, version, mysql::MySql::DEFAULT_PORT)?;
            let endpoint = Endpoint::of(&db);
            let who = database::Who {
                credential,
                user: db.username.clone(),
                endpoint: endpoint.display(),
            };
            mysql::own_sessions(ca_file, timeout, &endpoint, &who, &db.password)
                .await
                .map(|rows| (db.username, rows))?
        }
        ProviderKind::IamAccessKey | ProviderKind::Keyring => return Ok(None),
    };
    Ok(Some(sessions::Sessions::consumers(&rows.0, &rows.1)))
}

/// Sorts a driver's error message into TLS, authentication or network failures (for errors
/// that carry no server error code).
pub fn classify_message(message: &str) -> DbFailure {
    let text = message.to_ascii_lowercase();
    if text.contains("tls") || text.contains("certificate") || text.contains("ssl") {
        DbFailure::Tls
    } else if text.contains("password")
        || text.contains("authentication")
        || text.contains("access denied")
    {
        DbFailure::Authentication
    } else {
        DbFailure::Network
    }
}

/// An error's message followed by its causes, each once (drivers never echo passwords), and,
/// for a refused TLS connection, the cause in plain words ([`crate::tls::refusal_cause`]).
pub fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match crate::tls::refusal_cause(e) {
        Some(cause) => format!("{cause}: {e}"),
        None => e.to_string(),
    };
    let mut source = e.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_of(value: serde_json::Value) -> Result<Profile> {
        profile(&SecretString::from(value.to_string()), "s", "AWSCURRENT")
    }

    #[test]
    fn secrets_without_a_host_are_planned_from_their_strategy() {
        // As events/secrets/aurora-mysql-rds-master.json: RDS discovery gives the endpoint.
        let master = profile_of(serde_json::json!({
            "engine": "aurora-mysql", "dbClusterIdentifier": "orders",
            "username": "admin", "password": "p", "strategy": "rds-master"
        }))
        .unwrap();
        assert_eq!(
            (master.strategy, master.rotations_to_retire),
            ("rds-master", 1)
        );
        let discovered = profile_of(serde_json::json!({
            "engine": "postgres", "dbInstanceIdentifier": "db1", "username": "app", "password": "p"
        }))
        .unwrap();
        assert_eq!(
            (
                discovered.provider,
                discovered.strategy,
                discovered.rotations_to_retire
            ),
            ("postgres", "single-user", 1)
        );
        let mysql = profile_of(serde_json::json!({
            "engine": "mysql", "dbInstanceIdentifier": "db1", "username": "app", "password": "p"
        }))
        .unwrap();
        assert_eq!(mysql.rotations_to_retire, 2);
        let err = profile_of(serde_json::json!({
            "engine": "postgres", "dbInstanceIdentifier": "db1", "strategy": "rds-master2"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`strategy`"), "{err}");
    }
}
