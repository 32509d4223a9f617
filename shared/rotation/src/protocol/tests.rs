//! The protocol's checks and label moves, step by step, against a Secrets Manager client whose
//! every answer comes from an aws-smithy-mocks rule: no database, no local stack.
//!
//! Rules run in [`RuleMode::Sequential`]: each answers one call, in order, and matches only the
//! exact parameters the step must send, so a call out of order, with other parameters, or one
//! more than scripted panics the test; [`assert_all_called`] then proves none was left out.
//! Steps that need a provider use the keyring, which touches no target system.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
use aws_sdk_secretsmanager::operation::update_secret_version_stage::UpdateSecretVersionStageOutput;
use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_secretsmanager::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use rotation_keyring::Keyring;
use secrecy::{ExposeSecret, SecretString};

use super::{Engine, StepFacts};
use crate::config::{Config, ENV_RACE_SETTLE};
use crate::error::RotationError;
use crate::event::{RotationContext, RotationEvent, Step};
use crate::mode::{Caller, MODE_TAG};
use crate::report::{Outcome, StepReport};
use crate::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
const NAME: &str = "app";
/// The rotation's ClientRequestToken.
const TOKEN: &str = "11111111-1111-4111-8111-111111111111";
/// The version that is AWSCURRENT before the rotation.
const OLD: &str = "00000000-0000-4000-8000-000000000000";
/// Another rotation's version.
const OTHER: &str = "22222222-2222-4222-8222-222222222222";
const ROTATION_TOKEN: &str = "rotation-token-from-secrets-manager";

/// The labels of a secret's versions, as `(version id, labels)`.
type Versions = &'static [(&'static str, &'static [&'static str])];

/// How a secret is set up for rotation: Secrets Manager's rotation on or off, the mode tag.
#[derive(Clone, Copy)]
struct Setup {
    rotation_enabled: bool,
    mode_tag: Option<&'static str>,
}

/// Secrets Manager mode: rotation enabled, no mode tag (the `rotate` function's secrets).
const SECRETS_MANAGER: Setup = Setup {
    rotation_enabled: true,
    mode_tag: None,
};
/// Workflow mode: rotation off, tagged `workflow` (the step functions' secrets).
const WORKFLOW: Setup = Setup {
    rotation_enabled: false,
    mode_tag: Some("workflow"),
};

fn labels(versions: Versions) -> HashMap<String, Vec<String>> {
    versions
        .iter()
        .map(|(id, stages)| {
            (
                (*id).to_owned(),
                stages.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect()
}

/// DescribeSecret of the secret, answering with `setup` and the labelled versions.
fn describe(setup: Setup, versions: Versions) -> Rule {
    mock!(Client::describe_secret)
        .match_requests(|req| req.secret_id() == Some(ARN))
        .then_output(move || {
            DescribeSecretOutput::builder()
                .arn(ARN)
                .name(NAME)
                .rotation_enabled(setup.rotation_enabled)
                .set_version_ids_to_stages(Some(labels(versions)))
                .set_tags(
                    setup
                        .mode_tag
                        .map(|mode| vec![Tag::builder().key(MODE_TAG).value(mode).build()]),
                )
                .build()
        })
}

/// ListSecretVersionIds with deprecated versions, answering with every version (one page).
fn list_versions(versions: Versions) -> Rule {
    crate::secrets_manager::tests::version_page(ARN, None, versions, None)
}

/// GetSecretValue of `version` (None: by label only) with `stage`, answering `value`, or
/// ResourceNotFoundException when `value` is None.
fn get_value(version: Option<&'static str>, stage: &'static str, value: Option<String>) -> Rule {
    let rule = mock!(Client::get_secret_value).match_requests(move |req| {
        req.secret_id() == Some(ARN)
            && req.version_id() == version
            && req.version_stage() == Some(stage)
    });
    match value {
        Some(value) => rule.then_output(move || {
            GetSecretValueOutput::builder()
                .arn(ARN)
                .version_id(version.unwrap_or(OLD))
                .secret_string(value.clone())
                .version_stages(stage)
                .build()
        }),
        None => rule.then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Secrets Manager can't find the specified secret value")
                    .build(),
            )
        }),
    }
}

