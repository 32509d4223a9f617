//! The compromise function's glue: parse the request (its incident id is required), select the
//! secrets within the bound on secrets per incident, plan each, retire each one's credentials
//! once per incident, log one line per secret and answer with the report. One secret's failure
//! does not stop the others; the invocation fails (so Lambda retries it) when any failed, and a
//! retry skips what the first attempt finished.
//!
//! ListSecrets is eventually consistent: a tag added in the minutes before the incident may be
//! missing from the first listing. A selection by tag is therefore listed again, and the new
//! secrets retired, until [`Sweep::lag`] has passed since the incident's event (its `time`,
//! else its arrival): the last listing starts after that. When the invocation's deadline
//! comes first, the response does what it found and then fails with `SweepIncomplete`, so
//! that Lambda's asynchronous retry lists again (what was finished is skipped by the record of
//! the incident on each secret, and the bound on secrets per incident counts every listing).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::{json, Value};

use super::bounds::Bounds;
use super::error::CompromiseError;
use super::incident::Incident;
use super::plan;
use super::request::CompromiseRequest;
use super::runner::Runner;
use crate::config::variables;
use crate::deadline::Deadline;
use crate::secrets_manager::SecretsManager;

/// How a selection by tag is listed again while ListSecrets may still lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// How long after the incident's event a listing may still miss a tag
    /// ([`variables::COMPROMISE_LISTING_LAG`]).
    pub lag: Duration,
    /// The pause between two listings.
    pub every: Duration,
    /// The time kept free before the invocation's deadline: no pause ends later than this
    /// before it.
    pub margin: Duration,
}

impl Sweep {
    /// The sweep configured from the environment, naming the variable that is wrong.
    pub fn from_env() -> Result<Self, CompromiseError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The sweep configured through `lookup`: a listing every tenth of the lag (5 to 30 s).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CompromiseError> {
        let lag = variables::COMPROMISE_LISTING_LAG
            .number(&lookup)
            .map(Duration::from_secs)
            .map_err(CompromiseError::Configuration)?;
        Ok(Sweep {
            lag,
            every: (lag / 10).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            margin: Duration::from_secs(5),
        })
    }
}

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
    let sweep = Sweep::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "cannot start the compromise function");
    })?;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let (runner, client, bounds, sweep) = (&runner, &client, &bounds, &sweep);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // One already past (as cargo lambda's emulator sends) is none (see Deadline).
        let deadline = Deadline::of_invocation(event.context.deadline);
        tracing::info!(
            remaining_ms = deadline.remaining().map(|d| d.as_millis()),
            "compromise event received"
        );
        respond(client, runner, bounds, sweep, &event.payload, deadline).await
    }))
    .await
}

