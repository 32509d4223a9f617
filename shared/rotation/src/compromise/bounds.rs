//! How much one incident may rotate: at most [`Bounds::max_secrets`] secrets per incident, and
//! at most [`Bounds::max_rotations_per_hour`] new versions per secret per hour. Whoever may
//! send the incident event (or finds a way around the bus policy) can then cause only a
//! bounded amount of rotation, and a keyring loses at most one generation per incident.

use std::time::{Duration, SystemTime};

use super::error::CompromiseError;
use crate::config::variables::{
    Variable, COMPROMISE_MAX_ROTATIONS_PER_HOUR, COMPROMISE_MAX_SECRETS,
};
use crate::config::{ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR, ENV_COMPROMISE_MAX_SECRETS};

/// Secrets one incident may rotate when [`ENV_COMPROMISE_MAX_SECRETS`] is unset.
pub const DEFAULT_MAX_SECRETS: usize = COMPROMISE_MAX_SECRETS.default_number() as usize;
/// Versions a secret may gain per hour when [`ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR`] is
/// unset: enough for a dual-phase response (2) on top of an hourly schedule and a retry.
pub const DEFAULT_MAX_ROTATIONS_PER_HOUR: usize =
    COMPROMISE_MAX_ROTATIONS_PER_HOUR.default_number() as usize;
/// The window of the per-secret bound.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// The bounds of the compromise response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most secrets one incident may rotate.
    pub max_secrets: usize,
    /// Most versions one secret may gain in [`WINDOW`].
    pub max_rotations_per_hour: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_secrets: DEFAULT_MAX_SECRETS,
            max_rotations_per_hour: DEFAULT_MAX_ROTATIONS_PER_HOUR,
        }
    }
}

impl Bounds {
    /// The bounds from the environment, naming the variable that is wrong.
    pub fn from_env() -> Result<Self, CompromiseError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The bounds through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CompromiseError> {
        let number = |variable: &Variable| {
            variable
                .number(&lookup)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .map_err(CompromiseError::Configuration)
        };
        Ok(Bounds {
            max_secrets: number(&COMPROMISE_MAX_SECRETS)?,
            max_rotations_per_hour: number(&COMPROMISE_MAX_ROTATIONS_PER_HOUR)?,
        })
    }

    /// Refuses an incident selecting more than [`Bounds::max_secrets`] secrets.
    pub fn check_secrets(&self, incident: &str, selected: usize) -> Result<(), CompromiseError> {
        if selected > self.max_secrets {
            return Err(CompromiseError::Bound(format!(
                "incident {incident} selects {selected} secrets, more than the {} one incident may rotate ({ENV_COMPROMISE_MAX_SECRETS}); nothing was rotated: name fewer secrets per incident, or raise the bound",
                self.max_secrets
            )));
        }
        Ok(())
    }

    /// Refuses to start `new` rotations of `secret` when, with the versions created at
    /// `created` (every version of the secret), more than [`Bounds::max_rotations_per_hour`]
    /// versions would be less than an hour old at `now`.
    pub fn check_rotations(
        &self,
        secret: &str,
        created: &[SystemTime],
        new: usize,
        now: SystemTime,
    ) -> Result<(), CompromiseError> {
        if new == 0 {
            return Ok(());
        }
        let recent: Vec<SystemTime> = created
            .iter()
            .copied()
            .filter(|c| now.duration_since(*c).map_or(true, |age| age < WINDOW))
            .collect();
        if recent.len() + new > self.max_rotations_per_hour {
            let wait = recent
                .iter()
                .min()
                .and_then(|oldest| (*oldest + WINDOW).duration_since(now).ok())
                .map_or(0, |d| d.as_secs().div_ceil(60));
            return Err(CompromiseError::Bound(format!(
                "secret {secret}: {} versions were created in the last hour and retiring its credentials needs {new} more rotation(s), past the {} a secret may have per hour ({ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR}); nothing was rotated: retry in about {wait} minute(s), or raise the bound",
                recent.len(),
                self.max_rotations_per_hour
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_variables_named_when_wrong() {
        assert_eq!(Bounds::from_lookup(|_| None).unwrap(), Bounds::default());
        let b = Bounds::from_lookup(|n| {
            Some(
                if n == ENV_COMPROMISE_MAX_SECRETS {
                    "3"
                } else {
                    "7"
                }
                .to_owned(),
            )
        })
        .unwrap();
        assert_eq!((b.max_secrets, b.max_rotations_per_hour), (3, 7));
        for (name, raw) in [
            (ENV_COMPROMISE_MAX_SECRETS, "0"),
            (ENV_COMPROMISE_MAX_SECRETS, "x"),
            (ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR, "101"),
        ] {
            let err = Bounds::from_lookup(|n| (n == name).then(|| raw.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn refuses_too_many_secrets_naming_the_variable() {
        let b = Bounds::default();
        assert!(b.check_secrets("INC-1", DEFAULT_MAX_SECRETS).is_ok());
        let err = b
            .check_secrets("INC-1", DEFAULT_MAX_SECRETS + 1)
            .unwrap_err();
        assert_eq!(err.kind(), "LimitExceeded");
        assert!(
            err.to_string().contains(ENV_COMPROMISE_MAX_SECRETS),
            "{err}"
        );
    }

    #[test]
    fn counts_only_the_last_hours_versions() {
        let b = Bounds::default();
        let now = SystemTime::now();
        let minutes = |m: u64| now - Duration::from_secs(m * 60);
        let old = [minutes(61), minutes(120), minutes(600)];
        assert!(b.check_rotations("s", &old, 4, now).is_ok());
        let recent = [minutes(1), minutes(10), minutes(50), minutes(61)];
        assert!(b.check_rotations("s", &recent, 1, now).is_ok());
        let err = b.check_rotations("s", &recent, 2, now).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("3 versions were created in the last hour"),
            "{text}"
        );
        assert!(
            text.contains(ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR),
            "{text}"
        );
        assert!(text.contains("about 10 minute(s)"), "{text}");
        // Nothing to start: nothing to refuse.
        assert!(b.check_rotations("s", &[now; 9], 0, now).is_ok());
        // A version dated in the future counts as recent.
        assert!(b
            .check_rotations("s", &[now + Duration::from_secs(60); 4], 1, now)
            .is_err());
    }
}
