//! Secrets Manager's rotation protocol: the checks every step makes, the idempotency of each
//! step, and the label moves. Providers do the credential-specific work.
//!
//! The Secrets Manager calls each step makes are counted in `docs/architecture.md` ("Secrets
//! Manager calls per rotation"), the one place that figure is written.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use rustls::ClientConfig;

use crate::concurrent::{self, Decision};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Result, RotationError};
use crate::event::{RotationEvent, Step};
use crate::mode::{Caller, Mode};
use crate::providers::{self, StepContext};
use crate::publisher::EventPublisher;
use crate::report::{Outcome, StepReport};
use crate::secrets_manager::{SecretMetadata, SecretsManager, AWSCURRENT, AWSPENDING};
use crate::window::Gate;

/// What a process keeps between invocations: clients and configuration.
#[derive(Clone)]
pub struct Engine {
    /// The AWS configuration (region, credentials, endpoints), for providers' own clients.
    pub aws: aws_config::SdkConfig,
    /// The Secrets Manager SDK client.
    pub client: aws_sdk_secretsmanager::Client,
    /// The configuration.
    pub config: Config,
    /// TLS for database connections.
    pub tls: Arc<ClientConfig>,
    /// Where rotation outcomes are published, when `ROTATION_EVENT_BUS` names a bus.
    pub publisher: Option<EventPublisher>,
}

/// What a step learned about the secret and the rotation, for metrics and events, filled in as
/// far as the step got before it failed.
#[derive(Debug, Clone, Default)]
pub struct StepFacts {
    /// The secret's ARN, once DescribeSecret answered.
    pub secret_arn: Option<String>,
    /// The secret's name, once DescribeSecret answered.
    pub secret_name: Option<String>,
    /// The secret's rotation mode, when its tag is valid.
    pub mode: Option<Mode>,
    /// Whether this step finished the rotation (finishSecret moved AWSCURRENT or completed a
    /// finish that had stopped half-way).
    pub finished_rotation: bool,
    /// The whole rotation's wall time, when this step finished it and its start is known.
    pub rotation_duration_ms: Option<u64>,
    /// Why createSecret declined to start the rotation (outside the secret's rotation window).
    pub declined: Option<String>,
    /// What the step found and did about live sessions (also when it failed: a refusal names
    /// the consumers).
    pub sessions: Option<providers::sessions::SessionFacts>,
}

impl Engine {
    /// Builds the engine from the environment (AWS config chain and the function's variables)
    /// for the function named `function` (its calls name it in their user agent).
    pub async fn from_env(function: &str) -> Result<Self> {
        let config = Config::from_env()?;
        let aws = config.load_aws(function).await;
        Self::new(aws, config)
    }

    /// The engine for `config` with the AWS configuration `aws` (the functions load it from the
    /// environment, `rotator` from its own options).
    pub fn new(aws: aws_config::SdkConfig, config: Config) -> Result<Self> {
        // Every TLS client in the process (database drivers, the AWS SDK) uses aws-lc-rs.
        crate::tls::install_default_provider();
        let tls = crate::tls::client_config(config.db_ca_file.as_deref())?;
        Ok(Engine {
            client: aws_sdk_secretsmanager::Client::new(&aws),
            publisher: config
                .event_bus
                .clone()
                .map(|bus| EventPublisher::new(&aws, bus, config.publish_timeout)),
            aws,
            config,
            tls,
        })
    }

    /// Proves that `value`, the version of the secret `metadata` describes labelled `stage`,
    /// works now: the provider's testSecret on it ([`providers::test_version`]), changing
    /// nothing. `rotator rollback` proves AWSPREVIOUS with it before moving labels.
    pub async fn test_version(
        &self,
        metadata: &SecretMetadata,
        value: &secrecy::SecretString,
        stage: &str,
    ) -> Result<providers::ProviderResult<()>> {
        let sm = SecretsManager::new(self.client.clone());
        let ctx = StepContext {
            aws: &self.aws,
            secrets_manager: &sm,
            config: &self.config,
            tls: &self.tls,
            secret: metadata,
            warnings: Mutex::new(Vec::new()),
            sessions: Mutex::new(None),
            deadline: Deadline::NONE,
        };
        providers::test_version(&ctx, value, stage).await
    }

