//! Alternating users: the writer of one application secret (who knows only its own user's
//! password) rewrites AWSCURRENT to make the master act on something else. Each attack runs on
//! PostgreSQL and MariaDB where it applies, through the real functions, and checks that the
//! rotation is refused with an error naming the rule and that nothing changed: every other
//! password still works, the catalog (roles, memberships, grants, password verifiers) of the
//! test's accounts is the same, the writer's own server saw no connection from the master, and
//! the secret holds no working credential for any user but its own.

use postgres_protocol::escape::escape_identifier;
use rotation::providers::database_secret::TlsMode;
use rotation::providers::mysql;
use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use rotator::driver::RotationRun;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use test_support::attacker::WriterServer;
use test_support::catalog::Catalog;
use test_support::stack::record_value;
use test_support::{assert_succeeded, Credentials, Db, Role, Stack};

/// A user of the test (its name starts with the test's prefix) and its password.
struct Account {
    name: String,
    password: SecretString,
}

/// One attack's world on `db`: a master user with its secret (with host), the writer's
/// application user `app` with its alternating-users secret, and another application's user
/// `payments` with its own secret. Every name starts with `prefix`.
struct World {
    db: Db,
    prefix: String,
    master: Account,
    master_arn: String,
    app: Account,
    app_arn: String,
    payments: Account,
}

impl World {
    /// The world; with `master_tls_only` the server admits the master only over TLS.
    async fn new(stack: &Stack, db: Db, master_tls_only: bool) -> Self {
        let prefix = Stack::unique("t");
        let master_name = format!("{prefix}_master");
        let master_password = stack.create_db_user(db, &master_name, Role::Master).await;
        if master_tls_only {
            let sql = match db {
                Db::Postgres => {
                    format!("GRANT tls_required TO {}", escape_identifier(&master_name))
                }
                Db::MariaDb => format!(
                    "ALTER USER {}@'%' REQUIRE SSL",
                    mysql::quote(&master_name, false)
                ),
            };
            stack.db_admin_sql(db, &sql).await;
        }
        let master_arn = stack
            .create_secret(
                &Stack::unique("tbmaster"),
                &stack.db_secret(db, &master_name, &master_password),
            )
            .await;
        let user = |name: &str| format!("{prefix}_{name}");
        let app = Account {
            name: user("app"),
            password: stack.create_db_user(db, &user("app"), Role::App).await,
        };
        let payments = Account {
            name: user("payments"),
            password: stack.create_db_user(db, &user("payments"), Role::App).await,
        };
        let world = World {
            db,
            prefix,
            master: Account {
                name: master_name,
                password: master_password,
            },
            master_arn,
            app_arn: String::new(),
            app,
            payments,
        };
        // The other application's secret: its own, never written by the attacker.
        let payments_value =
            world.secret_value(stack, &world.payments.name, &world.payments.password);
        stack
            .create_secret(&Stack::unique("tbpayments"), &payments_value)
            .await;
        let app_value = world.secret_value(stack, &world.app.name, &world.app.password);
        let app_arn = stack
            .create_secret(&Stack::unique("tbapp"), &app_value)
            .await;
        World { app_arn, ..world }
    }

    /// An alternating-users secret value for `user` on the stack's server.
    fn secret_value(&self, stack: &Stack, user: &str, password: &SecretString) -> Value {
        let mut value = stack.db_secret(self.db, user, password);
        value["masterarn"] = json!(self.master_arn);
        value
    }

    /// The catalog rows naming this world's accounts (all their names hold the prefix):
    /// their roles or accounts with password verifiers, memberships, grants and settings.
    async fn catalog(&self, stack: &Stack) -> Catalog {
        Catalog::snapshot(stack, self.db).await.naming(&self.prefix)
    }

    /// The attack: the writer puts `value` as AWSCURRENT of its own secret, then the rotation
    /// runs (RotateSecret, then the four steps).
    async fn attack(&self, stack: &Stack, value: &Value) -> RotationRun {
        record_value(value);
        stack
            .secrets
            .put_secret_value()
            .secret_id(&self.app_arn)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("PutSecretValue");
        stack.enable_rotation(&self.app_arn).await;
        stack
            .driver(Mode::SecretsManager)
            .rotate(&self.app_arn)
            .await
            .expect("the driver ran")
    }

