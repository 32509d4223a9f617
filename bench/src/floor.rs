//! The floor: the least work a PostgreSQL rotation cannot avoid, timed raw by the bench against
//! the same moto server and the same database, with no Lambda invocation in between.
//!
//! One rotation's floor: DescribeSecret (the protocol's checks), GetSecretValue of AWSCURRENT
//! (and of the master secret, for alternating users), PutSecretValue of the new version as
//! AWSPENDING, one verified-TLS login, one ALTER ROLE sending a SCRAM verifier, one verified-TLS
//! login with the new password, and the two label moves of finishSecret
//! (UpdateSecretVersionStage: AWSCURRENT to the new version, AWSPENDING off it).

use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::password::PasswordPolicy;
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use test_support::{Db, Role, Stack};

/// A secret the floor rotates over and over, and what it knows about it.
pub struct FloorSecret {
    arn: String,
    current_version: String,
    /// The user whose password the secret holds now.
    user: String,
    password: SecretString,
    /// For alternating users: the master secret's ARN, and the other user.
    alternating: Option<(String, String)>,
}

fn sm_error(what: &str, e: impl std::error::Error) -> String {
    format!("floor: {what}: {}", DisplayErrorContext(e))
}

impl FloorSecret {
    /// A single-user secret: the user changes its own password.
    pub async fn single_user(stack: &Stack) -> Result<FloorSecret, String> {
        let user = Stack::unique("bench_floor");
        let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
        let arn = stack
            .create_secret(
                &Stack::unique("bench/floor"),
                &stack.db_secret(Db::Postgres, &user, &password),
            )
            .await;
        FloorSecret::load(stack, arn, user, password, None).await
    }

    /// An alternating-users secret: a master with CREATEROLE sets the other user's password.
    pub async fn alternating(stack: &Stack) -> Result<FloorSecret, String> {
        let master_arn = stack.master_secret(Db::Postgres, false).await.arn;
        let user = Stack::unique("bench_floor_alt");
        let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
        let clone = format!("{user}_clone");
        stack.create_db_user(Db::Postgres, &clone, Role::App).await;
        let mut value = stack.db_secret(Db::Postgres, &user, &password);
        value["masterarn"] = json!(master_arn);
        let arn = stack
            .create_secret(&Stack::unique("bench/floor-alt"), &value)
            .await;
        FloorSecret::load(stack, arn, user, password, Some((master_arn, clone))).await
    }

    async fn load(
        stack: &Stack,
        arn: String,
        user: String,
        password: SecretString,
        alternating: Option<(String, String)>,
    ) -> Result<FloorSecret, String> {
        let current = stack
            .secrets
            .get_secret_value()
            .secret_id(&arn)
            .version_stage(AWSCURRENT)
            .send()
            .await
            .map_err(|e| sm_error("GetSecretValue", e))?;
        Ok(FloorSecret {
            current_version: current.version_id().unwrap_or_default().to_owned(),
            arn,
            user,
            password,
            alternating,
        })
    }

    /// One rotation's floor; returns its wall time.
    pub async fn rotate(
        &mut self,
        stack: &Stack,
        policy: &PasswordPolicy,
    ) -> Result<Duration, String> {
        let sm = &stack.secrets;
        let started = Instant::now();
        sm.describe_secret()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| sm_error("DescribeSecret", e))?;
        let current = read_value(stack, &self.arn).await?;
        let new_password = policy.generate().map_err(|e| e.to_string())?;
        let (admin_user, admin_password, target) = match &self.alternating {
            None => (self.user.clone(), self.password.clone(), self.user.clone()),
            Some((master_arn, other)) => {
                let master = read_value(stack, master_arn).await?;
                (
                    field(&master, "username")?,
                    SecretString::from(field(&master, "password")?),
                    other.clone(),
                )
            }
        };
        let mut pending = current;
        pending["username"] = json!(target);
        pending["password"] = json!(new_password.expose_secret());
        let token = uuid::Uuid::new_v4().to_string();
        sm.put_secret_value()
            .secret_id(&self.arn)
            .client_request_token(&token)
            .secret_string(pending.to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(|e| sm_error("PutSecretValue", e))?;
        let session = stack
            .pg_login(&admin_user, &admin_password)
            .await
            .map_err(|e| format!("floor: login as {admin_user}: {e}"))?;
        let verifier =
            postgres_protocol::password::scram_sha_256(new_password.expose_secret().as_bytes());
        session
            .batch_execute(&format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                escape_identifier(&target),
                escape_literal(&verifier)
            ))
            .await
            .map_err(|e| format!("floor: ALTER ROLE: {e}"))?;
        stack
            .pg_login(&target, &new_password)
            .await
            .map_err(|e| format!("floor: login as {target}: {e}"))?;
        sm.update_secret_version_stage()
            .secret_id(&self.arn)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&token)
            .remove_from_version_id(&self.current_version)
            .send()
            .await
            .map_err(|e| sm_error("UpdateSecretVersionStage", e))?;
        sm.update_secret_version_stage()
            .secret_id(&self.arn)
            .version_stage(AWSPENDING)
            .remove_from_version_id(&token)
            .send()
            .await
            .map_err(|e| sm_error("UpdateSecretVersionStage", e))?;
        let elapsed = started.elapsed();
        if let Some((_, other)) = &mut self.alternating {
            *other = std::mem::replace(&mut self.user, target);
        }
        self.password = new_password;
        self.current_version = token;
        Ok(elapsed)
    }
}

async fn read_value(stack: &Stack, arn: &str) -> Result<Value, String> {
    let out = stack
        .secrets
        .get_secret_value()
        .secret_id(arn)
        .version_stage(AWSCURRENT)
        .send()
        .await
        .map_err(|e| sm_error("GetSecretValue", e))?;
    serde_json::from_str(out.secret_string().unwrap_or_default())
        .map_err(|_| format!("floor: the value of {arn} is not JSON"))
}

fn field(value: &Value, name: &str) -> Result<String, String> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("floor: field `{name}` missing"))
}
