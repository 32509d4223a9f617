//! The Lambda glue every function binary shares: logging set-up, event parsing, one log line
//! per step, one metrics line per step ([`crate::metrics`]), the rotation's outcome published
//! to EventBridge when a bus is configured ([`crate::publisher`]), and errors that name the step.

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

use crate::deadline::Deadline;
use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::mode::Caller;
use crate::protocol::{Engine, StepFacts};
use crate::report::StepReport;
use crate::telemetry::{Status, StepTelemetry};

/// A failed invocation as Lambda reports it: `errorType` is the kind of failure
/// ([`RotationError::kind`]), `errorMessage` names the step and the secret.
#[derive(Debug)]
pub struct StepFailure {
    kind: &'static str,
    message: String,
}

impl StepFailure {
    /// The `errorType`: the kind of failure.
    pub fn kind(&self) -> &str {
        self.kind
    }

    /// The `errorMessage`: the step, the secret and why.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<StepFailure> for Diagnostic {
    fn from(failure: StepFailure) -> Self {
        Diagnostic {
            error_type: failure.kind.to_owned(),
            error_message: failure.message,
        }
    }
}

/// Runs the Lambda runtime loop as `caller`: the `rotate` function runs whichever step the
/// event asks for; a step function runs only its own step.
pub async fn serve(caller: Caller) -> Result<(), Error> {
    crate::logging::init();
    let engine = Engine::from_env(caller.function_name())
        .await
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot start the rotation function");
        })?;
    let engine = &engine;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::of_invocation(event.context.deadline);
        handle_until(engine, caller, &event.payload, deadline).await
    }))
    .await
}

/// Handles one invocation: parses the event, runs the step, logs one line, and returns the
/// step's report (or a failure naming the step and the secret).
pub async fn handle(
    engine: &Engine,
    caller: Caller,
    payload: &Value,
) -> Result<Value, StepFailure> {
    handle_until(engine, caller, payload, Deadline::NONE).await
}

/// [`handle`] within the invocation's `deadline`. The step runs until the reserve for
/// reporting its outcome ([`crate::config::Config::report_reserve`]) is all that is left; a
/// step still running then is stopped (as a Lambda timeout would stop it: every step is safe
/// to stop anywhere and to run again) and fails with `errorType` `Timeout`, so that its
/// metrics line and outcome event are written, which a Lambda timeout never does.
pub async fn handle_until(
    engine: &Engine,
    caller: Caller,
    payload: &Value,
    deadline: Deadline,
) -> Result<Value, StepFailure> {
    let event = RotationEvent::from_value(payload).map_err(|e| {
        tracing::error!(error = %e, "rejected an invalid rotation event");
        StepFailure {
            kind: e.kind(),
            message: e.to_string(),
        }
    })?;
    let started = std::time::Instant::now();
    let mut facts = StepFacts::default();
    let reserve = engine.config.report_reserve();
    tracing::debug!(
        remaining_ms = deadline.remaining().map(|d| d.as_millis()),
        "invocation deadline"
    );
    let step = engine.run_until(&event, caller, deadline, &mut facts);
    let result = match deadline.less(reserve) {
        None => step.await,
        Some(cut) => match tokio::time::timeout_at(cut.into(), step).await {
            Ok(result) => result,
            Err(_) => Err(RotationError::Timeout {
                what: format!("the {} step", event.step),
                detail: format!(
                    "stopped {} ms before the invocation's deadline (the function's timeout), after {} ms, to report the failure; the step is safe to run again; give the function a longer timeout if this repeats",
                    reserve.as_millis(),
                    started.elapsed().as_millis()
                ),
            }),
        },
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = step_outcome(caller, &event, &facts, &result, duration_ms);
    crate::metrics::emit(&engine.config.metrics_namespace, &outcome);
    if let Some(publisher) = &engine.publisher {
        publisher.publish(&outcome, deadline).await;
    }
    match result {
        Ok(report) => {
            tracing::info!(
                secret_arn = %report.secret_arn,
                step = %report.step,
                token = %report.token,
                provider = report.provider.as_deref().unwrap_or("-"),
                strategy = report.strategy.as_deref().unwrap_or("-"),
                outcome = report.outcome.as_str(),
                duration_ms = report.duration_ms,
                secrets_manager_calls = report.secrets_manager_calls,
                "rotation step succeeded"
            );
            serde_json::to_value(&report).map_err(|e| StepFailure {
                kind: "Internal",
                message: format!("cannot encode the step report: {e}"),
            })
        }
        Err(e) => {
            tracing::error!(
                secret_id = %event.secret_id,
                step = %event.step,
                token = %event.client_request_token,
                outcome = "failed",
                error_type = e.kind(),
                duration_ms,
                error = %e,
                "rotation step failed"
            );
            Err(failure(&event, &e))
        }
    }
}

/// The facts of one invocation that its metrics and its outcome event carry.
fn step_outcome(
    caller: Caller,
    event: &RotationEvent,
    facts: &StepFacts,
    result: &Result<StepReport, RotationError>,
    step_duration_ms: u64,
) -> StepTelemetry {
    let (status, provider, strategy, error) = match result {
        Ok(report) if facts.declined.is_some() => (
            Status::OutsideWindow,
            report.provider.clone(),
            report.strategy.clone(),
            None,
        ),
        Ok(report) if facts.finished_rotation => (
            Status::Succeeded,
            report.provider.clone(),
            report.strategy.clone(),
            None,
        ),
        Ok(report) => (
            Status::StepDone,
            report.provider.clone(),
            report.strategy.clone(),
            None,
        ),
        Err(e) => (Status::Failed, None, None, Some(e)),
    };
    StepTelemetry {
        status,
        function: caller.function_name(),
        step: event.step,
        secret_arn: facts
            .secret_arn
            .clone()
            .unwrap_or_else(|| event.secret_id.clone()),
        secret_name: facts.secret_name.clone(),
        mode: facts.mode,
        version: event.client_request_token.clone(),
        provider,
        strategy,
        step_duration_ms,
        rotation_duration_ms: facts.rotation_duration_ms,
        error_type: error.map(RotationError::kind),
        error_message: error.map(|e| failure(event, e).message),
        reason: facts.declined.clone(),
        sessions: facts.sessions.clone(),
    }
}

fn failure(event: &RotationEvent, e: &RotationError) -> StepFailure {
    StepFailure {
        kind: e.kind(),
        message: format!("{} of {} failed: {e}", event.step, event.secret_id),
    }
}
