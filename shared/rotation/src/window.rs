//! The rotation window: the secret's tag [`TAG`] names the UTC days and hours in which a
//! rotation may start. Pure parsing and the "is this instant inside" decision, with the time as
//! a parameter (the steps pass [`SystemTime::now`], the tests fixed instants); the protocol
//! enforces it ([`crate::protocol`]).
//!
//! The tag's value is one or more entries separated by spaces, each a day set followed by one
//! or more time ranges (AWS tag values allow letters, digits, spaces and `_ . : / = + - @`, so
//! no commas):
//!
//! - days: `Mon` ... `Sun` (any case), a range `Mon-Fri` (one may wrap: `Fri-Mon`), several
//!   joined by `+` (`Mon+Wed+Fri`), or `daily`;
//! - a time range: `HH:MM-HH:MM` in UTC, `00:00` to `24:00`; an end earlier than the start
//!   crosses midnight, the part after midnight belonging to the next day (`Fri 22:00-02:00`
//!   includes Saturday 01:00); the start is inside, the end is not.
//!
//! Examples: `Mon-Fri 02:00-05:00`, `Sat+Sun 00:00-24:00 Mon-Fri 22:00-02:00`, `daily 03:00-04:00`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Result, RotationError};
use crate::secrets_manager::SecretMetadata;

/// The secret tag that holds the rotation window.
pub const TAG: &str = "rotation-window";

/// What the tag's value must look like, for error messages.
pub const EXPECTED: &str = "one or more `DAYS HH:MM-HH:MM` entries in UTC separated by spaces, DAYS being `Mon`..`Sun`, a range such as `Mon-Fri`, several joined by `+`, or `daily` (for example `Mon-Fri 02:00-05:00`)";

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;

/// One time range on a set of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    /// Bit `d` set: the range starts on weekday `d` (0 = Monday).
    days: u8,
    /// Minutes after midnight UTC, the start inside.
    start: u32,
    /// Minutes after midnight UTC, the end outside; at most the start when it crosses midnight.
    end: u32,
}

impl Range {
    fn starts_on(&self, day: u32) -> bool {
        self.days & (1 << day) != 0
    }

    fn contains(&self, day: u32, minute: u32) -> bool {
        if self.start < self.end {
            self.starts_on(day) && (self.start..self.end).contains(&minute)
        } else {
            (self.starts_on(day) && minute >= self.start)
                || (self.starts_on((day + 6) % 7) && minute < self.end)
        }
    }
}

/// A parsed rotation window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    ranges: Vec<Range>,
    text: String,
}

impl Window {
    /// Parses the tag's value; the error says what is wrong, and [`EXPECTED`] what is expected.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        let mut days: Option<(u8, &str, bool)> = None;
        for token in value.split_whitespace() {
            if token.contains(':') {
                let Some((set, _, used)) = days.as_mut() else {
                    return Err(format!("{token:?} comes before any days"));
                };
                let (start, end) = parse_range(token)?;
                *used = true;
                ranges.push(Range {
                    days: *set,
                    start,
                    end,
                });
            } else {
                if let Some((_, name, false)) = days {
                    return Err(format!("the days {name:?} have no time range"));
                }
                days = Some((parse_days(token)?, token, false));
            }
        }
        match days {
            None => Err("it is empty".to_owned()),
            Some((_, name, false)) => Err(format!("the days {name:?} have no time range")),
            Some(_) => Ok(Window {
                ranges,
                text: value.split_whitespace().collect::<Vec<_>>().join(" "),
            }),
        }
    }

    /// Whether `at` is inside the window.
    pub fn contains(&self, at: SystemTime) -> bool {
        let (day, minute) = weekday_and_minute(at);
        self.ranges.iter().any(|r| r.contains(day, minute))
    }

    /// `at` when it is inside the window, else the first whole minute after it that is (None
    /// before 1970).
    pub fn next_open(&self, at: SystemTime) -> Option<SystemTime> {
        if self.contains(at) {
            return Some(at);
        }
        let next_minute = (at.duration_since(UNIX_EPOCH).ok()?.as_secs() / 60 + 1) * 60;
        (0..u64::from(8 * MINUTES_PER_DAY))
            .map(|m| UNIX_EPOCH + Duration::from_secs(next_minute + m * 60))
            .find(|t| self.contains(*t))
    }

    /// The window as written (whitespace normalized), for messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// What a secret's window says about a rotation step at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The secret has no window: rotations start at any time.
    Unrestricted,
    /// The secret carries the compromise marker: its window is ignored.
    Compromise,
    /// Inside the window.
    Open,
    /// Outside the window: why, and when it opens next, for the step's report and log.
    Closed(String),
}

