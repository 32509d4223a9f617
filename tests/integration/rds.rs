//! RDS integration against moto's RDS API: endpoint discovery, RDS-managed master secrets and
//! master-user rotation through ModifyDBInstance. moto has no database behind RDS: the stack's
//! ROTATION_DB_HOST_OVERRIDES sends `*.rds.amazonaws.com` to the local servers, and for the
//! rds-master strategy the RDS recorder (scripts/rds-recorder.py) plays RDS's part: a master
//! password change stays in PendingModifiedValues for a few seconds (status `available`, then
//! `resetting-master-credentials`), then the recorder applies it on the local server.

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

/// An rds-master secret of a new PostgreSQL master user of a new moto DB instance.
async fn rds_master_secret(
    stack: &Stack,
    name: &str,
) -> (String, String, String, secrecy::SecretString) {
    let master = Stack::unique(name);
    let id = stack.rds_instance("postgres", &master).await.id;
    let original = stack
        .create_db_user(Db::Postgres, &master, Role::Master)
        .await;
    let value = json!({
        "engine": "postgres", "dbInstanceIdentifier": id, "username": master,
        "password": original.expose_secret(), "dbname": "postgres", "strategy": "rds-master",
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("rdswait"), &value, Mode::SecretsManager)
        .await;
    (arn, id, master, original)
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn set_secret_returns_only_after_rds_applied_the_master_password() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let (arn, id, master, original) = rds_master_secret(&stack, "pgwait").await;
    stack.rds_apply_seconds(&id, 6);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let created = driver.step(Step::Create, &arn, &token, None).await;
    assert!(created.result.is_ok(), "{created:?}");
    let set = driver.step(Step::Set, &arn, &token, None).await;
    let returned_at = epoch_now();
    assert!(set.result.is_ok(), "{set:?}");

    // The order of events: ModifyDBInstance, DescribeDBInstances answered while the change was
    // pending, RDS applying it, setSecret returning. Without the wait setSecret returned right
    // after the first DescribeDBInstances (status `available`), before RDS applied anything.
    let modified = stack.rds_requests_for("ModifyDBInstance", &id);
    assert_eq!(modified.len(), 1, "exactly one ModifyDBInstance");
    let modified_at = modified[0]["at"].as_f64().unwrap();
    let applied = stack.rds_applied_at(&id);
    assert_eq!(applied.len(), 1, "RDS applied the change once");
    let describes_while_pending = stack
        .rds_requests_for("DescribeDBInstances", &id)
        .iter()
        .filter_map(|d| d["at"].as_f64())
        .filter(|at| *at > modified_at && *at < applied[0])
        .count();
    println!(
        "ModifyDBInstance at +0.0 s, {describes_while_pending} DescribeDBInstances while pending, applied at +{:.1} s, setSecret returned at +{:.1} s",
        applied[0] - modified_at,
        returned_at - modified_at
    );
    assert!(describes_while_pending >= 2, "{describes_while_pending}");
    assert!(
        applied[0] <= returned_at,
        "setSecret returned before RDS applied the password"
    );
    assert!(applied[0] - modified_at >= 5.5);

    // Nothing played RDS's part but the recorder: the new password works as setSecret returns.
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    stack.assert_db_login(Db::Postgres, &master, &pending).await;
    let rest = driver
        .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
        .await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    stack
        .assert_db_refused(Db::Postgres, &master, &original)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_rds_applies_late_fails_set_secret_with_a_timeout_and_a_retry_waits_for_it_without_sending_it_again(
) {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let (arn, id, master, original) = rds_master_secret(&stack, "pglate").await;
    // Longer than the stack's ROTATION_RDS_WAIT_SECONDS (10), shorter than two waits.
    stack.rds_apply_seconds(&id, 12);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let created = driver.step(Step::Create, &arn, &token, None).await;
    assert!(created.result.is_ok(), "{created:?}");
    let set = driver.step(Step::Set, &arn, &token, None).await;
    let error = set.result.as_ref().unwrap_err().to_string();
    println!("setSecret after {:?}: {error}", set.elapsed);
    assert!(
        error.contains("Timeout")
            && error.contains(&format!("DB instance {id}"))
            && error.contains("setSecret")
            && error.contains("ROTATION_RDS_WAIT_SECONDS"),
        "{error}"
    );
    assert!(
        set.elapsed >= std::time::Duration::from_secs(7)
            && set.elapsed < std::time::Duration::from_secs(12),
        "the wait is bounded: {:?}",
        set.elapsed
    );
    // The change is still pending: the current password still logs in.
    stack
        .assert_db_login(Db::Postgres, &master, &original)
        .await;

    let retry = driver.step(Step::Set, &arn, &token, None).await;
    assert!(retry.result.is_ok(), "{retry:?}");
    assert_eq!(
        stack.rds_requests_for("ModifyDBInstance", &id).len(),
        1,
        "the retry waited for the pending change instead of sending another"
    );
    let rest = driver
        .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
        .await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &master, &current).await;
    stack
        .assert_db_refused(Db::Postgres, &master, &original)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_secret_retries_a_new_master_password_rds_has_not_applied_yet_within_its_bound() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let (arn, id, master, _) = rds_master_secret(&stack, "pgtestretry").await;
    stack.rds_apply_seconds(&id, 14);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let created = driver.step(Step::Create, &arn, &token, None).await;
    assert!(created.result.is_ok(), "{created:?}");
    // setSecret gives up waiting at its bound (ROTATION_RDS_WAIT_SECONDS, 10 s) ...
    let set = driver.step(Step::Set, &arn, &token, None).await;
    assert!(set.result.is_err(), "{set:?}");
    // ... and testSecret, run while RDS still applies the change, retries the refused login
    // within its own bound until the password works.
    let test = driver.step(Step::Test, &arn, &token, None).await;
    println!(
        "setSecret gave up after {:?}; testSecret logged in after {:?}",
        set.elapsed, test.elapsed
    );
    assert!(test.result.is_ok(), "{test:?}");
    assert!(
        test.elapsed >= std::time::Duration::from_secs(2)
            && test.elapsed < std::time::Duration::from_secs(12),
        "{:?}",
        test.elapsed
    );
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    stack.assert_db_login(Db::Postgres, &master, &pending).await;
    assert_eq!(stack.rds_requests_for("ModifyDBInstance", &id).len(), 1);
}
