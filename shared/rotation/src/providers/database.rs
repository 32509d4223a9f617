//! The rotation flow every database provider shares; a [`Database`] supplies the engine's
//! login and SQL.
//!
//! Strategies: single-user (the user changes its own password, logging in with AWSCURRENT,
//! else AWSPREVIOUS), alternating users (a master user alternates the secret between `user`
//! and `user_clone`: dual-phase), and RDS master (the master user's password is changed through
//! the RDS API: single-phase).

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::database_secret::{DatabaseSecret, Endpoint, MasterSecret, Strategy, TlsMode};
use super::sessions::{self, Decision, Policy, Session, Sessions};
use super::{parse_object, rds, secret_fields, ProviderResult, StepContext};
use crate::deadline::Backoff;
use crate::error::{Credential, DbFailure, Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// The suffix that names the alternate user, as in AWS's templates.
pub const CLONE_SUFFIX: &str = "_clone";

/// Who a session is, for error messages.
#[derive(Debug, Clone)]
pub struct Who {
    /// The credential used to log in.
    pub credential: Credential,
    /// The user name.
    pub user: String,
    /// host:port.
    pub endpoint: String,
}

impl Who {
    /// A database error of this session.
    pub fn error(&self, failure: DbFailure, detail: String) -> RotationError {
        RotationError::Database {
            credential: self.credential,
            user: self.user.clone(),
            endpoint: self.endpoint.clone(),
            failure,
            detail,
        }
    }
}

/// Runs one statement of a logged-in session, bounded by the configured statement timeout: a
/// server that accepted the login and then stopped answering fails the step in bounded time.
async fn bounded<T>(
    ctx: &StepContext<'_>,
    who: &Who,
    what: &str,
    statement: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let limit = ctx.config.db_statement_timeout;
    match tokio::time::timeout(limit, statement).await {
        Ok(result) => result,
        Err(_) => Err(who.error(
            DbFailure::Network,
            format!(
                "{what}: no answer within {} s ({})",
                limit.as_secs(),
                crate::config::ENV_DB_STATEMENT_TIMEOUT
            ),
        )),
    }
}

/// One database engine: how to log in and which SQL changes passwords.
#[allow(async_fn_in_trait)]
pub trait Database {
    /// A logged-in session.
    type Session;
    /// Provider name in reports and logs.
    const PROVIDER: &'static str;
    /// The engine's default port.
    const DEFAULT_PORT: u16;

    /// The longest user name the engine (as configured) accepts, in the unit of
    /// [`Database::username_len`].
    fn max_username_len(ctx: &StepContext<'_>) -> usize;

    /// A user name's length as the engine limits it, and the unit's name: characters by
    /// default (MySQL, MariaDB).
    fn username_len(name: &str) -> (usize, &'static str) {
        (name.chars().count(), "characters")
    }

    /// Logs in, bounded by the configured timeout.
    async fn connect(
        ctx: &StepContext<'_>,
        endpoint: &Endpoint,
        who: &Who,
        password: &SecretString,
    ) -> Result<Self::Session>;

    /// Whether changing this session's own password keeps the current one valid (MySQL's dual
    /// passwords, `RETAIN CURRENT PASSWORD`). Then the current password logs in after
    /// setSecret too, and a retried setSecret must not change it again: a second change would
    /// make the pending password the retained one as well and drop the current password before
    /// finishSecret.
    fn keeps_current_password(_session: &Self::Session) -> bool {
        false
    }

    /// Logged in as `who`, changes its own password.
    async fn set_own_password(
        session: &mut Self::Session,
        who: &Who,
        password: &SecretString,
    ) -> Result<()>;

    /// Logged in as the master (`who`): makes `pending_user` exist with the privileges of
    /// `current_user` and sets its password.
    async fn set_alternate_password(
        session: &mut Self::Session,
        who: &Who,
        current_user: &str,
        pending_user: &str,
        password: &SecretString,
    ) -> Result<()>;

    /// Logged in as the master (`who`): why the master must not make `target` the alternate of
    /// `logged_in` (the user whose AWSCURRENT credentials just logged in), or None. `target`
    /// may not be able to do more than `logged_in` already can (superuser-class privileges,
    /// roles), and an existing `target` an administrator disabled stays disabled.
    async fn target_refusal(
        session: &mut Self::Session,
        who: &Who,
        logged_in: &str,
        target: &str,
    ) -> Result<Option<String>>;

    /// A query that proves the session works.
    async fn probe(session: &mut Self::Session, who: &Who) -> Result<()>;

    /// Logged in as `who`: the sessions of `user` other than this one, with what `who` may see
    /// of them. `user` is bound as a parameter, never written into SQL text.
    async fn list_sessions(
        session: &mut Self::Session,
        who: &Who,
        user: &str,
    ) -> Result<Vec<Session>>;

    /// Logged in as the user itself (`who`): ends every other session of that user, and returns
    /// those it ended. The server's own rule (a user may end its own sessions) is the only
    /// privilege used.
    async fn terminate_own_sessions(session: &mut Self::Session, who: &Who)
        -> Result<Vec<Session>>;

    /// Logs out, waiting for the server to see it (a session only dropped may still be listed
    /// a moment later).
    async fn close(session: Self::Session) {
        drop(session);
    }
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

fn check_username<D: Database>(ctx: &StepContext<'_>, name: &str, version: &str) -> Result<()> {
    let limit = D::max_username_len(ctx);
    let (len, unit) = D::username_len(name);
    if len > limit {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            version,
            format!(
                "field `username`: the user name {name:?} is {len} {unit}; {} allows {limit} here",
                D::PROVIDER
            ),
        ));
    }
    if name.contains('\0') {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
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

/// Writes must go to the writer: an Aurora reader endpoint cannot change a password.
fn refuse_reader_endpoint(
    ctx: &StepContext<'_>,
    secret: &DatabaseSecret,
    version: &str,
) -> Result<()> {
    if secret.host.contains(".cluster-ro-") {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            version,
            format!(
                "field `host`: {} is an Aurora cluster reader endpoint; rotation writes, so give the cluster (writer) endpoint",
                secret.host
            ),
        ));
    }
    Ok(())
}

fn who(credential: Credential, user: &str, endpoint: &Endpoint) -> Who {
    Who {
        credential,
        user: user.to_owned(),
        endpoint: endpoint.display(),
    }
}

/// Logs in as `user` at the secret's endpoint (after any configured host override).
async fn login<D: Database>(
    ctx: &StepContext<'_>,
    secret: &DatabaseSecret,
    user: &str,
    password: &SecretString,
    credential: Credential,
) -> Result<D::Session> {
    let endpoint = ctx.config.endpoint_for(Endpoint::of(secret));
    D::connect(ctx, &endpoint, &who(credential, user, &endpoint), password).await
}

/// The profile of a database secret: provider, strategy, rotations that retire every password.
pub fn profile<D: Database>(
    fields: Map<String, Value>,
    secret: &str,
    version: &str,
) -> Result<super::Profile> {
    // Only what the plan needs: a secret whose endpoint RDS discovery provides has no `host`,
    // and its connection fields are checked by the rotation itself.
    let engine = secret_fields(&fields, secret, version).required_str("engine")?;
    let strategy = DatabaseSecret::strategy_of(&fields, secret, version)?;
    Ok(super::Profile {
        provider: D::PROVIDER,
        strategy: strategy.as_str(),
        rotations_to_retire: strategy.rotations_to_retire(engine),
    })
}

/// createSecret: the next version with a new password (and, alternating, the other user).
pub async fn create<D: Database>(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
) -> Result<ProviderResult<SecretString>> {
    let arn = &ctx.secret.arn;
    let current = DatabaseSecret::parse(fields, arn, AWSCURRENT, D::DEFAULT_PORT)?;
    refuse_reader_endpoint(ctx, &current, AWSCURRENT)?;
    check_username::<D>(ctx, &current.username, AWSCURRENT)?;
    let username = match current.strategy {
        Strategy::SingleUser | Strategy::RdsMaster => current.username.clone(),
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
    check_username::<D>(ctx, &username, AWSCURRENT)?;
    warn_if_plaintext(ctx, &current);
    let password = ctx.config.password.generate()?;
    Ok(ProviderResult {
        provider: D::PROVIDER,
        strategy: current.strategy.as_str(),
        value: current.next_version(&username, &password),
    })
}

/// Refuses a pending version that would send the rotation somewhere the current one does not.
fn check_consistent(current: &DatabaseSecret, pending: &DatabaseSecret, arn: &str) -> Result<()> {
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
    if pending.strategy != current.strategy {
        return Err(mismatch("strategy"));
    }
    let user_ok = match current.strategy {
        Strategy::SingleUser | Strategy::RdsMaster => pending.username == current.username,
        Strategy::AlternatingUsers => {
            base_username(&pending.username) == base_username(&current.username)
        }
    };
    if !user_ok {
        return Err(mismatch("username"));
    }
    Ok(())
}

/// setSecret: makes the pending password valid, unless it already is.
pub async fn set<D: Database>(
    ctx: &StepContext<'_>,
    current: Map<String, Value>,
    pending: Map<String, Value>,
) -> Result<ProviderResult<Outcome>> {
    let arn = &ctx.secret.arn;
    let current = DatabaseSecret::parse(current, arn, AWSCURRENT, D::DEFAULT_PORT)?;
    let pending = DatabaseSecret::parse(pending, arn, AWSPENDING, D::DEFAULT_PORT)?;
    check_consistent(&current, &pending, arn)?;
    refuse_reader_endpoint(ctx, &pending, AWSPENDING)?;
    check_username::<D>(ctx, &pending.username, AWSPENDING)?;
    warn_if_plaintext(ctx, &pending);
    let result = |outcome| ProviderResult {
        provider: D::PROVIDER,
        strategy: current.strategy.as_str(),
        value: outcome,
    };
    // The pending password is tried first where a retry leaves the current login working
    // (alternating users, RDS master); a single user tries it only when its current password
    // is refused.
    let outcome = match current.strategy {
        Strategy::SingleUser => set_single_user::<D>(ctx, &current, &pending).await?,
        Strategy::AlternatingUsers => set_alternating::<D>(ctx, &current, &pending).await?,
        _ if pending_logs_in::<D>(ctx, &pending).await? => Outcome::AlreadyDone,
        Strategy::RdsMaster => {
            let target = super::rds_master::prove_owner::<D>(ctx, &current).await?;
            rds::set_master_password(ctx, target, &pending.password).await?;
            Outcome::Done
        }
    };
    Ok(result(outcome))
}

/// setSecret of alternating users. The secret's value comes from whoever may write it, and the
/// master may do far more than that writer, so before the master acts the secret must prove
/// that everything it names is its own, as AWS's templates do:
///
/// 1. the master's endpoint comes from the master secret (`host`) or, for an RDS-managed
///    master secret, from RDS through the secret's `aws:rds:*` tags: never from this secret;
/// 2. the two user names are exactly `<base>` and `<base>_clone`, neither is the master;
/// 3. this secret's endpoint is the master's (the same server);
/// 4. the AWSCURRENT credentials log in there (proof of possession);
/// 5. the alternate user may do no more than the user that logged in ([`Database::target_refusal`]).
///
/// Only then does the master log in (TLS and database from the master secret alone) and set
/// the alternate user's password. A refusal names the rule and changes nothing.
async fn set_alternating<D: Database>(
    ctx: &StepContext<'_>,
    current: &DatabaseSecret,
    pending: &DatabaseSecret,
) -> Result<Outcome> {
    let master = Master::resolve::<D>(ctx, current).await?;
    check_alternate_names(&ctx.secret.arn, current, pending, &master.secret.username)?;
    check_same_server(ctx, current, &master)?;
    if let Some((mut session, who)) = pending_login::<D>(ctx, pending).await? {
        if cuts_off(ctx) {
            cut_off::<D>(ctx, &mut session, &who).await;
        }
        return Ok(Outcome::AlreadyDone);
    }
    prove_current::<D>(ctx, current).await?;
    let (mut session, who) = master.login::<D>(ctx).await?;
    let refusal = bounded(
        ctx,
        &who,
        "checking the alternate user's privileges",
        D::target_refusal(&mut session, &who, &current.username, &pending.username),
    )
    .await?;
    if let Some(why) = refusal {
        return Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            AWSPENDING,
            format!("field `username`: {why} (trust rule: the alternate user may not do more than the user whose AWSCURRENT credentials logged in)"),
        ));
    }
    // Both names are proven now: the AWSCURRENT user logged in, and the pending user is
    // exactly its alternate (not the master).
    check_in_use::<D>(
        ctx,
        &mut session,
        &who,
        &pending.username,
        Some(&current.username),
    )
    .await?;
    bounded(
        ctx,
        &who,
        "setting the alternate user's password",
        D::set_alternate_password(
            &mut session,
            &who,
            &current.username,
            &pending.username,
            &pending.password,
        ),
    )
    .await?;
    if cuts_off(ctx) {
        // As the user itself, with its new password: no privilege of the master's is needed.
        match pending_login::<D>(ctx, pending).await {
            Ok(Some((mut session, who))) => cut_off::<D>(ctx, &mut session, &who).await,
            Ok(None) => ctx.warn(format!(
                "compromise response: user {:?} does not log in with its new password yet, so its older sessions were not terminated; a retried setSecret terminates them",
                pending.username
            )),
            Err(e) => ctx.warn(format!(
                "compromise response: the older sessions of user {:?} were not terminated: {e}",
                pending.username
            )),
        }
    }
    Ok(Outcome::Done)
}

