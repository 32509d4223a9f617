//! IAM user access keys, rotated dual-phase.
//!
//! IAM allows two access keys per user. After a rotation the user holds the AWSCURRENT key and
//! the AWSPREVIOUS key (both Active in IAM: the previous one stays valid, so that applications
//! that have not reloaded the secret keep working). The next rotation revokes the AWSPREVIOUS
//! key, then creates the new one.
//!
//! The secret's value comes from whoever may write the secret, so createSecret proves it before
//! it creates or deletes a key: the AWSCURRENT key must be one of the user's keys and must
//! authenticate (STS GetCallerIdentity signed with it) as exactly that IAM user, in the account
//! the function manages. It deletes only the key the AWSPREVIOUS version records, for the same
//! user, and only when that key too authenticates as the user (or IAM shows it Inactive). Any
//! other key of the user is one this secret did not create: it is reported (a warning naming
//! the key id) and never deleted; when it leaves no free slot for the new key, createSecret
//! fails, naming it, before changing anything.
//!
//! Before deleting a key, createSecret asks IAM when it was last used. A use after the previous
//! rotation finished means something still uses the old key: the in-use policy decides
//! ([`super::sessions`]: the secret's tag `rotation-in-use`, at least `refuse` in strict mode).
//! createSecret warns (naming the key id, never the secret) in its log, report, metric and
//! outcome event, or, under `refuse` (and `wait`: the last use never moves back, so there is
//! nothing to wait for), refuses to revoke and fails without changing anything, unless the
//! secret carries the compromise marker
//! ([`crate::compromise_marker`]). During a compromise response, each key deletion also attaches
//! an inline policy to the user that denies the session tokens issued before it
//! ([`older_sessions_denied`]), so that credentials derived from a leaked key die with it.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::iam_secret::{IamSecret, PROVIDER};
use super::sessions::{self, Decision, Policy, Sessions};
use super::{ProviderResult, StepContext};
use crate::error::{Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// The strategy name in reports.
pub const STRATEGY: &str = "dual-phase";
/// First pause while waiting for IAM to accept a new key; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between two checks of a new key.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

fn iam_error<E, R>(operation: &'static str, user: &str, err: SdkError<E, R>) -> RotationError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RotationError::Iam {
        operation,
        user: user.to_owned(),
        message: rotation_keyring::aws_error::message(&err),
    }
}

fn format_time(time: &DateTime) -> String {
    time.fmt(Format::DateTime)
        .unwrap_or_else(|_| time.secs().to_string())
}

/// Whether a key last used at `used` was used after `since` (the previous rotation's end), to
/// the second: IAM and Secrets Manager do not keep finer times alike. Unknown `since`: any use
/// counts.
pub fn used_after(used: &DateTime, since: Option<&DateTime>) -> bool {
    since.is_none_or(|since| used.secs() > since.secs())
}

/// IAM's limit on access keys per user (not adjustable).
pub const KEYS_PER_USER: usize = 2;

/// The account and user name of an IAM user ARN as STS GetCallerIdentity returns it
/// (`arn:PARTITION:iam::ACCOUNT:user/PATH/NAME`), or None for any other ARN.
pub fn user_of_arn(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource] if !account.is_empty() => {
            let name = resource.strip_prefix("user/")?.rsplit('/').next()?;
            (!name.is_empty()).then_some((*account, name))
        }
        _ => None,
    }
}

/// Whether an ARN from STS GetCallerIdentity is IAM user `user` (any path) of `account`.
pub fn arn_is_user(arn: &str, account: &str, user: &str) -> bool {
    user_of_arn(arn) == Some((account, user))
}

/// One access key of the user, as ListAccessKeys shows it.
#[derive(Debug, Clone)]
struct KeyOnUser {
    id: String,
    active: bool,
}

async fn list_keys(iam: &aws_sdk_iam::Client, user: &str) -> Result<Vec<KeyOnUser>> {
    Ok(iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error("ListAccessKeys", user, e))?
        .access_key_metadata()
        .iter()
        .filter_map(|k| {
            Some(KeyOnUser {
                id: k.access_key_id()?.to_owned(),
                active: k.status() != Some(&aws_sdk_iam::types::StatusType::Inactive),
            })
        })
        .collect())
}

