//! Every environment variable the functions read, declared once: its name, default, range and
//! meaning. The parsing code in [`crate::config`], [`crate::password`], [`crate::logging`] and
//! the compromise function reads its defaults and ranges from here, and
//! [`markdown_table`] renders the table of `docs/configuration.md` (a unit test fails when the
//! document and this table disagree). The document follows.
//!
#![doc = include_str!("../../../../docs/configuration.md")]

use std::fmt::Write;
use std::ops::RangeInclusive;

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// The variable's name.
    pub name: &'static str,
    /// Its value when unset, and the values it accepts.
    pub values: Values,
    /// What it does, in one Markdown sentence (no `|`).
    pub meaning: &'static str,
}

/// The default and the accepted values of a [`Variable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// A whole number from `min` to `max`.
    Number {
        /// The value when unset.
        default: u64,
        /// The smallest accepted value.
        min: u64,
        /// The largest accepted value.
        max: u64,
        /// How an invalid value's error calls what is expected (`a whole number`, or
        /// `a whole number of seconds`).
        expected: &'static str,
    },
    /// `true` or `false`, in any case; empty means false.
    Flag {
        /// The value when unset.
        default: bool,
    },
    /// Free text.
    Text {
        /// The value when unset, if any.
        default: Option<&'static str>,
        /// The values accepted, as the document shows them.
        accepted: &'static str,
    },
}

impl Variable {
    /// The default of a [`Values::Number`] variable.
    pub const fn default_number(&self) -> u64 {
        match self.values {
            Values::Number { default, .. } => default,
            _ => panic!("not a number variable"),
        }
    }

    /// The accepted range of a [`Values::Number`] variable.
    pub const fn range(&self) -> RangeInclusive<u64> {
        match self.values {
            Values::Number { min, max, .. } => min..=max,
            _ => panic!("not a number variable"),
        }
    }

    /// The default of a [`Values::Flag`] variable.
    pub const fn default_flag(&self) -> bool {
        match self.values {
            Values::Flag { default } => default,
            _ => panic!("not a flag variable"),
        }
    }

    /// The default of a [`Values::Text`] variable, if it has one.
    pub const fn default_text(&self) -> Option<&'static str> {
        match self.values {
            Values::Text { default, .. } => default,
            _ => panic!("not a text variable"),
        }
    }

    /// The number `raw` holds, if it is one in range; else the error message naming the
    /// variable, for the caller to wrap in its own error type.
    pub fn parse_number(&self, raw: &str) -> Result<u64, String> {
        let Values::Number {
            min, max, expected, ..
        } = self.values
        else {
            panic!("{} is not a number variable", self.name);
        };
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                format!(
                    "{} must be {expected} from {min} to {max}, got {raw:?}",
                    self.name
                )
            })
    }

    /// The number `lookup` gives the variable: its default when unset, else
    /// [`Variable::parse_number`].
    pub fn number(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<u64, String> {
        match lookup(self.name) {
            None => Ok(self.default_number()),
            Some(raw) => self.parse_number(&raw),
        }
    }

    /// The flag `lookup` gives the variable: its default when unset, `true` or `false` in any
    /// case (empty is false), else the error message naming the variable.
    pub fn flag(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
        match lookup(self.name) {
            None => Ok(self.default_flag()),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" | "" => Ok(false),
                _ => Err(format!("{} must be true or false, got {raw:?}", self.name)),
            },
        }
    }

    /// The document's default column.
    fn default_cell(&self) -> String {
        match self.values {
            Values::Number { default, .. } => default.to_string(),
            Values::Flag { default } => default.to_string(),
            Values::Text { default: None, .. } => "none".to_owned(),
            Values::Text {
                default: Some(default),
                ..
            } => format!("`{default}`"),
        }
    }

    /// The document's accepted values column.
    fn accepted_cell(&self) -> String {
        match self.values {
            Values::Number { min, max, .. } => format!("{min} to {max}"),
            Values::Flag { .. } => "true, false".to_owned(),
            Values::Text { accepted, .. } => accepted.to_owned(),
        }
    }
}

const fn number(default: u64, min: u64, max: u64) -> Values {
    Values::Number {
        default,
        min,
        max,
        expected: "a whole number",
    }
}

