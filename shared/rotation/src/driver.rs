//! The local driver: it plays the part of whatever starts a secret's rotation (Secrets Manager
//! for `rotate`, the workflow's state machine for the step functions), invoking createSecret,
//! setSecret, testSecret and finishSecret in order through the Lambda Invoke API and stopping at
//! the first failure. The on-call command line, the compromise response on the local stack, the
//! tests, the demo and the benchmark all rotate through it.
//!
//! Like Secrets Manager, it resumes a rotation in progress: when AWSPENDING sits on a version
//! that is not AWSCURRENT, that version's id is the token of the retry.

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;

use crate::event::{RotationContext, RotationEvent, Step};
use crate::invoke::{InvokeError, LambdaInvoker};
use crate::mode::{Caller, Mode};
use crate::report::StepReport;
use crate::secrets_manager::{labels, version_with, AWSCURRENT, AWSPENDING};

/// One step as the driver saw it.
#[derive(Debug)]
pub struct StepRun {
    /// The step.
    pub step: Step,
    /// The function invoked.
    pub function: &'static str,
    /// Wall time seen by the driver, invocation included.
    pub elapsed: Duration,
    /// The step's report, or why it failed.
    pub result: Result<StepReport, InvokeError>,
}

/// What [`LocalDriver::run_steps_observed`] reports while it runs.
#[derive(Debug)]
pub enum StepProgress<'a> {
    /// A step's function is being invoked.
    Started {
        /// The step.
        step: Step,
        /// The function invoked.
        function: &'static str,
    },
    /// A step ended (successfully or not).
    Finished(&'a StepRun),
}

/// A whole rotation as the driver ran it.
#[derive(Debug)]
pub struct RotationRun {
    /// The secret.
    pub secret_id: String,
    /// The ClientRequestToken of the rotation.
    pub token: String,
    /// Whether the token was an in-progress rotation's (a resumed rotation).
    pub resumed: bool,
    /// The steps run, the failed one last.
    pub steps: Vec<StepRun>,
}

impl RotationRun {
    /// Whether all four steps succeeded.
    pub fn succeeded(&self) -> bool {
        self.steps.len() == Step::ALL.len() && self.steps.iter().all(|s| s.result.is_ok())
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<&InvokeError> {
        self.steps.iter().find_map(|s| s.result.as_ref().err())
    }

    /// Secrets Manager calls made by the functions, summed over the steps.
    pub fn secrets_manager_calls(&self) -> u32 {
        self.steps
            .iter()
            .filter_map(|s| s.result.as_ref().ok())
            .map(|r| r.secrets_manager_calls)
            .sum()
    }
}

/// Drives rotations through the Lambda Invoke API.
#[derive(Debug, Clone)]
pub struct LocalDriver {
    invoker: LambdaInvoker,
    secrets: Client,
    mode: Mode,
}

impl LocalDriver {
    /// A driver invoking, through `invoker`, the functions that rotate a secret in `mode`
    /// (`rotate` for every step, or one step function per step), reading labels through
    /// `secrets`.
    pub fn new(invoker: LambdaInvoker, secrets: Client, mode: Mode) -> Self {
        LocalDriver {
            invoker,
            secrets,
            mode,
        }
    }

    /// The function that runs `step` in the driver's mode.
    fn function(&self, step: Step) -> &'static str {
        Caller::of(self.mode, step).function_name()
    }

    /// The token for the next rotation: the in-progress rotation's, or a new one.
    pub async fn next_token(&self, secret_id: &str) -> Result<(String, bool), String> {
        let labels = labels(&self.secrets, secret_id).await?;
        match (
            version_with(&labels, AWSPENDING),
            version_with(&labels, AWSCURRENT),
        ) {
            (Some(pending), current) if Some(pending) != current => Ok((pending.to_owned(), true)),
            _ => Ok((uuid::Uuid::new_v4().to_string(), false)),
        }
    }