    /// Runs one step of the rotation the event describes, as `caller`: the `rotate` function
    /// runs any step of a Secrets Manager mode secret, a step function only its own step of a
    /// workflow mode secret.
    pub async fn run(&self, event: &RotationEvent, caller: Caller) -> Result<StepReport> {
        self.run_with_facts(event, caller, &mut StepFacts::default())
            .await
    }

    /// [`Engine::run`], recording in `facts` what the step learned (also when it fails).
    pub async fn run_with_facts(
        &self,
        event: &RotationEvent,
        caller: Caller,
        facts: &mut StepFacts,
    ) -> Result<StepReport> {
        self.run_until(event, caller, Deadline::NONE, facts).await
    }

    /// [`Engine::run_with_facts`] within the invocation's `deadline`: the step's waits end
    /// before it (see [`crate::deadline`]).
    pub async fn run_until(
        &self,
        event: &RotationEvent,
        caller: Caller,
        deadline: Deadline,
        facts: &mut StepFacts,
    ) -> Result<StepReport> {
        if let Caller::Step(expected) = caller {
            if expected != event.step {
                return Err(RotationError::WrongStep {
                    expected,
                    got: event.step,
                });
            }
        }
        let started = Instant::now();
        let sm = SecretsManager::new(self.client.clone());
        let metadata = sm.describe(&event.secret_id).await?;
        facts.secret_arn = Some(metadata.arn.clone());
        facts.secret_name = Some(metadata.name.clone());
        facts.mode = Mode::of(&metadata.tags, &metadata.arn).ok();
        crate::mode::check(caller, &metadata)?;
        // The window matters only where a rotation would start (or a declined one's later
        // steps): a malformed tag never fails a rotation already in progress.
        let now = SystemTime::now();
        let mut report = StepReport {
            step: event.step.as_str().to_owned(),
            secret_arn: metadata.arn.clone(),
            token: event.client_request_token.clone(),
            provider: None,
            strategy: None,
            outcome: Outcome::Done,
            duration_ms: 0,
            secrets_manager_calls: 0,
            warnings: Vec::new(),
            note: None,
            sessions: None,
        };
        let ctx = StepContext {
            aws: &self.aws,
            secrets_manager: &sm,
            config: &self.config,
            tls: &self.tls,
            secret: &metadata,
            warnings: Mutex::new(Vec::new()),
            deadline,
            sessions: Mutex::new(None),
        };
        let outcome = async {
            Ok::<_, RotationError>(match check_token(&metadata, event) {
                Ok(TokenState::AlreadyCurrent) => {
                    facts.finished_rotation = finish_leftover(&sm, &metadata, event).await?;
                    Outcome::AlreadyCurrent
                }
                Ok(TokenState::Pending { has_version }) => match event.step {
                    Step::Create => create(&ctx, event, has_version, now, &mut report).await?,
                    Step::Set => set(&ctx, event, &mut report).await?,
                    Step::Test => test(&ctx, event, &mut report).await?,
                    Step::Finish => {
                        facts.finished_rotation = true;
                        finish(&sm, &metadata, event).await?
                    }
                },
                // The later steps of a rotation createSecret declined outside the window:
                // Secrets Manager invokes them anyway, and the workflow passes the token on.
                Err(e @ RotationError::BadToken { .. }) => {
                    if !Gate::of(&metadata, now)?.restricts() {
                        return Err(e);
                    }
                    let note = format!(
                        "version {} is not pending: createSecret declined this rotation outside the rotation window (tag {}), so {} does nothing",
                        event.client_request_token,
                        crate::window::TAG,
                        event.step
                    );
                    tracing::info!(secret_arn = %metadata.arn, step = %event.step, "{note}");
                    report.note = Some(note);
                    Outcome::OutsideWindow
                }
                Err(e) => return Err(e),
            })
        }
        .await;
        facts.sessions = ctx.sessions.lock().ok().and_then(|mut s| s.take());
        report.sessions = facts.sessions.clone();
        report.outcome = outcome?;
        if event.step == Step::Create && report.outcome == Outcome::OutsideWindow {
            facts.declined.clone_from(&report.note);
        }
        if facts.finished_rotation {
            let summary = summarize(&ctx, event, caller).await;
            report.provider = summary.provider;
            report.strategy = summary.strategy;
            facts.rotation_duration_ms = summary.started.and_then(|started| {
                SystemTime::now()
                    .duration_since(started)
                    .ok()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            });
        }
        report.warnings = ctx.warnings.into_inner().unwrap_or_default();
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.secrets_manager_calls = sm.calls();
        Ok(report)
    }
}

