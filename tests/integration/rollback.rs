//! `rotator rollback`, run as the built binary against the local stack: AWSCURRENT goes back to
//! AWSPREVIOUS only where that credential is proved to work (alternating PostgreSQL and MariaDB
//! users, IAM access keys), in both directions, with an outcome event; refused, changing
//! nothing, where it does not (a single PostgreSQL user, a `mysql` secret on a server without
//! dual passwords, a keyring whose previous version lacks the newest key).

use rotation::secrets_manager::{AWSCURRENT, AWSPREVIOUS};
use rotation::Mode;
use rotator::versions::version_with;
use serde_json::{json, Value};
use test_support::{assert_succeeded, Credentials, Db, Stack, TestUser};

use crate::cli::{rotator, rotator_json, stderr, stdout};
use crate::outcomes::{receive, subscribe};

/// The versions labelled AWSCURRENT and AWSPREVIOUS.
async fn current_and_previous(stack: &Stack, arn: &str) -> (String, String) {
    let labels = stack.labels(arn).await;
    (
        version_with(&labels, AWSCURRENT)
            .expect("AWSCURRENT")
            .to_owned(),
        version_with(&labels, AWSPREVIOUS)
            .expect("AWSPREVIOUS")
            .to_owned(),
    )
}

/// Rolls `arn` back and checks the labels swapped and the report says so.
async fn roll_back(stack: &Stack, arn: &str) -> Value {
    let (current, previous) = current_and_previous(stack, arn).await;
    let (out, report) = rotator_json(&["rollback", arn]).await;
    assert!(out.status.success(), "{report}\n{}", stderr(&out));
    assert_eq!(report["fromVersion"], current.as_str(), "{report}");
    assert_eq!(report["toVersion"], previous.as_str(), "{report}");
    assert_eq!(report["event"], "published", "{report}");
    assert_eq!(
        current_and_previous(stack, arn).await,
        (previous, current),
        "the labels did not swap"
    );
    report
}

