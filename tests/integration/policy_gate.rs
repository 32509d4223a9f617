//! The policy gate is live: between the functions and moto, every call is checked against the
//! policies `infra/template.yaml` gives the calling function's role (as the test bed deploys
//! it: secrets under `rotation/`, IAM users under `/rotation/`, RDS resources tagged
//! `rotation-scope=test-bed`). A call the role lacks, a secret outside the prefix and a wrong
//! resource tag are refused with AWS's AccessDenied shape, the step that made the call says so,
//! and nothing changes. (Every other module's rotations pass through the gate too.)

use aws_config::{AppName, BehaviorVersion};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use rotation::event::Step;
use rotation::mode::Mode;
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::iam::IamUser;
use test_support::{assert_succeeded, Db, Role, Stack, TestUser};

fn gate_endpoint() -> String {
    std::env::var("ROTATION_POLICY_GATE_ENDPOINT")
        .expect("ROTATION_POLICY_GATE_ENDPOINT: the stack's policy gate (scripts/stack.sh env)")
}

/// An AWS configuration that calls through the gate as `function` would (its user agent's app
/// name), or with no function identity at all.
async fn through_gate(function: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(gate_endpoint())
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(function) = function {
        loader =
            loader.app_name(AppName::new(rotation::config::app_name(function)).expect("app name"));
    }
    loader.load().await
}

