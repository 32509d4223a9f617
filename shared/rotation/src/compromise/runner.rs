//! Running the rotations a [`SecretPlan`] asks for, one after the other: each is started the
//! way the secret's mode starts rotations, and the next starts only when the previous one's
//! version is AWSCURRENT.
//!
//! - In AWS, a Secrets Manager mode secret is rotated with RotateSecret (Secrets Manager then
//!   invokes `rotate`), a workflow mode secret by starting the workflow's state machine
//!   (`ROTATION_STATE_MACHINE_ARN`) with the new version's token.
//! - On the local stack (`ROTATION_LOCAL_LAMBDA_ENDPOINT` set: moto runs neither Secrets
//!   Manager's rotation nor Step Functions), the runner plays their part with the
//!   [`LocalDriver`], which invokes the functions of the secret's mode, step by step, through
//!   the Lambda Invoke API.

use std::time::{Duration, Instant, SystemTime};

use super::bounds::Bounds;
use super::error::CompromiseError;
use super::incident::{Incident, RECORD_TAG};
use super::plan::SecretPlan;
use crate::config::variables;
use crate::driver::LocalDriver;
use crate::error::RotationError;
use crate::event::Step;
use crate::invoke::{InvokeError, LambdaInvoker};
use crate::mode::Mode;
use crate::secrets_manager::{SecretMetadata, SecretsManager, AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// Environment variable [`variables::STATE_MACHINE_ARN`].
pub const ENV_STATE_MACHINE_ARN: &str = variables::STATE_MACHINE_ARN.name;
/// Environment variable [`variables::LOCAL_LAMBDA_ENDPOINT`].
pub const ENV_LOCAL_LAMBDA_ENDPOINT: &str = variables::LOCAL_LAMBDA_ENDPOINT.name;
/// Environment variable [`variables::COMPROMISE_TIMEOUT`].
pub const ENV_TIMEOUT: &str = variables::COMPROMISE_TIMEOUT.name;

/// How rotations are started.
#[derive(Debug, Clone)]
enum Start {
    Aws {
        sfn: aws_sdk_sfn::Client,
        state_machine_arn: Option<String>,
    },
    Local(LambdaInvoker),
}

/// What the response did to one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The versions rotated in (resumed or started) by this call.
    pub versions: Vec<String>,
    /// The secret's record already named the incident: nothing was done.
    pub already_retired: bool,
}

/// What the response does with one of an incident's rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Its version is AWSCURRENT or AWSPREVIOUS: done by an earlier delivery.
    Finished,
    /// Its version is AWSPENDING: resume it.
    Resume,
    /// It has no version yet: start it.
    Start,
}

/// A version of a secret, as ListSecretVersionIds lists it.
#[derive(Debug, Clone)]
struct DatedVersion {
    id: String,
    stages: Vec<String>,
    created: Option<SystemTime>,
}

/// Runs rotations and waits for them.
#[derive(Debug, Clone)]
pub struct Runner {
    secrets: aws_sdk_secretsmanager::Client,
    start: Start,
    timeout: Duration,
    poll: Duration,
}

impl Runner {
    /// A runner configured from the environment, naming the variable that is wrong.
    pub fn from_env(aws: &aws_config::SdkConfig) -> Result<Self, CompromiseError> {
        Self::from_lookup(aws, |name| std::env::var(name).ok())
    }

