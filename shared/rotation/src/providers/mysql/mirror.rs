//! Alternating users: the pending user made an exact copy of the current user, account by
//! account (one per host), and nothing more.
//!
//! For every host the current user has an account on, the pending user's account there gets
//! the same grants (privileges, MySQL 8 partial revokes, roles and default roles, proxies), the
//! same `REQUIRE`, resource limits, password lifetime and lock, and then, last, the new
//! password. Whatever the pending account held before (a role, a privilege, a grant option) is
//! taken away first. A pending account on a host the current user has no account on is locked
//! and stripped of everything it holds: the application's credentials never reach an account
//! the current user does not have.
//!
//! Until the last statement the pending password logs in nowhere (a new account starts with a
//! random password nobody knows), so a retry after a failure anywhere mirrors everything again.

use mysql_async::prelude::Queryable;
use rand::Rng;
use secrecy::SecretString;

use super::account::{is_decimal, Attributes, Lifetime, Require};
use super::grants::{GrantLine, Verb};
use super::{Flavor, Session};

type SqlResult<T> = std::result::Result<T, mysql_async::Error>;

/// A refusal to mirror, naming the account and the rule (never a line of `SHOW GRANTS`, which
/// may hold a password hash).
fn refuse(why: String) -> mysql_async::Error {
    mysql_async::Error::Other(why.into())
}

/// A random password for an account being created, replaced by the pending password once the
/// account is a complete copy.
pub(super) fn throwaway_password() -> SecretString {
    let bytes: [u8; 24] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(format!("Tw-{hex}-Aa1!"))
}

/// As the master: makes `pending_user` an exact copy of `current_user` with `password`
/// (`throwaway` is the password of accounts created here until the copy is complete).
pub(super) async fn mirror_user(
    session: &mut Session,
    current_user: &str,
    pending_user: &str,
    password: &SecretString,
    throwaway: &SecretString,
) -> SqlResult<()> {
    let current_hosts = account_hosts(session, current_user).await?;
    if current_hosts.is_empty() {
        return Err(refuse(format!(
            "user {current_user:?} has no account to copy grants from"
        )));
    }
    let pending_hosts = account_hosts(session, pending_user).await?;
    let has = |hosts: &[String], host: &str| hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    for host in &pending_hosts {
        if !has(&current_hosts, host) {
            retire(session, pending_user, host).await?;
        }
    }
    for host in &current_hosts {
        let pending = session.account(pending_user, host);
        if !has(&pending_hosts, host) {
            let identified = session.identified_by(throwaway);
            session
                .conn
                .query_drop(format!("CREATE USER {pending} {identified}"))
                .await?;
        }
        strip(session, pending_user, host).await?;
        copy_grants(session, current_user, pending_user, host).await?;
        let attributes = attributes(session, current_user, host).await?;
        let clauses = attributes.clauses(&|text| session.quote(text));
        session
            .conn
            .query_drop(format!("ALTER USER {pending} {clauses}"))
            .await?;
    }
    let identified = session.identified_by(password);
    let accounts: Vec<String> = current_hosts
        .iter()
        .map(|host| format!("{} {identified}", session.account(pending_user, host)))
        .collect();
    session
        .conn
        .query_drop(format!("ALTER USER {}", accounts.join(", ")))
        .await
}

/// The hosts `user` has an account on (MariaDB roles, which share `mysql.user`, excluded).
async fn account_hosts(session: &mut Session, user: &str) -> SqlResult<Vec<String>> {
    let sql = match session.flavor {
        Flavor::MariaDb => {
            "SELECT Host FROM mysql.user WHERE User = ? AND is_role <> 'Y' ORDER BY Host"
        }
        Flavor::MySql { .. } => "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host",
    };
    session.conn.exec(sql, (user,)).await
}

/// The `SHOW GRANTS` lines of `user@host`, read; refuses the whole copy when one line has a
/// shape this module does not know (skipping a partial revoke would grant more).
async fn grant_lines(session: &mut Session, user: &str, host: &str) -> SqlResult<Vec<GrantLine>> {
    let account = session.account(user, host);
    let shown: Vec<String> = session
        .conn
        .query(format!("SHOW GRANTS FOR {account}"))
        .await?;
    shown
        .iter()
        .enumerate()
        .map(|(n, line)| {
            GrantLine::parse(line, user, host, session.no_backslash_escapes).map_err(|why| {
                refuse(format!(
                    "line {} of SHOW GRANTS FOR {account} is not understood ({}); refusing to copy grants partially",
                    n + 1,
                    why.0
                ))
            })
        })
        .collect()
}

/// Takes every grant away from `user@host`: roles and proxies one by one (`REVOKE ALL` leaves
/// them on MySQL), then all privileges and the grant option, then the default role.
async fn strip(session: &mut Session, user: &str, host: &str) -> SqlResult<()> {
    let account = session.account(user, host);
    for line in grant_lines(session, user, host).await? {
        if let Some(statement) = line.undo(&account) {
            session.conn.query_drop(statement).await?;
        }
    }
    session
        .conn
        .query_drop(format!(
            "REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}"
        ))
        .await?;
    set_default_roles(session, &account, None).await
}

/// Locks `user@host` and takes every grant away from it: a pending account on a host the
/// current user has no account on.
async fn retire(session: &mut Session, user: &str, host: &str) -> SqlResult<()> {
    let account = session.account(user, host);
    session
        .conn
        .query_drop(format!("ALTER USER {account} ACCOUNT LOCK"))
        .await?;
    strip(session, user, host).await
}

