//! TLS to the database is on and verified by default; only `"ssl": false` turns it off.

use std::time::Duration;

use integration_tests::{assert_succeeded, Stack};
use rotation::error::{Credential, DbFailure};
use rotation::providers::database_secret::TlsMode;
use rotation::providers::postgres::connect;
use rotation::RotationError;
use rotator::driver::Functions;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_server_certificate_is_refused() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("untrusted");
    let password = stack.create_user(&user, "").await;
    let without_test_ca = rotation::tls::client_config(None).unwrap();
    let err = connect(
        &without_test_ca,
        Duration::from_secs(5),
        &stack.endpoint(TlsMode::Verified),
        &user,
        &password,
        Credential::Current,
    )
    .await
    .expect_err("a certificate from an unknown CA must be refused");
    match &err {
        RotationError::Database {
            failure,
            detail,
            credential,
            ..
        } => {
            assert_eq!(*failure, DbFailure::Tls, "{err}");
            assert_eq!(*credential, Credential::Current);
            assert!(detail.to_lowercase().contains("certificate"), "{detail}");
        }
        other => panic!("unexpected error {other}"),
    }
    stack.assert_login(&user, &password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_use_tls_by_default() {
    let stack = Stack::from_env().await;
    // The server refuses members of tls_required without TLS: a rotation that works proves TLS.
    let user = Stack::unique("tlsonly");
    let original = stack.create_user(&user, "IN ROLE tls_required").await;
    let arn = stack
        .create_secret(
            &Stack::unique("tlsonly"),
            &stack.pg_secret(&user, &original),
        )
        .await;
    stack.enable_rotation(&arn).await;
    let run = stack.driver(Functions::Rotate).rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert!(run
        .steps
        .iter()
        .all(|s| s.result.as_ref().unwrap().warnings.is_empty()));
    let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
    stack.assert_login(&user, &current).await;
    stack.assert_refused(&user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_false_turns_tls_off_explicitly_with_a_warning() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Functions::Rotate);

    // Without TLS, a user the server only admits over TLS cannot rotate: nothing falls back.
    let strict = Stack::unique("strict");
    let strict_password = stack.create_user(&strict, "IN ROLE tls_required").await;
    let mut value = stack.pg_secret(&strict, &strict_password);
    value["ssl"] = json!(false);
    let arn = stack.create_secret(&Stack::unique("strict"), &value).await;
    stack.enable_rotation(&arn).await;
    let run = driver.rotate(&arn).await.unwrap();
    let failure = run
        .failure()
        .expect("the server refuses plaintext logins")
        .to_string();
    assert!(failure.contains("setSecret"), "{failure}");
    assert!(failure.contains("no encryption"), "{failure}");
    stack.assert_login(&strict, &strict_password).await;

    // A user allowed without TLS rotates, and every step warns that TLS is off.
    let plain = Stack::unique("plain");
    let plain_password = stack.create_user(&plain, "").await;
    let mut value = stack.pg_secret(&plain, &plain_password);
    value["ssl"] = json!(false);
    let arn = stack.create_secret(&Stack::unique("plain"), &value).await;
    stack.enable_rotation(&arn).await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    for step in &run.steps[..3] {
        let report = step.result.as_ref().unwrap();
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("TLS") && w.contains("turned off")),
            "{:?}: {:?}",
            step.step,
            report.warnings
        );
    }
    let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
    stack.assert_login(&plain, &current).await;
    stack.assert_refused(&plain, &plain_password).await;
}
