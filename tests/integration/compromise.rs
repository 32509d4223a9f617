//! Compromise response: the `compromise` function, given a "Secret Compromised" event, rotates
//! every selected secret as often as its provider needs, so that no password valid before the
//! incident still logs in. On the local stack it plays Secrets Manager's and the state
//! machine's part and invokes the rotation functions through `cargo lambda watch`.

use std::time::{Duration, Instant};

use rotation::compromise::Incident;
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::{Mode, Step};
use rotator::invoke::InvokeError;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::{assert_succeeded, AlternatingUser, Credentials, Db, Stack, TestUser};

#[tokio::test(flavor = "multi_thread")]
async fn every_password_valid_before_the_incident_is_retired() {
    let stack = Stack::from_env().await;
    let incident = Stack::unique("inc");

    // Single-user, Secrets Manager mode, rotated once already: one rotation retires its only
    // password.
    let TestUser {
        secret_arn: single,
        user: single_user,
        ..
    } = stack
        .db_user_with_secret(Db::Postgres, "cmpsingle", Mode::SecretsManager)
        .await;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&single)
            .await
            .unwrap(),
    );
    let single_before = stack.credentials(&single, AWSCURRENT).await.password;
    stack
        .assert_db_login(Db::Postgres, &single_user, &single_before)
        .await;
    stack.tag_secret(&single, "incident", &incident).await;

    // Alternating users, workflow mode, rotated once already: both users' passwords are valid.
    let AlternatingUser { app, master } = stack
        .alternating_user_with_secret(Db::Postgres, "cmpalt", false, Mode::Workflow)
        .await;
    let TestUser {
        secret_arn: alternating,
        user,
        password: original,
    } = app;
    assert_succeeded(
        &stack
            .driver(Mode::Workflow)
            .rotate(&alternating)
            .await
            .unwrap(),
    );
    let Credentials {
        user: clone_user,
        password: clone_before,
    } = stack.credentials(&alternating, AWSCURRENT).await;
    assert_ne!(clone_user, user);
    stack.assert_db_login(Db::Postgres, &user, &original).await;
    stack
        .assert_db_login(Db::Postgres, &clone_user, &clone_before)
        .await;
    stack.tag_secret(&alternating, "incident", &incident).await;

    // An unrelated secret carrying another value of the tag is left alone.
    let bystander = stack
        .db_user_with_secret(Db::Postgres, "cmpother", Mode::SecretsManager)
        .await
        .secret_arn;
    stack
        .tag_secret(&bystander, "incident", "another-incident")
        .await;
    let bystander_labels = stack.labels(&bystander).await;

    let driver = stack.driver(Mode::SecretsManager);
    let event = json!({
        "source": "secret-rotation.incident",
        "detail-type": "Secret Compromised",
        "detail": {"tags": {"incident": incident}, "incident": incident},
    });
    let report = driver
        .invoker()
        .invoke("compromise", &event)
        .await
        .unwrap_or_else(|e| panic!("compromise response failed: {e}"));

    let retired = report["retired"].as_array().expect("retired secrets");
    assert_eq!(retired.len(), 2, "{report}");
    let plan_of = |arn: &str| -> &Value {
        retired
            .iter()
            .find(|r| r["plan"]["secretArn"] == arn)
            .unwrap_or_else(|| panic!("{arn} not retired: {report}"))
    };
    assert_eq!(plan_of(&single)["plan"]["rotations"], 1);
    assert_eq!(plan_of(&single)["plan"]["mode"], "secrets-manager");
    assert_eq!(plan_of(&single)["versions"].as_array().unwrap().len(), 1);
    assert_eq!(plan_of(&alternating)["plan"]["rotations"], 2);
    assert_eq!(
        plan_of(&alternating)["plan"]["strategy"],
        "alternating-users"
    );
    assert_eq!(
        plan_of(&alternating)["versions"].as_array().unwrap().len(),
        2
    );

    // Every password valid before the incident is refused; the current ones work.
    stack
        .assert_db_refused(Db::Postgres, &single_user, &single_before)
        .await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    stack
        .assert_db_refused(Db::Postgres, &clone_user, &clone_before)
        .await;
    stack
        .assert_stage_logs_in(Db::Postgres, &single, AWSCURRENT)
        .await;
    stack
        .assert_stage_logs_in(Db::Postgres, &alternating, AWSCURRENT)
        .await;
    stack
        .assert_stage_logs_in(Db::Postgres, &alternating, AWSPREVIOUS)
        .await;
    assert_eq!(
        stack.labels(&bystander).await,
        bystander_labels,
        "the bystander was rotated"
    );

    // The response logged no password.
    let log = std::fs::read_to_string(&stack.lambda_log).unwrap();
    assert!(log.contains("retired every credential valid before the incident"));
    for secret in [&single_before, &original, &clone_before, &master.password] {
        assert!(
            !log.contains(secret.expose_secret()),
            "a password is in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_request_is_refused_naming_the_field() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for (detail, needle) in [
        (json!({}), "`detail.secretIds` or `detail.tags`"),
        (json!({"secretIds": "not-a-list"}), "`detail.secretIds`"),
        (
            json!({"tags": {"incident": Stack::unique("none")}, "incident": "INC-1"}),
            "no secret carries",
        ),
        (json!({"secretIds": ["x"]}), "`detail.incident` is missing"),
        (
            json!({"secretIds": ["x"], "incident": "INC 1; DROP"}),
            "`detail.incident`",
        ),
    ] {
        match driver
            .invoker()
            .invoke("compromise", &json!({"detail": detail}))
            .await
        {
            Err(InvokeError::Function {
                error_type,
                message,
                ..
            }) => {
                assert_eq!(error_type, "InvalidRequest");
                assert!(
                    message.contains(needle),
                    "{message} should contain {needle}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// Every version id of a secret (unlabelled ones included), sorted.
async fn version_ids(stack: &Stack, arn: &str) -> Vec<String> {
    let out = stack
        .secrets
        .list_secret_version_ids()
        .secret_id(arn)
        .include_deprecated(true)
        .send()
        .await
        .expect("ListSecretVersionIds");
    let mut ids: Vec<String> = out
        .versions()
        .iter()
        .filter_map(|v| v.version_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The ARNs a ListSecrets by tag key returns through the functions' Secrets Manager endpoint
/// (the stack's recorder, which answers a listing as AWS's lag would).
async fn listed_through_the_functions_endpoint(key: &str) -> Vec<String> {
    let endpoint = std::env::var("ROTATION_RDS_ENDPOINT").expect("ROTATION_RDS_ENDPOINT");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client
        .list_secrets()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::TagKey)
                .values(key)
                .build(),
        )
        .send()
        .await
        .expect("ListSecrets");
    out.secret_list()
        .iter()
        .filter_map(|s| s.arn().map(str::to_owned))
        .collect()
}

fn lag() -> Duration {
    let seconds: u64 = std::env::var("ROTATION_LIST_SECRETS_LAG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        seconds > 0,
        "the stack must emulate ListSecrets' lag (ROTATION_LIST_SECRETS_LAG_SECONDS)"
    );
    Duration::from_secs(seconds)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_tagged_just_before_the_incident_is_retired_although_listing_lags() {
    let stack = Stack::from_env().await;
    let lag = lag();
    let incident = Stack::unique("inclag");
    let key = Stack::unique("exposed");
    let TestUser {
        secret_arn: arn,
        user,
        ..
    } = stack
        .db_user_with_secret(Db::Postgres, "cmplag", Mode::SecretsManager)
        .await;
    let before = stack.credentials(&arn, AWSCURRENT).await.password;

    // A listing by this tag key before the tag exists, then the tag: for the next seconds the
    // listings by that key still miss it (the stack's recorder keeps a listing for
    // ROTATION_LIST_SECRETS_LAG_SECONDS, as AWS's may lag for minutes).
    assert!(listed_through_the_functions_endpoint(&key).await.is_empty());
    stack.tag_secret(&arn, &key, &incident).await;
    assert!(
        listed_through_the_functions_endpoint(&key).await.is_empty(),
        "the listing does not lag: the test proves nothing"
    );

    let started = Instant::now();
    let report = stack
        .driver(Mode::SecretsManager)
        .invoker()
        .invoke(
            "compromise",
            &json!({"detail": {"tags": {key.as_str(): incident}, "incident": incident}}),
        )
        .await
        .unwrap_or_else(|e| panic!("compromise response failed: {e}"));
    let retired = report["retired"].as_array().expect("retired secrets");
    assert_eq!(retired.len(), 1, "{report}");
    assert_eq!(retired[0]["plan"]["secretArn"], arn.as_str(), "{report}");
    assert!(report["listings"].as_u64().unwrap() >= 2, "{report}");
    assert!(
        started.elapsed() >= lag,
        "the response did not wait out the lag"
    );
    let log = std::fs::read_to_string(&stack.lambda_log).unwrap();
    assert!(
        log.lines().any(|l| l.contains(&incident)
            && l.contains("a later listing found secrets the earlier ones missed")),
        "the first listing should have missed the secret"
    );
    stack.assert_db_refused(Db::Postgres, &user, &before).await;
    stack
        .assert_stage_logs_in(Db::Postgres, &arn, AWSCURRENT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_delivered_twice_changes_nothing_the_second_time() {
    let stack = Stack::from_env().await;
    let incident = Stack::unique("incdup");
    let AlternatingUser { app, .. } = stack
        .alternating_user_with_secret(Db::Postgres, "cmpdup", false, Mode::SecretsManager)
        .await;
    let arn = app.secret_arn;
    // Finish the rotation that enabling rotation left pending (it predates the incident).
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let event = json!({
        "source": "secret-rotation.incident",
        "detail-type": "Secret Compromised",
        "detail": {"secretIds": [arn], "incident": incident},
    });
    let invoker = stack.driver(Mode::SecretsManager);
    let first = invoker
        .invoker()
        .invoke("compromise", &event)
        .await
        .unwrap_or_else(|e| panic!("first delivery failed: {e}"));
    assert_eq!(first["retired"][0]["versions"].as_array().unwrap().len(), 2);
    let labels = stack.labels(&arn).await;
    let versions = version_ids(&stack, &arn).await;
    let current = stack.credentials(&arn, AWSCURRENT).await;
    let previous = stack.credentials(&arn, AWSPREVIOUS).await;

    // Lambda's at-least-once delivery: the same event again.
    let second = invoker
        .invoker()
        .invoke("compromise", &event)
        .await
        .unwrap_or_else(|e| panic!("second delivery failed: {e}"));
    assert_eq!(second["retired"][0]["alreadyRetired"], true, "{second}");
    assert_eq!(second["retired"][0]["versions"], json!([]), "{second}");
    assert_eq!(stack.labels(&arn).await, labels, "labels moved");
    assert_eq!(
        version_ids(&stack, &arn).await,
        versions,
        "a version was added"
    );
    assert_eq!(stack.credentials(&arn, AWSCURRENT).await.user, current.user);
    stack
        .assert_db_login(Db::Postgres, &current.user, &current.password)
        .await;
    stack
        .assert_db_login(Db::Postgres, &previous.user, &previous.password)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_timeout_mid_run_resumes_and_rotates_no_more() {
    let stack = Stack::from_env().await;
    let incident = Stack::unique("incretry");
    let AlternatingUser { app, .. } = stack
        .alternating_user_with_secret(Db::Postgres, "cmpretry", false, Mode::SecretsManager)
        .await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = app;
    let tokens = {
        let incident = Incident::parse(&incident).unwrap();
        [incident.token(&arn, 1), incident.token(&arn, 2)]
    };
    // Finish the rotation that enabling rotation left pending (it predates the incident).
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let original_clone = stack.credentials(&arn, AWSCURRENT).await;
    // The first invocation got through rotation 1 and was cut off by Lambda's timeout in the
    // middle of rotation 2 (after setSecret): the incident's own version ids, as the function
    // derives them.
    let driver = stack.driver(Mode::SecretsManager);
    for run in driver.run_steps(&Step::ALL, &arn, &tokens[0], None).await {
        run.result.unwrap_or_else(|e| panic!("{:?}: {e}", run.step));
    }
    for run in driver
        .run_steps(&[Step::Create, Step::Set], &arn, &tokens[1], None)
        .await
    {
        run.result.unwrap_or_else(|e| panic!("{:?}: {e}", run.step));
    }
    assert_eq!(
        stack.labels(&arn).await.get(&tokens[1]).cloned(),
        Some(vec![AWSPENDING.to_owned()])
    );
    let versions_before = version_ids(&stack, &arn).await;

    // Lambda's retry delivers the same event: it resumes rotation 2 and starts nothing new.
    let report = driver
        .invoker()
        .invoke(
            "compromise",
            &json!({"detail": {"secretIds": [arn], "incident": incident}}),
        )
        .await
        .unwrap_or_else(|e| panic!("the retry failed: {e}"));
    assert_eq!(
        report["retired"][0]["versions"],
        json!([tokens[1]]),
        "{report}"
    );
    assert_eq!(version_ids(&stack, &arn).await, versions_before);
    let labels = stack.labels(&arn).await;
    assert_eq!(
        labels.get(&tokens[1]).cloned(),
        Some(vec![AWSCURRENT.to_owned()])
    );
    assert_eq!(
        labels.get(&tokens[0]).cloned(),
        Some(vec![AWSPREVIOUS.to_owned()])
    );
    // Every password valid before the incident is refused.
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    stack
        .assert_db_refused(Db::Postgres, &original_clone.user, &original_clone.password)
        .await;
    stack
        .assert_stage_logs_in(Db::Postgres, &arn, AWSCURRENT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rds_managed_master_secret_is_planned_as_one_rotation_by_rds() {
    let stack = Stack::from_env().await;
    // Only username and password, tagged by RDS: planned without reading its value (no
    // `engine` to read), as one rotation that RDS performs when RotateSecret asks. The local
    // stack has no RDS to do it, so the function names that instead of rotating.
    let master = stack.master_secret(Db::Postgres, true).await;
    let incident = Stack::unique("incrds");
    let err = stack
        .driver(Mode::SecretsManager)
        .invoker()
        .invoke(
            "compromise",
            &json!({"detail": {"secretIds": [master.arn], "incident": incident}}),
        )
        .await
        .expect_err("the local stack cannot run RDS's managed rotation");
    let text = err.to_string();
    assert!(text.contains("managed by RDS"), "{text}");
    assert!(
        !text.contains("`engine`"),
        "planning read the value: {text}"
    );
    stack
        .assert_db_login(Db::Postgres, &master.user, &master.password)
        .await;
}
