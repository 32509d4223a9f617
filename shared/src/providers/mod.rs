//! The provider seam: one module per kind of credential, chosen from the secret's JSON.
//!
//! The protocol ([`crate::protocol`]) handles Secrets Manager (labels, checks, idempotency of
//! createSecret and finishSecret); a provider only turns the current secret into a new one
//! (createSecret), makes it valid in the target system (setSecret) and proves it works
//! (testSecret).

pub mod database_secret;
pub mod postgres;

use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{Result, RotationError};
use crate::event::json_type_name;
use crate::report::Outcome;
use crate::secrets_manager::{SecretMetadata, SecretsManager};

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
}

impl StepContext<'_> {
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
}

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
        let field = |name: &str| -> Result<Option<&str>> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(RotationError::invalid_secret(
                    secret,
                    version,
                    format!(
                        "field `{name}`: expected a string, got {}",
                        json_type_name(other)
                    ),
                )),
            }
        };
        if let Some(provider) = field("provider")? {
            return match provider {
                "postgres" => Ok(ProviderKind::Postgres),
                other => Err(RotationError::invalid_secret(
                    secret,
                    version,
                    format!("field `provider`: unsupported value {other:?}; expected postgres"),
                )),
            };
        }
        match field("engine")? {
            Some("postgres" | "aurora-postgresql") => Ok(ProviderKind::Postgres),
            Some(other) => Err(RotationError::invalid_secret(
                secret,
                version,
                format!(
                    "field `engine`: unsupported value {other:?}; expected postgres or aurora-postgresql"
                ),
            )),
            None => Err(RotationError::invalid_secret(
                secret,
                version,
                "field `engine` is missing: name the database engine (postgres, aurora-postgresql)",
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
        ProviderKind::Postgres => postgres::profile(fields, secret, version),
    }
}

/// Parses a secret's JSON text into an object, without ever quoting the text in an error.
pub fn parse_object(
    value: &SecretString,
    secret: &str,
    version: &str,
) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(value.expose_secret()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RotationError::invalid_secret(
            secret,
            version,
            format!(
                "the secret must be a JSON object, got {}",
                json_type_name(&other)
            ),
        )),
        Err(e) => Err(RotationError::invalid_secret(
            secret,
            version,
            format!(
                "the secret is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// createSecret: the provider builds the new secret value from the current one.
pub async fn create(
    ctx: &StepContext<'_>,
    current: &SecretString,
) -> Result<ProviderResult<SecretString>> {
    let fields = parse_object(current, &ctx.secret.arn, crate::secrets_manager::AWSCURRENT)?;
    match ProviderKind::of(&fields, &ctx.secret.arn, crate::secrets_manager::AWSCURRENT)? {
        ProviderKind::Postgres => postgres::create(ctx, fields).await,
    }
}

/// setSecret: the provider makes the pending credentials valid in the target system.
pub async fn set(
    ctx: &StepContext<'_>,
    current: &SecretString,
    pending: &SecretString,
) -> Result<ProviderResult<Outcome>> {
    let pending = parse_object(pending, &ctx.secret.arn, crate::secrets_manager::AWSPENDING)?;
    let current = parse_object(current, &ctx.secret.arn, crate::secrets_manager::AWSCURRENT)?;
    let kind = ProviderKind::of(
        &pending,
        &ctx.secret.arn,
        crate::secrets_manager::AWSPENDING,
    )?;
    let current_kind = ProviderKind::of(
        &current,
        &ctx.secret.arn,
        crate::secrets_manager::AWSCURRENT,
    )?;
    if kind != current_kind {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            crate::secrets_manager::AWSPENDING,
            "the pending version names another provider than the current version",
        ));
    }
    match kind {
        ProviderKind::Postgres => postgres::set(ctx, current, pending).await,
    }
}

/// testSecret: the provider proves the pending credentials work.
pub async fn test(ctx: &StepContext<'_>, pending: &SecretString) -> Result<ProviderResult<()>> {
    let pending = parse_object(pending, &ctx.secret.arn, crate::secrets_manager::AWSPENDING)?;
    match ProviderKind::of(
        &pending,
        &ctx.secret.arn,
        crate::secrets_manager::AWSPENDING,
    )? {
        ProviderKind::Postgres => postgres::test(ctx, pending).await,
    }
}
