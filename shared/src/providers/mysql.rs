//! MySQL and MariaDB (engines `mysql`, `aurora-mysql`, `mariadb`): login and SQL for the
//! shared database rotation flow.
//!
//! - MariaDB: passwords travel as `mysql_native_password` hashes computed here, never as
//!   cleartext in SQL text (so never in the general log).
//! - MySQL: passwords travel in `IDENTIFIED BY`, quoted for the session's `sql_mode`; MySQL
//!   rewrites them out of its general, slow and binary logs. From 8.0.14 single-user rotation
//!   keeps the old password valid as a secondary password (`RETAIN CURRENT PASSWORD`) until the
//!   next rotation discards it: dual-phase.
//! - Alternating users: the pending user gets exactly the current user's grants and TLS
//!   requirement on every rotation.
//!
//! Identifiers and strings are never concatenated unescaped: account names are quoted as
//! string literals, data is bound as parameters where MySQL allows it.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use secrecy::{ExposeSecret, SecretString};

use super::database::{Database, Who};
use super::database_secret::{Endpoint, TlsMode};
use super::StepContext;
use crate::error::{DbFailure, Result};

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
            1045 | 1698 | 1044 => DbFailure::Authentication,
            3159 => DbFailure::Tls,
            _ => DbFailure::Statement,
        },
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => DbFailure::Tls,
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

fn db_error(who: &Who, e: &mysql_async::Error) -> crate::error::RotationError {
    who.error(classify(e), super::describe_chain(e))
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
                    .map_err(|e| db_error(who, &e))
            }
            Err(e) => Err(db_error(who, &e)),
        }
    }

    async fn set_alternate_password(
        session: &mut Session,
        who: &Who,
        current_user: &str,
        pending_user: &str,
        password: &SecretString,
    ) -> Result<()> {
        mirror_user(session, current_user, pending_user, password)
            .await
            .map_err(|e| db_error(who, &e))
    }

    async fn target_refusal(
        session: &mut Session,
        who: &Who,
        logged_in: &str,
        target: &str,
    ) -> Result<Option<String>> {
        privileged_target(session, logged_in, target)
            .await
            .map_err(|e| db_error(who, &e))
    }

    async fn probe(session: &mut Session, who: &Who) -> Result<()> {
        session
            .conn
            .query_drop("SELECT CURRENT_USER()")
            .await
            .map_err(|e| db_error(who, &e))
    }
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
        let (version, sql_mode): (String, String) = conn
            .query_first("SELECT VERSION(), @@SESSION.sql_mode")
            .await?
            .unwrap_or_default();
        Ok::<_, mysql_async::Error>(Session {
            conn,
            flavor: Flavor::of(&version),
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(db_error(who, &e)),
        Err(_) => Err(who.error(
            DbFailure::Network,
            format!("no answer within {} s", timeout.as_secs()),
        )),
    }
}

/// As the master: for every host `current_user` has an account on, makes `pending_user`
/// exist there with its new password, the same TLS requirement, and exactly the same grants.
async fn mirror_user(
    session: &mut Session,
    current_user: &str,
    pending_user: &str,
    password: &SecretString,
) -> std::result::Result<(), mysql_async::Error> {
    let hosts: Vec<String> = session
        .conn
        .exec(
            "SELECT Host FROM mysql.user WHERE User = ?",
            (current_user,),
        )
        .await?;
    if hosts.is_empty() {
        return Err(mysql_async::Error::Other(
            format!("user {current_user:?} has no account to copy grants from").into(),
        ));
    }
    for host in hosts {
        let exists: Option<u8> = session
            .conn
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (pending_user, &host),
            )
            .await?;
        let pending = session.account(pending_user, &host);
        let verb = if exists.is_some() { "ALTER" } else { "CREATE" };
        let identified = session.identified_by(password);
        session
            .conn
            .query_drop(format!("{verb} USER {pending} {identified}"))
            .await?;
        let require = tls_requirement(session, current_user, &host).await?;
        session
            .conn
            .query_drop(format!("ALTER USER {pending} REQUIRE {require}"))
            .await?;
        session
            .conn
            .query_drop(format!(
                "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {pending}"
            ))
            .await?;
        let current = session.account(current_user, &host);
        let grants: Vec<String> = session
            .conn
            .query(format!("SHOW GRANTS FOR {current}"))
            .await?;
        for grant in grants {
            if let Some(statement) = regrant(&grant, current_user, &host, &pending) {
                session.conn.query_drop(statement).await?;
            }
        }
    }
    Ok(())
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

