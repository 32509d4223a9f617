//! Single-user rotation of PostgreSQL and MariaDB users through the real functions under
//! `cargo lambda watch`.

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use rotation::{Outcome, Step};
use rotator::versions::version_with;
use secrecy::{ExposeSecret, SecretString};
use test_support::{
    assert_finished_labels, assert_succeeded, Credentials, Db, Role, Stack, TestUser,
};

#[tokio::test(flavor = "multi_thread")]
async fn rotates_twice_through_the_rotate_function() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .db_user_with_secret(db, "single", Mode::SecretsManager)
            .await;
        let mut replaced = original;
        for round in 1..=2 {
            let before = stack.labels(&arn).await;
            let previous_current = version_with(&before, AWSCURRENT).unwrap().to_owned();
            let run = driver.rotate(&arn).await.unwrap();
            assert_succeeded(&run);
            assert_eq!(
                run.resumed,
                round == 1,
                "the first rotation resumes RotateSecret's pending version"
            );
            assert_finished_labels(&stack.labels(&arn).await, &run.token, &previous_current);

            let Credentials {
                user: current_user,
                password: current,
            } = stack.credentials(&arn, AWSCURRENT).await;
            assert_eq!(current_user, user);
            assert_ne!(current.expose_secret(), replaced.expose_secret());
            stack.assert_db_login(db, &user, &current).await;
            stack.assert_db_refused(db, &user, &replaced).await;
            replaced = current;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_through_the_four_step_functions() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .db_user_with_secret(db, "perstep", Mode::Workflow)
            .await;
        let run = stack.driver(Mode::Workflow).rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        let functions: Vec<_> = run.steps.iter().map(|s| s.function).collect();
        assert_eq!(
            functions,
            [
                "create-secret",
                "set-secret",
                "test-secret",
                "finish-secret"
            ]
        );
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        stack.assert_db_login(db, &user, &current).await;
        stack.assert_db_refused(db, &user, &original).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_step_repeated_changes_nothing() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .db_user_with_secret(db, "repeat", Mode::SecretsManager)
            .await;
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let mut pending_password = None;
        for step in Step::ALL {
            let stage = if step == Step::Finish {
                AWSCURRENT
            } else {
                AWSPENDING
            };
            let first = driver.step(step, &arn, &token, None).await.result.unwrap();
            let labels_after_first = stack.labels(&arn).await;
            let value_after_first = stack.value(&arn, stage).await;
            let second = driver.step(step, &arn, &token, None).await.result.unwrap();
            assert_eq!(first.outcome, Outcome::Done, "{db:?} {step} first run");
            let expected = match step {
                Step::Create | Step::Set => Outcome::AlreadyDone,
                Step::Test => Outcome::Done,
                Step::Finish => Outcome::AlreadyCurrent,
            };
            assert_eq!(second.outcome, expected, "{db:?} {step} repeated");
            assert_eq!(
                stack.labels(&arn).await,
                labels_after_first,
                "{step} repeated moved labels"
            );
            let value_after_second = stack.value(&arn, stage).await;
            assert_eq!(
                value_after_first["password"], value_after_second["password"],
                "{step} repeated changed the value"
            );
            pending_password
                .get_or_insert(value_after_first["password"].as_str().unwrap().to_owned());
        }
        for step in Step::ALL {
            let report = driver.step(step, &arn, &token, None).await.result.unwrap();
            assert_eq!(
                report.outcome,
                Outcome::AlreadyCurrent,
                "{step} after finish"
            );
        }
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        assert_eq!(current.expose_secret(), pending_password.unwrap());
        stack.assert_db_login(db, &user, &current).await;
        stack.assert_db_refused(db, &user, &original).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_step_is_recovered_by_running_the_rotation_again() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        for crash_after in 1..=Step::ALL.len() {
            let TestUser {
                secret_arn: arn,
                user,
                password: original,
            } = stack
                .db_user_with_secret(db, "crash", Mode::SecretsManager)
                .await;
            let before = stack.labels(&arn).await;
            let original_version = version_with(&before, AWSCURRENT).unwrap().to_owned();
            let (token, _) = driver.next_token(&arn).await.unwrap();
            let partial = driver
                .run_steps(&Step::ALL[..crash_after], &arn, &token, None)
                .await;
            assert!(
                partial.iter().all(|s| s.result.is_ok()),
                "steps before the crash"
            );

            // Whatever the crash left, one credential in Secrets Manager still logs in.
            if crash_after < Step::ALL.len() {
                let pending = stack.credentials(&arn, AWSPENDING).await.password;
                let working = if crash_after >= 2 {
                    pending
                } else {
                    original.clone()
                };
                stack.assert_db_login(db, &user, &working).await;
            }

            let rerun = driver.rotate(&arn).await.unwrap();
            assert_succeeded(&rerun);
            if crash_after < Step::ALL.len() {
                assert!(rerun.resumed, "the re-run resumes the interrupted rotation");
                assert_eq!(rerun.token, token);
                assert_finished_labels(&stack.labels(&arn).await, &token, &original_version);
            } else {
                assert!(!rerun.resumed, "a finished rotation is not resumed");
                assert_finished_labels(&stack.labels(&arn).await, &rerun.token, &token);
            }
            let current = stack.credentials(&arn, AWSCURRENT).await.password;
            stack.assert_db_login(db, &user, &current).await;
            stack.assert_db_refused(db, &user, &original).await;
        }
    }
}

