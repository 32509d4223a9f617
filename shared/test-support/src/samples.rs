//! The secrets the sample events in `events/` name. `local-rotation seed` prepares them for
//! invoking steps by hand with `cargo lambda invoke` (docs/local-stack.md); the integration
//! tests prepare them the same way before sending every sample event.

use postgres_protocol::escape::escape_identifier;
use rotation::providers::mysql;
use rotation::Mode;
use rotation::Step;

use crate::{Db, Role, Stack, TestUser};

/// A secret that a folder of sample events names.
#[derive(Debug, Clone, Copy)]
pub struct SampleSecret {
    /// The secret's name: the events' `SecretId`.
    pub name: &'static str,
    /// Its user on the database server.
    pub user: &'static str,
    /// The database server.
    pub db: Db,
    /// The mode the events' functions serve.
    pub mode: Mode,
    /// The events' ClientRequestToken. In Secrets Manager mode the seed leaves AWSPENDING
    /// waiting under it, as RotateSecret does; in workflow mode createSecret creates it.
    pub token: &'static str,
    /// The folder of its events, relative to `events/` (empty: `events/` itself).
    pub events: &'static str,
}

impl SampleSecret {
    /// The sample event of `step` for this secret, relative to the workspace's root.
    pub fn event_file(&self, step: Step) -> String {
        let folder = match self.events {
            "" => "events".to_owned(),
            folder => format!("events/{folder}"),
        };
        format!("{folder}/{}.json", step.function_name())
    }
}

/// `rotation/postgres/app`: PostgreSQL, Secrets Manager mode, events in `events/rotate/`.
pub const POSTGRES_APP: SampleSecret = SampleSecret {
    name: "rotation/postgres/app",
    user: "app_local",
    db: Db::Postgres,
    mode: Mode::SecretsManager,
    token: "00000000-0000-4000-8000-000000000001",
    events: "rotate",
};

/// `rotation/postgres/app-workflow`: PostgreSQL, workflow mode, events in `events/`.
pub const POSTGRES_WORKFLOW: SampleSecret = SampleSecret {
    name: "rotation/postgres/app-workflow",
    user: "app_local_workflow",
    db: Db::Postgres,
    mode: Mode::Workflow,
    token: "00000000-0000-4000-8000-000000000002",
    events: "",
};

/// `rotation/mysql/app`: MariaDB, Secrets Manager mode, events in `events/mysql/`.
pub const MYSQL_APP: SampleSecret = SampleSecret {
    name: "rotation/mysql/app",
    user: "app_local",
    db: Db::MariaDb,
    mode: Mode::SecretsManager,
    token: "00000000-0000-4000-8000-000000000003",
    events: "mysql",
};

/// Every secret the sample events name.
pub const SAMPLE_SECRETS: [SampleSecret; 3] = [POSTGRES_APP, POSTGRES_WORKFLOW, MYSQL_APP];

impl Stack {
    /// (Re)creates `sample`'s user, with a new random password, and its secret, configured as
    /// its events expect.
    pub async fn seed_sample(&self, sample: &SampleSecret) -> TestUser {
        self.delete_secret(sample.name).await;
        let drop_user = match sample.db {
            Db::Postgres => format!("DROP ROLE IF EXISTS {}", escape_identifier(sample.user)),
            Db::MariaDb => format!(
                "DROP USER IF EXISTS {}@'%'",
                mysql::quote(sample.user, false)
            ),
        };
        self.db_admin_sql(sample.db, &drop_user).await;
        let password = self.create_db_user(sample.db, sample.user, Role::App).await;
        let value = self.db_secret(sample.db, sample.user, &password);
        let secret_arn = match sample.mode {
            Mode::SecretsManager => {
                let arn = self.create_secret(sample.name, &value).await;
                self.enable_rotation_with_token(&arn, Some(sample.token))
                    .await;
                arn
            }
            Mode::Workflow => {
                self.create_rotating_secret(sample.name, &value, sample.mode)
                    .await
            }
        };
        TestUser {
            secret_arn,
            user: sample.user.to_owned(),
            password,
        }
    }
}