enum TokenState {
    AlreadyCurrent,
    Pending { has_version: bool },
}

/// The checks AWS's templates make on every step (rotation enabled is checked with the mode):
/// the token is a version of the secret labelled AWSPENDING (createSecret also takes a token
/// that is not a version yet), and a token that is already AWSCURRENT means the rotation is done.
fn check_token(metadata: &SecretMetadata, event: &RotationEvent) -> Result<TokenState> {
    let bad = |problem: &str| RotationError::BadToken {
        secret: metadata.arn.clone(),
        token: event.client_request_token.clone(),
        problem: problem.to_owned(),
    };
    match metadata.stages_of(&event.client_request_token) {
        None if event.step == Step::Create => Ok(TokenState::Pending { has_version: false }),
        None => Err(bad(
            "is not a version of this secret (run createSecret first, or check the SecretId)",
        )),
        Some(stages) if stages.iter().any(|s| s == AWSCURRENT) => Ok(TokenState::AlreadyCurrent),
        Some(stages) if stages.iter().any(|s| s == AWSPENDING) => {
            Ok(TokenState::Pending { has_version: true })
        }
        Some(_) => Err(bad("is not labelled AWSPENDING for rotation")),
    }
}

/// A token that is AWSCURRENT but still AWSPENDING: finishSecret crashed between its two label
/// moves. Any step that sees it completes the finish. Returns whether it did.
async fn finish_leftover(
    sm: &SecretsManager,
    metadata: &SecretMetadata,
    event: &RotationEvent,
) -> Result<bool> {
    let stages = metadata
        .stages_of(&event.client_request_token)
        .unwrap_or_default();
    if event.step == Step::Finish && stages.iter().any(|s| s == AWSPENDING) {
        sm.move_stage(
            &metadata.arn,
            AWSPENDING,
            None,
            Some(&event.client_request_token),
        )
        .await?;
        return Ok(true);
    }
    Ok(false)
}

/// What the outcome of a finished rotation reports beyond the finish step's own work.
struct Summary {
    provider: Option<String>,
    strategy: Option<String>,
    started: Option<SystemTime>,
}

/// The provider, strategy and start of a rotation that just finished. The workflow passes them
/// in the event (finish-secret reads no secret value). Without them, the `rotate` function, which
/// reads secret values in every other step anyway, reads the new version once: its value names
/// the provider, its creation date is the rotation's start. Best effort: the rotation is done,
/// so a failure here only leaves the fields out (and is logged).
async fn summarize(ctx: &StepContext<'_>, event: &RotationEvent, caller: Caller) -> Summary {
    let context = &event.context;
    let started = context.started_at.as_deref().and_then(|raw| {
        aws_smithy_types::DateTime::from_str(raw, aws_smithy_types::date_time::Format::DateTime)
            .ok()
            .and_then(|d| SystemTime::try_from(d).ok())
    });
    let mut summary = Summary {
        provider: context.provider.clone(),
        strategy: context.strategy.clone(),
        started,
    };
    if caller != Caller::Rotate || summary.provider.is_some() {
        return summary;
    }
    let arn = &ctx.secret.arn;
    let read = ctx
        .secrets_manager
        .get_dated_value(arn, &event.client_request_token, AWSCURRENT)
        .await
        .and_then(|(value, created)| {
            providers::profile(&value, arn, AWSCURRENT).map(|profile| (profile, created))
        });
    match read {
        Ok((profile, created)) => {
            summary.provider = Some(profile.provider.to_owned());
            summary.strategy = Some(profile.strategy.to_owned());
            summary.started = summary.started.or(created);
        }
        Err(e) => tracing::warn!(
            secret_arn = %arn,
            error = %e,
            "the rotation finished, but its provider and duration are unknown"
        ),
    }
    summary
}

