//! Workflow mode recovers by itself from a failed run. The state machine's schedule starts every
//! run with a new token; a run that failed after createSecret leaves AWSPENDING on its version.
//! A later run resumes that version once it is older than
//! `ROTATION_WORKFLOW_RESUME_AFTER_SECONDS` (5 on the stack; the state machine's
//! `TimeoutSeconds` in the template), and refuses it while it is younger (its run may still be
//! going). The driver plays the state machine: a new token for each run, and the token
//! createSecret reports passed to the later steps.

use std::time::{Duration, Instant};

use rotation::secrets_manager::{version_with, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::{Mode, Outcome, Step};
use test_support::faults::{free_port, FaultProxy, PrivatePostgres};
use test_support::{Db, Stack, TestUser};

/// `ROTATION_WORKFLOW_RESUME_AFTER_SECONDS` of the stack's functions (scripts/stack.sh).
const RESUME_AFTER: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn after_a_failed_run_the_next_scheduled_run_resumes_the_pending_version_and_completes() {
    let stack = Stack::from_env().await;
    let proxy_port = free_port();
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret_value(
            Db::Postgres,
            "wfresume",
            Mode::Workflow,
            |user, password| PrivatePostgres::secret(proxy_port, user, password),
        )
        .await;
    let driver = stack.driver(Mode::Workflow);
    let scheduled_run = || async {
        let token = uuid::Uuid::new_v4().to_string();
        let runs = driver.run_steps(&Step::ALL, &arn, &token, None).await;
        (token, runs)
    };

    // A failed run: the database is unreachable (nothing listens on the secret's port), so
    // setSecret fails after createSecret put the pending version.
    let (failed_token, failed) = scheduled_run().await;
    let failed_at = Instant::now();
    assert_eq!(failed.len(), 2, "the run stops at setSecret: {failed:?}");
    assert!(failed[1].result.is_err(), "{failed:?}");
    let labels = stack.labels(&arn).await;
    assert_eq!(
        version_with(&labels, AWSPENDING),
        Some(failed_token.as_str())
    );
    let pending_value = stack.value(&arn, AWSPENDING).await;

    // The database is back.
    let _proxy = FaultProxy::start(proxy_port, stack.pg_port, Vec::new()).await;

    // A run right away: the failed run's version is too young to be known as abandoned, so it
    // is refused as in progress and nothing changes (before this change every later run ended
    // so, for ever).
    let (_, early) = scheduled_run().await;
    assert_eq!(early.len(), 1, "{early:?}");
    let refusal = early[0].result.as_ref().unwrap_err().to_string();
    assert!(
        refusal.contains("rotation in progress") && refusal.contains(&failed_token),
        "{refusal}"
    );
    assert_eq!(stack.labels(&arn).await, labels);

    // The next scheduled run, once the pending version is older than the resume bound.
    if let Some(left) = RESUME_AFTER.checked_sub(failed_at.elapsed()) {
        tokio::time::sleep(left + Duration::from_millis(500)).await;
    }
    let (new_token, resumed) = scheduled_run().await;
    assert_eq!(resumed.len(), 4, "{resumed:?}");
    assert!(resumed.iter().all(|r| r.result.is_ok()), "{resumed:?}");
    let create = resumed[0].result.as_ref().unwrap();
    assert_eq!(
        create.token, failed_token,
        "createSecret reports the resumed version"
    );
    assert_ne!(create.token, new_token);
    assert_eq!(create.outcome, Outcome::AlreadyDone);
    assert!(
        create
            .warnings
            .iter()
            .any(|w| w.contains("resuming the rotation")),
        "{:?}",
        create.warnings
    );

    // Consistent: the failed run's version is AWSCURRENT, one AWSPREVIOUS, no AWSPENDING, the
    // new token never became a version, and the password it holds is the one that logs in.
    let labels = stack.labels(&arn).await;
    assert_eq!(
        version_with(&labels, AWSCURRENT),
        Some(failed_token.as_str())
    );
    assert!(version_with(&labels, AWSPREVIOUS).is_some());
    assert_eq!(version_with(&labels, AWSPENDING), None);
    assert!(!labels.contains_key(&new_token));
    assert_eq!(stack.value(&arn, AWSCURRENT).await, pending_value);
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &current).await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
}
