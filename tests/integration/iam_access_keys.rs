//! IAM access key rotation (dual-phase) through the real functions, against moto's IAM and STS.
//!
//! STS requests go through the stack's proxy, which checks signatures and refuses Inactive keys
//! as AWS does (moto alone does neither), so "a key works" means a request signed with it
//! authenticates as the user; revocation is by deletion and is proven by the key's absence from
//! IAM and STS.

use std::time::Duration;

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::Mode;
use rotation::{Outcome, Step};
use rotator::versions::version_with;
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::iam::{AccessKey, IamTestUser, IamUser};
use test_support::{assert_finished_labels, assert_succeeded, Stack};

fn sorted(ids: [&str; 2]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn three_rotations_show_active_inactive_then_revoked() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        key: original,
    } = stack
        .iam_user_with_secret("iamcycle", Mode::SecretsManager)
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let mut history: Vec<AccessKey> = vec![original];
    for round in 1..=3 {
        let before = stack.labels(&arn).await;
        let previous_version = version_with(&before, AWSCURRENT).unwrap().to_owned();
        let run = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&run);
        assert_finished_labels(&stack.labels(&arn).await, &run.token, &previous_version);
        let create = run.steps[0].result.as_ref().unwrap();
        assert_eq!(create.provider.as_deref(), Some("iam-access-key"));
        assert_eq!(create.strategy.as_deref(), Some("dual-phase"));
        for step in &run.steps {
            let report = step.result.as_ref().unwrap();
            assert!(
                report.warnings.is_empty(),
                "round {round}: {:?}",
                report.warnings
            );
        }

        let current = stack.access_key(&arn, AWSCURRENT).await;
        let previous = stack.access_key(&arn, AWSPREVIOUS).await;
        assert_eq!(previous.id, history.last().unwrap().id, "round {round}");
        assert!(history.iter().all(|k| k.id != current.id), "a new key");
        // Active: the new key authenticates as the user.
        stack.assert_key_works(&user, &current).await;
        // Inactive: exactly the current and the previous key exist, both Active in IAM.
        assert_eq!(
            stack.access_keys(&user).await,
            sorted([&current.id, &previous.id])
        );
        // Revoked: every older key is gone.
        for old in &history[..history.len() - 1] {
            stack.assert_key_revoked(&user, old).await;
        }
        history.push(current);
    }
    // The inactive key still works until the next rotation (used only now: a use would be
    // reported by the next rotation).
    let previous = stack.access_key(&arn, AWSPREVIOUS).await;
    stack.assert_key_works(&user, &previous).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotates_through_the_step_functions_keeping_camel_case_fields() {
    let stack = Stack::from_env().await;
    let IamUser {
        user,
        key: original,
    } = stack.iam_user("iamcamel").await;
    let value = json!({
        "provider": "iam-access-key",
        "userName": user,
        "accessKeyId": original.id,
        "secretAccessKey": original.secret.expose_secret(),
        "team": "deployments",
    });
    let arn = stack
        .create_rotating_secret(&Stack::unique("iamcamel"), &value, Mode::Workflow)
        .await;
    let run = stack.driver(Mode::Workflow).rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    let current = stack.value(&arn, AWSCURRENT).await;
    assert_eq!(current["userName"], json!(user));
    assert_eq!(current["team"], "deployments");
    assert!(current.get("AccessKeyId").is_none() && current.get("SecretAccessKey").is_none());
    let key = stack.access_key(&arn, AWSCURRENT).await;
    assert_ne!(key.id, original.id);
    stack.assert_key_works(&user, &key).await;
    assert_eq!(
        stack.access_keys(&user).await,
        sorted([&key.id, &original.id])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_step_repeated_changes_nothing() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        key: original,
    } = stack
        .iam_user_with_secret("iamrepeat", Mode::SecretsManager)
        .await;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(&arn).await.unwrap();
    for step in Step::ALL {
        let stage = if step == Step::Finish {
            AWSCURRENT
        } else {
            AWSPENDING
        };
        let first = driver.step(step, &arn, &token, None).await.result.unwrap();
        let keys = stack.access_keys(&user).await;
        let labels = stack.labels(&arn).await;
        let value = stack.value(&arn, stage).await;
        let second = driver.step(step, &arn, &token, None).await.result.unwrap();
        assert_eq!(first.outcome, Outcome::Done, "{step} first run");
        let expected = match step {
            Step::Create => Outcome::AlreadyDone,
            Step::Set | Step::Test => Outcome::Done,
            Step::Finish => Outcome::AlreadyCurrent,
        };
        assert_eq!(second.outcome, expected, "{step} repeated");
        assert_eq!(
            stack.access_keys(&user).await,
            keys,
            "{step} repeated: keys"
        );
        assert_eq!(
            keys.len(),
            2,
            "{step}: the original key and exactly one new key"
        );
        assert_eq!(stack.labels(&arn).await, labels, "{step} repeated: labels");
        assert_eq!(
            stack.value(&arn, stage).await,
            value,
            "{step} repeated: value"
        );
    }
    let current = stack.access_key(&arn, AWSCURRENT).await;
    stack.assert_key_works(&user, &current).await;
    stack.assert_key_works(&user, &original).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_step_is_recovered_by_running_the_rotation_again() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    for crash_after in 1..=Step::ALL.len() {
        let IamTestUser {
            secret_arn: arn,
            user,
            key: original,
        } = stack
            .iam_user_with_secret("iamcrash", Mode::SecretsManager)
            .await;
        let before = stack.labels(&arn).await;
        let original_version = version_with(&before, AWSCURRENT).unwrap().to_owned();
        let (token, _) = driver.next_token(&arn).await.unwrap();
        let partial = driver
            .run_steps(&Step::ALL[..crash_after], &arn, &token, None)
            .await;
        assert!(
            partial.iter().all(|s| s.result.is_ok()),
            "steps before the crash"
        );
        // Whatever the crash left, the AWSCURRENT key works.
        let current = stack.access_key(&arn, AWSCURRENT).await;
        stack.assert_key_works(&user, &current).await;

        let rerun = driver.rotate(&arn).await.unwrap();
        assert_succeeded(&rerun);
        let new = stack.access_key(&arn, AWSCURRENT).await;
        if crash_after < Step::ALL.len() {
            assert!(rerun.resumed, "the re-run resumes the interrupted rotation");
            assert_finished_labels(&stack.labels(&arn).await, &token, &original_version);
            assert_eq!(
                stack.access_keys(&user).await,
                sorted([&new.id, &original.id])
            );
        } else {
            assert!(!rerun.resumed, "a finished rotation is not resumed");
            assert_finished_labels(&stack.labels(&arn).await, &rerun.token, &token);
            stack.assert_key_revoked(&user, &original).await;
        }
        stack.assert_key_works(&user, &new).await;
        assert_eq!(stack.access_keys(&user).await.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_left_by_an_interrupted_create_secret_is_named_not_deleted() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        key: original,
    } = stack
        .iam_user_with_secret("iamorphan", Mode::SecretsManager)
        .await;
    // createSecret created a key, then crashed before storing it: the user holds a key no
    // version of the secret records. Rotation deletes only keys the secret owns, so it stops,
    // naming the key, and changes nothing.
    let orphan = stack.create_access_key(&user).await;
    let driver = stack.driver(Mode::SecretsManager);
    let run = driver.rotate(&arn).await.unwrap();
    let failure = run.failure().expect("the user has no free key slot");
    let message = failure.to_string();
    assert!(
        message.contains(&orphan.id) && message.contains("did not create"),
        "{message}"
    );
    assert_eq!(
        stack.access_keys(&user).await,
        sorted([&original.id, &orphan.id])
    );
    stack.assert_key_works(&user, &original).await;
    // Once an administrator deleted it, the rotation goes through.
    stack
        .iam
        .delete_access_key()
        .user_name(&user)
        .access_key_id(&orphan.id)
        .send()
        .await
        .unwrap();
    assert_succeeded(&driver.rotate(&arn).await.unwrap());
    let current = stack.access_key(&arn, AWSCURRENT).await;
    assert_eq!(
        stack.access_keys(&user).await,
        sorted([&current.id, &original.id])
    );
    stack.assert_key_works(&user, &current).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_used_after_the_previous_rotation_is_reported_or_kept_in_strict_mode() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    // Strict mode keeps a key in use, except during an incident (the secret's
    // rotation-compromise tag): the key in use may be the leaked one.
    for (strict, incident) in [(false, None), (true, None), (true, Some("INC-7"))] {
        let IamUser { user, key: first } = stack.iam_user("iamused").await;
        let mut value = Stack::iam_secret(&user, &first);
        if strict {
            value["strictRevocation"] = json!(true);
        }
        let arn = stack
            .create_rotating_secret(&Stack::unique("iamused"), &value, Mode::SecretsManager)
            .await;
        if let Some(incident) = incident {
            stack
                .tag_secret(&arn, rotation::compromise_marker::TAG, incident)
                .await;
        }
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
        let second = stack.access_key(&arn, AWSCURRENT).await;
        // An application still signs requests with the now inactive key, a second later.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        stack.assert_key_works(&user, &first).await;
        let labels = stack.labels(&arn).await;

        let run = driver.rotate(&arn).await.unwrap();
        if strict && incident.is_none() {
            let failure = run.failure().expect("strict mode refuses");
            assert_eq!(failure.error_type(), Some("RevocationRefused"), "{failure}");
            let message = failure.to_string();
            assert!(
                message.contains(&first.id) && message.contains("strict"),
                "{message}"
            );
            assert!(!message.contains(first.secret.expose_secret()));
            assert_eq!(run.steps.len(), 1, "stopped at createSecret");
            // Nothing changed: the same two keys, both valid, the same labels.
            assert_eq!(
                stack.access_keys(&user).await,
                sorted([&first.id, &second.id])
            );
            stack.assert_key_works(&user, &first).await;
            stack.assert_key_works(&user, &second).await;
            assert_eq!(stack.labels(&arn).await, labels);
        } else {
            assert_succeeded(&run);
            let warnings = &run.steps[0].result.as_ref().unwrap().warnings;
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(&first.id) && w.contains("last used")),
                "{warnings:?}"
            );
            assert!(warnings
                .iter()
                .all(|w| !w.contains(first.secret.expose_secret())));
            if let Some(incident) = incident {
                assert!(
                    warnings.iter().any(|w| w.contains(incident)),
                    "{warnings:?}"
                );
            }
            stack.assert_key_revoked(&user, &first).await;
            let current = stack.access_key(&arn, AWSCURRENT).await;
            stack.assert_key_works(&user, &current).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_secrets_fail_clearly_and_change_nothing() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let IamUser { user, key } = stack.iam_user("iambad").await;
    let IamUser {
        user: other_user,
        key: other_key,
    } = stack.iam_user("iambadother").await;
    let good = Stack::iam_secret(&user, &key);
    let mut cases = Vec::new();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("UserName");
    cases.push((missing, "InvalidSecret", "`UserName`"));
    let mut both = good.clone();
    both["accessKeyId"] = json!(key.id);
    cases.push((both, "InvalidSecret", "`accessKeyId`"));
    let mut typed = good.clone();
    typed["SecretAccessKey"] = json!(["not", "a", "string"]);
    cases.push((typed, "InvalidSecret", "`SecretAccessKey`"));
    let mut wrong_user = good.clone();
    wrong_user["UserName"] = json!(other_user);
    cases.push((wrong_user, "InvalidSecret", "is not a key of IAM user"));
    let mut no_user = good.clone();
    no_user["UserName"] = json!(Stack::unique("nosuchuser"));
    // IAM authorizes before it looks the user up: a user that does not exist has no path, so
    // under the template's IamUserPath the call is refused as AWS refuses it.
    cases.push((no_user, "Iam", "AccessDenied"));
    let mut provider = good.clone();
    provider["provider"] = json!("iam-acess-key");
    cases.push((provider, "InvalidSecret", "`provider`"));

    for (value, error_type, needle) in cases {
        let arn = stack
            .create_rotating_secret(&Stack::unique("iambad"), &value, Mode::SecretsManager)
            .await;
        let labels = stack.labels(&arn).await;
        let run = driver.rotate(&arn).await.unwrap();
        let failure = run.failure().unwrap_or_else(|| panic!("{needle}: rotated"));
        let message = failure.to_string();
        assert_eq!(failure.error_type(), Some(error_type), "{message}");
        assert!(
            message.contains(needle),
            "{message} should contain {needle}"
        );
        assert!(message.contains("createSecret"), "{message} names the step");
        assert!(!message.contains(key.secret.expose_secret()), "{message}");
        assert_eq!(stack.labels(&arn).await, labels);
    }
    // Nothing was created or deleted.
    assert_eq!(stack.access_keys(&user).await, vec![key.id.clone()]);
    assert_eq!(
        stack.access_keys(&other_user).await,
        vec![other_key.id.clone()]
    );
    stack.assert_key_works(&user, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_key_that_is_not_the_users_is_refused_by_set_and_test() {
    let stack = Stack::from_env().await;
    let driver = stack.driver(Mode::SecretsManager);
    let IamTestUser {
        secret_arn: arn,
        user,
        key,
    } = stack
        .iam_user_with_secret("iamforged", Mode::SecretsManager)
        .await;
    let other_key = stack.iam_user("iamforgedother").await.key;
    let unknown = AccessKey {
        id: "AKIAUNKNOWNKEY000001".into(),
        secret: other_key.secret.clone(),
    };
    for forged in [other_key, unknown] {
        let token = uuid::Uuid::new_v4().to_string();
        let labels = stack.labels(&arn).await;
        let pending = version_with(&labels, AWSPENDING).map(str::to_owned);
        stack
            .secrets
            .update_secret_version_stage()
            .secret_id(&arn)
            .version_stage(AWSPENDING)
            .set_remove_from_version_id(pending)
            .send()
            .await
            .unwrap();
        stack
            .secrets
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&token)
            .secret_string(Stack::iam_secret(&user, &forged).to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        for step in [Step::Set, Step::Test] {
            let failure = driver
                .step(step, &arn, &token, None)
                .await
                .result
                .unwrap_err();
            assert_eq!(failure.error_type(), Some("TestFailed"), "{failure}");
            let message = failure.to_string();
            // Another user's key authenticates as that user; a key IAM does not know does
            // not authenticate (AWS answers InvalidClientTokenId).
            assert!(
                message.contains(&forged.id)
                    && (message.contains("not as IAM user")
                        || message.contains("InvalidClientTokenId")),
                "{message}"
            );
            assert!(
                !message.contains(forged.secret.expose_secret()),
                "{message}"
            );
        }
    }
    assert_eq!(stack.access_keys(&user).await, vec![key.id.clone()]);
    stack.assert_key_works(&user, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn set_secret_waits_for_a_new_key_to_propagate_within_its_bound() {
    let stack = Stack::from_env().await;
    let IamTestUser {
        secret_arn: arn,
        user,
        ..
    } = stack
        .iam_user_with_secret("iamprop", Mode::SecretsManager)
        .await;
    // IAM refuses the new key for 4 s after CreateAccessKey, as AWS does until it propagated
    // (the functions' bound, ROTATION_IAM_PROPAGATION_TIMEOUT_SECONDS, is 30 s).
    stack.iam_propagation_seconds(&user, 4);
    let driver = stack.driver(Mode::SecretsManager);
    let run = driver.rotate(&arn).await.unwrap();
    assert_succeeded(&run);
    let set = &run.steps[1];
    println!("setSecret accepted the new key after {:?}", set.elapsed);
    assert!(
        set.elapsed >= Duration::from_millis(3500) && set.elapsed < Duration::from_secs(15),
        "setSecret waited for propagation, bounded: {:?}",
        set.elapsed
    );
    let current = stack.access_key(&arn, AWSCURRENT).await;
    stack.assert_key_works(&user, &current).await;
    // Only the AWSPREVIOUS key is kept besides it; nothing else was deleted or added.
    let previous = stack.access_key(&arn, AWSPREVIOUS).await;
    assert_eq!(
        stack.access_keys(&user).await,
        sorted([&current.id, &previous.id])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compromise_rotation_denies_the_sessions_issued_before_the_leaked_key_was_deleted() {
    use rotation::providers::iam_access_key::OLDER_SESSIONS_POLICY;
    let stack = Stack::from_env().await;
    for mode in [Mode::SecretsManager, Mode::Workflow] {
        let driver = stack.driver(mode);
        let IamTestUser {
            user, secret_arn, ..
        } = stack.iam_user_with_secret("iamdeny", mode).await;
        // A normal rotation attaches nothing.
        assert_succeeded(&driver.rotate(&secret_arn).await.unwrap());
        let leaked = stack.access_key(&secret_arn, AWSPREVIOUS).await;
        let policy = |user: String| {
            let iam = stack.iam.clone();
            async move {
                iam.get_user_policy()
                    .user_name(user)
                    .policy_name(OLDER_SESSIONS_POLICY)
                    .send()
                    .await
            }
        };
        assert!(
            policy(user.clone()).await.is_err(),
            "{mode}: attached by a normal rotation"
        );

        // The compromise marker on the secret: this rotation answers a compromise.
        let began = std::time::SystemTime::now();
        stack
            .tag_secret(
                &secret_arn,
                rotation::compromise_marker::TAG,
                &rotation::compromise_marker::value(began),
            )
            .await;
        let run = driver.rotate(&secret_arn).await.unwrap();
        assert_succeeded(&run);
        let cutoff = std::time::SystemTime::now();
        stack.assert_key_revoked(&user, &leaked).await;
        let warnings = &run.steps[0].result.as_ref().unwrap().warnings;
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(OLDER_SESSIONS_POLICY) && w.contains(&leaked.id)),
            "{mode}: {warnings:?}"
        );
        let document = policy(user.clone())
            .await
            .expect("the deny policy is attached")
            .policy_document
            .clone();
        let document = percent_encoding::percent_decode_str(&document)
            .decode_utf8()
            .unwrap()
            .into_owned();
        // A session token issued before the rotation is denied whatever it asks; one issued
        // after it, and a request signed with a long-term key (no token issue time), are not.
        let ask = |issued: Option<std::time::SystemTime>| {
            let issued = issued.map(rotation::compromise_marker::value);
            let context: Vec<(&str, &str)> = issued
                .as_deref()
                .map(|t| vec![("aws:TokenIssueTime", t)])
                .unwrap_or_default();
            test_support::policy_gate::explicitly_denies(
                &document,
                "s3:GetObject",
                "arn:aws:s3:::orders/2026/12/07.csv",
                &context,
            )
            .unwrap()
        };
        assert!(
            ask(Some(began - Duration::from_secs(3600))),
            "{mode}: {document}"
        );
        assert!(
            ask(Some(began - Duration::from_secs(1))),
            "{mode}: {document}"
        );
        assert!(
            !ask(Some(cutoff + Duration::from_secs(2))),
            "{mode}: {document}"
        );
        assert!(!ask(None), "{mode}: {document}");
        let current = stack.access_key(&secret_arn, AWSCURRENT).await;
        stack.assert_key_works(&user, &current).await;
    }
}