    /// Asserts the run was refused naming `rule`, then that nothing changed since `before`.
    async fn assert_refused(&self, stack: &Stack, run: &RotationRun, rule: &str, before: &Catalog) {
        let db = self.db;
        let failure = run
            .failure()
            .unwrap_or_else(|| panic!("{db:?}: the attack must be refused"))
            .to_string();
        assert!(
            failure.contains(rule),
            "{db:?}: {failure} should name {rule:?}"
        );
        for secret in [&self.master, &self.app, &self.payments] {
            assert!(
                !failure.contains(secret.password.expose_secret()),
                "{db:?}: the error shows a password"
            );
        }
        assert_eq!(
            &self.catalog(stack).await,
            before,
            "{db:?}: the catalog changed"
        );
        for account in [&self.master, &self.app, &self.payments] {
            stack
                .assert_db_login(db, &account.name, &account.password)
                .await;
        }
        self.assert_secret_holds_only_its_own_user(stack).await;
    }

    /// Every version of the writer's secret holds either its own user's credentials or
    /// credentials that do not log in.
    async fn assert_secret_holds_only_its_own_user(&self, stack: &Stack) {
        for value in stack.all_values(&self.app_arn).await {
            let (Some(user), Some(password)) =
                (value["username"].as_str(), value["password"].as_str())
            else {
                continue;
            };
            if user == self.app.name {
                continue;
            }
            let password = SecretString::from(password.to_owned());
            assert!(
                stack.db_login(self.db, user, &password).await.is_err(),
                "{:?}: the writer's secret holds working credentials of {user:?}",
                self.db
            );
        }
    }
}

/// Logs in to `db` without TLS: whether the server admits `user` so.
async fn plaintext_login(stack: &Stack, db: Db, user: &str, password: &SecretString) -> bool {
    let endpoint = stack.db_endpoint(db, TlsMode::Disabled);
    let timeout = std::time::Duration::from_secs(10);
    match db {
        Db::Postgres => rotation::providers::postgres::connect(
            &stack.tls,
            timeout,
            &endpoint,
            user,
            password,
            rotation::error::Credential::Current,
        )
        .await
        .is_ok(),
        Db::MariaDb => {
            let who = rotation::providers::database::Who {
                credential: rotation::error::Credential::Current,
                user: user.to_owned(),
                endpoint: endpoint.display(),
            };
            mysql::connect(None, timeout, &endpoint, &who, password)
                .await
                .is_ok()
        }
    }
}

/// (a), (b), (c): the writer names another application's role, the master, or the other
/// application's base name. The master would reset `payments`' password (a), its own (b), or
/// create `payments_clone` as a member or copy of `payments` (c). Refused: the AWSCURRENT
/// credentials must log in first (the writer knows no password of `payments` or
/// `payments_clone`), and the master's own account is never an alternating user.
#[tokio::test(flavor = "multi_thread")]
async fn the_master_acts_only_for_the_user_whose_password_the_writer_holds() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        for attack in ["payments_clone", "master_clone", "payments"] {
            let world = World::new(&stack, db, false).await;
            let (username, rule) = match attack {
                "payments_clone" => (
                    format!("{}_clone", world.payments.name),
                    "trust rule: proof of possession",
                ),
                "master_clone" => (
                    format!("{}_clone", world.master.name),
                    "trust rule: the master never rotates its own account",
                ),
                _ => (
                    world.payments.name.clone(),
                    "trust rule: proof of possession",
                ),
            };
            let before = world.catalog(&stack).await;
            let value = world.secret_value(&stack, &username, &world.app.password);
            let run = world.attack(&stack, &value).await;
            world.assert_refused(&stack, &run, rule, &before).await;
        }
    }
}

/// (d): the writer points its secret at its own server. With a master secret that has no host
/// and no RDS tag, the master would log in there (sending its password); with a master secret
/// that has a host, the master would act on the master's server for a user the writer proved
/// only on its own server. Both are refused before any connection: the writer's server logs none.
#[tokio::test(flavor = "multi_thread")]
async fn the_master_never_connects_to_a_host_only_the_writer_names() {
    let stack = Stack::from_env().await;
    let writer = WriterServer::start(&stack).await;
    for db in Db::ALL {
        for hostless_master in [true, false] {
            let world = World::new(&stack, db, false).await;
            let own = writer.create_user(&world.app.name, "", false).await;
            let (masterarn, rule) = if hostless_master {
                let value = json!({"username": world.master.name, "password": world.master.password.expose_secret()});
                let arn = stack
                    .create_secret(&Stack::master_secret_name("tbhostless"), &value)
                    .await;
                (
                    arn,
                    "trust rule: the master's endpoint comes from the master secret or RDS",
                )
            } else {
                (
                    world.master_arn.clone(),
                    "trust rule: the master acts only on the server",
                )
            };
            let mut value = world.secret_value(&stack, &world.app.name, &own);
            value["host"] = json!(writer.host);
            value["port"] = json!(writer.port);
            value["masterarn"] = json!(masterarn);
            let before = world.catalog(&stack).await;
            let connections = writer.connections().len();
            let run = world.attack(&stack, &value).await;
            world.assert_refused(&stack, &run, rule, &before).await;
            assert_eq!(
                writer.connections().len(),
                connections,
                "{db:?}: the writer's server received a connection:\n{}",
                writer.log()
            );
            assert!(
                writer.lines_naming(&world.master.name).is_empty(),
                "{db:?}: the master's name reached the writer's server"
            );
        }
    }
}

