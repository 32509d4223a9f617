//! MySQL and MariaDB (engines `mysql`, `aurora-mysql`, `mariadb`): login and SQL for the
//! shared database rotation flow.
//!
//! - MariaDB: passwords travel as `mysql_native_password` hashes computed here, never as
//!   cleartext in SQL text (so never in the general log).
//! - MySQL: passwords travel in `IDENTIFIED BY`, quoted for the session's `sql_mode`; MySQL
//!   rewrites them out of its general, slow and binary logs. From 8.0.14 single-user rotation
//!   keeps the old password valid as a secondary password (`RETAIN CURRENT PASSWORD`) until the
//!   next rotation discards it: dual-phase.
//! - Alternating users: the pending user becomes an exact copy of the current user on every
//!   rotation, and nothing more (module `mirror`).
//!
//! Identifiers and strings are never concatenated unescaped: account names are quoted as
//! string literals (for the session's `sql_mode`, in a session whose `character_set_client` is
//! UTF-8), data is bound as parameters where MySQL allows it. Database error text is
//! [`redact`]ed of the passwords and hashes the session sent.

pub mod account;
pub mod grants;
mod mirror;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use secrecy::{ExposeSecret, SecretString};

use super::database::{Database, Who};
use super::database_secret::{Endpoint, TlsMode};
use super::sessions;
use super::StepContext;
use crate::error::{redact, DbFailure, Result};

/// The MySQL / MariaDB engine.
pub struct MySql;

/// The server family, which decides the password SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB.
    MariaDb,
    /// MySQL (or Aurora MySQL); `dual_password` from 8.0.14.
    MySql {
        /// Whether `RETAIN CURRENT PASSWORD` is available.
        dual_password: bool,
    },
}

impl Flavor {
    /// The flavor a `SELECT VERSION()` answer names.
    pub fn of(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            return Flavor::MariaDb;
        }
        let numbers: Vec<u32> = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .take(3)
            .filter_map(|p| p.parse().ok())
            .collect();
        let dual_password = numbers.as_slice() >= [8, 0, 14].as_slice();
        Flavor::MySql { dual_password }
    }
}

/// A logged-in MySQL session.
pub struct Session {
    conn: Conn,
    flavor: Flavor,
    no_backslash_escapes: bool,
}

impl Session {
    /// The connection, for queries of one's own.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// The server family.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    fn quote(&self, text: &str) -> String {
        quote(text, self.no_backslash_escapes)
    }

    fn account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.quote(user), self.quote(host))
    }

    /// The `IDENTIFIED ...` clause for a new password in this flavor.
    fn identified_by(&self, password: &SecretString) -> String {
        match self.flavor {
            Flavor::MariaDb => format!(
                "IDENTIFIED BY PASSWORD '{}'",
                native_password_hash(password)
            ),
            Flavor::MySql { .. } => {
                format!("IDENTIFIED BY {}", self.quote(password.expose_secret()))
            }
        }
    }
}

