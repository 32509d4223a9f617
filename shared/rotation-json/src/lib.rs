//! Reading JSON objects of untrusted input (rotation events, secret values, keyrings,
//! compromise requests) field by field.
//!
//! A value read here may be a secret, so no error ever quotes one: an error names the field
//! (with its path, e.g. `keys[3].material`), what was expected and the JSON type found
//! ("field `port`: expected a string, got a number"), or where a syntax error is. That is why
//! this is not serde's derive: its errors quote the offending value.
//!
//! Each caller keeps its own error type: [`Fields`] and [`parse_object`] take a function (or,
//! for [`Fields`], any [`MakeError`]) that turns the message into the caller's error (a
//! rotation event error, an invalid secret version, an invalid keyring, a refused compromise
//! request).

mod fields;

pub use fields::{Fields, MakeError};

use serde_json::{Map, Value};

/// A short name of a JSON value's type ("a string", "an object", "null"), for messages that
/// must not show the value.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses `text` into a JSON object. `what` names the document in errors ("the secret"), and
/// `error` turns the message into the caller's error. An error says which JSON type the text
/// holds instead, or the line and column of the syntax error; it never quotes the text.
pub fn parse_object<E>(
    text: &str,
    what: &str,
    error: impl FnOnce(String) -> E,
) -> Result<Map<String, Value>, E> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(error(format!(
            "{what} must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(error(format!(
            "{what} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "hunter2-very-secret";

    #[test]
    fn type_names_are_the_json_types() {
        for (value, name) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(1.5), "a number"),
            (json!(SECRET), "a string"),
            (json!([SECRET]), "an array"),
            (json!({"k": SECRET}), "an object"),
        ] {
            assert_eq!(type_name(&value), name);
        }
    }

    #[test]
    fn parse_object_returns_the_object() {
        let map = parse_object(r#"{"a": 1, "b": "two"}"#, "the secret", |m| m).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["b"], "two");
    }

    #[test]
    fn parse_object_names_the_type_found_or_where_the_syntax_error_is_never_the_text() {
        for (text, expected) in [
            (
                format!("[\"{SECRET}\"]"),
                "the secret must be a JSON object, got an array",
            ),
            (
                format!("\"{SECRET}\""),
                "the secret must be a JSON object, got a string",
            ),
            (
                format!("{{\"password\": {SECRET}}}"),
                "the secret is not valid JSON (line 1, column 14)",
            ),
            (
                format!("\n\n  {SECRET}"),
                "the secret is not valid JSON (line 3, column 3)",
            ),
            (
                String::new(),
                "the secret is not valid JSON (line 1, column 0)",
            ),
        ] {
            let err = parse_object(&text, "the secret", |m| m).unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.contains(SECRET), "{err}");
        }
    }

    #[test]
    fn parse_object_builds_the_callers_error() {
        #[derive(Debug, PartialEq)]
        struct Invalid(String);
        let err = parse_object("1", "the keyring", Invalid).unwrap_err();
        assert_eq!(
            err,
            Invalid("the keyring must be a JSON object, got a number".into())
        );
    }
}
