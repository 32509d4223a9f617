//! Alternating-users PostgreSQL rotation (`masterarn`): dual-phase, through the real functions.

use integration_tests::{assert_finished_labels, assert_succeeded, Stack};
use postgres_protocol::escape::escape_identifier;
use rotator::driver::Functions;
use rotator::versions::version_with;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// A CREATEROLE master user (like RDS's master), its secret, and an application user's secret
/// that names it. `rds_managed` leaves host and port out of the master secret, as RDS does.
async fn alternating_secret(
    stack: &Stack,
    rds_managed: bool,
    functions: Functions,
) -> (String, String, SecretString) {
    let master = Stack::unique("master");
    let master_password = stack.create_user(&master, "CREATEROLE").await;
    let mut master_value = json!({"username": master, "password": master_password.expose_secret()});
    if !rds_managed {
        master_value["host"] = json!(stack.pg_host);
        master_value["port"] = json!(stack.pg_port);
        master_value["engine"] = json!("postgres");
    }
    let master_arn = stack
        .create_secret(&Stack::unique("master"), &master_value)
        .await;

    let user = Stack::unique("app");
    let password = stack.create_user(&user, "").await;
    let mut value = stack.pg_secret(&user, &password);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("alternating"), &value, functions)
        .await;
    (arn, user, password)
}

#[tokio::test(flavor = "multi_thread")]
async fn alternates_users_and_revokes_the_oldest_credential() {
    let stack = Stack::from_env().await;
    for rds_managed in [true, false] {
        let (arn, user, original) =
            alternating_secret(&stack, rds_managed, Functions::Rotate).await;
        let clone = format!("{user}_clone");
        let driver = stack.driver(Functions::Rotate);

        // Each credential: (user, password). Active after its rotation, inactive (still valid)
        // after the next one, revoked after the one after that.
        let mut history = vec![(user.clone(), original)];
        for round in 1..=3 {
            let before = stack.labels(&arn).await;
            let previous_version = version_with(&before, "AWSCURRENT").unwrap().to_owned();
            let run = driver.rotate(&arn).await.unwrap();
            assert_succeeded(&run);
            assert_finished_labels(&stack.labels(&arn).await, &run.token, &previous_version);
            let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
            let expected_user = if round % 2 == 1 { &clone } else { &user };
            assert_eq!(&current_user, expected_user, "round {round}");
            history.push((current_user, current));

            let n = history.len();
            stack
                .assert_login(&history[n - 1].0, &history[n - 1].1)
                .await;
            stack
                .assert_login(&history[n - 2].0, &history[n - 2].1)
                .await;
            let (previous_user, previous) = stack.credentials(&arn, "AWSPREVIOUS").await;
            assert_eq!(previous_user, history[n - 2].0);
            assert_eq!(previous.expose_secret(), history[n - 2].1.expose_secret());
            if n >= 3 {
                stack
                    .assert_refused(&history[n - 3].0, &history[n - 3].1)
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_created_by_either_user_are_usable_by_the_other() {
    let stack = Stack::from_env().await;
    let (arn, user, original) = alternating_secret(&stack, true, Functions::Rotate).await;
    let schema = Stack::unique("objects");
    let s = escape_identifier(&schema);
    stack
        .admin_sql(&format!(
            "CREATE SCHEMA {s} AUTHORIZATION {}",
            escape_identifier(&user)
        ))
        .await;
    let base = stack.login(&user, &original).await.unwrap();
    base.batch_execute(&format!(
        "CREATE TABLE {s}.made_by_base (x int); INSERT INTO {s}.made_by_base VALUES (1)"
    ))
    .await
    .unwrap();

    let driver = stack.driver(Functions::Rotate);
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let (clone_user, clone_password) = stack.credentials(&arn, "AWSCURRENT").await;
    assert_eq!(clone_user, format!("{user}_clone"));
    let clone = stack.login(&clone_user, &clone_password).await.unwrap();
    clone
        .batch_execute(&format!(
            "CREATE TABLE {s}.made_by_clone (x int); INSERT INTO {s}.made_by_clone VALUES (2);
             INSERT INTO {s}.made_by_base VALUES (3); ALTER TABLE {s}.made_by_base ADD COLUMN y int"
        ))
        .await
        .expect("the clone uses and alters what the original user created");

    let base = stack.login(&user, &original).await.unwrap();
    base.batch_execute(&format!(
        "INSERT INTO {s}.made_by_clone VALUES (4); ALTER TABLE {s}.made_by_clone ADD COLUMN y int; DROP TABLE {s}.made_by_clone"
    ))
    .await
    .expect("the original user uses, alters and drops what the clone created");

    let owners = stack
        .admin()
        .await
        .query(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .unwrap();
    for row in owners {
        assert_eq!(
            row.get::<_, String>(0),
            user,
            "every object is owned by the original user"
        );
    }

    // The next rotation switches back; the clone's objects stay usable.
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let (base_user, base_password) = stack.credentials(&arn, "AWSCURRENT").await;
    assert_eq!(base_user, user);
    let base = stack.login(&base_user, &base_password).await.unwrap();
    let count: i64 = base
        .query_one(&format!("SELECT count(*) FROM {s}.made_by_base"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_step_keeps_the_current_user_working() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Functions::PerStep);
    for crash_after in 1..rotation::Step::ALL.len() {
        let (arn, user, original) = alternating_secret(&stack, true, Functions::PerStep).await;
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let partial = driver
            .run_steps(&rotation::Step::ALL[..crash_after], &arn, &token, None)
            .await;
        assert!(partial.iter().all(|s| s.result.is_ok()));
        stack.assert_login(&user, &original).await;
        let rerun = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&rerun);
        assert_eq!(rerun.token, token);
        let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
        stack.assert_login(&current_user, &current).await;
        stack.assert_login(&user, &original).await;
    }
}