/// When the incident's event happened: its EventBridge `time`, if it has a valid one.
fn event_time(payload: &Value) -> Option<SystemTime> {
    let time = payload.get("time")?.as_str()?;
    let parsed =
        aws_smithy_types::DateTime::from_str(time, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    SystemTime::try_from(parsed).ok()
}

/// Handles one compromise event within the invocation's `deadline`.
pub async fn respond(
    client: &aws_sdk_secretsmanager::Client,
    runner: &Runner,
    bounds: &Bounds,
    sweep: &Sweep,
    payload: &Value,
    deadline: Deadline,
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
    // An event dated in the future (a skewed clock) counts from its arrival.
    let arrived = SystemTime::now();
    let settled = event_time(payload).map_or(arrived, |t| t.min(arrived)) + sweep.lag;
    let mut handled: BTreeSet<String> = BTreeSet::new();
    let mut retired = Vec::new();
    let mut failed = Vec::new();
    let mut listings = 0u32;
    let mut incomplete = false;
    let mut nothing = None;
    loop {
        let listed_at = SystemTime::now();
        let selected = match plan::select(client, &request).await {
            Ok(selected) => selected,
            // Nothing carries the tags yet: the listing may lag; refused below if it stays so.
            Err(CompromiseError::Request(refusal)) => {
                nothing = Some(refusal);
                Vec::new()
            }
            Err(e) => {
                tracing::error!(incident = %incident, error = %e, "cannot select the compromised secrets");
                if handled.is_empty() {
                    return Err(diagnostic(&e));
                }
                failed
                    .push(json!({"secretId": "-", "errorType": e.kind(), "error": e.to_string()}));
                break;
            }
        };
        listings += 1;
        let new: Vec<String> = selected
            .into_iter()
            .filter(|s| !handled.contains(s))
            .collect();
        if let Err(e) = bounds.check_secrets(incident.as_str(), handled.len() + new.len()) {
            tracing::error!(incident = %incident, error = %e, "cannot select the compromised secrets");
            let mut refusal = diagnostic(&e);
            if !handled.is_empty() {
                // Earlier listings found fewer (ListSecrets lagged): those stay retired.
                refusal.error_message = format!(
                    "{}; {} secret(s) found by earlier listings were handled: {}",
                    refusal.error_message,
                    handled.len(),
                    handled.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            return Err(refusal);
        }
        if listings > 1 && !new.is_empty() {
            tracing::info!(
                incident = %incident,
                listing = listings,
                found = new.len(),
                "a later listing found secrets the earlier ones missed (ListSecrets lags)"
            );
        }
        for secret in &new {
            handled.insert(secret.clone());
            retire_one(
                client,
                runner,
                bounds,
                &incident,
                secret,
                &mut retired,
                &mut failed,
            )
            .await;
        }
        // Named secrets do not lag; a selection by tag is settled once a listing started after
        // the lag window.
        if request.tags.is_empty() || listed_at >= settled {
            break;
        }
        let now = SystemTime::now();
        let pause = settled
            .duration_since(now)
            .unwrap_or_default()
            .min(sweep.every);
        if deadline
            .remaining()
            .is_some_and(|left| pause + sweep.margin > left)
        {
            incomplete = true;
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let secrets = handled;
    if let (true, false, Some(refusal)) = (secrets.is_empty(), incomplete, nothing) {
        let e = CompromiseError::Request(refusal);
        tracing::error!(incident = %incident, error = %e, "cannot select the compromised secrets");
        return Err(diagnostic(&e));
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
    if incomplete {
        let until = aws_smithy_types::DateTime::from(settled)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        return Err(Diagnostic {
            error_type: "SweepIncomplete".to_owned(),
            error_message: format!(
                "incident {incident}: retired {} secret(s) found in {listings} listing(s), but ListSecrets may still miss tags until {until} ({} s after the incident), past this invocation's deadline; Lambda's retry lists again and skips what is finished",
                secrets.len(),
                sweep.lag.as_secs()
            ),
        });
    }
    Ok(json!({"incident": incident.as_str(), "listings": listings, "retired": retired}))
}

/// Plans and retires one secret, adding its report to `retired` or its error to `failed`.
async fn retire_one(
    client: &aws_sdk_secretsmanager::Client,
    runner: &Runner,
    bounds: &Bounds,
    incident: &Incident,
    secret: &str,
    retired: &mut Vec<Value>,
    failed: &mut Vec<Value>,
) {
    let sm = SecretsManager::new(client.clone());
    let result = match plan::plan(&sm, secret).await {
        Ok(plan) => runner
            .retire(&plan, incident, bounds)
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
            failed.push(json!({"secretId": secret, "errorType": e.kind(), "error": e.to_string()}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_window_comes_from_its_variable_named_when_wrong() {
        let name = variables::COMPROMISE_LISTING_LAG.name;
        let default = Sweep::from_lookup(|_| None).unwrap();
        assert_eq!(default.lag, Duration::from_secs(300));
        assert_eq!(default.every, Duration::from_secs(30));
        let short = Sweep::from_lookup(|n| (n == name).then(|| "8".to_owned())).unwrap();
        assert_eq!(
            (short.lag, short.every),
            (Duration::from_secs(8), Duration::from_secs(1))
        );
        for bad in ["-1", "841", "soon"] {
            let err = Sweep::from_lookup(|n| (n == name).then(|| bad.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn the_incident_time_is_the_events_time_when_valid() {
        let at = event_time(&json!({"time": "2026-12-04T18:00:00Z", "detail": {}})).unwrap();
        assert_eq!(
            at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_796_407_200
        );
        assert_eq!(event_time(&json!({"time": "yesterday"})), None);
        assert_eq!(event_time(&json!({"detail": {}})), None);
    }
}
