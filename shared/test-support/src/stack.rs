//! Handles on the running local stack, read from the variables `scripts/stack.sh env` prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::error::Credential;
use rotation::mode::{Mode, MODE_TAG};
use rotation::password::PasswordPolicy;
use rotation::providers::database::Who;
use rotation::providers::database_secret::{Endpoint, TlsMode};
use rotation::providers::mysql;
use rotation::providers::postgres::connect;
use rotation::secrets_manager::{AWSCURRENT, AWSPREVIOUS};
use rotation::tls::ClientConfig;
use rotation::RotationError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use rotator::driver::LocalDriver;
use rotator::invoke::LambdaInvoker;
use rotator::versions::{labels, Labels};

use crate::fixtures::{AlternatingUser, Credentials, MasterSecret, TestUser};
use crate::template::{TEST_BED_MASTER_PREFIX, TEST_BED_SECRET_PREFIX};

/// The MariaDB database the stack creates for the tests.
pub const MYSQL_DATABASE: &str = "rotation_test";

/// The database servers of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// PostgreSQL.
    Postgres,
    /// MariaDB (the `mysql` provider).
    MariaDb,
}

impl Db {
    /// Both servers.
    pub const ALL: [Db; 2] = [Db::Postgres, Db::MariaDb];

    /// A short prefix for user names.
    pub fn prefix(self) -> &'static str {
        match self {
            Db::Postgres => "pg",
            Db::MariaDb => "my",
        }
    }
}

/// What a test user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An application user.
    App,
    /// A master user that can create users and grant privileges.
    Master,
    /// An application user the server admits only over TLS.
    TlsOnly,
}

/// Panics with the failing statement.
trait UnwrapOrUnwind {
    fn unwrap_or_unwind(self, sql: &str);
}

impl<E: std::fmt::Display> UnwrapOrUnwind for Result<(), E> {
    fn unwrap_or_unwind(self, sql: &str) {
        if let Err(e) = self {
            panic!("admin SQL failed: {e}: {sql}");
        }
    }
}

/// The ARN moto's RotateSecret is given: no such function exists in moto, see [`Stack::enable_rotation`].
pub const ROTATION_LAMBDA_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the tests need the local stack. Run them with scripts/test.sh, \
             or start it with `scripts/stack.sh up` and `source <(scripts/stack.sh env)`"
        )
    })
}

/// The running local stack.
#[derive(Clone)]
pub struct Stack {
    /// The AWS configuration pointing at moto.
    pub aws: aws_config::SdkConfig,
    /// moto's Secrets Manager.
    pub secrets: SecretsClient,
    /// moto's IAM.
    pub iam: aws_sdk_iam::Client,
    /// The Lambda Invoke API endpoint of `cargo lambda watch`.
    pub lambda_endpoint: String,
    /// PostgreSQL host.
    pub pg_host: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    admin_user: String,
    admin_password: SecretString,
    /// The functions' log (everything `cargo lambda watch` printed).
    pub lambda_log: PathBuf,
    /// The PostgreSQL server log (log_statement = all).
    pub pg_log: PathBuf,
    /// MariaDB host.
    pub mysql_host: String,
    /// MariaDB port.
    pub mysql_port: u16,
    mysql_admin_user: String,
    mysql_admin_password: SecretString,
    /// The MariaDB general query log.
    pub mysql_log: PathBuf,
    /// The stack's test CA file.
    pub ca_file: PathBuf,
    /// moto's RDS.
    pub rds: aws_sdk_rds::Client,
    /// The RDS requests the functions made, one JSON object per line (scripts/rds-recorder.py).
    pub rds_record: PathBuf,
    /// TLS trusting the stack's test CA (what the functions get through ROTATION_DB_CA_FILE).
    pub tls: Arc<ClientConfig>,
    /// This test's hold on the stack: shared by every ordinary test, whole for a test that
    /// compares the databases' entire catalogs before and after (see [`Stack::exclusive`]).
    _hold: Arc<Hold>,
}