/// The account whose IAM users the function manages: the account of its own credentials.
async fn own_account(ctx: &StepContext<'_>, user: &str) -> Result<String> {
    let out = aws_sdk_sts::Client::new(ctx.aws)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| RotationError::Iam {
            operation: "sts:GetCallerIdentity (the function's own account)",
            user: user.to_owned(),
            message: rotation_keyring::aws_error::message(&e),
        })?;
    out.account()
        .map(str::to_owned)
        .ok_or_else(|| RotationError::Iam {
            operation: "sts:GetCallerIdentity (the function's own account)",
            user: user.to_owned(),
            message: "the answer names no account".into(),
        })
}

/// Whether the key `secret` holds authenticates as its user of `account`: Ok, or why not.
async fn authenticates(
    ctx: &StepContext<'_>,
    secret: &IamSecret,
    account: &str,
) -> Result<(), (bool, String)> {
    match caller_arn(ctx, secret).await {
        Ok(arn) if arn_is_user(&arn, account, &secret.user_name) => Ok(()),
        Ok(arn) => Err((
            false,
            format!(
                "access key {} authenticates as {arn}, not as IAM user {:?} of account {account}",
                secret.access_key_id, secret.user_name
            ),
        )),
        Err(message) => Err((
            true,
            format!(
                "STS GetCallerIdentity with access key {} failed: {message}",
                secret.access_key_id
            ),
        )),
    }
}

/// The key the AWSPREVIOUS version records for the same user, when it is still one of the
/// user's keys and not AWSCURRENT's: the only key a rotation may delete.
async fn recorded_previous(
    ctx: &StepContext<'_>,
    current: &IamSecret,
) -> Result<Option<IamSecret>> {
    let arn = &ctx.secret.arn;
    let Some(raw) = ctx
        .secrets_manager
        .get_value(arn, None, AWSPREVIOUS)
        .await?
    else {
        return Ok(None);
    };
    let previous = super::parse_object(&raw, arn, AWSPREVIOUS)
        .and_then(|fields| IamSecret::parse(fields, arn, AWSPREVIOUS));
    match previous {
        Ok(previous)
            if previous.user_name == current.user_name
                && previous.access_key_id != current.access_key_id =>
        {
            Ok(Some(previous))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            ctx.warn(format!(
                "the AWSPREVIOUS version records no access key this rotation may revoke: {e}"
            ));
            Ok(None)
        }
    }
}