/// Refuses user names the master must not act on: the pending user is exactly the other one
/// of the AWSCURRENT user's pair (`<base>` / `<base>_clone`), and neither is the master user.
fn check_alternate_names(
    arn: &str,
    current: &DatabaseSecret,
    pending: &DatabaseSecret,
    master_user: &str,
) -> Result<()> {
    if pending.username != alternate_username(&current.username) {
        return Err(RotationError::invalid_secret(
            arn,
            AWSPENDING,
            "field `username`: the pending user must be exactly the alternate of the AWSCURRENT user (`<base>` or `<base>_clone`)",
        ));
    }
    for (version, name) in [
        (AWSCURRENT, &current.username),
        (AWSPENDING, &pending.username),
    ] {
        if name == master_user {
            return Err(RotationError::invalid_secret(
                arn,
                version,
                format!("field `username`: {name:?} is the master user of `masterarn` (trust rule: the master never rotates its own account as an alternating user)"),
            ));
        }
    }
    Ok(())
}

/// Refuses a secret whose endpoint is not the master's: as named, or where the function's
/// host overrides send both (the override is the function's configuration, not the secret's,
/// and equal targets mean both logins reach the same server).
fn check_same_server(
    ctx: &StepContext<'_>,
    current: &DatabaseSecret,
    master: &Master,
) -> Result<()> {
    let same =
        |a: &Endpoint, b: &Endpoint| a.port == b.port && a.host.eq_ignore_ascii_case(&b.host);
    let user = Endpoint::of(current);
    if same(&user, &master.endpoint)
        || same(
            &ctx.config.endpoint_for(user.clone()),
            &ctx.config.endpoint_for(master.endpoint.clone()),
        )
    {
        return Ok(());
    }
    Err(RotationError::invalid_secret(
        &ctx.secret.arn,
        AWSCURRENT,
        format!(
            "field `host`: {} is not the master's endpoint {} (trust rule: the master acts only on the server its own secret or RDS names)",
            user.display(),
            master.endpoint.display()
        ),
    ))
}

