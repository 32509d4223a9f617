//! The cache, the refetch rule and the AWSPREVIOUS fallback against a Secrets Manager client
//! whose every answer comes from an aws-smithy-mocks rule. Rules run in
//! [`RuleMode::Sequential`]: each answers one call, in order, matching only the label it
//! names, so one call more than scripted panics the test, and [`assert_all_called`] proves
//! none was left out.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
use aws_sdk_secretsmanager::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use secrecy::ExposeSecret;

use super::*;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf";
const LONG: Duration = Duration::from_secs(3600);

fn password_of(version: &str) -> String {
    format!("password-of-{version}")
}

/// GetSecretValue of `stage`, answering version `id` (its value holds [`password_of`]).
fn get(stage: &'static str, id: &'static str) -> Rule {
    mock!(Client::get_secret_value)
        .match_requests(move |req| {
            req.secret_id() == Some(ARN) && req.version_stage() == Some(stage)
        })
        .then_output(move || {
            GetSecretValueOutput::builder()
                .arn(ARN)
                .version_id(id)
                .version_stages(stage)
                .secret_string(format!(r#"{{"password":"{}"}}"#, password_of(id)))
                .build()
        })
}

/// GetSecretValue of AWSPREVIOUS on a secret that has none.
fn no_previous() -> Rule {
    mock!(Client::get_secret_value)
        .match_requests(|req| req.version_stage() == Some(AWSPREVIOUS))
        .then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS")
                    .build(),
            )
        })
}

fn cache(rules: &[&Rule], ttl: Duration, refetch_interval: Duration) -> SecretCache {
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        rules.iter().copied()
    );
    SecretCache::new(client, ARN)
        .with_ttl(ttl)
        .with_refetch_interval(refetch_interval)
}

fn assert_all_called(rules: &[&Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(rule.num_calls(), 1, "rule {i}");
    }
}

/// The application's operation: a login that accepts the passwords of `valid` versions only,
/// returning the id of the version that logged in.
async fn login(
    valid: &'static [&'static str],
    version: Arc<Version>,
) -> Result<String, Failure<String>> {
    let accepted = valid
        .iter()
        .any(|id| version.value().expose_secret().contains(&password_of(id)));
    if accepted {
        Ok(version.id().to_owned())
    } else {
        Err(Failure::Authentication(format!(
            "password authentication failed (version {})",
            version.id()
        )))
    }
}

#[tokio::test]
async fn current_is_served_from_the_cache_until_the_ttl_runs_out() {
    let rules = [get(AWSCURRENT, "v1")];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    for _ in 0..3 {
        assert_eq!(cache.current().await.unwrap().id(), "v1");
    }
    assert_all_called(&rules.each_ref());

    let rules = [get(AWSCURRENT, "v1"), get(AWSCURRENT, "v2")];
    let cache = super::tests::cache(&rules.each_ref(), Duration::ZERO, LONG);
    assert_eq!(cache.current().await.unwrap().id(), "v1");
    assert_eq!(cache.current().await.unwrap().id(), "v2");
    assert_all_called(&rules.each_ref());
    assert_eq!(cache.stats().fetches, 2);
}

#[tokio::test]
async fn a_refused_credential_is_refetched_once_and_the_new_version_succeeds() {
    let rules = [get(AWSCURRENT, "v1"), get(AWSCURRENT, "v2")];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    let done = cache.with_credentials(|v| login(&["v2"], v)).await;
    assert_eq!(done.unwrap(), "v2");
    // The refetched version is cached: the next call uses it with no call.
    let again = cache.with_credentials(|v| login(&["v2"], v)).await;
    assert_eq!(again.unwrap(), "v2");
    assert_all_called(&rules.each_ref());
    assert_eq!(
        cache.stats(),
        Stats {
            fetches: 2,
            refetches: 1,
            authentication_failures: 1,
            previous_fallbacks: 0,
            refused: 0,
        }
    );
}

