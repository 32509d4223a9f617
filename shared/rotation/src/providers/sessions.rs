//! Live use of a credential: who is connected with it before a rotation invalidates it (the
//! in-use check, a policy per secret by the tag [`TAG`]), and what a compromise response cut
//! off.
//!
//! A provider that can tell lists the sessions (database) or the last use (IAM access key) of
//! the credential a step is about to invalidate; [`decide`] applies the secret's [`Policy`]:
//! `warn` (the default) records a warning, a metric and an outcome event naming the consumers
//! and goes on; `refuse` fails the step ([`RotationError::CredentialInUse`]) before anything
//! changed; `wait` lists again within `ROTATION_IN_USE_WAIT_SECONDS` and the invocation's
//! deadline, then refuses. A secret under a compromise response (its tag
//! [`crate::compromise_marker::TAG`]) is never held up by its consumers: every policy warns.
//!
//! What is reported about a session: the user, the client's address, the application name and
//! when it began, as the server lists them; never a secret.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RotationError};
use crate::secrets_manager::SecretMetadata;

/// The secret tag that chooses the in-use policy.
pub const TAG: &str = "rotation-in-use";

/// The application name of the rotation's own database logins (PostgreSQL's
/// `application_name`): the in-use check does not count them as consumers.
pub const OWN_APPLICATION_NAME: &str = "secrets-manager-rotation";

/// What a step does when the credential it is about to invalidate is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Log a warning, emit the metric and the outcome event, and go on.
    #[default]
    Warn,
    /// Look again until the consumers are gone, within the bound; then refuse.
    Wait,
    /// Fail the step, naming the consumers, before anything changed.
    Refuse,
}

impl Policy {
    /// The values the tag accepts.
    pub const VALUES: &'static str = "warn, refuse, wait";

    /// The policy a tag value names, or None.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "warn" => Some(Policy::Warn),
            "wait" => Some(Policy::Wait),
            "refuse" => Some(Policy::Refuse),
            _ => None,
        }
    }

    /// The secret's policy: its [`TAG`], [`Policy::Warn`] without one; a value that is no
    /// policy is refused, naming the tag.
    pub fn of(secret: &SecretMetadata) -> Result<Self> {
        match secret.tags.get(TAG) {
            None => Ok(Policy::default()),
            Some(value) => Self::parse(value).ok_or_else(|| {
                RotationError::invalid_secret(
                    &secret.arn,
                    &format!("tag {TAG}"),
                    format!("unsupported value {value:?}; expected {}", Self::VALUES),
                )
            }),
        }
    }

    /// The tag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Warn => "warn",
            Policy::Wait => "wait",
            Policy::Refuse => "refuse",
        }
    }
}

/// What [`decide`] tells the step to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody uses the credential: go on.
    GoOn,
    /// In use: warn and go on.
    Warn,
    /// In use: look again after a pause.
    Retry,
    /// In use: fail the step.
    Refuse,
}

/// What to do about `in_use` consumers of the credential a step invalidates, under `policy`;
/// `incident`: the secret is under a compromise response; `time_left`: another look fits
/// before the wait's end.
pub fn decide(policy: Policy, incident: bool, in_use: usize, time_left: bool) -> Decision {
    if in_use == 0 {
        return Decision::GoOn;
    }
    if incident {
        return Decision::Warn;
    }
    match policy {
        Policy::Warn => Decision::Warn,
        Policy::Wait if time_left => Decision::Retry,
        Policy::Wait | Policy::Refuse => Decision::Refuse,
    }
}

/// One session as the server lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The server's id of it (PostgreSQL's pid, MySQL's thread id).
    pub id: u64,
    /// The client's address, when the login may see it.
    pub address: Option<String>,
    /// The application name the client gave (PostgreSQL), if any.
    pub application: Option<String>,
    /// When it began (PostgreSQL's `backend_start`), when the login may see it.
    pub started: Option<String>,
    /// Whether the login may see its details (PostgreSQL hides them from a role that has not
    /// the privileges of the session's role or `pg_read_all_stats`).
    pub visible: bool,
}

impl Session {
    /// Whether it is one of the rotation's own logins ([`OWN_APPLICATION_NAME`]).
    pub fn is_own(&self) -> bool {
        self.application.as_deref() == Some(OWN_APPLICATION_NAME)
    }
}

