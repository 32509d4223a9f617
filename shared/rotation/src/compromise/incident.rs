//! One incident, answered once per secret.
//!
//! - The incident's id is checked (it goes into a tag value and into version ids).
//! - Each rotation an incident asks of a secret has a version id derived from the secret, the
//!   incident and the rotation's number ([`Incident::token`]). A repeated or retried event therefore
//!   finds the rotations it already made (finished: skipped; in progress: resumed) instead of
//!   starting new ones, and RotateSecret and StartExecution treat a repeated token as the same
//!   request.
//! - Once every rotation of an incident has finished on a secret, the incident's id is
//!   recorded in the secret's tag [`RECORD_TAG`] (read back with DescribeSecret, which is
//!   consistent for one secret, unlike ListSecrets). A later event of the same incident changes
//!   nothing on that secret.

use aws_lc_rs::digest;

use super::error::CompromiseError;

/// The secret's tag recording the incidents whose response finished on it, newest first,
/// separated by spaces.
pub const RECORD_TAG: &str = "rotation-incidents";
/// Longest incident id.
pub const MAX_INCIDENT_LEN: usize = 64;
/// Longest tag value Secrets Manager accepts.
const MAX_TAG_VALUE_LEN: usize = 256;

/// A checked incident id: 1 to 64 characters among letters, digits and `_ . : / = + - @`
/// (characters a tag value accepts, and no space: the record separates ids with spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident(String);

impl Incident {
    /// Checks an incident id, naming the field when it is refused.
    pub fn parse(id: &str) -> Result<Self, CompromiseError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c);
        if id.is_empty() || id.len() > MAX_INCIDENT_LEN || !id.chars().all(allowed) {
            return Err(CompromiseError::Request(format!(
                "field `detail.incident`: expected 1 to {MAX_INCIDENT_LEN} letters, digits or `_.:/=+-@`"
            )));
        }
        Ok(Incident(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the record `tag` (the value of [`RECORD_TAG`]) names this incident.
    pub fn is_recorded_in(&self, tag: Option<&str>) -> bool {
        tag.is_some_and(|t| t.split(' ').any(|id| id == self.0))
    }

    /// The record with this incident added first, the oldest ids dropped to fit a tag value.
    pub fn recorded_in(&self, tag: Option<&str>) -> String {
        let mut record = self.0.clone();
        for id in tag.unwrap_or_default().split(' ') {
            if id.is_empty() || id == self.0 {
                continue;
            }
            if record.len() + 1 + id.len() > MAX_TAG_VALUE_LEN {
                break;
            }
            record.push(' ');
            record.push_str(id);
        }
        record
    }

    /// The version id of rotation `n` (from 1) that this incident asks of `secret_arn`: the
    /// same on every delivery of the event, different for every secret, incident and rotation.
    pub fn token(&self, secret_arn: &str, n: u8) -> String {
        let mut context = digest::Context::new(&digest::SHA256);
        for part in [
            b"secret-rotation compromise".as_slice(),
            secret_arn.as_bytes(),
            self.0.as_bytes(),
            &[n],
        ] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let hash = context.finish();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_ref()[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_ids_that_do_not_fit_a_tag_naming_the_field() {
        for bad in ["", "two words", "x".repeat(65).as_str(), "inc\u{e9}", "a,b"] {
            let err = Incident::parse(bad).unwrap_err().to_string();
            assert!(err.contains("`detail.incident`"), "{err}");
        }
        assert_eq!(
            Incident::parse("INC-1234/eu:2").unwrap().as_str(),
            "INC-1234/eu:2"
        );
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = Incident::parse("INC-1").unwrap();
        let b = Incident::parse("INC-2").unwrap();
        let t = a.token("arn:s", 1);
        assert_eq!(t, a.token("arn:s", 1));
        assert_eq!(t.len(), 36);
        assert_ne!(t, a.token("arn:s", 2));
        assert_ne!(t, a.token("arn:t", 1));
        assert_ne!(t, b.token("arn:s", 1));
        assert!(uuid::Uuid::parse_str(&t).is_ok());
    }

    #[test]
    fn the_record_keeps_the_newest_ids_within_a_tag_value() {
        let a = Incident::parse("INC-1").unwrap();
        assert!(!a.is_recorded_in(None));
        let record = a.recorded_in(None);
        assert_eq!(record, "INC-1");
        assert!(a.is_recorded_in(Some(&record)));
        assert!(!Incident::parse("INC-")
            .unwrap()
            .is_recorded_in(Some(&record)));
        let b = Incident::parse("INC-2").unwrap();
        assert_eq!(b.recorded_in(Some(&record)), "INC-2 INC-1");
        assert_eq!(a.recorded_in(Some("INC-2 INC-1")), "INC-1 INC-2");
        let mut record = String::new();
        for i in 0..100 {
            let id = Incident::parse(&format!("INC-{i:040}")).unwrap();
            record = id.recorded_in(Some(&record));
            assert!(record.len() <= MAX_TAG_VALUE_LEN);
            assert!(id.is_recorded_in(Some(&record)));
        }
    }
}
