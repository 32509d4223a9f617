//! PostgreSQL users: single-user and alternating-users rotation.
//!
//! Passwords travel to the server only as SCRAM-SHA-256 verifiers computed here, so the
//! cleartext never appears in SQL text (and so never in the server's statement log). User names
//! are quoted as identifiers. TLS is verified unless the secret says `"ssl": false`.

use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::database_secret::{DatabaseSecret, MasterSecret, TlsMode};
use super::{parse_object, ProviderResult, StepContext};
use crate::error::{Credential, DbFailure, Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// Provider name in reports and logs.
pub const PROVIDER: &str = "postgres";
/// PostgreSQL's default port.
pub const DEFAULT_PORT: u16 = 5432;
/// The suffix that names the alternate user, as in AWS's templates.
pub const CLONE_SUFFIX: &str = "_clone";
/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Database used when the secret names none, as in AWS's templates.
pub const DEFAULT_DBNAME: &str = "postgres";

/// How a PostgreSQL secret is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The user changes its own password.
    SingleUser,
    /// A master user alternates the secret between `user` and `user_clone` (dual-phase).
    AlternatingUsers,
}

impl Strategy {
    /// The strategy a secret asks for: alternating users when it names a `masterarn`.
    pub fn of(secret: &DatabaseSecret) -> Self {
        if secret.masterarn.is_some() {
            Strategy::AlternatingUsers
        } else {
            Strategy::SingleUser
        }
    }

    /// Name for reports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
        }
    }

    /// Rotations that retire every password valid before the first: single-user changes the
    /// user's only password (1); alternating users leaves the previous user's password valid
    /// until the next rotation replaces it (2).
    pub fn rotations_to_retire(self) -> u8 {
        match self {
            Strategy::SingleUser => 1,
            Strategy::AlternatingUsers => 2,
        }
    }
}

/// The profile of a PostgreSQL secret: provider, strategy, rotations that retire every password.
pub fn profile(fields: Map<String, Value>, secret: &str, version: &str) -> Result<super::Profile> {
    let strategy = Strategy::of(&DatabaseSecret::parse(
        fields,
        secret,
        version,
        DEFAULT_PORT,
    )?);
    Ok(super::Profile {
        provider: PROVIDER,
        strategy: strategy.as_str(),
        rotations_to_retire: strategy.rotations_to_retire(),
    })
}

/// The user an alternating rotation switches to: the `_clone` suffix added or removed.
pub fn alternate_username(username: &str) -> String {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(base) if !base.is_empty() => base.to_owned(),
        _ => format!("{username}{CLONE_SUFFIX}"),
    }
}

/// The original user of an alternating pair (the name without `_clone`).
pub fn base_username(username: &str) -> &str {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(base) if !base.is_empty() => base,
        _ => username,
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP address; the server certificate must name it.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database to connect to.
    pub dbname: String,
    /// TLS mode.
    pub tls: TlsMode,
}

impl Endpoint {
    /// The endpoint a database secret names.
    pub fn of(secret: &DatabaseSecret) -> Self {
        Endpoint {
            host: secret.host.clone(),
            port: secret.port,
            dbname: secret
                .dbname
                .clone()
                .unwrap_or_else(|| DEFAULT_DBNAME.to_owned()),
            tls: secret.tls,
        }
    }

