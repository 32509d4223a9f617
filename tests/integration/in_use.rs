//! The in-use check and the compromise cut-off, through the real functions against the real
//! servers: sessions held open as the user whose password a rotation replaces, rotated under each
//! policy of the tag `rotation-in-use`; a rotation of a secret carrying the compromise marker
//! terminates the sessions that predate the new password and no other.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use rotation::compromise_marker as marker;
use rotation::providers::sessions::{SessionFacts, TAG};
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::{Mode, Step};
use rotator::driver::RotationRun;
use secrecy::SecretString;
use test_support::{assert_succeeded, Credentials, Db, Stack, TestUser};

/// A session held open as a user, as a consumer would hold it.
pub(crate) enum Held {
    Postgres(tokio_postgres::Client),
    MariaDb(rotation::providers::mysql::Session),
}

impl Held {
    /// Logs in as `user` and names the session `application` (PostgreSQL's application_name).
    pub(crate) async fn open(
        stack: &Stack,
        db: Db,
        user: &str,
        password: &SecretString,
        application: &str,
    ) -> Self {
        match db {
            Db::Postgres => {
                let client = stack
                    .pg_login(user, password)
                    .await
                    .expect("consumer login");
                client
                    .execute(
                        "SELECT pg_catalog.set_config('application_name', $1, false)",
                        &[&application],
                    )
                    .await
                    .expect("SET application_name");
                Held::Postgres(client)
            }
            Db::MariaDb => Held::MariaDb(
                stack
                    .mysql_login(user, password)
                    .await
                    .expect("consumer login"),
            ),
        }
    }

    /// The server's id of the session (pid, thread id).
    pub(crate) async fn id(&mut self) -> u64 {
        match self {
            Held::Postgres(client) => {
                let pid: i32 = client
                    .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
                    .await
                    .expect("pid")
                    .get(0);
                u64::try_from(pid).unwrap()
            }
            Held::MariaDb(session) => session
                .conn()
                .query_first::<u64, _>("SELECT CONNECTION_ID()")
                .await
                .expect("thread id")
                .unwrap(),
        }
    }
}

