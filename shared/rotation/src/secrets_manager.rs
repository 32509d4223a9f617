//! A thin Secrets Manager client for the rotation protocol: every call passes VersionStage,
//! wraps secret values in [`SecretString`] at once, and is counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::DateTime;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Result, RotationError};

/// Staging label of the version in use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// Staging label of the version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// Staging label of the version replaced by the last rotation.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// A secret's versions: version id to its staging labels, ordered by version id.
pub type Labels = BTreeMap<String, Vec<String>>;

/// What DescribeSecret tells the protocol about a secret.
#[derive(Debug, Clone)]
pub struct SecretMetadata {
    /// The secret's ARN.
    pub arn: String,
    /// The secret's name.
    pub name: String,
    /// Whether rotation is enabled.
    pub rotation_enabled: bool,
    /// Version id to staging labels.
    pub versions: Labels,
    /// The secret's tags.
    pub tags: HashMap<String, String>,
}

impl SecretMetadata {
    /// The staging labels of a version, or None when the version does not exist.
    pub fn stages_of(&self, version_id: &str) -> Option<&[String]> {
        self.versions.get(version_id).map(Vec::as_slice)
    }

    /// The version that carries `stage`, if any.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        version_with(&self.versions, stage)
    }
}

/// The labelled versions of a secret (DescribeSecret), each with its labels sorted; versions
/// without labels are left out. The error names the call and the secret, for an operator.
pub async fn labels(client: &Client, secret_id: &str) -> std::result::Result<Labels, String> {
    let out = client
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "DescribeSecret {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    Ok(out
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, stages)| !stages.is_empty())
        .map(|(id, mut stages)| {
            stages.sort();
            (id, stages)
        })
        .collect())
}

/// The version carrying `stage` among `labels`, if any.
pub fn version_with<'a>(labels: &'a Labels, stage: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(id, _)| id.as_str())
}

/// A Secrets Manager client that counts the API calls made through it, and remembers when each
/// version it read was created.
#[derive(Debug)]
pub struct SecretsManager {
    client: Client,
    calls: AtomicU32,
    created: Mutex<HashMap<(String, String), DateTime>>,
}

impl SecretsManager {
    /// Wraps an SDK client.
    pub fn new(client: Client) -> Self {
        SecretsManager {
            client,
            calls: AtomicU32::new(0),
            created: Mutex::new(HashMap::new()),
        }
    }

    /// API calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// When the version with `stage` of `secret_id` was created, if this client read it.
    pub fn created_date(&self, secret_id: &str, stage: &str) -> Option<DateTime> {
        self.created
            .lock()
            .ok()?
            .get(&(secret_id.to_owned(), stage.to_owned()))
            .copied()
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// DescribeSecret: rotation state and version labels.
    pub async fn describe(&self, secret_id: &str) -> Result<SecretMetadata> {
        self.count();
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSecret", secret_id, e))?;
        Ok(SecretMetadata {
            arn: out.arn().unwrap_or(secret_id).to_owned(),
            name: out.name().unwrap_or(secret_id).to_owned(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out
                .version_ids_to_stages()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            tags: out
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        })
    }

    /// ListSecretVersionIds with deprecated versions included: every version id with its
    /// labels (none for a deprecated version). DescribeSecret lists only versions that carry a
    /// label, so a version whose label another put took is seen only here.
    pub async fn list_versions(&self, secret_id: &str) -> Result<Labels> {
        let mut versions = Labels::new();
        let mut next_token: Option<String> = None;
        loop {
            self.count();
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListSecretVersionIds", secret_id, e))?;
            for version in out.versions() {
                if let Some(id) = version.version_id() {
                    versions.insert(id.to_owned(), version.version_stages().to_vec());
                }
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(versions),
            }
        }
    }

    /// GetSecretValue of the version carrying `stage` (and, when given, with id `version_id`).
    /// Returns None when that version has no value (ResourceNotFoundException).
    pub async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<Option<SecretString>> {
        self.count();
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .version_stage(stage)
            .send()
            .await;
        if let Ok(out) = &result {
            if let (Some(date), Ok(mut created)) = (out.created_date(), self.created.lock()) {
                created.insert((secret_id.to_owned(), stage.to_owned()), *date);
            }
        }
        match result {
            Ok(out) => match out.secret_string() {
                Some(s) => Ok(Some(SecretString::from(s.to_owned()))),
                None => Err(RotationError::invalid_secret(
                    secret_id,
                    stage,
                    "the version holds a binary secret; rotation needs a JSON SecretString",
                )),
            },
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
            Err(e) => Err(sdk_error("GetSecretValue", secret_id, e)),
        }
    }

    /// GetSecretValue of version `version_id` with `stage`, with the version's creation time.
    pub async fn get_dated_value(
        &self,
        secret_id: &str,
        version_id: &str,
        stage: &str,
    ) -> Result<(SecretString, Option<std::time::SystemTime>)> {
        self.count();
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(version_id)
            .version_stage(stage)
            .send()
            .await
            .map_err(|e| sdk_error("GetSecretValue", secret_id, e))?;
        let value = out.secret_string().ok_or_else(|| {
            RotationError::invalid_secret(
                secret_id,
                stage,
                "the version holds a binary secret; rotation needs a JSON SecretString",
            )
        })?;
        let created = out
            .created_date()
            .and_then(|d| std::time::SystemTime::try_from(*d).ok());
        Ok((SecretString::from(value.to_owned()), created))
    }

    /// GetSecretValue that must find a value, with an error naming what was missing.
    pub async fn require_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<SecretString> {
        self.get_value(secret_id, version_id, stage)
            .await?
            .ok_or_else(|| RotationError::SecretsManager {
                operation: "GetSecretValue",
                secret: secret_id.to_owned(),
                message: match version_id {
                    Some(v) => format!("version {v} with label {stage} has no value"),
                    None => format!("no version with label {stage}"),
                },
            })
    }

    /// PutSecretValue of a new version labelled AWSPENDING under `token`.
    pub async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
        rotation_token: Option<&SecretString>,
    ) -> Result<()> {
        self.count();
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose_secret())
            .version_stages(AWSPENDING)
            .set_rotation_token(rotation_token.map(|t| t.expose_secret().to_owned()))
            .send()
            .await
            .map_err(|e| sdk_error("PutSecretValue", secret_id, e))?;
        Ok(())
    }

