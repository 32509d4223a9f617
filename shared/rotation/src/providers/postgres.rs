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

mod scram_only;

use scram_only::{ScramOnly, ScramOnlyTls};

use super::database::{base_username, Database, Who, CLONE_SUFFIX};
use super::database_secret::{Endpoint, TlsMode};
use super::sessions::{Session, OWN_APPLICATION_NAME};
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

    async fn target_refusal(
        session: &mut Client,
        who: &Who,
        logged_in: &str,
        target: &str,
    ) -> Result<Option<String>> {
        target_refusal(session, logged_in, target)
            .await
            .map_err(|e| who.error(classify(&e), super::describe_chain(&e)))
    }

    async fn probe(session: &mut Client, who: &Who) -> Result<()> {
        session
            .query_one("SELECT current_user", &[])
            .await
            .map(|_| ())
            .map_err(|e| who.error(classify(&e), super::describe_chain(&e)))
    }

    async fn list_sessions(session: &mut Client, who: &Who, user: &str) -> Result<Vec<Session>> {
        list_sessions(session, user)
            .await
            .map_err(|e| who.error(classify(&e), super::describe_chain(&e)))
    }

    async fn terminate_own_sessions(session: &mut Client, who: &Who) -> Result<Vec<Session>> {
        terminate_own_sessions(session, &who.user)
            .await
            .map_err(|e| who.error(classify(&e), super::describe_chain(&e)))
    }
}

/// The columns of a session in `pg_stat_activity`, as [`session_of`] reads them: the client's
/// address and the start are NULL for a session whose role the login has not the privileges
/// of (without `pg_read_all_stats`); the pid and the application name are shown to everyone.
const SESSION_COLUMNS: &str = "pid, pg_catalog.host(client_addr), application_name, \
     pg_catalog.to_char(backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

/// The client sessions of `user` (by the role it logged in as) other than this one. The
/// backend type is NULL where the details are hidden (only client backends log in as a user).
const SESSIONS_OF: &str = "FROM pg_catalog.pg_stat_activity WHERE usename = $1 \
     AND coalesce(backend_type, 'client backend') = 'client backend' \
     AND pid <> pg_catalog.pg_backend_pid()";

fn session_of(row: &tokio_postgres::Row) -> Session {
    let started: Option<String> = row.get(3);
    Session {
        id: u64::try_from(row.get::<_, i32>(0)).unwrap_or_default(),
        address: row.get(1),
        application: row.get(2),
        visible: started.is_some(),
        started,
    }
}

/// The sessions of `user` other than this one. `SET ROLE NONE` first (`RESET ROLE` would go
/// back to the role's `SET role` default): a session running as
/// another role (an alternating clone's `SET role` default) sees and signals with the
/// privileges of the role it logged in as.
pub async fn list_sessions(
    client: &Client,
    user: &str,
) -> std::result::Result<Vec<Session>, tokio_postgres::Error> {
    client.batch_execute("SET ROLE NONE").await?;
    let rows = client
        .query(&format!("SELECT {SESSION_COLUMNS} {SESSIONS_OF}"), &[&user])
        .await?;
    Ok(rows.iter().map(session_of).collect())
}

/// Logged in as `user`: ends every other session of `user` (`pg_terminate_backend`, which a
/// role may call on its own sessions) and returns those it ended. The function runs only on the
/// rows the WHERE clause kept.
pub async fn terminate_own_sessions(
    client: &Client,
    user: &str,
) -> std::result::Result<Vec<Session>, tokio_postgres::Error> {
    client.batch_execute("SET ROLE NONE").await?;
    let rows = client
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS}, pg_catalog.pg_terminate_backend(pid) {SESSIONS_OF}"
            ),
            &[&user],
        )
        .await?;
    Ok(rows
        .iter()
        .filter(|row| row.get::<_, bool>(4))
        .map(session_of)
        .collect())
}

/// Logs in as `user` at `endpoint` (TLS as the functions verify it) and lists its other
/// sessions: what `rotator status` shows per credential.
pub async fn own_sessions(
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    endpoint: &Endpoint,
    user: &str,
    password: &SecretString,
    credential: Credential,
) -> Result<Vec<Session>> {
    let client = connect(tls, timeout, endpoint, user, password, credential).await?;
    list_sessions(&client, user)
        .await
        .map_err(|e| RotationError::Database {
            credential,
            user: user.to_owned(),
            endpoint: endpoint.display(),
            failure: classify(&e),
            detail: super::describe_chain(&e),
        })
}

/// The SCRAM-SHA-256 verifier of a password, as the server stores it.
fn verifier(password: &SecretString) -> String {
    postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes())
}

