//! The invocation's deadline: when Lambda stops the function (its `Timeout`), as the runtime's
//! context gives it. Every wait inside a step (RDS applying a master password, IAM accepting a
//! new key, a retried login) ends before it, leaving a reserve for the rest of the step and for
//! reporting the outcome (the EMF metrics line and the EventBridge event), so that a slow
//! dependency is reported as what it is instead of as Lambda's "Task timed out", which writes
//! no metric and publishes no event.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When the invocation must have answered, or none (a caller without a deadline: the unit
/// tests, a library user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline: waits are bounded by their own configured limits only.
    pub const NONE: Deadline = Deadline { at: None };

    /// The deadline Lambda's runtime API gives (`Lambda-Runtime-Deadline-Ms`: milliseconds since
    /// the Unix epoch), on the monotonic clock. A deadline already past is now.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        let now = Instant::now();
        let at = (UNIX_EPOCH + Duration::from_millis(deadline_ms))
            .duration_since(SystemTime::now())
            .map_or(now, |left| now + left);
        Deadline { at: Some(at) }
    }

    /// The deadline of an invocation from the runtime API's `deadline_ms`, or none when it is
    /// not in the future: Lambda never starts an invocation with no time left, so such a value
    /// is no deadline (`cargo lambda watch`, the local stack's Lambda, sends one), and the
    /// step's waits keep their own limits.
    pub fn of_invocation(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if deadline_ms <= now_ms {
            tracing::debug!(
                deadline_ms,
                now_ms,
                "the invocation's deadline is not in the future: no deadline"
            );
            return Deadline::NONE;
        }
        Deadline::from_epoch_millis(deadline_ms)
    }

    /// A deadline `left` from now.
    pub fn after(left: Duration) -> Self {
        Deadline {
            at: Some(Instant::now() + left),
        }
    }

    /// The instant itself, if there is one.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// The time left until the deadline (zero once it passed), or none without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// When a wait that may last `limit` must end so that `reserve` is left before the
    /// deadline: the earlier of the two (now, when the reserve is already used up).
    pub fn wait_end(&self, limit: Duration, reserve: Duration) -> Instant {
        let by_limit = Instant::now() + limit;
        self.less(reserve).map_or(by_limit, |cut| by_limit.min(cut))
    }

    /// The instant `reserve` before the deadline (now when less is left), or none.
    pub fn less(&self, reserve: Duration) -> Option<Instant> {
        let now = Instant::now();
        self.at
            .map(|at| at.checked_sub(reserve).unwrap_or(now).max(now))
    }
}

/// The pauses between the attempts of a wait that must end at `end`: `first`, doubling up to
/// `max`, the last one cut short so that `allowance` (what one more attempt takes) is left
/// before the end; none once less than that is left.
#[derive(Debug)]
pub struct Backoff {
    pause: Duration,
    max: Duration,
    end: Instant,
    allowance: Duration,
}

impl Backoff {
    /// Pauses of `first` doubling up to `max`, for a wait ending at `end`, each attempt taking
    /// up to `allowance`.
    pub fn new(first: Duration, max: Duration, end: Instant, allowance: Duration) -> Self {
        Backoff {
            pause: first,
            max,
            end,
            allowance,
        }
    }

    /// Whether another attempt fits before the end.
    pub fn has_time(&self) -> bool {
        self.end.saturating_duration_since(Instant::now()) > self.allowance
    }

    /// Sleeps until the next attempt, if one fits before the end ([`Backoff::has_time`]);
    /// false, at once, when none does.
    pub async fn pause(&mut self) -> bool {
        let left = self.end.saturating_duration_since(Instant::now());
        if left <= self.allowance {
            return false;
        }
        tokio::time::sleep(self.pause.min(left - self.allowance)).await;
        self.pause = (self.pause * 2).min(self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_at_its_limit_or_a_reserve_before_the_deadline() {
        let limit = Duration::from_secs(600);
        let reserve = Duration::from_secs(3);
        let none = Deadline::NONE.wait_end(limit, reserve);
        assert!(none >= Instant::now() + Duration::from_secs(599));

        let deadline = Deadline::after(Duration::from_secs(60));
        let end = deadline.wait_end(limit, reserve);
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(57) && left > Duration::from_secs(55),
            "{left:?}"
        );
        let short = deadline.wait_end(Duration::from_secs(5), reserve);
        assert!(short.saturating_duration_since(Instant::now()) <= Duration::from_secs(5));

        let spent = Deadline::after(Duration::from_secs(1));
        let now = Instant::now();
        assert!(spent.wait_end(limit, reserve) <= now + Duration::from_millis(10));
        assert!(spent.less(reserve).unwrap() <= now + Duration::from_millis(10));
    }

    #[tokio::test]
    async fn a_backoff_pauses_no_later_than_its_allowance_before_the_end() {
        let allowance = Duration::from_millis(50);
        let end = Instant::now() + Duration::from_millis(150);
        let mut backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(5),
            end,
            allowance,
        );
        assert!(backoff.has_time());
        assert!(backoff.pause().await, "one pause fits, cut short");
        assert!(Instant::now() + allowance <= end + Duration::from_millis(20));
        assert!(!backoff.has_time());
        assert!(!backoff.pause().await, "no attempt fits any more");
    }

    #[test]
    fn the_runtime_deadline_is_read_from_epoch_milliseconds() {
        let in_a_minute = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 60_000;
        let left = Deadline::from_epoch_millis(in_a_minute)
            .remaining()
            .unwrap();
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(
            Deadline::from_epoch_millis(0).remaining(),
            Some(Duration::ZERO)
        );
        assert_eq!(Deadline::NONE.remaining(), None);
        assert_eq!(Deadline::of_invocation(0), Deadline::NONE);
        assert!(Deadline::of_invocation(in_a_minute).remaining().is_some());
    }
}
