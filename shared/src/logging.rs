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

    #[test]
    fn capped_targets_stay_capped_at_trace() {
        let filter = capped(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::TRACE.into())
                .parse_lossy("trace,lambda_runtime=trace,tokio_postgres=trace"),
        );
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = lambda_runtime::tracing::subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event body");
            tracing::debug!(target: "lambda_runtime::layers::api_response", "response sent");
            tracing::debug!(target: "tokio_postgres::simple_query", "ALTER ROLE statement");
            tracing::info!(target: "tokio_postgres", "connection closed");
            tracing::trace!(target: "rotation::protocol", "own trace line");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("raw event body"), "{text}");
        assert!(!text.contains("ALTER ROLE statement"), "{text}");
        assert!(text.contains("response sent"), "{text}");
        assert!(text.contains("connection closed"), "{text}");
        assert!(
            text.contains("own trace line"),
            "the rest stays at TRACE: {text}"
        );
    }
}