/// Sets `user`'s password behind the rotation's back, as a restore or a manual change would.
async fn reset_password(stack: &Stack, db: Db, user: &str, password: &SecretString) {
    let sql = match db {
        Db::Postgres => format!(
            "ALTER ROLE {} PASSWORD {}",
            postgres_protocol::escape::escape_identifier(user),
            postgres_protocol::escape::escape_literal(&postgres_protocol::password::scram_sha_256(
                password.expose_secret().as_bytes()
            ))
        ),
        Db::MariaDb => format!(
            "ALTER USER {}@'%' IDENTIFIED BY PASSWORD '{}'",
            rotation::providers::mysql::quote(user, false),
            rotation::providers::mysql::native_password_hash(password)
        ),
    };
    stack.db_admin_sql(db, &sql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_to_the_previous_password_when_the_current_one_is_refused() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .db_user_with_secret(db, "fallback", Mode::SecretsManager)
            .await;
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
        reset_password(&stack, db, &user, &original).await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        stack.assert_db_login(db, &user, &current).await;
        stack.assert_db_refused(db, &user, &original).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_names_and_passwords_that_need_quoting_rotate() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        for prefix in ["Up Case", "q'uo\"te", "back\\slash;", "ünï"] {
            let user = Stack::unique(prefix);
            let original = stack.create_db_user(db, &user, Role::App).await;
            // A starting password with every character AWS's exclusion lists usually drop.
            let hostile = SecretString::from(format!("a'b\"c\\d:e/f@g;{}", uuid::Uuid::new_v4()));
            reset_password(&stack, db, &user, &hostile).await;
            stack.assert_db_refused(db, &user, &original).await;
            let arn = stack
                .create_rotating_secret(
                    &Stack::unique("quoting"),
                    &stack.db_secret(db, &user, &hostile),
                    Mode::SecretsManager,
                )
                .await;
            assert_succeeded(&driver.rotate(&arn).await.unwrap());
            let Credentials {
                user: current_user,
                password: current,
            } = stack.credentials(&arn, AWSCURRENT).await;
            assert_eq!(current_user, user);
            stack.assert_db_login(db, &user, &current).await;
            stack.assert_db_refused(db, &user, &hostile).await;
        }
    }
}

/// The lines of PostgreSQL's log that record a refused password for `user`.
fn refused_logins(stack: &Stack, user: &str) -> usize {
    let needle = format!("password authentication failed for user \"{user}\"");
    std::fs::read_to_string(&stack.pg_log)
        .unwrap()
        .lines()
        .filter(|line| line.contains(&needle))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_set_secret_tries_no_password_that_is_refused() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "onelogin", Mode::Workflow)
        .await;
    let run = stack.driver(Mode::Workflow).rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(
        refused_logins(&stack, &user),
        0,
        "setSecret logs in with the current password first; the pending one is tried only on a retry"
    );
    // The server does log a refused password: the count above can see one.
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    let mut logged = 0;
    for _ in 0..20 {
        logged = refused_logins(&stack, &user);
        if logged > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(logged, 1, "PostgreSQL logs each refused password");
}