impl Gate {
    /// The gate of the secret `metadata` describes at `now`. A malformed window fails with
    /// [`RotationError::InvalidWindow`] naming the tag; a compromise response does not read it.
    pub fn of(metadata: &SecretMetadata, now: SystemTime) -> Result<Gate> {
        let Some(value) = metadata.tags.get(TAG) else {
            return Ok(Gate::Unrestricted);
        };
        if crate::compromise_marker::active(metadata) {
            return Ok(Gate::Compromise);
        }
        let window = Window::parse(value).map_err(|problem| RotationError::InvalidWindow {
            secret: metadata.arn.clone(),
            problem: format!("tag `{TAG}` ({value:?}): {problem}; expected {EXPECTED}"),
        })?;
        if window.contains(now) {
            return Ok(Gate::Open);
        }
        let next = window
            .next_open(now)
            .and_then(|t| {
                aws_smithy_types::DateTime::from(t)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .ok()
            })
            .map(|t| format!("; it opens next at {t}"))
            .unwrap_or_default();
        Ok(Gate::Closed(format!(
            "outside the rotation window `{}` (tag {TAG}, UTC): it is {}{next}",
            window.as_str(),
            describe(now)
        )))
    }

    /// Whether a window applies to the secret (it has one, and no compromise response ignores
    /// it).
    pub fn restricts(&self) -> bool {
        matches!(self, Gate::Open | Gate::Closed(_))
    }
}

