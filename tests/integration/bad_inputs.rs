//! Bad events and bad secrets get clear errors that name the field or the step, never a panic,
//! and leave every valid credential valid.

use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use rotation::Step;
use rotator::invoke::InvokeError;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::{assert_succeeded, Db, Role, Stack, TestUser};

/// Invokes `function` with `body` and returns (errorType, errorMessage) of the failure.
async fn rejected(stack: &Stack, function: &str, body: String) -> (String, String) {
    let driver = stack.driver(Mode::SecretsManager);
    match driver.invoker().invoke_raw(function, body).await {
        Ok(value) => panic!("{function} accepted a bad event: {value}"),
        Err(InvokeError::Function {
            error_type,
            message,
            ..
        }) => (error_type, message),
        Err(e) => panic!("{function} did not answer: {e}"),
    }
}

fn event(step: &str, secret: &str, token: &str) -> String {
    json!({"Step": step, "SecretId": secret, "ClientRequestToken": token}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_are_rejected_clearly_and_the_function_keeps_serving() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "badevent", Mode::SecretsManager)
        .await;
    let before = stack.labels(&arn).await;
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "rotate",
            "{\"Step\": \"createSecret\",".into(),
            "",
            "deserialize",
        ),
        ("rotate", "[1, 2]".into(), "InvalidEvent", "JSON object"),
        (
            "rotate",
            event("rotateSecret", &arn, "t"),
            "InvalidEvent",
            "`Step`",
        ),
        (
            "rotate",
            json!({"Step": "setSecret", "ClientRequestToken": "t"}).to_string(),
            "InvalidEvent",
            "`SecretId` is missing",
        ),
        (
            "rotate",
            json!({"Step": "setSecret", "SecretId": arn, "ClientRequestToken": 7}).to_string(),
            "InvalidEvent",
            "`ClientRequestToken`",
        ),
        (
            "set-secret",
            event("createSecret", &arn, "t"),
            "WrongStep",
            "runs only the setSecret step",
        ),
        (
            "finish-secret",
            event("test_secret", &arn, "t"),
            "WrongStep",
            "runs only the finishSecret step",
        ),
        (
            "rotate",
            event("setSecret", "rotation/no-such-secret", "t"),
            "SecretsManager",
            "ResourceNotFoundException",
        ),
    ];
    for (function, body, error_type, needle) in cases {
        let (kind, message) = rejected(&stack, function, body.clone()).await;
        if !error_type.is_empty() {
            assert_eq!(kind, error_type, "{body}: {message}");
        }
        assert!(
            message.contains(needle),
            "{body}: {message} should contain {needle}"
        );
    }
    assert_eq!(stack.labels(&arn).await, before);
    stack.assert_db_login(Db::Postgres, &user, &original).await;
    // The functions still serve after all that.
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_must_be_pending_versions_of_this_secret() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "token", Mode::SecretsManager)
        .await;
    let other_arn = stack
        .db_user_with_secret(Db::Postgres, "othertoken", Mode::SecretsManager)
        .await
        .secret_arn;
    let driver = stack.driver(Mode::SecretsManager);
    let (other_token, _) = driver.next_token(&other_arn).await.unwrap();
    let before = stack.labels(&arn).await;
    let current_version = rotator::versions::version_with(&before, AWSCURRENT)
        .unwrap()
        .to_owned();

    for step in ["setSecret", "testSecret", "finishSecret"] {
        let (kind, message) = rejected(&stack, "rotate", event(step, &arn, &other_token)).await;
        assert_eq!(kind, "BadToken", "{message}");
        assert!(
            message.contains("is not a version of this secret") && message.contains(step),
            "{message}"
        );
    }
    // A version of this secret that is not AWSPENDING (here: AWSCURRENT is done, so take a
    // finished rotation's previous version).
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let (kind, message) = rejected(&stack, "rotate", event(step, &arn, &current_version)).await;
        assert_eq!(kind, "BadToken", "{message}");
        assert!(message.contains("is not labelled AWSPENDING"), "{message}");
    }
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &current).await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_must_be_enabled() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("disabled");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    let arn = stack
        .create_secret(
            &Stack::unique("disabled"),
            &stack.db_secret(Db::Postgres, &user, &password),
        )
        .await;
    for step in Step::ALL {
        let (kind, message) = rejected(
            &stack,
            "rotate",
            event(step.as_str(), &arn, &uuid::Uuid::new_v4().to_string()),
        )
        .await;
        assert_eq!(kind, "RotationDisabled", "{message}");
        assert!(message.contains("rotation is not enabled"), "{message}");
    }
    stack.assert_db_login(Db::Postgres, &user, &password).await;
    assert_eq!(
        stack.value(&arn, AWSCURRENT).await["password"],
        password.expose_secret()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_secrets_name_the_field_and_never_the_value() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("badsecret");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    let good = stack.db_secret(Db::Postgres, &user, &password);
    let with = |key: &str, value: Value| {
        let mut v = good.clone();
        v[key] = value;
        v.to_string()
    };
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        v.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (without("host"), "field `host` is missing"),
        (without("password"), "field `password` is missing"),
        (without("username"), "field `username` is missing"),
        (without("engine"), "field `engine` is missing"),
        (
            with("engine", json!("oracle")),
            "field `engine`: unsupported value \"oracle\"",
        ),
        (with("port", json!("five")), "field `port`"),
        (with("ssl", json!("perhaps")), "field `ssl`"),
        (
            with("password", json!(97531864)),
            "field `password`: expected a string",
        ),
        (
            format!("not json {}", password.expose_secret()),
            "not valid JSON",
        ),
        (
            json!([password.expose_secret()]).to_string(),
            "must be a JSON object",
        ),
    ];
    let driver = stack.driver(Mode::SecretsManager);
    for (value, needle) in cases {
        let name = Stack::unique("badsecret");
        let arn = stack
            .secrets
            .create_secret()
            .name(Stack::secret_name(&name))
            .secret_string(value.clone())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        stack.enable_rotation(&arn).await;
        let before = stack.labels(&arn).await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run.failure().expect("a bad secret must fail").to_string();
        assert_eq!(run.steps.len(), 1, "stops at createSecret");
        assert_eq!(
            run.failure().unwrap().error_type(),
            Some("InvalidSecret"),
            "{failure}"
        );
        assert!(
            failure.contains(needle),
            "{failure} should contain {needle}"
        );
        assert!(failure.contains("createSecret"), "{failure} names the step");
        assert!(
            !failure.contains(password.expose_secret()),
            "{failure} shows the password"
        );
        assert!(!failure.contains("97531864"), "{failure} shows a value");
        assert_eq!(stack.labels(&arn).await, before, "nothing moved");
    }
    stack.assert_db_login(Db::Postgres, &user, &password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_secret_must_not_be_the_secret_itself() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("selfmaster");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    let name = Stack::unique("selfmaster");
    let arn = stack
        .create_secret(&name, &stack.db_secret(Db::Postgres, &user, &password))
        .await;
    let mut value = stack.db_secret(Db::Postgres, &user, &password);
    value["masterarn"] = json!(arn);
    stack
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap();
    stack.enable_rotation(&arn).await;
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&arn)
        .await
        .unwrap();
    let failure = run.failure().expect("must fail").to_string();
    assert!(failure.contains("field `masterarn`"), "{failure}");
    stack.assert_db_login(Db::Postgres, &user, &password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_function_refuses_a_secret_of_the_other_mode() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: managed,
        user: managed_user,
        password: managed_password,
    } = stack
        .db_user_with_secret(Db::Postgres, "smmode", Mode::SecretsManager)
        .await;
    let TestUser {
        secret_arn: workflow,
        user: workflow_user,
        password: workflow_password,
    } = stack
        .db_user_with_secret(Db::Postgres, "wfmode", Mode::Workflow)
        .await;
    let token = uuid::Uuid::new_v4().to_string();
    let managed_before = stack.labels(&managed).await;
    let workflow_before = stack.labels(&workflow).await;

    for step in Step::ALL {
        // A step function's role may not even describe a secret without the workflow tag:
        // the template's policy refuses it before the function's own mode check could.
        let (kind, message) = rejected(
            &stack,
            step.function_name(),
            event(step.as_str(), &managed, &token),
        )
        .await;
        assert_eq!(kind, "SecretsManager", "{message}");
        assert!(
            message.contains("AccessDeniedException")
                && message.contains(&format!("/{} is not authorized", step.function_name())),
            "{message}"
        );
        let (kind, message) =
            rejected(&stack, "rotate", event(step.as_str(), &workflow, &token)).await;
        assert_eq!(kind, "WrongMode", "{message}");
        assert!(message.contains("not the rotate function"), "{message}");
    }
    assert_eq!(stack.labels(&managed).await, managed_before);
    assert_eq!(stack.labels(&workflow).await, workflow_before);

    // Both modes at once is refused too.
    stack.enable_rotation(&workflow).await;
    let (kind, message) = rejected(
        &stack,
        "create-secret",
        event("createSecret", &workflow, &token),
    )
    .await;
    assert_eq!(kind, "WrongMode", "{message}");
    assert!(message.contains("turn one of them off"), "{message}");

    stack
        .assert_db_login(Db::Postgres, &managed_user, &managed_password)
        .await;
    stack
        .assert_db_login(Db::Postgres, &workflow_user, &workflow_password)
        .await;
}
