//! The functions' tracing subscriber: Lambda's log level (`AWS_LAMBDA_LOG_LEVEL`, else
//! `RUST_LOG`, else INFO) and format (`AWS_LAMBDA_LOG_FORMAT=JSON`), like the runtime's default
//! subscriber, with the dependencies that would log secrets capped below the level where they
//! do so.

use std::str::FromStr;

use lambda_runtime::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// Targets capped whatever the configured level, with why:
/// - `lambda_runtime::layers::api_response` logs every raw event at TRACE, and a rotation
///   event carries its `RotationToken`;
/// - `tokio_postgres` logs every statement at DEBUG, and `ALTER ROLE ... PASSWORD` carries the
///   new password's SCRAM verifier;
/// - `mysql_async` and `mysql_common` may log statements, which carry password hashes.
pub const CAPPED_TARGETS: &[(&str, &str)] = &[
    ("lambda_runtime::layers::api_response", "debug"),
    ("tokio_postgres", "info"),
    ("mysql_async", "info"),
    ("mysql_common", "info"),
];

/// The filter: the configured level for everything, [`CAPPED_TARGETS`] capped (a `RUST_LOG`
/// directive naming one of them cannot lift the cap).
pub fn filter() -> EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| LevelFilter::from_str(&level).ok())
        .unwrap_or(LevelFilter::INFO);
    capped(
        EnvFilter::builder()
            .with_default_directive(level.into())
            .from_env_lossy(),
    )
}

/// `filter` with [`CAPPED_TARGETS`] added last, so they override whatever it says of them.
fn capped(mut filter: EnvFilter) -> EnvFilter {
    for (target, cap) in CAPPED_TARGETS {
        let directive = Directive::from_str(&format!("{target}={cap}"))
            .expect("CAPPED_TARGETS holds valid directives");
        filter = filter.add_directive(directive);
    }
    filter
}

/// Installs the subscriber for a function's process (once, at start).
pub fn init() {
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_targets_stay_capped_at_trace() {
        let shown = capped(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::TRACE.into())
                .parse_lossy("lambda_runtime::layers::api_response=trace,tokio_postgres=trace"),
        )
        .to_string();
        assert!(
            shown.contains("lambda_runtime::layers::api_response=debug"),
            "{shown}"
        );
        assert!(shown.contains("tokio_postgres=info"), "{shown}");
        assert!(!shown.contains("=trace,"), "{shown}");
        assert!(
            shown.contains("trace"),
            "the default level stays TRACE: {shown}"
        );
    }
}