/// PutSecretValue of a new AWSPENDING version under the token, with the rotation token when
/// the event carried one; the value it puts must pass `check`.
fn put_pending(
    rotation_token: Option<&'static str>,
    check: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Rule {
    mock!(Client::put_secret_value)
        .match_requests(move |req| {
            req.secret_id() == Some(ARN)
                && req.client_request_token() == Some(TOKEN)
                && req.version_stages() == [AWSPENDING]
                && req.rotation_token() == rotation_token
                && req.secret_string().is_some_and(&check)
        })
        .then_output(|| {
            PutSecretValueOutput::builder()
                .arn(ARN)
                .version_id(TOKEN)
                .build()
        })
}

/// UpdateSecretVersionStage of `stage`, onto `move_to` and off `remove_from`.
fn move_stage(
    stage: &'static str,
    move_to: Option<&'static str>,
    remove_from: Option<&'static str>,
) -> Rule {
    mock!(Client::update_secret_version_stage)
        .match_requests(move |req| {
            req.secret_id() == Some(ARN)
                && req.version_stage() == Some(stage)
                && req.move_to_version_id() == move_to
                && req.remove_from_version_id() == remove_from
        })
        .then_output(|| UpdateSecretVersionStageOutput::builder().arn(ARN).build())
}

/// An engine whose Secrets Manager client answers with `rules`, in order, and nothing else.
/// createSecret's settle time is zero.
fn engine(rules: &[&Rule]) -> Engine {
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        rules.iter().copied()
    );
    let config = Config::from_lookup(|name| (name == ENV_RACE_SETTLE).then(|| "0".to_owned()))
        .expect("the test configuration is valid");
    Engine {
        aws: aws_config::SdkConfig::builder().build(),
        client,
        config,
        tls: crate::tls::client_config(None).expect("the built-in roots load"),
        publisher: None,
    }
}

/// Every rule answered exactly one call.
fn assert_all_called(rules: &[&Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(
            rule.num_calls(),
            1,
            "rule {i} answered {} calls",
            rule.num_calls()
        );
    }
}

fn event(step: Step) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: ARN.to_owned(),
        client_request_token: TOKEN.to_owned(),
        rotation_token: None,
        context: RotationContext::default(),
    }
}

/// Runs `step` as `caller` against exactly `rules`, and checks that each answered one call.
async fn run(
    step: Step,
    caller: Caller,
    rules: &[&Rule],
) -> (Result<StepReport, RotationError>, StepFacts) {
    run_event(&event(step), caller, rules).await
}

async fn run_event(
    event: &RotationEvent,
    caller: Caller,
    rules: &[&Rule],
) -> (Result<StepReport, RotationError>, StepFacts) {
    let mut facts = StepFacts::default();
    let result = engine(rules)
        .run_with_facts(event, caller, &mut facts)
        .await;
    assert_all_called(rules);
    (result, facts)
}

/// The caller that runs `step` of a secret set up as `setup` (the rotate function for Secrets
/// Manager mode, the step's own function for workflow mode).
fn caller_for(setup: Setup, step: Step) -> Caller {
    if setup.mode_tag == Some("workflow") {
        Caller::Step(step)
    } else {
        Caller::Rotate
    }
}

/// A keyring secret value and one rotation of it (a valid pending value).
fn keyring_values() -> (String, String) {
    let current = r#"{"provider":"keyring","retentionRotations":2,"keys":[]}"#.to_owned();
    let pending = Keyring::parse(&current)
        .and_then(|keyring| keyring.rotate(SystemTime::now()))
        .expect("an empty keyring rotates")
        .keyring
        .to_json()
        .expose_secret()
        .to_owned();
    (current, pending)
}

/// Whether `value` is a keyring with exactly one key, active: one rotation of the empty keyring.
fn is_one_rotation_of_the_empty_keyring(value: &str) -> bool {
    Keyring::parse(value)
        .is_ok_and(|keyring| keyring.keys().len() == 1 && keyring.active_key().is_some())
}

#[tokio::test]
async fn a_step_function_refuses_another_step_before_any_call() {
    let (result, facts) = run(Step::Finish, Caller::Step(Step::Set), &[]).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "WrongStep");
    assert_eq!(
        err.to_string(),
        "this function runs only the setSecret step, but the event asks for finishSecret"
    );
    assert!(facts.secret_arn.is_none());
}

