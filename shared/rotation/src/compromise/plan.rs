//! Which secrets a compromise request selects, and what retiring their credentials takes.

use std::collections::BTreeSet;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_secretsmanager::Client;
use serde::Serialize;

use super::error::CompromiseError;
use super::request::CompromiseRequest;
use crate::error::RotationError;
use crate::mode::{Mode, MODE_TAG};
use crate::providers;
use crate::providers::rds::{TAG_PRIMARY_CLUSTER, TAG_PRIMARY_INSTANCE};

/// The provider of a [`SecretPlan`] for a master secret that RDS manages and rotates.
pub const RDS_MANAGED: &str = "rds-managed";
use crate::secrets_manager::{SecretsManager, AWSCURRENT};

/// How one secret's credentials are retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretPlan {
    /// The secret's ARN.
    pub secret_arn: String,
    /// The secret's name.
    pub secret_name: String,
    /// The mode that rotates it (and so how a rotation is started).
    #[serde(serialize_with = "serialize_mode")]
    pub mode: Mode,
    /// Its provider.
    pub provider: &'static str,
    /// Its provider's strategy.
    pub strategy: &'static str,
    /// Rotations in a row that retire every credential valid before the first one.
    pub rotations: u8,
}

fn serialize_mode<S: serde::Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode.as_str())
}

/// The secrets a request selects: those it names, and those carrying all its tags (found with
/// ListSecrets), each once, in a stable order.
pub async fn select(
    client: &Client,
    request: &CompromiseRequest,
) -> Result<Vec<String>, CompromiseError> {
    let mut selected: BTreeSet<String> = request.secret_ids.iter().cloned().collect();
    if let Some((first_key, _)) = request.tags.iter().next() {
        let mut next_token = None;
        loop {
            let out = client
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::TagKey)
                        .values(first_key)
                        .build(),
                )
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| {
                    CompromiseError::Rotation(RotationError::SecretsManager {
                        operation: "ListSecrets",
                        secret: format!("tags {:?}", request.tags),
                        message: DisplayErrorContext(e).to_string(),
                    })
                })?;
            for entry in out.secret_list() {
                let carries_all = request.tags.iter().all(|(key, value)| {
                    entry
                        .tags()
                        .iter()
                        .any(|t| t.key() == Some(key.as_str()) && t.value() == Some(value.as_str()))
                });
                if let (true, Some(arn)) = (carries_all, entry.arn()) {
                    selected.insert(arn.to_owned());
                }
            }
            next_token = out.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
    }
    if selected.is_empty() {
        return Err(CompromiseError::Request(format!(
            "no secret carries all the tags {:?}",
            request.tags
        )));
    }
    Ok(selected.into_iter().collect())
}

/// What retiring one secret's credentials takes: its mode (checked the way the functions check
/// it) and its provider's number of rotations, read from the current value (never logged).
pub async fn plan(sm: &SecretsManager, secret_id: &str) -> Result<SecretPlan, CompromiseError> {
    let metadata = sm.describe(secret_id).await?;
    // A master secret RDS manages (only username and password, tagged by RDS with its
    // instance or cluster): RDS rotates it when Secrets Manager's RotateSecret asks, and the
    // old password stops working then. Its value is not read.
    if metadata.tags.keys().any(|k| {
        k.eq_ignore_ascii_case(TAG_PRIMARY_INSTANCE) || k.eq_ignore_ascii_case(TAG_PRIMARY_CLUSTER)
    }) {
        return Ok(SecretPlan {
            secret_arn: metadata.arn,
            secret_name: metadata.name,
            mode: Mode::SecretsManager,
            provider: RDS_MANAGED,
            strategy: "managed-by-rds",
            rotations: 1,
        });
    }
    let mode = Mode::of(&metadata.tags, &metadata.arn)?;
    let not_rotatable = |problem: String| CompromiseError::NotRotatable {
        secret: metadata.arn.clone(),
        problem,
    };
    match (mode, metadata.rotation_enabled) {
        (Mode::SecretsManager, false) => {
            return Err(not_rotatable(format!(
                "Secrets Manager's rotation is not enabled; enable it, or tag the secret {MODE_TAG}=workflow"
            )))
        }
        (Mode::Workflow, true) => {
            return Err(not_rotatable(format!(
                "tagged {MODE_TAG}=workflow but Secrets Manager's rotation is also enabled; turn one of them off"
            )))
        }
        _ => {}
    }
    let current = sm.require_value(&metadata.arn, None, AWSCURRENT).await?;
    let profile = providers::profile(&current, &metadata.arn, AWSCURRENT)?;
    Ok(SecretPlan {
        secret_arn: metadata.arn,
        secret_name: metadata.name,
        mode,
        provider: profile.provider,
        strategy: profile.strategy,
        rotations: profile.rotations_to_retire,
    })
}
