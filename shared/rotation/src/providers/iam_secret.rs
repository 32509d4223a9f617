//! The IAM access key secret JSON.
//!
//! ```json
//! {"provider": "iam-access-key", "UserName": "ci-deployer",
//!  "AccessKeyId": "AKIA...", "SecretAccessKey": "...", "strictRevocation": false}
//! ```
//!
//! Each of `UserName`, `AccessKeyId` and `SecretAccessKey` may also be spelled in camelCase
//! (`userName`, `accessKeyId`, `secretAccessKey`), the two spellings AWS users commonly store;
//! the new version keeps the spelling it found. `strictRevocation` is optional; every other key
//! is carried to the new version unchanged. Errors name the field and never show a value.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{secret_fields, SecretFields};
use crate::error::Result;

/// Provider name in the secret's `provider` field, reports and logs.
pub const PROVIDER: &str = "iam-access-key";
/// IAM's limit on a user name's length.
pub const MAX_USER_NAME_LEN: usize = 64;

/// A parsed IAM access key secret. Debug output never shows the secret access key.
#[derive(Clone)]
pub struct IamSecret {
    /// The IAM user that owns the key.
    pub user_name: String,
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// `strictRevocation`, when the secret sets it.
    pub strict_revocation: Option<bool>,
    key_id_field: &'static str,
    secret_field: &'static str,
    /// Every field as read, secret access key removed, to be carried into the next version.
    fields: Map<String, Value>,
}

impl fmt::Debug for IamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamSecret")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field("strict_revocation", &self.strict_revocation)
            .finish()
    }
}

/// The one spelling of a field the secret uses: PascalCase or camelCase, not both.
fn spelled<'a>(
    reader: &SecretFields<'a>,
    pascal: &'static str,
    camel: &'static str,
) -> Result<(&'static str, &'a str)> {
    match (reader.optional_str(pascal)?, reader.optional_str(camel)?) {
        (Some(_), Some(_)) => Err(reader.error(
            pascal,
            format!("both `{pascal}` and `{camel}` are present; keep one"),
        )),
        (Some(v), None) => Ok((pascal, v)),
        (None, Some(v)) => Ok((camel, v)),
        (None, None) => Err(reader.error(pascal, format!("is missing (or `{camel}`)"))),
    }
}

impl IamSecret {
    /// Parses an IAM access key secret.
    pub fn parse(fields: Map<String, Value>, secret: &str, version: &str) -> Result<Self> {
        let reader = secret_fields(&fields, secret, version);
        let (user_field, user_name) = spelled(&reader, "UserName", "userName")?;
        let valid_user = user_name.len() <= MAX_USER_NAME_LEN
            && user_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !valid_user {
            return Err(reader.error(
                user_field,
                format!(
                    "an IAM user name has 1 to {MAX_USER_NAME_LEN} letters, digits and +=,.@_-"
                ),
            ));
        }
        let (key_id_field, access_key_id) = spelled(&reader, "AccessKeyId", "accessKeyId")?;
        let valid_id = (16..=128).contains(&access_key_id.len())
            && access_key_id.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_id {
            return Err(reader.error(
                key_id_field,
                "an access key id has 16 to 128 letters and digits",
            ));
        }
        let (secret_field, secret_access_key) =
            spelled(&reader, "SecretAccessKey", "secretAccessKey")?;
        let secret_access_key = SecretString::from(secret_access_key.to_owned());
        let strict_revocation = reader.optional_bool("strictRevocation")?;
        let (user_name, access_key_id) = (user_name.to_owned(), access_key_id.to_owned());
        let mut fields = fields;
        fields.remove(secret_field);
        Ok(IamSecret {
            user_name,
            access_key_id,
            secret_access_key,
            strict_revocation,
            key_id_field,
            secret_field,
            fields,
        })
    }

    /// The next version: every field carried over, with the new access key in the same
    /// spelling.
    pub fn next_version(
        &self,
        access_key_id: &str,
        secret_access_key: &SecretString,
    ) -> SecretString {
        let mut fields = self.fields.clone();
        fields.insert(
            self.key_id_field.into(),
            Value::String(access_key_id.to_owned()),
        );
        fields.insert(
            self.secret_field.into(),
            Value::String(secret_access_key.expose_secret().to_owned()),
        );
        SecretString::from(Value::Object(fields).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<IamSecret> {
        IamSecret::parse(value.as_object().unwrap().clone(), "s", "AWSCURRENT")
    }

    #[test]
    fn accepts_both_spellings_and_keeps_the_one_found() {
        for (user, id, secret) in [
            ("UserName", "AccessKeyId", "SecretAccessKey"),
            ("userName", "accessKeyId", "secretAccessKey"),
        ] {
            let parsed = parse(json!({
                "provider": "iam-access-key", user: "ci", id: "AKIAIOSFODNN7EXAMPLE",
                secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "team": "ops"
            }))
            .unwrap();
            assert_eq!(parsed.user_name, "ci");
            let debug = format!("{parsed:?}");
            assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
            let next = parsed.next_version(
                "AKIANEWKEY0000000000",
                &SecretString::from("n3w".to_owned()),
            );
            let next: Value = serde_json::from_str(next.expose_secret()).unwrap();
            assert_eq!(next[id], "AKIANEWKEY0000000000");
            assert_eq!(next[secret], "n3w");
            assert_eq!(next[user], "ci");
            assert_eq!(next["team"], "ops");
            assert_eq!(next.as_object().unwrap().len(), 5);
        }
    }

    #[test]
    fn errors_name_the_field_and_never_the_secret() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let base = json!({"provider": "iam-access-key", "UserName": "ci",
            "AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": secret});
        let mut cases = Vec::new();
        for field in ["UserName", "AccessKeyId", "SecretAccessKey"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(field);
            cases.push((v, field));
        }
        let mut both = base.clone();
        both["secretAccessKey"] = json!(secret);
        cases.push((both, "secretAccessKey"));
        let mut bad_user = base.clone();
        bad_user["UserName"] = json!("no spaces allowed");
        cases.push((bad_user, "UserName"));
        let mut bad_id = base.clone();
        bad_id["AccessKeyId"] = json!("AKIA-short");
        cases.push((bad_id, "AccessKeyId"));
        let mut typed = base.clone();
        typed["SecretAccessKey"] = json!(12345);
        cases.push((typed, "SecretAccessKey"));
        let mut strict = base;
        strict["strictRevocation"] = json!("sometimes");
        cases.push((strict, "strictRevocation"));
        for (value, field) in cases {
            let err = parse(value).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{field}`")),
                "{err} should name {field}"
            );
            assert!(!err.contains(secret) && !err.contains("12345"), "{err}");
        }
    }
}