#[tokio::test]
async fn rotation_disabled_is_refused_after_one_describe() {
    let disabled = Setup {
        rotation_enabled: false,
        mode_tag: None,
    };
    for step in Step::ALL {
        let describe = describe(disabled, &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])]);
        let (result, facts) = run(step, Caller::Rotate, &[&describe]).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "RotationDisabled", "{step}");
        assert_eq!(
            err.to_string(),
            format!("secret {ARN}: rotation is not enabled")
        );
        assert_eq!(facts.secret_arn.as_deref(), Some(ARN));
        assert_eq!(facts.secret_name.as_deref(), Some(NAME));
    }
}

#[tokio::test]
async fn each_function_refuses_a_secret_of_the_other_mode_after_one_describe() {
    let cases = [
        (
            Caller::Rotate,
            WORKFLOW,
            "the secret is tagged rotation-mode=workflow: the step functions rotate it, not the rotate function",
        ),
        (
            Caller::Step(Step::Create),
            SECRETS_MANAGER,
            "the secret is rotated by Secrets Manager through the rotate function; tag it rotation-mode=workflow (and turn Secrets Manager's rotation off) to rotate it with the step functions",
        ),
        (
            Caller::Step(Step::Create),
            Setup {
                rotation_enabled: true,
                mode_tag: Some("workflow"),
            },
            "the secret is tagged rotation-mode=workflow but Secrets Manager's rotation is also enabled; turn one of them off",
        ),
        (
            Caller::Step(Step::Create),
            Setup {
                rotation_enabled: false,
                mode_tag: Some("cron"),
            },
            "tag `rotation-mode` has the unsupported value \"cron\"; expected secrets-manager or workflow",
        ),
    ];
    for (caller, setup, problem) in cases {
        let describe = describe(setup, &[(OLD, &[AWSCURRENT])]);
        let (result, _) = run(Step::Create, caller, &[&describe]).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "WrongMode", "{caller:?}");
        assert_eq!(err.to_string(), format!("secret {ARN}: {problem}"));
    }
}

#[tokio::test]
async fn a_token_that_is_no_version_of_the_secret_is_refused_by_every_step_but_create() {
    for setup in [SECRETS_MANAGER, WORKFLOW] {
        for step in [Step::Set, Step::Test, Step::Finish] {
            let describe = describe(setup, &[(OLD, &[AWSCURRENT]), (OTHER, &[AWSPREVIOUS])]);
            let (result, _) = run(step, caller_for(setup, step), &[&describe]).await;
            let err = result.unwrap_err();
            assert_eq!(err.kind(), "BadToken", "{step}");
            assert_eq!(
                err.to_string(),
                format!(
                    "secret {ARN}: version {TOKEN} is not a version of this secret (run createSecret first, or check the SecretId)"
                )
            );
        }
    }
}

#[tokio::test]
async fn a_token_already_awscurrent_leaves_every_step_nothing_to_do() {
    for setup in [SECRETS_MANAGER, WORKFLOW] {
        for step in Step::ALL {
            let describe = describe(setup, &[(TOKEN, &[AWSCURRENT]), (OLD, &[AWSPREVIOUS])]);
            let (result, facts) = run(step, caller_for(setup, step), &[&describe]).await;
            let report = result.unwrap();
            assert_eq!(report.outcome, Outcome::AlreadyCurrent, "{step}");
            assert_eq!(report.secrets_manager_calls, 1);
            assert!(report.provider.is_none());
            assert!(!facts.finished_rotation, "{step} finished nothing");
        }
    }
}

#[tokio::test]
async fn a_token_not_labelled_awspending_is_refused_by_every_step() {
    for setup in [SECRETS_MANAGER, WORKFLOW] {
        for step in Step::ALL {
            let describe = describe(setup, &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPREVIOUS])]);
            let (result, _) = run(step, caller_for(setup, step), &[&describe]).await;
            let err = result.unwrap_err();
            assert_eq!(err.kind(), "BadToken", "{step}");
            assert_eq!(
                err.to_string(),
                format!("secret {ARN}: version {TOKEN} is not labelled AWSPENDING for rotation")
            );
        }
    }
}

