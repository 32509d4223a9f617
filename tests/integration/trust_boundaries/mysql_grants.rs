//! MySQL alternating users: the pending user is an exact copy of the current user, and
//! nothing more. The proof is a catalog diff of MariaDB's grant tables (`mysql.global_priv`,
//! `db`, `tables_priv`, `columns_priv`, `procs_priv`, `proxies_priv`, `roles_mapping`) between
//! the two accounts after a rotation. MariaDB has roles, default roles, `ACCOUNT LOCK`,
//! `REQUIRE` and resource limits; MySQL 8's partial revokes (which MariaDB lacks) are covered
//! by the unit tests of `rotation::providers::mysql::grants` on MySQL 8's `SHOW GRANTS` lines.

use mysql_async::prelude::Queryable;
use rotation::providers::mysql::{native_password_hash, quote};
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use secrecy::SecretString;
use serde_json::json;
use test_support::mysql_catalog::{account_catalog, account_hosts};
use test_support::{assert_succeeded, Credentials, Db, MasterSecret, Role, Stack};

/// An alternating-users MariaDB secret: the application user, its master (a full secret at the
/// same endpoint), and the master's credentials (for SQL a DBA would run as the master).
struct Alternating {
    arn: String,
    user: String,
    clone: String,
    master: String,
    master_password: SecretString,
}

async fn alternating(stack: &Stack) -> Alternating {
    let MasterSecret {
        arn: master_arn,
        user: master,
        password: master_password,
    } = stack.master_secret(Db::MariaDb, false).await;
    let user = Stack::unique("mygrants");
    let password = stack.create_db_user(Db::MariaDb, &user, Role::App).await;
    let mut value = stack.db_secret(Db::MariaDb, &user, &password);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("grants"), &value, Mode::SecretsManager)
        .await;
    Alternating {
        arn,
        clone: format!("{user}_clone"),
        user,
        master,
        master_password,
    }
}

fn account(user: &str, host: &str) -> String {
    format!("{}@{}", quote(user, false), quote(host, false))
}

/// Runs `sql` as the master (roles are granted by whoever administers them: the master).
async fn as_master(stack: &Stack, setup: &Alternating, sql: &str) {
    let mut session = stack
        .mysql_login(&setup.master, &setup.master_password)
        .await
        .expect("master login");
    session
        .conn()
        .query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Asserts that `a@%` and `b@%` hold exactly the same rows in every grant table.
async fn assert_same_catalog(stack: &Stack, a: &str, b: &str) {
    let left = account_catalog(stack, a, "%").await;
    let right = account_catalog(stack, b, "%").await;
    assert!(left.global.is_some(), "{a} has an account");
    assert_eq!(left, right, "catalog of {a}@% (left) and {b}@% (right)");
}

/// Attack: a pending user that already holds more than the base account (a stale role, a
/// privilege, an account on another host) keeps it through the rotation, and a role the
/// current user loses stays on the other one (the review's M2). After the fix the clone's rows
/// in every grant table equal the base account's, the stray host account is locked and holds
/// nothing, and the next rotation takes away what the current user lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_clone_gets_exactly_the_base_account_and_loses_what_it_loses() {
    let stack = Stack::from_env().await;
    let setup = alternating(&stack).await;
    let (user, clone) = (&setup.user, &setup.clone);
    let table = Stack::unique("grants");
    let reader = Stack::unique("reader");
    let stale = Stack::unique("stale");
    let base = account(user, "%");
    let clone_any = account(clone, "%");
    let clone_stray = account(clone, "10.66.%");
    let stale_hash = native_password_hash(&Stack::password());

    // The base account: database grants (Role::App), column grants, a role as its default
    // role, REQUIRE SSL, resource limits, a password lifetime.
    stack
        .db_admin_sql(
            Db::MariaDb,
            &format!(
                "CREATE TABLE `rotation_test`.`{table}` (a INT, b INT); \
             GRANT UPDATE (a), SELECT (b) ON `rotation_test`.`{table}` TO {base}; \
             ALTER USER {base} REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 1000 MAX_USER_CONNECTIONS 20 \
             MAX_STATEMENT_TIME 30 PASSWORD EXPIRE INTERVAL 90 DAY"
            ),
        )
        .await;
    // The pending user exists already, holding more: a privilege, a role with admin option,
    // and an account on a host the base user has none on.
    as_master(
        &stack,
        &setup,
        &format!(
            "CREATE ROLE `{reader}`; CREATE ROLE `{stale}`; \
             GRANT SELECT ON `rotation_test`.`{table}` TO `{reader}`; \
             GRANT `{reader}` TO {base}; SET DEFAULT ROLE `{reader}` FOR {base}; \
             CREATE USER {clone_any} IDENTIFIED BY PASSWORD '{stale_hash}'; \
             GRANT DROP, ALTER ON `rotation_test`.* TO {clone_any}; \
             GRANT `{stale}` TO {clone_any} WITH ADMIN OPTION; \
             CREATE USER {clone_stray} IDENTIFIED BY PASSWORD '{stale_hash}'; \
             GRANT SELECT ON `rotation_test`.* TO {clone_stray}; GRANT `{stale}` TO {clone_stray}"
        ),
    )
    .await;

    let driver = stack.driver(Mode::SecretsManager);
    assert_succeeded(&driver.rotate(&setup.arn).await.unwrap());
    let Credentials {
        user: current_user,
        password: current,
    } = stack.credentials(&setup.arn, AWSCURRENT).await;
    assert_eq!(&current_user, clone);
    assert_same_catalog(&stack, user, clone).await;
    let stray = account_catalog(&stack, clone, "10.66.%").await;
    assert!(
        stray.locked() && stray.holds_nothing(),
        "the pending account on a host the base user has none on is locked and holds nothing: {stray:?}"
    );
    assert_eq!(account_hosts(&stack, clone).await, ["%", "10.66.%"]);

    // What the clone can do is what the base can: its default role reads the table, the
    // stale DROP is gone.
    let mut session = stack.mysql_login(clone, &current).await.unwrap();
    let role: Option<String> = session
        .conn()
        .query_first("SELECT CURRENT_ROLE()")
        .await
        .unwrap();
    assert_eq!(role.as_deref(), Some(reader.as_str()));
    let _: Vec<(Option<i32>, Option<i32>)> = session
        .conn()
        .query(format!("SELECT a, b FROM `rotation_test`.`{table}`"))
        .await
        .expect("the default role's SELECT");
    let dropped = session
        .conn()
        .query_drop(format!("DROP TABLE `rotation_test`.`{table}`"))
        .await;
    assert!(dropped.is_err(), "the stale DROP privilege must be gone");

    // The current user (the clone) loses the role and gets other limits: the next rotation
    // takes the role away from the base user too.
    as_master(
        &stack,
        &setup,
        &format!(
            "REVOKE `{reader}` FROM {clone_any}; SET DEFAULT ROLE NONE FOR {clone_any}; \
             ALTER USER {clone_any} WITH MAX_QUERIES_PER_HOUR 500"
        ),
    )
    .await;
    assert_succeeded(&driver.rotate(&setup.arn).await.unwrap());
    let current_user = stack.credentials(&setup.arn, AWSCURRENT).await.user;
    assert_eq!(&current_user, user);
    assert_same_catalog(&stack, user, clone).await;
    let base_catalog = account_catalog(&stack, user, "%").await;
    assert!(
        base_catalog.grants["roles_mapping"].is_empty(),
        "the role the current user lost is gone from the base user: {base_catalog:?}"
    );
}

