//! `rotate`: one secret's rotation (or, after a compromise, as many rotations as its provider
//! needs), against AWS or the local stack, reporting each step.
//!
//! - Against AWS the shared [`Runner`] starts the rotation the secret's way (RotateSecret with
//!   RotateImmediately, or the workflow's state machine) and follows the version labels until
//!   the new version is AWSCURRENT, the rotation is abandoned, or the timeout passes.
//! - Against the local stack the [`LocalDriver`] plays Secrets Manager's part and invokes the
//!   four steps through the functions of the secret's mode.
//!
//! What a secret needs comes from the shared [`plan`] (its mode, and its provider's
//! `rotations_to_retire` from `providers::profile`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::ProgressBar;
use rotation::compromise::{marker, plan, CompromiseError, Runner, SecretPlan};
use rotation::secrets_manager::{SecretsManager, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::{Mode, Step};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::diagnose::{arn_region, CliError, Context};
use crate::driver::{LocalDriver, StepProgress};
use crate::invoke::LambdaInvoker;
use crate::versions::{labels, render_inline, version_with};

/// Where rotations run.
#[derive(Debug, Clone)]
pub enum Backend {
    /// AWS: RotateSecret or the workflow's state machine, then follow the labels.
    Aws(Runner),
    /// The local stack: invoke the four steps through the Lambda Invoke API.
    Local(LambdaInvoker),
}

/// What to do with each secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request {
    /// Retire every credential valid before now (as many rotations as the provider needs).
    pub compromised: bool,
    /// Say what would happen, change nothing.
    pub dry_run: bool,
    /// Local stack only: finish a rotation in progress instead of refusing.
    pub resume: bool,
}

/// One step of a local rotation.
#[derive(Debug, Clone, Serialize)]
pub struct LocalStep {
    /// The step.
    pub step: &'static str,
    /// The function invoked.
    pub function: &'static str,
    /// Wall time in milliseconds.
    pub ms: u128,
    /// The step's outcome (`done`, `already_done`, ...) or `failed`.
    pub outcome: String,
}

/// One rotation of a secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationOutcome {
    /// The new version (the ClientRequestToken).
    pub version: String,
    /// Whether it finished a rotation that was in progress.
    pub resumed: bool,
    /// How it was started: `RotateSecret`, `StartExecution` or `local`.
    pub started_by: &'static str,
    /// The steps (local stack only; in AWS Secrets Manager runs them).
    pub steps: Vec<LocalStep>,
    /// Wall time in milliseconds.
    pub ms: u128,
}

/// A credential that stopped being valid (or, for a keyring, stopped encrypting).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    /// The version that held it.
    pub version: String,
    /// Its labels before the response.
    pub labels: Vec<String>,
    /// The user, access key id or key id it names (never a secret).
    pub credential: String,
}

/// What happened to one secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretOutcome {
    /// The secret as given.
    pub secret: String,
    /// Its plan (ARN, name, mode, provider, strategy, rotations), once read.
    pub plan: Option<SecretPlan>,
    /// The rotations run.
    pub rotations: Vec<RotationOutcome>,
    /// Credentials valid before the response that no longer are (`--compromised`).
    pub retired: Vec<Retired>,
    /// `--compromised`: the version of the rotation that was in progress, which the response
    /// finished first (its pending credential predates the incident) before its own rotations.
    pub finished_pending: Option<String>,
    /// `--dry-run`: what would happen.
    pub would: Option<String>,
    /// The failure, if any.
    pub error: Option<String>,
    /// The failure's kind, if any.
    pub error_kind: Option<&'static str>,
    /// The secret's labels after a failure.
    pub state: Option<String>,
    /// Wall time in milliseconds.
    pub ms: u128,
}

