//! Rotation outcomes leave the functions in two ways: an EventBridge event per outcome (moto's
//! EventBridge delivers it to an SQS queue through a rule) and CloudWatch metrics as Embedded
//! Metric Format lines in the functions' log. Neither carries a secret.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_eventbridge::types::Target;
use rotation::Mode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use test_support::{assert_succeeded, AlternatingUser, Db, Stack, TestUser};

/// An SQS queue receiving the outcome events of `secrets` from the stack's bus.
pub(crate) async fn subscribe(secrets: &[&str]) -> (aws_sdk_sqs::Client, String) {
    let aws = aws_config::load_from_env().await;
    let bus = std::env::var("ROTATION_EVENT_BUS").expect("ROTATION_EVENT_BUS: the stack's bus");
    assert!(!bus.is_empty(), "the stack publishes no events");
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let events = aws_sdk_eventbridge::Client::new(&aws);
    let name = Stack::unique("outcomes");
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("queue URL")
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue ARN")
        .to_owned();
    let pattern = json!({
        "source": [rotation::telemetry::EVENT_SOURCE],
        "detail": {"secretArn": secrets},
    });
    events
        .put_rule()
        .name(&name)
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("PutRule");
    events
        .put_targets()
        .rule(&name)
        .event_bus_name(&bus)
        .targets(
            Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutTargets");
    (sqs, queue_url)
}

/// Receives events from the queue until `count` arrived.
pub(crate) async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    count: usize,
) -> Vec<(String, Value)> {
    let mut received = Vec::new();
    for _ in 0..40 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("ReceiveMessage");
        for message in out.messages() {
            received.push(message.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
        }
        if received.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(received.len(), count, "events received: {received:#?}");
    received
        .into_iter()
        .map(|body| {
            let event: Value = serde_json::from_str(&body).expect("an event is JSON");
            (body, event)
        })
        .collect()
}

/// The EMF documents the functions logged for `secret_name`.
async fn emf_lines(stack: &Stack, secret_name: &str, at_least: usize) -> Vec<(String, Value)> {
    for _ in 0..50 {
        let log = std::fs::read_to_string(&stack.lambda_log).unwrap_or_default();
        let lines: Vec<(String, Value)> = log
            .lines()
            .filter(|l| l.contains("\"_aws\""))
            .filter_map(|l| {
                let start = l.find('{')?;
                let doc: Value = serde_json::from_str(&l[start..]).ok()?;
                (doc["SecretName"] == secret_name).then(|| (l.to_owned(), doc))
            })
            .collect();
        if lines.len() >= at_least {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {at_least} EMF lines for {secret_name}");
}

fn assert_no_secret(text: &str, secrets: &[SecretString]) {
    for secret in secrets {
        let secret = secret.expose_secret();
        assert!(
            !text.contains(secret),
            "a secret of length {} is in {text}",
            secret.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rotation_outcome_is_an_event_and_a_metric_without_secrets() {
    let stack = Stack::from_env().await;
    // Secrets Manager mode, single user, through rotate.
    let TestUser {
        secret_arn: single,
        password: single_original,
        ..
    } = stack
        .db_user_with_secret(Db::Postgres, "evsingle", Mode::SecretsManager)
        .await;
    // Workflow mode, alternating users, through the step functions.
    let AlternatingUser { app, master } = stack
        .alternating_user_with_secret(Db::Postgres, "evalt", false, Mode::Workflow)
        .await;
    let TestUser {
        secret_arn: alternating,
        password: alt_original,
        ..
    } = app;
    // A secret whose user does not exist: setSecret fails.
    let ghost = Stack::unique("evghost");
    let ghost_password = Stack::password();
    let broken = stack
        .create_rotating_secret(
            &Stack::unique("evghost"),
            &stack.db_secret(Db::Postgres, &ghost, &ghost_password),
            Mode::SecretsManager,
        )
        .await;

    let (sqs, queue) = subscribe(&[&single, &alternating, &broken]).await;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&single)
            .await
            .unwrap(),
    );
    assert_succeeded(
        &stack
            .driver(Mode::Workflow)
            .rotate(&alternating)
            .await
            .unwrap(),
    );
    let failed_run = stack
        .driver(Mode::SecretsManager)
        .rotate(&broken)
        .await
        .unwrap();
    assert!(
        !failed_run.succeeded(),
        "the ghost user's rotation must fail"
    );

    let events = receive(&sqs, &queue, 3).await;
    let by_secret: HashMap<String, &Value> = events
        .iter()
        .map(|(_, e)| (e["detail"]["secretArn"].as_str().unwrap().to_owned(), e))
        .collect();
    let single_event = by_secret[&single];
    assert_eq!(single_event["source"], "secret-rotation");
    assert_eq!(single_event["detail-type"], "Secret Rotation Succeeded");
    let detail = &single_event["detail"];
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["mode"], "secrets-manager");
    assert_eq!(detail["function"], "rotate");
    assert_eq!(detail["step"], "finishSecret");
    assert_eq!(detail["provider"], "postgres");
    assert_eq!(detail["strategy"], "single-user");
    assert!(detail["rotationDurationMs"].as_u64().is_some(), "{detail}");

    let alt_detail = &by_secret[&alternating]["detail"];
    assert_eq!(
        by_secret[&alternating]["detail-type"],
        "Secret Rotation Succeeded"
    );
    assert_eq!(alt_detail["mode"], "workflow");
    assert_eq!(alt_detail["function"], "finish-secret");
    assert_eq!(alt_detail["provider"], "postgres");
    assert_eq!(alt_detail["strategy"], "alternating-users");
    assert!(
        alt_detail["rotationDurationMs"].as_u64().is_some(),
        "{alt_detail}"
    );

    let failed = &by_secret[&broken];
    assert_eq!(failed["detail-type"], "Secret Rotation Failed");
    assert_eq!(failed["detail"]["status"], "failed");
    assert_eq!(failed["detail"]["step"], "setSecret");
    assert_eq!(failed["detail"]["errorType"], "NoWorkingCredential");
    assert!(failed["detail"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains(&ghost));

    let mut secrets = vec![
        single_original,
        alt_original,
        master.password,
        ghost_password,
    ];
    secrets.extend(stack.all_passwords(&single).await);
    secrets.extend(stack.all_passwords(&alternating).await);
    for (body, _) in &events {
        assert_no_secret(body, &secrets);
    }

    // Metrics: one EMF line per step; the finishing step counts a success, the failed one a
    // failure.
    let name_of = |arn: &str| {
        by_secret[arn]["detail"]["secretName"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let single_lines = emf_lines(&stack, &name_of(&single), 4).await;
    let finish = single_lines
        .iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["Step"] == "finishSecret")
        .expect("finishSecret's EMF line");
    let directive = &finish["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "SecretRotation");
    assert_eq!(
        directive["Dimensions"],
        json!([["Service"], ["Service", "SecretName"]])
    );
    assert_eq!(finish["RotationSucceeded"], 1);
    assert_eq!(finish["RotationFailed"], 0);
    assert!(finish["RotationDuration"].as_u64().is_some(), "{finish}");
    assert_eq!(finish["Provider"], "postgres");
    let alt_lines = emf_lines(&stack, &name_of(&alternating), 4).await;
    assert!(alt_lines
        .iter()
        .any(|(_, doc)| doc["Function"] == "finish-secret" && doc["RotationSucceeded"] == 1));
    let broken_lines = emf_lines(&stack, &name_of(&broken), 2).await;
    assert!(broken_lines
        .iter()
        .any(|(_, doc)| doc["Step"] == "setSecret"
            && doc["RotationFailed"] == 1
            && doc["ErrorType"] == "NoWorkingCredential"));
    for (line, _) in single_lines.iter().chain(&alt_lines).chain(&broken_lines) {
        assert_no_secret(line, &secrets);
    }
}
