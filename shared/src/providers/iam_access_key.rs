//! IAM user access keys, rotated dual-phase.
//!
//! IAM allows two access keys per user. After a rotation the user holds the AWSCURRENT key
//! (Active) and the AWSPREVIOUS key (Inactive: still valid, so that applications that have not
//! reloaded the secret keep working). The next rotation revokes the AWSPREVIOUS key, which after
//! it will be neither AWSCURRENT nor AWSPREVIOUS: createSecret deletes every key of the user but
//! the AWSCURRENT one (that frees IAM's second slot), then creates the new key.
//!
//! Before deleting a key, createSecret asks IAM when it was last used. A use after the previous
//! rotation finished means something still uses the inactive key: createSecret warns (naming
//! the key id, never the secret) in its log and report, or, in strict mode, refuses to revoke
//! and fails without changing anything.

use std::time::{Duration, Instant};

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::iam_secret::{IamSecret, PROVIDER};
use super::{ProviderResult, StepContext};
use crate::error::{Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{AWSCURRENT, AWSPENDING};

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
        message: crate::aws_error::message(&err),
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

/// Whether an ARN from STS GetCallerIdentity is IAM user `user` (any path, any account).
pub fn arn_is_user(arn: &str, user: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", _, resource] => {
            resource.starts_with("user/") && resource.rsplit('/').next() == Some(user)
        }
        _ => false,
    }
}

/// createSecret: revokes the keys that are not AWSCURRENT's, then creates the new key.
pub async fn create(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
) -> Result<ProviderResult<SecretString>> {
    let arn = &ctx.secret.arn;
    let current = IamSecret::parse(fields, arn, AWSCURRENT)?;
    let user = current.user_name.as_str();
    let iam = aws_sdk_iam::Client::new(ctx.aws);
    let keys: Vec<String> = iam
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| iam_error("ListAccessKeys", user, e))?
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_owned))
        .collect();
    if !keys.contains(&current.access_key_id) {
        return Err(RotationError::invalid_secret(
            arn,
            AWSCURRENT,
            format!(
                "access key {} is not a key of IAM user {user:?} (deleted outside rotation, or the wrong user); refusing to rotate",
                current.access_key_id
            ),
        ));
    }
    let revoke: Vec<&String> = keys
        .iter()
        .filter(|k| **k != current.access_key_id)
        .collect();
    let since = ctx.secrets_manager.created_date(arn, AWSCURRENT);
    let strict = current
        .strict_revocation
        .unwrap_or(ctx.config.iam_strict_revocation);
    let mut in_use = Vec::new();
    for key_id in &revoke {
        let last_used = iam
            .get_access_key_last_used()
            .access_key_id(key_id.as_str())
            .send()
            .await
            .map_err(|e| iam_error("GetAccessKeyLastUsed", user, e))?
            .access_key_last_used()
            .and_then(|u| u.last_used_date().copied());
        if let Some(used) = last_used.filter(|used| used_after(used, since.as_ref())) {
            in_use.push((key_id.as_str(), used));
        }
    }
    let since_text = since
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), format_time);
    if let (true, Some((key_id, used))) = (strict, in_use.first()) {
        return Err(RotationError::RevocationRefused {
            user: user.to_owned(),
            key_id: (*key_id).to_owned(),
            last_used: format_time(used),
            since: since_text,
        });
    }
    for (key_id, used) in &in_use {
        ctx.warn(format!(
            "revoking access key {key_id} of IAM user {user:?} although it was last used at {}, after the previous rotation finished ({since_text}): something still uses the inactive key",
            format_time(used)
        ));
    }
    for key_id in &revoke {
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

/// The ARN STS sees for a request signed with `secret`'s access key.
async fn caller_arn(ctx: &StepContext<'_>, secret: &IamSecret) -> Result<String, String> {
    let credentials = aws_sdk_sts::config::Credentials::new(
        secret.access_key_id.as_str(),
        secret.secret_access_key.expose_secret(),
        None,
        None,
        "rotation-pending-access-key",
    );
    let config = aws_sdk_sts::config::Builder::from(ctx.aws)
        .credentials_provider(credentials)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| crate::aws_error::message(&e))?;
    out.arn()
        .map(str::to_owned)
        .ok_or_else(|| "GetCallerIdentity returned no ARN".to_owned())
}

/// Checks that the pending key authenticates as the secret's user.
async fn check_pending(ctx: &StepContext<'_>, pending: &IamSecret) -> Result<(), (bool, String)> {
    match caller_arn(ctx, pending).await {
        Ok(arn) if arn_is_user(&arn, &pending.user_name) => Ok(()),
        Ok(arn) => Err((
            false,
            format!(
                "access key {} authenticates as {arn}, not as IAM user {:?}",
                pending.access_key_id, pending.user_name
            ),
        )),
        Err(message) => Err((
            true,
            format!(
                "STS GetCallerIdentity with access key {} failed: {message}",
                pending.access_key_id
            ),
        )),
    }
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
    let bound = ctx.config.iam_propagation_timeout;
    let deadline = Instant::now() + bound;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match check_pending(ctx, &pending).await {
            Ok(()) => break,
            Err((true, _)) if Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err((retryable, message)) => {
                return Err(RotationError::TestFailed(if retryable {
                    format!("not accepted within {} s: {message}", bound.as_secs())
                } else {
                    message
                }))
            }
        }
    }
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: Outcome::Done,
    })
}

/// testSecret: STS GetCallerIdentity signed with the pending key names the secret's user.
pub async fn test(ctx: &StepContext<'_>, fields: Map<String, Value>) -> Result<ProviderResult<()>> {
    let pending = IamSecret::parse(fields, &ctx.secret.arn, AWSPENDING)?;
    check_pending(ctx, &pending)
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
    fn user_arns_match_by_name_whatever_the_path() {
        assert!(arn_is_user("arn:aws:iam::123456789012:user/ci", "ci"));
        assert!(arn_is_user(
            "arn:aws-cn:iam::123456789012:user/team/a/ci",
            "ci"
        ));
        assert!(!arn_is_user("arn:aws:iam::123456789012:user/ci2", "ci"));
        assert!(!arn_is_user("arn:aws:sts::123456789012:user/moto", "moto"));
        assert!(!arn_is_user("arn:aws:iam::123456789012:role/ci", "ci"));
        assert!(!arn_is_user(
            "arn:aws:sts::123456789012:assumed-role/ci/x",
            "x"
        ));
        assert!(!arn_is_user("ci", "ci"));
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