/// Proof of possession: the AWSCURRENT credentials log in before the master acts for them.
///
/// AWSPREVIOUS is deliberately not tried: in alternating users the master only ever changes
/// the alternate user's password, never the AWSCURRENT user's, so no crash between steps
/// leaves AWSCURRENT unable to log in (after setSecret it is untouched; after finishSecret the
/// new AWSCURRENT is the version testSecret proved). A current password that does not work was
/// changed by someone else, or was never known to the writer: the master refuses.
async fn prove_current<D: Database>(ctx: &StepContext<'_>, current: &DatabaseSecret) -> Result<()> {
    match login::<D>(
        ctx,
        current,
        &current.username,
        &current.password,
        Credential::Current,
    )
    .await
    {
        Ok(session) => {
            D::close(session).await;
            Ok(())
        }
        Err(e) if e.is_authentication_failure() => Err(RotationError::invalid_secret(
            &ctx.secret.arn,
            AWSCURRENT,
            format!("the AWSCURRENT credentials do not log in ({e}) (trust rule: proof of possession: the master acts only for a user whose current password works)"),
        )),
        Err(e) => Err(e),
    }
}

/// Whether the pending password already logs in (setSecret ran before: a retry).
async fn pending_logs_in<D: Database>(
    ctx: &StepContext<'_>,
    pending: &DatabaseSecret,
) -> Result<bool> {
    match pending_login::<D>(ctx, pending).await? {
        Some((session, _)) => {
            D::close(session).await;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A session logged in with the pending credentials, or None when the server refuses them
/// (setSecret has not made them valid yet).
async fn pending_login<D: Database>(
    ctx: &StepContext<'_>,
    pending: &DatabaseSecret,
) -> Result<Option<(D::Session, Who)>> {
    let endpoint = ctx.config.endpoint_for(Endpoint::of(pending));
    let as_pending = who(Credential::Pending, &pending.username, &endpoint);
    match D::connect(ctx, &endpoint, &as_pending, &pending.password).await {
        Ok(session) => Ok(Some((session, as_pending))),
        Err(e) if e.is_authentication_failure() => Ok(None),
        Err(e) => Err(e),
    }
}

/// setSecret of a single user: logs in with AWSCURRENT and changes its own password to the
/// pending one. The pending password is tried only when the current one is refused (a retry
/// after the password was set), so a first attempt logs in once; when neither logs in,
/// AWSPREVIOUS is tried (a rotation that set the password and crashed before finishSecret
/// leaves it so).
async fn set_single_user<D: Database>(
    ctx: &StepContext<'_>,
    current: &DatabaseSecret,
    pending: &DatabaseSecret,
) -> Result<Outcome> {
    let endpoint = ctx.config.endpoint_for(Endpoint::of(current));
    let as_current = who(Credential::Current, &current.username, &endpoint);
    let (mut session, who) = match D::connect(ctx, &endpoint, &as_current, &current.password).await
    {
        Ok(mut session) => {
            if pending_checked_first(true, D::keeps_current_password(&session)) {
                if let Some((pending_session, _)) = pending_login::<D>(ctx, pending).await? {
                    D::close(pending_session).await;
                    if cuts_off(ctx) {
                        cut_off::<D>(ctx, &mut session, &as_current).await;
                    }
                    return Ok(Outcome::AlreadyDone);
                }
            }
            (session, as_current)
        }
        Err(e) if e.is_authentication_failure() => {
            if let Some((mut session, who)) = pending_login::<D>(ctx, pending).await? {
                if cuts_off(ctx) {
                    cut_off::<D>(ctx, &mut session, &who).await;
                }
                return Ok(Outcome::AlreadyDone);
            }
            login_previous::<D>(ctx, current, &endpoint, e).await?
        }
        Err(e) => return Err(e),
    };
    // The user logged in as itself: its name is proven, and it lists its own sessions.
    check_in_use::<D>(ctx, &mut session, &who, &who.user, None).await?;
    bounded(
        ctx,
        &who,
        "changing the password",
        D::set_own_password(&mut session, &who, &pending.password),
    )
    .await?;
    if cuts_off(ctx) {
        cut_off::<D>(ctx, &mut session, &who).await;
    }
    Ok(Outcome::Done)
}

/// What one look at the sessions of the user whose password changes may take: no look of the
/// `wait` policy starts later than this before the end of its wait.
const LIST_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The in-use check before `user`'s password is replaced ([`sessions`]): lists the sessions
/// of `user` through `session` (logged in as `who`, who is `user` itself or the master; `user`
/// is proven: it logged in, or it is the exact alternate of the user that did), applies the
/// secret's policy and records what it found for the step's report, metrics and outcome
/// event. `current` (alternating users): the AWSCURRENT user, whose sessions tell whether the
/// consumers have moved. It runs only before the change: a retry that finds the change made
/// goes on without it.
async fn check_in_use<D: Database>(
    ctx: &StepContext<'_>,
    session: &mut D::Session,
    who: &Who,
    user: &str,
    current: Option<&str>,
) -> Result<()> {
    let policy = Policy::of(ctx.secret)?;
    let incident = crate::compromise_marker::active(ctx.secret);
    let started = std::time::Instant::now();
    let mut backoff = Backoff::new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(5),
        ctx.wait_end(ctx.config.in_use_wait),
        LIST_ALLOWANCE,
    );
    loop {
        let rows = bounded(
            ctx,
            who,
            "listing the sessions of the user whose password changes",
            D::list_sessions(session, who, user),
        )
        .await?;
        let found = Sessions::consumers(user, &rows);
        let decision = sessions::decide(policy, incident, found.count, backoff.has_time());
        match decision {
            Decision::Retry => {
                tracing::info!(
                    secret_arn = %ctx.secret.arn,
                    sessions = %found.describe(),
                    "in use: waiting for the consumers to leave (tag {})",
                    sessions::TAG
                );
                backoff.pause().await;
                continue;
            }
            Decision::GoOn => {
                if started.elapsed() > LIST_ALLOWANCE {
                    tracing::info!(
                        secret_arn = %ctx.secret.arn,
                        user,
                        waited_ms = started.elapsed().as_millis(),
                        "the consumers left: the password changes"
                    );
                }
                ctx.record_sessions(|facts| facts.policy = policy);
                return Ok(());
            }
            Decision::Warn | Decision::Refuse => {}
        }
        let moved = match current {
            Some(current) => {
                let rows = bounded(
                    ctx,
                    who,
                    "listing the sessions of the AWSCURRENT user",
                    D::list_sessions(session, who, current),
                )
                .await?;
                Some(Sessions::consumers(current, &rows))
            }
            None => None,
        };
        let mut text = found.describe();
        if let Some(moved) = &moved {
            text.push_str("; ");
            text.push_str(&moved_text(moved));
        }
        ctx.record_sessions(|facts| {
            facts.policy = policy;
            facts.in_use = Some(found.clone());
            facts.current = moved.clone();
        });
        if decision == Decision::Refuse {
            let waited = if policy == Policy::Wait {
                format!(
                    " (waited {} s, bounded by {} = {} s and the invocation's deadline)",
                    started.elapsed().as_secs(),
                    crate::config::ENV_IN_USE_WAIT,
                    ctx.config.in_use_wait.as_secs()
                )
            } else {
                String::new()
            };
            return Err(RotationError::CredentialInUse {
                user: user.to_owned(),
                sessions: text,
                policy: policy.as_str(),
                waited,
            });
        }
        ctx.warn(format!(
            "the password of user {user:?} changes although it is in use: {text}{}",
            if incident && policy != Policy::Warn {
                format!(
                    " (compromise response: the tag {} = {} does not hold it up)",
                    sessions::TAG,
                    policy.as_str()
                )
            } else {
                String::new()
            }
        ));
        return Ok(());
    }
}

/// What the AWSCURRENT user's sessions say about the consumers' move.
fn moved_text(moved: &Sessions) -> String {
    if moved.count == 0 {
        format!(
            "the AWSCURRENT user {:?} has no session yet (no consumer has moved to it)",
            moved.user
        )
    } else {
        format!(
            "the AWSCURRENT user {:?} has {}",
            moved.user,
            moved.describe()
        )
    }
}

/// Whether this rotation is part of a compromise response, which cuts off live access: the
/// secret carries the compromise marker ([`crate::compromise_marker`]).
fn cuts_off(ctx: &StepContext<'_>) -> bool {
    crate::compromise_marker::active(ctx.secret)
}

/// Compromise response, right after the user `who` logged in as got its new password: ends
/// every other session of that user through `session` (logged in as the user itself), and
/// reports them (count, addresses, application names) in the step's warnings, report and
/// outcome event. Every session listed now began before the change, or with the new password
/// a moment ago (those reconnect): none opened with the new credential later is touched. A
/// failure is a warning: the password is replaced, which is what the rotation must achieve.
async fn cut_off<D: Database>(ctx: &StepContext<'_>, session: &mut D::Session, who: &Who) {
    let ended = bounded(
        ctx,
        who,
        "terminating the user's older sessions",
        D::terminate_own_sessions(session, who),
    )
    .await;
    match ended {
        Ok(rows) => {
            let ended = Sessions::of(&who.user, &rows);
            if ended.count > 0 {
                ctx.warn(format!(
                    "compromise response: terminated {}, which began before its new password",
                    ended.describe()
                ));
            } else {
                tracing::info!(secret_arn = %ctx.secret.arn, user = %who.user, "compromise response: no older session to terminate");
            }
            ctx.record_sessions(|facts| facts.terminated = Some(ended.clone()));
        }
        Err(e) => ctx.warn(format!(
            "compromise response: the older sessions of user {:?} were not terminated: {e}",
            who.user
        )),
    }
}

/// Whether a single user's setSecret tries the pending password before it changes anything:
/// when the current password is refused (the change was made: a retry), and also when it logs
/// in but a change keeps it valid (MySQL's dual passwords: a retry logs in with it, so only the
/// pending login tells that the change was made). Otherwise a first setSecret tries no password
/// the server refuses.
fn pending_checked_first(current_logs_in: bool, keeps_current: bool) -> bool {
    !current_logs_in || keeps_current
}

/// Logs in with AWSPREVIOUS after the current password was refused with `current_error`.
async fn login_previous<D: Database>(
    ctx: &StepContext<'_>,
    current: &DatabaseSecret,
    endpoint: &Endpoint,
    current_error: RotationError,
) -> Result<(D::Session, Who)> {
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
        rds::with_discovered_endpoint(ctx, parse_object(&raw, arn, AWSPREVIOUS)?, AWSPREVIOUS)
            .await?,
        arn,
        AWSPREVIOUS,
        D::DEFAULT_PORT,
    )?;
    if previous.username != current.username || previous.host != current.host {
        return Err(no_previous(
            "the AWSPREVIOUS version names another user or host".into(),
        ));
    }
    let as_previous = who(Credential::Previous, &previous.username, endpoint);
    match D::connect(ctx, endpoint, &as_previous, &previous.password).await {
        Ok(session) => Ok((session, as_previous)),
        Err(e) => Err(no_previous(e.to_string())),
    }
}

/// The master user the secret's `masterarn` names, and where it logs in.
struct Master {
    secret: MasterSecret,
    /// The master's endpoint as its secret or RDS names it (before host overrides), with the
    /// master secret's database and TLS mode.
    endpoint: Endpoint,
}

impl Master {
    /// Reads the master secret and finds its endpoint: its `host` (and `port`, else the
    /// engine's), or for an RDS-managed master secret (only username and password) the
    /// instance or cluster its `aws:rds:primary*arn` tag names. A master secret with neither is
    /// refused: the master would otherwise log in wherever the rotated secret points.
    async fn resolve<D: Database>(ctx: &StepContext<'_>, current: &DatabaseSecret) -> Result<Self> {
        let masterarn = current.masterarn.as_deref().unwrap_or_default();
        let raw = ctx
            .secrets_manager
            .require_value(masterarn, None, AWSCURRENT)
            .await?;
        let secret = MasterSecret::parse(
            &parse_object(&raw, masterarn, "master secret AWSCURRENT")?,
            masterarn,
        )?;
        let (host, port) = match &secret.host {
            Some(host) => (host.clone(), secret.port.unwrap_or(D::DEFAULT_PORT)),
            None => match rds::managed_master_endpoint(ctx, masterarn).await? {
                Some((host, port)) => (host, if port == 0 { D::DEFAULT_PORT } else { port }),
                None => {
                    return Err(RotationError::invalid_secret(
                        masterarn,
                        "master secret AWSCURRENT",
                        format!(
                            "field `host` is missing and the secret has no {} or {} tag (trust rule: the master's endpoint comes from the master secret or RDS, never from the secret being rotated)",
                            rds::TAG_PRIMARY_INSTANCE,
                            rds::TAG_PRIMARY_CLUSTER
                        ),
                    ))
                }
            },
        };
        let endpoint = Endpoint {
            host,
            port,
            dbname: secret.dbname.clone(),
            tls: secret.tls,
        };
        Ok(Master { secret, endpoint })
    }

    /// Logs in as the master at its endpoint (after any configured host override).
    async fn login<D: Database>(&self, ctx: &StepContext<'_>) -> Result<(D::Session, Who)> {
        let endpoint = ctx.config.endpoint_for(self.endpoint.clone());
        if endpoint.tls == TlsMode::Disabled {
            ctx.warn(format!(
                "TLS to {} is turned off by the master secret (\"ssl\": false): the master's credentials cross the network unencrypted",
                endpoint.display()
            ));
        }
        let as_master = who(Credential::Master, &self.secret.username, &endpoint);
        let session = D::connect(ctx, &endpoint, &as_master, &self.secret.password).await?;
        Ok((session, as_master))
    }
}

/// testSecret: logs in with the credentials of the version labelled `stage` (AWSPENDING in the
/// rotation) and runs a query.
pub async fn test<D: Database>(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
    stage: &str,
) -> Result<ProviderResult<()>> {
    let arn = &ctx.secret.arn;
    let pending = DatabaseSecret::parse(fields, arn, stage, D::DEFAULT_PORT)?;
    warn_if_plaintext(ctx, &pending);
    let endpoint = ctx.config.endpoint_for(Endpoint::of(&pending));
    let credential = match stage {
        AWSCURRENT => Credential::Current,
        AWSPREVIOUS => Credential::Previous,
        _ => Credential::Pending,
    };
    let as_pending = who(credential, &pending.username, &endpoint);
    let mut session = if pending.strategy == Strategy::RdsMaster {
        login_after_rds_applies::<D>(ctx, &endpoint, &as_pending, &pending.password).await?
    } else {
        D::connect(ctx, &endpoint, &as_pending, &pending.password).await?
    };
    bounded(
        ctx,
        &as_pending,
        "the test query",
        D::probe(&mut session, &as_pending),
    )
    .await?;
    Ok(ProviderResult {
        provider: D::PROVIDER,
        strategy: pending.strategy.as_str(),
        value: (),
    })
}

/// What a refused login takes: no retry of testSecret's login starts later than this before
/// the end of its wait.
const LOGIN_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(1);

/// testSecret's login of an `rds-master` secret: RDS applies a new master password
/// asynchronously, and setSecret waited for it, but a database can refuse the new password for
/// a moment after RDS reports it applied. A refused login is retried (1 s, doubling to 5 s,
/// the last pause cut short) until `ROTATION_RDS_WAIT_SECONDS` or the invocation's deadline (less the reserve for
/// reporting) would pass; any other failure, or a refusal then, fails the step.
async fn login_after_rds_applies<D: Database>(
    ctx: &StepContext<'_>,
    endpoint: &Endpoint,
    as_pending: &Who,
    password: &SecretString,
) -> Result<D::Session> {
    let started = std::time::Instant::now();
    let mut backoff = Backoff::new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(5),
        ctx.wait_end(ctx.config.rds_wait),
        LOGIN_ALLOWANCE,
    );
    let mut attempts = 1u32;
    loop {
        match D::connect(ctx, endpoint, as_pending, password).await {
            Ok(session) => {
                if attempts > 1 {
                    tracing::info!(
                        attempts,
                        waited_ms = started.elapsed().as_millis(),
                        "the new master password logs in"
                    );
                }
                return Ok(session);
            }
            Err(e) if e.is_authentication_failure() && backoff.has_time() => {
                tracing::debug!(attempts, "the new master password is refused yet: retrying");
                backoff.pause().await;
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: serde_json::Value) -> DatabaseSecret {
        DatabaseSecret::parse(value.as_object().unwrap().clone(), "s", AWSPENDING, 5432).unwrap()
    }

    #[test]
    fn dual_phase_secrets_need_two_rotations_to_retire_every_password() {
        let profile_of = |value: serde_json::Value| {
            let text = SecretString::from(value.to_string());
            crate::providers::profile(&text, "arn", "AWSCURRENT").unwrap()
        };
        let single = serde_json::json!({"engine": "postgres", "host": "h", "username": "u", "password": "p"});
        let mut alternating = single.clone();
        alternating["masterarn"] = "arn:master".into();
        let mut mariadb = single.clone();
        mariadb["engine"] = "mariadb".into();
        let mut mysql = single.clone();
        mysql["engine"] = "mysql".into();
        let mut rds_master = single.clone();
        rds_master["strategy"] = "rds-master".into();
        rds_master["dbInstanceIdentifier"] = "db1".into();
        for (value, provider, strategy, rotations) in [
            (single, "postgres", "single-user", 1),
            (alternating, "postgres", "alternating-users", 2),
            (mariadb, "mysql", "single-user", 1),
            (mysql, "mysql", "single-user", 2),
            (rds_master, "postgres", "rds-master", 1),
        ] {
            let profile = profile_of(value);
            assert_eq!(
                (
                    profile.provider,
                    profile.strategy,
                    profile.rotations_to_retire
                ),
                (provider, strategy, rotations)
            );
        }
    }

    #[test]
    fn a_retried_dual_password_set_secret_checks_the_pending_password_before_changing_it() {
        // MySQL dual passwords: after `RETAIN CURRENT PASSWORD` the current password still logs
        // in, so a retry must find the pending one working and change nothing (a second ALTER
        // would retain the pending password and drop the current one).
        assert!(pending_checked_first(true, true));
        // Single-phase servers (PostgreSQL, MariaDB): the current password logging in means no
        // change was made yet; the pending one is not tried (the server would log a refusal).
        assert!(!pending_checked_first(true, false));
        // The current password refused: a change was made, the pending one is tried.
        assert!(pending_checked_first(false, false));
        assert!(pending_checked_first(false, true));
    }

    #[test]
    fn alternate_names_toggle_the_clone_suffix() {
        assert_eq!(alternate_username("app"), "app_clone");
        assert_eq!(alternate_username("app_clone"), "app");
        assert_eq!(alternate_username("_clone"), "_clone_clone");
        assert_eq!(base_username("app_clone"), "app");
        assert_eq!(base_username("app"), "app");
    }

    #[test]
    fn a_pending_version_pointing_elsewhere_is_refused() {
        let base = serde_json::json!({"engine": "postgres", "host": "db", "username": "app", "password": "p"});
        let current = secret(base.clone());
        for (field, value) in [
            ("host", serde_json::json!("evil.example")),
            ("port", serde_json::json!(6543)),
            ("username", serde_json::json!("postgres")),
            ("masterarn", serde_json::json!("arn:master")),
        ] {
            let mut pending = base.clone();
            pending[field] = value;
            let err = check_consistent(&current, &secret(pending), "s")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
        check_consistent(&current, &secret(base.clone()), "s").unwrap();

        let mut alternating = base.clone();
        alternating["masterarn"] = serde_json::json!("arn:master");
        let current = secret(alternating.clone());
        let mut clone = alternating.clone();
        clone["username"] = serde_json::json!("app_clone");
        check_consistent(&current, &secret(clone), "s").unwrap();
        let mut other = alternating;
        other["username"] = serde_json::json!("other_clone");
        assert!(check_consistent(&current, &secret(other), "s").is_err());
    }

    #[test]
    fn only_the_alternate_of_the_current_user_and_never_the_master_is_targeted() {
        let user = |name: &str| {
            secret(
                serde_json::json!({"engine": "postgres", "host": "db", "username": name, "password": "p", "masterarn": "arn:m"}),
            )
        };
        check_alternate_names("s", &user("app"), &user("app_clone"), "admin").unwrap();
        check_alternate_names("s", &user("app_clone"), &user("app"), "admin").unwrap();
        for (current, pending, needle) in [
            ("app", "app", "exactly the alternate"),
            ("app", "other_clone", "exactly the alternate"),
            ("admin_clone", "admin", "is the master user"),
            ("admin", "admin_clone", "is the master user"),
        ] {
            let err = check_alternate_names("s", &user(current), &user(pending), "admin")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{current} -> {pending}: {err}");
        }
    }
}
