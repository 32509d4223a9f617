//! The encryption keyring rotated through the real functions, used through the consumer API
//! (`rotation_keyring::KeyringClient`) against moto's Secrets Manager.

use std::time::{Duration, SystemTime};

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::Mode;
use rotation::{Outcome, Step};
use rotation_keyring::{Keyring, KeyringClient, KeyringError};
use rotator::versions::version_with;
use serde_json::{json, Value};
use test_support::{assert_finished_labels, assert_succeeded, Stack};

fn new_keyring(retention: Value) -> Value {
    let mut value = json!({"provider": "keyring", "keys": []});
    for (k, v) in retention.as_object().unwrap() {
        value[k] = v.clone();
    }
    value
}

fn key_ids(value: &Value) -> Vec<String> {
    value["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn keyring_secret(stack: &Stack, retention: Value, functions: Mode) -> String {
    stack
        .create_rotating_secret(
            &Stack::unique("keyring"),
            &new_keyring(retention),
            functions,
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_rotations_with_a_six_rotation_retention() {
    let stack = Stack::from_env().await;
    let arn = keyring_secret(
        &stack,
        json!({"retentionRotations": 6}),
        Mode::SecretsManager,
    )
    .await;
    let driver = stack.driver(Mode::SecretsManager);
    let client = KeyringClient::new(stack.secrets.clone(), &arn).with_max_age(Duration::ZERO);
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    for round in 1..=30u64 {
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        let stored = stack.value(&arn, AWSCURRENT).await;
        let stored_keys = stored["keys"].as_array().unwrap();
        assert!(
            stored_keys.len() <= 7,
            "round {round}: {} keys",
            stored_keys.len()
        );
        assert_eq!(stored_keys.len() as u64, round.min(7), "round {round}");
        assert_eq!(stored_keys[0]["state"], "active");
        assert!(stored_keys[1..]
            .iter()
            .all(|k| k["state"] == "decrypt-only"));

        let keyring = client.refresh().await.unwrap();
        assert_eq!(keyring.active_key().unwrap().generation(), round);
        sealed.push(
            client
                .encrypt(format!("record {round}").as_bytes(), arn.as_bytes())
                .await
                .unwrap(),
        );
        for (i, ciphertext) in sealed.iter().enumerate() {
            let generation = i as u64 + 1;
            let retained = round - generation <= 6;
            match client.decrypt(ciphertext, arn.as_bytes()).await {
                Ok(plaintext) => {
                    assert!(
                        retained,
                        "round {round}: key {generation} outlived retention"
                    );
                    assert_eq!(plaintext, format!("record {generation}").as_bytes());
                }
                Err(KeyringError::Destroyed { key, reason }) => {
                    assert!(!retained, "round {round}: key {generation} destroyed early");
                    assert_eq!(key.generation(), generation);
                    assert!(reason.contains("retention"), "{reason}");
                }
                Err(e) => panic!("round {round}, key {generation}: {e}"),
            }
        }
    }
    // Secrets Manager still keeps older versions: AWSPREVIOUS carries generation 23, which
    // the last rotation destroyed. The client reads AWSCURRENT only, and refuses it.
    let previous = stack.value(&arn, AWSPREVIOUS).await;
    assert!(key_ids(&previous).iter().any(|id| id.starts_with("23-")));
    assert!(!key_ids(&stack.value(&arn, AWSCURRENT).await)
        .iter()
        .any(|id| id.starts_with("23-")));
    assert!(matches!(
        client.decrypt(&sealed[22], arn.as_bytes()).await,
        Err(KeyringError::Destroyed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_past_retention_hours_is_refused_even_while_a_version_still_carries_it() {
    let stack = Stack::from_env().await;
    // 0.002 hours = 7.2 s.
    let arn = keyring_secret(
        &stack,
        json!({"retentionHours": 0.002, "retentionRotations": 10}),
        Mode::SecretsManager,
    )
    .await;
    let driver = stack.driver(Mode::SecretsManager);
    let client = KeyringClient::new(stack.secrets.clone(), &arn).with_max_age(Duration::ZERO);
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let first = client.refresh().await.unwrap();
    let first_key = first.keys()[0];
    let ciphertext = client.encrypt(b"short-lived", b"").await.unwrap();
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    assert_eq!(
        client.decrypt(&ciphertext, b"").await.unwrap(),
        b"short-lived"
    );

    let expiry = first_key.created + Duration::from_millis(7_200 + 300);
    if let Ok(wait) = expiry.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let current = stack.value(&arn, AWSCURRENT).await;
    assert!(
        key_ids(&current).contains(&first_key.id.to_string()),
        "no rotation since: AWSCURRENT still carries the key"
    );
    match client.decrypt(&ciphertext, b"").await {
        Err(KeyringError::Destroyed { key, reason }) => {
            assert_eq!(key, first_key.id);
            assert!(reason.contains("retentionHours"), "{reason}");
        }
        other => panic!("a key past retention decrypted: {other:?}"),
    }

    // The next rotation leaves it out; the previous version still carries it, and refuses it.
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    assert!(!key_ids(&stack.value(&arn, AWSCURRENT).await).contains(&first_key.id.to_string()));
    let previous = stack.value(&arn, AWSPREVIOUS).await;
    assert!(key_ids(&previous).contains(&first_key.id.to_string()));
    let old = Keyring::parse(&previous.to_string()).unwrap();
    assert!(matches!(
        old.decrypt(&ciphertext, b""),
        Err(KeyringError::Destroyed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_a_ciphertext_or_its_header_is_detected() {
    let stack = Stack::from_env().await;
    let arn = keyring_secret(
        &stack,
        json!({"retentionRotations": 3}),
        Mode::SecretsManager,
    )
    .await;
    let driver = stack.driver(Mode::SecretsManager);
    for _ in 0..2 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let client = KeyringClient::new(stack.secrets.clone(), &arn);
    let ciphertext = client
        .encrypt(b"transfer 100 to alice", b"invoice-7")
        .await
        .unwrap();
    assert_eq!(
        client.decrypt(&ciphertext, b"invoice-7").await.unwrap(),
        b"transfer 100 to alice"
    );
    let flip = |i: usize| {
        let mut altered = ciphertext.clone();
        altered[i] ^= 0x01;
        altered
    };
    let check = |result: Result<Vec<u8>, KeyringError>, what: &str| match result {
        Ok(_) => panic!("{what}: the altered ciphertext decrypted"),
        Err(e) => e,
    };
    let e = check(client.decrypt(&flip(0), b"invoice-7").await, "magic");
    assert!(matches!(e, KeyringError::Malformed(_)), "{e}");
    let e = check(client.decrypt(&flip(2), b"invoice-7").await, "version");
    assert!(matches!(e, KeyringError::UnsupportedVersion(0)), "{e}");
    let e = check(client.decrypt(&flip(10), b"invoice-7").await, "generation");
    assert!(
        matches!(
            e,
            KeyringError::Destroyed { .. } | KeyringError::UnknownKey { .. }
        ),
        "{e}"
    );
    let e = check(client.decrypt(&flip(15), b"invoice-7").await, "key tag");
    assert!(matches!(e, KeyringError::UnknownKey { .. }), "{e}");
    for (i, what) in [
        (20, "nonce"),
        (35, "body"),
        (ciphertext.len() - 1, "GCM tag"),
    ] {
        let e = check(client.decrypt(&flip(i), b"invoice-7").await, what);
        assert!(matches!(e, KeyringError::Tampered), "{what}: {e}");
    }
    let e = check(
        client.decrypt(&ciphertext, b"invoice-8").await,
        "associated data",
    );
    assert!(matches!(e, KeyringError::Tampered), "{e}");
    let e = check(
        client.decrypt(&ciphertext[..30], b"invoice-7").await,
        "truncated",
    );
    assert!(matches!(e, KeyringError::Malformed(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_step_repeated_changes_nothing_and_a_crash_after_any_step_converges() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);

    let arn = keyring_secret(
        &stack,
        json!({"retentionRotations": 2}),
        Mode::SecretsManager,
    )
    .await;
    let (token, _) = driver.next_token(&arn).await.unwrap();
    for step in Step::ALL {
        let stage = if step == Step::Finish {
            AWSCURRENT
        } else {
            AWSPENDING
        };
        let first = driver.step(step, &arn, &token, None).await.result.unwrap();
        let labels = stack.labels(&arn).await;
        let value = stack.value(&arn, stage).await;
        let second = driver.step(step, &arn, &token, None).await.result.unwrap();
        assert_eq!(first.outcome, Outcome::Done, "{step}");
        let expected = match step {
            Step::Create => Outcome::AlreadyDone,
            Step::Set | Step::Test => Outcome::Done,
            Step::Finish => Outcome::AlreadyCurrent,
        };
        assert_eq!(second.outcome, expected, "{step} repeated");
        assert_eq!(stack.labels(&arn).await, labels, "{step} repeated: labels");
        assert_eq!(
            stack.value(&arn, stage).await,
            value,
            "{step} repeated: keyring"
        );
    }
    assert_eq!(key_ids(&stack.value(&arn, AWSCURRENT).await).len(), 1);

    for crash_after in 1..=Step::ALL.len() {
        let arn = keyring_secret(
            &stack,
            json!({"retentionRotations": 2}),
            Mode::SecretsManager,
        )
        .await;
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
        let before = stack.value(&arn, AWSCURRENT).await;
        let before_version = version_with(&stack.labels(&arn).await, AWSCURRENT)
            .unwrap()
            .to_owned();
        let client = KeyringClient::new(stack.secrets.clone(), &arn).with_max_age(Duration::ZERO);
        let ciphertext = client.encrypt(b"before the crash", b"").await.unwrap();
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let partial = driver
            .run_steps(&Step::ALL[..crash_after], &arn, &token, None)
            .await;
        assert!(partial.iter().all(|s| s.result.is_ok()));
        assert_eq!(
            client.decrypt(&ciphertext, b"").await.unwrap(),
            b"before the crash"
        );

        let rerun = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&rerun);
        let after = stack.value(&arn, AWSCURRENT).await;
        let generations = |v: &Value| -> Vec<u64> {
            key_ids(v)
                .iter()
                .map(|id| id.split('-').next().unwrap().parse().unwrap())
                .collect()
        };
        if crash_after < Step::ALL.len() {
            assert_finished_labels(&stack.labels(&arn).await, &token, &before_version);
            assert_eq!(generations(&after), vec![2, 1], "exactly one new key");
            assert_eq!(after["keys"][1], as_decrypt_only(&before["keys"][0]));
        } else {
            assert_eq!(generations(&after), vec![3, 2, 1]);
        }
        assert_eq!(
            client.decrypt(&ciphertext, b"").await.unwrap(),
            b"before the crash"
        );
    }
}

/// A key entry as the next rotation writes it: the same key, decrypt-only.
fn as_decrypt_only(entry: &Value) -> Value {
    let mut entry = entry.clone();
    entry["state"] = json!("decrypt-only");
    entry
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_through_the_step_functions() {
    let stack = Stack::from_env().await;
    let arn = keyring_secret(&stack, json!({"retentionHours": 6}), Mode::Workflow).await;
    let driver = stack.driver(Mode::Workflow);
    for _ in 0..2 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let keyring = KeyringClient::new(stack.secrets.clone(), &arn)
        .keyring()
        .await
        .unwrap();
    assert_eq!(keyring.keys().len(), 2);
    assert_eq!(keyring.retention().hours(), Some(6.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keyrings_and_forged_pending_versions_are_refused_clearly() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let material = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let key = |id: &str, state: &str, material: &str| json!({"id": id, "created": "2025-01-31T10:00:00Z", "state": state, "material": material});
    let cases = [
        (
            json!({"provider": "keyring", "keys": []}),
            "retentionRotations",
        ),
        (
            json!({"provider": "keyring", "retentionRotations": 0, "keys": []}),
            "`retentionRotations`",
        ),
        (
            json!({"provider": "keyring", "retentionHours": "6", "keys": []}),
            "`retentionHours`",
        ),
        (
            json!({"provider": "keyring", "retentionHours": 6}),
            "`keys`",
        ),
        (
            json!({"provider": "keyring", "retentionHours": 6, "keys": [key("1-0001020304050607", "active", "AAEC")]}),
            "`keys[0].material`",
        ),
        (
            json!({"provider": "keyring", "retentionHours": 6, "keys": [
                key("2-0001020304050607", "active", material),
                key("1-0001020304050608", "active", material)]}),
            "more than one key",
        ),
    ];
    for (value, needle) in cases {
        let arn = stack
            .create_rotating_secret(&Stack::unique("badkeyring"), &value, Mode::SecretsManager)
            .await;
        let labels = stack.labels(&arn).await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run.failure().unwrap_or_else(|| panic!("{needle}: rotated"));
        assert_eq!(failure.error_type(), Some("InvalidSecret"), "{failure}");
        let message = failure.to_string();
        assert!(
            message.contains(needle),
            "{message} should contain {needle}"
        );
        assert!(
            message.contains("createSecret") && message.contains(AWSCURRENT),
            "{message}"
        );
        assert!(!message.contains(material), "{message}");
        assert_eq!(stack.labels(&arn).await, labels);
    }

    // A pending version that is not one rotation of the current keyring: setSecret refuses it.
    let arn = keyring_secret(
        &stack,
        json!({"retentionRotations": 2}),
        Mode::SecretsManager,
    )
    .await;
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let current = stack.value(&arn, AWSCURRENT).await;
    let mut forged = current.clone();
    forged["keys"][0]["material"] = json!(material);
    let token = uuid::Uuid::new_v4().to_string();
    stack
        .secrets
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(&token)
        .secret_string(forged.to_string())
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    let run = driver.step(Step::Set, &arn, &token, None).await;
    let failure = run.result.unwrap_err();
    assert_eq!(failure.error_type(), Some("InvalidSecret"), "{failure}");
    assert!(failure.to_string().contains(AWSPENDING), "{failure}");
    assert!(!failure.to_string().contains(material));
    assert_eq!(stack.value(&arn, AWSCURRENT).await, current);
}
