//! User names and database names with quotes, backslashes, semicolons and unicode, names at
//! and over the engines' limits, and passwords with every character the exclusion list allows,
//! against the stack's real PostgreSQL and MariaDB: each rotation is correct or refused with an
//! error naming the field, and the catalog before and after differs only in the rows the
//! rotation owns (the rotated user's password, the alternate user it creates).

use std::collections::BTreeMap;

use integration_tests::stack::{record_secret, MYSQL_DATABASE};
use integration_tests::{assert_succeeded, Db, Role, Stack};
use mysql_async::prelude::Queryable;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::password::PUNCTUATION;
use rotation::providers::mysql;
use rotator::driver::Functions;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

/// Catalog rows by key (what the row is), rendered.
type Catalog = BTreeMap<String, String>;

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

/// PostgreSQL's catalog: roles (attributes and a digest of the password verifier),
/// memberships, databases, schemas, relations (owner and privileges), default privileges and
/// per-role settings.
async fn pg_catalog(stack: &Stack) -> Catalog {
    let admin = stack.admin().await;
    let queries = [
        "SELECT 'role ' || rolname, concat_ws('|', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, md5(coalesce(rolpassword, ''))) FROM pg_authid",
        "SELECT 'member ' || r.rolname || ' > ' || m.rolname, concat_ws('|', am.admin_option, pg_get_userbyid(am.grantor)) FROM pg_auth_members am JOIN pg_authid r ON r.oid = am.roleid JOIN pg_authid m ON m.oid = am.member",
        "SELECT 'database ' || datname, concat_ws('|', pg_get_userbyid(datdba), datacl::text, datconnlimit) FROM pg_database",
        "SELECT 'schema ' || nspname, concat_ws('|', pg_get_userbyid(nspowner), nspacl::text) FROM pg_namespace",
        "SELECT 'relation ' || relnamespace::regnamespace::text || '.' || relname, concat_ws('|', pg_get_userbyid(relowner), relacl::text, relkind) FROM pg_class WHERE relpersistence <> 't'",
        "SELECT 'default-acl ' || oid::text, concat_ws('|', pg_get_userbyid(defaclrole), defaclacl::text) FROM pg_default_acl",
        "SELECT 'setting ' || setdatabase::text || ' ' || pg_get_userbyid(setrole), setconfig::text FROM pg_db_role_setting",
    ];
    let mut catalog = Catalog::new();
    for sql in queries {
        for row in admin.query(sql, &[]).await.expect(sql) {
            let value: Option<String> = row.get(1);
            catalog.insert(row.get(0), value.unwrap_or_default());
        }
    }
    catalog
}

/// MariaDB's catalog: accounts (with their authentication), database, table and column
/// privileges, role grants, and the schemas.
async fn mysql_catalog(stack: &Stack) -> Catalog {
    let (admin, password) = stack.mysql_admin();
    let mut session = stack.mysql_login(&admin, &password).await.expect("admin");
    let queries = [
        "SELECT CONCAT('account ', User, '@', Host), Priv FROM mysql.global_priv",
        "SELECT CONCAT('db-grant ', User, '@', Host, ' ', Db), CONCAT_WS('|', Select_priv, Insert_priv, Update_priv, Delete_priv, Create_priv, Drop_priv, Grant_priv, Alter_priv) FROM mysql.db",
        "SELECT CONCAT('table-grant ', User, '@', Host, ' ', Db, '.', Table_name), CONCAT_WS('|', Table_priv, Column_priv) FROM mysql.tables_priv",
        "SELECT CONCAT('column-grant ', User, '@', Host, ' ', Db, '.', Table_name, '.', Column_name), Column_priv FROM mysql.columns_priv",
        "SELECT CONCAT('role-grant ', User, '@', Host, ' ', Role), Admin_option FROM mysql.roles_mapping",
        "SELECT CONCAT('schema ', SCHEMA_NAME), DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA",
    ];
    let mut catalog = Catalog::new();
    for sql in queries {
        let rows: Vec<(String, Option<String>)> = session.conn().query(sql).await.expect(sql);
        for (key, value) in rows {
            catalog.insert(key, value.unwrap_or_default());
        }
    }
    catalog
}

