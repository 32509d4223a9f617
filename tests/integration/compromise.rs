//! Compromise response: the `compromise` function, given a "Secret Compromised" event, rotates
//! every selected secret as often as its provider needs, so that no password valid before the
//! incident still logs in. On the local stack it plays Secrets Manager's and the state
//! machine's part and invokes the rotation functions through `cargo lambda watch`.

use rotation::secrets_manager::{AWSCURRENT, AWSPREVIOUS};
use rotation::Mode;
use rotator::invoke::InvokeError;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::{assert_succeeded, AlternatingUser, Credentials, Db, Stack, TestUser};

async fn tag(stack: &Stack, arn: &str, key: &str, value: &str) {
    stack
        .secrets
        .tag_resource()
        .secret_id(arn)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("TagResource");
}

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
    tag(&stack, &single, "incident", &incident).await;

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
    tag(&stack, &alternating, "incident", &incident).await;

    // An unrelated secret carrying another value of the tag is left alone.
    let bystander = stack
        .db_user_with_secret(Db::Postgres, "cmpother", Mode::SecretsManager)
        .await
        .secret_arn;
    tag(&stack, &bystander, "incident", "another-incident").await;
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
