//! Attacks on the compromise trigger, through the real `compromise` function against moto: a
//! principal that may send "Secret Compromised" events (or an event delivered again, or a
//! Lambda retry) tries to rotate more than one incident warrants. Each incident rotates a
//! secret once, a repeated incident changes nothing, the bounds refuse clearly, and a keyring
//! loses at most one generation per incident. (Who may send the event at all is the bus
//! policy's job: see tests/integration/template.rs.)

use std::collections::BTreeMap;
use std::time::SystemTime;

use rotation::compromise::bounds::{DEFAULT_MAX_ROTATIONS_PER_HOUR, DEFAULT_MAX_SECRETS};
use rotation::compromise::incident::RECORD_TAG;
use rotation::config::{ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR, ENV_COMPROMISE_MAX_SECRETS};
use rotation::mode::MODE_TAG;
use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use rotation_keyring::Keyring;
use rotator::invoke::InvokeError;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::{Credentials, Db, Stack, TestUser};

/// Every version of a secret, deprecated ones included, with its sorted labels.
async fn versions(stack: &Stack, arn: &str) -> BTreeMap<String, Vec<String>> {
    let out = stack
        .secrets
        .list_secret_version_ids()
        .secret_id(arn)
        .include_deprecated(true)
        .send()
        .await
        .expect("ListSecretVersionIds");
    out.versions()
        .iter()
        .map(|v| {
            let mut stages = v.version_stages().to_vec();
            stages.sort();
            (v.version_id().unwrap().to_owned(), stages)
        })
        .collect()
}

/// A secret's tags.
async fn tags(stack: &Stack, arn: &str) -> BTreeMap<String, String> {
    let out = stack
        .secrets
        .describe_secret()
        .secret_id(arn)
        .send()
        .await
        .expect("DescribeSecret");
    out.tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Everything the response could change on a secret: versions, labels and tags.
async fn state(
    stack: &Stack,
    arn: &str,
) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, String>) {
    (versions(stack, arn).await, tags(stack, arn).await)
}

fn incident_event(incident: &str, detail: Value) -> Value {
    let mut detail = detail;
    detail["incident"] = json!(incident);
    json!({
        "source": rotation::compromise::request::SOURCE,
        "detail-type": rotation::compromise::request::DETAIL_TYPE,
        "detail": detail,
    })
}

async fn send(stack: &Stack, event: &Value) -> Result<Value, InvokeError> {
    stack
        .driver(Mode::SecretsManager)
        .invoker()
        .invoke("compromise", event)
        .await
}

/// The report's entry for `arn`.
fn entry<'a>(report: &'a Value, arn: &str) -> &'a Value {
    report["retired"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e["plan"]["secretArn"] == arn))
        .unwrap_or_else(|| panic!("{arn} is not in the report: {report}"))
}

/// A keyring of `keys` generations (the newest active) keeping `retention` rotations.
fn keyring_with(keys: usize, retention: u32) -> Value {
    let mut text =
        json!({"provider": "keyring", "retentionRotations": retention, "keys": []}).to_string();
    for _ in 0..keys {
        let keyring = Keyring::parse(&text).unwrap();
        text = keyring
            .rotate(SystemTime::now())
            .unwrap()
            .keyring
            .to_json()
            .expose_secret()
            .to_owned();
    }
    serde_json::from_str(&text).unwrap()
}