/// The weekday (0 = Monday) and the minute of the day of `at`, in UTC.
fn weekday_and_minute(at: SystemTime) -> (u32, u32) {
    let secs: i64 = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before 1970: the whole seconds down (floor), so that a minute's start stays in it.
        Err(e) => {
            let d = e.duration();
            -i64::try_from(d.as_secs()).unwrap_or(i64::MAX) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let minute = u32::try_from(secs.rem_euclid(86_400) / 60).unwrap_or(0);
    // 1970-01-01 was a Thursday (weekday 3).
    let day = u32::try_from((days + 3).rem_euclid(7)).unwrap_or(0);
    (day, minute)
}

/// `Mon 14:03 UTC`-style text for `at`, for messages.
pub fn describe(at: SystemTime) -> String {
    let (day, minute) = weekday_and_minute(at);
    format!(
        "{} {:02}:{:02} UTC",
        DAY_NAMES[day as usize],
        minute / 60,
        minute % 60
    )
}

fn parse_day(name: &str) -> Result<u32, String> {
    DAY_NAMES
        .iter()
        .position(|d| d.eq_ignore_ascii_case(name))
        .map(|d| d as u32)
        .ok_or_else(|| format!("{name:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_days(token: &str) -> Result<u8, String> {
    if token.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for part in token.split('+') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (parse_day(from)?, parse_day(to)?);
                let mut d = from;
                loop {
                    set |= 1 << d;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << parse_day(part)?,
        }
    }
    Ok(set)
}

fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time HH:MM (00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) if end => Ok(MINUTES_PER_DAY),
        (24, 0) => Err(format!("{text:?} may only end a range")),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn parse_range(token: &str) -> Result<(u32, u32), String> {
    let (start, end) = token
        .split_once('-')
        .ok_or_else(|| format!("{token:?} is not a time range HH:MM-HH:MM"))?;
    let (start, end) = (parse_time(start, false)?, parse_time(end, true)?);
    if start == end {
        return Err(format!(
            "the range {token:?} is empty (for a whole day write 00:00-24:00)"
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 is a Monday; `at(0, 2, 30)` is that Monday 02:30 UTC.
    fn at(days_after_monday: u64, hour: u64, minute: u64) -> SystemTime {
        const MONDAY_2026_12_07: u64 = 1_796_601_600;
        UNIX_EPOCH
            + Duration::from_secs(
                MONDAY_2026_12_07 + days_after_monday * 86_400 + hour * 3600 + minute * 60,
            )
    }

    #[test]
    fn the_fixed_clock_is_what_it_says() {
        assert_eq!(describe(at(0, 2, 30)), "Mon 02:30 UTC");
        assert_eq!(describe(at(6, 23, 59)), "Sun 23:59 UTC");
        assert_eq!(describe(UNIX_EPOCH), "Thu 00:00 UTC");
        assert_eq!(
            describe(UNIX_EPOCH - Duration::from_secs(60)),
            "Wed 23:59 UTC"
        );
    }

    #[test]
    fn weekdays_in_hours() {
        let w = Window::parse("Mon-Fri 02:00-05:00").unwrap();
        assert!(w.contains(at(0, 2, 0)), "the start is inside");
        assert!(w.contains(at(4, 4, 59)));
        assert!(!w.contains(at(0, 5, 0)), "the end is outside");
        assert!(!w.contains(at(0, 1, 59)));
        assert!(!w.contains(at(5, 3, 0)), "Saturday");
        assert!(!w.contains(at(6, 3, 0)), "Sunday");
    }

    #[test]
    fn a_range_crossing_midnight_belongs_to_the_next_day_after_midnight() {
        let w = Window::parse("Fri 22:00-02:00").unwrap();
        assert!(w.contains(at(4, 22, 0)));
        assert!(w.contains(at(5, 1, 59)), "Saturday early is Friday's night");
        assert!(!w.contains(at(5, 2, 0)));
        assert!(!w.contains(at(4, 1, 0)), "Friday early is Thursday's night");
        assert!(!w.contains(at(5, 22, 30)));
        // Sunday night runs into Monday: the week wraps.
        let w = Window::parse("sun 23:00-01:00").unwrap();
        assert!(w.contains(at(7, 0, 30)));
        assert!(!w.contains(at(1, 0, 30)));
    }

    #[test]
    fn several_entries_days_and_ranges() {
        let w = Window::parse("Sat+Sun 00:00-24:00  Mon-Wed+Fri 22:00-23:00 01:00-02:00").unwrap();
        assert_eq!(
            w.as_str(),
            "Sat+Sun 00:00-24:00 Mon-Wed+Fri 22:00-23:00 01:00-02:00"
        );
        assert!(w.contains(at(5, 12, 0)));
        assert!(w.contains(at(6, 23, 59)));
        assert!(w.contains(at(1, 22, 30)));
        assert!(w.contains(at(4, 1, 30)));
        assert!(!w.contains(at(3, 22, 30)), "Thursday is not listed");
        assert!(!w.contains(at(0, 12, 0)));
        let wrapping = Window::parse("Fri-Mon 10:00-11:00").unwrap();
        for day in [4, 5, 6, 7] {
            assert!(wrapping.contains(at(day, 10, 0)), "day {day}");
        }
        assert!(!wrapping.contains(at(1, 10, 0)));
        let daily = Window::parse("DAILY 03:00-04:00").unwrap();
        assert!((0..7).all(|d| daily.contains(at(d, 3, 15))));
    }

    #[test]
    fn the_next_opening_is_the_first_minute_inside() {
        let w = Window::parse("Mon-Fri 02:00-05:00").unwrap();
        assert_eq!(w.next_open(at(0, 1, 0)), Some(at(0, 2, 0)));
        assert_eq!(w.next_open(at(0, 3, 0)), Some(at(0, 3, 0)), "open now");
        assert_eq!(
            w.next_open(at(4, 6, 0)),
            Some(at(7, 2, 0)),
            "after the weekend"
        );
        let inside = at(0, 3, 0) + Duration::from_secs(17);
        assert_eq!(w.next_open(inside), Some(inside));
    }

    fn secret(tags: &[(&str, &str)]) -> SecretMetadata {
        SecretMetadata {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:app-AbCdEf".into(),
            name: "app".into(),
            rotation_enabled: true,
            versions: Default::default(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_gate_reads_the_tag_and_the_compromise_marker() {
        let monday_1am = at(0, 1, 0);
        assert_eq!(
            Gate::of(&secret(&[]), monday_1am).unwrap(),
            Gate::Unrestricted
        );
        let windowed = secret(&[(TAG, "Mon-Fri 02:00-05:00")]);
        assert_eq!(Gate::of(&windowed, at(0, 3, 0)).unwrap(), Gate::Open);
        let Gate::Closed(reason) = Gate::of(&windowed, monday_1am).unwrap() else {
            panic!("closed at 01:00");
        };
        assert_eq!(
            reason,
            "outside the rotation window `Mon-Fri 02:00-05:00` (tag rotation-window, UTC): it is Mon 01:00 UTC; it opens next at 2026-12-07T02:00:00Z"
        );
        assert!(Gate::of(&windowed, monday_1am).unwrap().restricts());
        let marked = secret(&[
            (TAG, "not a window"),
            (crate::compromise_marker::TAG, "2026-12-07T00:30:00Z"),
        ]);
        assert_eq!(Gate::of(&marked, monday_1am).unwrap(), Gate::Compromise);
        assert!(!Gate::Compromise.restricts());
        let err = Gate::of(&secret(&[(TAG, "weekdays 2-5")]), monday_1am).unwrap_err();
        assert_eq!(err.kind(), "InvalidWindow");
        let text = err.to_string();
        assert!(text.contains("tag `rotation-window`"), "{text}");
        assert!(text.contains("\"weekdays\" is not a day"), "{text}");
        assert!(text.contains("expected one or more"), "{text}");
    }

    #[test]
    fn a_malformed_value_says_what_is_wrong() {
        for (value, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("02:00-05:00", "before any days"),
            ("Mon-Fri", "no time range"),
            ("Mon Tue 01:00-02:00", "\"Mon\" have no time range"),
            ("Mon-Fro 02:00-05:00", "\"Fro\" is not a day"),
            ("Mon 2:00-05:00", "not a time HH:MM"),
            ("Mon 02:00-25:00", "not a time HH:MM"),
            ("Mon 02:60-03:00", "not a time HH:MM"),
            ("Mon 24:00-01:00", "may only end a range"),
            ("Mon 02:00", "not a time range"),
            ("Mon 03:00-03:00", "is empty"),
            ("Mon 00:00-00:00", "is empty"),
            ("Mon,Tue 01:00-02:00", "is not a day"),
            ("Mon 01:00-02:00-03:00", "not a time HH:MM"),
        ] {
            let err = Window::parse(value).unwrap_err();
            assert!(err.contains(needle), "{value:?}: {err}");
        }
        assert!(Window::parse("Mon 00:00-24:00").is_ok());
    }
}
