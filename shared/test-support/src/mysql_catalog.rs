//! MariaDB's grant tables seen per account, for catalog diffs: what one account holds, without
//! what names it or changes by itself (its name, its password, who granted what and when).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::Row;
use serde_json::Value;

use crate::Stack;

/// The grant tables holding one row per grant, with the account in `User` and `Host`.
pub const GRANT_TABLES: &[&str] = &[
    "db",
    "tables_priv",
    "columns_priv",
    "procs_priv",
    "proxies_priv",
    "roles_mapping",
];

/// Columns that differ between two accounts holding the same grants.
const NOT_COMPARED: &[&str] = &["User", "Grantor", "Timestamp"];

/// The `mysql.global_priv` keys that differ between two accounts with the same privileges
/// (the password and when it was set).
const PASSWORD_KEYS: &[&str] = &["authentication_string", "password_last_changed"];

/// What MariaDB assumes for a `global_priv` key an account's JSON does not hold.
const GLOBAL_DEFAULTS: &[(&str, &str)] = &[
    ("ssl_type", "0"),
    ("ssl_cipher", "\"\""),
    ("x509_issuer", "\"\""),
    ("x509_subject", "\"\""),
    ("max_questions", "0"),
    ("max_updates", "0"),
    ("max_connections", "0"),
    ("max_user_connections", "0"),
    ("max_statement_time", "0.0"),
    ("account_locked", "false"),
    ("password_lifetime", "-1"),
    ("default_role", "\"\""),
];

/// One account's rows in the grant tables.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountCatalog {
    /// `mysql.global_priv.Priv`, without the password keys, defaults filled in.
    pub global: Option<Value>,
    /// Per grant table, the account's rows (column name and value), sorted.
    pub grants: BTreeMap<String, Vec<Vec<(String, String)>>>,
}

impl AccountCatalog {
    /// Whether the account holds no grant at all (USAGE only, no role, no default role).
    pub fn holds_nothing(&self) -> bool {
        self.grants.values().all(Vec::is_empty)
            && self
                .global
                .as_ref()
                .is_some_and(|g| g["access"] == 0 && g["default_role"] == "")
    }

    /// Whether the account is locked.
    pub fn locked(&self) -> bool {
        self.global
            .as_ref()
            .is_some_and(|g| g["account_locked"] == true)
    }
}

fn cell(row: &Row, index: usize) -> String {
    row.as_ref(index)
        .map(|value| value.as_sql(false))
        .unwrap_or_default()
}

/// Reads `user@host`'s rows in the grant tables, as the stack's administrator.
pub async fn account_catalog(stack: &Stack, user: &str, host: &str) -> AccountCatalog {
    let mut session = stack.mysql_admin_session().await;
    let conn = session.conn();
    let priv_json: Option<String> = conn
        .exec_first(
            "SELECT Priv FROM mysql.global_priv WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await
        .expect("mysql.global_priv");
    let global = priv_json.map(|text| {
        let mut value: Value = serde_json::from_str(&text).expect("global_priv JSON");
        let object = value.as_object_mut().expect("global_priv is an object");
        for key in PASSWORD_KEYS {
            object.remove(*key);
        }
        for (key, default) in GLOBAL_DEFAULTS {
            object
                .entry(*key)
                .or_insert_with(|| serde_json::from_str(default).unwrap());
        }
        value
    });
    let mut grants = BTreeMap::new();
    for table in GRANT_TABLES {
        let rows: Vec<Row> = conn
            .exec(
                format!("SELECT * FROM mysql.{table} WHERE User = ? AND Host = ?"),
                (user, host),
            )
            .await
            .unwrap_or_else(|e| panic!("mysql.{table}: {e}"));
        let mut rows: Vec<Vec<(String, String)>> = rows
            .iter()
            .map(|row| {
                row.columns_ref()
                    .iter()
                    .enumerate()
                    .filter(|(_, column)| !NOT_COMPARED.contains(&column.name_str().as_ref()))
                    .map(|(i, column)| (column.name_str().into_owned(), cell(row, i)))
                    .collect()
            })
            .collect();
        rows.sort();
        grants.insert((*table).to_owned(), rows);
    }
    AccountCatalog { global, grants }
}

/// The hosts `user` has an account on.
pub async fn account_hosts(stack: &Stack, user: &str) -> Vec<String> {
    let mut session = stack.mysql_admin_session().await;
    session
        .conn()
        .exec(
            "SELECT Host FROM mysql.global_priv WHERE User = ? ORDER BY Host",
            (user,),
        )
        .await
        .expect("mysql.global_priv")
}
