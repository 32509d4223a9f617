//! Whatever the functions and the databases log during full rotations holds no password, no
//! secret access key, no key material and no RotationToken.

use std::time::Duration;

use rotation::Mode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use test_support::iam::IamTestUser;
use test_support::{assert_succeeded, AlternatingUser, Db, Stack, TestUser};

async fn read_log_until(path: &std::path::Path, needle: &str) -> String {
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never mentioned {needle}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_log_no_password_and_no_rotation_token() {
    let stack = Stack::from_env().await;
    let rotation_token = Stack::rotation_token();
    let mut secrets: Vec<SecretString> = vec![rotation_token.clone()];
    let mut rotated = Vec::new();

    for db in Db::ALL {
        // Single-user, through the rotate function.
        let TestUser {
            secret_arn: single,
            password: original,
            ..
        } = stack
            .db_user_with_secret(db, "logs", Mode::SecretsManager)
            .await;
        let driver = stack.driver(Mode::SecretsManager);
        for _ in 0..2 {
            assert_succeeded(
                &driver
                    .rotate_with(&single, Some(&rotation_token))
                    .await
                    .unwrap(),
            );
        }
        secrets.push(original);

        // Alternating users, through the step functions.
        let AlternatingUser { app, master } = stack
            .alternating_user_with_secret(db, "logalt", true, Mode::Workflow)
            .await;
        let alternating = app.secret_arn;
        let per_step = stack.driver(Mode::Workflow);
        for _ in 0..2 {
            assert_succeeded(
                &per_step
                    .rotate_with(&alternating, Some(&rotation_token))
                    .await
                    .unwrap(),
            );
        }
        secrets.extend([master.password, app.password]);
        rotated.extend([single, alternating]);
    }
    for arn in &rotated {
        secrets.extend(stack.all_passwords(arn).await);
    }
    // The RotationToken, 2 originals and a master password per engine, 3 versions per secret.
    assert_eq!(secrets.len(), 1 + 2 * 3 + 4 * 3, "collected every password");

    // IAM access keys through the rotate function; the inactive key is used before the second
    // rotation, so its revocation comes with a warning naming it.
    let driver = stack.driver(Mode::SecretsManager);
    let IamTestUser {
        secret_arn: iam,
        user: iam_user,
        key: first_key,
    } = stack
        .iam_user_with_secret("logiam", Mode::SecretsManager)
        .await;
    assert_succeeded(
        &driver
            .rotate_with(&iam, Some(&rotation_token))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stack.assert_key_works(&iam_user, &first_key).await;
    let run = driver
        .rotate_with(&iam, Some(&rotation_token))
        .await
        .unwrap();
    assert_succeeded(&run);
    assert!(!run.steps[0].result.as_ref().unwrap().warnings.is_empty());

    // A keyring through the step functions, long enough for a key to be destroyed.
    let per_step = stack.driver(Mode::Workflow);
    let keyring = stack
        .create_rotating_secret(
            &Stack::unique("logkeyring"),
            &json!({"provider": "keyring", "retentionRotations": 1, "keys": []}),
            Mode::Workflow,
        )
        .await;
    for _ in 0..3 {
        assert_succeeded(
            &per_step
                .rotate_with(&keyring, Some(&rotation_token))
                .await
                .unwrap(),
        );
    }
    secrets.push(first_key.secret.clone());
    let access_keys: Vec<SecretString> = stack
        .all_values(&iam)
        .await
        .iter()
        .filter_map(|v| v["SecretAccessKey"].as_str())
        .map(|s| SecretString::from(s.to_owned()))
        .collect();
    assert_eq!(access_keys.len(), 3, "three secret access keys");
    let materials: Vec<SecretString> = stack
        .all_values(&keyring)
        .await
        .iter()
        .flat_map(|v| v["keys"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| {
            k["material"]
                .as_str()
                .map(|m| SecretString::from(m.to_owned()))
        })
        .collect();
    assert!(
        materials.len() >= 3,
        "collected {} key materials",
        materials.len()
    );
    secrets.extend(access_keys);
    secrets.extend(materials);
    rotated.extend([iam, keyring]);

    let lambda_log = read_log_until(&stack.lambda_log, rotated.last().unwrap()).await;
    for arn in &rotated {
        assert!(
            lambda_log.contains(arn.as_str()),
            "the functions logged the rotation of {arn}"
        );
    }
    assert!(lambda_log.contains("rotation step succeeded"));
    assert!(
        lambda_log.contains(&first_key.id) && lambda_log.contains("last used"),
        "the revocation warning names the key id"
    );
    assert!(lambda_log.contains("rotated the keyring"));
    let pg_log = std::fs::read_to_string(&stack.pg_log).unwrap();
    assert!(
        pg_log.contains("ALTER ROLE"),
        "PostgreSQL's statement log is on"
    );
    let mysql_log = std::fs::read_to_string(&stack.mysql_log).unwrap();
    assert!(
        mysql_log.contains("SET PASSWORD") && mysql_log.contains("SHOW GRANTS"),
        "MariaDB's general log is on"
    );
    for secret in &secrets {
        let secret = secret.expose_secret();
        for (name, log) in [
            ("functions'", &lambda_log),
            ("PostgreSQL's", &pg_log),
            ("MariaDB's", &mysql_log),
        ] {
            assert!(
                !log.contains(secret),
                "a secret of length {} is in the {name} log",
                secret.len()
            );
        }
    }
}