/// `ssl_type`, `ssl_cipher`, `x509_issuer`, `x509_subject` of `mysql.user`.
type TlsColumns = (String, Vec<u8>, Vec<u8>, Vec<u8>);

/// The `REQUIRE` clause of an account (NONE, SSL, X509, or ISSUER/SUBJECT/CIPHER).
async fn tls_requirement(
    session: &mut Session,
    user: &str,
    host: &str,
) -> std::result::Result<String, mysql_async::Error> {
    let row: Option<TlsColumns> = session
        .conn
        .exec_first(
            "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await?;
    let Some((ssl_type, cipher, issuer, subject)) = row else {
        return Ok("NONE".into());
    };
    Ok(match ssl_type.as_str() {
        "ANY" => "SSL".into(),
        "X509" => "X509".into(),
        "SPECIFIED" => {
            let mut parts = Vec::new();
            for (keyword, value) in [("ISSUER", issuer), ("SUBJECT", subject), ("CIPHER", cipher)] {
                let value = String::from_utf8_lossy(&value).into_owned();
                if !value.is_empty() {
                    parts.push(format!("{keyword} {}", session.quote(&value)));
                }
            }
            if parts.is_empty() {
                "SSL".into()
            } else {
                parts.join(" AND ")
            }
        }
        _ => "NONE".into(),
    })
}

/// Rewrites one `SHOW GRANTS` line of `user@host` as the same grant to `pending_account`:
/// the grantee replaced, any password or TLS clause dropped (set separately), the grant and
/// admin options kept. None for a line that grants nothing to copy.
pub fn regrant(line: &str, user: &str, host: &str, pending_account: &str) -> Option<String> {
    let grantees = [
        format!(
            "`{}`@`{}`",
            user.replace('`', "``"),
            host.replace('`', "``")
        ),
        format!(
            "'{}'@'{}'",
            user.replace('\'', "''"),
            host.replace('\'', "''")
        ),
        format!("{user}@{host}"),
    ];
    let (at, grantee) = grantees
        .iter()
        .find_map(|g| line.rfind(&format!(" TO {g}")).map(|at| (at, g)))?;
    let head = &line[..at];
    let tail = &line[at + 4 + grantee.len()..];
    let mut options = String::new();
    if tail.contains("WITH GRANT OPTION") {
        options.push_str(" WITH GRANT OPTION");
    }
    if tail.contains("WITH ADMIN OPTION") {
        options.push_str(" WITH ADMIN OPTION");
    }
    if head.trim() == "GRANT USAGE ON *.*" && options.is_empty() {
        return None;
    }
    Some(format!("{head} TO {pending_account}{options}"))
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
    fn grants_are_rewritten_for_the_pending_user() {
        let pending = "'app_clone'@'%'";
        assert_eq!(
            regrant(
                "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`",
                "app",
                "%",
                pending
            )
            .unwrap(),
            "GRANT SELECT, INSERT ON `shop`.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            regrant(
                "GRANT ALL PRIVILEGES ON `a`.`t` TO `app`@`%` WITH GRANT OPTION",
                "app",
                "%",
                pending
            )
            .unwrap(),
            "GRANT ALL PRIVILEGES ON `a`.`t` TO 'app_clone'@'%' WITH GRANT OPTION"
        );
        assert_eq!(
            regrant(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABCDEF' REQUIRE SSL",
                "app",
                "%",
                pending
            ),
            None
        );
        assert_eq!(
            regrant(
                "GRANT PROCESS ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'",
                "app",
                "%",
                pending
            )
            .unwrap(),
            "GRANT PROCESS ON *.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            regrant("GRANT `reporting` TO `app`@`%`", "app", "%", pending).unwrap(),
            "GRANT `reporting` TO 'app_clone'@'%'"
        );
        assert_eq!(
            regrant("GRANT SELECT ON *.* TO `other`@`%`", "app", "%", pending),
            None
        );
    }
}