    /// A runner configured through `lookup`.
    pub fn from_lookup(
        aws: &aws_config::SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CompromiseError> {
        let timeout = variables::COMPROMISE_TIMEOUT
            .number(&lookup)
            .map(Duration::from_secs)
            .map_err(CompromiseError::Configuration)?;
        let nonempty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let start = match nonempty(ENV_LOCAL_LAMBDA_ENDPOINT) {
            Some(endpoint) => Start::Local(
                LambdaInvoker::new(&endpoint, timeout)
                    .map_err(|e| CompromiseError::Configuration(format!("HTTP client: {e}")))?,
            ),
            None => Start::Aws {
                sfn: aws_sdk_sfn::Client::new(aws),
                state_machine_arn: nonempty(ENV_STATE_MACHINE_ARN),
            },
        };
        let poll = match start {
            Start::Local(_) => Duration::from_millis(200),
            Start::Aws { .. } => Duration::from_secs(2),
        };
        Ok(Runner {
            secrets: aws_sdk_secretsmanager::Client::new(aws),
            start,
            timeout,
            poll,
        })
    }

    /// Retires every credential of `plan`'s secret valid before `incident`, once per incident:
    ///
    /// - a secret whose record (tag [`RECORD_TAG`]) names the incident is left as it is;
    /// - a rotation already in progress is completed first (its pending credential predates the
    ///   incident; Secrets Manager mode in AWS waits for Secrets Manager's own retry);
    /// - then the incident's `plan.rotations` rotations run in a row, each with the version id
    ///   [`Incident::token`] gives it: one already finished (AWSCURRENT or AWSPREVIOUS) is
    ///   skipped, one in progress is resumed, so a repeated or retried event starts none twice;
    /// - before anything starts, the rotations still to start are checked against `bounds`;
    /// - the secret carries the compromise marker ([`super::marker`]) from before its first
    ///   rotation until the incident is recorded on it at the end.
    pub async fn retire(
        &self,
        plan: &SecretPlan,
        incident: &Incident,
        bounds: &Bounds,
    ) -> Result<Retirement, CompromiseError> {
        let sm = SecretsManager::new(self.secrets.clone());
        let metadata = sm.describe(&plan.secret_arn).await?;
        let record = metadata.tags.get(RECORD_TAG).map(String::as_str);
        if incident.is_recorded_in(record) {
            // A response that stopped between its record and clearing the marker.
            if metadata.tags.contains_key(super::marker::TAG) {
                super::marker::clear(&self.secrets, &plan.secret_arn).await?;
            }
            return Ok(Retirement {
                versions: Vec::new(),
                already_retired: true,
            });
        }
        let versions = self.dated_versions(&plan.secret_arn).await?;
        let tokens: Vec<String> = (1..=plan.rotations)
            .map(|n| incident.token(&plan.secret_arn, n))
            .collect();
        let stages = |id: &str| versions.iter().find(|v| v.id == id).map(|v| &v.stages);
        let labelled =
            |id: &str, stage: &str| stages(id).is_some_and(|s| s.iter().any(|l| l == stage));
        let current = metadata.version_with(AWSCURRENT).map(str::to_owned);
        let other_in_progress = metadata
            .version_with(AWSPENDING)
            .filter(|p| Some(*p) != current.as_deref() && !tokens.iter().any(|t| t == p))
            .map(str::to_owned);
        let mut steps = Vec::new();
        for token in &tokens {
            let step = if labelled(token, AWSCURRENT) || labelled(token, AWSPREVIOUS) {
                Next::Finished
            } else if labelled(token, AWSPENDING) {
                Next::Resume
            } else if stages(token).is_some() {
                return Err(CompromiseError::Abandoned {
                    secret: plan.secret_arn.clone(),
                    version: token.clone(),
                    state: format!(
                        "it is neither AWSCURRENT, AWSPREVIOUS nor AWSPENDING: this incident's rotation was abandoned or has aged out; answer it under a new incident id to rotate again ({})",
                        describe_labels(&metadata)
                    ),
                });
            } else {
                Next::Start
            };
            steps.push((token, step));
        }
        let new = steps.iter().filter(|(_, s)| *s == Next::Start).count();
        let created: Vec<SystemTime> = versions.iter().filter_map(|v| v.created).collect();
        bounds.check_rotations(&plan.secret_arn, &created, new, SystemTime::now())?;

        // The functions learn from the marker that these rotations answer a compromise.
        super::marker::set(&self.secrets, &metadata, SystemTime::now()).await?;
        let mut rotated = Vec::new();
        if let Some(token) = other_in_progress {
            self.resume(plan, &token).await?;
            rotated.push(token);
        }
        for (token, step) in steps {
            match step {
                Next::Finished => continue,
                Next::Resume => self.resume(plan, token).await?,
                Next::Start => {
                    tracing::info!(
                        secret_arn = %plan.secret_arn,
                        mode = %plan.mode,
                        incident = %incident,
                        version = %token,
                        "starting a rotation to retire compromised credentials"
                    );
                    self.start(plan, token).await?;
                    self.wait(&plan.secret_arn, Some(token)).await?;
                }
            }
            rotated.push(token.clone());
        }
        self.record(&plan.secret_arn, incident.recorded_in(record))
            .await?;
        super::marker::clear(&self.secrets, &plan.secret_arn).await?;
        Ok(Retirement {
            versions: rotated,
            already_retired: false,
        })
    }

    /// Completes the rotation in progress with version `token`: in Secrets Manager mode in
    /// AWS by waiting for Secrets Manager's own retry (it cannot be resumed from outside),
    /// otherwise by running it again with its token, as a retry does.
    pub async fn resume(&self, plan: &SecretPlan, token: &str) -> Result<(), CompromiseError> {
        match (&self.start, plan.mode) {
            (Start::Aws { .. }, Mode::SecretsManager) => self.wait(&plan.secret_arn, None).await,
            _ => {
                tracing::info!(
                    secret_arn = %plan.secret_arn,
                    version = %token,
                    "resuming the rotation in progress before retiring credentials"
                );
                self.start_as(plan, token, true).await?;
                self.wait(&plan.secret_arn, Some(token)).await
            }
        }
    }

    /// Every version of `secret` (deprecated ones included) with its labels and creation date.
    async fn dated_versions(&self, secret: &str) -> Result<Vec<DatedVersion>, CompromiseError> {
        let mut versions = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let out = self
                .secrets
                .list_secret_version_ids()
                .secret_id(secret)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| {
                    CompromiseError::Rotation(RotationError::SecretsManager {
                        operation: "ListSecretVersionIds",
                        secret: secret.to_owned(),
                        message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                    })
                })?;
            for v in out.versions() {
                if let Some(id) = v.version_id() {
                    versions.push(DatedVersion {
                        id: id.to_owned(),
                        stages: v.version_stages().to_vec(),
                        created: v.created_date().and_then(|d| SystemTime::try_from(*d).ok()),
                    });
                }
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(versions),
            }
        }
    }

    /// Records on `secret` the incidents answered on it (tag [`RECORD_TAG`]).
    async fn record(&self, secret: &str, record: String) -> Result<(), CompromiseError> {
        self.secrets
            .tag_resource()
            .secret_id(secret)
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(RECORD_TAG)
                    .value(record)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                CompromiseError::Rotation(RotationError::SecretsManager {
                    operation: "TagResource",
                    secret: secret.to_owned(),
                    message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                })
            })?;
        Ok(())
    }

    /// Starts one rotation of `plan`'s secret with `token` as its new version, the way the
    /// secret's mode starts rotations. On the local stack it runs the whole rotation.
    pub async fn start(&self, plan: &SecretPlan, token: &str) -> Result<(), CompromiseError> {
        self.start_as(plan, token, false).await
    }

    /// [`Runner::start`]; `again` names a workflow execution apart from the first one of
    /// `token` (an execution's name is taken for 90 days, even once it failed), while the first
    /// start of a token keeps one name, so a repeated event finds the same execution.
    async fn start_as(
        &self,
        plan: &SecretPlan,
        token: &str,
        again: bool,
    ) -> Result<(), CompromiseError> {
        let failed = |detail: String| CompromiseError::Start {
            secret: plan.secret_arn.clone(),
            version: token.to_owned(),
            detail,
        };
        match (&self.start, plan.mode) {
            (Start::Aws { .. }, Mode::SecretsManager) => {
                self.secrets
                    .rotate_secret()
                    .secret_id(&plan.secret_arn)
                    .client_request_token(token)
                    .rotate_immediately(true)
                    .send()
                    .await
                    .map_err(|e| {
                        failed(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                    })?;
            }
            (
                Start::Aws {
                    sfn,
                    state_machine_arn,
                },
                Mode::Workflow,
            ) => {
                let arn = state_machine_arn.as_deref().ok_or_else(|| {
                    CompromiseError::Configuration(format!(
                        "{ENV_STATE_MACHINE_ARN} is not set: workflow mode secrets cannot be rotated"
                    ))
                })?;
                let input = serde_json::json!({
                    "SecretId": plan.secret_arn,
                    "ClientRequestToken": token,
                });
                sfn.start_execution()
                    .state_machine_arn(arn)
                    .name(if again {
                        let now = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        format!("compromise-{token}-{now}")
                    } else {
                        format!("compromise-{token}")
                    })
                    .input(input.to_string())
                    .send()
                    .await
                    .map_err(|e| failed(aws_sdk_sfn::error::DisplayErrorContext(e).to_string()))?;
            }
            (Start::Local(_), _) if plan.provider == super::plan::RDS_MANAGED => {
                return Err(CompromiseError::NotRotatable {
                    secret: plan.secret_arn.clone(),
                    problem: "managed by RDS, which rotates it when RotateSecret asks; the local stack cannot run RDS's managed rotation".to_owned(),
                });
            }
            (Start::Local(invoker), mode) => {
                let driver = LocalDriver::new(invoker.clone(), self.secrets.clone(), mode);
                let runs = driver
                    .run_steps(&Step::ALL, &plan.secret_arn, token, None)
                    .await;
                if let Some((run, e)) = runs
                    .iter()
                    .find_map(|run| run.result.as_ref().err().map(|e| (run, e)))
                {
                    return Err(failed(match e {
                        InvokeError::Function {
                            error_type,
                            message,
                            ..
                        } => format!(
                            "{} failed {}: {error_type}: {message}",
                            run.function, run.step
                        ),
                        InvokeError::Transport { detail, .. } => {
                            format!("{}: {detail}", run.function)
                        }
                    }));
                }
            }
        }
        Ok(())
    }

    /// The token of the rotation in progress (AWSPENDING on a version that is not AWSCURRENT).
    pub async fn in_progress(&self, secret: &str) -> Result<Option<String>, CompromiseError> {
        let metadata = SecretsManager::new(self.secrets.clone())
            .describe(secret)
            .await?;
        let pending = metadata.version_with(AWSPENDING);
        Ok(pending
            .filter(|p| Some(*p) != metadata.version_with(AWSCURRENT))
            .map(str::to_owned))
    }

    /// Waits until no rotation is in progress and, when `token` is given, until it is
    /// AWSCURRENT.
    async fn wait(&self, secret: &str, token: Option<&str>) -> Result<(), CompromiseError> {
        self.wait_with(secret, token, || async {}).await
    }

    /// Waits until no rotation is in progress and, when `token` is given, until it is
    /// AWSCURRENT, awaiting `before_poll` before each DescribeSecret (a caller's rate
    /// limiter). A version of `token` that loses AWSPENDING without becoming AWSCURRENT is a
    /// failed rotation.
    pub async fn wait_with<F, Fut>(
        &self,
        secret: &str,
        token: Option<&str>,
        mut before_poll: F,
    ) -> Result<(), CompromiseError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let started = Instant::now();
        loop {
            before_poll().await;
            let metadata = SecretsManager::new(self.secrets.clone())
                .describe(secret)
                .await?;
            let current = metadata.version_with(AWSCURRENT);
            let pending = metadata.version_with(AWSPENDING);
            let in_progress = pending.is_some() && pending != current;
            let done = match token {
                Some(token) => current == Some(token) && pending.is_none(),
                None => !in_progress,
            };
            if done {
                return Ok(());
            }
            if let Some(token) = token {
                let stages = metadata.stages_of(token).unwrap_or_default();
                let abandoned = metadata.stages_of(token).is_some()
                    && !stages.iter().any(|s| s == AWSPENDING || s == AWSCURRENT);
                if abandoned {
                    return Err(CompromiseError::Abandoned {
                        secret: metadata.arn.clone(),
                        version: token.to_owned(),
                        state: describe_labels(&metadata),
                    });
                }
            }
            if started.elapsed() >= self.timeout {
                return Err(CompromiseError::Timeout {
                    secret: metadata.arn.clone(),
                    version: token.or(pending).unwrap_or("-").to_owned(),
                    waited: self.timeout,
                    state: describe_labels(&metadata),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

fn describe_labels(metadata: &SecretMetadata) -> String {
    let mut labels: Vec<String> = metadata
        .versions
        .iter()
        .filter(|(_, stages)| !stages.is_empty())
        .map(|(id, stages)| format!("{id}: {}", stages.join(",")))
        .collect();
    labels.sort();
    labels.join("; ")
}
