//! The database failing mid-rotation, through the real functions: connections that hang or are
//! refused (a noxious proxy between the functions and the database), and a private PostgreSQL
//! server shut down immediately during setSecret and during testSecret. Each step must fail
//! within its bounded timeout with an error naming the credential and the endpoint, a stored
//! credential must still log in, and a re-run after recovery must complete the rotation.
//!
//! Its own test binary: the private server and the proxies take ports the kernel says are free.

use std::time::{Duration, Instant};

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use rotation::Step;
use secrecy::SecretString;
use test_support::faults::{free_port, FaultProxy, PrivatePostgres};
use test_support::{assert_succeeded, Db, Stack, TestUser};

/// The functions' connect timeout (ROTATION_DB_CONNECT_TIMEOUT_SECONDS in scripts/stack.sh)
/// plus the invocation's own overhead.
const STEP_BOUND: Duration = Duration::from_secs(15);

fn failure(run: &rotator::driver::StepRun) -> String {
    match &run.result {
        Ok(report) => panic!("{} should have failed: {report:?}", run.step),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_and_refused_connections_fail_in_bounded_time_and_a_rerun_converges() {
    let stack = Stack::from_env().await;
    let proxy_port = free_port();
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret_value(
            Db::Postgres,
            "hang",
            Mode::SecretsManager,
            |user, password| PrivatePostgres::secret(proxy_port, user, password),
        )
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(&arn).await.unwrap();

    // The connection is accepted and then never answered.
    let proxy = FaultProxy::start(proxy_port, stack.pg_port, vec![FaultProxy::hang()]).await;
    let started = Instant::now();
    let runs = driver.run_steps(&Step::ALL, &arn, &token, None).await;
    let elapsed = started.elapsed();
    let set = runs.last().unwrap();
    assert_eq!(set.step, Step::Set, "createSecret needs no database");
    let error = failure(set);
    println!("hung: {error} ({elapsed:?})");
    assert!(elapsed < STEP_BOUND, "unbounded: {elapsed:?}");
    assert!(
        error.contains("no answer within") && error.contains(&format!("127.0.0.1:{proxy_port}")),
        "{error}"
    );
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &current).await;
    proxy.stop().await;

    // Nothing listens: the connection is refused.
    let started = Instant::now();
    let run = driver.rotate(&arn).await.unwrap();
    assert_eq!(run.token, token, "the re-run resumes the rotation");
    let error = failure(run.steps.last().unwrap());
    println!("refused: {error} ({:?})", started.elapsed());
    assert!(started.elapsed() < STEP_BOUND);
    assert!(error.contains("network error"), "{error}");
    stack.assert_db_login(Db::Postgres, &user, &current).await;

    // Recovered: the re-run completes.
    let _proxy = FaultProxy::start(proxy_port, stack.pg_port, Vec::new()).await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(run.token, token);
    let rotated = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &rotated).await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_connection_during_test_secret_fails_in_bounded_time() {
    let stack = Stack::from_env().await;
    let proxy_port = free_port();
    let TestUser {
        secret_arn: arn,
        user,
        ..
    } = stack
        .db_user_with_secret_value(
            Db::Postgres,
            "hangtest",
            Mode::SecretsManager,
            |user, password| PrivatePostgres::secret(proxy_port, user, password),
        )
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    let proxy = FaultProxy::start(proxy_port, stack.pg_port, Vec::new()).await;
    for run in driver.run_steps(&Step::ALL[..2], &arn, &token, None).await {
        run.result.expect("createSecret and setSecret");
    }
    proxy.stop().await;

    let proxy = FaultProxy::start(proxy_port, stack.pg_port, vec![FaultProxy::hang()]).await;
    let started = Instant::now();
    let test = driver.step(Step::Test, &arn, &token, None).await;
    let error = failure(&test);
    println!("hung testSecret: {error} ({:?})", started.elapsed());
    assert!(started.elapsed() < STEP_BOUND);
    assert!(error.contains("no answer within"), "{error}");
    // A single user has one password, which setSecret changed: AWSPENDING holds it.
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    stack.assert_db_login(Db::Postgres, &user, &pending).await;
    proxy.stop().await;

    let _proxy = FaultProxy::start(proxy_port, stack.pg_port, Vec::new()).await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    stack.assert_db_login(Db::Postgres, &user, &current).await;
}

/// Runs `step` while the private server is shut down immediately, 300 ms into the step (the
/// proxy's latency keeps the step's login in flight then).
async fn step_while_stopping(
    stack: &Stack,
    server: &PrivatePostgres,
    proxy_port: u16,
    arn: &str,
    token: &str,
    step: Step,
) -> String {
    let proxy = FaultProxy::start(proxy_port, server.port, vec![FaultProxy::latency(250)]).await;
    let driver = stack.driver(Mode::SecretsManager);
    let started = Instant::now();
    let (run, ()) = tokio::join!(driver.step(step, arn, token, None), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.stop_immediately();
    });
    let error = failure(&run);
    println!(
        "{step} while the database stops: {error} ({:?})",
        started.elapsed()
    );
    assert!(started.elapsed() < STEP_BOUND, "unbounded");
    assert!(
        error.contains(&format!("127.0.0.1:{proxy_port}")),
        "{error}"
    );
    proxy.stop().await;
    server.start_again();
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_stopping_during_set_and_test_secret() {
    let stack = Stack::from_env().await;
    let server = PrivatePostgres::start(&stack, free_port());
    let proxy_port = free_port();
    let user = Stack::unique("pgstop");
    let original = server.create_user(&stack, &user).await;
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("dbstop"),
            &PrivatePostgres::secret(proxy_port, &user, &original),
            Mode::SecretsManager,
        )
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    driver
        .step(Step::Create, &arn, &token, None)
        .await
        .result
        .expect("createSecret");

    step_while_stopping(&stack, &server, proxy_port, &arn, &token, Step::Set).await;
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    server
        .login(&stack, &user, &current)
        .await
        .expect("AWSCURRENT still logs in after setSecret failed");

    // Recovered: setSecret goes through; then the server stops during testSecret.
    let proxy = FaultProxy::start(proxy_port, server.port, Vec::new()).await;
    driver
        .step(Step::Set, &arn, &token, None)
        .await
        .result
        .expect("setSecret after recovery");
    proxy.stop().await;
    step_while_stopping(&stack, &server, proxy_port, &arn, &token, Step::Test).await;
    let pending = stack.credentials(&arn, AWSPENDING).await.password;
    server
        .login(&stack, &user, &pending)
        .await
        .expect("the password setSecret set still logs in");

    let _proxy = FaultProxy::start(proxy_port, server.port, Vec::new()).await;
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(run.token, token, "the re-run resumes the rotation");
    let rotated = stack.credentials(&arn, AWSCURRENT).await.password;
    server
        .login(&stack, &user, &rotated)
        .await
        .expect("AWSCURRENT logs in after the re-run");
    let refused = server
        .login(&stack, &user, &SecretString::from(original_text(&original)))
        .await
        .expect_err("the replaced password");
    assert!(refused.is_authentication_failure(), "{refused}");
}

fn original_text(password: &SecretString) -> String {
    secrecy::ExposeSecret::expose_secret(password).to_owned()
}
