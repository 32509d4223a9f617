//! A whole-server catalog snapshot for before-and-after diffs: every row of PostgreSQL's or
//! MariaDB's catalog that says who exists, what they may do and how they log in, so a test can
//! prove a refused or honest rotation changed nothing but what it owns.
//!
//! (`mysql_catalog` is a different view: one MariaDB account's grants, to compare two
//! accounts.)

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;

use crate::{Db, Stack};

/// PostgreSQL's rows, each query giving the key and the rendered value: roles (attributes and
/// a digest of the password verifier), memberships, databases, schemas, relations other than
/// temporary ones (owner, privileges, kind), table privileges, default privileges and
/// per-role settings. Relations and table privileges are those of the admin's database.
const POSTGRES_QUERIES: &[&str] = &[
    "SELECT 'role ' || rolname, concat_ws('|', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, md5(coalesce(rolpassword, ''))) FROM pg_authid",
    "SELECT 'member ' || r.rolname || ' > ' || m.rolname, concat_ws('|', am.admin_option, pg_get_userbyid(am.grantor)) FROM pg_auth_members am JOIN pg_authid r ON r.oid = am.roleid JOIN pg_authid m ON m.oid = am.member",
    "SELECT 'database ' || datname, concat_ws('|', pg_get_userbyid(datdba), datacl::text, datconnlimit) FROM pg_database",
    "SELECT 'schema ' || nspname, concat_ws('|', pg_get_userbyid(nspowner), nspacl::text) FROM pg_namespace",
    "SELECT 'relation ' || relnamespace::regnamespace::text || '.' || relname, concat_ws('|', pg_get_userbyid(relowner), relacl::text, relkind) FROM pg_class WHERE relpersistence <> 't'",
    "SELECT 'table-grant ' || grantee || ' ' || table_schema || '.' || table_name || ' ' || privilege_type, is_grantable FROM information_schema.role_table_grants",
    "SELECT 'default-acl ' || oid::text, concat_ws('|', pg_get_userbyid(defaclrole), defaclacl::text) FROM pg_default_acl",
    "SELECT 'setting ' || setdatabase::text || ' ' || pg_get_userbyid(setrole), setconfig::text FROM pg_db_role_setting",
];

/// MariaDB's rows, each query giving the key and the rendered value: accounts (with their
/// authentication), database, table and column privileges, role grants, and the schemas.
const MARIADB_QUERIES: &[&str] = &[
    "SELECT CONCAT('account ', User, '@', Host), Priv FROM mysql.global_priv",
    "SELECT CONCAT('db-grant ', User, '@', Host, ' ', Db), CONCAT_WS('|', Select_priv, Insert_priv, Update_priv, Delete_priv, Create_priv, Drop_priv, Grant_priv, Alter_priv) FROM mysql.db",
    "SELECT CONCAT('table-grant ', User, '@', Host, ' ', Db, '.', Table_name), CONCAT_WS('|', Table_priv, Column_priv) FROM mysql.tables_priv",
    "SELECT CONCAT('column-grant ', User, '@', Host, ' ', Db, '.', Table_name, '.', Column_name), Column_priv FROM mysql.columns_priv",
    "SELECT CONCAT('role-grant ', User, '@', Host, ' ', Role), Admin_option FROM mysql.roles_mapping",
    "SELECT CONCAT('schema ', SCHEMA_NAME), DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA",
];

/// A server's catalog rows by key (what the row is, e.g. `role alice`, `member app > alice`,
/// `account alice@%`), each rendered as text (a NULL value is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog(BTreeMap<String, String>);

impl Catalog {
    /// The catalog of `db` on the stack's server, read as its admin.
    pub async fn snapshot(stack: &Stack, db: Db) -> Self {
        match db {
            Db::Postgres => Self::postgres(stack).await,
            Db::MariaDb => Self::mariadb(stack).await,
        }
    }

    /// PostgreSQL's catalog: the rows `POSTGRES_QUERIES` reads.
    pub async fn postgres(stack: &Stack) -> Self {
        let admin = stack.admin().await;
        let mut rows = BTreeMap::new();
        for sql in POSTGRES_QUERIES {
            for row in admin.query(*sql, &[]).await.expect(sql) {
                let value: Option<String> = row.get(1);
                rows.insert(row.get(0), value.unwrap_or_default());
            }
        }
        Self(rows)
    }

    /// MariaDB's catalog: the rows `MARIADB_QUERIES` reads.
    pub async fn mariadb(stack: &Stack) -> Self {
        let mut session = stack.mysql_admin_session().await;
        let mut rows = BTreeMap::new();
        for sql in MARIADB_QUERIES {
            let found: Vec<(String, Option<String>)> = session.conn().query(*sql).await.expect(sql);
            for (key, value) in found {
                rows.insert(key, value.unwrap_or_default());
            }
        }
        Self(rows)
    }

    /// Only the rows whose key contains `text` (e.g. a test's name prefix: the rows of its
    /// accounts, their grants and memberships).
    pub fn naming(mut self, text: &str) -> Self {
        self.0.retain(|key, _| key.contains(text));
        self
    }

    /// The keys whose rows differ from `self` (before) to `after`.
    pub fn diff(&self, after: &Catalog) -> Diff {
        let (before, after) = (&self.0, &after.0);
        Diff {
            added: after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .cloned()
                .collect(),
            removed: before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .cloned()
                .collect(),
            changed: before
                .iter()
                .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

/// The keys whose rows differ between two snapshots, each list in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Rows only in the later snapshot.
    pub added: Vec<String>,
    /// Rows only in the earlier snapshot.
    pub removed: Vec<String>,
    /// Rows in both with different values.
    pub changed: Vec<String>,
}

/// The catalog key of `user`'s own row: its PostgreSQL role or its MariaDB account `user@%`.
pub fn account_key(db: Db, user: &str) -> String {
    match db {
        Db::Postgres => format!("role {user}"),
        Db::MariaDb => format!("account {user}@%"),
    }
}
