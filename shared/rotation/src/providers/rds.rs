//! Amazon RDS: endpoint discovery from `dbInstanceIdentifier` / `dbClusterIdentifier`, the
//! endpoint of an RDS-managed master secret (found through its `aws:rds:*` tags), and master
//! password changes through the RDS API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::database_secret::{DatabaseSecret, DISCOVERED};
use super::StepContext;
use crate::deadline::Backoff;
use crate::error::{Result, RotationError};

/// Tag RDS puts on a master secret it manages for a DB instance.
pub const TAG_PRIMARY_INSTANCE: &str = "aws:rds:primarydbinstancearn";
/// Tag RDS puts on a master secret it manages for a DB cluster.
pub const TAG_PRIMARY_CLUSTER: &str = "aws:rds:primarydbclusterarn";

fn rds_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> RotationError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RotationError::Rds {
        operation,
        message: rotation_keyring::aws_error::message(&err),
    }
}

/// What RDS says about where a database listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The writer endpoint's host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The engine, in the secret's vocabulary (postgres, mysql, ...).
    pub engine: Option<String>,
    /// The instance or cluster status.
    pub status: Option<String>,
    /// The master user's name.
    pub master_username: Option<String>,
    /// The instance's or cluster's tags (DescribeDB* TagList).
    pub tags: HashMap<String, String>,
    /// Whether a master password change is still being applied (`PendingModifiedValues`
    /// holds `MasterUserPassword`).
    pub master_password_pending: bool,
}

impl Discovered {
    /// Whether RDS has applied every master password change: none pending and the status
    /// `available` (right after ModifyDB* the status still reads `available` while the change
    /// is pending, so the status alone proves nothing).
    pub fn master_password_applied(&self) -> bool {
        !self.master_password_pending && self.status.as_deref() == Some("available")
    }
}

/// An RDS TagList as a map.
fn tag_map(tags: &[aws_sdk_rds::types::Tag]) -> HashMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// Maps RDS engine names to the secret's `engine` values.
fn secret_engine(rds_engine: &str) -> String {
    match rds_engine {
        "aurora" => "aurora-mysql".to_owned(),
        other => other.to_owned(),
    }
}

/// The identifier in an RDS ARN (`arn:aws:rds:region:account:db:NAME` or `...:cluster:NAME`),
/// or the input when it is not an ARN.
pub fn identifier_of(arn_or_id: &str) -> &str {
    if arn_or_id.starts_with("arn:") {
        arn_or_id.rsplit(':').next().unwrap_or(arn_or_id)
    } else {
        arn_or_id
    }
}

/// DescribeDBInstances for one instance.
pub async fn describe_instance(ctx: &StepContext<'_>, id: &str) -> Result<Discovered> {
    let client = aws_sdk_rds::Client::new(ctx.aws);
    let out = client
        .describe_db_instances()
        .db_instance_identifier(identifier_of(id))
        .send()
        .await
        .map_err(|e| rds_error("DescribeDBInstances", e))?;
    let instance = out
        .db_instances()
        .first()
        .ok_or_else(|| RotationError::Rds {
            operation: "DescribeDBInstances",
            message: format!("no DB instance {id}"),
        })?;
    let endpoint = instance.endpoint().ok_or_else(|| RotationError::Rds {
        operation: "DescribeDBInstances",
        message: format!("DB instance {id} has no endpoint yet"),
    })?;
    Ok(Discovered {
        host: endpoint.address().unwrap_or_default().to_owned(),
        port: endpoint
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default(),
        engine: instance.engine().map(secret_engine),
        status: instance.db_instance_status().map(str::to_owned),
        master_username: instance.master_username().map(str::to_owned),
        tags: tag_map(instance.tag_list()),
        master_password_pending: instance
            .pending_modified_values()
            .and_then(|p| p.master_user_password())
            .is_some(),
    })
}

/// DescribeDBClusters for one cluster: its writer endpoint.
pub async fn describe_cluster(ctx: &StepContext<'_>, id: &str) -> Result<Discovered> {
    let client = aws_sdk_rds::Client::new(ctx.aws);
    let out = client
        .describe_db_clusters()
        .db_cluster_identifier(identifier_of(id))
        .send()
        .await
        .map_err(|e| rds_error("DescribeDBClusters", e))?;
    let cluster = out
        .db_clusters()
        .first()
        .ok_or_else(|| RotationError::Rds {
            operation: "DescribeDBClusters",
            message: format!("no DB cluster {id}"),
        })?;
    Ok(Discovered {
        host: cluster.endpoint().unwrap_or_default().to_owned(),
        port: cluster
            .port()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default(),
        engine: cluster.engine().map(secret_engine),
        status: cluster.status().map(str::to_owned),
        master_username: cluster.master_username().map(str::to_owned),
        tags: tag_map(cluster.tag_list()),
        master_password_pending: cluster
            .pending_modified_values()
            .and_then(|p| p.master_user_password())
            .is_some(),
    })
}