/// Quotes a string literal for MySQL, for a session with or without NO_BACKSLASH_ESCAPES.
pub fn quote(text: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !no_backslash_escapes => out.push_str("\\\\"),
            '\0' if !no_backslash_escapes => out.push_str("\\0"),
            '\n' if !no_backslash_escapes => out.push_str("\\n"),
            '\r' if !no_backslash_escapes => out.push_str("\\r"),
            '\u{1a}' if !no_backslash_escapes => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The `mysql_native_password` hash: `*` and the uppercase hex of SHA1(SHA1(password)).
pub fn native_password_hash(password: &SecretString) -> String {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
    let first = digest(
        &SHA1_FOR_LEGACY_USE_ONLY,
        password.expose_secret().as_bytes(),
    );
    let second = digest(&SHA1_FOR_LEGACY_USE_ONLY, first.as_ref());
    let hex: String = second.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

fn classify(e: &mysql_async::Error) -> DbFailure {
    match e {
        mysql_async::Error::Server(server) => match server.code {
            // Access denied, and a locked account (MySQL 3118, MariaDB 4151; MySQL 3955:
            // locked after failed logins): the login is refused.
            1045 | 1698 | 1044 | 3118 | 3955 | 4151 => DbFailure::Authentication,
            3159 => DbFailure::Tls,
            _ => DbFailure::Statement,
        },
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => DbFailure::Tls,
        // This module's own refusals.
        mysql_async::Error::Other(_) => DbFailure::Statement,
        other => {
            let text = other.to_string().to_ascii_lowercase();
            if text.contains("secure connection") {
                DbFailure::Tls
            } else {
                super::classify_message(&text)
            }
        }
    }
}

/// The error of `who`'s session, its text [`redact`]ed of `secrets` (passwords the session
/// sent) in every form SQL text holds them: as sent, quoted either way, and as a hash.
fn db_error(
    who: &Who,
    e: &mysql_async::Error,
    secrets: &[&SecretString],
) -> crate::error::RotationError {
    let forms: Vec<String> = secrets
        .iter()
        .filter(|secret| !secret.expose_secret().is_empty())
        .flat_map(|secret| {
            let raw = secret.expose_secret();
            [
                raw.to_owned(),
                quote(raw, false),
                quote(raw, true),
                native_password_hash(secret),
            ]
        })
        .collect();
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    who.error(classify(e), redact(&super::describe_chain(e), &forms))
}

/// Whether a `character_set_client` is UTF-8, the encoding [`quote`] writes for.
pub fn is_utf8_charset(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf8" | "utf8mb3" | "utf8mb4"
    )
}

impl Database for MySql {
    type Session = Session;
    const PROVIDER: &'static str = "mysql";
    const DEFAULT_PORT: u16 = 3306;

    fn max_username_len(ctx: &StepContext<'_>) -> usize {
        ctx.config.mysql_username_limit
    }

    async fn connect(
        ctx: &StepContext<'_>,
        endpoint: &Endpoint,
        who: &Who,
        password: &SecretString,
    ) -> Result<Session> {
        connect(
            ctx.config.db_ca_file.as_deref(),
            ctx.config.db_connect_timeout,
            endpoint,
            who,
            password,
        )
        .await
    }

    fn keeps_current_password(session: &Session) -> bool {
        matches!(
            session.flavor,
            Flavor::MySql {
                dual_password: true
            }
        )
    }

    async fn set_own_password(
        session: &mut Session,
        who: &Who,
        password: &SecretString,
    ) -> Result<()> {
        let sql = match session.flavor {
            Flavor::MariaDb => format!("SET PASSWORD = '{}'", native_password_hash(password)),
            Flavor::MySql { dual_password } => format!(
                "ALTER USER CURRENT_USER() {}{}",
                session.identified_by(password),
                if dual_password {
                    " RETAIN CURRENT PASSWORD"
                } else {
                    ""
                }
            ),
        };
        match session.conn.query_drop(&sql).await {
            Ok(()) => Ok(()),
            // RETAIN CURRENT PASSWORD on one's own account needs APPLICATION_PASSWORD_ADMIN:
            // without it, the rotation is single-phase.
            Err(mysql_async::Error::Server(e))
                if e.code == 1227
                    && matches!(
                        session.flavor,
                        Flavor::MySql {
                            dual_password: true
                        }
                    ) =>
            {
                tracing::warn!(user = %who.user, "no APPLICATION_PASSWORD_ADMIN: rotating without RETAIN CURRENT PASSWORD");
                let sql = format!(
                    "ALTER USER CURRENT_USER() {}",
                    session.identified_by(password)
                );
                session
                    .conn
                    .query_drop(&sql)
                    .await
                    .map_err(|e| db_error(who, &e, &[password]))
            }
            Err(e) => Err(db_error(who, &e, &[password])),
        }
    }

    async fn set_alternate_password(
        session: &mut Session,
        who: &Who,
        current_user: &str,
        pending_user: &str,
        password: &SecretString,
    ) -> Result<()> {
        let throwaway = mirror::throwaway_password();
        mirror::mirror_user(session, current_user, pending_user, password, &throwaway)
            .await
            .map_err(|e| db_error(who, &e, &[password, &throwaway]))
    }

    async fn target_refusal(
        session: &mut Session,
        who: &Who,
        logged_in: &str,
        target: &str,
    ) -> Result<Option<String>> {
        privileged_target(session, logged_in, target)
            .await
            .map_err(|e| db_error(who, &e, &[]))
    }

    async fn probe(session: &mut Session, who: &Who) -> Result<()> {
        session
            .conn
            .query_drop("SELECT CURRENT_USER()")
            .await
            .map_err(|e| db_error(who, &e, &[]))
    }

    async fn list_sessions(
        session: &mut Session,
        who: &Who,
        user: &str,
    ) -> Result<Vec<sessions::Session>> {
        list_sessions(session, user)
            .await
            .map_err(|e| db_error(who, &e, &[]))
    }

    async fn terminate_own_sessions(
        session: &mut Session,
        who: &Who,
    ) -> Result<Vec<sessions::Session>> {
        let listed = list_sessions(session, &who.user)
            .await
            .map_err(|e| db_error(who, &e, &[]))?;
        let mut ended = Vec::new();
        for thread in listed {
            // The id is the server's own number, not text from the secret.
            match session
                .conn
                .query_drop(format!("KILL CONNECTION {}", thread.id))
                .await
            {
                Ok(()) => ended.push(thread),
                // Unknown thread: it ended meanwhile.
                Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                Err(e) => return Err(db_error(who, &e, &[])),
            }
        }
        Ok(ended)
    }

    async fn close(session: Session) {
        let _ = session.conn.disconnect().await;
    }
}

/// The threads of `user` other than this one in the process list, as far as this login sees
/// it (without the PROCESS privilege, only its own account's threads). MySQL and MariaDB list
/// no connection time (`TIME` is the time in the current state) and no application name; the
/// address is `HOST` without its port.
pub async fn list_sessions(
    session: &mut Session,
    user: &str,
) -> std::result::Result<Vec<sessions::Session>, mysql_async::Error> {
    let rows: Vec<(u64, String)> = session
        .conn
        .exec(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST \
             WHERE USER = ? AND ID <> CONNECTION_ID() AND COMMAND <> 'Killed'",
            (user,),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, host)| sessions::Session {
            id,
            address: Some(client_address(&host).to_owned()),
            application: None,
            started: None,
            visible: true,
        })
        .collect())
}

