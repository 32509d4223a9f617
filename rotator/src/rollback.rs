//! `rollback`: AWSCURRENT back to the AWSPREVIOUS version, where that version's credential is
//! proved to work now, and AWSPREVIOUS to the version that was AWSCURRENT.
//!
//! What "still valid" means comes from the secret's strategy ([`rotation::providers::profile`])
//! and is then proved, never assumed:
//!
//! - single-phase strategies (a single PostgreSQL or MariaDB user, an RDS master): the rotation
//!   replaced the one password, so AWSPREVIOUS cannot log in: refused, rotate again instead;
//! - dual-phase strategies (alternating users, a MySQL user keeping its retained password, IAM
//!   access keys): the provider's own testSecret runs on the AWSPREVIOUS version, in this
//!   process, with the operator's credentials (a database login and query, STS signed with the
//!   key); only when it passes do the labels move;
//! - a keyring: moving AWSCURRENT back would take the newest key out of the keyring consumers
//!   read, and what it encrypted since would no longer decrypt; so the labels move only when
//!   the AWSPREVIOUS keyring holds every key of the current one that is still within retention
//!   (after a normal rotation it never does: refused, with the key named).
//!
//! A rotation in progress is refused. The move is one UpdateSecretVersionStage of AWSCURRENT
//! (MoveToVersionId the previous version, RemoveFromVersionId the current one): AWSCURRENT is on
//! exactly one version at every moment, and Secrets Manager moves AWSPREVIOUS to the version
//! AWSCURRENT left. Running it again rolls forward again. The rollback is published as an
//! outcome event ([`rotation::telemetry::DETAIL_TYPE_ROLLED_BACK`]) when a bus is configured.

use std::time::SystemTime;

use rotation::protocol::Engine;
use rotation::secrets_manager::{
    SecretMetadata, SecretsManager, AWSCURRENT, AWSPENDING, AWSPREVIOUS,
};
use rotation::RotationError;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::diagnose::{CliError, Context};
use crate::rotate::credential_name;

/// What a rollback did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOutcome {
    /// The secret's ARN.
    pub secret_arn: String,
    /// The secret's name.
    pub secret_name: String,
    /// The provider, e.g. `postgres`.
    pub provider: String,
    /// The strategy, e.g. `alternating-users`.
    pub strategy: String,
    /// The version that was AWSCURRENT (AWSPREVIOUS after the rollback).
    pub from_version: String,
    /// The version that was AWSPREVIOUS (AWSCURRENT after the rollback).
    pub to_version: String,
    /// The credential now current: user, access key id or active key id (never a secret).
    pub credential: String,
    /// How the AWSPREVIOUS credential was proved to work.
    pub proof: String,
    /// Nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// Whether the outcome event was published, or why not.
    pub event: String,
}

