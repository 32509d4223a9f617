//! PostgreSQL: login and SQL for the shared database rotation flow.
//!
//! Passwords travel to the server only as SCRAM-SHA-256 verifiers computed here, so the
//! cleartext never appears in SQL text (and so never in the server's statement log). User names
//! are quoted as identifiers. TLS is verified unless the secret says `"ssl": false`.

use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rustls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::database::{base_username, Database, Who, CLONE_SUFFIX};
use super::database_secret::{Endpoint, TlsMode};
use super::StepContext;
use crate::error::{redact, Credential, DbFailure, Result, RotationError};

/// Database used when the secret names none, as in AWS's templates.
pub const DEFAULT_DBNAME: &str = "postgres";
/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The PostgreSQL engine (`postgres`, `aurora-postgresql`).
pub struct Postgres;

impl Database for Postgres {
    type Session = Client;
    const PROVIDER: &'static str = "postgres";
    const DEFAULT_PORT: u16 = 5432;

    fn max_username_len(_ctx: &StepContext<'_>) -> usize {
        MAX_IDENTIFIER_BYTES
    }

    /// PostgreSQL limits identifiers in bytes (NAMEDATALEN - 1) and silently truncates longer
    /// ones, so a name of 63 characters or fewer may still be too long.
    fn username_len(name: &str) -> (usize, &'static str) {
        (name.len(), "bytes")
    }

    async fn connect(
        ctx: &StepContext<'_>,
        endpoint: &Endpoint,
        who: &Who,
        password: &SecretString,
    ) -> Result<Client> {
        connect(
            ctx.tls,
            ctx.config.db_connect_timeout,
            endpoint,
            &who.user,
            password,
            who.credential,
        )
        .await
    }

    async fn set_own_password(
        session: &mut Client,
        who: &Who,
        password: &SecretString,
    ) -> Result<()> {
        let verifier = verifier(password);
        let sql = format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            escape_identifier(&who.user),
            escape_literal(&verifier)
        );
        session
            .batch_execute(&sql)
            .await
            .map_err(|e| who.error(classify(&e), describe(&e, password, &verifier)))
    }

    async fn set_alternate_password(
        session: &mut Client,
        who: &Who,
        _current_user: &str,
        pending_user: &str,
        password: &SecretString,
    ) -> Result<()> {
        let verifier = verifier(password);
        set_alternate(session, pending_user, &verifier)
            .await
            .map_err(|e| who.error(classify(&e), describe(&e, password, &verifier)))
    }

    async fn probe(session: &mut Client, who: &Who) -> Result<()> {
        session
            .query_one("SELECT current_user", &[])
            .await
            .map(|_| ())
            .map_err(|e| who.error(classify(&e), super::describe_chain(&e)))
    }
}

/// The SCRAM-SHA-256 verifier of a password, as the server stores it.
fn verifier(password: &SecretString) -> String {
    postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes())
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
        .dbname(endpoint.dbname.as_deref().unwrap_or(DEFAULT_DBNAME))
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
        Ok(Err(e)) => Err(error(classify(&e), describe(&e, password, ""))),
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
    super::classify_message(&super::describe_chain(e))
}

/// The driver's message with its causes, [`redact`]ed of the password sent and of its
/// verifier (and of their escaped forms in SQL text), should a server or proxy echo them.
fn describe(e: &tokio_postgres::Error, password: &SecretString, verifier: &str) -> String {
    let secrets: Vec<String> = [password.expose_secret(), verifier]
        .into_iter()
        .filter(|secret| !secret.is_empty())
        .flat_map(|secret| [secret.to_owned(), escape_literal(secret)])
        .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    redact(&super::describe_chain(e), &secrets)
}

/// As the master user: creates the pending user if missing, sets its password, and keeps the
/// pair sharing their objects: the clone is a member of the original user and its sessions run
/// as the original user (`SET role`), so whatever either creates is owned by the original user
/// and usable by both.
async fn set_alternate(
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