/// A secret that names an RDS instance or cluster but no `host` gets host, port and (when
/// absent) engine from RDS. The discovered values are used for this step only; the secret's
/// versions keep what the user wrote.
pub async fn with_discovered_endpoint(
    ctx: &StepContext<'_>,
    mut fields: Map<String, Value>,
    version: &str,
) -> Result<Map<String, Value>> {
    let reader = super::secret_fields(&fields, &ctx.secret.arn, version);
    if reader.optional_str("host")?.is_some() {
        return Ok(fields);
    }
    let discovered = match (
        reader.optional_str("dbClusterIdentifier")?,
        reader.optional_str("dbInstanceIdentifier")?,
    ) {
        (Some(cluster), _) => describe_cluster(ctx, cluster).await?,
        (None, Some(instance)) => describe_instance(ctx, instance).await?,
        (None, None) => return Ok(fields),
    };
    if discovered.host.is_empty() {
        return Err(RotationError::Rds {
            operation: "Describe",
            message: "RDS answered without an endpoint address".into(),
        });
    }
    tracing::debug!(host = %discovered.host, port = discovered.port, "endpoint discovered through RDS");
    let mut added = vec![Value::from("host")];
    fields.insert("host".into(), Value::String(discovered.host));
    if !fields.contains_key("port") && discovered.port > 0 {
        fields.insert("port".into(), Value::from(discovered.port));
        added.push(Value::from("port"));
    }
    if let (false, Some(engine)) = (fields.contains_key("engine"), discovered.engine) {
        fields.insert("engine".into(), Value::String(engine));
        added.push(Value::from("engine"));
    }
    fields.insert(DISCOVERED.into(), Value::Array(added));
    Ok(fields)
}

/// The endpoint of an RDS-managed master secret (one that holds only username and password),
/// from the instance or cluster its `aws:rds:primary*arn` tag names. None when the secret has
/// no such tag.
pub async fn managed_master_endpoint(
    ctx: &StepContext<'_>,
    masterarn: &str,
) -> Result<Option<(String, u16)>> {
    let master = ctx.secrets_manager.describe(masterarn).await?;
    let discovered = if let Some(cluster) = master.tags.get(TAG_PRIMARY_CLUSTER) {
        describe_cluster(ctx, cluster).await?
    } else if let Some(instance) = master.tags.get(TAG_PRIMARY_INSTANCE) {
        describe_instance(ctx, instance).await?
    } else {
        return Ok(None);
    };
    Ok(Some((discovered.host, discovered.port)))
}

/// The DB resource whose master password an `rds-master` secret rotates: its
/// `dbClusterIdentifier` when it names one, else its `dbInstanceIdentifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterTarget<'a> {
    /// A DB cluster (ModifyDBCluster).
    Cluster(&'a str),
    /// A DB instance (ModifyDBInstance).
    Instance(&'a str),
}

impl<'a> MasterTarget<'a> {
    /// The target `secret` names, or an error naming the missing field.
    pub fn of(ctx: &StepContext<'_>, secret: &'a DatabaseSecret) -> Result<Self> {
        match (
            secret.db_cluster_identifier.as_deref(),
            secret.db_instance_identifier.as_deref(),
        ) {
            (Some(cluster), _) => Ok(MasterTarget::Cluster(cluster)),
            (None, Some(instance)) => Ok(MasterTarget::Instance(instance)),
            (None, None) => Err(RotationError::invalid_secret(
                &ctx.secret.arn,
                crate::secrets_manager::AWSCURRENT,
                "field `dbInstanceIdentifier` is missing: the rds-master strategy needs dbInstanceIdentifier or dbClusterIdentifier",
            )),
        }
    }

    /// "DB cluster NAME" or "DB instance NAME", for messages.
    pub fn display(&self) -> String {
        match self {
            MasterTarget::Cluster(id) => format!("DB cluster {}", identifier_of(id)),
            MasterTarget::Instance(id) => format!("DB instance {}", identifier_of(id)),
        }
    }

    /// What RDS says about the target (DescribeDBClusters / DescribeDBInstances).
    pub async fn describe(&self, ctx: &StepContext<'_>) -> Result<Discovered> {
        match self {
            MasterTarget::Cluster(id) => describe_cluster(ctx, id).await,
            MasterTarget::Instance(id) => describe_instance(ctx, id).await,
        }
    }
}

/// Changes the master user's password through ModifyDBCluster / ModifyDBInstance
/// (ApplyImmediately), then waits until RDS has applied it ([`wait_until_applied`]). A change
/// still pending from an earlier attempt of this step (a retry after a timeout) is waited for,
/// not sent again: sending it again would restart RDS's work. The caller proves first that the
/// secret owns the target ([`super::rds_master`]).
pub async fn set_master_password(
    ctx: &StepContext<'_>,
    target: MasterTarget<'_>,
    password: &SecretString,
) -> Result<()> {
    if target.describe(ctx).await?.master_password_pending {
        tracing::info!(
            target = %target.display(),
            "a master password change is still pending from an earlier attempt: waiting for it instead of sending another"
        );
        return wait_until_applied(ctx, target).await;
    }
    let client = aws_sdk_rds::Client::new(ctx.aws);
    match target {
        MasterTarget::Cluster(cluster) => {
            client
                .modify_db_cluster()
                .db_cluster_identifier(identifier_of(cluster))
                .master_user_password(password.expose_secret())
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| rds_error("ModifyDBCluster", e))?;
        }
        MasterTarget::Instance(instance) => {
            client
                .modify_db_instance()
                .db_instance_identifier(identifier_of(instance))
                .master_user_password(password.expose_secret())
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| rds_error("ModifyDBInstance", e))?;
        }
    }
    tracing::info!(target = %target.display(), "master password change sent to RDS");
    wait_until_applied(ctx, target).await
}