/// Rolls `secret` back (see the module's documentation), or with `dry_run` proves and says
/// what it would do. `engine` carries the operator's AWS configuration, the functions'
/// settings read from this environment (database CA, host overrides) and the event bus.
pub async fn rollback(
    engine: &Engine,
    context: &Context,
    secret: &str,
    dry_run: bool,
) -> Result<RollbackOutcome, CliError> {
    let sm = SecretsManager::new(engine.client.clone());
    let metadata = sm
        .describe(secret)
        .await
        .map_err(|e| rotation_error(context, secret, &e))?;
    let refuse = |reason: String| CliError::RollbackRefused {
        secret: metadata.name.clone(),
        reason,
    };
    let current = metadata
        .version_with(AWSCURRENT)
        .ok_or_else(|| refuse("no version is AWSCURRENT".into()))?
        .to_owned();
    if let Some(pending) = metadata.version_with(AWSPENDING).filter(|p| *p != current) {
        return Err(CliError::InProgress {
            secret: metadata.name.clone(),
            pending: pending.to_owned(),
            current,
        });
    }
    let previous = metadata
        .version_with(AWSPREVIOUS)
        .ok_or_else(|| {
            refuse("no version is AWSPREVIOUS: the secret was never rotated, so there is nothing to roll back to".into())
        })?
        .to_owned();
    let arn = metadata.arn.clone();
    let current_value = sm
        .require_value(&arn, Some(&current), AWSCURRENT)
        .await
        .map_err(|e| rotation_error(context, secret, &e))?;
    let previous_value = sm
        .require_value(&arn, Some(&previous), AWSPREVIOUS)
        .await
        .map_err(|e| rotation_error(context, secret, &e))?;
    let profile = rotation::providers::profile(&previous_value, &arn, AWSPREVIOUS)
        .map_err(|e| refuse(e.to_string()))?;
    let current_profile = rotation::providers::profile(&current_value, &arn, AWSCURRENT)
        .map_err(|e| refuse(e.to_string()))?;
    if (profile.provider, profile.strategy) != (current_profile.provider, current_profile.strategy)
    {
        return Err(refuse(format!(
            "AWSPREVIOUS is a {} / {} secret but AWSCURRENT a {} / {} one: a rollback would change what the secret is",
            profile.provider, profile.strategy, current_profile.provider, current_profile.strategy
        )));
    }
    let credential = credential_name(profile.provider, previous_value.expose_secret());
    let proof = prove(
        engine,
        &metadata,
        &profile,
        &current_value,
        &previous_value,
        &credential,
    )
    .await
    .map_err(refuse)?;
    let mut outcome = RollbackOutcome {
        secret_arn: arn.clone(),
        secret_name: metadata.name.clone(),
        provider: profile.provider.to_owned(),
        strategy: profile.strategy.to_owned(),
        from_version: current.clone(),
        to_version: previous.clone(),
        credential,
        proof,
        dry_run,
        event: "not published (dry run)".to_owned(),
    };
    if dry_run {
        return Ok(outcome);
    }
    move_labels(&sm, &arn, &current, &previous)
        .await
        .map_err(|e| rotation_error(context, secret, &e))?;
    outcome.event = match &engine.publisher {
        None => format!(
            "not published: no event bus ({})",
            rotation::config::ENV_EVENT_BUS
        ),
        Some(publisher) => match publisher
            .publish_rollback(&outcome.secret_arn, &rollback_detail(&outcome))
            .await
        {
            Ok(()) => "published".to_owned(),
            Err(problem) => format!("not published: {problem}"),
        },
    };
    Ok(outcome)
}

/// AWSCURRENT from `current` to `previous` in one call (Secrets Manager moves AWSPREVIOUS to
/// the version AWSCURRENT leaves), then AWSPREVIOUS explicitly where an endpoint did not.
async fn move_labels(
    sm: &SecretsManager,
    arn: &str,
    current: &str,
    previous: &str,
) -> rotation::error::Result<()> {
    sm.move_stage(arn, AWSCURRENT, Some(previous), Some(current))
        .await?;
    let after = sm.describe(arn).await?;
    if after.version_with(AWSPREVIOUS) != Some(current) {
        sm.move_stage(
            arn,
            AWSPREVIOUS,
            Some(current),
            after.version_with(AWSPREVIOUS),
        )
        .await?;
    }
    Ok(())
}

/// Proves that the AWSPREVIOUS credential works now, or says why it cannot be rolled back to.
async fn prove(
    engine: &Engine,
    metadata: &SecretMetadata,
    profile: &rotation::providers::Profile,
    current: &SecretString,
    previous: &SecretString,
    credential: &str,
) -> Result<String, String> {
    if profile.provider == rotation_keyring::PROVIDER {
        return keyring_holds_every_live_key(current, previous);
    }
    if profile.rotations_to_retire < 2 {
        return Err(format!(
            "{} / {} is single-phase: the last rotation replaced the password of {credential}, so the AWSPREVIOUS password no longer logs in and moving the labels would make AWSCURRENT a credential that does not work. To replace the current credential, rotate again (`rotator rotate {}`)",
            profile.provider, profile.strategy, metadata.name
        ));
    }
    engine
        .test_version(metadata, previous, AWSPREVIOUS)
        .await
        .map_err(|e| {
            format!(
                "the AWSPREVIOUS credential ({credential}) does not work now, so it is not rolled back to: {e}"
            )
        })?;
    Ok(match profile.provider {
        rotation::providers::iam_secret::PROVIDER => {
            format!("{credential} authenticates as the secret's IAM user (STS GetCallerIdentity)")
        }
        _ => format!("{credential} logged in and ran the test query"),
    })
}