fn key_ids(value: &Value) -> Vec<String> {
    value["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_incident_twice_changes_nothing_the_second_time() {
    let stack = Stack::from_env().await;
    let incident = Stack::unique("INC");

    // Single user, Secrets Manager mode (a rotation is pending, as RotateSecret leaves it).
    let single = stack
        .db_user_with_secret(Db::Postgres, "cmponce", Mode::SecretsManager)
        .await
        .secret_arn;
    // Alternating users, workflow mode: two rotations per incident.
    let TestUser {
        secret_arn: alternating,
        user,
        password: original,
    } = stack
        .alternating_user_with_secret(Db::Postgres, "cmponcealt", false, Mode::Workflow)
        .await
        .app;

    let event = incident_event(&incident, json!({"secretIds": [single, alternating]}));
    let first = send(&stack, &event)
        .await
        .unwrap_or_else(|e| panic!("the first response failed: {e}"));
    assert_eq!(entry(&first, &single)["alreadyRetired"], false, "{first}");
    assert_eq!(
        entry(&first, &alternating)["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    let after_first = [
        state(&stack, &single).await,
        state(&stack, &alternating).await,
    ];
    for (_, tags) in &after_first {
        assert_eq!(tags.get(RECORD_TAG), Some(&incident), "{tags:?}");
    }

    // The same incident again (a second event, a redelivery): nothing changes.
    let second = send(&stack, &event)
        .await
        .unwrap_or_else(|e| panic!("the second response failed: {e}"));
    for arn in [&single, &alternating] {
        assert_eq!(entry(&second, arn)["alreadyRetired"], true, "{second}");
        assert_eq!(entry(&second, arn)["versions"], json!([]), "{second}");
    }
    let after_second = [
        state(&stack, &single).await,
        state(&stack, &alternating).await,
    ];
    assert_eq!(
        after_second, after_first,
        "the second response changed a secret"
    );

    // A retry of an attempt that died after its rotations but before recording them (the
    // record removed to stand for it) rotates nothing again: its versions are the incident's.
    stack
        .secrets
        .untag_resource()
        .secret_id(&alternating)
        .tag_keys(RECORD_TAG)
        .send()
        .await
        .expect("UntagResource");
    let retry = send(&stack, &event)
        .await
        .unwrap_or_else(|e| panic!("the retry failed: {e}"));
    assert_eq!(entry(&retry, &alternating)["alreadyRetired"], false);
    assert_eq!(
        state(&stack, &alternating).await,
        after_first[1],
        "the retry rotated again"
    );

    // The current credentials still work.
    for arn in [&single, &alternating] {
        stack
            .assert_stage_logs_in(Db::Postgres, arn, AWSCURRENT)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_hourly_bound_a_secret_is_refused_and_left_as_it_was() {
    let stack = Stack::from_env().await;
    let arn = stack
        .db_user_with_secret(Db::Postgres, "cmphourly", Mode::Workflow)
        .await
        .secret_arn;
    // Distinct incidents, each one rotation, until the secret has as many versions as the bound
    // allows in an hour (its first version counts: it was created moments ago).
    let mut incidents = 0;
    while versions(&stack, &arn).await.len() < DEFAULT_MAX_ROTATIONS_PER_HOUR {
        incidents += 1;
        let event = incident_event(&Stack::unique("INC"), json!({"secretIds": [arn]}));
        send(&stack, &event)
            .await
            .unwrap_or_else(|e| panic!("incident {incidents} failed: {e}"));
        assert!(
            incidents < DEFAULT_MAX_ROTATIONS_PER_HOUR,
            "no version was added"
        );
    }
    let before = state(&stack, &arn).await;
    let Credentials { user, password } = stack.credentials(&arn, AWSCURRENT).await;

    let event = incident_event(&Stack::unique("INC"), json!({"secretIds": [arn]}));
    match send(&stack, &event).await {
        Err(InvokeError::Function { message, .. }) => {
            for needle in [
                ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR,
                arn.as_str(),
                "nothing was rotated",
                "versions were created in the last hour",
            ] {
                assert!(message.contains(needle), "{message} should name {needle}");
            }
            assert!(message.contains("refused: "), "{message}");
            assert!(!message.contains(password.expose_secret()));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        state(&stack, &arn).await,
        before,
        "the refused response changed the secret"
    );
    stack.assert_db_login(Db::Postgres, &user, &password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_secrets_per_incident_bound_nothing_rotates() {
    let stack = Stack::from_env().await;
    let scope = Stack::unique("scope");
    let mut arns = Vec::new();
    for _ in 0..=DEFAULT_MAX_SECRETS {
        let arn = stack
            .create_tagged_secret(
                &Stack::unique("cmpmany"),
                &keyring_with(1, 2),
                &[(MODE_TAG, "workflow"), ("incident-scope", &scope)],
            )
            .await;
        arns.push(arn);
    }
    let mut before = Vec::new();
    for arn in &arns {
        before.push(state(&stack, arn).await);
    }
    let event = incident_event(
        &Stack::unique("INC"),
        json!({"tags": {"incident-scope": scope}}),
    );
    match send(&stack, &event).await {
        Err(InvokeError::Function {
            error_type,
            message,
            ..
        }) => {
            assert_eq!(error_type, "LimitExceeded", "{message}");
            let count = format!("selects {} secrets", DEFAULT_MAX_SECRETS + 1);
            for needle in [
                ENV_COMPROMISE_MAX_SECRETS,
                count.as_str(),
                "nothing was rotated",
            ] {
                assert!(message.contains(needle), "{message} should name {needle}");
            }
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    for (arn, before) in arns.iter().zip(before) {
        assert_eq!(state(&stack, arn).await, before, "{arn} changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyring_hit_by_repeated_incidents_loses_at_most_one_generation_per_incident() {
    let stack = Stack::from_env().await;
    // Three generations kept (retention 2 rotations): each rotation destroys the oldest.
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("cmpkeyring"),
            &keyring_with(3, 2),
            Mode::Workflow,
        )
        .await;
    let mut keys = key_ids(&stack.value(&arn, AWSCURRENT).await);
    assert_eq!(keys.len(), 3);
    // Versions allowed this hour beyond the keyring's first: one incident each.
    let incidents = DEFAULT_MAX_ROTATIONS_PER_HOUR - 1;
    for round in 0..incidents {
        let incident = Stack::unique("INC");
        let event = incident_event(&incident, json!({"secretIds": [arn]}));
        // The incident sent three times (a second event, a redelivery, a retry).
        for attempt in 0..3 {
            send(&stack, &event)
                .await
                .unwrap_or_else(|e| panic!("round {round} attempt {attempt}: {e}"));
        }
        let now = key_ids(&stack.value(&arn, AWSCURRENT).await);
        let lost: Vec<&String> = keys.iter().filter(|k| !now.contains(k)).collect();
        assert_eq!(
            lost,
            vec![keys.last().unwrap()],
            "round {round}: lost {lost:?}"
        );
        assert_eq!(now.len(), 3, "round {round}");
        assert_eq!(now[1..], keys[..2], "round {round}");
        keys = now;
    }
    // One incident more would pass the hourly bound: refused, the keyring untouched.
    let before = state(&stack, &arn).await;
    let event = incident_event(&Stack::unique("INC"), json!({"secretIds": [arn]}));
    let err = send(&stack, &event)
        .await
        .expect_err("past the hourly bound");
    assert!(
        err.to_string()
            .contains(ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR),
        "{err}"
    );
    assert_eq!(state(&stack, &arn).await, before);
    assert_eq!(key_ids(&stack.value(&arn, AWSCURRENT).await), keys);
}
