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

use rotation_json::Fields;
use serde_json::Value;

use super::error::CompromiseError;
use super::incident::Incident;

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
        let detail = value.get("detail").unwrap_or(value);
        let detail = Fields::named("detail", detail, CompromiseError::Request)?;
        let secret_ids = detail
            .optional_str_array("secretIds")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, id)| match id.trim() {
                "" => Err(detail.empty(&format!("secretIds[{i}]"))),
                id => Ok(id.to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tags = detail
            .optional_str_map("tags")?
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| match key {
                "" => Err(detail.error("tags", "a tag key is empty")),
                key => Ok((key.to_owned(), value.to_owned())),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let incident = match detail.maybe_empty_str("incident")? {
            None => None,
            Some(s) => Some(Incident::parse(s)?.as_str().to_owned()),
        };
        if secret_ids.is_empty() && tags.is_empty() {
            return Err(CompromiseError::Request(
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
            (
                json!({"secretIds": ["a", " "]}),
                "`detail.secretIds[1]` is empty",
            ),
            (
                json!({"tags": {"": "x"}}),
                "`detail.tags`: a tag key is empty",
            ),
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