/// The longest pause between two DescribeDB* calls while waiting.
const POLL_MAX: Duration = Duration::from_secs(5);
/// What one DescribeDB* call may take at the end of a wait: no pause lasts past this much
/// before the wait's end, and no poll starts later.
const POLL_ALLOWANCE: Duration = Duration::from_secs(2);

/// Waits until RDS reports the master password applied ([`Discovered::master_password_applied`]),
/// polling DescribeDB* (1 s, doubling to 5 s between calls). The wait ends at
/// `ROTATION_RDS_WAIT_SECONDS` or before the invocation's deadline (less the reserve for
/// reporting the outcome), whichever comes first; it never sleeps past that, and then fails
/// with a `Timeout` naming the resource and what RDS still reported.
pub async fn wait_until_applied(ctx: &StepContext<'_>, target: MasterTarget<'_>) -> Result<()> {
    let started = Instant::now();
    let end = ctx.wait_end(ctx.config.rds_wait);
    let mut backoff = Backoff::new(Duration::from_secs(1), POLL_MAX, end, POLL_ALLOWANCE);
    let mut polls = 0u32;
    loop {
        let seen = match tokio::time::timeout_at(end.into(), target.describe(ctx)).await {
            Ok(seen) => Some(seen?),
            Err(_) => None,
        };
        polls += 1;
        if let Some(seen) = &seen {
            if seen.master_password_applied() {
                tracing::info!(
                    target = %target.display(),
                    waited_ms = started.elapsed().as_millis(),
                    polls,
                    "RDS applied the master password"
                );
                return Ok(());
            }
        }
        if seen.is_none() || !backoff.has_time() {
            let state = match &seen {
                None => "RDS did not answer DescribeDB* in time".to_owned(),
                Some(seen) => format!(
                    "RDS still reports status {}{}",
                    seen.status.as_deref().unwrap_or("(none)"),
                    if seen.master_password_pending {
                        " with MasterUserPassword in PendingModifiedValues"
                    } else {
                        ""
                    }
                ),
            };
            return Err(RotationError::Timeout {
                what: format!(
                    "waiting for RDS to apply the master password of {}",
                    target.display()
                ),
                detail: format!(
                    "{state} after {} ms and {polls} DescribeDB* calls; the wait is bounded by {} ({} s) and by the invocation's deadline; running setSecret again waits for the pending change without sending another",
                    started.elapsed().as_millis(),
                    crate::config::ENV_RDS_WAIT,
                    ctx.config.rds_wait.as_secs()
                ),
            });
        }
        backoff.pause().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_come_out_of_arns() {
        assert_eq!(identifier_of("arn:aws:rds:us-east-1:1:db:main"), "main");
        assert_eq!(identifier_of("arn:aws:rds:us-east-1:1:cluster:c1"), "c1");
        assert_eq!(identifier_of("main"), "main");
        assert_eq!(secret_engine("aurora"), "aurora-mysql");
        assert_eq!(secret_engine("aurora-postgresql"), "aurora-postgresql");
    }

    #[test]
    fn a_master_password_is_applied_only_when_nothing_is_pending_and_the_status_is_available() {
        let seen = |status: &str, pending: bool| Discovered {
            host: "h".into(),
            port: 5432,
            engine: None,
            status: Some(status.into()),
            master_username: None,
            tags: HashMap::new(),
            master_password_pending: pending,
        };
        assert!(seen("available", false).master_password_applied());
        // Right after ModifyDB*: still `available`, the change pending.
        assert!(!seen("available", true).master_password_applied());
        assert!(!seen("resetting-master-credentials", true).master_password_applied());
        assert!(!seen("resetting-master-credentials", false).master_password_applied());
        assert!(!seen("modifying", false).master_password_applied());
    }
}