/// Grants `pending_user@host` what `SHOW GRANTS` lists for `current_user@host`, in the order
/// listed (a partial revoke follows the grant it restricts), and its default roles.
async fn copy_grants(
    session: &mut Session,
    current_user: &str,
    pending_user: &str,
    host: &str,
) -> SqlResult<()> {
    let pending = session.account(pending_user, host);
    let lines = grant_lines(session, current_user, host).await?;
    let mut default_roles = None;
    for line in &lines {
        match line.verb {
            // MariaDB keeps a default role after the role is revoked (and then refuses to set
            // it on an account without the role): a default role not held is no default role.
            Verb::DefaultRole => {
                if lines.iter().any(|l| l.role_grant && l.body == line.body) {
                    default_roles = Some(line.body.clone());
                }
            }
            _ if line.grants_nothing => {}
            Verb::Grant | Verb::Revoke => {
                session.conn.query_drop(line.for_account(&pending)).await?;
            }
        }
    }
    if let Flavor::MySql { .. } = session.flavor {
        default_roles = mysql_default_roles(session, current_user, host).await?;
    }
    set_default_roles(session, &pending, default_roles.as_deref()).await
}

/// MySQL 8's default roles of `user@host` as a list of accounts (None: none, or MySQL 5.7,
/// which has no roles).
async fn mysql_default_roles(
    session: &mut Session,
    user: &str,
    host: &str,
) -> SqlResult<Option<String>> {
    let roles: Vec<(String, String)> = match session
        .conn
        .exec(
            "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = ? AND HOST = ? ORDER BY 1, 2",
            (user, host),
        )
        .await
    {
        Ok(roles) => roles,
        Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_TABLE => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok((!roles.is_empty()).then(|| {
        roles
            .iter()
            .map(|(role, role_host)| session.account(role, role_host))
            .collect::<Vec<_>>()
            .join(", ")
    }))
}

/// ER_NO_SUCH_TABLE: `mysql.default_roles` before MySQL 8.
const NO_SUCH_TABLE: u16 = 1146;

/// Sets the default roles of `account` (already quoted) to `roles` (SQL, as the server printed
/// them), or to none.
async fn set_default_roles(
    session: &mut Session,
    account: &str,
    roles: Option<&str>,
) -> SqlResult<()> {
    let roles = roles.unwrap_or("NONE");
    match session.flavor {
        Flavor::MariaDb => {
            session
                .conn
                .query_drop(format!("SET DEFAULT ROLE {roles} FOR {account}"))
                .await
        }
        Flavor::MySql { .. } => {
            match session
                .conn
                .query_drop(format!("ALTER USER {account} DEFAULT ROLE {roles}"))
                .await
            {
                // MySQL 5.7 has no roles (ER_PARSE_ERROR): nothing to set.
                Err(mysql_async::Error::Server(e)) if e.code == 1064 && roles == "NONE" => Ok(()),
                other => other,
            }
        }
    }
}

/// `TLS columns, limits` of `mysql.user`: `ssl_type`, `x509_issuer`, `x509_subject`,
/// `ssl_cipher`, `max_questions`, `max_updates`, `max_connections`, `max_user_connections`.
type UserColumns = (String, Vec<u8>, Vec<u8>, Vec<u8>, u64, u64, u64, i64);

/// The attributes of `user@host` as the catalog holds them.
async fn attributes(session: &mut Session, user: &str, host: &str) -> SqlResult<Attributes> {
    let missing = || {
        refuse(format!(
            "the account {user:?}@{host:?} disappeared during the copy"
        ))
    };
    let (ssl_type, issuer, subject, cipher, queries, updates, connections, user_connections): UserColumns = session
        .conn
        .exec_first(
            "SELECT ssl_type, x509_issuer, x509_subject, ssl_cipher, max_questions, max_updates, max_connections, max_user_connections FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await?
        .ok_or_else(missing)?;
    let (max_statement_time, locked, lifetime) = match session.flavor {
        Flavor::MariaDb => {
            let (time, locked, lifetime): (Option<String>, Option<String>, Option<String>) = session
                .conn
                .exec_first(
                    "SELECT CAST(u.max_statement_time AS CHAR), JSON_VALUE(g.Priv, '$.account_locked'), JSON_VALUE(g.Priv, '$.password_lifetime') \
                     FROM mysql.user u JOIN mysql.global_priv g ON g.User = u.User AND g.Host = u.Host WHERE u.User = ? AND u.Host = ?",
                    (user, host),
                )
                .await?
                .ok_or_else(missing)?;
            let time = time.unwrap_or_else(|| "0".into());
            if !is_decimal(&time) {
                return Err(refuse(format!(
                    "the account {user:?}@{host:?} has a max_statement_time that is not a number"
                )));
            }
            let lifetime = lifetime.and_then(|days| days.parse::<i64>().ok());
            // JSON_VALUE of a JSON true is "1" on MariaDB 10.11 ("true" on some versions).
            let locked = matches!(locked.as_deref(), Some("1" | "true"));
            (Some(time), locked, lifetime)
        }
        Flavor::MySql { .. } => {
            let (locked, lifetime): (String, Option<i64>) = session
                .conn
                .exec_first(
                    "SELECT account_locked, password_lifetime FROM mysql.user WHERE User = ? AND Host = ?",
                    (user, host),
                )
                .await?
                .ok_or_else(missing)?;
            (None, locked == "Y", lifetime)
        }
    };
    Ok(Attributes {
        require: Require::from_columns(&ssl_type, &issuer, &subject, &cipher),
        max_queries_per_hour: queries,
        max_updates_per_hour: updates,
        max_connections_per_hour: connections,
        max_user_connections: user_connections,
        max_statement_time,
        lifetime: Lifetime::from_days(lifetime),
        locked,
    })
}