/// A keyring may go back to AWSPREVIOUS only if that keyring decrypts everything the current
/// one does: every key of the current keyring still within retention is in it, unchanged.
fn keyring_holds_every_live_key(
    current: &SecretString,
    previous: &SecretString,
) -> Result<String, String> {
    let parse = |value: &SecretString, stage: &str| {
        rotation_keyring::Keyring::parse(value.expose_secret()).map_err(|e| format!("{stage}: {e}"))
    };
    let current = parse(current, AWSCURRENT)?;
    let previous = parse(previous, AWSPREVIOUS)?;
    let missing = previous.missing_keys_of(&current, SystemTime::now());
    if missing.is_empty() {
        return Ok(
            "the AWSPREVIOUS keyring holds every key of the current one within retention".into(),
        );
    }
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    Err(format!(
        "the AWSPREVIOUS keyring lacks key(s) {} of the current keyring: consumers read AWSCURRENT only, so what was encrypted with them since the rotation would no longer decrypt. A keyring needs no rollback: the current keyring still decrypts everything the previous one did; to stop encrypting with the newest key, rotate again",
        names.join(", ")
    ))
}

/// The outcome event's `detail` (the schema is in docs/outcomes.md).
pub fn rollback_detail(outcome: &RollbackOutcome) -> serde_json::Value {
    serde_json::json!({
        "status": "rolled_back",
        "secretArn": outcome.secret_arn,
        "secretName": outcome.secret_name,
        "provider": outcome.provider,
        "strategy": outcome.strategy,
        "fromVersion": outcome.from_version,
        "toVersion": outcome.to_version,
        "credential": outcome.credential,
        "proof": outcome.proof,
        "by": "rotator rollback",
    })
}

/// The rollback's text for people.
pub fn render(outcome: &RollbackOutcome) -> String {
    let verb = if outcome.dry_run {
        "would roll back"
    } else {
        "rolled back"
    };
    format!(
        "{name}: {verb} ({provider} / {strategy})\n  AWSCURRENT:  {to} (was AWSPREVIOUS; {credential})\n  AWSPREVIOUS: {from} (was AWSCURRENT)\n  proof: {proof}\n  event: {event}\n",
        name = outcome.secret_name,
        provider = outcome.provider,
        strategy = outcome.strategy,
        to = outcome.to_version,
        from = outcome.from_version,
        credential = outcome.credential,
        proof = outcome.proof,
        event = outcome.event,
    )
}

fn rotation_error(context: &Context, secret: &str, e: &RotationError) -> CliError {
    match e {
        RotationError::SecretsManager { message, .. } => context.aws(secret, message),
        other => CliError::Other(format!("{secret}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_goes_back_only_to_a_keyring_that_decrypts_everything() {
        let empty = rotation_keyring::Keyring::parse(
            r#"{"provider":"keyring","retentionRotations":3,"keys":[]}"#,
        )
        .unwrap();
        let now = SystemTime::now();
        let first = empty.rotate(now).unwrap().keyring;
        let second = first.rotate(now).unwrap();
        let err =
            keyring_holds_every_live_key(&second.keyring.to_json(), &first.to_json()).unwrap_err();
        assert!(err.contains(&second.added.to_string()), "{err}");
        // Back to the newer keyring (a rollback rolled forward again) loses nothing.
        keyring_holds_every_live_key(&first.to_json(), &second.keyring.to_json()).unwrap();
    }

    #[test]
    fn the_event_names_both_versions_and_no_secret() {
        let outcome = RollbackOutcome {
            secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf".into(),
            secret_name: "app".into(),
            provider: "postgres".into(),
            strategy: "alternating-users".into(),
            from_version: "v2".into(),
            to_version: "v1".into(),
            credential: "user app".into(),
            proof: "user app logged in and ran the test query".into(),
            dry_run: false,
            event: String::new(),
        };
        let detail = rollback_detail(&outcome);
        assert_eq!(detail["fromVersion"], "v2");
        assert_eq!(detail["toVersion"], "v1");
        assert_eq!(detail["status"], "rolled_back");
        let text = render(&outcome);
        assert!(
            text.contains("AWSCURRENT:  v1 (was AWSPREVIOUS; user app)"),
            "{text}"
        );
    }
}