/// Whether the server still lists the session `id` (pg_stat_activity, the process list), as
/// its administrator sees it.
pub(crate) async fn listed(stack: &Stack, db: Db, id: u64) -> bool {
    match db {
        Db::Postgres => {
            let pid = i32::try_from(id).unwrap();
            stack
                .admin()
                .await
                .query_opt(
                    "SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .unwrap()
                .is_some()
        }
        Db::MariaDb => {
            let mut admin = stack.mysql_admin_session().await;
            let found: Option<u64> = admin
                .conn()
                .exec_first(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND <> 'Killed'",
                    (id,),
                )
                .await
                .unwrap();
            found.is_some()
        }
    }
}

/// Waits (up to 10 s) until the server no longer lists session `id`; false if it still does.
async fn gone(stack: &Stack, db: Db, id: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if !listed(stack, db, id).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn untag(stack: &Stack, arn: &str, key: &str) {
    stack
        .secrets
        .untag_resource()
        .secret_id(arn)
        .tag_keys(key)
        .send()
        .await
        .expect("UntagResource");
}

/// The compromise marker's value: now.
pub(crate) fn marker_now() -> String {
    marker::value(std::time::SystemTime::now())
}

/// What the setSecret step of `run` found and did about sessions.
fn set_facts(run: &RotationRun) -> Option<SessionFacts> {
    run.steps
        .iter()
        .find(|s| s.step == Step::Set)
        .and_then(|s| s.result.as_ref().ok())
        .and_then(|r| r.sessions.clone())
}

/// The setSecret step's warnings, one text.
fn set_warnings(run: &RotationRun) -> String {
    run.steps
        .iter()
        .find(|s| s.step == Step::Set)
        .and_then(|s| s.result.as_ref().ok())
        .map(|r| r.warnings.join("\n"))
        .unwrap_or_default()
}

/// The name a test's consumer gives its PostgreSQL session, and what the step must say of it:
/// the application name (PostgreSQL), else the client's address (MariaDB lists no name).
fn consumer(db: Db) -> (String, String) {
    let name = Stack::unique("billing");
    let expected = match db {
        Db::Postgres => name.clone(),
        Db::MariaDb => "127.0.0.1".to_owned(),
    };
    (name, expected)
}

#[tokio::test(flavor = "multi_thread")]
async fn warn_names_the_consumers_and_the_rotation_completes_without_terminating_them() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(db, "inusewarn", Mode::SecretsManager)
            .await;
        let (name, expected) = consumer(db);
        let mut held = Held::open(&stack, db, &user, &password, &name).await;
        let id = held.id().await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        let warnings = set_warnings(&run);
        assert!(warnings.contains("in use"), "{db:?}: {warnings}");
        assert!(warnings.contains(&expected), "{db:?}: {warnings}");
        let facts = set_facts(&run).expect("setSecret reports its sessions");
        let in_use = facts.in_use.expect("the consumer was found");
        assert_eq!(in_use.count, 1, "{db:?}: {in_use:?}");
        assert_eq!(in_use.user, user);
        assert!(
            facts.terminated.is_none(),
            "a normal rotation terminates nothing"
        );
        assert!(
            listed(&stack, db, id).await,
            "{db:?}: a normal rotation never terminates a session"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuse_fails_set_secret_naming_the_consumers_and_changes_nothing() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(db, "inuserefuse", Mode::SecretsManager)
            .await;
        stack.tag_secret(&arn, TAG, "refuse").await;
        let (name, expected) = consumer(db);
        let held = Held::open(&stack, db, &user, &password, &name).await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run.failure().expect("refused").to_string();
        assert_eq!(run.steps.last().unwrap().step, Step::Set, "{failure}");
        assert_eq!(
            run.failure().unwrap().error_type(),
            Some("CredentialInUse"),
            "{failure}"
        );
        assert!(failure.contains(&expected), "{db:?}: {failure}");
        assert!(failure.contains(&format!("{user:?}")), "{db:?}: {failure}");
        stack.assert_db_login(db, &user, &password).await;
        let pending = stack.credentials(&arn, AWSPENDING).await.password;
        stack.assert_db_refused(db, &user, &pending).await;

        // The consumer gone, the same rotation resumes and completes.
        drop(held);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rerun = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&rerun);
        assert_eq!(rerun.token, run.token);
        stack.assert_stage_logs_in(db, &arn, AWSCURRENT).await;
    }
}

/// An alternating-users secret of `db` rotated once (Secrets Manager mode): the original user,
/// now AWSPREVIOUS and the one the next rotation gives a new password, and the clone's
/// AWSCURRENT credentials.
async fn rotated_alternating(stack: &Stack, db: Db, prefix: &str) -> (TestUser, Credentials) {
    let app = stack
        .alternating_user_with_secret(db, prefix, false, Mode::SecretsManager)
        .await
        .app;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&app.secret_arn)
            .await
            .unwrap(),
    );
    let clone = stack.credentials(&app.secret_arn, AWSCURRENT).await;
    (app, clone)
}

