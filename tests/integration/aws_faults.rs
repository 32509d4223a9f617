//! The AWS API failing mid-rotation: throttling, 5xx, a hung endpoint, an endpoint gone.
//!
//! The rotation runs through the real functions against moto up to a step (setSecret, or
//! finishSecret after its first label move went through); that step then runs in this process
//! (the same engine the functions run) with its Secrets Manager client aimed at a scripted
//! endpoint that answers every request with the fault. It must fail within
//! its bounded retries and timeouts with an error naming the call, leave AWSCURRENT on exactly
//! one version that still logs in, and a re-run through the functions must complete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotation::config::{Config, ENV_AWS_ATTEMPT_TIMEOUT, ENV_AWS_OPERATION_TIMEOUT};
use rotation::protocol::Engine;
use rotation::secrets_manager::{AWSCURRENT, AWSPENDING};
use rotation::Mode;
use rotation::{Caller, RotationContext, RotationEvent, Step};
use rotator::versions::version_with;
use test_support::faults::free_port;
use test_support::{assert_succeeded, Db, Stack, TestUser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the scripted endpoint answers.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// 400 ThrottlingException, as Secrets Manager answers over its rate limit.
    Throttling,
    /// 500 InternalServiceError.
    ServerError,
    /// Accepts the connection, reads the request, never answers.
    Hang,
    /// Nothing listens: connections are refused.
    Gone,
}

const ATTEMPT_TIMEOUT_SECONDS: u64 = 1;
const OPERATION_TIMEOUT_SECONDS: u64 = 8;