    fn display(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Logs in, bounded by `timeout` for TCP, TLS and authentication together.
pub async fn connect(
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    endpoint: &Endpoint,
    user: &str,
    password: &SecretString,
    credential: Credential,
) -> Result<Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .dbname(&endpoint.dbname)
        .user(user)
        .password(password.expose_secret())
        .application_name("secrets-manager-rotation")
        .connect_timeout(timeout);
    let error = |failure: DbFailure, detail: String| RotationError::Database {
        credential,
        user: user.to_owned(),
        endpoint: endpoint.display(),
        failure,
        detail,
    };
    let attempt = async {
        match endpoint.tls {
            TlsMode::Verified => {
                config.ssl_mode(SslMode::Require);
                let (client, connection) = config
                    .connect(MakeRustlsConnect::new((**tls).clone()))
                    .await?;
                tokio::spawn(connection);
                Ok::<_, tokio_postgres::Error>(client)
            }
            TlsMode::Disabled => {
                config.ssl_mode(SslMode::Disable);
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(error(classify(&e), describe(&e))),
        Err(_) => Err(error(
            DbFailure::Network,
            format!("no answer within {} s", timeout.as_secs()),
        )),
    }
}

/// Sorts a driver error into authentication, TLS, network or statement failures.
fn classify(e: &tokio_postgres::Error) -> DbFailure {
    if let Some(db) = e.as_db_error() {
        return if db.code().code().starts_with("28") {
            DbFailure::Authentication
        } else {
            DbFailure::Statement
        };
    }
    let text = describe(e).to_ascii_lowercase();
    if text.contains("tls") || text.contains("certificate") || text.contains("ssl") {
        DbFailure::Tls
    } else if text.contains("password") || text.contains("authentication") {
        DbFailure::Authentication
    } else {
        DbFailure::Network
    }
}

/// The driver's message with its causes (never the password: the driver does not echo it).
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
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

fn statement_error(
    credential: Credential,
    user: &str,
    endpoint: &Endpoint,
    e: tokio_postgres::Error,
) -> RotationError {
    RotationError::Database {
        credential,
        user: user.to_owned(),
        endpoint: endpoint.display(),
        failure: classify(&e),
        detail: describe(&e),
    }
}

fn check_identifier(name: &str, secret: &str, version: &str) -> Result<()> {
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(RotationError::invalid_secret(
            secret,
            version,
            format!(
                "field `username`: the user name {name:?} is {} bytes; PostgreSQL allows {MAX_IDENTIFIER_BYTES}",
                name.len()
            ),
        ));
    }
    if name.contains('\0') {
        return Err(RotationError::invalid_secret(
            secret,
            version,
            "field `username`: contains a NUL character",
        ));
    }
    Ok(())
}

fn warn_if_plaintext(ctx: &StepContext<'_>, secret: &DatabaseSecret) {
    if secret.tls == TlsMode::Disabled {
        ctx.warn(format!(
            "TLS to {} is turned off by the secret (\"ssl\": false): credentials cross the network unencrypted",
            secret.endpoint()
        ));
    }
}

/// createSecret: the next version with a new password (and, alternating, the other user).
pub async fn create(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
) -> Result<ProviderResult<SecretString>> {
    let arn = &ctx.secret.arn;
    let current = DatabaseSecret::parse(fields, arn, AWSCURRENT, DEFAULT_PORT)?;
    let strategy = Strategy::of(&current);
    check_identifier(&current.username, arn, AWSCURRENT)?;
    let username = match strategy {
        Strategy::SingleUser => current.username.clone(),
        Strategy::AlternatingUsers => {
            if current.masterarn.as_deref() == Some(arn.as_str()) {
                return Err(RotationError::invalid_secret(
                    arn,
                    AWSCURRENT,
                    "field `masterarn`: names the secret being rotated; it must name the master user's secret",
                ));
            }
            alternate_username(&current.username)
        }
    };
    check_identifier(&username, arn, AWSCURRENT)?;
    warn_if_plaintext(ctx, &current);
    let password = ctx.config.password.generate()?;
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: strategy.as_str(),
        value: current.next_version(&username, &password),
    })
}

/// Refuses a pending version that would send the rotation somewhere the current one does not.
fn check_consistent(
    current: &DatabaseSecret,
    pending: &DatabaseSecret,
    strategy: Strategy,
    arn: &str,
) -> Result<()> {
    let mismatch = |field: &str| {
        RotationError::invalid_secret(
            arn,
            AWSPENDING,
            format!("field `{field}` differs from the AWSCURRENT version; refusing to rotate"),
        )
    };
    if pending.host != current.host {
        return Err(mismatch("host"));
    }
    if pending.port != current.port {
        return Err(mismatch("port"));
    }
    if pending.masterarn != current.masterarn {
        return Err(mismatch("masterarn"));
    }
    let user_ok = match strategy {
        Strategy::SingleUser => pending.username == current.username,
        Strategy::AlternatingUsers => {
            base_username(&pending.username) == base_username(&current.username)
        }
    };
    if !user_ok {
        return Err(mismatch("username"));
    }
    check_identifier(&pending.username, arn, AWSPENDING)
}