const fn seconds(default: u64, min: u64, max: u64) -> Values {
    Values::Number {
        default,
        min,
        max,
        expected: "a whole number of seconds",
    }
}

const fn flag(default: bool) -> Values {
    Values::Flag { default }
}

const fn text(default: &'static str, accepted: &'static str) -> Values {
    Values::Text {
        default: Some(default),
        accepted,
    }
}

const fn no_default(accepted: &'static str) -> Values {
    Values::Text {
        default: None,
        accepted,
    }
}

/// Length of a generated password (AWS's templates).
pub const PASSWORD_LENGTH: Variable = Variable {
    name: "PASSWORD_LENGTH",
    values: number(32, 4, 4096),
    meaning: "length of a generated password, as in AWS's templates",
};
/// Characters never used in a password (AWS's PostgreSQL template: they break connection
/// strings).
pub const EXCLUDE_CHARACTERS: Variable = Variable {
    name: "EXCLUDE_CHARACTERS",
    values: text(":/@\"'\\", "any characters"),
    meaning: "characters never used in a password",
};
/// Drop the digits from passwords.
pub const EXCLUDE_NUMBERS: Variable = Variable {
    name: "EXCLUDE_NUMBERS",
    values: flag(false),
    meaning: "drop the digits from passwords",
};
/// Drop the punctuation from passwords.
pub const EXCLUDE_PUNCTUATION: Variable = Variable {
    name: "EXCLUDE_PUNCTUATION",
    values: flag(false),
    meaning: "drop the punctuation from passwords",
};
/// Drop the upper case letters from passwords.
pub const EXCLUDE_UPPERCASE: Variable = Variable {
    name: "EXCLUDE_UPPERCASE",
    values: flag(false),
    meaning: "drop the upper case letters from passwords",
};
/// Drop the lower case letters from passwords.
pub const EXCLUDE_LOWERCASE: Variable = Variable {
    name: "EXCLUDE_LOWERCASE",
    values: flag(false),
    meaning: "drop the lower case letters from passwords",
};
/// Use at least one character of each class left.
pub const REQUIRE_EACH_INCLUDED_TYPE: Variable = Variable {
    name: "REQUIRE_EACH_INCLUDED_TYPE",
    values: flag(true),
    meaning: "a password has at least one character of each class used",
};
/// Extra PEM file of CA certificates trusted for database TLS, on top of the system roots and
/// the Amazon RDS CA bundle compiled into the binary.
pub const DB_CA_FILE: Variable = Variable {
    name: "ROTATION_DB_CA_FILE",
    values: no_default("a file path"),
    meaning: "extra PEM CA certificates trusted for database TLS, on top of the system roots and the Amazon RDS bundle",
};
/// Seconds allowed for one database connection (TCP, TLS and login).
pub const DB_CONNECT_TIMEOUT: Variable = Variable {
    name: "ROTATION_DB_CONNECT_TIMEOUT_SECONDS",
    values: number(5, 1, 300),
    meaning: "bound on one database login (TCP, TLS, authentication)",
};
/// Seconds allowed for one database statement once logged in (a connection that accepts and
/// then hangs fails within this bound).
pub const DB_STATEMENT_TIMEOUT: Variable = Variable {
    name: "ROTATION_DB_STATEMENT_TIMEOUT_SECONDS",
    values: number(30, 1, 600),
    meaning: "bound on one statement once logged in: a server that accepts and then hangs fails the step in bounded time",
};
/// Seconds allowed for one attempt of an AWS API call (the SDK retries a timed-out attempt
/// while attempts and the operation timeout allow).
pub const AWS_ATTEMPT_TIMEOUT: Variable = Variable {
    name: "ROTATION_AWS_ATTEMPT_TIMEOUT_SECONDS",
    values: number(10, 1, 300),
    meaning: "bound on one attempt of an AWS API call",
};
/// Seconds allowed for one AWS API call, all retries included.
pub const AWS_OPERATION_TIMEOUT: Variable = Variable {
    name: "ROTATION_AWS_OPERATION_TIMEOUT_SECONDS",
    values: number(30, 1, 900),
    meaning: "bound on one AWS API call, retries included; not below the attempt timeout",
};
/// Milliseconds createSecret waits after its put, where nothing reserved the rotation
/// (workflow mode, the local driver), before it re-reads the labels to settle a race with a
/// concurrent rotation (see [`crate::concurrent`]).
pub const RACE_SETTLE: Variable = Variable {
    name: "ROTATION_RACE_SETTLE_MILLISECONDS",
    values: number(1000, 0, 60_000),
    meaning: "where nothing reserved the rotation (workflow mode, the local driver), how long createSecret waits after its put before it re-reads the labels to settle a race with a concurrent rotation. Any value is safe: it decides only whether two rotations started within this time of each other can both refuse instead of one going on, never whether a credential is lost (`shared/rotation/src/concurrent.rs`)",
};
/// The AWS SDK's retry mode (read by the SDK).
pub const AWS_RETRY_MODE: Variable = Variable {
    name: "AWS_RETRY_MODE",
    values: text("standard", "standard, adaptive"),
    meaning: "the AWS SDK's own retry mode: throttling, 5xx and timeouts are retried with exponential backoff and jitter",
};
/// The AWS SDK's attempts per call (read by the SDK).
pub const AWS_MAX_ATTEMPTS: Variable = Variable {
    name: "AWS_MAX_ATTEMPTS",
    values: text("3", "a whole number"),
    meaning: "the AWS SDK's own attempts per call, the first included",
};
/// The longest MySQL user name (AWS's templates: 16).
pub const USERNAME_LIMIT: Variable = Variable {
    name: "USERNAME_CHARACTER_LIMIT",
    values: number(16, 1, 255),
    meaning: "longest MySQL user name (alternating users)",
};
/// Seconds to wait for an RDS instance or cluster to be available again after its master
/// password changed.
pub const RDS_WAIT: Variable = Variable {
    name: "ROTATION_RDS_WAIT_SECONDS",
    values: number(240, 1, 3600),
    meaning: "bound on waiting for RDS to apply a master password change (its `PendingModifiedValues` cleared, status `available`); the invocation's deadline bounds it too",
};
/// Seconds setSecret waits for the consumers of a credential it is about to invalidate to
/// leave, for a secret whose tag `rotation-in-use` is `wait`.
pub const IN_USE_WAIT: Variable = Variable {
    name: "ROTATION_IN_USE_WAIT_SECONDS",
    values: seconds(60, 1, 900),
    meaning: "bound on waiting for the sessions of a credential about to be invalidated to end (tag `rotation-in-use` = `wait`, [consumers](consumers.md)); the invocation's deadline bounds it too; then the step refuses",
};
/// Where to connect instead of a secret's (or RDS's) endpoint, as `PATTERN:PORT=HOST:PORT`
/// entries separated by commas or semicolons; PATTERN may start with `*.` (for example a
/// tunnel, or the local stack standing in for RDS).
pub const DB_HOST_OVERRIDES: Variable = Variable {
    name: "ROTATION_DB_HOST_OVERRIDES",
    values: no_default(
        "`PATTERN:PORT=HOST:PORT` entries separated by `;` or `,`; PATTERN may start with `*.`",
    ),
    meaning:
        "connect elsewhere than an endpoint: for tunnels, and the local stack standing in for RDS",
};
/// `true` makes createSecret refuse to revoke an IAM access key used since the previous
/// rotation finished (a secret's `strictRevocation` overrides it).
pub const IAM_STRICT_REVOCATION: Variable = Variable {
    name: "ROTATION_IAM_STRICT_REVOCATION",
    values: flag(false),
    meaning: "refuse to revoke an IAM access key used since the previous rotation (a secret's `strictRevocation` overrides it)",
};
/// Seconds setSecret waits for IAM to accept a new access key.
pub const IAM_PROPAGATION_TIMEOUT: Variable = Variable {
    name: "ROTATION_IAM_PROPAGATION_TIMEOUT_SECONDS",
    values: seconds(30, 1, 600),
    meaning: "how long setSecret waits for IAM to accept a new access key",
};
/// Lambda's log level (read by [`crate::logging`]; `RUST_LOG` when unset).
pub const LOG_LEVEL: Variable = Variable {
    name: "AWS_LAMBDA_LOG_LEVEL",
    values: text("INFO", "TRACE, DEBUG, INFO, WARN, ERROR"),
    meaning: "Lambda's log level; when unset, `RUST_LOG` (a level or directives)",
};
/// Lambda's log format (read by [`crate::logging`]).
pub const LOG_FORMAT: Variable = Variable {
    name: "AWS_LAMBDA_LOG_FORMAT",
    values: text("text", "text, JSON"),
    meaning: "Lambda's log format (`JSON` for structured logs)",
};
/// The EventBridge event bus (name or ARN) that receives one event per rotation outcome. Unset
/// or empty: no event is published.
pub const EVENT_BUS: Variable = Variable {
    name: "ROTATION_EVENT_BUS",
    values: no_default("a bus name or ARN"),
    meaning: "EventBridge bus receiving one event per rotation outcome; unset or empty: no event",
};
/// Milliseconds one outcome event may take to publish (EventBridge PutEvents, its retries
/// included); the invocation's deadline bounds it too.
pub const PUBLISH_TIMEOUT: Variable = Variable {
    name: "ROTATION_PUBLISH_TIMEOUT_MILLISECONDS",
    values: number(2000, 100, 10000),
    meaning: "bound on publishing one outcome event (PutEvents, retries included); a step stops this long plus 1 s before the invocation's deadline, so that its failure is reported",
};
/// Seconds after which a workflow mode createSecret, started with a new token, resumes the
/// rotation whose AWSPENDING version is this old instead of refusing it as in progress.
pub const WORKFLOW_RESUME_AFTER: Variable = Variable {
    name: "ROTATION_WORKFLOW_RESUME_AFTER_SECONDS",
    values: seconds(3600, 1, 86400),
    meaning: "workflow mode: a pending rotation this old belongs to a run that ended (the state machine's `TimeoutSeconds`), so the next run resumes it",
};
/// The CloudWatch namespace of the metrics the functions log in Embedded Metric Format.
pub const METRICS_NAMESPACE: Variable = Variable {
    name: "ROTATION_METRICS_NAMESPACE",
    values: text(
        "SecretRotation",
        "1 to 255 characters, not starting with `AWS/`",
    ),
    meaning: "CloudWatch namespace of the metrics logged in Embedded Metric Format",
};
/// The compromise function's workflow state machine, for workflow mode secrets.
pub const STATE_MACHINE_ARN: Variable = Variable {
    name: "ROTATION_STATE_MACHINE_ARN",
    values: no_default("a state machine ARN"),
    meaning: "compromise function: the workflow, for workflow mode secrets",
};
/// Seconds one rotation started by the compromise function may take before it gives up on it.
pub const COMPROMISE_TIMEOUT: Variable = Variable {
    name: "ROTATION_COMPROMISE_TIMEOUT_SECONDS",
    values: seconds(600, 1, 900),
    meaning: "compromise function: how long one rotation may take",
};
/// How long after an incident's event (its `time`, else its arrival) the compromise function
/// keeps re-listing secrets by tag: ListSecrets is eventually consistent and may miss a tag
/// added in the last minutes, so a selection by tag is listed again until this window has
/// passed.
pub const COMPROMISE_LISTING_LAG: Variable = Variable {
    name: "ROTATION_COMPROMISE_LISTING_LAG_SECONDS",
    values: seconds(300, 0, 840),
    meaning: "compromise function: how long after the incident's event a selection by tag is listed again (ListSecrets lags); a response that cannot wait that long fails so that Lambda's retry re-checks it",
};
/// Most secrets one incident may rotate; an event selecting more is refused before anything
/// rotates.
pub const COMPROMISE_MAX_SECRETS: Variable = Variable {
    name: "ROTATION_COMPROMISE_MAX_SECRETS",
    values: number(20, 1, 1000),
    meaning: "compromise function: most secrets one incident may rotate; an incident selecting more rotates nothing",
};
/// Most versions a secret may gain in an hour (rotations and puts, counted from the versions'
/// creation dates); a response that would pass it is refused for that secret before it
/// rotates.
pub const COMPROMISE_MAX_ROTATIONS_PER_HOUR: Variable = Variable {
    name: "ROTATION_COMPROMISE_MAX_ROTATIONS_PER_HOUR",
    values: number(4, 1, 100),
    meaning: "compromise function: most new versions a secret may gain in an hour; a response that would pass it rotates nothing for that secret",
};
/// The Lambda Invoke API serving the functions (local stack only).
pub const LOCAL_LAMBDA_ENDPOINT: Variable = Variable {
    name: "ROTATION_LOCAL_LAMBDA_ENDPOINT",
    values: no_default("a URL"),
    meaning: "compromise function, local stack only: the Lambda Invoke API serving the functions",
};

