//! RDS integration against moto's RDS API: endpoint discovery, RDS-managed master secrets and
//! master-user rotation through ModifyDBInstance. moto has no database behind RDS: the stack's
//! ROTATION_DB_HOST_OVERRIDES sends `*.rds.amazonaws.com` to the local servers, and for the
//! rds-master strategy the test plays RDS's part by applying the password RDS was sent.

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use rotation::Step;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::rds::RdsResource;
use test_support::{assert_succeeded, Credentials, Db, Role, Stack, TestUser};

/// A DB instance in moto whose master user is `rdsadmin`.
async fn instance(stack: &Stack, engine: &str) -> RdsResource {
    stack.rds_instance(engine, "rdsadmin").await
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_are_discovered_from_instance_and_cluster_identifiers() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);

    // An instance: no host, no port, no engine in the secret.
    let RdsResource { id, .. } = instance(&stack, "postgres").await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret_value(Db::Postgres, "disc", Mode::SecretsManager, |user, password| {
            json!({"dbInstanceIdentifier": id, "username": user, "password": password.expose_secret(), "dbname": "postgres"})
        })
        .await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(
        run.steps[0].result.as_ref().unwrap().provider.as_deref(),
        Some("postgres")
    );
    let current = stack.value(&arn, AWSCURRENT).await;
    assert!(
        current.get("host").is_none(),
        "discovered values are not written into the secret"
    );
    let password = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &password).await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;

    // A cluster: its writer endpoint.
    let cluster = Stack::unique("cl").replace('_', "-");
    stack
        .rds
        .create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-mysql")
        .master_username("rdsadmin")
        .master_user_password("placeholder-password")
        .tags(test_support::rds::scope_tag())
        .send()
        .await
        .expect("CreateDBCluster");
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret_value(Db::MariaDb, "disc", Mode::SecretsManager, |user, password| {
            json!({"dbClusterIdentifier": cluster, "username": user, "password": password.expose_secret(), "dbname": "rotation_test"})
        })
        .await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(
        run.steps[0].result.as_ref().unwrap().provider.as_deref(),
        Some("mysql")
    );
    let password = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::MariaDb, &user, &password).await;
    stack.assert_db_refused(Db::MariaDb, &user, &original).await;

    // An identifier RDS does not know is a clear error.
    let value = json!({"dbInstanceIdentifier": "no-such-db", "username": "u", "password": "p"});
    let arn = stack
        .create_rotating_secret(&Stack::unique("disc"), &value, Mode::SecretsManager)
        .await;
    let failure = driver
        .rotate(&arn)
        .await
        .unwrap()
        .failure()
        .expect("must fail")
        .to_string();
    assert!(
        failure.contains("DescribeDBInstances") && failure.contains("createSecret"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_reader_endpoint_is_refused() {
    let stack = Stack::from_env().await;
    let value = json!({
        "engine": "aurora-postgresql",
        "host": "main.cluster-ro-abcdefghijkl.us-east-1.rds.amazonaws.com",
        "username": "app",
        "password": "irrelevant",
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("reader"), &value, Mode::SecretsManager)
        .await;
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&arn)
        .await
        .unwrap();
    let failure = run.failure().expect("must fail").to_string();
    assert!(
        failure.contains("field `host`") && failure.contains("reader endpoint"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rds_managed_master_secret_is_reached_through_its_tags() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let RdsResource {
        id,
        arn: instance_arn,
    } = instance(&stack, "postgres").await;
    let master = Stack::unique("pgrdsmaster");
    let master_password = stack
        .create_db_user(Db::Postgres, &master, Role::Master)
        .await;
    let master_value = json!({"username": master, "password": master_password.expose_secret()});

    for (tag, works) in [
        (instance_arn.as_str(), true),
        ("arn:aws:rds:us-east-1:123456789012:db:gone", false),
    ] {
        let master_arn = stack
            .create_tagged_secret(
                &Stack::unique("rdsmaster"),
                &master_value,
                &[("aws:rds:primarydbinstancearn", tag)],
            )
            .await;
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .db_user_with_secret_value(Db::Postgres, "managed", Mode::SecretsManager, |user, password| {
                json!({
                    "engine": "postgres", "dbInstanceIdentifier": id, "username": user,
                    "password": password.expose_secret(), "dbname": "postgres", "masterarn": master_arn,
                })
            })
            .await;
        let run = driver.rotate(&arn).await.unwrap();
        if works {
            assert_succeeded(&run);
            let set = run.steps[1].result.as_ref().unwrap();
            // Describe, AWSPENDING, AWSCURRENT, the master's value and the master's tags.
            assert_eq!(
                set.secrets_manager_calls, 5,
                "the master secret's tags were read"
            );
            let Credentials {
                user: clone,
                password,
            } = stack.credentials(&arn, AWSCURRENT).await;
            assert_eq!(clone, format!("{user}_clone"));
            stack.assert_db_login(Db::Postgres, &clone, &password).await;
            stack.assert_db_login(Db::Postgres, &user, &original).await;
        } else {
            let failure = run
                .failure()
                .expect("a tag naming a missing instance must fail")
                .to_string();
            assert!(
                failure.contains("setSecret") && failure.contains("DescribeDBInstances"),
                "{failure}"
            );
            stack.assert_db_login(Db::Postgres, &user, &original).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_master_user_is_rotated_through_modify_db_instance() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    // RDS names the secret's user as the instance's master user, as it does in AWS.
    let master = Stack::unique("pgmasterrot");
    let id = stack.rds_instance("postgres", &master).await.id;
    let original = stack
        .create_db_user(Db::Postgres, &master, Role::Master)
        .await;
    let value = json!({
        "engine": "postgres", "dbInstanceIdentifier": id, "username": master,
        "password": original.expose_secret(), "dbname": "postgres", "strategy": "rds-master",
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("rdsmaster"), &value, Mode::SecretsManager)
        .await;
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let runs = driver
        .run_steps(&[Step::Create, Step::Set], &arn, &token, None)
        .await;
    assert!(runs.iter().all(|r| r.result.is_ok()), "{runs:?}");
    assert_eq!(
        runs[1].result.as_ref().unwrap().strategy.as_deref(),
        Some("rds-master")
    );

    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    let calls: Vec<Value> = stack
        .rds_requests("ModifyDBInstance")
        .into_iter()
        .filter(|c| c["DBInstanceIdentifier"] == id.as_str())
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "exactly one ModifyDBInstance: {}",
        calls.len()
    );
    assert_eq!(calls[0]["MasterUserPassword"], pending.expose_secret());
    assert_eq!(calls[0]["ApplyImmediately"], "true");

    // RDS applies the password (moto cannot): the test plays that part.
    stack
        .apply_master_password(Db::Postgres, &master, &pending)
        .await;
    // A repeated setSecret sees the new password working and calls RDS no more.
    let again = driver
        .step(Step::Set, &arn, &token, None)
        .await
        .result
        .unwrap();
    assert_eq!(again.outcome, rotation::Outcome::AlreadyDone);
    assert_eq!(
        stack
            .rds_requests("ModifyDBInstance")
            .iter()
            .filter(|c| c["DBInstanceIdentifier"] == id.as_str())
            .count(),
        1
    );

    let rest = driver
        .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
        .await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    assert_eq!(current.expose_secret(), pending.expose_secret());
    stack.assert_db_login(Db::Postgres, &master, &current).await;
    stack
        .assert_db_refused(Db::Postgres, &master, &original)
        .await;
}
