//! DB instances and clusters in the stack's moto RDS, and the RDS requests the functions made
//! (recorded by scripts/rds-recorder.py).

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{Db, Stack};

/// A DB instance or cluster the test created in moto's RDS.
#[derive(Debug, Clone)]
pub struct RdsResource {
    /// The instance's or cluster's identifier.
    pub id: String,
    /// Its ARN.
    pub arn: String,
}

/// The tag that puts a DB instance or cluster in the test bed's RDS scope
/// (`RdsScopeTagValue`): the functions may describe and modify only those.
pub fn scope_tag() -> aws_sdk_rds::types::Tag {
    aws_sdk_rds::types::Tag::builder()
        .key(crate::template::RDS_SCOPE_TAG)
        .value(crate::template::TEST_BED_RDS_SCOPE)
        .build()
}

impl Stack {
    /// A DB instance in moto whose master user is `master`. Its endpoint
    /// (`*.rds.amazonaws.com`) is sent to the local server of its engine by the stack's
    /// ROTATION_DB_HOST_OVERRIDES.
    pub async fn rds_instance(&self, engine: &str, master: &str) -> RdsResource {
        let id = Self::unique("db").replace('_', "-");
        // moto knows no default MariaDB version: name one it lists.
        let version = (engine == "mariadb").then(|| "10.6".to_owned());
        let out = self
            .rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .engine(engine)
            .set_engine_version(version)
            .db_instance_class("db.t3.micro")
            .master_username(master)
            .master_user_password("placeholder-password")
            .allocated_storage(20)
            .tags(scope_tag())
            .send()
            .await
            .expect("CreateDBInstance");
        let arn = out
            .db_instance()
            .and_then(|i| i.db_instance_arn())
            .expect("instance ARN")
            .to_owned();
        RdsResource { id, arn }
    }

    /// A DB cluster in moto whose master user is `master`.
    pub async fn rds_cluster(&self, engine: &str, master: &str) -> RdsResource {
        let id = Self::unique("cl").replace('_', "-");
        let out = self
            .rds
            .create_db_cluster()
            .db_cluster_identifier(&id)
            .engine(engine)
            .master_username(master)
            .master_user_password("placeholder-password")
            .tags(scope_tag())
            .send()
            .await
            .expect("CreateDBCluster");
        let arn = out
            .db_cluster()
            .and_then(|c| c.db_cluster_arn())
            .expect("cluster ARN")
            .to_owned();
        RdsResource { id, arn }
    }

    /// Tags a DB instance or cluster (by ARN), as an administrator does.
    pub async fn tag_rds_resource(&self, arn: &str, key: &str, value: &str) {
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("AddTagsToResource");
    }

    /// The RDS requests the functions made with `action` (form parameters, one object each).
    pub fn rds_requests(&self, action: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.rds_record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["Action"] == action)
            .collect()
    }

    /// The `action` requests the functions made for the instance or cluster `id`.
    pub fn rds_requests_for(&self, action: &str, id: &str) -> Vec<Value> {
        self.rds_requests(action)
            .into_iter()
            .filter(|c| c["DBInstanceIdentifier"] == id || c["DBClusterIdentifier"] == id)
            .collect()
    }

    /// Makes the RDS recorder take `seconds` to apply the next master password change of the
    /// instance or cluster `id` (its default is the stack's `ROTATION_RDS_APPLY_SECONDS`):
    /// until then DescribeDB* shows it in PendingModifiedValues, as RDS does.
    pub fn rds_apply_seconds(&self, id: &str, seconds: u64) {
        recorder_order(
            "/_recorder/apply-seconds",
            &serde_json::json!({"id": id, "seconds": seconds}),
        );
    }

    /// Makes the recorder refuse, as InvalidClientTokenId, every key CreateAccessKey returns
    /// for the IAM user `user` during its first `seconds`: IAM's propagation delay.
    pub fn iam_propagation_seconds(&self, user: &str, seconds: u64) {
        recorder_order(
            "/_recorder/iam-propagation",
            &serde_json::json!({"user": user, "seconds": seconds}),
        );
    }

    /// When the RDS recorder applied master password changes to the instance or cluster `id`
    /// (seconds since the Unix epoch, in order).
    pub fn rds_applied_at(&self, id: &str) -> Vec<f64> {
        std::fs::read_to_string(&self.rds_record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["Event"] == "applied" && v["id"] == id)
            .filter_map(|v| v["at"].as_f64())
            .collect()
    }

    /// Plays RDS's part after ModifyDB* (moto has no database): sets `user`'s password on the
    /// local server of `db`, sent as a verifier or hash, never in cleartext.
    pub async fn apply_master_password(&self, db: Db, user: &str, password: &SecretString) {
        let sql = match db {
            Db::Postgres => format!(
                "ALTER ROLE {} PASSWORD {}",
                postgres_protocol::escape::escape_identifier(user),
                postgres_protocol::escape::escape_literal(
                    &postgres_protocol::password::scram_sha_256(
                        password.expose_secret().as_bytes()
                    )
                )
            ),
            Db::MariaDb => format!(
                "ALTER USER {}@'%' IDENTIFIED BY PASSWORD '{}'",
                rotation::providers::mysql::quote(user, false),
                rotation::providers::mysql::native_password_hash(password)
            ),
        };
        self.db_admin_sql(db, &sql).await;
    }
}

/// POSTs `order` to the RDS recorder's control `path` (scripts/rds-recorder.py).
fn recorder_order(path: &str, order: &Value) {
    use std::io::{Read, Write};
    let endpoint = std::env::var("ROTATION_RDS_ENDPOINT").expect("ROTATION_RDS_ENDPOINT");
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = order.to_string();
    let mut stream = std::net::TcpStream::connect(address).expect("the RDS recorder");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("writing to the RDS recorder");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("reading the RDS recorder's answer");
    assert!(
        answer.starts_with("HTTP/1.0 204") || answer.starts_with("HTTP/1.1 204"),
        "{answer}"
    );
}
