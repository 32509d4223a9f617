//! User names and database names with quotes, backslashes, semicolons and unicode, names at
//! and over the engines' limits, and passwords with every character the exclusion list allows,
//! against the stack's real PostgreSQL and MariaDB: each rotation is correct or refused with an
//! error naming the field, and the catalog before and after differs only in the rows the
//! rotation owns (the rotated user's password, the alternate user it creates).

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::password::PUNCTUATION;
use rotation::providers::mysql;
use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use test_support::catalog::{account_key, Catalog, Diff};
use test_support::stack::{record_secret, MYSQL_DATABASE};
use test_support::{assert_succeeded, Credentials, Db, Role, Stack};

/// A password holding every letter, digit and punctuation character (the stack's functions
/// exclude only `§`, which is in no class), and a random tail so each is unique.
fn every_character_password() -> SecretString {
    let mut text: String = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    text.push_str(PUNCTUATION);
    text.push_str(&uuid::Uuid::new_v4().simple().to_string());
    let password = SecretString::from(text);
    record_secret(&password);
    password
}

/// A name no other test uses: `prefix`, then 8 random hex digits.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Creates a database named `name` the application user `user` may use, and `user` with
/// `password`.
async fn create_user_and_database(
    stack: &Stack,
    db: Db,
    user: &str,
    dbname: &str,
    password: &SecretString,
) {
    match db {
        Db::Postgres => {
            let verifier =
                postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
            stack
                .db_admin_sql(
                    Db::Postgres,
                    &format!(
                        "CREATE ROLE {} WITH LOGIN PASSWORD {}",
                        escape_identifier(user),
                        escape_literal(&verifier)
                    ),
                )
                .await;
            stack
                .db_admin_sql(
                    Db::Postgres,
                    &format!("CREATE DATABASE {}", escape_identifier(dbname)),
                )
                .await;
        }
        Db::MariaDb => {
            let account = format!("{}@'%'", mysql::quote(user, false));
            let schema = format!("`{}`", dbname.replace('`', "``"));
            // In GRANT the database name is a pattern: `\`, `_` and `%` are escaped.
            let pattern = format!(
                "`{}`",
                dbname
                    .replace('`', "``")
                    .replace('\\', "\\\\")
                    .replace('_', "\\_")
                    .replace('%', "\\%")
            );
            stack
                .db_admin_sql(Db::MariaDb, &format!(
                    "CREATE USER {account} IDENTIFIED BY PASSWORD '{}'; CREATE DATABASE {schema}; GRANT SELECT ON {pattern}.* TO {account}; GRANT SELECT ON `{MYSQL_DATABASE}`.* TO {account}",
                    mysql::native_password_hash(password)
                ))
                .await;
        }
    }
}

