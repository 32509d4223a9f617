//! RFC 3339 timestamps (`2025-01-31T10:00:00.123Z`), as the keyring JSON stores them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// `time` to the millisecond, the precision the JSON keeps.
pub(crate) fn truncate_to_millis(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64),
        Err(_) => time,
    }
}

/// `time` as RFC 3339 in UTC.
pub(crate) fn format(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "(out of range)".into())
}

/// Parses an RFC 3339 timestamp.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    DateTime::from_str(text, Format::DateTime)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_millisecond() {
        let now = truncate_to_millis(SystemTime::now());
        assert_eq!(parse(&format(now)), Some(now));
        assert_eq!(
            parse("2025-01-31T10:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_738_317_600))
        );
        assert_eq!(parse("yesterday"), None);
    }
}