/// The integration tests are one binary whose tests run in parallel; a test that diffs a whole
/// server's catalog must not see the users another test creates meanwhile.
static STACK_USE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A guard on [`STACK_USE`], held for as long as a test keeps its [`Stack`].
enum Hold {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Whole(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

impl Stack {
    /// Reads the stack's variables; panics with a hint when the stack is not running. The test
    /// shares the stack with the tests running beside it.
    pub async fn from_env() -> Self {
        Self::with_hold(Hold::Shared(STACK_USE.read().await)).await
    }

    /// [`Stack::from_env`] for a test that needs the servers to itself: it waits until the tests
    /// running now are done, and no other test starts until it drops its `Stack`. For tests that
    /// compare a whole catalog before and after.
    pub async fn exclusive() -> Self {
        Self::with_hold(Hold::Whole(STACK_USE.write().await)).await
    }

    async fn with_hold(hold: Hold) -> Self {
        let aws = aws_config::load_from_env().await;
        let ca = PathBuf::from(env("ROTATION_DB_CA_FILE"));
        for admin in [
            "ROTATION_PG_ADMIN_PASSWORD",
            "ROTATION_MYSQL_ADMIN_PASSWORD",
        ] {
            record_secret(&SecretString::from(env(admin)));
        }
        Stack {
            secrets: SecretsClient::new(&aws),
            iam: aws_sdk_iam::Client::new(&aws),
            lambda_endpoint: env("ROTATION_LAMBDA_ENDPOINT"),
            pg_host: env("ROTATION_PG_HOST"),
            pg_port: env("ROTATION_PG_PORT").parse().expect("ROTATION_PG_PORT"),
            admin_user: env("ROTATION_PG_ADMIN_USER"),
            admin_password: SecretString::from(env("ROTATION_PG_ADMIN_PASSWORD")),
            lambda_log: PathBuf::from(env("ROTATION_LAMBDA_LOG")),
            pg_log: PathBuf::from(env("ROTATION_PG_LOG")),
            mysql_host: env("ROTATION_MYSQL_HOST"),
            mysql_port: env("ROTATION_MYSQL_PORT")
                .parse()
                .expect("ROTATION_MYSQL_PORT"),
            mysql_admin_user: env("ROTATION_MYSQL_ADMIN_USER"),
            mysql_admin_password: SecretString::from(env("ROTATION_MYSQL_ADMIN_PASSWORD")),
            mysql_log: PathBuf::from(env("ROTATION_MYSQL_LOG")),
            tls: rotation::tls::client_config(Some(&ca)).expect("the stack's CA file"),
            ca_file: ca,
            rds: aws_sdk_rds::Client::new(&aws),
            rds_record: PathBuf::from(env("ROTATION_RDS_RECORD")),
            aws,
            _hold: Arc::new(hold),
        }
    }

    /// A driver invoking `functions`.
    pub fn driver(&self, functions: Mode) -> LocalDriver {
        let invoker = LambdaInvoker::new(&self.lambda_endpoint, Duration::from_secs(180))
            .expect("HTTP client");
        LocalDriver::new(invoker, self.secrets.clone(), functions)
    }

    /// A name no other test uses: `prefix` and a random suffix.
    pub fn unique(prefix: &str) -> String {
        format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        )
    }

    /// A random password from the functions' default policy (recorded, see [`record_secret`]).
    pub fn password() -> SecretString {
        let password = PasswordPolicy::default().generate().expect("password");
        record_secret(&password);
        password
    }

    /// A fresh RotationToken for [`LocalDriver::rotate_with`] (recorded, see [`record_secret`]).
    pub fn rotation_token() -> SecretString {
        let token = SecretString::from(format!("rotation-token-{}", uuid::Uuid::new_v4()));
        record_secret(&token);
        token
    }

    /// The endpoint of one of the stack's database servers.
    pub fn db_endpoint(&self, db: Db, tls: TlsMode) -> Endpoint {
        match db {
            Db::Postgres => Endpoint {
                host: self.pg_host.clone(),
                port: self.pg_port,
                dbname: Some("postgres".into()),
                tls,
            },
            Db::MariaDb => Endpoint {
                host: self.mysql_host.clone(),
                port: self.mysql_port,
                dbname: Some(MYSQL_DATABASE.into()),
                tls,
            },
        }
    }

    /// Logs in to PostgreSQL over verified TLS and returns the session.
    pub async fn pg_login(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<tokio_postgres::Client, RotationError> {
        connect(
            &self.tls,
            Duration::from_secs(10),
            &self.db_endpoint(Db::Postgres, TlsMode::Verified),
            user,
            password,
            Credential::Current,
        )
        .await
    }

    /// Logs in to MariaDB over verified TLS and returns the session.
    pub async fn mysql_login(
        &self,
        user: &str,
        password: &SecretString,
    ) -> Result<mysql::Session, RotationError> {
        let who = Who {
            credential: Credential::Current,
            user: user.to_owned(),
            endpoint: format!("{}:{}", self.mysql_host, self.mysql_port),
        };
        mysql::connect(
            Some(&self.ca_file),
            Duration::from_secs(10),
            &self.db_endpoint(Db::MariaDb, TlsMode::Verified),
            &who,
            password,
        )
        .await
    }

    /// Logs in to MariaDB as its administrator.
    pub async fn mysql_admin_session(&self) -> mysql::Session {
        self.mysql_login(&self.mysql_admin_user, &self.mysql_admin_password)
            .await
            .expect("MariaDB admin login")
    }

    /// Runs SQL as the administrator of `db`; panics with the statement when it fails.
    pub async fn db_admin_sql(&self, db: Db, sql: &str) {
        match db {
            Db::Postgres => self
                .admin()
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_unwind(sql),
            Db::MariaDb => {
                use mysql_async::prelude::Queryable;
                let mut session = self.mysql_admin_session().await;
                session.conn().query_drop(sql).await.unwrap_or_unwind(sql);
            }
        }
    }

    /// Creates a user of `db` with a random password (sent as a hash or verifier, never in
    /// cleartext, so the server's logs never hold it) and returns the password.
    pub async fn create_db_user(&self, db: Db, name: &str, role: Role) -> SecretString {
        match db {
            Db::Postgres => {
                let options = match role {
                    Role::App => "",
                    Role::Master => "CREATEROLE",
                    Role::TlsOnly => "IN ROLE tls_required",
                };
                let password = Self::password();
                let verifier =
                    postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
                self.db_admin_sql(
                    db,
                    &format!(
                        "CREATE ROLE {} WITH LOGIN {options} PASSWORD {}",
                        escape_identifier(name),
                        escape_literal(&verifier)
                    ),
                )
                .await;
                password
            }
            Db::MariaDb => {
                let password = Self::password();
                let account = format!("{}@'%'", mysql::quote(name, false));
                let hash = mysql::native_password_hash(&password);
                let mut sql = format!("CREATE USER {account} IDENTIFIED BY PASSWORD '{hash}'");
                if role == Role::TlsOnly {
                    sql.push_str(" REQUIRE SSL");
                }
                sql.push_str(&match role {
                    Role::Master => format!("; GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION"),
                    Role::App | Role::TlsOnly => {
                        format!("; GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `{MYSQL_DATABASE}`.* TO {account}")
                    }
                });
                self.db_admin_sql(db, &sql).await;
                password
            }
        }
    }

    /// Tries to log in to `db` over verified TLS.
    pub async fn db_login(
        &self,
        db: Db,
        user: &str,
        password: &SecretString,
    ) -> Result<(), RotationError> {
        match db {
            Db::Postgres => self.pg_login(user, password).await.map(|_| ()),
            Db::MariaDb => self.mysql_login(user, password).await.map(|_| ()),
        }
    }

    /// Asserts that `user` logs in to `db` with `password`.
    pub async fn assert_db_login(&self, db: Db, user: &str, password: &SecretString) {
        if let Err(e) = self.db_login(db, user, password).await {
            panic!("{db:?}: {user} should log in: {e}");
        }
    }

    /// Asserts that `db` refuses `password` for `user` (authentication, not a network error).
    pub async fn assert_db_refused(&self, db: Db, user: &str, password: &SecretString) {
        match self.db_login(db, user, password).await {
            Ok(()) => panic!("{db:?}: {user} logged in with a password that must no longer work"),
            Err(e) => assert!(
                e.is_authentication_failure(),
                "{db:?}: {user}: expected an authentication failure, got {e}"
            ),
        }
    }

    /// The JSON of a secret for `user` on the stack's `db` server.
    pub fn db_secret(&self, db: Db, user: &str, password: &SecretString) -> Value {
        match db {
            Db::Postgres => json!({
                "engine": "postgres",
                "host": self.pg_host,
                "port": self.pg_port,
                "username": user,
                "password": password.expose_secret(),
                "dbname": "postgres",
            }),
            Db::MariaDb => json!({
                "engine": "mariadb",
                "host": self.mysql_host,
                "port": self.mysql_port,
                "username": user,
                "password": password.expose_secret(),
                "dbname": MYSQL_DATABASE,
            }),
        }
    }

    /// An application user of `db` and its secret ([`Stack::db_secret`]), configured for the
    /// mode `functions` serve.
    pub async fn db_user_with_secret(&self, db: Db, prefix: &str, functions: Mode) -> TestUser {
        self.db_user_with_secret_value(db, prefix, functions, |user, password| {
            self.db_secret(db, user, password)
        })
        .await
    }

    /// An application user of `db` (named from `prefix`) and its secret, configured for the mode
    /// `functions` serve, holding what `value` makes of the user's name and password: a secret
    /// that reaches the server through a proxy, or names an RDS identifier instead of a host.
    pub async fn db_user_with_secret_value(
        &self,
        db: Db,
        prefix: &str,
        functions: Mode,
        value: impl FnOnce(&str, &SecretString) -> Value,
    ) -> TestUser {
        let user = Self::unique(&format!("{}{prefix}", db.prefix()));
        let password = self.create_db_user(db, &user, Role::App).await;
        let secret_arn = self
            .create_rotating_secret(&Self::unique(prefix), &value(&user, &password), functions)
            .await;
        TestUser {
            secret_arn,
            user,
            password,
        }
    }

    /// An alternating-users application user of `db` (named from `prefix`) and its secret,
    /// configured for the mode `functions` serve, naming a new master secret
    /// ([`Stack::master_secret`], RDS-managed with `rds_managed`) as its `masterarn`.
    pub async fn alternating_user_with_secret(
        &self,
        db: Db,
        prefix: &str,
        rds_managed: bool,
        functions: Mode,
    ) -> AlternatingUser {
        let master = self.master_secret(db, rds_managed).await;
        let app = self
            .db_user_with_secret_value(db, prefix, functions, |user, password| {
                let mut value = self.db_secret(db, user, password);
                value["masterarn"] = json!(master.arn);
                value
            })
            .await;
        AlternatingUser { app, master }
    }

    /// A unique name for a master secret: under [`TEST_BED_MASTER_PREFIX`], where the test
    /// bed's `MasterSecretNamePattern` lets set-secret and rotate read it.
    pub fn master_secret_name(prefix: &str) -> String {
        format!("{TEST_BED_MASTER_PREFIX}{}", Self::unique(prefix))
    }

    /// A master user of `db` (CREATEROLE, or all privileges with grant option) and its secret.
    /// With `rds_managed` the secret is what RDS manages: only username and password, tagged
    /// `aws:rds:primarydbinstancearn` with a DB instance in moto whose endpoint the stack's
    /// ROTATION_DB_HOST_OVERRIDES sends to `db` (the functions find the master through the
    /// tag, as on AWS).
    pub async fn master_secret(&self, db: Db, rds_managed: bool) -> MasterSecret {
        let master = Self::unique(&format!("{}master", db.prefix()));
        let password = self.create_db_user(db, &master, Role::Master).await;
        let arn = if rds_managed {
            let value = json!({"username": master, "password": password.expose_secret()});
            let engine = match db {
                Db::Postgres => "postgres",
                Db::MariaDb => "mariadb",
            };
            let instance = self.rds_instance(engine, &master).await;
            self.create_tagged_secret(
                &Self::master_secret_name("master"),
                &value,
                &[("aws:rds:primarydbinstancearn", &instance.arn)],
            )
            .await
        } else {
            let value = self.db_secret(db, &master, &password);
            self.create_secret(&Self::master_secret_name("master"), &value)
                .await
        };
        MasterSecret {
            arn,
            user: master,
            password,
        }
    }

    /// Logs in as the cluster's superuser.
    pub async fn admin(&self) -> tokio_postgres::Client {
        connect(
            &self.tls,
            Duration::from_secs(10),
            &self.db_endpoint(Db::Postgres, TlsMode::Verified),
            &self.admin_user,
            &self.admin_password,
            Credential::Master,
        )
        .await
        .expect("admin login")
    }

    /// Deletes a secret at once, if it exists.
    pub async fn delete_secret(&self, secret_id: &str) {
        let _ = self
            .secrets
            .delete_secret()
            .secret_id(secret_id)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }

    /// The name a test's secret gets: `name` under the prefix the test bed deploys the
    /// template with ([`TEST_BED_SECRET_PREFIX`]), unless `name` already names a folder (a
    /// master secret under [`TEST_BED_MASTER_PREFIX`], or a secret a test puts outside on
    /// purpose).
    pub fn secret_name(name: &str) -> String {
        if name.contains('/') {
            name.to_owned()
        } else {
            format!("{TEST_BED_SECRET_PREFIX}{name}")
        }
    }

    /// Creates a secret in Secrets Manager and returns its ARN (named by [`Stack::secret_name`]).
    pub async fn create_secret(&self, name: &str, value: &Value) -> String {
        record_value(value);
        let out = self
            .secrets
            .create_secret()
            .name(Self::secret_name(name))
            .secret_string(value.to_string())
            .send()
            .await
            .expect("CreateSecret");
        out.arn().expect("ARN").to_owned()
    }

    /// Encrypts a secret with the customer managed KMS key `key` from now on (UpdateSecret's
    /// KmsKeyId: no new version). moto stores the key without using it; the policy gate checks
    /// the KMS call Secrets Manager would make with it.
    pub async fn encrypt_with(&self, secret_id: &str, key: &str) {
        self.secrets
            .update_secret()
            .secret_id(secret_id)
            .kms_key_id(key)
            .send()
            .await
            .expect("UpdateSecret KmsKeyId");
    }

    /// Creates a secret with tags (Secrets Manager mode, rotation not yet enabled).
    pub async fn create_tagged_secret(
        &self,
        name: &str,
        value: &Value,
        tags: &[(&str, &str)],
    ) -> String {
        record_value(value);
        let mut request = self
            .secrets
            .create_secret()
            .name(Self::secret_name(name))
            .secret_string(value.to_string());
        for (key, tag_value) in tags {
            request = request.tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(*key)
                    .value(*tag_value)
                    .build(),
            );
        }
        request
            .send()
            .await
            .expect("CreateSecret")
            .arn()
            .expect("ARN")
            .to_owned()
    }

    /// Turns rotation on the way Secrets Manager's RotateSecret does.
    ///
    /// moto's RotateSecret enables rotation, labels a new empty version AWSPENDING (exactly what
    /// Secrets Manager does before invoking the function), then tries to invoke the function in
    /// its own Lambda service, where it does not exist: that last part fails with
    /// ResourceNotFoundException, which is expected here. The driver then resumes the pending
    /// version, as Secrets Manager's own invocation would.
    pub async fn enable_rotation(&self, secret_id: &str) {
        self.enable_rotation_with_token(secret_id, None).await
    }

    /// [`Stack::enable_rotation`], naming the pending version's id (the ClientRequestToken).
    pub async fn enable_rotation_with_token(&self, secret_id: &str, token: Option<&str>) {
        let result = self
            .secrets
            .rotate_secret()
            .secret_id(secret_id)
            .set_client_request_token(token.map(str::to_owned))
            .rotation_lambda_arn(ROTATION_LAMBDA_ARN)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => panic!(
                "RotateSecret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ),
        }
    }

    /// Creates a secret configured for the mode `functions` serve: Secrets Manager mode
    /// (rotation enabled) for `rotate`, workflow mode (tag `rotation-mode=workflow`, Secrets
    /// Manager's rotation off) for the step functions. Returns its ARN.
    pub async fn create_rotating_secret(
        &self,
        name: &str,
        value: &Value,
        functions: Mode,
    ) -> String {
        match functions {
            Mode::SecretsManager => {
                let arn = self.create_secret(name, value).await;
                self.enable_rotation(&arn).await;
                arn
            }
            Mode::Workflow => self
                .secrets
                .create_secret()
                .name(Self::secret_name(name))
                .secret_string(value.to_string())
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(MODE_TAG)
                        .value(Mode::Workflow.as_str())
                        .build(),
                )
                .send()
                .await
                .expect("CreateSecret")
                .arn()
                .expect("ARN")
                .to_owned(),
        }
    }

