//! Logs and errors: no log level setting makes a driver log a statement with a password or a
//! verifier, and database error text loses the secrets in play before it becomes the Lambda
//! error (and so the outcome event and the CLI's output).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotation::error::Credential;
use rotation::providers::database::{Database, Who};
use rotation::providers::database_secret::TlsMode;
use rotation::providers::mysql::native_password_hash;
use rotation::providers::postgres::{connect, Postgres};
use rotation::secrets_manager::AWSPENDING;
use rotation::Mode;
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::mysql_echo::EchoProxy;
use test_support::{Db, Role, Stack};

/// A log writer appending to a shared buffer.
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

/// Attack: `RUST_LOG=tokio_postgres::simple_query=debug` (a target longer than the capped
/// `tokio_postgres`) would win over the old `tokio_postgres=info` cap directive (the review's
/// L1). The functions' own subscriber, built from that setting, watches a real password change
/// on the real server: nothing of the verifier or the password is logged.
///
/// tokio-postgres logs through the `log` crate, which nothing in the functions bridges into
/// tracing, so today its statements never reach a subscriber whatever the level: this test
/// guards that end to end (it fails if a bridge or a tracing-based driver arrives without the
/// cap). The cap itself is proven by `rotation::logging`'s unit tests, which fail without the
/// cap layer. (Current-thread runtime: the subscriber is this thread's, and so the driver's.)
#[tokio::test]
async fn a_rust_log_sub_target_cannot_make_the_driver_log_the_verifier() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("pglogcap");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    let new_password = Stack::password();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = rotation::logging::subscriber(
        rotation::logging::filter_for(
            Some("trace"),
            Some(
                "trace,tokio_postgres=trace,tokio_postgres::simple_query=debug,\
                 tokio_postgres::query=trace,tokio_postgres::prepare=trace,\
                 mysql_async::conn=trace,mysql_common=trace",
            ),
        ),
        false,
        move || writer.clone(),
    );
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::trace!(target: "rotation::test", "the capture works");
    let who = Who {
        credential: Credential::Current,
        user: user.clone(),
        endpoint: format!("{}:{}", stack.pg_host, stack.pg_port),
    };
    let mut client = connect(
        &stack.tls,
        Duration::from_secs(10),
        &stack.db_endpoint(Db::Postgres, TlsMode::Verified),
        &user,
        &password,
        Credential::Current,
    )
    .await
    .unwrap();
    Postgres::set_own_password(&mut client, &who, &new_password)
        .await
        .unwrap();
    drop(guard);
    stack
        .assert_db_login(Db::Postgres, &user, &new_password)
        .await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("the capture works"), "{text}");
    for secret in [
        "SCRAM-SHA-256",
        "ALTER ROLE",
        new_password.expose_secret(),
        password.expose_secret(),
    ] {
        assert!(!text.contains(secret), "logged: {text}");
    }
}

/// Attack: a server or proxy that echoes the statement in its error ("... near '<statement>'")
/// carried the new password's hash into the Lambda error, the outcome event, the CLI and the
/// logs (the review's L2). Through a proxy that answers every password statement so, the
/// rotation fails with the server's message, the secret values replaced by `<redacted>`.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_error_echoing_the_password_statement_is_redacted() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("myecho");
    let password = stack.create_db_user(Db::MariaDb, &user, Role::App).await;
    let proxy = EchoProxy::start(&stack.mysql_host, stack.mysql_port).await;
    let mut value = stack.db_secret(Db::MariaDb, &user, &password);
    value["port"] = json!(proxy.port);
    value["ssl"] = json!(false);
    let arn = stack
        .create_rotating_secret(&Stack::unique("echo"), &value, Mode::SecretsManager)
        .await;

    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&arn)
        .await
        .unwrap();
    let failure = run
        .failure()
        .expect("the echoing proxy fails the rotation")
        .to_string();
    assert!(
        failure.contains("You have an error in your SQL syntax") && failure.contains("<redacted>"),
        "the server's message stays, the secret goes: {failure}"
    );
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    let hash = native_password_hash(&pending);
    let fragments = [
        &hash[1..9],
        &hash[hash.len() - 8..],
        &pending.expose_secret()[..8],
    ];
    for fragment in fragments {
        assert!(
            !failure.contains(fragment),
            "a secret fragment in the error: {failure}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::read_to_string(&stack.lambda_log).unwrap_or_default();
    assert!(
        !log.contains(&hash[1..]),
        "the functions' log holds the hash"
    );
    stack.assert_db_login(Db::MariaDb, &user, &password).await;
}
