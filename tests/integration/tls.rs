//! TLS to the database is on and verified by default; only `"ssl": false` turns it off.

use std::time::Duration;

use rotation::error::{Credential, DbFailure};
use rotation::providers::database::Who;
use rotation::providers::database_secret::TlsMode;
use rotation::providers::{mysql, postgres};
use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use rotation::RotationError;
use serde_json::json;
use test_support::{assert_succeeded, Db, Role, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_server_certificate_is_refused() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        let user = Stack::unique(&format!("{}untrusted", db.prefix()));
        let password = stack.create_db_user(db, &user, Role::App).await;
        let endpoint = stack.db_endpoint(db, TlsMode::Verified);
        // Without the stack's test CA: system roots, Mozilla roots and the RDS bundle only.
        let err = match db {
            Db::Postgres => {
                let roots = rotation::tls::client_config(None).unwrap();
                postgres::connect(
                    &roots,
                    Duration::from_secs(5),
                    &endpoint,
                    &user,
                    &password,
                    Credential::Current,
                )
                .await
                .map(|_| ())
            }
            Db::MariaDb => {
                let who = Who {
                    credential: Credential::Current,
                    user: user.clone(),
                    endpoint: endpoint.display(),
                };
                mysql::connect(None, Duration::from_secs(5), &endpoint, &who, &password)
                    .await
                    .map(|_| ())
            }
        }
        .expect_err("a certificate from an unknown CA must be refused");
        match &err {
            RotationError::Database {
                failure,
                detail,
                credential,
                ..
            } => {
                assert_eq!(*failure, DbFailure::Tls, "{db:?}: {err}");
                assert_eq!(*credential, Credential::Current);
                let detail = detail.to_lowercase();
                assert!(
                    detail.contains("certificate") || detail.contains("unknownissuer"),
                    "{db:?}: {detail}"
                );
            }
            other => panic!("{db:?}: unexpected error {other}"),
        }
        stack.assert_db_login(db, &user, &password).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_use_tls_by_default() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        // The server refuses this user without TLS: a rotation that works proves TLS.
        let user = Stack::unique(&format!("{}tlsonly", db.prefix()));
        let original = stack.create_db_user(db, &user, Role::TlsOnly).await;
        let arn = stack
            .create_rotating_secret(
                &Stack::unique("tlsonly"),
                &stack.db_secret(db, &user, &original),
                Mode::SecretsManager,
            )
            .await;
        let run = stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap();
        assert_succeeded(&run);
        assert!(run
            .steps
            .iter()
            .all(|s| s.result.as_ref().unwrap().warnings.is_empty()));
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        stack.assert_db_login(db, &user, &current).await;
        stack.assert_db_refused(db, &user, &original).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_false_turns_tls_off_explicitly_with_a_warning() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        // Without TLS, a user the server admits only over TLS cannot rotate: nothing falls back.
        let strict = Stack::unique(&format!("{}strict", db.prefix()));
        let strict_password = stack.create_db_user(db, &strict, Role::TlsOnly).await;
        let mut value = stack.db_secret(db, &strict, &strict_password);
        value["ssl"] = json!(false);
        let arn = stack
            .create_rotating_secret(&Stack::unique("strict"), &value, Mode::SecretsManager)
            .await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run
            .failure()
            .expect("the server refuses plaintext logins")
            .to_string();
        assert!(failure.contains("setSecret"), "{db:?}: {failure}");
        stack.assert_db_login(db, &strict, &strict_password).await;

        // A user allowed without TLS rotates, and every step warns that TLS is off.
        let plain = Stack::unique(&format!("{}plain", db.prefix()));
        let plain_password = stack.create_db_user(db, &plain, Role::App).await;
        let mut value = stack.db_secret(db, &plain, &plain_password);
        value["ssl"] = json!(false);
        let arn = stack
            .create_rotating_secret(&Stack::unique("plain"), &value, Mode::SecretsManager)
            .await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        for step in &run.steps[..3] {
            let report = step.result.as_ref().unwrap();
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.contains("TLS") && w.contains("turned off")),
                "{db:?} {:?}: {:?}",
                step.step,
                report.warnings
            );
        }
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        stack.assert_db_login(db, &plain, &current).await;
        stack.assert_db_refused(db, &plain, &plain_password).await;
    }
}