/// setSecret: makes the pending password valid, unless it already is.
pub async fn set(
    ctx: &StepContext<'_>,
    current: Map<String, Value>,
    pending: Map<String, Value>,
) -> Result<ProviderResult<Outcome>> {
    let arn = &ctx.secret.arn;
    let current = DatabaseSecret::parse(current, arn, AWSCURRENT, DEFAULT_PORT)?;
    let pending = DatabaseSecret::parse(pending, arn, AWSPENDING, DEFAULT_PORT)?;
    let strategy = Strategy::of(&current);
    check_consistent(&current, &pending, strategy, arn)?;
    warn_if_plaintext(ctx, &pending);
    let result = |outcome| ProviderResult {
        provider: PROVIDER,
        strategy: strategy.as_str(),
        value: outcome,
    };
    let endpoint = Endpoint::of(&pending);
    let timeout = ctx.config.db_connect_timeout;
    match connect(
        ctx.tls,
        timeout,
        &endpoint,
        &pending.username,
        &pending.password,
        Credential::Pending,
    )
    .await
    {
        Ok(_) => return Ok(result(Outcome::AlreadyDone)),
        Err(e) if e.is_authentication_failure() => {}
        Err(e) => return Err(e),
    }
    let verifier =
        postgres_protocol::password::scram_sha_256(pending.password.expose_secret().as_bytes());
    match strategy {
        Strategy::SingleUser => {
            let (client, credential) = login_current_or_previous(ctx, &current).await?;
            let sql = format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                escape_identifier(&current.username),
                escape_literal(&verifier)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| statement_error(credential, &current.username, &endpoint, e))?;
        }
        Strategy::AlternatingUsers => {
            let masterarn = current.masterarn.as_deref().unwrap_or_default();
            let raw = ctx
                .secrets_manager
                .require_value(masterarn, None, AWSCURRENT)
                .await?;
            let master = MasterSecret::parse(
                &parse_object(&raw, masterarn, "master secret AWSCURRENT")?,
                masterarn,
            )?;
            let master_endpoint = Endpoint {
                host: master.host.clone().unwrap_or_else(|| endpoint.host.clone()),
                port: master.port.unwrap_or(endpoint.port),
                ..endpoint.clone()
            };
            let mut client = connect(
                ctx.tls,
                timeout,
                &master_endpoint,
                &master.username,
                &master.password,
                Credential::Master,
            )
            .await?;
            set_alternate_password(&mut client, &pending.username, &verifier)
                .await
                .map_err(|e| {
                    statement_error(Credential::Master, &master.username, &master_endpoint, e)
                })?;
        }
    }
    Ok(result(Outcome::Done))
}

/// Logs in with AWSCURRENT, or with AWSPREVIOUS when the current password is refused (a
/// rotation that set the password and crashed before finishSecret leaves it so).
async fn login_current_or_previous(
    ctx: &StepContext<'_>,
    current: &DatabaseSecret,
) -> Result<(Client, Credential)> {
    let endpoint = Endpoint::of(current);
    let timeout = ctx.config.db_connect_timeout;
    let current_error = match connect(
        ctx.tls,
        timeout,
        &endpoint,
        &current.username,
        &current.password,
        Credential::Current,
    )
    .await
    {
        Ok(client) => return Ok((client, Credential::Current)),
        Err(e) if e.is_authentication_failure() => e,
        Err(e) => return Err(e),
    };
    let no_previous = |why: String| RotationError::NoWorkingCredential {
        endpoint: endpoint.display(),
        user: current.username.clone(),
        current: current_error.to_string(),
        previous: why,
    };
    let arn = &ctx.secret.arn;
    let Some(raw) = ctx
        .secrets_manager
        .get_value(arn, None, AWSPREVIOUS)
        .await?
    else {
        return Err(no_previous("there is no AWSPREVIOUS version".into()));
    };
    let previous = DatabaseSecret::parse(
        parse_object(&raw, arn, AWSPREVIOUS)?,
        arn,
        AWSPREVIOUS,
        DEFAULT_PORT,
    )?;
    if previous.username != current.username || previous.host != current.host {
        return Err(no_previous(
            "the AWSPREVIOUS version names another user or host".into(),
        ));
    }
    match connect(
        ctx.tls,
        timeout,
        &endpoint,
        &previous.username,
        &previous.password,
        Credential::Previous,
    )
    .await
    {
        Ok(client) => Ok((client, Credential::Previous)),
        Err(e) => Err(no_previous(e.to_string())),
    }
}

/// As the master user: creates the pending user if missing, sets its password, and keeps the
/// pair sharing their objects: the clone is a member of the original user and its sessions run
/// as the original user (`SET role`), so whatever either creates is owned by the original user
/// and usable by both.
async fn set_alternate_password(
    client: &mut Client,
    user: &str,
    verifier: &str,
) -> std::result::Result<(), tokio_postgres::Error> {
    let base = base_username(user);
    let clone = format!("{base}{CLONE_SUFFIX}");
    let tx = client.transaction().await?;
    let exists = |name: String| {
        let tx = &tx;
        async move {
            tx.query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .map(|row| row.is_some())
        }
    };
    let verb = if exists(user.to_owned()).await? {
        "ALTER"
    } else {
        "CREATE"
    };
    tx.batch_execute(&format!(
        "{verb} ROLE {} WITH LOGIN PASSWORD {}",
        escape_identifier(user),
        escape_literal(verifier)
    ))
    .await?;
    if exists(base.to_owned()).await? && exists(clone.clone()).await? {
        tx.batch_execute(&format!(
            "GRANT {base_ident} TO {clone_ident}; ALTER ROLE {clone_ident} SET role TO {base_literal}",
            base_ident = escape_identifier(base),
            clone_ident = escape_identifier(&clone),
            base_literal = escape_literal(base),
        ))
        .await?;
    }
    tx.commit().await
}

