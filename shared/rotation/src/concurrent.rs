//! Two rotations of one secret at once: how createSecret decides which one goes on.
//!
//! Secrets Manager serializes rotations itself (RotateSecret refuses while AWSPENDING sits on a
//! version other than AWSCURRENT), but anything else that drives the steps (the local driver, a
//! person, a second scheduler) can start two rotations with different tokens. PutSecretValue
//! with the AWSPENDING label moves the label unconditionally, so the checks are made around it:
//!
//! 1. Before the put: AWSPENDING on a version that is neither the token nor AWSCURRENT is
//!    another rotation in progress: refuse ([`other_rotation`]). Where the token is not yet a
//!    version, the labels are read with ListSecretVersionIds (deprecated versions included),
//!    the step's first read.
//! 2. After the put (only when the token was not yet a version: a version Secrets Manager
//!    created for the token reserves the rotation, and RotateSecret serializes those), wait a
//!    settle time S, then ListSecretVersionIds again ([`after_put`], [`decide`]). Not
//!    DescribeSecret: it lists only versions that carry a label, and a racing version whose
//!    AWSPENDING a later put took carries none.
//!    A version that appeared since the step's first read and has no label belongs to
//!    a rotation that raced this one past check 1 and put first; the last put holds AWSPENDING.
//!    - AWSPENDING elsewhere: a later put holds it; refuse and touch nothing.
//!    - AWSPENDING on the token, no racing version: go on.
//!    - AWSPENDING on the token, taken from a racing version: if this rotation took less than S
//!      from its first read to its put, the other one's re-read (S after its earlier
//!      put) comes after this put, so it sees the label elsewhere and refuses: go on. Otherwise
//!      the other may already be past createSecret: give the label back and refuse.
//!
//! So two rotations started together: the later put goes on, the earlier refuses. A rotation's
//! setSecret and later steps run only while its token holds AWSPENDING, so a rotation that
//! refused never sets its credential in the target system. Only when a racing createSecret takes
//! longer than S between its read and its put can both refuse; the label then rests on a version
//! that holds a value and changed nothing in the target system, and the next run resumes it.

use std::time::Duration;

use crate::secrets_manager::{SecretMetadata, AWSCURRENT, AWSPENDING};

/// The version of another rotation in progress: AWSPENDING on a version that is neither
/// `token` nor AWSCURRENT.
pub fn other_rotation<'a>(metadata: &'a SecretMetadata, token: &str) -> Option<&'a str> {
    let pending = metadata.version_with(AWSPENDING)?;
    let current = metadata.version_with(AWSCURRENT);
    (pending != token && Some(pending) != current).then_some(pending)
}

/// What the DescribeSecret after createSecret's put says about the race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPut {
    /// AWSPENDING is on the token and no other rotation's version appeared: go on.
    Won,
    /// AWSPENDING is on the token, taken from `from`, a rotation that put first.
    TookFrom(String),
    /// AWSPENDING is on `pending`, another rotation's version (or on none).
    Lost(Option<String>),
}

/// Decides the race from the step's first DescribeSecret (`before`) and the one after the put
/// (`after`).
pub fn after_put(before: &SecretMetadata, after: &SecretMetadata, token: &str) -> AfterPut {
    let holder = after.version_with(AWSPENDING);
    if holder != Some(token) {
        return AfterPut::Lost(holder.map(str::to_owned));
    }
    let mut raced: Vec<&str> = after
        .versions
        .iter()
        .filter(|(id, stages)| {
            id.as_str() != token && stages.is_empty() && !before.versions.contains_key(id.as_str())
        })
        .map(|(id, _)| id.as_str())
        .collect();
    raced.sort_unstable();
    match raced.first() {
        Some(first) => AfterPut::TookFrom((*first).to_owned()),
        None => AfterPut::Won,
    }
}

/// What createSecret does after its put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the rotation.
    GoOn,
    /// Move AWSPENDING back to this version, then refuse.
    GiveBack(String),
    /// Refuse, naming the version that holds AWSPENDING.
    Refuse(String),
}

