//! The rotation window (tag `rotation-window`): outside it a scheduled or retried rotation does
//! nothing and every step says so with success (nothing pages), in both modes; inside it the
//! secret rotates; the compromise marker overrides it.

use std::time::{Duration, SystemTime};

use rotation::compromise_marker as marker;
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::window;
use rotation::{Mode, Outcome, Step};
use test_support::{Credentials, Db, Stack, TestUser};

/// A window that is closed now and for the next two days: only the day three days ahead.
fn closed_now() -> String {
    let day = window::describe(SystemTime::now() + Duration::from_secs(3 * 86_400));
    format!("{} 00:00-24:00", &day[..3])
}

/// Runs the four steps the way the mode's invoker does; returns each step's outcome.
async fn four_steps(stack: &Stack, mode: Mode, arn: &str) -> Vec<Outcome> {
    let driver = stack.driver(mode);
    let (token, _) = driver.next_token(arn).await.expect("labels");
    driver
        .run_steps(&Step::ALL, arn, &token, None)
        .await
        .into_iter()
        .map(|run| {
            run.result
                .unwrap_or_else(|e| panic!("{mode}: {} failed: {e}", run.step))
                .outcome
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_the_window_nothing_rotates_and_every_step_succeeds_saying_so() {
    let stack = Stack::from_env().await;
    for mode in [Mode::SecretsManager, Mode::Workflow] {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(Db::Postgres, "winclosed", mode)
            .await;
        stack.tag_secret(&arn, window::TAG, &closed_now()).await;
        let before = stack.labels(&arn).await;
        let current = before
            .iter()
            .find(|(_, s)| s.iter().any(|l| l == AWSCURRENT))
            .map(|(id, _)| id.clone());

        let outcomes = four_steps(&stack, mode, &arn).await;
        assert_eq!(outcomes, vec![Outcome::OutsideWindow; 4], "{mode}");

        // AWSCURRENT did not move, and the declined rotation holds no AWSPENDING (in Secrets
        // Manager mode createSecret took it off the empty version RotateSecret made, so the
        // next RotateSecret is not refused as "previous rotation in progress").
        let after = stack.labels(&arn).await;
        let current_after = after
            .iter()
            .find(|(_, s)| s.iter().any(|l| l == AWSCURRENT))
            .map(|(id, _)| id.clone());
        assert_eq!(current_after, current, "{mode}: {after:?}");
        assert!(
            !after.values().flatten().any(|l| l == AWSPENDING),
            "{mode}: {after:?}"
        );
        assert_eq!(after.len(), 1, "{mode}: {after:?}");
        stack.assert_db_login(Db::Postgres, &user, &password).await;
        let Credentials {
            password: stored, ..
        } = stack.credentials(&arn, AWSCURRENT).await;
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&stored),
            secrecy::ExposeSecret::expose_secret(&password),
            "{mode}: the credential changed"
        );
        // The log says why.
        let log = std::fs::read_to_string(&stack.lambda_log).unwrap_or_default();
        assert!(
            log.lines()
                .any(|l| l.contains(&arn) && l.contains("outside_window")),
            "{mode}: no outside_window line for {arn} in the functions' log"
        );

        // The command line says so before starting anything.
        let out = crate::cli::rotator(&["--output", "json", "rotate", "--local", &arn]).await;
        let text = crate::cli::stdout(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("\"errorKind\": \"OutsideWindow\""), "{text}");
        assert!(text.contains("outside the rotation window"), "{text}");
        assert_eq!(
            stack.labels(&arn).await,
            after,
            "{mode}: the refused rotate moved labels"
        );

        // The same secret with a window that includes now rotates.
        stack
            .tag_secret(&arn, window::TAG, "daily 00:00-24:00")
            .await;
        if mode == Mode::SecretsManager {
            stack.enable_rotation(&arn).await;
        }
        let outcomes = four_steps(&stack, mode, &arn).await;
        assert!(
            outcomes.iter().all(|o| *o != Outcome::OutsideWindow),
            "{mode}: {outcomes:?}"
        );
        stack
            .assert_db_refused(Db::Postgres, &user, &password)
            .await;
        stack
            .assert_stage_logs_in(Db::Postgres, &arn, AWSCURRENT)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compromise_marker_overrides_the_window() {
    let stack = Stack::from_env().await;
    for mode in [Mode::SecretsManager, Mode::Workflow] {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(Db::Postgres, "winmark", mode)
            .await;
        stack.tag_secret(&arn, window::TAG, &closed_now()).await;
        stack
            .tag_secret(&arn, marker::TAG, "2026-12-07T23:30:00Z")
            .await;
        let outcomes = four_steps(&stack, mode, &arn).await;
        assert_eq!(outcomes[0], Outcome::Done, "{mode}: {outcomes:?}");
        stack
            .assert_db_refused(Db::Postgres, &user, &password)
            .await;
        stack
            .assert_stage_logs_in(Db::Postgres, &arn, AWSCURRENT)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_window_fails_create_secret_naming_the_tag_and_changes_nothing() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password,
    } = stack
        .db_user_with_secret(Db::Postgres, "winbad", Mode::Workflow)
        .await;
    stack.tag_secret(&arn, window::TAG, "weekdays 2-5").await;
    let before = stack.labels(&arn).await;
    let run = stack
        .driver(Mode::Workflow)
        .step(Step::Create, &arn, &uuid::Uuid::new_v4().to_string(), None)
        .await;
    let err = run.result.unwrap_err().to_string();
    assert!(err.contains("InvalidWindow"), "{err}");
    assert!(err.contains(window::TAG), "{err}");
    assert!(err.contains("\"weekdays\" is not a day"), "{err}");
    assert_eq!(stack.labels(&arn).await, before);
    stack.assert_db_login(Db::Postgres, &user, &password).await;
}
