//! The compromise marker: a tag on a secret saying that a compromise response is under way on
//! it, and since when.
//!
//! The compromise function's runner and `rotator rotate --compromised` set the tag [`TAG`] on a
//! secret before its first rotation of the response and remove it once the response on that
//! secret has finished. Every step reads the secret's tags with its one DescribeSecret call,
//! so a step learns at no cost that its rotation answers a compromise: such a rotation ignores
//! the rotation window and cuts off the live access of the credentials that predate it.
//!
//! An administrator may also set the tag by hand during an incident (any value, e.g. the
//! incident's name): the response's runner keeps it and removes it when the response ends.
//!
//! Who may write the tag: `secretsmanager:TagResource` on the secret, a permission apart from
//! writing its value. A writer of the tag can make a rotation behave as a compromise response
//! (rotate outside its window, end sessions of the roles the secret proves to own), nothing
//! more: see docs/trust-model.md.

use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use crate::error::Result;
use crate::secrets_manager::{sdk_error, SecretMetadata};

/// The secret's tag whose value is the RFC 3339 UTC time (`2026-12-07T23:30:00Z`) at which a
/// compromise response began on the secret.
pub const TAG: &str = "rotation-compromise";

/// The tag's value for a response beginning at `at`, to the second.
pub fn value(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// Parses a tag value: the time it names, or `None` for a value that is no RFC 3339 time.
pub fn parse(value: &str) -> Option<SystemTime> {
    let parsed = DateTime::from_str(value, Format::DateTime).ok()?;
    SystemTime::try_from(parsed).ok()
}

/// Whether a compromise response is under way on the secret: the tag is present, whatever its
/// value (an administrator may also set it by hand, naming the incident).
pub fn active(meta: &SecretMetadata) -> bool {
    meta.tags.contains_key(TAG)
}

/// Since when the response is under way: the marker's time, when the tag holds one (`None`
/// when the tag is absent or names no time, e.g. an incident name set by hand).
pub fn since(meta: &SecretMetadata) -> Option<SystemTime> {
    meta.tags.get(TAG).and_then(|v| parse(v))
}

/// Marks `secret` as under a compromise response since `at`, unless `meta` (its description)
/// already carries the marker (a response resumed after a crash keeps its first time, a marker
/// set by hand is kept). One TagResource call, or none.
pub async fn set(
    client: &aws_sdk_secretsmanager::Client,
    meta: &SecretMetadata,
    at: SystemTime,
) -> Result<()> {
    if active(meta) {
        return Ok(());
    }
    client
        .tag_resource()
        .secret_id(&meta.arn)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(TAG)
                .value(value(at))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("TagResource", &meta.arn, e))?;
    Ok(())
}

/// Removes the marker from `secret` once the response on it has finished (UntagResource;
/// removing an absent tag succeeds).
pub async fn clear(client: &aws_sdk_secretsmanager::Client, secret: &str) -> Result<()> {
    client
        .untag_resource()
        .secret_id(secret)
        .tag_keys(TAG)
        .send()
        .await
        .map_err(|e| sdk_error("UntagResource", secret, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn meta(tag: Option<&str>) -> SecretMetadata {
        SecretMetadata {
            arn: "arn:aws:secretsmanager:eu-west-1:1:secret:s".into(),
            name: "s".into(),
            rotation_enabled: true,
            versions: Default::default(),
            tags: tag
                .map(|v| HashMap::from([(TAG.to_owned(), v.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn the_value_round_trips_to_the_second() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_685_000);
        assert_eq!(value(at), "2026-12-07T23:10:00Z");
        assert_eq!(parse(&value(at)), Some(at));
        assert_eq!(since(&meta(Some(&value(at)))), Some(at));
    }

    #[test]
    fn any_value_marks_a_response_but_only_a_time_dates_it() {
        assert!(!active(&meta(None)));
        assert_eq!(since(&meta(None)), None);
        for other in ["", "INC-42", "2026-13-01T00:00:00Z", "1796685000"] {
            assert!(active(&meta(Some(other))), "{other:?}");
            assert_eq!(since(&meta(Some(other))), None, "{other:?}");
        }
    }
}