/// (e): `"ssl": false` in the application secret turns TLS off for the application's own
/// logins only. The server admits the master only over TLS (PostgreSQL: a `hostnossl ...
/// reject` rule for its role; MariaDB: `REQUIRE SSL`), so the rotation succeeding proves the
/// master connected with TLS; on a PostgreSQL server that logs connections, every login of
/// the master reads "SSL enabled" while the application's own logins do not.
#[tokio::test(flavor = "multi_thread")]
async fn ssl_false_in_an_application_secret_never_downgrades_the_master() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        let world = World::new(&stack, db, true).await;
        assert!(
            !plaintext_login(&stack, db, &world.master.name, &world.master.password).await,
            "{db:?}: the server must refuse the master without TLS"
        );
        assert!(
            plaintext_login(&stack, db, &world.app.name, &world.app.password).await,
            "{db:?}: the application may log in without TLS"
        );
        let mut value = world.secret_value(&stack, &world.app.name, &world.app.password);
        value["ssl"] = json!(false);
        let run = world.attack(&stack, &value).await;
        assert_succeeded(&run);
        let Credentials { user, password } = stack.credentials(&world.app_arn, AWSCURRENT).await;
        assert_eq!(user, format!("{}_clone", world.app.name));
        assert!(plaintext_login(&stack, db, &user, &password).await);
        stack
            .assert_db_login(db, &world.master.name, &world.master.password)
            .await;
    }

    // The same on a server that logs every connection: each of the master's is over TLS.
    let server = WriterServer::start(&stack).await;
    let prefix = Stack::unique("t");
    let (app, master) = (format!("{prefix}_app"), format!("{prefix}_master"));
    let app_password = server.create_user(&app, "", false).await;
    let master_password = server.create_user(&master, "CREATEROLE", false).await;
    let master_value = json!({
        "username": master, "password": master_password.expose_secret(),
        "host": server.host, "port": server.port,
    });
    let master_arn = stack
        .create_secret(&Stack::master_secret_name("tbmaster"), &master_value)
        .await;
    let value = json!({
        "engine": "postgres", "host": server.host, "port": server.port, "ssl": false,
        "username": app, "password": app_password.expose_secret(), "dbname": "postgres",
        "masterarn": master_arn,
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("tbnossl"), &value, Mode::SecretsManager)
        .await;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let logins: Vec<String> = server
        .lines_naming(&master)
        .into_iter()
        .filter(|l| l.contains("connection authorized"))
        .collect();
    assert!(
        !logins.is_empty(),
        "the master logged in:\n{}",
        server.log()
    );
    for line in &logins {
        assert!(
            line.contains("SSL enabled"),
            "the master without TLS: {line}"
        );
    }
    let app_logins = server.lines_naming(&app);
    assert!(
        app_logins
            .iter()
            .any(|l| l.contains("connection authorized") && !l.contains("SSL enabled")),
        "the application's own logins follow its \"ssl\": false: {app_logins:?}"
    );
}

