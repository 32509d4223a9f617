//! The "Secret Compromised" event: which secrets an incident exposed.
//!
//! ```json
//! {
//!   "source": "secret-rotation.incident",
//!   "detail-type": "Secret Compromised",
//!   "detail": {
//!     "secretIds": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-AbCdEf"],
//!     "tags": {"team": "payments"},
//!     "incident": "INC-1234"
//!   }
//! }
//! ```
//!
//! `secretIds` (ARNs or names) and `tags` (every secret carrying all these tags) may be given
//! together; at least one must select something. The bare `detail` object is accepted too.
//! `incident` (1 to 64 letters, digits or `_.:/=+-@`) is required by the function: the
//! response runs once per incident and secret, and is recorded on the secret.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::CompromiseError;
use super::incident::Incident;
use crate::event::json_type_name;

/// The EventBridge `source` of compromise events.
pub const SOURCE: &str = "secret-rotation.incident";
/// The EventBridge `detail-type` of compromise events.
pub const DETAIL_TYPE: &str = "Secret Compromised";

/// What a compromise event asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompromiseRequest {
    /// Secrets named by ARN or name.
    pub secret_ids: Vec<String>,
    /// Tags a secret must all carry to be selected.
    pub tags: BTreeMap<String, String>,
    /// The incident's id (checked when given; the function requires it).
    pub incident: Option<String>,
}

impl CompromiseRequest {
    /// Parses an EventBridge event (or its bare `detail`), naming the field that is wrong.
    pub fn from_value(value: &Value) -> Result<Self, CompromiseError> {
        let bad = |message: String| CompromiseError::Request(message);
        let detail = match value.get("detail") {
            Some(detail) => detail,
            None => value,
        };
        let object = detail.as_object().ok_or_else(|| {
            bad(format!(
                "field `detail`: expected a JSON object, got {}",
                json_type_name(detail)
            ))
        })?;
        let secret_ids = match object.get("secretIds") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item.as_str().map(str::trim) {
                    Some(id) if !id.is_empty() => Ok(id.to_owned()),
                    _ => Err(bad(format!(
                        "field `detail.secretIds[{i}]`: expected a non-empty string, got {}",
                        json_type_name(item)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "field `detail.secretIds`: expected an array of ARNs, got {}",
                    json_type_name(other)
                )))
            }
        };
        let tags = match object.get("tags") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| match value.as_str() {
                    Some(v) if !key.is_empty() => Ok((key.clone(), v.to_owned())),
                    _ => Err(bad(format!(
                        "field `detail.tags.{key}`: expected a string tag value and a non-empty key, got {}",
                        json_type_name(value)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "field `detail.tags`: expected an object of tag keys to values, got {}",
                    json_type_name(other)
                )))
            }
        };
        let incident = match object.get("incident") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Incident::parse(s)?.as_str().to_owned()),
            Some(other) => {
                return Err(bad(format!(
                    "field `detail.incident`: expected a string, got {}",
                    json_type_name(other)
                )))
            }
        };
        if secret_ids.is_empty() && tags.is_empty() {
            return Err(bad(
                "name the compromised secrets in `detail.secretIds` or `detail.tags`".to_owned(),
            ));
        }
        Ok(CompromiseRequest {
            secret_ids,
            tags,
            incident,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_an_eventbridge_event_and_a_bare_detail() {
        let detail =
            json!({"secretIds": ["arn:a"], "tags": {"team": "payments"}, "incident": "INC-1"});
        let event = json!({"source": SOURCE, "detail-type": DETAIL_TYPE, "detail": detail});
        let request = CompromiseRequest::from_value(&event).unwrap();
        assert_eq!(request.secret_ids, vec!["arn:a"]);
        assert_eq!(request.tags["team"], "payments");
        assert_eq!(request.incident.as_deref(), Some("INC-1"));
        assert_eq!(CompromiseRequest::from_value(&detail).unwrap(), request);
    }

    #[test]
    fn names_the_bad_field() {
        for (value, needle) in [
            (json!({"detail": []}), "`detail`"),
            (json!({"detail": {}}), "`detail.secretIds` or `detail.tags`"),
            (json!({"secretIds": "arn:a"}), "`detail.secretIds`"),
            (json!({"secretIds": ["a", 3]}), "`detail.secretIds[1]`"),
            (json!({"tags": {"team": 1}}), "`detail.tags.team`"),
            (json!({"tags": ["team"]}), "`detail.tags`"),
            (
                json!({"secretIds": ["a"], "incident": 5}),
                "`detail.incident`",
            ),
            (
                json!({"secretIds": ["a"], "incident": "INC 1"}),
                "`detail.incident`",
            ),
        ] {
            let err = CompromiseRequest::from_value(&value)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err} should name {needle}");
        }
    }
}