async fn catalog(stack: &Stack, db: Db) -> Catalog {
    match db {
        Db::Postgres => pg_catalog(stack).await,
        Db::MariaDb => mysql_catalog(stack).await,
    }
}

/// The keys whose rows differ: changed, added, removed.
fn diff(before: &Catalog, after: &Catalog) -> (Vec<String>, Vec<String>, Vec<String>) {
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let added = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    (changed, added, removed)
}

/// The catalog key of `user`'s account row.
fn account_key(db: Db, user: &str) -> String {
    match db {
        Db::Postgres => format!("role {user}"),
        Db::MariaDb => format!("account {user}@%"),
    }
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
                .admin_sql(&format!(
                    "CREATE ROLE {} WITH LOGIN PASSWORD {}",
                    escape_identifier(user),
                    escape_literal(&verifier)
                ))
                .await;
            stack
                .admin_sql(&format!("CREATE DATABASE {}", escape_identifier(dbname)))
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
                .mysql_admin_sql(&format!(
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
        .create_rotating_secret(&Stack::unique("hostile"), &value, Functions::Rotate)
        .await;

    let before = catalog(stack, db).await;
    let driver = stack.driver(Functions::Rotate);
    for _ in 0..2 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let after = catalog(stack, db).await;
    let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
    assert_eq!(current_user, user, "{db:?}: the name survives as written");
    assert_eq!(
        stack.value(&arn, "AWSCURRENT").await["dbname"],
        json!(dbname)
    );
    stack.assert_db_login(db, &user, &current).await;
    stack.assert_db_refused(db, &user, &password).await;
    let (changed, added, removed) = diff(&before, &after);
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
    let (master_arn, _, _) = stack.master_secret(db, false).await;
    let user = unique(&format!("{}a'\"\\;ü", db.prefix()));
    let original = stack.create_db_user(db, &user, Role::App).await;
    let mut value = stack.db_secret(db, &user, &original);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("hostilealt"), &value, Functions::Rotate)
        .await;

    let before = catalog(stack, db).await;
    assert_succeeded(&stack.driver(Functions::Rotate).rotate(&arn).await.unwrap());
    let after = catalog(stack, db).await;
    let clone = format!("{user}_clone");
    let (current_user, current) = stack.credentials(&arn, "AWSCURRENT").await;
    assert_eq!(current_user, clone);
    stack.assert_db_login(db, &clone, &current).await;
    stack.assert_db_login(db, &user, &original).await;
    let (changed, added, removed) = diff(&before, &after);
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
        let (master_arn, _, _) = stack.master_secret(db, false).await;
        value["masterarn"] = json!(master_arn);
    }
    let arn = stack
        .create_rotating_secret(&Stack::unique("toolong"), &value, Functions::Rotate)
        .await;
    let before = catalog(stack, db).await;
    let run = stack.driver(Functions::Rotate).rotate(&arn).await.unwrap();
    let failure = run.failure().expect("refused").to_string();
    assert_eq!(
        run.failure().unwrap().error_type(),
        Some("InvalidSecret"),
        "{failure}"
    );
    assert!(failure.contains("createSecret"), "{failure}");
    assert!(failure.contains("field `username`"), "{failure}");
    assert!(failure.contains(needle), "{failure} should say {needle}");
    assert_eq!(catalog(stack, db).await, before, "{db:?}: nothing changed");
    stack.assert_db_login(db, user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_hostile_names_rotate_or_are_refused_and_change_nothing_else() {
    let stack = Stack::from_env().await;
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
    let stack = Stack::from_env().await;
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