#[tokio::test]
async fn create_secret_with_a_value_already_at_the_token_does_nothing() {
    let describe = describe(
        SECRETS_MANAGER,
        &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])],
    );
    let pending = get_value(Some(TOKEN), AWSPENDING, Some(keyring_values().1));
    let (result, _) = run(Step::Create, Caller::Rotate, &[&describe, &pending]).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::AlreadyDone);
    assert_eq!(report.secrets_manager_calls, 2);
    assert!(report.provider.is_none(), "no provider ran");
}

#[tokio::test]
async fn create_secret_refuses_while_another_version_is_awspending() {
    let labelled: Versions = &[(OLD, &[AWSCURRENT]), (OTHER, &[AWSPENDING])];
    let describe = describe(WORKFLOW, labelled);
    let listed = list_versions(labelled);
    // Workflow mode reads the other version's creation to tell whether its run ended; this
    // one's is unknown (as for one just created), so it is not resumed.
    let other = get_value(Some(OTHER), AWSPENDING, Some("{}".to_owned()));
    let (result, _) = run(
        Step::Create,
        Caller::Step(Step::Create),
        &[&describe, &listed, &other],
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "RotationInProgress");
    assert_eq!(
        err.to_string(),
        format!(
            "secret {ARN}: rotation in progress: AWSPENDING is on version {OTHER}, not on this rotation's version {TOKEN}; let that rotation finish (running the rotation again resumes it)"
        )
    );
}

#[tokio::test]
async fn a_workflow_create_secret_with_a_new_token_resumes_a_pending_version_older_than_the_bound()
{
    let labelled: Versions = &[(OLD, &[AWSCURRENT]), (OTHER, &[AWSPENDING])];
    let describe = describe(WORKFLOW, labelled);
    let listed = list_versions(labelled);
    let hour_ago = aws_smithy_types::DateTime::from_secs(
        aws_smithy_types::DateTime::from(std::time::SystemTime::now()).secs() - 3601,
    );
    let other = mock!(Client::get_secret_value)
        .match_requests(|req| {
            req.version_id() == Some(OTHER) && req.version_stage() == Some(AWSPENDING)
        })
        .then_output(move || {
            GetSecretValueOutput::builder()
                .arn(ARN)
                .version_id(OTHER)
                .secret_string("{}")
                .version_stages(AWSPENDING)
                .created_date(hour_ago)
                .build()
        });
    let (result, _) = run(
        Step::Create,
        Caller::Step(Step::Create),
        &[&describe, &listed, &other],
    )
    .await;
    let report = result.unwrap();
    assert_eq!(
        report.token, OTHER,
        "the resumed version's token is reported"
    );
    assert_eq!(report.outcome, Outcome::AlreadyDone);
    assert!(report.warnings[0].contains("resuming the rotation of version"));
}

#[tokio::test]
async fn create_secret_fills_secrets_managers_placeholder_with_the_providers_value() {
    let (current, _) = keyring_values();
    let rules = [
        describe(
            SECRETS_MANAGER,
            &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])],
        ),
        get_value(Some(TOKEN), AWSPENDING, None),
        get_value(None, AWSCURRENT, Some(current)),
        put_pending(Some(ROTATION_TOKEN), is_one_rotation_of_the_empty_keyring),
    ];
    let mut event = event(Step::Create);
    event.rotation_token = Some(SecretString::from(ROTATION_TOKEN));
    let (result, _) = run_event(&event, Caller::Rotate, &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(report.provider.as_deref(), Some("keyring"));
    assert_eq!(
        report.strategy.as_deref(),
        Some(crate::providers::keyring::STRATEGY)
    );
    assert_eq!(report.secrets_manager_calls, 4, "no race to settle");
}

#[tokio::test]
async fn create_secret_without_a_placeholder_rereads_the_versions_after_its_put_and_goes_on() {
    let (current, _) = keyring_values();
    let rules = [
        describe(WORKFLOW, &[(OLD, &[AWSCURRENT])]),
        list_versions(&[(OLD, &[AWSCURRENT])]),
        get_value(None, AWSCURRENT, Some(current)),
        put_pending(None, is_one_rotation_of_the_empty_keyring),
        list_versions(&[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])]),
    ];
    let (result, _) = run(Step::Create, Caller::Step(Step::Create), &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(report.secrets_manager_calls, 5);
}