    /// Runs one step.
    pub async fn step(
        &self,
        step: Step,
        secret_id: &str,
        token: &str,
        rotation_token: Option<&SecretString>,
    ) -> StepRun {
        self.step_with(
            step,
            secret_id,
            token,
            rotation_token,
            RotationContext::default(),
        )
        .await
    }

    /// Runs one step, passing `context` in the event as the workflow does.
    pub async fn step_with(
        &self,
        step: Step,
        secret_id: &str,
        token: &str,
        rotation_token: Option<&SecretString>,
        context: RotationContext,
    ) -> StepRun {
        let function = self.function(step);
        let event = RotationEvent {
            step,
            secret_id: secret_id.to_owned(),
            client_request_token: token.to_owned(),
            rotation_token: rotation_token.cloned(),
            context,
        };
        let started = Instant::now();
        let result = self
            .invoker
            .invoke(function, &event.to_value())
            .await
            .and_then(|value| {
                serde_json::from_value::<StepReport>(value).map_err(|e| InvokeError::Function {
                    function: function.to_owned(),
                    error_type: "UnexpectedResponse".into(),
                    message: e.to_string(),
                })
            });
        StepRun {
            step,
            function,
            elapsed: started.elapsed(),
            result,
        }
    }

    /// Runs `steps` in order with `token`, stopping at the first failure. In workflow mode it
    /// passes what the workflow's state machine passes: the rotation's start, the provider
    /// and strategy the steps reported so far, and after createSecret the token it reported
    /// (another run's pending version, when it resumed one).
    pub async fn run_steps(
        &self,
        steps: &[Step],
        secret_id: &str,
        token: &str,
        rotation_token: Option<&SecretString>,
    ) -> Vec<StepRun> {
        self.run_steps_observed(steps, secret_id, token, rotation_token, &mut |_| {})
            .await
    }

    /// [`LocalDriver::run_steps`], telling `observe` when each step starts and ends (for live
    /// progress).
    pub async fn run_steps_observed(
        &self,
        steps: &[Step],
        secret_id: &str,
        token: &str,
        rotation_token: Option<&SecretString>,
        observe: &mut (dyn FnMut(StepProgress<'_>) + Send),
    ) -> Vec<StepRun> {
        let mut runs = Vec::with_capacity(steps.len());
        let mut context = RotationContext::default();
        if self.mode == Mode::Workflow {
            context.started_at = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok();
        }
        let mut token = token.to_owned();
        for &step in steps {
            observe(StepProgress::Started {
                step,
                function: self.function(step),
            });
            let run = self
                .step_with(step, secret_id, &token, rotation_token, context.clone())
                .await;
            if let (Mode::Workflow, Ok(report)) = (self.mode, &run.result) {
                context.provider = report.provider.clone().or(context.provider);
                context.strategy = report.strategy.clone().or(context.strategy);
                // As the state machine does: createSecret may resume another run's pending
                // version, and the later steps take the token it reports.
                if step == Step::Create {
                    token.clone_from(&report.token);
                }
            }
            observe(StepProgress::Finished(&run));
            let failed = run.result.is_err();
            runs.push(run);
            if failed {
                break;
            }
        }
        runs
    }

    /// A whole rotation: resumes one in progress, else starts a new one.
    pub async fn rotate(&self, secret_id: &str) -> Result<RotationRun, String> {
        self.rotate_with(secret_id, None).await
    }

    /// A whole rotation, passing `rotation_token` to every step as Secrets Manager does.
    pub async fn rotate_with(
        &self,
        secret_id: &str,
        rotation_token: Option<&SecretString>,
    ) -> Result<RotationRun, String> {
        let (token, resumed) = self.next_token(secret_id).await?;
        let steps = self
            .run_steps(&Step::ALL, secret_id, &token, rotation_token)
            .await;
        Ok(RotationRun {
            secret_id: secret_id.to_owned(),
            token,
            resumed,
            steps,
        })
    }

    /// The Secrets Manager client it reads labels with.
    pub fn secrets(&self) -> &Client {
        &self.secrets
    }

    /// The invoker, for raw invocations.
    pub fn invoker(&self) -> &LambdaInvoker {
        &self.invoker
    }
}
