//! Typed getters over the fields of one JSON object.

use std::fmt::Display;

use serde_json::{Map, Value};

use crate::type_name;

/// How a reader's caller turns a message into its own error: any `Fn(String) -> E` (an error
/// variant, a closure over the caller's context), or a type of the caller's.
pub trait MakeError {
    /// The caller's error type.
    type Error;

    /// The error for `message`, which names the field and never a value.
    fn make(&self, message: String) -> Self::Error;
}

impl<E, F: Fn(String) -> E> MakeError for F {
    type Error = E;

    fn make(&self, message: String) -> E {
        self(message)
    }
}

/// Typed access to the fields of one JSON object, with errors that name the field and what
/// was expected, never its value.
///
/// A message names the field with the reader's path (`keys[3].material`), and the
/// [`MakeError`] given once, to the constructor, turns it into the caller's error. A field set
/// to `null` counts as absent.
pub struct Fields<'a, M> {
    map: &'a Map<String, Value>,
    path: String,
    make_error: M,
}

impl<'a, E, M: MakeError<Error = E>> Fields<'a, M> {
    /// A reader over `map`, whose errors `error` builds from their messages.
    pub fn new(map: &'a Map<String, Value>, error: M) -> Self {
        Fields {
            map,
            path: String::new(),
            make_error: error,
        }
    }

    /// A reader over `value`, which must be a JSON object (a whole document: the error names
    /// no field).
    pub fn of(value: &'a Value, error: M) -> Result<Self, E> {
        match value {
            Value::Object(map) => Ok(Fields::new(map, error)),
            other => Err(error.make(format!("expected a JSON object, got {}", type_name(other)))),
        }
    }

    /// A reader over `value`, the object a document calls `name` (`detail`); its errors name
    /// fields `name.field`.
    pub fn named(name: &str, value: &'a Value, error: M) -> Result<Self, E> {
        Self::object_at("", name, value, error)
    }