/// The client's address in a process list `HOST` (`10.0.0.5:53422`, `[::1]:53422`,
/// `localhost`).
pub fn client_address(host: &str) -> &str {
    let address = match host.rsplit_once(':') {
        Some((address, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            address
        }
        _ => host,
    };
    address.trim_start_matches('[').trim_end_matches(']')
}

/// Logs in as `who` at `endpoint` (TLS as the functions verify it) and lists its other
/// sessions: what `rotator status` shows per credential.
pub async fn own_sessions(
    extra_ca_file: Option<&std::path::Path>,
    timeout: std::time::Duration,
    endpoint: &Endpoint,
    who: &Who,
    password: &SecretString,
) -> Result<Vec<sessions::Session>> {
    let mut session = connect(extra_ca_file, timeout, endpoint, who, password).await?;
    let listed = list_sessions(&mut session, &who.user)
        .await
        .map_err(|e| db_error(who, &e, &[]));
    let _ = session.conn.disconnect().await;
    listed
}

/// Logs in, bounded by `timeout` for TCP, TLS and authentication together. With TLS, the
/// server's certificate must chain to the Mozilla roots, the Amazon RDS CA bundle or
/// `extra_ca_file`, and name the host.
pub async fn connect(
    extra_ca_file: Option<&std::path::Path>,
    timeout: std::time::Duration,
    endpoint: &Endpoint,
    who: &Who,
    password: &SecretString,
) -> Result<Session> {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(endpoint.host.clone())
        .tcp_port(endpoint.port)
        .user(Some(who.user.clone()))
        .pass(Some(password.expose_secret().to_owned()))
        .db_name(endpoint.dbname.clone())
        .prefer_socket(false)
        .stmt_cache_size(0);
    if endpoint.tls == TlsMode::Verified {
        let mut roots = vec![crate::tls::RDS_CA_BUNDLE.as_bytes().into()];
        if let Some(path) = extra_ca_file {
            roots.push(path.to_path_buf().into());
        }
        opts = opts.ssl_opts(SslOpts::default().with_root_certs(roots));
    }
    let attempt = async {
        let mut conn = Conn::new(opts).await?;
        let (version, sql_mode, charset): (String, String, String) = conn
            .query_first("SELECT VERSION(), @@SESSION.sql_mode, @@SESSION.character_set_client")
            .await?
            .unwrap_or_default();
        if !is_utf8_charset(&charset) {
            // A server forcing a multibyte client charset (GBK, Big5, SJIS) would re-pair the
            // bytes of a quoted string: back to UTF-8, or no SQL text at all.
            conn.query_drop("SET NAMES utf8mb4").await?;
            let charset: Option<String> = conn
                .query_first("SELECT @@SESSION.character_set_client")
                .await?;
            if !charset.as_deref().is_some_and(is_utf8_charset) {
                return Err(mysql_async::Error::Other(
                    "the session's character_set_client stays not UTF-8 after SET NAMES utf8mb4; refusing to send quoted SQL text".into(),
                ));
            }
        }
        Ok::<_, mysql_async::Error>(Session {
            conn,
            flavor: Flavor::of(&version),
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(db_error(who, &e, &[password])),
        Err(_) => Err(who.error(
            DbFailure::Network,
            format!("no answer within {} s", timeout.as_secs()),
        )),
    }
}

/// Global privileges that let an account make or change accounts and grants, as the columns of
/// `mysql.user` that hold them and their names.
const ADMIN_PRIVILEGES: [(&str, &str); 3] = [
    ("Super_priv", "SUPER"),
    ("Grant_priv", "GRANT OPTION on *.*"),
    ("Create_user_priv", "CREATE USER"),
];

/// The roles granted to the accounts named `user` (any host).
async fn granted_roles(
    session: &mut Session,
    user: &str,
) -> std::result::Result<Vec<String>, mysql_async::Error> {
    let sql = match session.flavor {
        Flavor::MariaDb => "SELECT Role FROM mysql.roles_mapping WHERE User = ?",
        Flavor::MySql { .. } => "SELECT FROM_USER FROM mysql.role_edges WHERE TO_USER = ?",
    };
    session.conn.exec(sql, (user,)).await
}

/// The [`ADMIN_PRIVILEGES`] the accounts named `user` hold, directly or through roles granted
/// to them (transitively).
async fn admin_privileges(
    session: &mut Session,
    user: &str,
) -> std::result::Result<std::collections::BTreeSet<&'static str>, mysql_async::Error> {
    let columns = ADMIN_PRIVILEGES
        .iter()
        .map(|(column, _)| *column)
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {columns} FROM mysql.user WHERE User = ?");
    let mut held = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut queue = vec![user.to_owned()];
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) || seen.len() > 1000 {
            continue;
        }
        let rows: Vec<(String, String, String)> = session.conn.exec(&sql, (&name,)).await?;
        for (super_priv, grant, create_user) in rows {
            for (value, (_, privilege)) in [super_priv, grant, create_user]
                .iter()
                .zip(ADMIN_PRIVILEGES)
            {
                if value.eq_ignore_ascii_case("Y") {
                    held.insert(privilege);
                }
            }
        }
        queue.extend(granted_roles(session, &name).await?);
    }
    Ok(held)
}