/// testSecret: logs in with the pending credentials and runs a query.
pub async fn test(ctx: &StepContext<'_>, fields: Map<String, Value>) -> Result<ProviderResult<()>> {
    let arn = &ctx.secret.arn;
    let pending = DatabaseSecret::parse(fields, arn, AWSPENDING, DEFAULT_PORT)?;
    warn_if_plaintext(ctx, &pending);
    let endpoint = Endpoint::of(&pending);
    let client = connect(
        ctx.tls,
        ctx.config.db_connect_timeout,
        &endpoint,
        &pending.username,
        &pending.password,
        Credential::Pending,
    )
    .await?;
    client
        .query_one("SELECT current_user", &[])
        .await
        .map_err(|e| statement_error(Credential::Pending, &pending.username, &endpoint, e))?;
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: Strategy::of(&pending).as_str(),
        value: (),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_names_toggle_the_clone_suffix() {
        assert_eq!(alternate_username("app"), "app_clone");
        assert_eq!(alternate_username("app_clone"), "app");
        assert_eq!(alternate_username("_clone"), "_clone_clone");
        assert_eq!(base_username("app_clone"), "app");
        assert_eq!(base_username("app"), "app");
    }

    #[test]
    fn dual_phase_secrets_need_two_rotations_to_retire_every_password() {
        let profile_of = |value: serde_json::Value| {
            let text = SecretString::from(value.to_string());
            crate::providers::profile(&text, "arn", "AWSCURRENT")
        };
        let single = serde_json::json!({"engine": "postgres", "host": "h", "username": "u", "password": "p"});
        let mut alternating = single.clone();
        alternating["masterarn"] = "arn:master".into();
        let single = profile_of(single).unwrap();
        assert_eq!(
            (single.provider, single.strategy),
            ("postgres", "single-user")
        );
        assert_eq!(single.rotations_to_retire, 1);
        let alternating = profile_of(alternating).unwrap();
        assert_eq!(alternating.strategy, "alternating-users");
        assert_eq!(alternating.rotations_to_retire, 2);
        let err = profile_of(
            serde_json::json!({"engine": "postgres", "host": "h", "password": "hunter2"}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`username`") && !err.contains("hunter2"),
            "{err}"
        );
    }

    fn secret(value: serde_json::Value) -> DatabaseSecret {
        DatabaseSecret::parse(
            value.as_object().unwrap().clone(),
            "s",
            AWSPENDING,
            DEFAULT_PORT,
        )
        .unwrap()
    }

    #[test]
    fn a_pending_version_pointing_elsewhere_is_refused() {
        let base = serde_json::json!({"engine": "postgres", "host": "db", "username": "app", "password": "p"});
        let current = secret(base.clone());
        for (field, value, strategy) in [
            (
                "host",
                serde_json::json!("evil.example"),
                Strategy::SingleUser,
            ),
            ("port", serde_json::json!(6543), Strategy::SingleUser),
            (
                "username",
                serde_json::json!("postgres"),
                Strategy::SingleUser,
            ),
            (
                "username",
                serde_json::json!("other_clone"),
                Strategy::AlternatingUsers,
            ),
        ] {
            let mut pending = base.clone();
            pending[field] = value;
            let err = check_consistent(&current, &secret(pending), strategy, "s")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        let mut clone = base.clone();
        clone["username"] = serde_json::json!("app_clone");
        check_consistent(&current, &secret(clone), Strategy::AlternatingUsers, "s").unwrap();
        check_consistent(&current, &secret(base), Strategy::SingleUser, "s").unwrap();
    }

    #[test]
    fn long_names_are_refused_with_the_field() {
        let name = "a".repeat(60) + CLONE_SUFFIX;
        let err = check_identifier(&name, "s", AWSCURRENT)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`username`") && err.contains("63"), "{err}");
        check_identifier(&"a".repeat(63), "s", AWSCURRENT).unwrap();
    }
}