/// Decides from [`after_put`]'s finding, the time this step took from its first DescribeSecret
/// to the end of its put, and the settle time waited after the put.
pub fn decide(found: &AfterPut, read_to_put: Duration, settle: Duration) -> Decision {
    match found {
        AfterPut::Won => Decision::GoOn,
        AfterPut::TookFrom(_) if read_to_put < settle => Decision::GoOn,
        AfterPut::TookFrom(first) => Decision::GiveBack(first.clone()),
        AfterPut::Lost(holder) => {
            Decision::Refuse(holder.clone().unwrap_or_else(|| "(none)".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn metadata(versions: &[(&str, &[&str])]) -> SecretMetadata {
        SecretMetadata {
            arn: "arn:secret".into(),
            name: "secret".into(),
            rotation_enabled: true,
            versions: versions
                .iter()
                .map(|(id, stages)| {
                    (
                        (*id).to_owned(),
                        stages.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect(),
            tags: HashMap::new(),
        }
    }

    #[test]
    fn another_pending_version_is_a_rotation_in_progress() {
        let m = metadata(&[("cur", &[AWSCURRENT]), ("other", &[AWSPENDING])]);
        assert_eq!(other_rotation(&m, "mine"), Some("other"));
    }

    #[test]
    fn own_or_current_pending_version_is_no_other_rotation() {
        let own = metadata(&[("cur", &[AWSCURRENT]), ("mine", &[AWSPENDING])]);
        assert_eq!(other_rotation(&own, "mine"), None);
        let on_current = metadata(&[("cur", &[AWSCURRENT, AWSPENDING])]);
        assert_eq!(other_rotation(&on_current, "mine"), None);
        let none = metadata(&[("cur", &[AWSCURRENT]), ("old", &["AWSPREVIOUS"])]);
        assert_eq!(other_rotation(&none, "mine"), None);
    }

    #[test]
    fn a_put_alone_wins() {
        let before = metadata(&[("cur", &[AWSCURRENT]), ("old", &[])]);
        let after = metadata(&[
            ("cur", &[AWSCURRENT]),
            ("old", &[]),
            ("mine", &[AWSPENDING]),
        ]);
        assert_eq!(after_put(&before, &after, "mine"), AfterPut::Won);
    }

    #[test]
    fn a_later_put_finds_the_version_it_took_the_label_from() {
        let before = metadata(&[("cur", &[AWSCURRENT])]);
        let after = metadata(&[
            ("cur", &[AWSCURRENT]),
            ("first", &[]),
            ("mine", &[AWSPENDING]),
        ]);
        assert_eq!(
            after_put(&before, &after, "mine"),
            AfterPut::TookFrom("first".into())
        );
    }

    #[test]
    fn old_unlabelled_versions_are_no_race() {
        let before = metadata(&[("cur", &[AWSCURRENT]), ("deprecated", &[])]);
        let after = metadata(&[
            ("cur", &[AWSCURRENT]),
            ("deprecated", &[]),
            ("mine", &[AWSPENDING]),
        ]);
        assert_eq!(after_put(&before, &after, "mine"), AfterPut::Won);
    }

    #[test]
    fn a_first_put_whose_label_was_taken_has_lost() {
        let before = metadata(&[("cur", &[AWSCURRENT])]);
        let after = metadata(&[
            ("cur", &[AWSCURRENT]),
            ("mine", &[]),
            ("later", &[AWSPENDING]),
        ]);
        assert_eq!(
            after_put(&before, &after, "mine"),
            AfterPut::Lost(Some("later".into()))
        );
    }

    const SETTLE: Duration = Duration::from_secs(1);

    #[test]
    fn a_quick_later_put_goes_on_and_the_earlier_refuses() {
        let took = AfterPut::TookFrom("first".into());
        assert_eq!(
            decide(&took, Duration::from_millis(300), SETTLE),
            Decision::GoOn
        );
        let lost = AfterPut::Lost(Some("later".into()));
        assert_eq!(
            decide(&lost, Duration::from_millis(300), SETTLE),
            Decision::Refuse("later".into())
        );
    }

    #[test]
    fn a_slow_later_put_gives_the_label_back() {
        let took = AfterPut::TookFrom("first".into());
        assert_eq!(
            decide(&took, Duration::from_millis(1500), SETTLE),
            Decision::GiveBack("first".into())
        );
    }

    #[test]
    fn a_put_alone_goes_on_however_slow() {
        assert_eq!(
            decide(&AfterPut::Won, Duration::from_secs(20), SETTLE),
            Decision::GoOn
        );
    }
}