impl SecretOutcome {
    /// Whether the secret got what was asked.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs rotations, sharing one client-side rate limit on the API calls it makes.
#[derive(Debug, Clone)]
pub struct Rotator {
    secrets: Client,
    backend: Backend,
    limiter: Arc<DefaultDirectRateLimiter>,
    timeout: Duration,
    context: Context,
}

impl Rotator {
    /// A rotator calling Secrets Manager through `secrets` at most `per_second` times a second
    /// (a rotation step or start counts as one call), giving one rotation `timeout`.
    pub fn new(
        secrets: Client,
        backend: Backend,
        per_second: NonZeroU32,
        timeout: Duration,
        context: Context,
    ) -> Self {
        Rotator {
            secrets,
            backend,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(per_second))),
            timeout,
            context,
        }
    }

    /// Waits for `n` calls' worth of the rate limit.
    async fn throttle(&self, n: u32) {
        if let Some(n) = NonZeroU32::new(n) {
            // `n` never exceeds the burst (checked when the rate is parsed, at least 4).
            let _ = self.limiter.until_n_ready(n).await;
        }
    }

    /// Rotates one secret as `request` asks, showing progress on `bar`. Never fails: the
    /// outcome carries the error.
    pub async fn run(&self, secret: &str, request: Request, bar: &ProgressBar) -> SecretOutcome {
        let started = Instant::now();
        let mut outcome = SecretOutcome {
            secret: secret.to_owned(),
            plan: None,
            rotations: Vec::new(),
            retired: Vec::new(),
            finished_pending: None,
            would: None,
            error: None,
            error_kind: None,
            state: None,
            ms: 0,
        };
        if let Err(e) = self.run_into(secret, request, bar, &mut outcome).await {
            bar.set_message(format!("FAILED: {}", e.kind()));
            outcome.error_kind = Some(e.kind());
            outcome.error = Some(e.to_string());
            if let (Some(plan), false) = (&outcome.plan, request.dry_run) {
                self.throttle(1).await;
                outcome.state = labels(&self.secrets, &plan.secret_arn)
                    .await
                    .ok()
                    .map(|l| render_inline(&l));
            }
        }
        outcome.ms = started.elapsed().as_millis();
        bar.finish();
        outcome
    }

    async fn run_into(
        &self,
        secret: &str,
        request: Request,
        bar: &ProgressBar,
        outcome: &mut SecretOutcome,
    ) -> Result<(), CliError> {
        if let Some(secret_region) = arn_region(secret) {
            if secret_region != self.context.region {
                return Err(CliError::WrongRegion {
                    secret: secret.to_owned(),
                    secret_region: secret_region.to_owned(),
                    region: self.context.region.clone(),
                });
            }
        }
        bar.set_message("reading the secret");
        let sm = SecretsManager::new(self.secrets.clone());
        self.throttle(2).await;
        let plan = plan::plan(&sm, secret)
            .await
            .map_err(|e| self.context.compromise(secret, &e))?;
        outcome.plan = Some(plan.clone());
        let rotations = if request.compromised {
            plan.rotations
        } else {
            1
        };
        self.throttle(1).await;
        let before = labels(&self.secrets, &plan.secret_arn)
            .await
            .map_err(|e| self.context.aws(secret, &e))?;
        let pending = version_with(&before, AWSPENDING);
        let current = version_with(&before, AWSCURRENT);
        // After a compromise, a rotation in progress is finished first, as the compromise
        // function does: its pending credential predates the incident and may be known to the
        // attacker, so the provider's rotations all run after it.
        let (finish_first, resume) = match (pending, current) {
            (Some(p), c) if Some(p) != c && request.compromised => (Some(p.to_owned()), None),
            (Some(p), c) if Some(p) != c => {
                if !(request.resume && matches!(self.backend, Backend::Local(_))) {
                    return Err(CliError::InProgress {
                        secret: plan.secret_name.clone(),
                        pending: p.to_owned(),
                        current: c.unwrap_or("-").to_owned(),
                    });
                }
                (None, Some(p.to_owned()))
            }
            _ => (None, None),
        };
        if !request.compromised && finish_first.is_none() && resume.is_none() {
            // A rotation would be declined outside the secret's window (a compromise response
            // ignores it, and one in progress finishes whatever the window).
            self.throttle(1).await;
            let meta = sm
                .describe(&plan.secret_arn)
                .await
                .map_err(|e| self.context.compromise(secret, &CompromiseError::from(e)))?;
            if let rotation::window::Gate::Closed(reason) =
                rotation::window::Gate::of(&meta, std::time::SystemTime::now())
                    .map_err(|e| self.context.compromise(secret, &CompromiseError::from(e)))?
            {
                return Err(CliError::OutsideWindow {
                    secret: plan.secret_name.clone(),
                    reason,
                });
            }
        }
        let retiring = if request.compromised {
            self.credentials_before(&plan, &before, finish_first.is_some())
                .await
        } else {
            Vec::new()
        };
        if request.dry_run {
            outcome.would = Some(self.would(
                &plan,
                rotations,
                resume.as_deref().or(finish_first.as_deref()),
                finish_first.is_some(),
                &retiring,
            ));
            outcome.retired = retiring;
            bar.set_message("dry run: nothing changed");
            return Ok(());
        }
        if request.compromised {
            // The functions learn from the marker that these rotations answer a compromise.
            self.throttle(2).await;
            let meta = sm
                .describe(&plan.secret_arn)
                .await
                .map_err(|e| self.context.compromise(secret, &CompromiseError::from(e)))?;
            marker::set(&self.secrets, &meta, std::time::SystemTime::now())
                .await
                .map_err(|e| self.context.compromise(secret, &CompromiseError::from(e)))?;
        }
        // The tokens to run: the pending rotation to finish (an extra one), then the provider's
        // rotations, the first of them resuming the rotation in progress with --resume.
        let mut tokens: Vec<Option<String>> = finish_first.clone().into_iter().map(Some).collect();
        tokens.push(resume);
        tokens.extend((1..rotations).map(|_| None));
        let of = u8::try_from(tokens.len()).unwrap_or(u8::MAX);
        for (n, token) in (1..=of).zip(tokens) {
            let finishing = n == 1 && finish_first.is_some();
            self.rotate_once(&plan, token, n, of, bar, &mut outcome.rotations)
                .await
                .map_err(|e| match (finishing, n < of) {
                    (true, _) => CliError::RotationFailed {
                        detail: format!(
                            "{e}; finishing the rotation in progress (version {}) failed, so none of the {rotations} rotation(s) retiring the credentials was started",
                            finish_first.as_deref().unwrap_or("-")
                        ),
                    },
                    (false, true) => CliError::RotationFailed {
                        detail: format!("{e}; so rotation {} of {of} was not started", n + 1),
                    },
                    (false, false) => e,
                })?;
            if finishing {
                outcome.finished_pending.clone_from(&finish_first);
            }
        }
        if request.compromised {
            self.throttle(1).await;
            marker::clear(&self.secrets, &plan.secret_arn)
                .await
                .map_err(|e| self.context.compromise(secret, &CompromiseError::from(e)))?;
        }
        outcome.retired = retiring;
        bar.set_message(format!("done: {of} rotation(s)"));
        Ok(())
    }

    /// Says what `plan` would do.
    fn would(
        &self,
        plan: &SecretPlan,
        rotations: u8,
        resume: Option<&str>,
        finish_first: bool,
        retiring: &[Retired],
    ) -> String {
        let how = match (&self.backend, plan.mode) {
            (Backend::Local(_), Mode::SecretsManager) => "invoking `rotate` for the four steps",
            (Backend::Local(_), Mode::Workflow) => "invoking the four step functions",
            (Backend::Aws(_), Mode::SecretsManager) => "RotateSecret (RotateImmediately)",
            (Backend::Aws(_), Mode::Workflow) => "starting the workflow's state machine",
        };
        let mut text = format!(
            "would rotate {} ({} / {}, {} mode) {rotations} time(s) by {how}",
            plan.secret_name, plan.provider, plan.strategy, plan.mode
        );
        match (resume, finish_first) {
            (Some(p), true) => text.push_str(&format!(
                ", after finishing the rotation in progress (AWSPENDING {p}: its credential predates the incident)"
            )),
            (Some(p), false) => text.push_str(&format!(
                ", first finishing the rotation in progress (AWSPENDING {p})"
            )),
            (None, _) => {}
        }
        if !retiring.is_empty() {
            let names: Vec<String> = retiring
                .iter()
                .map(|r| format!("{} ({})", r.credential, r.labels.join(",")))
                .collect();
            text.push_str(&format!(", retiring {}", names.join(", ")));
        }
        text
    }

    /// The credentials valid now that the response retires: AWSCURRENT's, AWSPREVIOUS's for a
    /// dual-phase provider (its previous credential is still valid), and, with `pending`, the
    /// rotation in progress's AWSPENDING one when it holds a value. Named by user, access key
    /// id or key id, read in memory and never printed otherwise.
    async fn credentials_before(
        &self,
        plan: &SecretPlan,
        before: &crate::versions::Labels,
        pending: bool,
    ) -> Vec<Retired> {
        let mut stages = vec![AWSCURRENT];
        if plan.rotations > 1 {
            stages.push(AWSPREVIOUS);
        }
        if pending {
            stages.push(AWSPENDING);
        }
        let mut retired = Vec::new();
        for stage in stages {
            let Some(version) = version_with(before, stage) else {
                continue;
            };
            self.throttle(1).await;
            let value = SecretsManager::new(self.secrets.clone())
                .get_value(&plan.secret_arn, Some(version), stage)
                .await;
            let credential = match value {
                Ok(Some(value)) => credential_name(plan.provider, value.expose_secret()),
                // Secrets Manager's empty AWSPENDING version: no credential yet.
                Ok(None) if stage == AWSPENDING => continue,
                _ => "-".to_owned(),
            };
            retired.push(Retired {
                version: version.to_owned(),
                labels: before.get(version).cloned().unwrap_or_default(),
                credential,
            });
        }
        retired
    }

    /// One rotation, resumed with `token` when given, added to `done` when it ran (a local
    /// rotation also when it failed, with its steps).
    async fn rotate_once(
        &self,
        plan: &SecretPlan,
        token: Option<String>,
        n: u8,
        of: u8,
        bar: &ProgressBar,
        done: &mut Vec<RotationOutcome>,
    ) -> Result<(), CliError> {
        let started = Instant::now();
        let resumed = token.is_some();
        let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let secret = plan.secret_arn.as_str();
        match &self.backend {
            Backend::Aws(runner) => {
                let started_by = match (plan.mode, resumed) {
                    (Mode::SecretsManager, true) => "Secrets Manager's retry",
                    (Mode::SecretsManager, false) => "RotateSecret",
                    (Mode::Workflow, _) => "StartExecution",
                };
                if resumed {
                    bar.set_message(format!(
                        "rotation {n}/{of}: finishing the rotation in progress {token}"
                    ));
                    self.throttle(1).await;
                    runner
                        .resume(plan, &token)
                        .await
                        .map_err(|e| self.context.compromise(secret, &e))?;
                } else {
                    bar.set_message(format!("rotation {n}/{of}: {started_by} {token}"));
                    self.throttle(1).await;
                    runner
                        .start(plan, &token)
                        .await
                        .map_err(|e| self.context.compromise(secret, &e))?;
                    bar.set_message(format!(
                        "rotation {n}/{of}: waiting for {token} to become AWSCURRENT"
                    ));
                    runner
                        .wait_with(secret, Some(&token), || self.throttle(1))
                        .await
                        .map_err(|e| self.context.compromise(secret, &e))?;
                }
                done.push(RotationOutcome {
                    version: token,
                    resumed,
                    started_by,
                    steps: Vec::new(),
                    ms: started.elapsed().as_millis(),
                });
                Ok(())
            }
            Backend::Local(invoker) => {
                let driver = LocalDriver::new(invoker.clone(), self.secrets.clone(), plan.mode);
                // One call's worth of the rate per step, taken before the rotation starts: the
                // steps then run back to back, as Secrets Manager runs them.
                self.throttle(Step::ALL.len() as u32).await;
                let name = plan.secret_name.as_str();
                let mut observe = |progress: StepProgress<'_>| match progress {
                    StepProgress::Started { step, function } => {
                        bar.set_message(format!("rotation {n}/{of}: {step} ({function})"));
                    }
                    StepProgress::Finished(run) => bar.println(format!(
                        "{name}: rotation {n}/{of}: {} {} in {} ms",
                        run.step,
                        match &run.result {
                            Ok(report) => report.outcome.as_str(),
                            Err(_) => "FAILED",
                        },
                        run.elapsed.as_millis()
                    )),
                };
                let runs = driver
                    .run_steps_observed(&Step::ALL, secret, &token, None, &mut observe)
                    .await;
                let steps = runs
                    .iter()
                    .map(|run| LocalStep {
                        step: run.step.as_str(),
                        function: run.function,
                        ms: run.elapsed.as_millis(),
                        outcome: match &run.result {
                            Ok(report) => report.outcome.as_str().to_owned(),
                            Err(_) => "failed".to_owned(),
                        },
                    })
                    .collect();
                done.push(RotationOutcome {
                    version: token,
                    resumed,
                    started_by: "local",
                    steps,
                    ms: started.elapsed().as_millis(),
                });
                match runs
                    .iter()
                    .find_map(|run| run.result.as_ref().err().map(|e| (run.step, e)))
                {
                    None => Ok(()),
                    Some((step, e)) => {
                        let err = self.context.invoke(secret, e, self.timeout.as_secs());
                        Err(CliError::RotationFailed {
                            detail: format!("rotation {n} of {of} failed at {step}: {err}"),
                        })
                    }
                }
            }
        }
    }
}