/// Who is connected as one user: what an operator needs to find the consumers, never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sessions {
    /// The user (for an IAM access key: the user and the key id).
    pub user: String,
    /// How many sessions.
    pub count: usize,
    /// The clients' addresses, each once.
    pub addresses: Vec<String>,
    /// The application names, each once.
    pub application_names: Vec<String>,
    /// When the oldest began (as the server writes it), when known.
    pub oldest_start: Option<String>,
    /// How many sessions' details the login may not see.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hidden: usize,
    /// When the credential was last used, for a credential without sessions (IAM access key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Sessions {
    /// The summary of `rows`, the sessions of `user`.
    pub fn of<'a>(user: &str, rows: impl IntoIterator<Item = &'a Session>) -> Self {
        let mut count = 0;
        let mut hidden = 0;
        let mut addresses = BTreeSet::new();
        let mut applications = BTreeSet::new();
        let mut oldest: Option<&str> = None;
        for row in rows {
            count += 1;
            if !row.visible {
                hidden += 1;
            }
            if let Some(address) = row.address.as_deref().filter(|a| !a.is_empty()) {
                addresses.insert(address.to_owned());
            }
            if let Some(name) = row.application.as_deref().filter(|a| !a.is_empty()) {
                applications.insert(name.to_owned());
            }
            // The server writes its times in one format and zone, so they sort as text.
            if let Some(started) = row.started.as_deref() {
                if oldest.is_none_or(|o| started < o) {
                    oldest = Some(started);
                }
            }
        }
        Sessions {
            user: user.to_owned(),
            count,
            addresses: addresses.into_iter().collect(),
            application_names: applications.into_iter().collect(),
            oldest_start: oldest.map(str::to_owned),
            hidden,
            last_used: None,
        }
    }

    /// The consumers among `rows`: every session but the rotation's own logins.
    pub fn consumers(user: &str, rows: &[Session]) -> Self {
        Self::of(user, rows.iter().filter(|row| !row.is_own()))
    }

    /// One line for logs and errors: `2 session(s) of user "app" (from 10.0.0.5; applications
    /// billing; oldest since ...)`.
    pub fn describe(&self) -> String {
        let mut details = Vec::new();
        if !self.addresses.is_empty() {
            details.push(format!("from {}", self.addresses.join(", ")));
        }
        if !self.application_names.is_empty() {
            details.push(format!(
                "application_name {}",
                self.application_names.join(", ")
            ));
        }
        if let Some(oldest) = &self.oldest_start {
            details.push(format!("oldest since {oldest}"));
        }
        if let Some(used) = &self.last_used {
            details.push(format!("last used at {used}"));
        }
        if self.hidden > 0 {
            details.push(format!(
                "the details of {} hidden from this login",
                self.hidden
            ));
        }
        let mut text = format!("{} session(s) of user {:?}", self.count, self.user);
        if !details.is_empty() {
            text.push_str(&format!(" ({})", details.join("; ")));
        }
        text
    }
}

/// What a step found and did about live sessions, for its report, metrics and outcome event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionFacts {
    /// The policy the step applied.
    pub policy: Policy,
    /// The consumers of the credential the step invalidates, when it found any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<Sessions>,
    /// Alternating users: the sessions of the AWSCURRENT user (the consumers that moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Sessions>,
    /// Compromise response: the sessions the step terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Sessions>,
}

impl SessionFacts {
    /// Whether there is anything to tell: consumers in use, or sessions terminated.
    pub fn is_notable(&self) -> bool {
        self.in_use.is_some() || self.terminated.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn secret(tags: &[(&str, &str)]) -> SecretMetadata {
        SecretMetadata {
            arn: "arn:s".into(),
            name: "s".into(),
            rotation_enabled: true,
            versions: Default::default(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn the_policy_comes_from_the_tag_and_a_bad_value_names_it() {
        assert_eq!(Policy::of(&secret(&[])).unwrap(), Policy::Warn);
        for (value, policy) in [
            ("warn", Policy::Warn),
            ("refuse", Policy::Refuse),
            (" wait ", Policy::Wait),
        ] {
            assert_eq!(Policy::of(&secret(&[(TAG, value)])).unwrap(), policy);
        }
        for bad in ["", "Refuse", "block", "wait:30"] {
            let err = Policy::of(&secret(&[(TAG, bad)])).unwrap_err().to_string();
            assert!(err.contains("tag rotation-in-use"), "{err}");
            assert!(err.contains("expected warn, refuse, wait"), "{err}");
        }
    }

    #[test]
    fn each_policy_decides_as_documented() {
        use Decision::*;
        for policy in [Policy::Warn, Policy::Wait, Policy::Refuse] {
            assert_eq!(decide(policy, false, 0, true), GoOn);
            assert_eq!(decide(policy, true, 0, false), GoOn);
            // A compromise response is never held up by the consumers.
            assert_eq!(decide(policy, true, 3, true), Warn);
        }
        assert_eq!(decide(Policy::Warn, false, 1, false), Warn);
        assert_eq!(decide(Policy::Refuse, false, 1, true), Refuse);
        assert_eq!(decide(Policy::Wait, false, 1, true), Retry);
        assert_eq!(decide(Policy::Wait, false, 1, false), Refuse);
    }

    #[test]
    fn a_summary_names_each_client_once_and_skips_the_rotations_own_logins() {
        let row = |id, address: &str, app: &str, started: &str| Session {
            id,
            address: Some(address.into()),
            application: Some(app.into()),
            started: Some(started.into()),
            visible: true,
        };
        let rows = vec![
            row(1, "10.0.0.6", "billing", "2026-12-07 23:01:00+00"),
            row(2, "10.0.0.5", "billing", "2026-12-07 22:59:00+00"),
            row(
                3,
                "10.0.0.9",
                OWN_APPLICATION_NAME,
                "2026-12-07 22:00:00+00",
            ),
            Session {
                id: 4,
                application: Some("reports".into()),
                ..Session::default()
            },
        ];
        let found = Sessions::consumers("app", &rows);
        assert_eq!(found.count, 3);
        assert_eq!(found.addresses, ["10.0.0.5", "10.0.0.6"]);
        assert_eq!(found.application_names, ["billing", "reports"]);
        assert_eq!(
            found.oldest_start.as_deref(),
            Some("2026-12-07 22:59:00+00")
        );
        assert_eq!(found.hidden, 1);
        let text = found.describe();
        assert!(text.starts_with("3 session(s) of user \"app\""), "{text}");
        assert!(text.contains("from 10.0.0.5, 10.0.0.6"), "{text}");
        assert!(text.contains("application_name billing, reports"), "{text}");
        assert!(text.contains("the details of 1 hidden"), "{text}");
        assert_eq!(Sessions::of("app", &rows).count, 4);
        assert_eq!(
            Sessions::of("app", &[]).describe(),
            "0 session(s) of user \"app\""
        );
    }
}
