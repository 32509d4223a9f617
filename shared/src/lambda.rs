//! The Lambda glue every function binary shares: logging set-up, event parsing, one log line
//! per step, and errors that name the step.

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::mode::Caller;
use crate::protocol::Engine;

/// A failed invocation as Lambda reports it: `errorType` is the kind of failure
/// ([`RotationError::kind`]), `errorMessage` names the step and the secret.
#[derive(Debug)]
pub struct StepFailure {
    kind: &'static str,
    message: String,
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
    lambda_runtime::tracing::init_default_subscriber();
    let engine = Engine::from_env().await.inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the rotation function");
    })?;
    let engine = &engine;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(engine, caller, &event.payload).await
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
    let event = RotationEvent::from_value(payload).map_err(|e| {
        tracing::error!(error = %e, "rejected an invalid rotation event");
        StepFailure {
            kind: e.kind(),
            message: e.to_string(),
        }
    })?;
    let started = std::time::Instant::now();
    match engine.run(&event, caller).await {
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
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
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

fn failure(event: &RotationEvent, e: &RotationError) -> StepFailure {
    StepFailure {
        kind: e.kind(),
        message: format!("{} of {} failed: {e}", event.step, event.secret_id),
    }
}
