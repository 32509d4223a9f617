//! rds-master: a writer of one secret names a DB instance or cluster in `dbInstanceIdentifier` /
//! `dbClusterIdentifier`. Before ModifyDBInstance / ModifyDBCluster, setSecret proves that the
//! secret owns it: the current password logs in as the master user RDS names, at the endpoint
//! RDS gives (the stack sends `*.rds.amazonaws.com` to the local servers). Only when that login
//! is refused may the resource's `rotation-secret-arn` tag name the secret instead. Every RDS
//! request the functions make is recorded by the stack's proxy, so "no ModifyDB* reached RDS"
//! is checked on the wire.

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use rotation::Step;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use test_support::rds::RdsResource;
use test_support::{Db, Role, Stack};

/// The tag that binds a DB resource to the one secret allowed to reset its master password.
const TAG: &str = "rotation-secret-arn";

fn rds_master_secret(user: &str, password: &SecretString, instance: &str) -> Value {
    json!({
        "engine": "postgres", "dbInstanceIdentifier": instance, "username": user,
        "password": password.expose_secret(), "dbname": "postgres", "strategy": "rds-master",
    })
}

/// Runs createSecret and setSecret; returns setSecret's error message (None when it passed).
async fn create_and_set(stack: &Stack, arn: &str) -> (String, Option<String>) {
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(arn).await.unwrap();
    let runs = driver
        .run_steps(&[Step::Create, Step::Set], arn, &token, None)
        .await;
    assert!(runs[0].result.is_ok(), "createSecret: {:?}", runs[0].result);
    let error = runs
        .get(1)
        .and_then(|r| r.result.as_ref().err())
        .map(|e| e.to_string());
    (token, error)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_naming_another_instance_cannot_reset_its_master_password() {
    let stack = Stack::from_env().await;
    // The writer's own database and the victim's, each with its master user.
    let own_master = Stack::unique("pgownm");
    let RdsResource { .. } = stack.rds_instance("postgres", &own_master).await;
    let own_password = stack
        .create_db_user(Db::Postgres, &own_master, Role::Master)
        .await;
    let victim_master = Stack::unique("pgvictimm");
    let victim = stack.rds_instance("postgres", &victim_master).await.id;
    let victim_password = stack
        .create_db_user(Db::Postgres, &victim_master, Role::Master)
        .await;

    // The writer's own master credentials, pointed at the victim's instance; then the victim's
    // master name with the writer's password.
    let attacks = [
        (
            rds_master_secret(&own_master, &own_password, &victim),
            "field `username`",
        ),
        (
            rds_master_secret(&victim_master, &own_password, &victim),
            "must log in as the master user",
        ),
    ];
    for (value, rule) in attacks {
        let arn = stack
            .create_rotating_secret(&Stack::unique("rdsattack"), &value, Mode::SecretsManager)
            .await;
        let (_, error) = create_and_set(&stack, &arn).await;
        let error = error.expect("setSecret must refuse");
        assert!(
            error.contains(rule) && error.contains(&format!("DB instance {victim}")),
            "{error}"
        );
        assert!(!error.contains(own_password.expose_secret()), "{error}");
    }
    assert!(
        stack
            .rds_requests_for("ModifyDBInstance", &victim)
            .is_empty(),
        "no ModifyDBInstance reached RDS for the victim's instance"
    );
    stack
        .assert_db_login(Db::Postgres, &victim_master, &victim_password)
        .await;
    stack
        .assert_db_login(Db::Postgres, &own_master, &own_password)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_master_password_proves_a_cluster_and_it_is_rotated() {
    let stack = Stack::from_env().await;
    let master = Stack::unique("mycm");
    let cluster = stack.rds_cluster("aurora-mysql", &master).await.id;
    let original = stack
        .create_db_user(Db::MariaDb, &master, Role::Master)
        .await;
    let value = json!({
        "engine": "mysql", "dbClusterIdentifier": cluster, "username": master,
        "password": original.expose_secret(), "dbname": "rotation_test", "strategy": "rds-master",
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("rdscluster"), &value, Mode::SecretsManager)
        .await;
    let (token, error) = create_and_set(&stack, &arn).await;
    assert_eq!(error, None);
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    let calls = stack.rds_requests_for("ModifyDBCluster", &cluster);
    assert_eq!(calls.len(), 1, "exactly one ModifyDBCluster");
    assert_eq!(calls[0]["MasterUserPassword"], pending.expose_secret());

    // RDS applies the password (moto cannot): the test plays that part.
    stack
        .apply_master_password(Db::MariaDb, &master, &pending)
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let rest = driver
        .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
        .await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    stack.assert_db_login(Db::MariaDb, &master, &pending).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_master_password_is_reset_only_for_the_secret_the_tag_names() {
    let stack = Stack::from_env().await;
    let master = Stack::unique("pglostm");
    let RdsResource {
        id: instance,
        arn: instance_arn,
    } = stack.rds_instance("postgres", &master).await;
    let real = stack
        .create_db_user(Db::Postgres, &master, Role::Master)
        .await;
    // The secret's password was lost: it no longer logs in.
    let lost = Stack::password();
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("rdslost"),
            &rds_master_secret(&master, &lost, &instance),
            Mode::SecretsManager,
        )
        .await;

    // No tag, then a tag naming another secret: refused, nothing sent to RDS.
    for tag in [
        None,
        Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"),
    ] {
        if let Some(other) = tag {
            stack.tag_rds_resource(&instance_arn, TAG, other).await;
        }
        let (_, error) = create_and_set(&stack, &arn).await;
        let error = error.expect("setSecret must refuse");
        assert!(
            error.contains("must log in as the master user") && error.contains(TAG),
            "{error}"
        );
        assert!(stack
            .rds_requests_for("ModifyDBInstance", &instance)
            .is_empty());
        stack.assert_db_login(Db::Postgres, &master, &real).await;
    }

    // The administrator's tag names this secret: the master password is reset through RDS.
    stack.tag_rds_resource(&instance_arn, TAG, &arn).await;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let set = driver
        .run_steps(&[Step::Create, Step::Set], &arn, &token, None)
        .await;
    let report = set[1].result.as_ref().expect("setSecret with the tag");
    assert!(
        report.warnings.iter().any(|w| w.contains(TAG)),
        "{:?}",
        report.warnings
    );
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    let calls = stack.rds_requests_for("ModifyDBInstance", &instance);
    assert_eq!(calls.len(), 1, "exactly one ModifyDBInstance");
    assert_eq!(calls[0]["MasterUserPassword"], pending.expose_secret());
    stack
        .apply_master_password(Db::Postgres, &master, &pending)
        .await;
    let rest = driver
        .run_steps(&[Step::Test, Step::Finish], &arn, &token, None)
        .await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    assert_eq!(current.expose_secret(), pending.expose_secret());
    stack.assert_db_login(Db::Postgres, &master, &current).await;
    stack.assert_db_refused(Db::Postgres, &master, &real).await;
}
