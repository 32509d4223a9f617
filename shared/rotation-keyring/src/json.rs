//! Reading the keyring JSON field by field, with errors that name the field and never quote a
//! value (a value may be key material).

use serde_json::{Map, Value};

use crate::error::{KeyringError, Result};

/// The JSON type of a value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses text into a JSON object, reporting only where a syntax error is.
pub(crate) fn object(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(KeyringError::Invalid(format!(
            "the keyring must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(KeyringError::Invalid(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Typed access to the fields of one JSON object; `path` prefixes field names in errors
/// (e.g. `keys[3].`).
pub(crate) struct Fields<'a> {
    pub(crate) map: &'a Map<String, Value>,
    pub(crate) path: String,
}

impl<'a> Fields<'a> {
    /// An error about `field`.
    pub(crate) fn error(&self, field: &str, problem: impl std::fmt::Display) -> KeyringError {
        KeyringError::Invalid(format!("field `{}{field}`: {problem}", self.path))
    }

    /// A field that must be present.
    pub(crate) fn required(&self, field: &str) -> Result<&'a Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => Err(self.error(field, "is missing")),
            Some(v) => Ok(v),
        }
    }

    /// A required string.
    pub(crate) fn string(&self, field: &str) -> Result<&'a str> {
        match self.required(field)? {
            Value::String(s) => Ok(s),
            other => Err(self.error(
                field,
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    /// An optional whole number from 0 to u32::MAX.
    pub(crate) fn optional_u32(&self, field: &str) -> Result<Option<u32>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| self.error(field, "expected a whole number")),
            Some(other) => Err(self.error(
                field,
                format!("expected a whole number, got {}", type_name(other)),
            )),
        }
    }

    /// An optional number.
    pub(crate) fn optional_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.error(field, "expected a number")),
            Some(other) => Err(self.error(
                field,
                format!("expected a number, got {}", type_name(other)),
            )),
        }
    }

    /// Refuses any field not in `known`.
    pub(crate) fn only(&self, known: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(KeyringError::Invalid(format!(
                "unknown field `{}{unknown}`; expected {}",
                self.path,
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}