    /// Tags a secret with `key` = `value` (TagResource with the stack's own credentials).
    pub async fn tag_secret(&self, secret_id: &str, key: &str, value: &str) {
        self.secrets
            .tag_resource()
            .secret_id(secret_id)
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("TagResource");
    }

    /// The labelled versions of a secret.
    pub async fn labels(&self, secret_id: &str) -> Labels {
        labels(&self.secrets, secret_id).await.expect("labels")
    }

    /// The value of the version with `stage`, parsed.
    pub async fn value(&self, secret_id: &str, stage: &str) -> Value {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
            .await
            .expect("GetSecretValue");
        let value = serde_json::from_str(out.secret_string().expect("string")).expect("JSON");
        record_value(&value);
        value
    }

    /// Username and password of the version with `stage`.
    pub async fn credentials(&self, secret_id: &str, stage: &str) -> Credentials {
        let value = self.value(secret_id, stage).await;
        Credentials {
            user: value["username"].as_str().expect("username").to_owned(),
            password: SecretString::from(value["password"].as_str().expect("password").to_owned()),
        }
    }

    /// Asserts that what the version with `stage` holds logs in to `db`.
    pub async fn assert_stage_logs_in(&self, db: Db, secret_id: &str, stage: &str) {
        let Credentials { user, password } = self.credentials(secret_id, stage).await;
        self.assert_db_login(db, &user, &password).await;
    }