    /// A reader over `value`, the object this one holds at `name` (a field, or an array
    /// element such as `keys[3]`), building its errors as this reader does.
    pub fn nested(&self, name: &str, value: &'a Value) -> Result<Self, E>
    where
        M: Clone,
    {
        Self::object_at(&self.path, name, value, self.make_error.clone())
    }

    fn object_at(parent: &str, name: &str, value: &'a Value, error: M) -> Result<Self, E> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path: format!("{parent}{name}."),
                make_error: error,
            }),
            other => Err(error.make(format!(
                "field `{parent}{name}`: expected a JSON object, got {}",
                type_name(other)
            ))),
        }
    }

    /// An error about `field`: "field `field`: {problem}".
    pub fn error(&self, field: &str, problem: impl Display) -> E {
        self.make_error
            .make(format!("field `{}{field}`: {problem}", self.path))
    }

    /// The error for a required `field` that is absent: "field `field` is missing".
    pub fn missing(&self, field: &str) -> E {
        self.make_error
            .make(format!("field `{}{field}` is missing", self.path))
    }

    /// The error for a `field` that must not be empty: "field `field` is empty".
    pub fn empty(&self, field: &str) -> E {
        self.make_error
            .make(format!("field `{}{field}` is empty", self.path))
    }

    /// The error for a `field` of the wrong type: "field `field`: expected {expected}, got
    /// {the JSON type found}".
    fn wrong_type(&self, field: &str, expected: &str, found: &Value) -> E {
        self.error(
            field,
            format_args!("expected {expected}, got {}", type_name(found)),
        )
    }

    /// The value of `field`, unless it is absent or null.
    fn value(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// An optional string, possibly empty.
    pub fn maybe_empty_str(&self, field: &str) -> Result<Option<&'a str>, E> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
        }
    }

    /// An optional string that is not empty when present.
    pub fn optional_str(&self, field: &str) -> Result<Option<&'a str>, E> {
        match self.maybe_empty_str(field)? {
            Some("") => Err(self.empty(field)),
            text => Ok(text),
        }
    }

    /// A required, non-empty string.
    pub fn required_str(&self, field: &str) -> Result<&'a str, E> {
        self.optional_str(field)?.ok_or_else(|| self.missing(field))
    }

    /// An optional boolean: `true`/`false`, or the strings "true"/"false" in any case (the
    /// form AWS's rotation templates store).
    pub fn optional_bool(&self, field: &str) -> Result<Option<bool>, E> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.error(field, "expected true or false")),
        }
    }

    /// An optional TCP port, 1 to 65535: a number, or a string of digits (the form AWS's
    /// rotation templates store).
    pub fn optional_port(&self, field: &str) -> Result<Option<u16>, E> {
        let port = match self.value(field) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
            Some(_) => None,
        };
        port.filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| self.error(field, "expected a port number from 1 to 65535"))
    }

    /// An optional whole number from 0 to `u32::MAX`.
    pub fn optional_u32(&self, field: &str) -> Result<Option<u32>, E> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| self.error(field, "expected a whole number")),
            Some(other) => Err(self.wrong_type(field, "a whole number", other)),
        }
    }

    /// An optional number.
    pub fn optional_f64(&self, field: &str) -> Result<Option<f64>, E> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.error(field, "expected a number")),
            Some(other) => Err(self.wrong_type(field, "a number", other)),
        }
    }

    /// A required array, its elements of any type.
    pub fn required_array(&self, field: &str) -> Result<&'a [Value], E> {
        match self.value(field) {
            None => Err(self.missing(field)),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong_type(field, "an array", other)),
        }
    }

    /// An optional array of non-empty strings; an error names the element (`field[2]`).
    pub fn optional_str_array(&self, field: &str) -> Result<Option<Vec<&'a str>>, E> {
        let items = match self.value(field) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong_type(field, "an array of strings", other)),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if s.is_empty() => Err(self.empty(&format!("{field}[{i}]"))),
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.wrong_type(&format!("{field}[{i}]"), "a string", other)),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// An optional object whose values are all strings (possibly empty), as key and value
    /// pairs in the object's order; an error names the entry (`field.key`).
    pub fn optional_str_map(&self, field: &str) -> Result<Option<Vec<(&'a str, &'a str)>>, E> {
        let map = match self.value(field) {
            None => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(other) => return Err(self.wrong_type(field, "an object of strings", other)),
        };
        map.iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key.as_str(), s.as_str())),
                other => Err(self.wrong_type(&format!("{field}.{key}"), "a string", other)),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Refuses any field not in `known`: "unknown field `field`; expected a, b".
    pub fn only(&self, known: &[&str]) -> Result<(), E> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(self.make_error.make(format!(
                "unknown field `{}{unknown}`; expected {}",
                self.path,
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A value no error may show.
    const SECRET: &str = "hunter2-very-secret";

    /// The caller's error type in these tests: the message, tagged.
    #[derive(Debug, PartialEq)]
    struct Invalid(String);

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("the tests build objects"),
        }
    }

    fn reader(map: &Map<String, Value>) -> Fields<'_, impl MakeError<Error = Invalid> + Clone> {
        Fields::new(map, Invalid)
    }

    /// The message of `result`'s error, checked never to show [`SECRET`].
    fn message<T>(result: Result<T, Invalid>) -> String {
        let Err(Invalid(message)) = result else {
            panic!("expected an error");
        };
        assert!(!message.contains(SECRET), "{message}");
        message
    }

    #[test]
    fn strings_are_read_and_null_counts_as_absent() {
        let fields = map(json!({"name": "app", "blank": "", "none": null}));
        let r = reader(&fields);
        assert_eq!(r.maybe_empty_str("name"), Ok(Some("app")));
        assert_eq!(r.maybe_empty_str("blank"), Ok(Some("")));
        assert_eq!(r.maybe_empty_str("none"), Ok(None));
        assert_eq!(r.maybe_empty_str("absent"), Ok(None));
        assert_eq!(r.optional_str("name"), Ok(Some("app")));
        assert_eq!(r.optional_str("none"), Ok(None));
        assert_eq!(r.required_str("name"), Ok("app"));
    }

    #[test]
    fn booleans_are_json_booleans_or_their_strings() {
        let fields = map(json!({"a": true, "b": false, "c": "TRUE", "d": "false"}));
        let r = reader(&fields);
        assert_eq!(r.optional_bool("a"), Ok(Some(true)));
        assert_eq!(r.optional_bool("b"), Ok(Some(false)));
        assert_eq!(r.optional_bool("c"), Ok(Some(true)));
        assert_eq!(r.optional_bool("d"), Ok(Some(false)));
        assert_eq!(r.optional_bool("absent"), Ok(None));
    }

    #[test]
    fn ports_are_numbers_or_digits_from_1_to_65535() {
        let fields = map(json!({"n": 5432, "s": " 6543 ", "max": 65535}));
        let r = reader(&fields);
        assert_eq!(r.optional_port("n"), Ok(Some(5432)));
        assert_eq!(r.optional_port("s"), Ok(Some(6543)));
        assert_eq!(r.optional_port("max"), Ok(Some(65535)));
        assert_eq!(r.optional_port("absent"), Ok(None));
        for bad in [
            json!(0),
            json!(65536),
            json!(-1),
            json!(1.5),
            json!("five"),
            json!("0"),
        ] {
            let fields = map(json!({ "port": bad }));
            assert_eq!(
                message(reader(&fields).optional_port("port")),
                "field `port`: expected a port number from 1 to 65535"
            );
        }
    }

    #[test]
    fn numbers_are_read_when_in_range() {
        let fields = map(json!({"n": 24, "max": u32::MAX, "neg": -1, "half": 0.5}));
        let r = reader(&fields);
        assert_eq!(r.optional_u32("n"), Ok(Some(24)));
        assert_eq!(r.optional_u32("max"), Ok(Some(u32::MAX)));
        assert_eq!(r.optional_u32("absent"), Ok(None));
        assert_eq!(r.optional_f64("half"), Ok(Some(0.5)));
        assert_eq!(r.optional_f64("neg"), Ok(Some(-1.0)));
        assert_eq!(r.optional_f64("absent"), Ok(None));
    }

    #[test]
    fn arrays_maps_and_nested_objects_are_read() {
        let value = json!({"keys": [1, {"id": "a"}], "ids": ["a", "b"],
            "tags": {"a": "1", "b": ""}});
        let r = Fields::of(&value, Invalid).unwrap();
        let keys = r.required_array("keys").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            r.nested("keys[1]", &keys[1]).unwrap().required_str("id"),
            Ok("a")
        );
        assert_eq!(r.optional_str_array("ids"), Ok(Some(vec!["a", "b"])));
        assert_eq!(r.optional_str_array("absent"), Ok(None));
        assert_eq!(
            r.optional_str_map("tags"),
            Ok(Some(vec![("a", "1"), ("b", "")]))
        );
        assert_eq!(r.optional_str_map("absent"), Ok(None));
        assert_eq!(r.only(&["keys", "ids", "tags"]), Ok(()));
    }

    #[test]
    fn every_refusal_names_the_field_and_what_was_expected() {
        let value = json!({"blank": "", "number": 12345, "list": [SECRET], "text": SECRET,
            "big": 4_294_967_296_u64, "neg": -1, "half": 0.5, "yes": "yes",
            "holed": ["a", 12345], "blanks": ["a", ""], "bad": {"team": 12345},
            "detail": {"entries": [{"id": 12345}, SECRET]}});
        let r = Fields::of(&value, Invalid).unwrap();
        let detail = r.nested("detail", &value["detail"]).unwrap();
        let entries = detail.required_array("entries").unwrap();
        let first = detail.nested("entries[0]", &entries[0]).unwrap();
        let cases = [
            (
                r.required_str("absent").map(drop),
                "field `absent` is missing",
            ),
            (r.required_str("blank").map(drop), "field `blank` is empty"),
            (r.optional_str("blank").map(drop), "field `blank` is empty"),
            (
                r.required_str("number").map(drop),
                "field `number`: expected a string, got a number",
            ),
            (
                r.maybe_empty_str("list").map(drop),
                "field `list`: expected a string, got an array",
            ),
            (
                r.optional_bool("yes").map(drop),
                "field `yes`: expected true or false",
            ),
            (
                r.optional_u32("big").map(drop),
                "field `big`: expected a whole number",
            ),
            (
                r.optional_u32("neg").map(drop),
                "field `neg`: expected a whole number",
            ),
            (
                r.optional_u32("half").map(drop),
                "field `half`: expected a whole number",
            ),
            (
                r.optional_u32("text").map(drop),
                "field `text`: expected a whole number, got a string",
            ),
            (
                r.optional_f64("text").map(drop),
                "field `text`: expected a number, got a string",
            ),
            (
                r.required_array("absent").map(drop),
                "field `absent` is missing",
            ),
            (
                r.required_array("text").map(drop),
                "field `text`: expected an array, got a string",
            ),
            (
                r.optional_str_array("text").map(drop),
                "field `text`: expected an array of strings, got a string",
            ),
            (
                r.optional_str_array("holed").map(drop),
                "field `holed[1]`: expected a string, got a number",
            ),
            (
                r.optional_str_array("blanks").map(drop),
                "field `blanks[1]` is empty",
            ),
            (
                r.optional_str_map("bad").map(drop),
                "field `bad.team`: expected a string, got a number",
            ),
            (
                r.optional_str_map("list").map(drop),
                "field `list`: expected an object of strings, got an array",
            ),
            (
                detail.maybe_empty_str("entries").map(drop),
                "field `detail.entries`: expected a string, got an array",
            ),
            (
                first.required_str("id").map(drop),
                "field `detail.entries[0].id`: expected a string, got a number",
            ),
            (
                first.only(&["name"]),
                "unknown field `detail.entries[0].id`; expected name",
            ),
            (
                detail.nested("entries[1]", &entries[1]).map(drop),
                "field `detail.entries[1]`: expected a JSON object, got a string",
            ),
            (
                Fields::named("detail", &json!([SECRET]), Invalid).map(drop),
                "field `detail`: expected a JSON object, got an array",
            ),
            (
                Fields::of(&json!(SECRET), Invalid).map(drop),
                "expected a JSON object, got a string",
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(message(result), expected);
        }
    }

    #[test]
    fn callers_add_their_own_problems_about_a_field() {
        let fields = Map::new();
        let r = reader(&fields);
        assert_eq!(
            r.error("strategy", "unsupported value; expected single-user"),
            Invalid("field `strategy`: unsupported value; expected single-user".into())
        );
        assert_eq!(r.missing("x"), Invalid("field `x` is missing".into()));
        assert_eq!(r.empty("x"), Invalid("field `x` is empty".into()));
    }

    #[test]
    fn a_type_of_the_callers_may_build_the_errors() {
        #[derive(Clone, Copy)]
        struct Version<'a>(&'a str);
        impl MakeError for Version<'_> {
            type Error = Invalid;
            fn make(&self, message: String) -> Invalid {
                Invalid(format!("version {}: {message}", self.0))
            }
        }
        let fields = map(json!({"port": SECRET}));
        let r = Fields::new(&fields, Version("AWSPENDING"));
        assert_eq!(
            message(r.optional_port("port")),
            "version AWSPENDING: field `port`: expected a port number from 1 to 65535"
        );
    }

    #[test]
    fn an_error_may_carry_the_callers_context_and_the_reader_stays_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        let fields = Map::new();
        let secret = String::from("arn");
        let r = Fields::new(&fields, |m| format!("{secret}: {m}"));
        assert_send_sync(&r);
        assert_eq!(r.missing("x"), "arn: field `x` is missing");
    }

    #[test]
    fn no_getter_ever_shows_the_value_it_refuses() {
        let wrong = [
            json!(true),
            json!(12345),
            json!(SECRET),
            json!([SECRET]),
            json!({ "k": SECRET }),
        ];
        for value in wrong {
            let fields = map(json!({ "f": value }));
            let r = reader(&fields);
            let results = [
                r.maybe_empty_str("f").map(drop),
                r.optional_str("f").map(drop),
                r.required_str("f").map(drop),
                r.optional_bool("f").map(drop),
                r.optional_port("f").map(drop),
                r.optional_u32("f").map(drop),
                r.optional_f64("f").map(drop),
                r.required_array("f").map(drop),
                r.optional_str_array("f").map(drop),
                r.optional_str_map("f").map(drop),
                r.nested("f", &fields["f"]).map(drop),
            ];
            let refusals: Vec<String> = results
                .into_iter()
                .filter(Result::is_err)
                .map(message)
                .collect();
            assert!(!refusals.is_empty());
            for text in refusals {
                assert!(text.starts_with("field `f"), "{text}");
            }
        }
    }
}