#[tokio::test]
async fn create_secret_that_took_awspending_from_an_earlier_put_gives_it_back_and_refuses() {
    let (current, _) = keyring_values();
    let rules = [
        describe(WORKFLOW, &[(OLD, &[AWSCURRENT])]),
        list_versions(&[(OLD, &[AWSCURRENT])]),
        get_value(None, AWSCURRENT, Some(current)),
        put_pending(None, is_one_rotation_of_the_empty_keyring),
        list_versions(&[(OLD, &[AWSCURRENT]), (OTHER, &[]), (TOKEN, &[AWSPENDING])]),
        move_stage(AWSPENDING, Some(OTHER), Some(TOKEN)),
    ];
    let (result, _) = run(Step::Create, Caller::Step(Step::Create), &rules.each_ref()).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "RotationInProgress");
    assert!(
        err.to_string()
            .contains(&format!("AWSPENDING is on version {OTHER}")),
        "{err}"
    );
}

#[tokio::test]
async fn create_secret_whose_awspending_a_later_put_took_refuses_and_moves_no_label() {
    let (current, _) = keyring_values();
    let rules = [
        describe(WORKFLOW, &[(OLD, &[AWSCURRENT])]),
        list_versions(&[(OLD, &[AWSCURRENT])]),
        get_value(None, AWSCURRENT, Some(current)),
        put_pending(None, is_one_rotation_of_the_empty_keyring),
        list_versions(&[(OLD, &[AWSCURRENT]), (TOKEN, &[]), (OTHER, &[AWSPENDING])]),
    ];
    let (result, _) = run(Step::Create, Caller::Step(Step::Create), &rules.each_ref()).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "RotationInProgress");
    assert!(
        err.to_string()
            .contains(&format!("AWSPENDING is on version {OTHER}")),
        "{err}"
    );
}

#[tokio::test]
async fn set_secret_reads_the_pending_then_the_current_version_and_test_secret_the_pending_one() {
    let (current, pending) = keyring_values();
    let labelled: Versions = &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])];
    let set_rules = [
        describe(SECRETS_MANAGER, labelled),
        get_value(Some(TOKEN), AWSPENDING, Some(pending.clone())),
        get_value(None, AWSCURRENT, Some(current)),
    ];
    let (result, _) = run(Step::Set, Caller::Rotate, &set_rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(report.provider.as_deref(), Some("keyring"));
    assert_eq!(report.secrets_manager_calls, 3);

    let test_rules = [
        describe(SECRETS_MANAGER, labelled),
        get_value(Some(TOKEN), AWSPENDING, Some(pending)),
    ];
    let (result, _) = run(Step::Test, Caller::Rotate, &test_rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(report.provider.as_deref(), Some("keyring"));
    assert_eq!(report.secrets_manager_calls, 2);
}

#[tokio::test]
async fn finish_secret_moves_awscurrent_off_the_old_version_then_removes_awspending() {
    let rules = [
        describe(WORKFLOW, &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])]),
        move_stage(AWSCURRENT, Some(TOKEN), Some(OLD)),
        move_stage(AWSPENDING, None, Some(TOKEN)),
    ];
    let mut event = event(Step::Finish);
    event.context.provider = Some("keyring".to_owned());
    event.context.strategy = Some(crate::providers::keyring::STRATEGY.to_owned());
    let (result, facts) = run_event(&event, Caller::Step(Step::Finish), &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(
        report.secrets_manager_calls, 3,
        "finishSecret reads no value"
    );
    assert_eq!(report.provider.as_deref(), Some("keyring"));
    assert!(facts.finished_rotation);
}

#[tokio::test]
async fn finish_secret_run_by_rotate_reads_the_new_version_once_to_name_its_provider() {
    let (_, pending) = keyring_values();
    let rules = [
        describe(
            SECRETS_MANAGER,
            &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])],
        ),
        move_stage(AWSCURRENT, Some(TOKEN), Some(OLD)),
        move_stage(AWSPENDING, None, Some(TOKEN)),
        get_value(Some(TOKEN), AWSCURRENT, Some(pending)),
    ];
    let (result, facts) = run(Step::Finish, Caller::Rotate, &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::Done);
    assert_eq!(report.provider.as_deref(), Some("keyring"));
    assert_eq!(report.secrets_manager_calls, 4);
    assert!(facts.finished_rotation);
}