/// Every variable, in the order of the document's table.
pub const VARIABLES: &[Variable] = &[
    PASSWORD_LENGTH,
    EXCLUDE_CHARACTERS,
    EXCLUDE_NUMBERS,
    EXCLUDE_PUNCTUATION,
    EXCLUDE_UPPERCASE,
    EXCLUDE_LOWERCASE,
    REQUIRE_EACH_INCLUDED_TYPE,
    DB_CA_FILE,
    DB_CONNECT_TIMEOUT,
    DB_STATEMENT_TIMEOUT,
    AWS_ATTEMPT_TIMEOUT,
    AWS_OPERATION_TIMEOUT,
    RACE_SETTLE,
    AWS_RETRY_MODE,
    AWS_MAX_ATTEMPTS,
    USERNAME_LIMIT,
    RDS_WAIT,
    IN_USE_WAIT,
    DB_HOST_OVERRIDES,
    IAM_STRICT_REVOCATION,
    IAM_PROPAGATION_TIMEOUT,
    LOG_LEVEL,
    LOG_FORMAT,
    EVENT_BUS,
    PUBLISH_TIMEOUT,
    WORKFLOW_RESUME_AFTER,
    METRICS_NAMESPACE,
    STATE_MACHINE_ARN,
    COMPROMISE_TIMEOUT,
    COMPROMISE_LISTING_LAG,
    COMPROMISE_MAX_SECRETS,
    COMPROMISE_MAX_ROTATIONS_PER_HOUR,
    LOCAL_LAMBDA_ENDPOINT,
];