/// (f): the alternate name is an existing account that may do more than the writer's user:
/// PostgreSQL, a role with CREATEROLE; MariaDB, an account with a default role that holds
/// CREATE USER (REVOKE ALL leaves roles in place). The master would hand its new password to
/// the writer. Refused, naming the privilege; the privileged account keeps its password.
#[tokio::test(flavor = "multi_thread")]
async fn a_privileged_alternate_user_is_refused() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        let world = World::new(&stack, db, false).await;
        let clone = format!("{}_clone", world.app.name);
        let (clone_password, privilege) = match db {
            Db::Postgres => (
                stack
                    .create_db_user(Db::Postgres, &clone, Role::Master)
                    .await,
                "CREATEROLE",
            ),
            Db::MariaDb => {
                let password = stack.create_db_user(db, &clone, Role::App).await;
                let role = format!("{}_admins", world.prefix);
                let account = format!("{}@'%'", mysql::quote(&clone, false));
                stack
                    .db_admin_sql(
                        Db::MariaDb,
                        &format!(
                            "CREATE ROLE `{role}`; GRANT CREATE USER ON *.* TO `{role}`; \
                         GRANT `{role}` TO {account}; SET DEFAULT ROLE `{role}` FOR {account}"
                        ),
                    )
                    .await;
                (password, "CREATE USER")
            }
        };
        let before = world.catalog(&stack).await;
        let value = world.secret_value(&stack, &world.app.name, &world.app.password);
        let run = world.attack(&stack, &value).await;
        world
            .assert_refused(
                &stack,
                &run,
                "trust rule: the alternate user may not do more",
                &before,
            )
            .await;
        let failure = run.failure().unwrap().to_string();
        assert!(failure.contains(privilege), "{db:?}: {failure}");
        stack.assert_db_login(db, &clone, &clone_password).await;
    }
}

/// The master logs in with SCRAM only: a server (here the writer's, holding a valid
/// certificate, named by the master secret as after a DNS hijack) that asks for the password in
/// cleartext or as MD5 gets nothing; the server logs no password attempt for the master.
#[tokio::test(flavor = "multi_thread")]
async fn the_master_refuses_cleartext_and_md5_password_requests() {
    let stack = Stack::from_env().await;
    let writer = WriterServer::start(&stack).await;
    for (group, md5, asked) in [
        ("cleartext_login", false, "cleartext"),
        ("md5_login", true, "MD5"),
    ] {
        let prefix = Stack::unique("t");
        let app = format!("{prefix}_app");
        let app_password = writer.create_user(&app, "", false).await;
        let master = format!("{prefix}_master");
        writer
            .create_user(&master, &format!("CREATEROLE IN ROLE {group}"), md5)
            .await;
        let master_value = json!({
            "username": master, "password": Stack::password().expose_secret(),
            "host": writer.host, "port": writer.port,
        });
        let master_arn = stack
            .create_secret(&Stack::master_secret_name("tbrogue"), &master_value)
            .await;
        let value = json!({
            "engine": "postgres", "host": writer.host, "port": writer.port,
            "username": app, "password": app_password.expose_secret(), "dbname": "postgres",
            "masterarn": master_arn,
        });
        let arn = stack
            .create_rotating_secret(&Stack::unique("tbrogue"), &value, Mode::SecretsManager)
            .await;
        let run = stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap();
        let failure = run.failure().expect("must be refused").to_string();
        assert!(
            failure.contains("trust rule: the master logs in with SCRAM only")
                && failure.contains(asked),
            "{failure}"
        );
        let attempts: Vec<String> = writer
            .lines_naming(&master)
            .into_iter()
            .filter(|l| l.contains("authentication failed") || l.contains("authorized"))
            .collect();
        assert!(
            attempts.is_empty(),
            "the master answered the {asked} request: {attempts:?}"
        );
    }
}

/// Review finding L8: a rotation does not re-enable a role an administrator disabled
/// (NOLOGIN) during an incident: the rotation that would set its password is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_role_stays_disabled() {
    let stack = Stack::from_env().await;
    let world = World::new(&stack, Db::Postgres, false).await;
    let value = world.secret_value(&stack, &world.app.name, &world.app.password);
    let first = world.attack(&stack, &value).await;
    assert_succeeded(&first);
    stack
        .db_admin_sql(
            Db::Postgres,
            &format!("ALTER ROLE {} NOLOGIN", escape_identifier(&world.app.name)),
        )
        .await;
    let before = world.catalog(&stack).await;
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(&world.app_arn)
        .await
        .unwrap();
    let failure = run.failure().expect("must be refused").to_string();
    assert!(
        failure.contains("NOLOGIN") && failure.contains("does not re-enable"),
        "{failure}"
    );
    assert_eq!(world.catalog(&stack).await, before);
    stack
        .assert_db_refused(Db::Postgres, &world.app.name, &world.app.password)
        .await;
    let Credentials {
        user: clone,
        password,
    } = stack.credentials(&world.app_arn, AWSCURRENT).await;
    stack.assert_db_login(Db::Postgres, &clone, &password).await;
}
