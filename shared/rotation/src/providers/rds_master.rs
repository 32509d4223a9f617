//! The proof that an `rds-master` secret owns the DB instance or cluster it names, made in
//! setSecret before the master password is changed through the RDS API: a writer of the secret
//! must not be able to reset another database's master password.
//!
//! The proof is a login: the secret's current password logs in as the master user RDS names
//! for that instance or cluster, at the endpoint RDS gives for it (never at a `host` the secret
//! names). Only when that login is refused as a wrong user name or password (the password was
//! changed outside rotation, or lost) may an administrator's tag on the DB resource bind it to
//! the secret instead: [`TAG_SECRET_ARN`] = the secret's ARN. A network or TLS failure is no
//! reason to fall back to the tag: the step fails and is retried.

use super::database::{Database, Who};
use super::database_secret::{DatabaseSecret, Endpoint};
use super::rds::{Discovered, MasterTarget};
use super::StepContext;
use crate::error::{Credential, Result, RotationError};
use crate::secrets_manager::AWSCURRENT;

/// The tag on a DB instance or cluster that names the ARN of the one secret allowed to change
/// its master password without proving the current one.
pub const TAG_SECRET_ARN: &str = "rotation-secret-arn";

/// Whether RDS's master user is the secret's user, or a refusal naming both (user names are
/// not secret).
fn check_master_user(
    secret_arn: &str,
    target: &MasterTarget<'_>,
    discovered: &Discovered,
    username: &str,
) -> Result<()> {
    match discovered.master_username.as_deref() {
        Some(master) if master == username => Ok(()),
        master => Err(RotationError::invalid_secret(
            secret_arn,
            AWSCURRENT,
            format!(
                "field `username`: {username:?} is not the master user of {} (RDS names {}); the rds-master strategy changes only the master user's password; refusing to change it",
                target.display(),
                master.map_or_else(|| "none".to_owned(), |m| format!("{m:?}"))
            ),
        )),
    }
}

/// Whether the resource's tags bind it to `secret_arn`.
fn tagged_for(discovered: &Discovered, secret_arn: &str) -> bool {
    discovered.tags.get(TAG_SECRET_ARN).map(String::as_str) == Some(secret_arn)
}

/// Proves that `current` (an `rds-master` secret's AWSCURRENT version) owns the instance or
/// cluster it names, and returns that target for the RDS call. Refuses, before any RDS change,
/// a user that is not RDS's master user, and a password that does not log in unless the tag
/// binds the resource to this secret.
pub async fn prove_owner<'a, D: Database>(
    ctx: &StepContext<'_>,
    current: &'a DatabaseSecret,
) -> Result<MasterTarget<'a>> {
    let arn = &ctx.secret.arn;
    let target = MasterTarget::of(ctx, current)?;
    let discovered = target.describe(ctx).await?;
    check_master_user(arn, &target, &discovered, &current.username)?;
    if discovered.host.is_empty() {
        return Err(RotationError::Rds {
            operation: "Describe",
            message: format!("{} has no endpoint address yet", target.display()),
        });
    }
    let endpoint = ctx.config.endpoint_for(Endpoint {
        host: discovered.host.clone(),
        port: if discovered.port > 0 {
            discovered.port
        } else {
            current.port
        },
        ..Endpoint::of(current)
    });
    let who = Who {
        credential: Credential::Current,
        user: current.username.clone(),
        endpoint: endpoint.display(),
    };
    match D::connect(ctx, &endpoint, &who, &current.password).await {
        Ok(_) => Ok(target),
        Err(e) if e.is_authentication_failure() && tagged_for(&discovered, arn) => {
            ctx.warn(format!(
                "the current password does not log in as the master user of {}; its tag {TAG_SECRET_ARN} names this secret, so its master password is reset through RDS",
                target.display()
            ));
            Ok(target)
        }
        Err(e) if e.is_authentication_failure() => Err(RotationError::invalid_secret(
            arn,
            AWSCURRENT,
            format!(
                "the current password must log in as the master user of {} before its master password is changed (or the resource's tag {TAG_SECRET_ARN} must name this secret); refusing to change it: {e}",
                target.display()
            ),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn discovered(master: Option<&str>, tag: Option<&str>) -> Discovered {
        Discovered {
            host: "db.example.rds.amazonaws.com".into(),
            port: 5432,
            engine: Some("postgres".into()),
            status: Some("available".into()),
            master_username: master.map(str::to_owned),
            tags: tag
                .map(|t| HashMap::from([(TAG_SECRET_ARN.to_owned(), t.to_owned())]))
                .unwrap_or_default(),
            master_password_pending: false,
        }
    }

    #[test]
    fn only_the_master_user_rds_names_may_be_rotated() {
        let target = MasterTarget::Instance("prod");
        check_master_user("s", &target, &discovered(Some("admin"), None), "admin").unwrap();
        for (master, user) in [
            (Some("admin"), "app"),
            (Some("admin"), "Admin"),
            (None, "admin"),
        ] {
            let err = check_master_user("s", &target, &discovered(master, None), user)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("field `username`") && err.contains("DB instance prod"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_tag_must_name_exactly_this_secret() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:m-AbCdEf";
        assert!(tagged_for(&discovered(None, Some(arn)), arn));
        assert!(!tagged_for(&discovered(None, None), arn));
        assert!(!tagged_for(
            &discovered(
                None,
                Some("arn:aws:secretsmanager:us-east-1:1:secret:other-XyZ123")
            ),
            arn
        ));
        assert!(!tagged_for(&discovered(None, Some("")), arn));
    }
}