/// The name of the credential a secret value holds: the database user, the IAM access key id,
/// or the keyring's active key id. Never a password or key material.
pub fn credential_name(provider: &str, value: &str) -> String {
    if provider == rotation_keyring::PROVIDER {
        return match rotation_keyring::Keyring::parse(value) {
            Ok(keyring) => keyring
                .active_key()
                .map(|id| format!("active key {id}"))
                .unwrap_or_else(|| "no active key".to_owned()),
            Err(_) => "-".to_owned(),
        };
    }
    let fields: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
    for field in ["accessKeyId", "AccessKeyId"] {
        if let Some(id) = fields[field].as_str() {
            return format!("access key {id}");
        }
    }
    match fields["username"].as_str() {
        Some(user) => format!("user {user}"),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};

    #[tokio::test]
    async fn the_rate_limit_spaces_the_calls() {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let invoker = LambdaInvoker::new("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
        let rotator = Rotator::new(
            Client::from_conf(config),
            Backend::Local(invoker),
            NonZeroU32::new(4).unwrap(),
            Duration::from_secs(1),
            Context {
                region: "us-east-1".into(),
                profile: None,
            },
        );
        let started = Instant::now();
        // A burst of 4, then 4 calls a second: 12 calls take at least 2 seconds.
        for _ in 0..3 {
            rotator.throttle(4).await;
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    }

    #[test]
    fn names_credentials_without_their_secrets() {
        let db = r#"{"engine":"postgres","username":"app","password":"s3cr3t"}"#;
        assert_eq!(credential_name("postgres", db), "user app");
        let iam = r#"{"userName":"ci","accessKeyId":"AKIA1","secretAccessKey":"x"}"#;
        assert_eq!(credential_name("iam-access-key", iam), "access key AKIA1");
        assert_eq!(credential_name("postgres", "not json"), "-");
    }
}