/// Both labelled database credentials log in.
async fn both_log_in(stack: &Stack, db: Db, arn: &str) {
    for stage in [AWSCURRENT, AWSPREVIOUS] {
        stack.assert_stage_logs_in(db, arn, stage).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alternating_users_roll_back_and_forward_again_and_both_log_in() {
    let stack = Stack::from_env().await;
    for db in [Db::Postgres, Db::MariaDb] {
        let TestUser {
            secret_arn: arn,
            user,
            ..
        } = stack
            .alternating_user_with_secret(db, "rbalt", false, Mode::Workflow)
            .await
            .app;
        assert_succeeded(&stack.driver(Mode::Workflow).rotate(&arn).await.unwrap());
        let (sqs, queue) = subscribe(&[&arn]).await;

        let report = roll_back(&stack, &arn).await;
        assert_eq!(report["credential"], format!("user {user}"), "{report}");
        assert_eq!(report["strategy"], "alternating-users");
        let Credentials { user: now, .. } = stack.credentials(&arn, AWSCURRENT).await;
        assert_eq!(now, user, "{db:?}: AWSCURRENT is the original user again");
        both_log_in(&stack, db, &arn).await;

        // Rolling back again returns to the newer version.
        roll_back(&stack, &arn).await;
        both_log_in(&stack, db, &arn).await;

        let events = receive(&sqs, &queue, 2).await;
        for (body, event) in &events {
            assert_eq!(
                event["detail-type"],
                rotation::telemetry::DETAIL_TYPE_ROLLED_BACK,
                "{body}"
            );
            assert_eq!(event["detail"]["status"], "rolled_back", "{body}");
            for password in stack.all_passwords(&arn).await {
                assert!(
                    !body.contains(secrecy::ExposeSecret::expose_secret(&password)),
                    "a password is in the event"
                );
            }
        }

        // A rotation after the rollbacks works as usual.
        assert_succeeded(&stack.driver(Mode::Workflow).rotate(&arn).await.unwrap());
        both_log_in(&stack, db, &arn).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_access_keys_roll_back_and_forward_again_and_both_authenticate() {
    let stack = Stack::from_env().await;
    let created = stack
        .iam_user_with_secret("rbiam", Mode::SecretsManager)
        .await;
    let arn = created.secret_arn.clone();
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let newer = stack.access_key(&arn, AWSCURRENT).await;

    // A dry run proves and says what it would do, and moves nothing.
    let before = stack.labels(&arn).await;
    let (out, report) = rotator_json(&["rollback", "--dry-run", &arn]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["dryRun"], true, "{report}");
    assert_eq!(report["event"], "not published (dry run)", "{report}");
    assert_eq!(stack.labels(&arn).await, before, "a dry run moved labels");

    let report = roll_back(&stack, &arn).await;
    assert_eq!(
        report["credential"],
        format!("access key {}", created.key.id),
        "{report}"
    );
    assert_eq!(stack.access_key(&arn, AWSCURRENT).await.id, created.key.id);
    stack.assert_key_works(&created.user, &created.key).await;
    stack.assert_key_works(&created.user, &newer).await;

    // Forward again, read as a person reads it.
    let (current, previous) = current_and_previous(&stack, &arn).await;
    let out = rotator(&["rollback", &arn]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("rolled back (iam-access-key / dual-phase)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "AWSCURRENT:  {previous} (was AWSPREVIOUS; access key {})",
            newer.id
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("AWSPREVIOUS: {current} (was AWSCURRENT)")),
        "{text}"
    );
    assert!(text.contains("event: published"), "{text}");
    assert_eq!(stack.access_key(&arn, AWSCURRENT).await.id, newer.id);
    stack.assert_key_works(&created.user, &created.key).await;
    stack.assert_key_works(&created.user, &newer).await;
}

/// Asserts that `rotator rollback` refuses `arn` with a message containing `needle`, and that
/// the labels did not move.
async fn assert_refused(stack: &Stack, arn: &str, needle: &str) -> Value {
    let before = stack.labels(arn).await;
    let (out, report) = rotator_json(&["rollback", arn]).await;
    assert!(!out.status.success(), "{report}");
    assert_eq!(report["errorType"], "RollbackRefused", "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{needle:?} not in: {error}");
    assert_eq!(
        stack.labels(arn).await,
        before,
        "a refused rollback moved labels"
    );
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_postgres_user_is_refused_and_told_to_rotate_again() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password,
    } = stack
        .db_user_with_secret(Db::Postgres, "rbsingle", Mode::Workflow)
        .await;
    assert_succeeded(&stack.driver(Mode::Workflow).rotate(&arn).await.unwrap());
    assert_refused(&stack, &arn, "single-phase").await;
    assert_refused(&stack, &arn, "rotate again").await;
    stack
        .assert_db_refused(Db::Postgres, &user, &password)
        .await;
    stack
        .assert_stage_logs_in(Db::Postgres, &arn, AWSCURRENT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mysql_secret_is_rolled_back_only_when_its_retained_password_logs_in() {
    // Engine `mysql` plans a retained password (MySQL 8.0.14+ keeps the old one), but this
    // stack's server is MariaDB, which has no dual passwords: the rotation replaced the
    // password, and the proof (a login with AWSPREVIOUS) refuses the rollback. No MySQL 8
    // server is available here to run the other branch against a real retained password.
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password,
    } = stack
        .db_user_with_secret_value(Db::MariaDb, "rbmysql", Mode::Workflow, |user, password| {
            let mut value = stack.db_secret(Db::MariaDb, user, password);
            value["engine"] = json!("mysql");
            value
        })
        .await;
    assert_succeeded(&stack.driver(Mode::Workflow).rotate(&arn).await.unwrap());
    let report = assert_refused(&stack, &arn, "does not work now").await;
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains(&format!("user {user}")),
        "{report}"
    );
    stack.assert_db_refused(Db::MariaDb, &user, &password).await;
    stack
        .assert_stage_logs_in(Db::MariaDb, &arn, AWSCURRENT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyring_is_not_rolled_back_to_a_version_missing_the_newest_key() {
    let stack = Stack::from_env().await;
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("rbkeyring"),
            &json!({"provider": "keyring", "keys": [], "retentionRotations": 4}),
            Mode::Workflow,
        )
        .await;
    let driver = stack.driver(Mode::Workflow);
    for _ in 0..2 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let client = rotation_keyring::KeyringClient::new(stack.secrets.clone(), arn.clone())
        .with_max_age(std::time::Duration::ZERO);
    let sealed = client
        .encrypt(b"made with the newest key", b"")
        .await
        .unwrap();
    let newest = stack.value(&arn, AWSCURRENT).await["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_refused(&stack, &arn, &newest).await;
    assert_eq!(
        client.decrypt(&sealed, b"").await.unwrap(),
        b"made with the newest key"
    );
    // What a label rollback would have done: the previous keyring cannot decrypt it.
    let previous =
        rotation_keyring::Keyring::parse(&stack.value(&arn, AWSPREVIOUS).await.to_string())
            .unwrap();
    assert!(previous.decrypt(&sealed, b"").is_err());
}
