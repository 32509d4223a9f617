//! CloudWatch metrics as log lines in Embedded Metric Format (EMF): every step invocation prints
//! one JSON line to standard output, which CloudWatch Logs turns into metrics in the configured
//! namespace. Dimensions are `Service` (always `secret-rotation`, for alarms across all secrets)
//! and `Service` + `SecretName`; nothing in the line is a secret value.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::telemetry::{Status, StepTelemetry};

/// Value of the `Service` dimension.
pub const SERVICE: &str = "secret-rotation";
/// Count metric: 1 when a step finished a rotation.
pub const ROTATION_SUCCEEDED: &str = "RotationSucceeded";
/// Count metric: 1 when a step failed.
pub const ROTATION_FAILED: &str = "RotationFailed";
/// Milliseconds metric: the whole rotation, when a step finished it and its start is known.
pub const ROTATION_DURATION: &str = "RotationDuration";
/// Milliseconds metric: one step.
pub const STEP_DURATION: &str = "StepDuration";
/// Count metric: 1 when createSecret declined a rotation outside the secret's rotation window.
pub const ROTATION_OUTSIDE_WINDOW: &str = "RotationOutsideWindow";
/// Count metric: the sessions of the credential a step invalidated (or refused to), on every
/// step that made the in-use check.
pub const SESSIONS_IN_USE: &str = "SessionsInUse";
/// Count metric: the sessions a compromise response's step terminated.
pub const SESSIONS_TERMINATED: &str = "SessionsTerminated";

/// The EMF document of one step invocation.
pub fn emf_document(namespace: &str, outcome: &StepTelemetry, timestamp_ms: u64) -> Value {
    let mut metrics = vec![(STEP_DURATION, "Milliseconds", outcome.step_duration_ms)];
    match outcome.status {
        Status::StepDone => {}
        Status::Succeeded => {
            metrics.push((ROTATION_SUCCEEDED, "Count", 1));
            metrics.push((ROTATION_FAILED, "Count", 0));
            if let Some(ms) = outcome.rotation_duration_ms {
                metrics.push((ROTATION_DURATION, "Milliseconds", ms));
            }
        }
        Status::Failed => {
            metrics.push((ROTATION_SUCCEEDED, "Count", 0));
            metrics.push((ROTATION_FAILED, "Count", 1));
        }
        Status::OutsideWindow => {
            metrics.push((ROTATION_OUTSIDE_WINDOW, "Count", 1));
            metrics.push((ROTATION_FAILED, "Count", 0));
        }
    }
    if let Some(facts) = &outcome.sessions {
        let count = |sessions: &Option<crate::providers::sessions::Sessions>| {
            sessions
                .as_ref()
                .map_or(0, |s| u64::try_from(s.count).unwrap_or(u64::MAX))
        };
        metrics.push((SESSIONS_IN_USE, "Count", count(&facts.in_use)));
        if facts.terminated.is_some() {
            metrics.push((SESSIONS_TERMINATED, "Count", count(&facts.terminated)));
        }
    }
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Service"], ["Service", "SecretName"]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert("Service".into(), json!(SERVICE));
    root.insert("SecretName".into(), json!(outcome.secret_label()));
    root.insert("SecretArn".into(), json!(outcome.secret_arn));
    root.insert("Function".into(), json!(outcome.function));
    root.insert("Step".into(), json!(outcome.step.as_str()));
    root.insert("Status".into(), json!(outcome.status.as_str()));
    root.insert("Version".into(), json!(outcome.version));
    for (key, value) in [
        ("Mode", outcome.mode.map(|m| m.as_str().to_owned())),
        ("Provider", outcome.provider.clone()),
        ("Strategy", outcome.strategy.clone()),
        ("ErrorType", outcome.error_type.map(str::to_owned)),
    ] {
        if let Some(value) = value {
            root.insert(key.into(), json!(value));
        }
    }
    for (name, _, value) in metrics {
        root.insert(name.into(), json!(value));
    }
    Value::Object(root)
}

/// Prints the EMF line of one step invocation to standard output (one line, no prefix, as
/// CloudWatch Logs requires).
pub fn emit(namespace: &str, outcome: &StepTelemetry) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    println!("{}", emf_document(namespace, outcome, now));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::tests::succeeded;

    fn metric_names(doc: &Value) -> Vec<String> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn every_declared_metric_and_dimension_has_a_value() {
        let mut outcome = succeeded();
        for status in [Status::StepDone, Status::Succeeded, Status::Failed] {
            outcome.status = status;
            let doc = emf_document("SecretRotation", &outcome, 1);
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "SecretRotation");
            for name in metric_names(&doc) {
                assert!(doc[&name].is_number(), "{name} has no value in {doc}");
            }
            for set in directive["Dimensions"].as_array().unwrap() {
                for dimension in set.as_array().unwrap() {
                    let key = dimension.as_str().unwrap();
                    assert!(doc[key].is_string(), "{key} has no value in {doc}");
                }
            }
        }
    }

    #[test]
    fn outcome_metrics_follow_the_status() {
        let mut outcome = succeeded();
        let doc = emf_document("N", &outcome, 1);
        assert_eq!(doc[ROTATION_SUCCEEDED], 1);
        assert_eq!(doc[ROTATION_FAILED], 0);
        assert_eq!(doc[ROTATION_DURATION], 340);
        assert_eq!(doc["SecretName"], "app");
        outcome.status = Status::StepDone;
        let doc = emf_document("N", &outcome, 1);
        assert_eq!(metric_names(&doc), vec![STEP_DURATION]);
        outcome.status = Status::Failed;
        outcome.error_type = Some("Database");
        let doc = emf_document("N", &outcome, 1);
        assert_eq!(doc[ROTATION_FAILED], 1);
        assert_eq!(doc["ErrorType"], "Database");
        assert!(doc.get(ROTATION_DURATION).is_none());
    }
}
