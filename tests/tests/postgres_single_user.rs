//! Single-user PostgreSQL rotation through the real functions under `cargo lambda watch`.

use integration_tests::{assert_finished_labels, assert_succeeded, Stack};
use rotation::{Outcome, Step};
use rotator::driver::Functions;
use rotator::versions::version_with;
use secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread")]
async fn rotates_twice_through_the_rotate_function() {
    let stack = Stack::from_env().await;
    let (arn, user, original) = stack.pg_user_with_secret("single").await;
    let driver = stack.driver(Functions::Rotate);

    let mut replaced = original;
    for round in 1..=2 {
        let before = stack.labels(&arn).await;
        let previous_current = version_with(&before, "AWSCURRENT").unwrap().to_owned();
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        assert_eq!(
            run.resumed,
            round == 1,
            "the first rotation resumes RotateSecret's pending version"
        );
        assert_finished_labels(&stack.labels(&arn).await, &run.token, &previous_current);

        let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
        assert_eq!(current_user, user);
        assert_ne!(current.expose_secret(), replaced.expose_secret());
        stack.assert_login(&user, &current).await;
        stack.assert_refused(&user, &replaced).await;
        replaced = current;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_through_the_four_step_functions() {
    let stack = Stack::from_env().await;
    let (arn, user, original) = stack
        .pg_user_with_secret_for("perstep", Functions::PerStep)
        .await;
    let run = stack.driver(Functions::PerStep).rotate(&arn).await.unwrap();
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
    let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
    stack.assert_login(&user, &current).await;
    stack.assert_refused(&user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_step_repeated_changes_nothing() {
    let stack = Stack::from_env().await;
    let (arn, user, original) = stack.pg_user_with_secret("repeat").await;
    let driver = stack.driver(Functions::Rotate);
    let (token, _) = driver.next_token(&arn).await.unwrap();

    let mut pending_password = None;
    for step in Step::ALL {
        let first = driver.step(step, &arn, &token, None).await.result.unwrap();
        let labels_after_first = stack.labels(&arn).await;
        let pending_after_first = stack
            .value(
                &arn,
                if step == Step::Finish {
                    "AWSCURRENT"
                } else {
                    "AWSPENDING"
                },
            )
            .await;
        let second = driver.step(step, &arn, &token, None).await.result.unwrap();
        assert_eq!(first.outcome, Outcome::Done, "{step} first run");
        let expected = match step {
            Step::Create | Step::Set => Outcome::AlreadyDone,
            Step::Test => Outcome::Done,
            Step::Finish => Outcome::AlreadyCurrent,
        };
        assert_eq!(second.outcome, expected, "{step} repeated");
        assert_eq!(
            stack.labels(&arn).await,
            labels_after_first,
            "{step} repeated moved labels"
        );
        let pending_after_second = stack
            .value(
                &arn,
                if step == Step::Finish {
                    "AWSCURRENT"
                } else {
                    "AWSPENDING"
                },
            )
            .await;
        assert_eq!(
            pending_after_first["password"], pending_after_second["password"],
            "{step} repeated changed the value"
        );
        pending_password
            .get_or_insert(pending_after_first["password"].as_str().unwrap().to_owned());
    }
    // Every step of the finished rotation now answers "already current".
    for step in Step::ALL {
        let report = driver.step(step, &arn, &token, None).await.result.unwrap();
        assert_eq!(
            report.outcome,
            Outcome::AlreadyCurrent,
            "{step} after finish"
        );
    }
    let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
    assert_eq!(current.expose_secret(), pending_password.unwrap());
    stack.assert_login(&user, &current).await;
    stack.assert_refused(&user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_step_is_recovered_by_running_the_rotation_again() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Functions::Rotate);
    for crash_after in 1..=Step::ALL.len() {
        let (arn, user, original) = stack.pg_user_with_secret("crash").await;
        let before = stack.labels(&arn).await;
        let original_version = version_with(&before, "AWSCURRENT").unwrap().to_owned();
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
            let (_, pending) = stack.credentials(&arn, "AWSPENDING").await;
            let working = if crash_after >= 2 {
                pending
            } else {
                original.clone()
            };
            stack.assert_login(&user, &working).await;
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
        let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
        stack.assert_login(&user, &current).await;
        stack.assert_refused(&user, &original).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn falls_back_to_the_previous_password_when_the_current_one_is_refused() {
    let stack = Stack::from_env().await;
    let (arn, user, original) = stack.pg_user_with_secret("fallback").await;
    let driver = stack.driver(Functions::Rotate);
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    // The database went back to the previous password (a restore, a manual change).
    let verifier = postgres_protocol::password::scram_sha_256(original.expose_secret().as_bytes());
    stack
        .admin_sql(&format!(
            "ALTER ROLE {} PASSWORD {}",
            postgres_protocol::escape::escape_identifier(&user),
            postgres_protocol::escape::escape_literal(&verifier)
        ))
        .await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    let (_, current) = stack.credentials(&arn, "AWSCURRENT").await;
    stack.assert_login(&user, &current).await;
    stack.assert_refused(&user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_names_that_need_quoting_rotate() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Functions::Rotate);
    for prefix in ["Upper Case", "quo\"te", "semi;colon DROP"] {
        let user = Stack::unique(prefix);
        let original = stack.create_user(&user, "").await;
        let arn = stack
            .create_secret(
                &Stack::unique("quoting"),
                &stack.pg_secret(&user, &original),
            )
            .await;
        stack.enable_rotation(&arn).await;
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
        let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
        assert_eq!(current_user, user);
        stack.assert_login(&user, &current).await;
        stack.assert_refused(&user, &original).await;
    }
}
