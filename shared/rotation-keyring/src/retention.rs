//! How long a keyring keeps a key, and when a key counts as destroyed.
//!
//! Two bounds, set per secret; at least one is required, and a key is destroyed as soon as
//! either is reached:
//! - `retentionRotations` (R): a key stays decrypt-only for R rotations after the one that
//!   made it active, so the keyring holds at most R + 1 keys. With the hourly schedule,
//!   R rotations are R hours.
//! - `retentionHours` (H): a key older than H hours (from its creation) is destroyed. This
//!   bound holds whatever the schedule does, and every copy of the keyring enforces it, even
//!   an old version or a cached one.

use std::time::{Duration, SystemTime};

use crate::error::{KeyringError, Result};

/// Largest `retentionRotations`: the keyring must fit in a Secrets Manager secret (64 KB).
pub const MAX_RETENTION_ROTATIONS: u32 = 400;
/// Largest `retentionHours` (ten years).
pub const MAX_RETENTION_HOURS: f64 = 87_600.0;

/// A keyring's retention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    rotations: Option<u32>,
    hours: Option<f64>,
}

impl Retention {
    /// A retention of at most `rotations` rotations and/or `hours` hours; at least one is
    /// required. Errors name the JSON field.
    pub fn new(rotations: Option<u32>, hours: Option<f64>) -> Result<Self> {
        if rotations.is_none() && hours.is_none() {
            return Err(KeyringError::Invalid(
                "set `retentionRotations` (rotations a key stays decrypt-only) and/or `retentionHours` (hours a key lives)".into(),
            ));
        }
        if let Some(r) = rotations {
            if !(1..=MAX_RETENTION_ROTATIONS).contains(&r) {
                return Err(KeyringError::Invalid(format!(
                    "field `retentionRotations`: expected a whole number from 1 to {MAX_RETENTION_ROTATIONS}"
                )));
            }
        }
        if let Some(h) = hours {
            if !(h.is_finite() && h > 0.0 && h <= MAX_RETENTION_HOURS) {
                return Err(KeyringError::Invalid(format!(
                    "field `retentionHours`: expected a number of hours above 0 and at most {MAX_RETENTION_HOURS}"
                )));
            }
        }
        Ok(Retention { rotations, hours })
    }

    /// `retentionRotations`, when set.
    pub fn rotations(&self) -> Option<u32> {
        self.rotations
    }

    /// `retentionHours`, when set.
    pub fn hours(&self) -> Option<f64> {
        self.hours
    }

    /// `retentionHours` as a duration, when set.
    pub fn period(&self) -> Option<Duration> {
        self.hours.map(|h| Duration::from_secs_f64(h * 3600.0))
    }

    /// Why a key of `generation` created at `created` is destroyed in a keyring whose newest
    /// key is of `newest_generation`, at `now`; None while it is retained.
    pub fn destroyed_reason(
        &self,
        generation: u64,
        created: SystemTime,
        newest_generation: u64,
        now: SystemTime,
    ) -> Option<String> {
        if let Some(r) = self.rotations {
            let age = newest_generation.saturating_sub(generation);
            if age > u64::from(r) {
                return Some(format!(
                    "{age} rotations old, past the retention of {r} rotations (retentionRotations)"
                ));
            }
        }
        if let (Some(hours), Some(period)) = (self.hours, self.period()) {
            if now.duration_since(created).is_ok_and(|age| age >= period) {
                return Some(format!(
                    "created {}, past the retention of {hours} hours (retentionHours)",
                    crate::time::format(created)
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_bound_and_names_the_field() {
        assert!(Retention::new(None, None).is_err());
        for (r, h, field) in [
            (Some(0), None, "retentionRotations"),
            (
                Some(MAX_RETENTION_ROTATIONS + 1),
                None,
                "retentionRotations",
            ),
            (None, Some(0.0), "retentionHours"),
            (None, Some(-1.0), "retentionHours"),
            (None, Some(f64::NAN), "retentionHours"),
        ] {
            let err = Retention::new(r, h).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        Retention::new(Some(6), Some(0.5)).unwrap();
    }

    #[test]
    fn rotations_bound_keeps_r_plus_one_generations() {
        let retention = Retention::new(Some(6), None).unwrap();
        let now = SystemTime::now();
        let retained: Vec<u64> = (1..=30)
            .filter(|g| retention.destroyed_reason(*g, now, 30, now).is_none())
            .collect();
        assert_eq!(retained, (24..=30).collect::<Vec<_>>());
    }

    #[test]
    fn hours_bound_destroys_by_age() {
        let retention = Retention::new(None, Some(6.0)).unwrap();
        let created = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(retention
            .destroyed_reason(
                1,
                created,
                1000,
                created + 6 * hour - Duration::from_secs(1)
            )
            .is_none());
        let reason = retention
            .destroyed_reason(1, created, 1, created + 6 * hour)
            .unwrap();
        assert!(reason.contains("retentionHours"), "{reason}");
    }
}