/// The gate's decisions so far (policy-gate.jsonl in the stack directory).
fn decisions() -> Vec<Value> {
    let path = std::env::var("ROTATION_POLICY_GATE_LOG").expect("ROTATION_POLICY_GATE_LOG");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether the gate logged a refusal of `action` on a resource containing `resource`.
fn refused(action: &str, resource: &str) -> bool {
    decisions().iter().any(|d| {
        d["decision"] == "deny"
            && d["denied"]["action"] == action
            && d["denied"]["resource"]
                .as_str()
                .is_some_and(|r| r.contains(resource))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_role_lacks_is_refused_in_awss_access_denied_shape() {
    let stack = Stack::from_env().await;
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("gatelack"),
            &json!({"provider": "keyring-test", "k": "v"}),
            Mode::Workflow,
        )
        .await;
    let before = stack.labels(&arn).await;

    // test-secret may read a workflow secret, never write one.
    let test_secret = aws_sdk_secretsmanager::Client::new(&through_gate(Some("test-secret")).await);
    test_secret
        .get_secret_value()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("test-secret's role reads workflow secrets");
    let err = test_secret
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("{}")
        .send()
        .await
        .expect_err("test-secret's role has no PutSecretValue");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(400),
        "JSON protocols answer AccessDenied with HTTP 400"
    );
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        err.message(),
        Some(
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/TestSecretRole/test-secret is not authorized to perform: secretsmanager:PutSecretValue on resource: {arn} because no identity-based policy allows the secretsmanager:PutSecretValue action"
            )
            .as_str()
        )
    );
    assert_eq!(stack.labels(&arn).await, before, "nothing was written");
    assert!(refused("secretsmanager:PutSecretValue", &arn));

    // IAM (a query protocol): create-secret may list the keys of a user under the path,
    // finish-secret may not.
    let IamUser { user, .. } = stack.iam_user("gateiam").await;
    let create = aws_sdk_iam::Client::new(&through_gate(Some("create-secret")).await);
    create
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .expect("create-secret's role lists the keys of users under IamUserPath");
    let finish = aws_sdk_iam::Client::new(&through_gate(Some("finish-secret")).await);
    let err = finish
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .expect_err("finish-secret's role has no IAM permission");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(
        err.message().is_some_and(|m| m.contains(
            "assumed-role/FinishSecretRole/finish-secret is not authorized to perform: iam:ListAccessKeys on resource: arn:aws:iam::123456789012:user/rotation/"
        )),
        "{:?}",
        err.message()
    );

    // A caller that names no function is refused whatever it asks.
    let anonymous = aws_sdk_secretsmanager::Client::new(&through_gate(None).await);
    let err = anonymous
        .describe_secret()
        .secret_id(&arn)
        .send()
        .await
        .expect_err("no function identity");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(err
        .message()
        .is_some_and(|m| m.contains("no known function identity")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_outside_the_prefix_is_refused_and_the_step_says_so() {
    let stack = Stack::from_env().await;
    let user = stack.iam_user("gateout").await;
    let arn = stack
        .create_secret(
            &format!("outside/{}", Stack::unique("gateout")),
            &Stack::iam_secret(&user.user, &user.key),
        )
        .await;
    stack.enable_rotation(&arn).await;
    let before = stack.labels(&arn).await;
    let failure = refused_rotation(&stack, Mode::SecretsManager, &arn).await;
    for part in [
        "rotate",
        "createSecret",
        "AccessDeniedException",
        "secretsmanager:DescribeSecret",
        "assumed-role/RotateRole/rotate",
    ] {
        assert!(failure.contains(part), "{part}: {failure}");
    }
    assert_eq!(stack.labels(&arn).await, before, "nothing changed");
    assert!(refused("secretsmanager:DescribeSecret", &arn));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_resource_tag_is_refused() {
    let stack = Stack::from_env().await;

    // A secret without the workflow tag, through the step functions.
    let value = json!({"provider": "iam-access-key", "UserName": "nobody", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "x"});
    let untagged = stack.create_secret(&Stack::unique("gatetag"), &value).await;
    let failure = refused_rotation(&stack, Mode::Workflow, &untagged).await;
    assert!(
        failure.contains("create-secret")
            && failure.contains("AccessDeniedException")
            && failure.contains("assumed-role/CreateSecretRole/create-secret"),
        "{failure}"
    );
    assert!(refused("secretsmanager:DescribeSecret", &untagged));

    // A DB instance tagged for another scope: RDS discovery is refused.
    let instance = stack.rds_instance("postgres", "rdsadmin").await;
    stack
        .tag_rds_resource(
            &instance.arn,
            test_support::template::RDS_SCOPE_TAG,
            "elsewhere",
        )
        .await;
    let value = json!({"dbInstanceIdentifier": instance.id, "username": "app", "password": "irrelevant", "engine": "postgres"});
    let arn = stack
        .create_rotating_secret(&Stack::unique("gaterds"), &value, Mode::SecretsManager)
        .await;
    let before = stack.labels(&arn).await;
    let failure = refused_rotation(&stack, Mode::SecretsManager, &arn).await;
    assert!(
        failure.contains("createSecret")
            && failure.contains("rds:DescribeDBInstances")
            && failure.contains(&instance.arn),
        "{failure}"
    );
    assert_eq!(stack.labels(&arn).await, before, "nothing changed");
    assert!(refused("rds:DescribeDBInstances", &instance.arn));

    // An IAM user outside IamUserPath: its keys are out of reach.
    let outsider = Stack::unique("gatepath");
    stack
        .iam
        .create_user()
        .user_name(&outsider)
        .send()
        .await
        .expect("CreateUser");
    let key = stack.create_access_key(&outsider).await;
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("gatepath"),
            &Stack::iam_secret(&outsider, &key),
            Mode::SecretsManager,
        )
        .await;
    let failure = refused_rotation(&stack, Mode::SecretsManager, &arn).await;
    assert!(
        failure.contains("iam:ListAccessKeys")
            && failure.contains(&format!("arn:aws:iam::123456789012:user/{outsider}")),
        "{failure}"
    );
    let keys = stack
        .iam
        .list_access_keys()
        .user_name(&outsider)
        .send()
        .await
        .expect("ListAccessKeys");
    assert_eq!(
        keys.access_key_metadata().len(),
        1,
        "no key created or deleted"
    );
}

/// The error of a rotation of `arn` in `mode` that fails (the gate refused a call).
async fn refused_rotation(stack: &Stack, mode: Mode, arn: &str) -> String {
    let run = stack
        .driver(mode)
        .rotate(arn)
        .await
        .expect("the driver ran");
    run.failure().expect("refused").to_string()
}

/// Whether the gate logged an allowed `action` by `function` on a resource containing
/// `resource`.
fn allowed(function: &str, action: &str, resource: &str) -> bool {
    decisions().iter().any(|d| {
        d["decision"] == "allow"
            && d["function"] == function
            && d["checks"].as_array().into_iter().flatten().any(|c| {
                c["action"] == action
                    && c["resource"].as_str().is_some_and(|r| r.contains(resource))
            })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn own_masters_rds_discovery_and_rds_master_rotate_in_both_modes_under_the_enforced_policy() {
    let stack = Stack::from_env().await;
    for mode in [Mode::SecretsManager, Mode::Workflow] {
        let driver = stack.driver(mode);
        let set = match mode {
            Mode::SecretsManager => "rotate",
            Mode::Workflow => "set-secret",
        };

        // Alternating users whose master secret is no RDS-managed one.
        let alternating = stack
            .alternating_user_with_secret(Db::Postgres, "gatealt", false, mode)
            .await;
        let run = driver.rotate(&alternating.app.secret_arn).await.unwrap();
        assert_succeeded(&run);
        assert!(
            allowed(
                set,
                "secretsmanager:GetSecretValue",
                &alternating.master.arn
            ),
            "{mode:?}: the master secret was read through the gate"
        );

        // Endpoint discovery from a tagged DB instance.
        let instance = stack.rds_instance("postgres", "rdsadmin").await;
        let TestUser { secret_arn, .. } = stack
            .db_user_with_secret_value(Db::Postgres, "gatedisc", mode, |user, password| {
                json!({"dbInstanceIdentifier": instance.id, "username": user, "password": password.expose_secret(), "dbname": "postgres"})
            })
            .await;
        assert_succeeded(&driver.rotate(&secret_arn).await.unwrap());
        assert!(allowed(set, "rds:DescribeDBInstances", &instance.arn));

        // ... and from a tagged DB cluster (its writer endpoint; an Aurora MySQL cluster,
        // served by the stack's MariaDB).
        let cluster = stack.rds_cluster("aurora-mysql", "rdsadmin").await;
        let TestUser { secret_arn, .. } = stack
            .db_user_with_secret_value(Db::MariaDb, "gateclu", mode, |user, password| {
                json!({"dbClusterIdentifier": cluster.id, "username": user, "password": password.expose_secret(), "dbname": "rotation_test"})
            })
            .await;
        assert_succeeded(&driver.rotate(&secret_arn).await.unwrap());
        assert!(allowed(set, "rds:DescribeDBClusters", &cluster.arn));

        // rds-master: RDS sets the master password (the test plays RDS's part between the
        // steps, as moto has no database).
        let master = Stack::unique("pggatemaster");
        let instance = stack.rds_instance("postgres", &master).await;
        let original = stack
            .create_db_user(Db::Postgres, &master, Role::Master)
            .await;
        let value = json!({
            "engine": "postgres", "dbInstanceIdentifier": instance.id, "username": master,
            "password": original.expose_secret(), "dbname": "postgres", "strategy": "rds-master",
        });
        let arn = stack
            .create_rotating_secret(&Stack::unique("gaterdsmaster"), &value, mode)
            .await;
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let runs = driver
            .run_steps(&[Step::Create, Step::Set], &arn, &token, None)
            .await;
        assert!(runs.iter().all(|r| r.result.is_ok()), "{mode:?}: {runs:?}");
        let pending = stack.credentials(&arn, AWSPENDING).await.password;
        stack
            .apply_master_password(Db::Postgres, &master, &pending)
            .await;
        let rest = driver
            .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
            .await;
        assert!(rest.iter().all(|r| r.result.is_ok()), "{mode:?}: {rest:?}");
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        stack.assert_db_login(Db::Postgres, &master, &current).await;
        assert!(allowed(set, "rds:ModifyDBInstance", &instance.arn));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_managed_keys_serve_only_the_secrets_the_template_names_them_for() {
    use test_support::template::{TEST_BED_MASTERS_KEY, TEST_BED_SECRETS_KEY};
    let stack = Stack::from_env().await;
    for mode in [Mode::SecretsManager, Mode::Workflow] {
        let driver = stack.driver(mode);
        // The secrets' key for the secret, the masters' own key for its master.
        let alternating = stack
            .alternating_user_with_secret(Db::Postgres, "gatekms", false, mode)
            .await;
        stack
            .encrypt_with(&alternating.app.secret_arn, TEST_BED_SECRETS_KEY)
            .await;
        stack
            .encrypt_with(&alternating.master.arn, TEST_BED_MASTERS_KEY)
            .await;
        assert_succeeded(&driver.rotate(&alternating.app.secret_arn).await.unwrap());
        let set = match mode {
            Mode::SecretsManager => "rotate",
            Mode::Workflow => "set-secret",
        };
        assert!(
            allowed(set, "kms:Decrypt", TEST_BED_MASTERS_KEY),
            "{mode:?}"
        );
        assert!(allowed(
            match mode {
                Mode::SecretsManager => "rotate",
                Mode::Workflow => "create-secret",
            },
            "kms:GenerateDataKey",
            TEST_BED_SECRETS_KEY
        ));

        // The masters' key does not open a rotated secret.
        let TestUser { secret_arn, .. } = stack
            .db_user_with_secret(Db::Postgres, "gatekmswrong", mode)
            .await;
        stack.encrypt_with(&secret_arn, TEST_BED_MASTERS_KEY).await;
        let before = stack.labels(&secret_arn).await;
        let run = driver.rotate(&secret_arn).await.unwrap();
        let failure = run.failure().expect("refused").to_string();
        assert!(
            failure.contains("kms:Decrypt") && failure.contains(TEST_BED_MASTERS_KEY),
            "{mode:?}: {failure}"
        );
        assert_eq!(stack.labels(&secret_arn).await, before, "nothing changed");
    }
}