/// Single-user rotation of a user whose name and database name hold quotes, a backslash, a
/// semicolon and unicode, from a password with every allowed character: only the user's own
/// password changes in the catalog.
async fn single_user_with_hostile_names(stack: &Stack, db: Db) {
    let user = unique(&format!("{}o'q\"\\;é名", db.prefix()));
    let dbname = unique("d'b\"\\;-- ü");
    let password = every_character_password();
    create_user_and_database(stack, db, &user, &dbname, &password).await;
    stack.assert_db_login(db, &user, &password).await;
    let mut value = stack.db_secret(db, &user, &password);
    value["dbname"] = json!(dbname);
    let arn = stack
        .create_rotating_secret(&Stack::unique("hostile"), &value, Mode::SecretsManager)
        .await;

    let before = Catalog::snapshot(stack, db).await;
    let driver = stack.driver(Mode::SecretsManager);
    for _ in 0..2 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let after = Catalog::snapshot(stack, db).await;
    let Credentials {
        user: current_user,
        password: current,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(current_user, user, "{db:?}: the name survives as written");
    assert_eq!(stack.value(&arn, AWSCURRENT).await["dbname"], json!(dbname));
    stack.assert_db_login(db, &user, &current).await;
    stack.assert_db_refused(db, &user, &password).await;
    let Diff {
        changed,
        added,
        removed,
    } = before.diff(&after);
    assert_eq!(
        changed,
        vec![account_key(db, &user)],
        "{db:?}: only the password changed"
    );
    assert!(added.is_empty(), "{db:?}: rows added: {added:?}");
    assert!(removed.is_empty(), "{db:?}: rows removed: {removed:?}");
}

/// Alternating users with a hostile name: the rotation creates `<name>_clone` and every row it
/// adds names the clone; nothing else changes.
async fn alternating_with_hostile_names(stack: &Stack, db: Db) {
    let master_arn = stack.master_secret(db, false).await.arn;
    let user = unique(&format!("{}a'\"\\;ü", db.prefix()));
    let original = stack.create_db_user(db, &user, Role::App).await;
    let mut value = stack.db_secret(db, &user, &original);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("hostilealt"), &value, Mode::SecretsManager)
        .await;

    let before = Catalog::snapshot(stack, db).await;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let after = Catalog::snapshot(stack, db).await;
    let clone = format!("{user}_clone");
    let Credentials {
        user: current_user,
        password: current,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(current_user, clone);
    stack.assert_db_login(db, &clone, &current).await;
    stack.assert_db_login(db, &user, &original).await;
    let Diff {
        changed,
        added,
        removed,
    } = before.diff(&after);
    assert!(changed.is_empty(), "{db:?}: rows changed: {changed:?}");
    assert!(removed.is_empty(), "{db:?}: rows removed: {removed:?}");
    assert!(
        added.contains(&account_key(db, &clone)),
        "{db:?}: {added:?}"
    );
    for key in &added {
        assert!(key.contains(&clone), "{db:?}: the rotation added {key:?}");
    }
}

/// A secret whose rotation needs a user name over the engine's limit is refused at
/// createSecret, naming the field and the limit; the catalog does not change and the current
/// password still works.
async fn refused_over_the_limit(
    stack: &Stack,
    db: Db,
    user: &str,
    alternating: bool,
    needle: &str,
) {
    let original = stack.create_db_user(db, user, Role::App).await;
    let mut value = stack.db_secret(db, user, &original);
    if alternating {
        let master_arn = stack.master_secret(db, false).await.arn;
        value["masterarn"] = json!(master_arn);
    }
    let arn = stack
        .create_rotating_secret(&Stack::unique("toolong"), &value, Mode::SecretsManager)
        .await;
    let before = Catalog::snapshot(stack, db).await;
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&arn)
        .await
        .unwrap();
    let failure = run.failure().expect("refused").to_string();
    assert_eq!(
        run.failure().unwrap().error_type(),
        Some("InvalidSecret"),
        "{failure}"
    );
    assert!(failure.contains("createSecret"), "{failure}");
    assert!(failure.contains("field `username`"), "{failure}");
    assert!(failure.contains(needle), "{failure} should say {needle}");
    assert_eq!(
        Catalog::snapshot(stack, db).await,
        before,
        "{db:?}: nothing changed"
    );
    stack.assert_db_login(db, user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_hostile_names_rotate_or_are_refused_and_change_nothing_else() {
    let stack = Stack::exclusive().await;
    single_user_with_hostile_names(&stack, Db::Postgres).await;
    alternating_with_hostile_names(&stack, Db::Postgres).await;

    // 63 bytes is PostgreSQL's limit: such a user rotates alone, but its clone would be 69.
    let at_limit = format!("{}{}", unique("pglimit"), "x".repeat(63 - 15));
    assert_eq!(at_limit.len(), 63);
    refused_over_the_limit(
        &stack,
        Db::Postgres,
        &at_limit,
        true,
        "is 69 bytes; postgres allows 63",
    )
    .await;
    // 30 two-byte characters: 60 bytes alone, 66 bytes with `_clone` (PostgreSQL would
    // truncate the name silently; the limit counts bytes, not characters).
    let unicode = format!("{}{}", unique("pgü"), "é".repeat(25));
    assert!(
        unicode.chars().count() < 63 && unicode.len() + 6 > 63,
        "{}",
        unicode.len()
    );
    let needle = format!("is {} bytes; postgres allows 63", unicode.len() + 6);
    refused_over_the_limit(&stack, Db::Postgres, &unicode, true, &needle).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_hostile_names_rotate_or_are_refused_and_change_nothing_else() {
    let stack = Stack::exclusive().await;
    single_user_with_hostile_names(&stack, Db::MariaDb).await;
    alternating_with_hostile_names(&stack, Db::MariaDb).await;

    // The stack's USERNAME_CHARACTER_LIMIT is 32: a 27-character user's clone would be 33.
    let user = format!("{}{}", unique("my'ü"), "x".repeat(27 - 12));
    assert_eq!(user.chars().count(), 27);
    refused_over_the_limit(
        &stack,
        Db::MariaDb,
        &user,
        true,
        "is 33 characters; mysql allows 32",
    )
    .await;
}
