//! Alternating-users PostgreSQL rotation (`masterarn`): dual-phase, through the real functions.

use postgres_protocol::escape::escape_identifier;
use rotation::secrets_manager::{AWSCURRENT, AWSPREVIOUS};
use rotation::Mode;
use rotator::versions::version_with;
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::{
    assert_finished_labels, assert_succeeded, Credentials, Db, Role, Stack, TestUser,
};

#[tokio::test(flavor = "multi_thread")]
async fn alternates_users_and_revokes_the_oldest_credential() {
    let stack = Stack::from_env().await;
    for (db, rds_managed) in [
        (Db::Postgres, true),
        (Db::Postgres, false),
        (Db::MariaDb, true),
        (Db::MariaDb, false),
    ] {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .alternating_user_with_secret(db, "app", rds_managed, Mode::SecretsManager)
            .await
            .app;
        let clone = format!("{user}_clone");
        let driver = stack.driver(Mode::SecretsManager);

        // Each credential: (user, password). Active after its rotation, inactive (still valid)
        // after the next one, revoked after the one after that.
        let mut history = vec![(user.clone(), original)];
        for round in 1..=3 {
            let before = stack.labels(&arn).await;
            let previous_version = version_with(&before, AWSCURRENT).unwrap().to_owned();
            let run = driver.rotate(&arn).await.unwrap();
            assert_succeeded(&run);
            assert_finished_labels(&stack.labels(&arn).await, &run.token, &previous_version);
            let Credentials {
                user: current_user,
                password: current,
            } = stack.credentials(&arn, AWSCURRENT).await;
            let expected_user = if round % 2 == 1 { &clone } else { &user };
            assert_eq!(&current_user, expected_user, "{db:?} round {round}");
            history.push((current_user, current));

            let n = history.len();
            stack
                .assert_db_login(db, &history[n - 1].0, &history[n - 1].1)
                .await;
            stack
                .assert_db_login(db, &history[n - 2].0, &history[n - 2].1)
                .await;
            let Credentials {
                user: previous_user,
                password: previous,
            } = stack.credentials(&arn, AWSPREVIOUS).await;
            assert_eq!(previous_user, history[n - 2].0);
            assert_eq!(previous.expose_secret(), history[n - 2].1.expose_secret());
            if n >= 3 {
                stack
                    .assert_db_refused(db, &history[n - 3].0, &history[n - 3].1)
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_created_by_either_user_are_usable_by_the_other() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .alternating_user_with_secret(Db::Postgres, "app", true, Mode::SecretsManager)
        .await
        .app;
    let schema = Stack::unique("objects");
    let s = escape_identifier(&schema);
    stack
        .db_admin_sql(
            Db::Postgres,
            &format!(
                "CREATE SCHEMA {s} AUTHORIZATION {}",
                escape_identifier(&user)
            ),
        )
        .await;
    let base = stack.pg_login(&user, &original).await.unwrap();
    base.batch_execute(&format!(
        "CREATE TABLE {s}.made_by_base (x int); INSERT INTO {s}.made_by_base VALUES (1)"
    ))
    .await
    .unwrap();

    let driver = stack.driver(Mode::SecretsManager);
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let Credentials {
        user: clone_user,
        password: clone_password,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(clone_user, format!("{user}_clone"));
    let clone = stack.pg_login(&clone_user, &clone_password).await.unwrap();
    clone
        .batch_execute(&format!(
            "CREATE TABLE {s}.made_by_clone (x int); INSERT INTO {s}.made_by_clone VALUES (2);
             INSERT INTO {s}.made_by_base VALUES (3); ALTER TABLE {s}.made_by_base ADD COLUMN y int"
        ))
        .await
        .expect("the clone uses and alters what the original user created");

    let base = stack.pg_login(&user, &original).await.unwrap();
    base.batch_execute(&format!(
        "INSERT INTO {s}.made_by_clone VALUES (4); ALTER TABLE {s}.made_by_clone ADD COLUMN y int; DROP TABLE {s}.made_by_clone"
    ))
    .await
    .expect("the original user uses, alters and drops what the clone created");

    let owners = stack
        .admin()
        .await
        .query(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .unwrap();
    for row in owners {
        assert_eq!(
            row.get::<_, String>(0),
            user,
            "every object is owned by the original user"
        );
    }

    // The next rotation switches back; the clone's objects stay usable.
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let Credentials {
        user: base_user,
        password: base_password,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(base_user, user);
    let base = stack.pg_login(&base_user, &base_password).await.unwrap();
    let count: i64 = base
        .query_one(&format!("SELECT count(*) FROM {s}.made_by_base"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_step_keeps_the_current_user_working() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::Workflow);
    for (db, crash_after) in Db::ALL
        .into_iter()
        .flat_map(|db| (1..rotation::Step::ALL.len()).map(move |c| (db, c)))
    {
        let TestUser {
            secret_arn: arn,
            user,
            password: original,
        } = stack
            .alternating_user_with_secret(db, "app", true, Mode::Workflow)
            .await
            .app;
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let partial = driver
            .run_steps(&rotation::Step::ALL[..crash_after], &arn, &token, None)
            .await;
        assert!(partial.iter().all(|s| s.result.is_ok()));
        stack.assert_db_login(db, &user, &original).await;
        let rerun = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&rerun);
        assert_eq!(rerun.token, token);
        stack.assert_stage_logs_in(db, &arn, AWSCURRENT).await;
        stack.assert_db_login(db, &user, &original).await;
    }
}

/// MariaDB: the pending user gets exactly the current user's grants and TLS requirement, on
/// every rotation (grants change between rotations).
#[tokio::test(flavor = "multi_thread")]
async fn mysql_grants_and_tls_requirement_are_mirrored_on_every_rotation() {
    use mysql_async::prelude::Queryable;
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        ..
    } = stack
        .alternating_user_with_secret(Db::MariaDb, "app", true, Mode::SecretsManager)
        .await
        .app;
    let clone = format!("{user}_clone");
    let account = |name: &str| format!("{}@'%'", rotation::providers::mysql::quote(name, false));
    let table = Stack::unique("mirror");
    stack
        .db_admin_sql(Db::MariaDb, &format!(
            "CREATE TABLE `rotation_test`.`{table}` (x INT); GRANT SELECT ON `rotation_test`.`{table}` TO {}; ALTER USER {} REQUIRE SSL",
            account(&user),
            account(&user)
        ))
        .await;
    let driver = stack.driver(Mode::SecretsManager);

    let grants_of = |name: String| {
        let stack = stack.clone();
        async move {
            let mut session = stack.mysql_admin_session().await;
            let mut grants: Vec<String> = session
                .conn()
                .query(format!(
                    "SHOW GRANTS FOR {}@'%'",
                    rotation::providers::mysql::quote(&name, false)
                ))
                .await
                .unwrap();
            let ssl: Option<String> = session
                .conn()
                .exec_first(
                    "SELECT ssl_type FROM mysql.user WHERE User = ? AND Host = '%'",
                    (name.clone(),),
                )
                .await
                .unwrap();
            grants = grants
                .into_iter()
                .map(|g| {
                    let g = g.replace(&format!("`{name}`@`%`"), "GRANTEE");
                    g.split(" IDENTIFIED BY").next().unwrap().to_owned()
                })
                .collect();
            grants.sort();
            (grants, ssl)
        }
    };

    // Rotation 1 creates the clone with the original's grants and REQUIRE SSL.
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    assert_eq!(
        grants_of(clone.clone()).await,
        grants_of(user.clone()).await
    );
    assert_eq!(grants_of(clone.clone()).await.1.as_deref(), Some("ANY"));
    let Credentials {
        user: current_user,
        password: current,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(current_user, clone);
    let mut session = stack.mysql_login(&clone, &current).await.unwrap();
    let _: Vec<i32> = session
        .conn()
        .query(format!("SELECT x FROM `rotation_test`.`{table}`"))
        .await
        .unwrap();

    // Grants change on the clone (now current); the next rotation mirrors them onto the original,
    // including the removal of a privilege.
    stack
        .db_admin_sql(Db::MariaDb, &format!(
            "GRANT INSERT ON `rotation_test`.`{table}` TO {c}; REVOKE SELECT ON `rotation_test`.`{table}` FROM {c}; REVOKE SELECT ON `rotation_test`.* FROM {c}; ALTER USER {c} REQUIRE NONE",
            c = account(&clone)
        ))
        .await;
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let Credentials {
        user: current_user,
        password: current,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(current_user, user);
    assert_eq!(
        grants_of(user.clone()).await,
        grants_of(clone.clone()).await
    );
    let mut session = stack.mysql_login(&user, &current).await.unwrap();
    session
        .conn()
        .query_drop(format!("INSERT INTO `rotation_test`.`{table}` VALUES (1)"))
        .await
        .unwrap();
    let denied = session
        .conn()
        .query_drop(format!("SELECT x FROM `rotation_test`.`{table}`"))
        .await;
    assert!(
        denied.is_err(),
        "SELECT was revoked from the current user and must not be copied back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_name_too_long_for_its_clone_is_refused_clearly() {
    let stack = Stack::from_env().await;
    // The stack sets USERNAME_CHARACTER_LIMIT=32 (MySQL 8's limit): 30 + "_clone" is too long.
    let user = format!("my{}", "x".repeat(28));
    // A fixed name: a run before this one on the same stack left the user behind.
    stack
        .db_admin_sql(
            Db::MariaDb,
            &format!(
                "DROP USER IF EXISTS {}@'%'",
                rotation::providers::mysql::quote(&user, false)
            ),
        )
        .await;
    let password = stack.create_db_user(Db::MariaDb, &user, Role::App).await;
    let master_arn = stack.master_secret(Db::MariaDb, true).await.arn;
    let mut value = stack.db_secret(Db::MariaDb, &user, &password);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("toolong"), &value, Mode::SecretsManager)
        .await;
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&arn)
        .await
        .unwrap();
    let failure = run.failure().expect("must be refused").to_string();
    assert!(
        failure.contains("field `username`")
            && failure.contains("36 characters")
            && failure.contains("allows 32"),
        "{failure}"
    );
    stack.assert_db_login(Db::MariaDb, &user, &password).await;
}
