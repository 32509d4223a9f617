//! The sample events in `events/`, sent the way docs/local-stack.md sends them by hand:
//! `cargo lambda invoke FUNCTION --data-file FILE -A 127.0.0.1 -P PORT` (the project's
//! `.venv/bin/cargo-lambda`, which `scripts/stack.sh up` installs) against the stack's
//! `cargo lambda watch`, after seeding the secrets they name as `local-rotation seed` does. Every
//! JSON file under `events/` is an event sent here or listed as data, so that a new sample cannot
//! go untested.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use rotation::secrets_manager::AWSCURRENT;
use rotation::{Outcome, Step, StepReport};
use rotator::versions::version_with;
use serde_json::Value;
use test_support::samples::{SampleSecret, POSTGRES_APP, SAMPLE_SECRETS};
use test_support::{Credentials, Stack, TestUser};

/// The folders under `events/` that hold data, not events: the sample secret values
/// docs/providers/database.md points to.
const DATA_FOLDERS: [&str; 1] = ["events/secrets/"];

/// The compromise response's sample event: it names `rotation/postgres/app` ([`POSTGRES_APP`]).
const COMPROMISE_EVENT: &str = "events/compromise.json";

/// The workspace's root, where the docs run `cargo lambda invoke`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_owned()
}

/// Every JSON file under `events/`, relative to the workspace, with `/` separators.
fn event_files() -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("events/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, found);
            } else if path.extension().is_some_and(|e| e == "json") {
                let relative = path.strip_prefix(root).expect("under the workspace");
                let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                found.insert(parts.join("/"));
            }
        }
    }
    let root = workspace();
    let mut found = BTreeSet::new();
    walk(&root, &root.join("events"), &mut found);
    found
}

/// The step events this module sends: each sample secret's four steps, and the compromise event.
fn covered_events() -> BTreeSet<String> {
    SAMPLE_SECRETS
        .iter()
        .flat_map(|sample| Step::ALL.map(|step| sample.event_file(step)))
        .chain([COMPROMISE_EVENT.to_owned()])
        .collect()
}

#[test]
fn every_file_in_events_is_a_sent_event_or_listed_data() {
    let found = event_files();
    let covered = covered_events();
    let uncovered: Vec<&String> = found
        .iter()
        .filter(|f| !covered.contains(*f) && !DATA_FOLDERS.iter().any(|d| f.starts_with(d)))
        .collect();
    assert!(
        uncovered.is_empty(),
        "events/ holds files no test sends: {uncovered:?}; send them in tests/integration/\
         sample_events.rs, or list their folder in DATA_FOLDERS if they are not events"
    );
    let missing: Vec<&String> = covered.difference(&found).collect();
    assert!(missing.is_empty(), "sample events are missing: {missing:?}");
    for folder in DATA_FOLDERS {
        assert!(
            found.iter().any(|f| f.starts_with(folder)),
            "{folder} holds no file: take it off DATA_FOLDERS"
        );
    }
}

/// Runs `cargo lambda invoke function --data-file file -A host -P port` in the workspace, as
/// docs/local-stack.md does.
async fn cargo_lambda_invoke(stack: &Stack, function: &str, file: &str) -> Output {
    let root = workspace();
    let bin = root.join(".venv/bin/cargo-lambda");
    assert!(
        bin.exists(),
        "{} is missing: `scripts/stack.sh up` installs it",
        bin.display()
    );
    let address = stack
        .lambda_endpoint
        .strip_prefix("http://")
        .expect("the stack's Lambda endpoint is http://HOST:PORT");
    let (host, port) = address
        .trim_end_matches('/')
        .rsplit_once(':')
        .expect("HOST:PORT");
    let args: Vec<String> = [
        "lambda",
        "invoke",
        function,
        "--data-file",
        file,
        "-A",
        host,
        "-P",
        port,
        "--output-format",
        "json",
    ]
    .map(str::to_owned)
    .into();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .current_dir(root)
            .output()
            .expect("running cargo-lambda")
    })
    .await
    .expect("cargo-lambda task")
}

/// Sends `file` to `function` and parses the function's answer; panics with cargo-lambda's
/// output when the function refused it.
async fn answer(stack: &Stack, function: &str, file: &str) -> Value {
    let out = cargo_lambda_invoke(stack, function, file).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke {function} --data-file {file}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{function} answered {file} with no JSON ({e}): {stdout}"))
}

/// Sends `sample`'s four step events in order: each answers with its step's report, the
/// rotation finishes under the events' token, the seeded password is refused and the new one
/// logs in.
async fn rotate_through_the_events(stack: &Stack, sample: &SampleSecret, seeded: &TestUser) {
    for step in Step::ALL {
        let file = sample.event_file(step);
        let function = rotation::Caller::of(sample.mode, step).function_name();
        let event: Value =
            serde_json::from_slice(&std::fs::read(workspace().join(&file)).unwrap()).unwrap();
        assert_eq!(event["Step"], step.as_str(), "{file}");
        assert_eq!(event["SecretId"], sample.name, "{file}");
        assert_eq!(event["ClientRequestToken"], sample.token, "{file}");

        let report: StepReport = serde_json::from_value(answer(stack, function, &file).await)
            .unwrap_or_else(|e| panic!("{function} answered {file} with no step report: {e}"));
        assert_eq!(report.step(), Some(step), "{file}: {report:?}");
        assert_eq!(report.secret_arn, seeded.secret_arn, "{file}: {report:?}");
        assert_eq!(report.token, sample.token, "{file}: {report:?}");
        assert_eq!(report.outcome, Outcome::Done, "{file}: {report:?}");
    }
    let labels = stack.labels(&seeded.secret_arn).await;
    assert_eq!(
        version_with(&labels, AWSCURRENT),
        Some(sample.token),
        "{}: {labels:?}",
        sample.name
    );
    let Credentials { user, password } = stack.credentials(&seeded.secret_arn, AWSCURRENT).await;
    assert_eq!(user, sample.user);
    stack.assert_db_login(sample.db, &user, &password).await;
    stack
        .assert_db_refused(sample.db, &seeded.user, &seeded.password)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_events_rotate_the_secrets_they_name() {
    let stack = Stack::from_env().await;
    for sample in SAMPLE_SECRETS {
        let seeded = stack.seed_sample(&sample).await;
        rotate_through_the_events(&stack, &sample, &seeded).await;
    }

    // The compromise event retires rotation/postgres/app's password, rotated above: one rotation.
    let before = stack.credentials(POSTGRES_APP.name, AWSCURRENT).await;
    let report = answer(&stack, "compromise", COMPROMISE_EVENT).await;
    let retired = report["retired"].as_array().expect("retired secrets");
    assert_eq!(retired.len(), 1, "{report}");
    assert_eq!(
        retired[0]["plan"]["secretArn"],
        stack
            .secrets
            .describe_secret()
            .secret_id(POSTGRES_APP.name)
            .send()
            .await
            .expect("DescribeSecret")
            .arn()
            .expect("ARN"),
        "{report}"
    );
    assert_eq!(retired[0]["plan"]["rotations"], 1, "{report}");
    stack
        .assert_db_refused(POSTGRES_APP.db, &before.user, &before.password)
        .await;
    stack
        .assert_stage_logs_in(POSTGRES_APP.db, POSTGRES_APP.name, AWSCURRENT)
        .await;
}
