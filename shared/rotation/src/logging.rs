//! The functions' tracing subscriber: Lambda's log level (`AWS_LAMBDA_LOG_LEVEL`, else
//! `RUST_LOG`, else INFO) and format (`AWS_LAMBDA_LOG_FORMAT=JSON`), like the runtime's default
//! subscriber, with the dependencies that would log secrets capped below the level where they
//! do so.
//!
//! The cap is a layer of its own ([`cap`]), not a directive of the level filter: a `RUST_LOG`
//! directive naming a longer target (`tokio_postgres::simple_query=debug`) would win over a
//! `tokio_postgres=info` directive, but no directive can lift the layer, which drops every span
//! and event whose target is a capped target or a module under it, above the cap.

use std::str::FromStr;

use lambda_runtime::tracing::subscriber::filter::{filter_fn, EnvFilter, FilterFn, LevelFilter};
use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
use lambda_runtime::tracing::subscriber::layer::SubscriberExt;
use lambda_runtime::tracing::subscriber::registry::LookupSpan;
use lambda_runtime::tracing::subscriber::util::SubscriberInitExt;
use tracing::{Metadata, Subscriber};

use crate::config::variables;

/// Targets capped whatever the configured level, with why:
/// - `lambda_runtime::layers::api_response` logs every raw event at TRACE, and a rotation
///   event carries its `RotationToken`;
/// - `tokio_postgres` logs every statement at DEBUG, and `ALTER ROLE ... PASSWORD` carries the
///   new password's SCRAM verifier;
/// - `mysql_async` and `mysql_common` may log statements, which carry passwords or their hashes.
///
/// A target is capped with everything under it (`tokio_postgres::simple_query` too).
pub const CAPPED_TARGETS: &[(&str, LevelFilter)] = &[
    ("lambda_runtime::layers::api_response", LevelFilter::DEBUG),
    ("tokio_postgres", LevelFilter::INFO),
    ("mysql_async", LevelFilter::INFO),
    ("mysql_common", LevelFilter::INFO),
];