/// The line before the generated table in `docs/configuration.md`.
pub const TABLE_BEGIN: &str =
    "<!-- BEGIN generated from shared/rotation/src/config/variables.rs: edit the code, not this table -->";
/// The line after the generated table in `docs/configuration.md`.
pub const TABLE_END: &str = "<!-- END generated -->";

/// The Markdown table of [`VARIABLES`], as `docs/configuration.md` holds it between
/// [`TABLE_BEGIN`] and [`TABLE_END`].
pub fn markdown_table() -> String {
    let mut table =
        String::from("| variable | default | accepted | meaning |\n| --- | --- | --- | --- |\n");
    for v in VARIABLES {
        let _ = writeln!(
            table,
            "| `{}` | {} | {} | {} |",
            v.name,
            v.default_cell(),
            v.accepted_cell(),
            v.meaning
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_configuration_md_holds_the_table_the_code_declares() {
        let doc = include_str!("../../../../docs/configuration.md");
        let generated = doc
            .split_once(&format!("{TABLE_BEGIN}\n"))
            .and_then(|(_, rest)| rest.split_once(TABLE_END))
            .map(|(table, _)| table);
        let expected = markdown_table();
        assert_eq!(
            generated,
            Some(expected.as_str()),
            "docs/configuration.md must hold, between\n{TABLE_BEGIN}\nand\n{TABLE_END}\nexactly this table:\n\n{expected}"
        );
    }

    #[test]
    fn every_variable_is_declared_once_without_a_pipe_in_its_text() {
        for (i, v) in VARIABLES.iter().enumerate() {
            assert!(
                VARIABLES[..i].iter().all(|w| w.name != v.name),
                "{} declared twice",
                v.name
            );
            let cells = [v.default_cell(), v.accepted_cell(), v.meaning.to_owned()];
            assert!(cells.iter().all(|c| !c.contains('|')), "{}", v.name);
        }
    }

    #[test]
    fn a_number_out_of_range_is_refused_naming_the_variable_and_the_range() {
        assert_eq!(DB_CONNECT_TIMEOUT.number(|_| None), Ok(5));
        assert_eq!(DB_CONNECT_TIMEOUT.parse_number(" 300 "), Ok(300));
        assert_eq!(
            DB_CONNECT_TIMEOUT.parse_number("301").unwrap_err(),
            "ROTATION_DB_CONNECT_TIMEOUT_SECONDS must be a whole number from 1 to 300, got \"301\""
        );
        assert_eq!(
            IAM_PROPAGATION_TIMEOUT.parse_number("0").unwrap_err(),
            "ROTATION_IAM_PROPAGATION_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 600, got \"0\""
        );
    }
}