/// createSecret: proves the AWSCURRENT key, revokes the key AWSPREVIOUS records (never another),
/// then creates the new key.
pub async fn create(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
) -> Result<ProviderResult<SecretString>> {
    let arn = &ctx.secret.arn;
    let current = IamSecret::parse(fields, arn, AWSCURRENT)?;
    let user = current.user_name.as_str();
    let iam = aws_sdk_iam::Client::new(ctx.aws);
    let keys = list_keys(&iam, user).await?;
    if !keys.iter().any(|k| k.id == current.access_key_id) {
        return Err(RotationError::invalid_secret(
            arn,
            AWSCURRENT,
            format!(
                "access key {} is not a key of IAM user {user:?} (deleted outside rotation, or the wrong user); refusing to rotate",
                current.access_key_id
            ),
        ));
    }
    let account = own_account(ctx, user).await?;
    authenticates(ctx, &current, &account)
        .await
        .map_err(|(_, why)| {
            RotationError::invalid_secret(
                arn,
                AWSCURRENT,
                format!(
                    "the AWSCURRENT key must authenticate as the IAM user the secret names before any key is created or deleted; refusing to rotate: {why}"
                ),
            )
        })?;
    let previous = recorded_previous(ctx, &current).await?.and_then(|p| {
        keys.iter()
            .find(|k| k.id == p.access_key_id)
            .map(|k| (p, k.active))
    });
    let since = ctx.secrets_manager.created_date(arn, AWSCURRENT);
    // One policy with the databases' in-use check ([`sessions`]): the secret's tag, at least
    // `refuse` when strict revocation is on (`strictRevocation`, else the configuration).
    let strict = current
        .strict_revocation
        .unwrap_or(ctx.config.iam_strict_revocation);
    let policy = Policy::of(ctx.secret)?.max(if strict { Policy::Refuse } else { Policy::Warn });
    let since_text = since
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), format_time);
    // The last use is read before the proof below, which is itself a use of the key.
    if let Some((previous, _)) = &previous {
        let key_id = previous.access_key_id.as_str();
        let last_used = iam
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| iam_error("GetAccessKeyLastUsed", user, e))?
            .access_key_last_used()
            .and_then(|u| u.last_used_date().copied());
        ctx.record_sessions(|facts| facts.policy = policy);
        if let Some(used) = last_used.filter(|used| used_after(used, since.as_ref())) {
            ctx.record_sessions(|facts| {
                facts.in_use = Some(Sessions {
                    user: format!("{user} (access key {key_id})"),
                    count: 1,
                    last_used: Some(format_time(&used)),
                    ..Sessions::default()
                });
            });
            let marker = ctx.secret.tags.get(crate::compromise_marker::TAG);
            // IAM tells only the last use, which never moves back: waiting cannot see the key
            // fall idle, so `wait` refuses at once.
            match sessions::decide(policy, marker.is_some(), 1, false) {
                Decision::Refuse => {
                    return Err(RotationError::RevocationRefused {
                        user: user.to_owned(),
                        key_id: key_id.to_owned(),
                        last_used: format_time(&used),
                        since: since_text,
                    })
                }
                _ => {
                    if let (Some(marker), true) = (marker, policy != Policy::Warn) {
                        ctx.warn(format!(
                            "strict revocation does not hold during a compromise response (tag {} = {marker:?} on the secret): the key in use may be the leaked one",
                            crate::compromise_marker::TAG
                        ));
                    }
                }
            }
            ctx.warn(format!(
                "revoking access key {key_id} of IAM user {user:?} although it was last used at {}, after the previous rotation finished ({since_text}): something still uses the inactive key",
                format_time(&used)
            ));
        }
    }
    let revoke = match &previous {
        None => None,
        // An Inactive key authenticates nothing (an administrator may have deactivated a leaked
        // one), so it needs no proof.
        Some((previous, false)) => Some(previous.access_key_id.clone()),
        Some((previous, true)) => match authenticates(ctx, previous, &account).await {
            Ok(()) => Some(previous.access_key_id.clone()),
            Err((_, why)) => {
                ctx.warn(format!(
                    "the AWSPREVIOUS version records access key {} of IAM user {user:?}, but the key does not authenticate as the user, so this secret does not own it and it is not deleted: {why}",
                    previous.access_key_id
                ));
                None
            }
        },
    };
    let unknown: Vec<&str> = keys
        .iter()
        .map(|k| k.id.as_str())
        .filter(|id| *id != current.access_key_id && Some(*id) != revoke.as_deref())
        .collect();
    for key_id in &unknown {
        ctx.warn(format!(
            "IAM user {user:?} holds access key {key_id}, which this secret did not create (neither its AWSCURRENT nor its AWSPREVIOUS version owns it): never deleted by rotation"
        ));
    }
    if keys.len() - usize::from(revoke.is_some()) >= KEYS_PER_USER {
        return Err(RotationError::Iam {
            operation: "CreateAccessKey",
            user: user.to_owned(),
            message: format!(
                "IAM allows {KEYS_PER_USER} access keys per user, and the user holds the AWSCURRENT key and {}, which this secret did not create; rotation deletes only the key its AWSPREVIOUS version owns, so nothing was changed: delete or account for {} and rotate again",
                unknown.join(", "),
                if unknown.len() == 1 { "that key" } else { "those keys" }
            ),
        });
    }
    if let Some(key_id) = &revoke {
        match iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id.as_str())
            .send()
            .await
        {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_entity_exception() => {}
            Err(e) => return Err(iam_error("DeleteAccessKey", user, e)),
        }
        if crate::compromise_marker::active(ctx.secret) {
            deny_older_sessions(ctx, &iam, user, key_id, SystemTime::now()).await?;
        }
    }
    let created = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error("CreateAccessKey", user, e))?;
    let key = created.access_key().ok_or_else(|| RotationError::Iam {
        operation: "CreateAccessKey",
        user: user.to_owned(),
        message: "the answer holds no access key".into(),
    })?;
    let secret_access_key = SecretString::from(key.secret_access_key().to_owned());
    tracing::info!(
        secret_arn = %arn,
        user,
        revoked = ?revoke,
        created = key.access_key_id(),
        "rotated IAM access keys"
    );
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: current.next_version(key.access_key_id(), &secret_access_key),
    })
}