/// Whether `target` is `capped` or a module under it (`capped::...`).
fn under(target: &str, capped: &str) -> bool {
    target
        .strip_prefix(capped)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Whether a span or event may be logged at all: false for one of a [`CAPPED_TARGETS`] target
/// (or a target under it) more verbose than the cap.
pub fn within_caps(metadata: &Metadata<'_>) -> bool {
    CAPPED_TARGETS
        .iter()
        .filter(|(capped, _)| under(metadata.target(), capped))
        .all(|(_, cap)| metadata.level() <= cap)
}

/// The layer enforcing [`CAPPED_TARGETS`] whatever the level filter allows.
pub fn cap() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    filter_fn(within_caps as fn(&Metadata<'_>) -> bool)
}

/// The level filter for the function's environment: `AWS_LAMBDA_LOG_LEVEL` (a level), else
/// `RUST_LOG` (a level or directives), else INFO.
pub fn filter() -> EnvFilter {
    filter_for(
        std::env::var(variables::LOG_LEVEL.name).ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    )
}

/// The level filter for these values of `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG`. It may enable
/// anything; [`cap`] holds the line for [`CAPPED_TARGETS`] whatever its directives say (and
/// tells tracing so per callsite, so a capped callsite costs nothing).
pub fn filter_for(lambda_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    let level = lambda_level
        .or(rust_log)
        .and_then(|level| LevelFilter::from_str(level).ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(rust_log.unwrap_or_default())
}

/// `subscriber` with the [`cap`] layer on top.
pub fn capped<S>(subscriber: S) -> impl Subscriber + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    subscriber.with(cap())
}

/// The functions' subscriber: `filter`, Lambda's format (text, or JSON when `json`), lines
/// written to `writer`, and [`cap`] on top.
pub fn subscriber<W>(filter: EnvFilter, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        Box::new(capped(builder.json().finish()))
    } else {
        Box::new(capped(builder.finish()))
    }
}

/// Installs the subscriber for a function's process (once, at start).
pub fn init() {
    let json = std::env::var(variables::LOG_FORMAT.name)
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    subscriber(filter(), json, std::io::stdout).init();
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer appending to a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Emits one line per capped target and sub-target, above and at the cap, and one of the
    /// functions' own at TRACE.
    fn emit() {
        tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event body");
        tracing::debug!(target: "lambda_runtime::layers::api_response", "response sent");
        tracing::debug!(target: "tokio_postgres::simple_query", "ALTER ROLE simple_query verifier");
        tracing::debug!(target: "tokio_postgres::query", "ALTER ROLE query verifier");
        tracing::trace!(target: "tokio_postgres", "ALTER ROLE top verifier");
        tracing::trace!(target: "mysql_async::conn", "IDENTIFIED BY conn password");
        tracing::debug!(target: "mysql_common::packets", "mysql_common packet password");
        tracing::info!(target: "tokio_postgres", "connection closed");
        tracing::info!(target: "mysql_async::conn", "mysql connection closed");
        tracing::debug!(target: "tokio_postgres_rustls", "a neighbour crate, not capped");
        tracing::trace!(target: "rotation::protocol", "own trace line");
    }

    /// What `emit` writes through the functions' subscriber with `filter`, or, without the
    /// cap, through a plain one.
    fn logged(filter: EnvFilter, with_cap: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        if with_cap {
            let subscriber = subscriber(filter, false, move || writer.clone());
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = lambda_runtime::tracing::subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, emit);
        }
        captured.text()
    }

    const SECRET_LINES: &[&str] = &[
        "raw event body",
        "simple_query verifier",
        "query verifier",
        "top verifier",
        "conn password",
        "packet password",
    ];

    #[test]
    fn no_directive_lifts_the_cap_of_a_target_or_its_sub_targets() {
        let attacks = [
            (None, "trace"),
            (Some("trace"), "tokio_postgres::simple_query=debug,mysql_async::conn=trace"),
            (
                None,
                "trace,tokio_postgres=trace,tokio_postgres::simple_query=debug,tokio_postgres::query=trace,\
                 mysql_async::conn=trace,mysql_common::packets=trace,lambda_runtime=trace,\
                 lambda_runtime::layers::api_response=trace",
            ),
            (
                Some("debug"),
                "info,[{sql}]=trace,tokio_postgres::simple_query[span]=trace,lambda_runtime::layers::api_response::inner=trace",
            ),
        ];
        for (lambda_level, rust_log) in attacks {
            let text = logged(filter_for(lambda_level, Some(rust_log)), true);
            for line in SECRET_LINES {
                assert!(!text.contains(line), "{rust_log}: {line:?} logged:\n{text}");
            }
            for line in ["connection closed", "mysql connection closed"] {
                assert!(
                    text.contains(line),
                    "{rust_log}: the cap keeps {line:?}:\n{text}"
                );
            }
        }
        let text = logged(filter_for(Some("trace"), None), true);
        assert!(text.contains("response sent"), "{text}");
        assert!(text.contains("a neighbour crate"), "{text}");
        assert!(
            text.contains("own trace line"),
            "the rest stays at TRACE: {text}"
        );
    }

    #[test]
    fn without_the_cap_layer_a_longer_directive_would_log_the_verifier() {
        // The directives alone (the filter before the cap layer) let a sub-target through:
        // this is what the layer is for, and shows the test above can see a leak.
        let text = logged(
            filter_for(None, Some("info,tokio_postgres::simple_query=debug")),
            false,
        );
        assert!(text.contains("simple_query verifier"), "{text}");
    }

    #[test]
    fn sub_targets_are_matched_on_module_boundaries() {
        assert!(under("tokio_postgres", "tokio_postgres"));
        assert!(under("tokio_postgres::simple_query", "tokio_postgres"));
        assert!(!under("tokio_postgres_rustls", "tokio_postgres"));
        assert!(!under("tokio", "tokio_postgres"));
    }
}