/// As the master: why the master must not make `target` the alternate of `logged_in` (the
/// user whose AWSCURRENT credentials just logged in), or None: an existing `target` may hold no
/// SUPER, GRANT OPTION on `*.*` or CREATE USER (directly or through a role) that `logged_in`
/// lacks, since the master would hand its new password to whoever writes the secret.
pub async fn privileged_target(
    session: &mut Session,
    logged_in: &str,
    target: &str,
) -> std::result::Result<Option<String>, mysql_async::Error> {
    let target_has = admin_privileges(session, target).await?;
    if target_has.is_empty() {
        return Ok(None);
    }
    let logged_in_has = admin_privileges(session, logged_in).await?;
    Ok(target_has
        .difference(&logged_in_has)
        .next()
        .map(|privilege| {
            format!("account {target:?} has {privilege}, which {logged_in:?} has not")
        }))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_respects_the_sql_mode() {
        assert_eq!(quote(r"a'b\c", false), r"'a''b\\c'");
        assert_eq!(quote(r"a'b\c", true), r"'a''b\c'");
        assert_eq!(quote("x\0y\n", false), r"'x\0y\n'");
    }

    #[test]
    fn native_hash_matches_mysql() {
        // SELECT PASSWORD('password') on MariaDB.
        assert_eq!(
            native_password_hash(&SecretString::from("password".to_owned())),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }

    #[test]
    fn flavors_come_from_the_version() {
        assert_eq!(Flavor::of("10.11.19-MariaDB-0+deb12u1"), Flavor::MariaDb);
        assert_eq!(
            Flavor::of("8.0.36"),
            Flavor::MySql {
                dual_password: true
            }
        );
        assert_eq!(
            Flavor::of("8.0.13-log"),
            Flavor::MySql {
                dual_password: false
            }
        );
        assert_eq!(
            Flavor::of("5.7.44"),
            Flavor::MySql {
                dual_password: false
            }
        );
        assert_eq!(
            Flavor::of("8.0.mysql_aurora.3.05.2"),
            Flavor::MySql {
                dual_password: false
            }
        );
    }

    #[test]
    fn the_client_address_loses_its_port() {
        assert_eq!(client_address("10.0.0.5:53422"), "10.0.0.5");
        assert_eq!(client_address("[::1]:53422"), "::1");
        assert_eq!(client_address("localhost"), "localhost");
        assert_eq!(client_address("db.example:"), "db.example:");
    }

    #[test]
    fn only_utf8_client_charsets_are_accepted() {
        for charset in ["utf8mb4", "utf8mb3", "UTF8"] {
            assert!(is_utf8_charset(charset), "{charset}");
        }
        for charset in ["gbk", "big5", "sjis", "cp932", "latin1", ""] {
            assert!(!is_utf8_charset(charset), "{charset}");
        }
    }

    #[test]
    fn database_errors_lose_the_passwords_and_hashes_sent() {
        let password = SecretString::from("Pa'ss\\word-0123456789".to_owned());
        let hash = native_password_hash(&password);
        let echoed = format!(
            "You have an error in your SQL syntax; check the manual near 'IDENTIFIED BY {} RETAIN' and '{hash}' and '{}",
            quote(password.expose_secret(), false),
            &password.expose_secret()[..12]
        );
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: echoed,
            state: "42000".into(),
        });
        let who = Who {
            credential: crate::error::Credential::Master,
            user: "admin".into(),
            endpoint: "db:3306".into(),
        };
        let text = db_error(&who, &e, &[&password]).to_string();
        assert!(!text.contains(&password.expose_secret()[..8]), "{text}");
        assert!(!text.contains(&hash[..8]), "{text}");
        assert!(
            text.contains("You have an error in your SQL syntax"),
            "{text}"
        );
        assert!(text.contains("statement failed"), "{text}");
    }
}
