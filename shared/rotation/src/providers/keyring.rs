//! The encryption keyring (crate `rotation-keyring`): each rotation adds a fresh active key,
//! demotes the previous one to decrypt-only, and destroys the keys past retention.
//!
//! The keyring lives in the secret itself, so setSecret has nothing to set: it checks that the
//! pending keyring is exactly one rotation of the current one. testSecret encrypts and decrypts
//! a probe with every key of the pending keyring.

use std::time::SystemTime;

use rotation_keyring::{Keyring, KeyringError, PROVIDER};
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::{ProviderResult, StepContext};
use crate::error::{Result, RotationError};
use crate::report::Outcome;
use crate::secrets_manager::{AWSCURRENT, AWSPENDING};

/// The strategy name in reports.
pub const STRATEGY: &str = "active-and-decrypt-only";

fn invalid(ctx: &StepContext<'_>, version: &str, e: KeyringError) -> RotationError {
    match e {
        KeyringError::Invalid(problem) => {
            RotationError::invalid_secret(&ctx.secret.arn, version, problem)
        }
        other => RotationError::invalid_secret(&ctx.secret.arn, version, other.to_string()),
    }
}

fn parse(ctx: &StepContext<'_>, fields: Map<String, Value>, version: &str) -> Result<Keyring> {
    Keyring::from_object(fields).map_err(|e| invalid(ctx, version, e))
}

/// createSecret: the current keyring rotated now.
pub async fn create(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
) -> Result<ProviderResult<SecretString>> {
    let current = parse(ctx, fields, AWSCURRENT)?;
    let rotated = current
        .rotate(SystemTime::now())
        .map_err(|e| invalid(ctx, AWSCURRENT, e))?;
    let destroyed: Vec<String> = rotated.destroyed.iter().map(|id| id.to_string()).collect();
    tracing::info!(
        secret_arn = %ctx.secret.arn,
        added = %rotated.added,
        destroyed = ?destroyed,
        keys = rotated.keyring.keys().len(),
        "rotated the keyring"
    );
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: rotated.keyring.to_json(),
    })
}

/// setSecret: nothing to set; refuses a pending keyring that is not one rotation of the
/// current keyring.
pub async fn set(
    ctx: &StepContext<'_>,
    current: Map<String, Value>,
    pending: Map<String, Value>,
) -> Result<ProviderResult<Outcome>> {
    let current = parse(ctx, current, AWSCURRENT)?;
    let pending = parse(ctx, pending, AWSPENDING)?;
    pending
        .check_successor_of(&current)
        .map_err(|e| invalid(ctx, AWSPENDING, e))?;
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: Outcome::Done,
    })
}

/// testSecret: every key of the keyring labelled `stage` (AWSPENDING in the rotation) encrypts
/// a probe that then decrypts through the key id in its header.
pub async fn test(
    ctx: &StepContext<'_>,
    fields: Map<String, Value>,
    stage: &str,
) -> Result<ProviderResult<()>> {
    let pending = parse(ctx, fields, stage)?;
    let tested = pending
        .self_test()
        .map_err(|e| RotationError::TestFailed(format!("keyring: {e}")))?;
    tracing::debug!(secret_arn = %ctx.secret.arn, keys = tested, "every key of the pending keyring works");
    Ok(ProviderResult {
        provider: PROVIDER,
        strategy: STRATEGY,
        value: (),
    })
}