/// Reads one HTTP request (headers and Content-Length body); false when the peer closed.
async fn read_request(socket: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = end {
            let headers = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return true;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Serves `fault` on `port`, counting the requests it receives.
async fn fault_endpoint(port: u16, fault: Fault) -> Arc<AtomicU32> {
    let requests = Arc::new(AtomicU32::new(0));
    if let Fault::Gone = fault {
        return requests;
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("binding the fault endpoint");
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                while read_request(&mut socket).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (status, kind) = match fault {
                        Fault::Throttling => ("400 Bad Request", "ThrottlingException"),
                        Fault::ServerError => ("500 Internal Server Error", "InternalServiceError"),
                        Fault::Hang | Fault::Gone => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                    };
                    let body = format!(r#"{{"__type":"{kind}","message":"injected fault"}}"#);
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\n\
                         x-amzn-errortype: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    requests
}

/// The functions' engine with its AWS clients aimed at `port`.
async fn engine_at(stack: &Stack, port: u16) -> Engine {
    let env: HashMap<&str, String> = [
        (ENV_AWS_ATTEMPT_TIMEOUT, ATTEMPT_TIMEOUT_SECONDS.to_string()),
        (
            ENV_AWS_OPERATION_TIMEOUT,
            OPERATION_TIMEOUT_SECONDS.to_string(),
        ),
    ]
    .into();
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    let aws = config.load_aws("rotate").await;
    let secrets = aws_sdk_secretsmanager::config::Builder::from(&aws)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    Engine {
        client: aws_sdk_secretsmanager::Client::from_conf(secrets),
        aws,
        config,
        tls: stack.tls.clone(),
        publisher: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_aws_api_fails_the_step_in_bounded_time_and_a_rerun_converges() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let faults = [
        Fault::Throttling,
        Fault::ServerError,
        Fault::Hang,
        Fault::Gone,
    ];
    for fault in faults {
        for half_moved in [false, true] {
            let TestUser {
                secret_arn: arn,
                user,
                ..
            } = stack
                .db_user_with_secret(Db::Postgres, "awsfault", Mode::SecretsManager)
                .await;
            let (token, _) = driver.next_token(&arn).await.unwrap();
            // Without the half-moved finish, the API fails at setSecret, right after createSecret.
            let (before, step) = if half_moved {
                (&Step::ALL[..3], Step::Finish)
            } else {
                (&Step::ALL[..1], Step::Set)
            };
            for run in driver.run_steps(before, &arn, &token, None).await {
                run.result.expect("steps before the fault");
            }
            if half_moved {
                // finishSecret's first label move went through before the API failed.
                let labels = stack.labels(&arn).await;
                stack
                    .secrets
                    .update_secret_version_stage()
                    .secret_id(&arn)
                    .version_stage(AWSCURRENT)
                    .move_to_version_id(&token)
                    .set_remove_from_version_id(
                        version_with(&labels, AWSCURRENT).map(str::to_owned),
                    )
                    .send()
                    .await
                    .expect("first label move");
            }
            let labels_before = stack.labels(&arn).await;

            let port = free_port();
            let requests = fault_endpoint(port, fault).await;
            let engine = engine_at(&stack, port).await;
            let event = RotationEvent {
                step,
                secret_id: arn.clone(),
                client_request_token: token.clone(),
                rotation_token: None,
                context: RotationContext::default(),
            };
            let started = Instant::now();
            let error = engine
                .run(&event, Caller::Rotate)
                .await
                .expect_err("a step against the faulty API")
                .to_string();
            let elapsed = started.elapsed();
            let context = format!("{fault:?} half_moved={half_moved}: {error} after {elapsed:?}");
            println!(
                "{context}; requests seen: {}",
                requests.load(Ordering::SeqCst)
            );
            assert!(
                elapsed < Duration::from_secs(OPERATION_TIMEOUT_SECONDS + 2),
                "unbounded: {context}"
            );
            assert!(
                error.contains("DescribeSecret"),
                "the error names the call: {context}"
            );
            match fault {
                Fault::Throttling => assert!(error.contains("ThrottlingException"), "{context}"),
                Fault::ServerError => assert!(error.contains("InternalServiceError"), "{context}"),
                Fault::Hang => assert!(error.to_lowercase().contains("timeout"), "{context}"),
                Fault::Gone => {}
            }
            if matches!(fault, Fault::Throttling | Fault::ServerError) {
                assert_eq!(
                    requests.load(Ordering::SeqCst),
                    3,
                    "standard retry mode: 3 attempts ({context})"
                );
            }

            let labels = stack.labels(&arn).await;
            assert_eq!(labels, labels_before, "labels moved by the failed step");
            let holders = labels
                .values()
                .filter(|s| s.iter().any(|l| l == AWSCURRENT))
                .count();
            assert_eq!(holders, 1, "AWSCURRENT on one version: {labels:?}");
            let current = stack.credentials(&arn, AWSCURRENT).await.password;
            stack.assert_db_login(Db::Postgres, &user, &current).await;

            let rerun = driver.rotate(&arn).await.unwrap();
            assert_succeeded(&rerun);
            if !half_moved {
                assert_eq!(rerun.token, token, "the re-run resumes the rotation");
            }
            let current = stack.credentials(&arn, AWSCURRENT).await.password;
            stack.assert_db_login(Db::Postgres, &user, &current).await;
            assert!(stack
                .labels(&arn)
                .await
                .values()
                .all(|s| !s.iter().any(|l| l == AWSPENDING)));
        }
    }
}

/// The functions' engine against the stack's moto, publishing outcomes to an EventBridge
/// endpoint on `events_port`, each publish bounded by `publish_ms`.
async fn engine_publishing_to(stack: &Stack, events_port: u16, publish_ms: u64) -> Engine {
    let env: HashMap<&str, String> = [(
        rotation::config::ENV_PUBLISH_TIMEOUT,
        publish_ms.to_string(),
    )]
    .into();
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    let aws = config.load_aws("rotate").await;
    // A configuration of its own: the environment's service configuration (AWS_ENDPOINT_URL,
    // moto) would win over an endpoint set here.
    let events = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws.region().cloned().expect("a region"))
        .credentials_provider(aws.credentials_provider().expect("credentials"))
        .endpoint_url(format!("http://127.0.0.1:{events_port}"))
        .build();
    Engine {
        client: aws_sdk_secretsmanager::Client::new(&aws),
        publisher: Some(rotation::publisher::EventPublisher::new(
            &events,
            "rotation-local".into(),
            config.publish_timeout,
        )),
        aws,
        config,
        tls: stack.tls.clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_event_bus_delays_a_failing_step_by_the_publish_bound_and_its_real_error_is_reported(
) {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn, ..
    } = stack
        .db_user_with_secret(Db::Postgres, "pubhang", Mode::SecretsManager)
        .await;
    let events_port = free_port();
    let requests = fault_endpoint(events_port, Fault::Hang).await;
    let engine = engine_publishing_to(&stack, events_port, 1500).await;
    // setSecret with a token that is no version of the secret: the step fails at once
    // (BadToken), and its failure event goes to an EventBridge that never answers.
    let event = RotationEvent {
        step: Step::Set,
        secret_id: arn.clone(),
        client_request_token: uuid::Uuid::new_v4().to_string(),
        rotation_token: None,
        context: RotationContext::default(),
    };
    let deadline = rotation::deadline::Deadline::after(Duration::from_secs(30));
    let started = Instant::now();
    let failure =
        rotation::lambda::handle_until(&engine, Caller::Rotate, &event.to_value(), deadline)
            .await
            .expect_err("setSecret with an unknown token fails");
    let elapsed = started.elapsed();
    println!(
        "hung EventBridge: {} after {elapsed:?} ({} PutEvents)",
        failure.kind(),
        requests.load(Ordering::SeqCst)
    );
    assert_eq!(failure.kind(), "BadToken", "{}", failure.message());
    assert!(requests.load(Ordering::SeqCst) >= 1, "the event was sent");
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(4000),
        "publishing is bounded by ROTATION_PUBLISH_TIMEOUT_MILLISECONDS: {elapsed:?}"
    );

    // Less time left than the reserve for reporting: the step does not start its work, it
    // fails as Timeout, publishing takes only what is left less the report margin, and the
    // answer comes back before the deadline.
    let deadline = rotation::deadline::Deadline::after(Duration::from_millis(1800));
    let started = Instant::now();
    let failure =
        rotation::lambda::handle_until(&engine, Caller::Rotate, &event.to_value(), deadline)
            .await
            .expect_err("fails again");
    let elapsed = started.elapsed();
    println!("hung EventBridge, 1.8 s left: answered after {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1800), "{elapsed:?}");
    assert_eq!(failure.kind(), "Timeout", "{}", failure.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_that_runs_out_of_time_fails_as_timeout_before_the_deadline() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn, ..
    } = stack
        .db_user_with_secret(Db::Postgres, "outoftime", Mode::SecretsManager)
        .await;
    // Secrets Manager hangs; the SDK's own bounds (30 s) are longer than the time left.
    let port = free_port();
    let _requests = fault_endpoint(port, Fault::Hang).await;
    let env: HashMap<&str, String> = [
        (ENV_AWS_ATTEMPT_TIMEOUT, "30".to_owned()),
        (ENV_AWS_OPERATION_TIMEOUT, "60".to_owned()),
    ]
    .into();
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    let aws = config.load_aws("rotate").await;
    let secrets = aws_sdk_secretsmanager::config::Builder::from(&aws)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let engine = Engine {
        client: aws_sdk_secretsmanager::Client::from_conf(secrets),
        aws,
        config,
        tls: stack.tls.clone(),
        publisher: None,
    };
    let event = RotationEvent {
        step: Step::Create,
        secret_id: arn,
        client_request_token: uuid::Uuid::new_v4().to_string(),
        rotation_token: None,
        context: RotationContext::default(),
    };
    let left = Duration::from_secs(6);
    let started = Instant::now();
    let failure = rotation::lambda::handle_until(
        &engine,
        Caller::Rotate,
        &event.to_value(),
        rotation::deadline::Deadline::after(left),
    )
    .await
    .expect_err("the step cannot finish");
    let elapsed = started.elapsed();
    println!(
        "{} after {elapsed:?}: {}",
        failure.kind(),
        failure.message()
    );
    assert_eq!(failure.kind(), "Timeout");
    assert!(failure.message().contains("createSecret"));
    // Stopped the report reserve (publish bound 2 s + 1 s) before the 6 s deadline.
    assert!(
        elapsed >= Duration::from_millis(2800) && elapsed < Duration::from_millis(4000),
        "{elapsed:?}"
    );
}