/// The name of the inline user policy a compromise response attaches ([`older_sessions_denied`]).
pub const OLDER_SESSIONS_POLICY: &str = "rotation-deny-older-sessions";

/// The policy that denies every request signed with temporary credentials issued before
/// `cutoff` (`aws:TokenIssueTime`, as in AWS's documented revocation of older sessions): session
/// tokens a leaked key obtained (GetSessionToken, GetFederationToken) stop working, while
/// requests signed with the user's long-term keys carry no token issue time and are not
/// affected. The user's session tokens last at most 36 hours, so the policy can be deleted
/// after that; keeping it does no harm.
pub fn older_sessions_denied(cutoff: SystemTime) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenySessionsIssuedBeforeTheCompromiseRotation",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "DateLessThan": {"aws:TokenIssueTime": crate::compromise_marker::value(cutoff)}
            }
        }]
    })
    .to_string()
}

/// During a compromise response, after the key `revoked` was deleted: attaches
/// [`OLDER_SESSIONS_POLICY`] to `user` (PutUserPolicy replaces an earlier one: a retry only moves
/// the cutoff later) and reports it.
async fn deny_older_sessions(
    ctx: &StepContext<'_>,
    iam: &aws_sdk_iam::Client,
    user: &str,
    revoked: &str,
    cutoff: SystemTime,
) -> Result<()> {
    iam.put_user_policy()
        .user_name(user)
        .policy_name(OLDER_SESSIONS_POLICY)
        .policy_document(older_sessions_denied(cutoff))
        .send()
        .await
        .map_err(|e| iam_error("PutUserPolicy", user, e))?;
    let at = crate::compromise_marker::value(cutoff);
    tracing::info!(
        secret_arn = %ctx.secret.arn,
        user,
        revoked,
        sessions_issued_before = %at,
        "compromise response: denied the IAM user's sessions issued before the leaked key was deleted"
    );
    ctx.warn(format!(
        "compromise response: access key {revoked} deleted and IAM user {user:?} given the inline policy {OLDER_SESSIONS_POLICY}, which denies every session token issued before {at} (aws:TokenIssueTime)"
    ));
    Ok(())
}

/// The ARN STS sees for a request signed with `secret`'s access key.
async fn caller_arn(ctx: &StepContext<'_>, secret: &IamSecret) -> Result<String, String> {
    let credentials = aws_sdk_sts::config::Credentials::new(
        secret.access_key_id.as_str(),
        secret.secret_access_key.expose_secret(),
        None,
        None,
        "rotation-secret-access-key",
    );
    let config = aws_sdk_sts::config::Builder::from(ctx.aws)
        .credentials_provider(credentials)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| rotation_keyring::aws_error::message(&e))?;
    out.arn()
        .map(str::to_owned)
        .ok_or_else(|| "GetCallerIdentity returned no ARN".to_owned())
}

fn parse_pair(
    ctx: &StepContext<'_>,
    current: Map<String, Value>,
    pending: Map<String, Value>,
) -> Result<IamSecret> {
    let arn = &ctx.secret.arn;
    let current = IamSecret::parse(current, arn, AWSCURRENT)?;
    let pending = IamSecret::parse(pending, arn, AWSPENDING)?;
    if pending.user_name != current.user_name {
        return Err(RotationError::invalid_secret(
            arn,
            AWSPENDING,
            "field `UserName` differs from the AWSCURRENT version; refusing to rotate",
        ));
    }
    if pending.access_key_id == current.access_key_id {
        return Err(RotationError::invalid_secret(
            arn,
            AWSPENDING,
            "field `AccessKeyId` is the AWSCURRENT version's key, not a new one",
        ));
    }
    Ok(pending)
}