#[tokio::test]
async fn finish_secret_on_a_token_already_awscurrent_only_removes_the_leftover_awspending() {
    let rules = [
        describe(
            WORKFLOW,
            &[(TOKEN, &[AWSCURRENT, AWSPENDING]), (OLD, &[AWSPREVIOUS])],
        ),
        move_stage(AWSPENDING, None, Some(TOKEN)),
    ];
    let mut event = event(Step::Finish);
    event.context.provider = Some("keyring".to_owned());
    let (result, facts) = run_event(&event, Caller::Step(Step::Finish), &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::AlreadyCurrent);
    assert_eq!(report.secrets_manager_calls, 2);
    assert!(facts.finished_rotation, "it completed the finish");
}

#[tokio::test]
async fn other_steps_on_a_token_still_awscurrent_and_awspending_leave_the_labels_alone() {
    for step in [Step::Create, Step::Set, Step::Test] {
        let describe = describe(
            WORKFLOW,
            &[(TOKEN, &[AWSCURRENT, AWSPENDING]), (OLD, &[AWSPREVIOUS])],
        );
        let (result, facts) = run(step, Caller::Step(step), &[&describe]).await;
        assert_eq!(result.unwrap().outcome, Outcome::AlreadyCurrent, "{step}");
        assert!(!facts.finished_rotation);
    }
}

/// DescribeSecret like [`describe`] (Secrets Manager mode), the secret carrying `tags`.
fn describe_tagged(versions: Versions, tags: Vec<(&'static str, String)>) -> Rule {
    mock!(Client::describe_secret)
        .match_requests(|req| req.secret_id() == Some(ARN))
        .then_output(move || {
            DescribeSecretOutput::builder()
                .arn(ARN)
                .name(NAME)
                .rotation_enabled(true)
                .set_version_ids_to_stages(Some(labels(versions)))
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(*k).value(v.clone()).build())
                        .collect(),
                ))
                .build()
        })
}

/// A rotation window that is closed now and for the next two days.
fn window_closed_now() -> String {
    let day =
        crate::window::describe(SystemTime::now() + std::time::Duration::from_secs(3 * 86_400));
    format!("{} 00:00-24:00", &day[..3])
}

#[tokio::test]
async fn outside_its_window_create_secret_puts_nothing_and_frees_the_placeholder_and_the_later_steps_decline(
) {
    let tags = vec![(crate::window::TAG, window_closed_now())];
    // createSecret: no value read or put; AWSPENDING leaves Secrets Manager's empty version.
    let rules = [
        describe_tagged(
            &[(OLD, &[AWSCURRENT]), (TOKEN, &[AWSPENDING])],
            tags.clone(),
        ),
        get_value(Some(TOKEN), AWSPENDING, None),
        move_stage(AWSPENDING, None, Some(TOKEN)),
    ];
    let (result, facts) = run(Step::Create, Caller::Rotate, &rules.each_ref()).await;
    let report = result.unwrap();
    assert_eq!(report.outcome, Outcome::OutsideWindow);
    let note = report.note.expect("the reason");
    assert!(note.contains("outside the rotation window"), "{note}");
    assert_eq!(facts.declined.as_deref(), Some(note.as_str()));
    // The later steps find the token no pending version: they succeed, changing nothing.
    for step in [Step::Set, Step::Test, Step::Finish] {
        let rules = [describe_tagged(&[(OLD, &[AWSCURRENT])], tags.clone())];
        let (result, facts) = run(step, Caller::Rotate, &rules.each_ref()).await;
        let report = result.unwrap();
        assert_eq!(report.outcome, Outcome::OutsideWindow, "{step}");
        assert!(
            facts.declined.is_none() && !facts.finished_rotation,
            "{step}"
        );
    }
    // Without a window the same later step is refused, as before.
    let rules = [describe(SECRETS_MANAGER, &[(OLD, &[AWSCURRENT])])];
    let (result, _) = run(Step::Set, Caller::Rotate, &rules.each_ref()).await;
    assert_eq!(result.unwrap_err().kind(), "BadToken");
}