/// Logs in, bounded by `timeout` for TCP, TLS and authentication together. A master login
/// ([`Credential::Master`]) refuses a server that asks for a cleartext or MD5 password: it
/// authenticates only with SCRAM-SHA-256, with channel binding (SCRAM-SHA-256-PLUS) whenever
/// the server offers it over TLS.
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
        .application_name(OWN_APPLICATION_NAME)
        .connect_timeout(timeout);
    let error = |failure: DbFailure, detail: String| RotationError::Database {
        credential,
        user: user.to_owned(),
        endpoint: endpoint.display(),
        failure,
        detail,
    };
    let attempt = async {
        let fail = |e: tokio_postgres::Error| error(classify(&e), describe(&e, password, ""));
        // The master's password leaves only through SCRAM (see `scram_only`).
        let master = credential == Credential::Master;
        let client = match endpoint.tls {
            TlsMode::Verified => {
                config.ssl_mode(SslMode::Require);
                let rustls = MakeRustlsConnect::new((**tls).clone());
                if master {
                    let (client, connection) =
                        config.connect(ScramOnlyTls(rustls)).await.map_err(fail)?;
                    tokio::spawn(connection);
                    client
                } else {
                    let (client, connection) = config.connect(rustls).await.map_err(fail)?;
                    tokio::spawn(connection);
                    client
                }
            }
            TlsMode::Disabled if master => {
                config.ssl_mode(SslMode::Disable);
                let socket =
                    tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                        .await
                        .map_err(|e| error(DbFailure::Network, super::describe_chain(&e)))?;
                let (client, connection) = config
                    .connect_raw(ScramOnly::new(socket), NoTls)
                    .await
                    .map_err(fail)?;
                tokio::spawn(connection);
                client
            }
            TlsMode::Disabled => {
                config.ssl_mode(SslMode::Disable);
                let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
                tokio::spawn(connection);
                client
            }
        };
        Ok::<_, RotationError>(client)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
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
    // An existing role keeps its LOGIN attribute as an administrator set it: the rotation
    // never re-enables a role someone disabled (and refuses it before, see `target_refusal`).
    let (role, password) = (escape_identifier(user), escape_literal(verifier));
    let sql = if exists(user.to_owned()).await? {
        format!("ALTER ROLE {role} WITH PASSWORD {password}")
    } else {
        format!("CREATE ROLE {role} WITH LOGIN PASSWORD {password}")
    };
    tx.batch_execute(&sql).await?;
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

/// The role attributes that let a role do more than its grants: the master refuses to hand a
/// role that has one to a user that has not.
const ATTRIBUTES: [(&str, &str); 4] = [
    ("rolsuper", "SUPERUSER"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
];

/// Why the master must not set the password of `target` for `logged_in` (the user whose
/// AWSCURRENT credentials just logged in), or None. An existing `target` must be able to log in
/// (a NOLOGIN role was disabled by an administrator), must have no attribute of [`ATTRIBUTES`]
/// that `logged_in` lacks (counting the roles each is a member of, as `SET ROLE` would), and
/// must be a member of no role `logged_in` is not a member of. The honest pair passes: the
/// clone is a member of the original user, so each has what the other has.
async fn target_refusal(
    client: &Client,
    logged_in: &str,
    target: &str,
) -> std::result::Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&target],
        )
        .await?;
    match row {
        None => return Ok(None),
        Some(row) if !row.get::<_, bool>(0) => {
            return Ok(Some(format!(
                "role {target:?} is NOLOGIN (an administrator disabled it); the rotation does not re-enable it"
            )))
        }
        Some(_) => {}
    }
    let effective = |role: &str| {
        let role = role.to_owned();
        async move {
            let columns = ATTRIBUTES
                .iter()
                .map(|(column, _)| format!("coalesce(bool_or({column}), false)"))
                .collect::<Vec<_>>()
                .join(", ");
            let row = client
                .query_one(
                    &format!("SELECT {columns} FROM pg_catalog.pg_roles WHERE pg_catalog.pg_has_role($1::text::name, oid, 'MEMBER')"),
                    &[&role],
                )
                .await?;
            Ok::<_, tokio_postgres::Error>(
                (0..ATTRIBUTES.len())
                    .map(|i| row.get::<_, bool>(i))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let (target_has, logged_in_has) = (effective(target).await?, effective(logged_in).await?);
    for (i, (_, attribute)) in ATTRIBUTES.iter().enumerate() {
        if target_has[i] && !logged_in_has[i] {
            return Ok(Some(format!(
                "role {target:?} has {attribute}, which {logged_in:?} has not"
            )));
        }
    }
    let extra = client
        .query_opt(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r \
             WHERE pg_catalog.pg_has_role($1::text::name, r.oid, 'MEMBER') AND r.rolname <> $1::text::name \
             AND NOT pg_catalog.pg_has_role($2::text::name, r.oid, 'MEMBER') ORDER BY 1 LIMIT 1",
            &[&target, &logged_in],
        )
        .await?;
    Ok(extra.map(|row| {
        format!(
            "role {target:?} is a member of {:?}, which {logged_in:?} is not",
            row.get::<_, String>(0)
        )
    }))
}