async fn create(
    ctx: &StepContext<'_>,
    event: &RotationEvent,
    has_version: bool,
    now: SystemTime,
    report: &mut StepReport,
) -> Result<Outcome> {
    let sm = ctx.secrets_manager;
    let arn = &ctx.secret.arn;
    let token = &event.client_request_token;
    // Where nothing reserved the rotation, the race is settled against every version,
    // deprecated ones included (DescribeSecret lists only labelled versions), read now.
    let unreserved = if has_version {
        None
    } else {
        let read_at = Instant::now();
        let mut listed = ctx.secret.clone();
        listed.versions = sm.list_versions(arn).await?;
        Some((listed, read_at))
    };
    let labels = unreserved.as_ref().map_or(ctx.secret, |(listed, _)| listed);
    if let Some(other) = concurrent::other_rotation(labels, token) {
        if !has_version && resumable(ctx, other).await? {
            report.token = other.to_owned();
            return Ok(Outcome::AlreadyDone);
        }
        return Err(in_progress(arn, token, other));
    }
    if has_version && sm.get_value(arn, Some(token), AWSPENDING).await?.is_some() {
        return Ok(Outcome::AlreadyDone);
    }
    match Gate::of(ctx.secret, now)? {
        Gate::Closed(reason) => return decline(ctx, token, has_version, &reason, report).await,
        Gate::Compromise => tracing::info!(
            secret_arn = %arn,
            "a compromise response: the secret's rotation window is ignored"
        ),
        Gate::Unrestricted | Gate::Open => {}
    }
    let current = sm.require_value(arn, None, AWSCURRENT).await?;
    let created = providers::create(ctx, &current).await?;
    report.provider = Some(created.provider.to_owned());
    report.strategy = Some(created.strategy.to_owned());
    sm.put_pending(arn, token, &created.value, event.rotation_token.as_ref())
        .await?;
    // A version created for the token before this step (Secrets Manager's empty AWSPENDING
    // placeholder) reserves the rotation: RotateSecret refuses to start another while it is
    // pending, so there is no race to settle. Without one (the workflow, a person, the local
    // driver), two callers may have passed the check above together.
    if let Some((before, read_at)) = &unreserved {
        settle_race(ctx, before, token, *read_at).await?;
    }
    Ok(Outcome::Done)
}

/// createSecret outside the rotation window: no new version. Secrets Manager's empty AWSPENDING
/// version for the token (`has_version`) loses its label, which leaves the secret as after a
/// successful rotation: RotateSecret refuses to start while AWSPENDING is on a version other
/// than AWSCURRENT, so a label left there would block the next rotation.
async fn decline(
    ctx: &StepContext<'_>,
    token: &str,
    has_version: bool,
    reason: &str,
    report: &mut StepReport,
) -> Result<Outcome> {
    if has_version {
        ctx.secrets_manager
            .move_stage(&ctx.secret.arn, AWSPENDING, None, Some(token))
            .await?;
    }
    tracing::info!(secret_arn = %ctx.secret.arn, token, "createSecret declines the rotation: {reason}");
    report.note = Some(reason.to_owned());
    Ok(Outcome::OutsideWindow)
}

/// Workflow mode's recovery from a failed run. The schedule starts every run with a new token;
/// a run that failed after createSecret left AWSPENDING on its version, and without this every
/// later run would refuse "rotation in progress" for ever (Secrets Manager mode needs none:
/// Secrets Manager retries its own pending rotation). A pending version at least
/// `ROTATION_WORKFLOW_RESUME_AFTER_SECONDS` old (the state machine's `TimeoutSeconds`, so the
/// run that created it has ended, one way or another) is resumed: createSecret reports its id
/// as the rotation's token (the state machine passes it to the later steps) and changes
/// nothing. A younger one may belong to a run still going: refused as before, so two runs never
/// work on one rotation at once. Only a version that holds a value is resumed (a workflow's
/// createSecret always puts one).
async fn resumable(ctx: &StepContext<'_>, pending: &str) -> Result<bool> {
    if Mode::of(&ctx.secret.tags, &ctx.secret.arn)? != Mode::Workflow {
        return Ok(false);
    }
    let Some(created) = pending_created(ctx, pending).await? else {
        return Ok(false);
    };
    let age = SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    let after = ctx.config.workflow_resume_after;
    if age < after {
        return Ok(false);
    }
    ctx.warn(format!(
        "resuming the rotation of version {pending}: it has been pending for {} s, longer than {} ({} s), so the run that started it has ended; this run continues it under that version's token",
        age.as_secs(),
        crate::config::ENV_WORKFLOW_RESUME_AFTER,
        after.as_secs()
    ));
    Ok(true)
}