    /// UpdateSecretVersionStage: attach `stage` to `move_to` and/or detach it from `remove_from`.
    pub async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<()> {
        self.count();
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(move_to.map(str::to_owned))
            .set_remove_from_version_id(remove_from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error("UpdateSecretVersionStage", secret_id, e))?;
        Ok(())
    }
}

/// Turns an SDK error into a [`RotationError`] that names the operation and the service's code.
pub(crate) fn sdk_error<E, R>(
    operation: &'static str,
    secret: &str,
    err: SdkError<E, R>,
) -> RotationError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RotationError::SecretsManager {
        operation,
        secret: secret.to_owned(),
        message: rotation_keyring::aws_error::message(&err),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_sdk_secretsmanager::operation::get_secret_value::{
        GetSecretValueError, GetSecretValueOutput,
    };
    use aws_sdk_secretsmanager::operation::list_secret_version_ids::ListSecretVersionIdsOutput;
    use aws_sdk_secretsmanager::operation::update_secret_version_stage::{
        UpdateSecretVersionStageError, UpdateSecretVersionStageOutput,
    };
    use aws_sdk_secretsmanager::types::error::{
        InvalidRequestException, ResourceNotFoundException,
    };
    use aws_sdk_secretsmanager::types::SecretVersionsListEntry;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::Blob;

    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
    const TOKEN: &str = "11111111-1111-4111-8111-111111111111";

    /// A client answering with `rules`, in order, and nothing else (Sequential: a call out of
    /// order, with other parameters or past the last rule panics).
    fn client(rules: &[&Rule]) -> SecretsManager {
        SecretsManager::new(mock_client!(
            aws_sdk_secretsmanager,
            RuleMode::Sequential,
            rules.iter().copied()
        ))
    }

    fn assert_all_called(rules: &[&Rule]) {
        for (i, rule) in rules.iter().enumerate() {
            assert_eq!(rule.num_calls(), 1, "rule {i}");
        }
    }

    /// One page of ListSecretVersionIds of `arn` with deprecated versions, asked for with
    /// `token`, answering `versions` (id, labels) and pointing to `next`. The protocol's tests
    /// use it too.
    pub(crate) fn version_page(
        arn: &'static str,
        token: Option<&'static str>,
        versions: &'static [(&'static str, &'static [&'static str])],
        next: Option<&'static str>,
    ) -> Rule {
        mock!(Client::list_secret_version_ids)
            .match_requests(move |req| {
                req.secret_id() == Some(arn)
                    && req.include_deprecated() == Some(true)
                    && req.next_token() == token
            })
            .then_output(move || {
                ListSecretVersionIdsOutput::builder()
                    .set_versions(Some(
                        versions
                            .iter()
                            .map(|(id, stages)| {
                                SecretVersionsListEntry::builder()
                                    .version_id(*id)
                                    .set_version_stages(Some(
                                        stages.iter().map(|s| (*s).to_owned()).collect(),
                                    ))
                                    .build()
                            })
                            .collect(),
                    ))
                    .set_next_token(next.map(str::to_owned))
                    .build()
            })
    }

    fn get_pending() -> aws_smithy_mocks::RuleBuilder<
        aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput,
        GetSecretValueOutput,
        GetSecretValueError,
    > {
        mock!(Client::get_secret_value).match_requests(|req| {
            req.secret_id() == Some(ARN)
                && req.version_id() == Some(TOKEN)
                && req.version_stage() == Some(AWSPENDING)
        })
    }

    #[tokio::test]
    async fn list_versions_follows_every_page_and_keeps_unlabelled_versions() {
        let rules = [
            version_page(
                ARN,
                None,
                &[("a", &[AWSCURRENT]), ("b", &[])],
                Some("page-2"),
            ),
            version_page(ARN, Some("page-2"), &[("c", &[AWSPENDING])], None),
        ];
        let sm = client(&rules.each_ref());
        let versions = sm.list_versions(ARN).await.unwrap();
        assert_all_called(&rules.each_ref());
        assert_eq!(versions.len(), 3);
        assert_eq!(versions["a"], [AWSCURRENT]);
        assert!(versions["b"].is_empty(), "a deprecated version is listed");
        assert_eq!(versions["c"], [AWSPENDING]);
        assert_eq!(sm.calls(), 2, "one call per page");
    }

    #[tokio::test]
    async fn a_version_without_a_value_is_none_and_required_it_is_an_error_naming_the_label() {
        let rules = [
            get_pending().then_error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            }),
            get_pending().then_error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder().build(),
                )
            }),
        ];
        let sm = client(&rules.each_ref());
        assert!(sm
            .get_value(ARN, Some(TOKEN), AWSPENDING)
            .await
            .unwrap()
            .is_none());
        let err = sm
            .require_value(ARN, Some(TOKEN), AWSPENDING)
            .await
            .unwrap_err();
        assert_all_called(&rules.each_ref());
        assert_eq!(err.kind(), "SecretsManager");
        assert_eq!(
            err.to_string(),
            format!("Secrets Manager GetSecretValue on {ARN} failed: version {TOKEN} with label AWSPENDING has no value")
        );
        assert_eq!(sm.calls(), 2);
    }

    #[tokio::test]
    async fn a_binary_version_is_refused_without_its_bytes() {
        let rule = get_pending().then_output(|| {
            GetSecretValueOutput::builder()
                .secret_binary(Blob::new("binary-secret-bytes"))
                .build()
        });
        let err = client(&[&rule])
            .get_value(ARN, Some(TOKEN), AWSPENDING)
            .await
            .unwrap_err();
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(err.kind(), "InvalidSecret");
        assert_eq!(
            err.to_string(),
            format!("secret {ARN} (AWSPENDING): the version holds a binary secret; rotation needs a JSON SecretString")
        );
    }

    #[tokio::test]
    async fn a_value_is_wrapped_and_its_creation_date_remembered_by_label() {
        let created = DateTime::from_secs(1_700_000_000);
        let rule = get_pending().then_output(move || {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"provider":"keyring"}"#)
                .created_date(created)
                .build()
        });
        let sm = client(&[&rule]);
        let value = sm.get_value(ARN, Some(TOKEN), AWSPENDING).await.unwrap();
        assert_eq!(value.unwrap().expose_secret(), r#"{"provider":"keyring"}"#);
        assert_eq!(sm.created_date(ARN, AWSPENDING), Some(created));
        assert_eq!(sm.created_date(ARN, AWSCURRENT), None);
    }

    #[tokio::test]
    async fn a_service_error_names_the_operation_and_the_services_code() {
        let rules = [
            mock!(Client::update_secret_version_stage)
                .match_requests(|req| {
                    req.version_stage() == Some(AWSCURRENT)
                        && req.move_to_version_id() == Some(TOKEN)
                        && req.remove_from_version_id().is_none()
                })
                .then_error(|| {
                    UpdateSecretVersionStageError::InvalidRequestException(
                        InvalidRequestException::builder()
                            .message("the version is not attached")
                            .meta(
                                aws_sdk_secretsmanager::error::ErrorMetadata::builder()
                                    .code("InvalidRequestException")
                                    .message("the version is not attached")
                                    .build(),
                            )
                            .build(),
                    )
                }),
            mock!(Client::update_secret_version_stage)
                .then_output(|| UpdateSecretVersionStageOutput::builder().build()),
        ];
        let sm = client(&rules.each_ref());
        let err = sm
            .move_stage(ARN, AWSCURRENT, Some(TOKEN), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "SecretsManager");
        assert_eq!(
            err.to_string(),
            format!("Secrets Manager UpdateSecretVersionStage on {ARN} failed: InvalidRequestException: the version is not attached")
        );
        sm.move_stage(ARN, AWSPENDING, None, Some(TOKEN))
            .await
            .unwrap();
        assert_all_called(&rules.each_ref());
        assert_eq!(sm.calls(), 2, "a failed call is counted too");
    }
}
