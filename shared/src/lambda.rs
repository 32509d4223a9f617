//! The Lambda glue every function binary shares: logging set-up, event parsing, one log line
//! per step, and errors that name the step.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

use crate::event::{RotationEvent, Step};
use crate::protocol::Engine;

/// Runs the Lambda runtime loop. `only` is the step a step binary runs; `None` (the `rotate`
/// function) runs whichever step the event asks for.
pub async fn serve(only: Option<Step>) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let engine = Engine::from_env().await.inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the rotation function");
    })?;
    let engine = &engine;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(engine, only, &event.payload).await
    }))
    .await
}

/// Handles one invocation: parses the event, runs the step, logs one line, and returns the
/// step's report (or an error naming the step and the secret).
pub async fn handle(engine: &Engine, only: Option<Step>, payload: &Value) -> Result<Value, Error> {
    let event = RotationEvent::from_value(payload).inspect_err(|e| {
        tracing::error!(error = %e, "rejected an invalid rotation event");
    })?;
    let started = std::time::Instant::now();
    match engine.run(&event, only).await {
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
            Ok(serde_json::to_value(&report)?)
        }
        Err(e) => {
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::error!(
                secret_id = %event.secret_id,
                step = %event.step,
                token = %event.client_request_token,
                outcome = "failed",
                duration_ms,
                error = %e,
                "rotation step failed"
            );
            Err(format!("{} failed for {}: {e}", event.step, event.secret_id).into())
        }
    }
}
