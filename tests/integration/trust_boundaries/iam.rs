//! IAM access keys: a writer of one secret names another IAM user, or records in a version a key
//! the secret never held. Before createSecret creates or deletes a key, the AWSCURRENT key must
//! authenticate (STS GetCallerIdentity signed with it) as exactly the user the secret names; it
//! deletes only the key AWSPREVIOUS records and proves, and reports any other key of the user
//! without deleting it. Access key ids are not secret (CloudTrail, error messages), so the
//! writer knows them. The stack checks STS signatures as AWS does (scripts/rds-recorder.py):
//! moto alone would accept any secret for a known key id.

use rotation::secrets_manager::{AWSCURRENT, AWSPREVIOUS};
use rotation::Mode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use test_support::iam::{AccessKey, IamTestUser, IamUser};
use test_support::Stack;

fn sorted(keys: &[&AccessKey]) -> Vec<String> {
    let mut ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    ids.sort();
    ids
}

/// A key id the writer knows, with a secret access key the writer made up.
fn forged(key: &AccessKey) -> AccessKey {
    AccessKey {
        id: key.id.clone(),
        secret: SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYMADEUPKEY1".to_owned()),
    }
}

/// Rotates `arn` once; returns the failure's type and message (the rotation must fail).
async fn refused(stack: &Stack, arn: &str) -> (Option<String>, String) {
    let run = stack
        .driver(Mode::SecretsManager)
        .rotate(arn)
        .await
        .unwrap();
    let failure = run.failure().expect("the rotation must be refused");
    (failure.error_type().map(str::to_owned), failure.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_naming_another_users_key_gets_no_key_created_or_deleted() {
    let stack = Stack::from_env().await;
    // The victim holds two keys; the writer knows their ids, not their secrets.
    let IamUser {
        user: victim,
        key: first,
    } = stack.iam_user("iamvictim").await;
    let second = stack.create_access_key(&victim).await;
    let value = Stack::iam_secret(&victim, &forged(&first));
    let arn = stack
        .create_rotating_secret(&Stack::unique("iamwriter"), &value, Mode::SecretsManager)
        .await;
    let labels = stack.labels(&arn).await;

    let (kind, message) = refused(&stack, &arn).await;
    assert_eq!(kind.as_deref(), Some("InvalidSecret"), "{message}");
    assert!(
        message.contains("must authenticate as the IAM user")
            && message.contains(&first.id)
            && message.contains("createSecret"),
        "{message}"
    );
    assert!(!message.contains(forged(&first).secret.expose_secret()));
    // Nothing changed: the victim's two keys, both working; no pending version.
    assert_eq!(stack.access_keys(&victim).await, sorted(&[&first, &second]));
    stack.assert_key_works(&victim, &first).await;
    stack.assert_key_works(&victim, &second).await;
    assert_eq!(stack.labels(&arn).await, labels);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_on_the_user_is_reported_and_never_deleted() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        key,
    } = stack
        .iam_user_with_secret("iamunknown", Mode::SecretsManager)
        .await;
    // An administrator's key on the same user, which no version of the secret records.
    let admin = stack.create_access_key(&user).await;
    let labels = stack.labels(&arn).await;

    let (kind, message) = refused(&stack, &arn).await;
    assert_eq!(kind.as_deref(), Some("Iam"), "{message}");
    assert!(
        message.contains(&admin.id)
            && message.contains("did not create")
            && message.contains("2 access keys per user"),
        "{message}"
    );
    assert!(!message.contains(admin.secret.expose_secret()));
    assert_eq!(stack.access_keys(&user).await, sorted(&[&key, &admin]));
    stack.assert_key_works(&user, &admin).await;
    stack.assert_key_works(&user, &key).await;
    assert_eq!(stack.labels(&arn).await, labels);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_previous_version_gets_no_other_key_deleted() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        key,
    } = stack
        .iam_user_with_secret("iamprevious", Mode::SecretsManager)
        .await;
    let admin = stack.create_access_key(&user).await;
    // The writer holds the user's own key (AWSCURRENT) and makes AWSPREVIOUS name the
    // administrator's key: a forged version put as AWSCURRENT, then the honest one again.
    let honest: Value = stack.value(&arn, AWSCURRENT).await;
    for value in [Stack::iam_secret(&user, &forged(&admin)), honest] {
        stack
            .secrets
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        stack.access_key(&arn, AWSPREVIOUS).await.id,
        admin.id,
        "the forged version is AWSPREVIOUS"
    );

    let (kind, message) = refused(&stack, &arn).await;
    assert_eq!(kind.as_deref(), Some("Iam"), "{message}");
    assert!(
        message.contains(&admin.id) && message.contains("did not create"),
        "{message}"
    );
    assert_eq!(stack.access_keys(&user).await, sorted(&[&key, &admin]));
    stack.assert_key_works(&user, &admin).await;
    stack.assert_key_works(&user, &key).await;
}