/// setSecret: nothing to set (IAM made the key live at createSecret); waits, with backoff and
/// within the configured bound, until STS accepts the new key as the user.
pub async fn set(
    ctx: &StepContext<'_>,
    current: Map<String, Value>,
    pending: Map<String, Value>,
) -> Result<ProviderResult<Outcome>> {
    let pending = parse_pair(ctx, current, pending)?;
    let account = own_account(ctx, &pending.user_name).await?;
    let bound = ctx.config.iam_propagation_timeout;
    let started = Instant::now();
    let deadline = ctx.wait_end(bound);
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 1u32;
    loop {
        match authenticates(ctx, &pending, &account).await {
            Ok(()) => break,
            Err((true, _)) if Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempts += 1;
            }
            Err((retryable, message)) => {
                return Err(RotationError::TestFailed(if retryable {
                    format!(
                        "not accepted after {} ms and {attempts} attempts (bounded by {} = {} s and the invocation's deadline): {message}",
                        started.elapsed().as_millis(),
                        crate::config::ENV_IAM_PROPAGATION_TIMEOUT,
                        bound.as_secs()
                    )
                } else {
                    message
                }))
            }
        }
    }
    tracing::info!(
        access_key_id = %pending.access_key_id,
        attempts,
        waited_ms = started.elapsed().as_millis(),
        "STS accepts the new access key"
    );
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: Outcome::Done,
    })
}

/// testSecret: STS GetCallerIdentity signed with the key of the version labelled `stage`
/// (AWSPENDING in the rotation) names the secret's user, in the function's account.
pub async fn test(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
    stage: &str,
) -> Result<ProviderResult<()>> {
    let pending = IamSecret::parse(fields, &ctx.secret.arn, stage)?;
    let account = own_account(ctx, &pending.user_name).await?;
    authenticates(ctx, &pending, &account)
        .await
        .map_err(|(_, message)| RotationError::TestFailed(message))?;
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: (),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_arns_match_by_account_and_name_whatever_the_path() {
        let account = "123456789012";
        assert!(arn_is_user(
            "arn:aws:iam::123456789012:user/ci",
            account,
            "ci"
        ));
        assert!(arn_is_user(
            "arn:aws-cn:iam::123456789012:user/team/a/ci",
            account,
            "ci"
        ));
        assert_eq!(
            user_of_arn("arn:aws:iam::123456789012:user/team/ci"),
            Some((account, "ci"))
        );
        // The same user name in another account is another user.
        assert!(!arn_is_user(
            "arn:aws:iam::210987654321:user/ci",
            account,
            "ci"
        ));
        assert!(!arn_is_user("arn:aws:iam:::user/ci", "", "ci"));
        assert!(!arn_is_user(
            "arn:aws:iam::123456789012:user/ci2",
            account,
            "ci"
        ));
        assert!(!arn_is_user("arn:aws:iam::123456789012:user/", account, ""));
        assert!(!arn_is_user(
            "arn:aws:sts::123456789012:user/moto",
            account,
            "moto"
        ));
        assert!(!arn_is_user(
            "arn:aws:iam::123456789012:role/ci",
            account,
            "ci"
        ));
        assert!(!arn_is_user(
            "arn:aws:sts::123456789012:assumed-role/ci/x",
            account,
            "x"
        ));
        assert!(!arn_is_user(
            "arn:aws:iam::123456789012:root",
            account,
            "root"
        ));
        assert!(!arn_is_user("ci", account, "ci"));
    }

    #[test]
    fn use_after_the_previous_rotation_counts_to_the_second() {
        let since = DateTime::from_secs(1_000);
        assert!(!used_after(&DateTime::from_secs(999), Some(&since)));
        assert!(!used_after(
            &DateTime::from_fractional_secs(1_000, 0.9),
            Some(&since)
        ));
        assert!(used_after(&DateTime::from_secs(1_001), Some(&since)));
        assert!(used_after(&DateTime::from_secs(1), None));
    }
}