#[tokio::test]
async fn awsprevious_is_tried_when_the_refetched_current_is_refused_too() {
    let rules = [
        get(AWSCURRENT, "v2"),
        get(AWSCURRENT, "v2"),
        get(AWSPREVIOUS, "v1"),
    ];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    let done = cache.with_credentials(|v| login(&["v1"], v)).await;
    assert_eq!(done.unwrap(), "v1");
    assert_all_called(&rules.each_ref());
    let stats = cache.stats();
    assert_eq!((stats.refetches, stats.previous_fallbacks), (1, 1));
    assert_eq!(stats.authentication_failures, 1, "v2 was tried once");
}

#[tokio::test]
async fn a_wrong_password_costs_one_refetch_however_many_requests_fail() {
    // Three calls in all: AWSCURRENT, one refetch, AWSPREVIOUS; a fourth would panic.
    let rules = [
        get(AWSCURRENT, "v2"),
        get(AWSCURRENT, "v2"),
        get(AWSPREVIOUS, "v1"),
    ];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    for _ in 0..20 {
        match cache.with_credentials(|v| login(&[], v)).await {
            Err(Error::Refused { versions, error }) => {
                assert_eq!(versions, ["v2", "v1"]);
                assert!(error.contains("version v1"), "{error}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // Concurrent failures share the same bound.
    let burst = (0..8).map(|_| cache.with_credentials(|v| login(&[], v)));
    for result in futures::future::join_all(burst).await {
        assert!(matches!(result, Err(Error::Refused { .. })));
    }
    assert_all_called(&rules.each_ref());
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.refetches, stats.refused), (3, 1, 28));
}

#[tokio::test]
async fn after_the_interval_a_refused_version_may_be_refetched_again() {
    let rules = [
        get(AWSCURRENT, "v1"),
        get(AWSCURRENT, "v1"),
        no_previous(),
        get(AWSCURRENT, "v2"),
    ];
    let cache = cache(&rules.each_ref(), LONG, Duration::ZERO);
    match cache.with_credentials(|v| login(&["v2"], v)).await {
        Err(Error::Refused { versions, .. }) => assert_eq!(versions, ["v1"]),
        other => panic!("no AWSPREVIOUS, the refetch found v1 again: {other:?}"),
    }
    // The rotation finishes; the next failure may refetch (interval zero) and finds v2.
    let done = cache.with_credentials(|v| login(&["v2"], v)).await;
    assert_eq!(done.unwrap(), "v2");
    assert_all_called(&rules.each_ref());
    assert_eq!(cache.stats().refetches, 2);
}

#[tokio::test]
async fn an_error_other_than_authentication_is_returned_at_once() {
    let rules = [get(AWSCURRENT, "v1")];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    let mut attempts = 0;
    let result: Result<(), _> = cache
        .with_credentials(|_| {
            attempts += 1;
            async { Err(Failure::Other("connection refused".to_owned())) }
        })
        .await;
    assert!(matches!(result, Err(Error::Operation(e)) if e == "connection refused"));
    assert_eq!(attempts, 1);
    assert_all_called(&rules.each_ref());
    assert_eq!(cache.stats().authentication_failures, 0);
}

#[tokio::test]
async fn a_failed_fetch_names_the_secret_and_label_and_no_value() {
    let rules = [no_previous()];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    assert!(cache.previous().await.unwrap().is_none());
    assert_all_called(&rules.each_ref());

    let missing = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Secrets Manager can't find the specified secret.")
                .build(),
        )
    });
    let cache = super::tests::cache(&[&missing], LONG, LONG);
    let error = cache.current().await.unwrap_err().to_string();
    assert!(
        error.contains("GetSecretValue") && error.contains(ARN) && error.contains(AWSCURRENT),
        "{error}"
    );
}

#[tokio::test]
async fn debug_output_shows_no_secret_value() {
    let rules = [get(AWSCURRENT, "v1")];
    let cache = cache(&rules.each_ref(), LONG, LONG);
    let version = cache.current().await.unwrap();
    let shown = format!("{version:?} {cache:?}");
    assert!(shown.contains("v1") && shown.contains(ARN), "{shown}");
    assert!(!shown.contains(&password_of("v1")), "{shown}");
}