/// When the pending version `pending` was created, if it holds a value (one GetSecretValue).
async fn pending_created(ctx: &StepContext<'_>, pending: &str) -> Result<Option<SystemTime>> {
    let sm = ctx.secrets_manager;
    let arn = &ctx.secret.arn;
    if sm
        .get_value(arn, Some(pending), AWSPENDING)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(sm
        .created_date(arn, AWSPENDING)
        .and_then(|d| SystemTime::try_from(d).ok()))
}

/// After createSecret's put: goes on only if this rotation holds AWSPENDING and took it from no
/// rotation that may already be past createSecret (see [`concurrent`]). `before` is the step's
/// ListSecretVersionIds before the put, and `read_at` when it was sent. It waits the configured settle time first: a racing
/// rotation that read the labels before this put and took less than that from its read to its
/// own put has put by then. The wait decides only whether two close racers both refuse, never
/// whether a credential is lost, so any value is safe.
async fn settle_race(
    ctx: &StepContext<'_>,
    before: &SecretMetadata,
    token: &str,
    read_at: Instant,
) -> Result<()> {
    let sm = ctx.secrets_manager;
    let arn = &ctx.secret.arn;
    let read_to_put = read_at.elapsed();
    let settle = ctx.config.race_settle;
    tokio::time::sleep(settle).await;
    let mut after = before.clone();
    after.versions = sm.list_versions(arn).await?;
    match concurrent::decide(
        &concurrent::after_put(before, &after, token),
        read_to_put,
        settle,
    ) {
        Decision::GoOn => Ok(()),
        Decision::GiveBack(first) => {
            sm.move_stage(arn, AWSPENDING, Some(&first), Some(token))
                .await?;
            Err(in_progress(arn, token, &first))
        }
        Decision::Refuse(holder) => Err(in_progress(arn, token, &holder)),
    }
}

fn in_progress(arn: &str, token: &str, pending: &str) -> RotationError {
    RotationError::RotationInProgress {
        secret: arn.to_owned(),
        token: token.to_owned(),
        pending: pending.to_owned(),
    }
}

async fn set(
    ctx: &StepContext<'_>,
    event: &RotationEvent,
    report: &mut StepReport,
) -> Result<Outcome> {
    let sm = ctx.secrets_manager;
    let arn = &ctx.secret.arn;
    let pending = sm
        .require_value(arn, Some(&event.client_request_token), AWSPENDING)
        .await?;
    let current = sm.require_value(arn, None, AWSCURRENT).await?;
    let result = providers::set(ctx, &current, &pending).await?;
    report.provider = Some(result.provider.to_owned());
    report.strategy = Some(result.strategy.to_owned());
    Ok(result.value)
}

async fn test(
    ctx: &StepContext<'_>,
    event: &RotationEvent,
    report: &mut StepReport,
) -> Result<Outcome> {
    let pending = ctx
        .secrets_manager
        .require_value(
            &ctx.secret.arn,
            Some(&event.client_request_token),
            AWSPENDING,
        )
        .await?;
    let result = providers::test(ctx, &pending).await?;
    report.provider = Some(result.provider.to_owned());
    report.strategy = Some(result.strategy.to_owned());
    Ok(Outcome::Done)
}

/// finishSecret: AWSCURRENT moves to the token (AWSPREVIOUS follows the old version), then
/// AWSPENDING leaves it. It reads no secret value.
async fn finish(
    sm: &SecretsManager,
    metadata: &SecretMetadata,
    event: &RotationEvent,
) -> Result<Outcome> {
    let token = event.client_request_token.as_str();
    let current = metadata.version_with(AWSCURRENT);
    sm.move_stage(&metadata.arn, AWSCURRENT, Some(token), current)
        .await?;
    sm.move_stage(&metadata.arn, AWSPENDING, None, Some(token))
        .await?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests;