#[tokio::test(flavor = "multi_thread")]
async fn refuse_on_alternating_users_checks_the_previous_user_and_keeps_every_credential() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        // The first rotation makes the clone current; the original user holds AWSPREVIOUS and
        // is the one the next rotation gives a new password.
        let (
            TestUser {
                secret_arn: arn,
                user,
                password,
            },
            Credentials {
                user: clone,
                password: clone_password,
            },
        ) = rotated_alternating(&stack, db, "inusealt").await;
        stack.tag_secret(&arn, TAG, "refuse").await;
        let (name, expected) = consumer(db);
        let _held = Held::open(&stack, db, &user, &password, &name).await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run.failure().expect("refused").to_string();
        assert_eq!(
            run.failure().unwrap().error_type(),
            Some("CredentialInUse"),
            "{failure}"
        );
        assert!(failure.contains(&expected), "{db:?}: {failure}");
        assert!(failure.contains(&format!("{user:?}")), "{db:?}: {failure}");
        assert!(
            failure.contains(&format!("AWSCURRENT user {clone:?} has no session yet")),
            "{db:?}: the step says whether the consumers moved: {failure}"
        );
        stack.assert_db_login(db, &user, &password).await;
        stack.assert_db_login(db, &clone, &clone_password).await;
        assert_eq!(stack.credentials(&arn, AWSPREVIOUS).await.user, user);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_goes_on_once_the_consumers_leave_and_refuses_when_they_stay() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(db, "inusewait", Mode::SecretsManager)
            .await;
        stack.tag_secret(&arn, TAG, "wait").await;
        let (name, _) = consumer(db);

        // The consumer leaves two seconds into the rotation: setSecret waited for it.
        let held = Held::open(&stack, db, &user, &password, &name).await;
        let driver = stack.driver(Mode::SecretsManager);
        let rotation = tokio::spawn({
            let arn = arn.clone();
            async move { driver.rotate(&arn).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(held);
        let run = rotation.await.unwrap();
        assert_succeeded(&run);
        let facts = set_facts(&run).expect("setSecret reports its sessions");
        assert!(facts.in_use.is_none(), "{db:?}: nobody was left: {facts:?}");

        // A consumer that stays: refused once the wait's bound (the stack's
        // ROTATION_IN_USE_WAIT_SECONDS) has passed, nothing changed.
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        let _held = Held::open(&stack, db, &user, &current, &name).await;
        let started = Instant::now();
        let run = stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap();
        let failure = run.failure().expect("refused after the wait").to_string();
        assert_eq!(
            run.failure().unwrap().error_type(),
            Some("CredentialInUse"),
            "{failure}"
        );
        assert!(failure.contains("waited"), "{failure}");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "{db:?}: it waited"
        );
        stack.assert_db_login(db, &user, &current).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compromise_rotation_terminates_the_sessions_of_the_replaced_password_only() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let TestUser {
            secret_arn: arn,
            user,
            password,
        } = stack
            .db_user_with_secret(db, "inusecut", Mode::SecretsManager)
            .await;
        let (name, expected) = consumer(db);
        let mut old = Held::open(&stack, db, &user, &password, &name).await;
        let old_id = old.id().await;
        // Another user's session on the same server is no business of this secret.
        let TestUser {
            user: other,
            password: other_password,
            ..
        } = stack
            .db_user_with_secret(db, "inusebystander", Mode::SecretsManager)
            .await;
        let mut bystander = Held::open(&stack, db, &other, &other_password, &name).await;
        let bystander_id = bystander.id().await;

        stack.tag_secret(&arn, marker::TAG, &marker_now()).await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        let facts = set_facts(&run).expect("setSecret reports its sessions");
        let terminated = facts.terminated.expect("the old session was terminated");
        assert_eq!(terminated.count, 1, "{db:?}: {terminated:?}");
        assert!(
            set_warnings(&run).contains(&expected),
            "{}",
            set_warnings(&run)
        );
        assert!(
            gone(&stack, db, old_id).await,
            "{db:?}: the pre-incident session is gone"
        );
        assert!(
            listed(&stack, db, bystander_id).await,
            "{db:?}: another user's session survives"
        );

        // A session of the new credential survives the normal rotations after the response.
        untag(&stack, &arn, marker::TAG).await;
        let current = stack.credentials(&arn, AWSCURRENT).await.password;
        let mut new = Held::open(&stack, db, &user, &current, &name).await;
        let new_id = new.id().await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        assert!(set_facts(&run).and_then(|f| f.terminated).is_none());
        assert!(
            listed(&stack, db, new_id).await,
            "{db:?}: a normal rotation terminates nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compromise_of_alternating_users_cuts_off_each_user_as_it_gets_its_new_password() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for db in Db::ALL {
        let (
            TestUser {
                secret_arn: arn,
                user,
                password,
            },
            Credentials {
                user: clone,
                password: clone_password,
            },
        ) = rotated_alternating(&stack, db, "inusecutalt").await;
        // Both pre-incident credentials have a consumer.
        let (name, _) = consumer(db);
        let mut old_base = Held::open(&stack, db, &user, &password, &name).await;
        let old_base_id = old_base.id().await;
        let mut old_clone = Held::open(&stack, db, &clone, &clone_password, &name).await;
        let old_clone_id = old_clone.id().await;
        stack.tag_secret(&arn, marker::TAG, &marker_now()).await;

        // The first rotation replaces the original user's password: its old session goes, the
        // clone's (still AWSCURRENT until this rotation finishes) stays.
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        assert_eq!(
            set_facts(&run).and_then(|f| f.terminated).map(|t| t.count),
            Some(1)
        );
        assert!(
            gone(&stack, db, old_base_id).await,
            "{db:?}: the original user's old session is gone"
        );
        assert!(
            listed(&stack, db, old_clone_id).await,
            "{db:?}: the clone is not rotated yet"
        );

        // A consumer moves to the new AWSCURRENT (the original user, its new password); the
        // second rotation replaces the clone's password: its old session goes, the new one stays.
        let Credentials {
            user: now_current,
            password: new_password,
        } = stack.credentials(&arn, AWSCURRENT).await;
        assert_eq!(now_current, user);
        let mut moved = Held::open(&stack, db, &user, &new_password, &name).await;
        let moved_id = moved.id().await;
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        assert!(
            gone(&stack, db, old_clone_id).await,
            "{db:?}: the clone's old session is gone"
        );
        assert!(
            listed(&stack, db, moved_id).await,
            "{db:?}: the new credential's session survives"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_the_sessions_of_each_credential_and_says_when_it_cannot() {
    let stack = Stack::from_env().await;
    let (
        TestUser {
            secret_arn: arn,
            user,
            password,
        },
        _,
    ) = rotated_alternating(&stack, Db::Postgres, "inusestatus").await;
    let (name, _) = consumer(Db::Postgres);
    let _held = Held::open(&stack, Db::Postgres, &user, &password, &name).await;

    let (out, status) = crate::cli::rotator_json(&["status", &arn]).await;
    assert!(out.status.success(), "{status}");
    let credential = |label: &str| {
        status["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == label)
            .unwrap_or_else(|| panic!("no {label} in {status}"))
            .clone()
    };
    let previous = credential(AWSPREVIOUS);
    assert_eq!(previous["user"], user.as_str(), "{status}");
    assert_eq!(previous["sessions"]["count"], 1, "{status}");
    assert_eq!(
        previous["sessions"]["applicationNames"][0],
        name.as_str(),
        "{status}"
    );
    assert_eq!(
        previous["sessions"]["addresses"][0], "127.0.0.1",
        "{status}"
    );
    assert!(previous["sessions"]["oldestStart"].is_string(), "{status}");
    assert_eq!(credential(AWSCURRENT)["sessions"]["count"], 0, "{status}");
    let text = crate::cli::stdout(&crate::cli::rotator(&["status", &arn]).await);
    assert!(text.contains(&name), "{text}");

    // A database this machine cannot reach: said so, and the status is shown all the same.
    let mut value = stack.db_secret(Db::Postgres, &user, &password);
    value["port"] = serde_json::json!(1);
    let unreachable = stack
        .create_secret(&Stack::unique("inuseunreachable"), &value)
        .await;
    let (out, status) = crate::cli::rotator_json(&["status", &unreachable]).await;
    assert!(out.status.success(), "{status}");
    let why = status["sessions"][0]["unavailable"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("network error"), "{status}");
    let text = crate::cli::stdout(&crate::cli::rotator(&["status", &unreachable]).await);
    assert!(text.contains("cannot be asked from here"), "{text}");
}
