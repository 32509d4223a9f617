//! The compromise function's glue: parse the request (its incident id is required), select the
//! secrets within the bound on secrets per incident, plan each, retire each one's credentials
//! once per incident, log one line per secret and answer with the report. One secret's failure
//! does not stop the others; the invocation fails (so Lambda retries it) when any failed, and a
//! retry skips what the first attempt finished.

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::{json, Value};

use super::bounds::Bounds;
use super::error::CompromiseError;
use super::incident::Incident;
use super::plan;
use super::request::CompromiseRequest;
use super::runner::Runner;
use crate::secrets_manager::SecretsManager;

/// Runs the compromise function's Lambda runtime loop.
pub async fn serve() -> Result<(), Error> {
    crate::logging::init();
    // The same bounded AWS calls (attempt and operation timeouts, SDK retries) as the steps.
    let config = crate::config::Config::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the compromise function");
    })?;
    let aws = config.load_aws(crate::mode::COMPROMISE_FUNCTION).await;
    let runner = Runner::from_env(&aws).inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the compromise function");
    })?;
    let bounds = Bounds::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the compromise function");
    })?;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let (runner, client, bounds) = (&runner, &client, &bounds);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        respond(client, runner, bounds, &event.payload).await
    }))
    .await
}

/// Handles one compromise event.
pub async fn respond(
    client: &aws_sdk_secretsmanager::Client,
    runner: &Runner,
    bounds: &Bounds,
    payload: &Value,
) -> Result<Value, Diagnostic> {
    let diagnostic = |e: &CompromiseError| Diagnostic {
        error_type: e.kind().to_owned(),
        error_message: e.to_string(),
    };
    let request = CompromiseRequest::from_value(payload).map_err(|e| {
        tracing::error!(error = %e, "rejected an invalid compromise request");
        diagnostic(&e)
    })?;
    let incident = match request.incident.as_deref() {
        Some(id) => Incident::parse(id),
        None => Err(CompromiseError::Request(
            "field `detail.incident` is missing: name the incident, the response runs once per incident"
                .to_owned(),
        )),
    }
    .map_err(|e| {
        tracing::error!(error = %e, "rejected an invalid compromise request");
        diagnostic(&e)
    })?;
    let secrets = plan::select(client, &request)
        .await
        .and_then(|secrets| {
            bounds.check_secrets(incident.as_str(), secrets.len())?;
            Ok(secrets)
        })
        .map_err(|e| {
            tracing::error!(incident = %incident, error = %e, "cannot select the compromised secrets");
            diagnostic(&e)
        })?;
    let mut retired = Vec::new();
    let mut failed = Vec::new();
    for secret in &secrets {
        let sm = SecretsManager::new(client.clone());
        let result = match plan::plan(&sm, secret).await {
            Ok(plan) => runner
                .retire(&plan, &incident, bounds)
                .await
                .map(|retirement| (plan, retirement)),
            Err(e) => Err(e),
        };
        match result {
            Ok((plan, retirement)) => {
                if retirement.already_retired {
                    tracing::info!(
                        incident = %incident,
                        secret_arn = %plan.secret_arn,
                        "this incident was already answered on this secret; nothing changed"
                    );
                } else {
                    tracing::info!(
                        incident = %incident,
                        secret_arn = %plan.secret_arn,
                        mode = %plan.mode,
                        provider = plan.provider,
                        strategy = plan.strategy,
                        rotations = plan.rotations,
                        "retired every credential valid before the incident"
                    );
                }
                retired.push(json!({
                    "plan": plan,
                    "versions": retirement.versions,
                    "alreadyRetired": retirement.already_retired,
                }));
            }
            Err(e) => {
                tracing::error!(
                    incident = %incident,
                    secret_id = %secret,
                    error_type = e.kind(),
                    error = %e,
                    "cannot retire the compromised credentials"
                );
                failed.push(
                    json!({"secretId": secret, "errorType": e.kind(), "error": e.to_string()}),
                );
            }
        }
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed
            .iter()
            .filter_map(|f| f["secretId"].as_str())
            .collect();
        return Err(Diagnostic {
            error_type: "CompromiseResponseFailed".to_owned(),
            error_message: format!(
                "incident {incident}: {} of {} secrets still hold credentials valid before the incident: {}; {}",
                failed.len(),
                secrets.len(),
                names.join(", "),
                failed
                    .iter()
                    .filter_map(|f| f["error"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    Ok(json!({"incident": incident.as_str(), "retired": retired}))
}