    /// The value of every version of the secret (labelled or not), parsed, for searching logs.
    pub async fn all_values(&self, secret_id: &str) -> Vec<Value> {
        let out = self
            .secrets
            .list_secret_version_ids()
            .secret_id(secret_id)
            .include_deprecated(true)
            .send()
            .await
            .expect("ListSecretVersionIds");
        let mut values = Vec::new();
        for version in out.versions() {
            let Some(id) = version.version_id() else {
                continue;
            };
            if let Ok(v) = self
                .secrets
                .get_secret_value()
                .secret_id(secret_id)
                .version_id(id)
                .send()
                .await
            {
                if let Some(value) = v
                    .secret_string()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                {
                    record_value(&value);
                    values.push(value);
                }
            }
        }
        values
    }

    /// Every password any version of the secret ever held, for searching logs.
    pub async fn all_passwords(&self, secret_id: &str) -> Vec<SecretString> {
        self.all_values(secret_id)
            .await
            .iter()
            .filter_map(|v| v["password"].as_str())
            .map(|p| SecretString::from(p.to_owned()))
            .collect()
    }
}

/// Appends a secret the tests used (a password, a secret access key, key material, a
/// RotationToken) to the stack's record `ROTATION_SECRETS_RECORD`, one JSON string per line, so
/// that `scan-logs` can search every log of the run for it afterwards. Does nothing when the
/// variable is unset.
pub fn record_secret(secret: &SecretString) {
    use std::io::Write as _;
    let Ok(path) = std::env::var("ROTATION_SECRETS_RECORD") else {
        return;
    };
    let line = format!("{}\n", Value::String(secret.expose_secret().to_owned()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Err(e) = file.and_then(|mut f| f.write_all(line.as_bytes())) {
        panic!("cannot append to the secrets record {path}: {e}");
    }
}

/// Records every secret a secret value holds: `password`, the secret access key and each
/// key's `material` (see [`record_secret`]).
pub fn record_value(value: &Value) {
    for secret in secrets_in(value) {
        record_secret(&secret);
    }
}

/// The secrets a secret value holds: `password`, the secret access key (either spelling) and
/// each key's `material`.
pub fn secrets_in(value: &Value) -> Vec<SecretString> {
    let keys = value["keys"].as_array().into_iter().flatten();
    ["password", "SecretAccessKey", "secretAccessKey"]
        .iter()
        .map(|field| &value[*field])
        .chain(keys.map(|key| &key["material"]))
        .filter_map(Value::as_str)
        .map(|secret| SecretString::from(secret.to_owned()))
        .collect()
}

/// Panics with the driver's table unless every step of the rotation succeeded.
pub fn assert_succeeded(run: &rotator::driver::RotationRun) {
    assert!(
        run.succeeded(),
        "rotation failed:\n{}",
        rotator::driver::render_run(run)
    );
}

/// Asserts the labels a finished rotation leaves: the token AWSCURRENT, the version that was
/// current before AWSPREVIOUS, and nothing else labelled (AWSPENDING gone).
pub fn assert_finished_labels(labels: &Labels, token: &str, previous: &str) {
    let expected: Labels = [
        (token.to_owned(), vec![AWSCURRENT.to_owned()]),
        (previous.to_owned(), vec![AWSPREVIOUS.to_owned()]),
    ]
    .into();
    assert_eq!(labels, &expected, "labels after the rotation");
}