/// Attack: a DBA locks the application's account during an incident; a rotation hands out
/// a working password for its clone (the review's M2: `ACCOUNT LOCK` not mirrored). After the
/// fix the rotation fails, AWSCURRENT stays, and the clone, if the rotation got as far as
/// creating it, is exactly the locked base account: its password logs in nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_account_stays_locked_through_its_clone() {
    let stack = Stack::from_env().await;
    let setup = alternating(&stack).await;
    stack
        .db_admin_sql(
            Db::MariaDb,
            &format!("ALTER USER {} ACCOUNT LOCK", account(&setup.user, "%")),
        )
        .await;
    let before = stack.labels(&setup.arn).await;

    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&setup.arn)
        .await
        .unwrap();
    let failure = run
        .failure()
        .expect("a rotation of a locked account must fail")
        .to_string();
    assert!(failure.contains("locked"), "{failure}");
    assert_eq!(
        rotator::versions::version_with(&stack.labels(&setup.arn).await, AWSCURRENT),
        rotator::versions::version_with(&before, AWSCURRENT),
        "AWSCURRENT stays"
    );
    let after = stack.labels(&setup.arn).await;
    if rotator::versions::version_with(&after, AWSPENDING).is_some() {
        let Credentials {
            user: pending_user,
            password,
        } = stack.credentials(&setup.arn, AWSPENDING).await;
        assert_eq!(pending_user, setup.clone);
        stack
            .assert_db_refused(Db::MariaDb, &setup.clone, &password)
            .await;
    }
    if !account_hosts(&stack, &setup.clone).await.is_empty() {
        assert!(account_catalog(&stack, &setup.clone, "%").await.locked());
        assert_same_catalog(&stack, &setup.user, &setup.clone).await;
    }
}

/// Attack: a server that forces a multibyte client character set (`init_connect` running
/// `SET NAMES gbk`, or `skip-character-set-client-handshake`) re-pairs the bytes of quoted
/// strings, so a backslash escape can be swallowed by a multibyte character (the review's
/// L8). After the fix every session is back on UTF-8 before any quoted SQL is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_forcing_a_multibyte_client_charset_is_put_back_on_utf8() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("mycharset");
    let password = stack.create_db_user(Db::MariaDb, &user, Role::App).await;
    // init_connect runs for accounts without CONNECTION ADMIN (the application user), not for
    // the administrator restoring it.
    stack
        .db_admin_sql(Db::MariaDb, "SET GLOBAL init_connect = 'SET NAMES gbk'")
        .await;
    let charset = async {
        let mut session = stack.mysql_login(&user, &password).await?;
        let charset: Option<String> = session
            .conn()
            .query_first("SELECT @@SESSION.character_set_client")
            .await
            .expect("character_set_client");
        Ok::<_, rotation::RotationError>(charset)
    }
    .await;
    stack
        .db_admin_sql(Db::MariaDb, "SET GLOBAL init_connect = ''")
        .await;
    assert_eq!(charset.unwrap().as_deref(), Some("utf8mb4"));
}
