//! The on-call command line (`rotator`), run as the built binary against the local stack:
//! `rotate` (one secret, after a compromise, many by tag), `status`, `--dry-run`,
//! `--output json`, and the errors an on-call engineer meets. Against AWS (moto) only what moto
//! allows: moto's RotateSecret cannot run the functions, so the label-following of the shared
//! runner is exercised by moving the labels here.

use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::Mode;
use rotator::versions::version_with;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use test_support::{assert_succeeded, Credentials, Db, Role, Stack, TestUser};

/// The `rotator` binary of this build (target/<profile>/rotator, beside this test's deps
/// directory). `cargo test --workspace` builds it (the `rotator` package has integration tests of
/// its own); alone, run `cargo build -p rotator` first.
pub(crate) fn rotator_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's path");
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>/deps")
            .join(format!("rotator{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build -p rotator` (or `cargo test --workspace`) first",
            bin.display()
        );
        bin
    })
}

/// Runs `rotator args...` with the stack's environment (inherited from the test).
pub(crate) async fn rotator(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let bin = rotator_bin().clone();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("running rotator")
    })
    .await
    .expect("rotator task")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `rotator --output json args...` and parses its output.
pub(crate) async fn rotator_json(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = rotator(&all).await;
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rotator printed no JSON ({e}):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out, value)
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_local_runs_the_four_steps_and_reports_each() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "clirot", Mode::Workflow)
        .await;

    let out = rotator(&["rotate", "--local", &arn]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for (step, function) in [
        ("createSecret", "create-secret"),
        ("setSecret", "set-secret"),
        ("testSecret", "test-secret"),
        ("finishSecret", "finish-secret"),
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or_else(|| panic!("no {step} line in:\n{text}"));
        assert!(line.contains(function) && line.contains(" ms"), "{line}");
    }
    assert!(
        text.contains("postgres / single-user, workflow mode"),
        "{text}"
    );
    assert!(
        text.contains("1 secret(s): 1 succeeded, 0 failed"),
        "{text}"
    );
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    let Credentials {
        user: u,
        password: p,
    } = stack.credentials(&arn, AWSCURRENT).await;
    assert_eq!(u, user);
    stack.assert_db_login(Db::Postgres, &u, &p).await;

    // The same as JSON, for scripts: the new version is AWSCURRENT.
    let (out, report) = rotator_json(&["rotate", "--local", &arn]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["succeeded"], 1);
    let rotation = &report["results"][0]["rotations"][0];
    assert_eq!(rotation["steps"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(rotation["steps"][3]["outcome"], "done", "{report}");
    let labels = stack.labels(&arn).await;
    assert_eq!(
        version_with(&labels, AWSCURRENT),
        rotation["version"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_in_progress_is_refused_with_the_command_that_clears_it() {
    let stack = Stack::from_env().await;
    // Secrets Manager mode: enabling rotation left AWSPENDING on a new, empty version.
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "cliprog", Mode::SecretsManager)
        .await;
    let labels = stack.labels(&arn).await;
    let pending = version_with(&labels, AWSPENDING).unwrap().to_owned();

    for args in [vec!["rotate", "--local", &arn], vec!["rotate", &arn]] {
        let out = rotator(&args).await;
        let text = stdout(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("RotationInProgress"), "{text}");
        assert!(
            text.contains(&format!(
                "aws secretsmanager update-secret-version-stage --secret-id {name} --version-stage AWSPENDING --remove-from-version-id {pending}",
                name = arn_name(&arn)
            )),
            "{text}"
        );
    }
    assert_eq!(
        stack.labels(&arn).await,
        labels,
        "a refused rotation changed labels"
    );
    let status = stdout(&rotator(&["status", &arn]).await);
    assert!(
        status.contains(&format!("IN PROGRESS AWSPENDING is on {pending}")),
        "{status}"
    );

    // --resume finishes it, with its token, as Secrets Manager's retry would.
    let (out, report) = rotator_json(&["rotate", "--local", "--resume", &arn]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report["results"][0]["rotations"][0]["version"],
        pending.as_str()
    );
    assert_eq!(report["results"][0]["rotations"][0]["resumed"], true);
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
}

/// The secret's name, from an ARN `arn:...:secret:NAME-XXXXXX`.
fn arn_name(arn: &str) -> &str {
    let name = arn.rsplit(":secret:").next().unwrap();
    &name[..name.len() - 7]
}

#[tokio::test(flavor = "multi_thread")]
async fn compromised_retires_every_password_valid_before() {
    let stack = Stack::from_env().await;
    // Single user, Secrets Manager mode, its first rotation done.
    let TestUser {
        secret_arn: single,
        user: single_user,
        ..
    } = stack
        .db_user_with_secret(Db::Postgres, "clicmp", Mode::SecretsManager)
        .await;
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&single)
            .await
            .unwrap(),
    );
    let single_before = stack.credentials(&single, AWSCURRENT).await.password;
    // Alternating users, workflow mode, rotated once: both users' passwords log in.
    let TestUser {
        secret_arn: alt,
        user,
        password: original,
    } = stack
        .alternating_user_with_secret(Db::Postgres, "clialt", false, Mode::Workflow)
        .await
        .app;
    assert_succeeded(&stack.driver(Mode::Workflow).rotate(&alt).await.unwrap());
    let Credentials {
        user: clone,
        password: clone_before,
    } = stack.credentials(&alt, AWSCURRENT).await;
    stack.assert_db_login(Db::Postgres, &user, &original).await;
    stack
        .assert_db_login(Db::Postgres, &clone, &clone_before)
        .await;
    let alt_versions = stack.labels(&alt).await;

    let (out, report) = rotator_json(&["rotate", "--compromised", "--local", &single, &alt]).await;
    assert!(out.status.success(), "{report}\n{}", stderr(&out));
    assert_eq!(report["compromised"], true);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results[0]["plan"]["rotations"], 1, "{report}");
    assert_eq!(results[0]["rotations"].as_array().unwrap().len(), 1);
    assert_eq!(results[1]["plan"]["strategy"], "alternating-users");
    assert_eq!(
        results[1]["rotations"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    // What was retired: the single user's current password, both alternating users'.
    assert_eq!(
        results[0]["retired"][0]["credential"],
        format!("user {single_user}")
    );
    let retired: Vec<&str> = results[1]["retired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = alt_versions.keys().map(String::as_str).collect();
    assert_eq!(retired.len(), 2);
    assert!(retired.iter().all(|v| expected.contains(v)), "{report}");

    // The report names users, never a password, old or new.
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    let mut passwords = vec![
        single_before.clone(),
        original.clone(),
        clone_before.clone(),
    ];
    passwords.extend(stack.all_passwords(&single).await);
    passwords.extend(stack.all_passwords(&alt).await);
    for password in &passwords {
        assert!(
            !printed.contains(password.expose_secret()),
            "a password is in the output"
        );
    }

    // No pre-incident password logs in; the current ones do.
    stack
        .assert_db_refused(Db::Postgres, &single_user, &single_before)
        .await;
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
    stack
        .assert_db_refused(Db::Postgres, &clone, &clone_before)
        .await;
    for (secret, stage) in [
        (&single, AWSCURRENT),
        (&alt, AWSCURRENT),
        (&alt, AWSPREVIOUS),
    ] {
        let Credentials {
            user: u,
            password: p,
        } = stack.credentials(secret, stage).await;
        stack.assert_db_login(Db::Postgres, &u, &p).await;
    }

    // The text output says what was retired.
    let TestUser {
        secret_arn: alt2,
        user: user2,
        ..
    } = stack
        .alternating_user_with_secret(Db::Postgres, "clialt", false, Mode::Workflow)
        .await
        .app;
    let out = rotator(&["rotate", "--compromised", "--local", &alt2]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("retired: user {user2}")), "{text}");
    assert!(text.contains("rotation 2 (local)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compromised_stops_after_a_failed_rotation_and_says_where_the_secret_is() {
    let stack = Stack::from_env().await;
    // The master secret's password is wrong: the alternating rotation fails at setSecret.
    let master = Stack::unique("clibadmaster");
    stack
        .create_db_user(Db::Postgres, &master, Role::Master)
        .await;
    let master_arn = stack
        .create_secret(
            &Stack::master_secret_name("clibadmaster"),
            &stack.db_secret(Db::Postgres, &master, &Stack::password()),
        )
        .await;
    let user = Stack::unique("clibad");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    let mut value = stack.db_secret(Db::Postgres, &user, &password);
    value["masterarn"] = json!(master_arn);
    let arn = stack
        .create_rotating_secret(&Stack::unique("clibad"), &value, Mode::Workflow)
        .await;

    let out = rotator(&["rotate", "--compromised", "--local", &arn]).await;
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("rotation 1 of 2 failed at setSecret")
            && text.contains("so rotation 2 of 2 was not started"),
        "{text}"
    );
    // The failed rotation's steps: createSecret done, setSecret failed, no more.
    assert!(text.contains("rotation 1 (local)"), "{text}");
    assert!(!text.contains("rotation 2 (local)"), "{text}");
    let failed_step = text
        .lines()
        .find(|l| l.trim_start().starts_with("setSecret"))
        .unwrap_or_else(|| panic!("no setSecret line:\n{text}"));
    assert!(failed_step.contains("failed"), "{text}");
    assert!(!text.contains("testSecret"), "{text}");
    assert!(
        text.contains("state now:") && text.contains(AWSPENDING),
        "{text}"
    );
    // One rotation was attempted: one pending version besides the original.
    let labels = stack.labels(&arn).await;
    assert_eq!(labels.len(), 2, "{labels:?}");
    stack.assert_db_login(Db::Postgres, &user, &password).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_rotation_of_twenty_secrets_survives_one_broken() {
    let stack = Stack::from_env().await;
    let batch = Stack::unique("batch");
    let mut secrets = Vec::new();
    for i in 0..20 {
        let user = Stack::unique("clitag");
        let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
        // The 8th secret holds a password the server refuses.
        let stored = if i == 7 {
            Stack::password()
        } else {
            password.clone()
        };
        let arn = stack
            .create_tagged_secret(
                &Stack::unique("clitag"),
                &stack.db_secret(Db::Postgres, &user, &stored),
                &[("batch", &batch), ("rotation-mode", "workflow")],
            )
            .await;
        secrets.push((arn, user, password));
    }
    let tag = format!("batch={batch}");

    // A tag selecting many secrets needs --all-matching.
    let out = rotator(&["rotate", "--local", "--tag", &tag]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pass --all-matching"),
        "{}",
        stderr(&out)
    );

    let started = std::time::Instant::now();
    let (out, report) = rotator_json(&[
        "rotate",
        "--local",
        "--tag",
        &tag,
        "--all-matching",
        "--concurrency",
        "6",
        "--rate",
        "60",
    ])
    .await;
    assert!(!out.status.success(), "one failure must fail the command");
    assert_eq!(report["succeeded"], 19, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["error"].is_null())
        .collect();
    assert_eq!(failed[0]["plan"]["secretArn"], secrets[7].0.as_str());
    assert_eq!(failed[0]["errorKind"], "RotationFailed");
    for (i, (arn, user, password)) in secrets.iter().enumerate() {
        if i == 7 {
            continue;
        }
        stack.assert_db_refused(Db::Postgres, user, password).await;
        stack
            .assert_stage_logs_in(Db::Postgres, arn, AWSCURRENT)
            .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "20 rotations took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_versions_provider_schedule_and_timeline() {
    let stack = Stack::from_env().await;
    let arn = stack
        .alternating_user_with_secret(Db::Postgres, "clialt", false, Mode::SecretsManager)
        .await
        .app
        .secret_arn;
    let driver = stack.driver(Mode::SecretsManager);
    for _ in 0..3 {
        assert_succeeded(&driver.rotate(&arn).await.unwrap());
    }
    let out = rotator(&["status", &arn]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for needle in [
        "provider    postgres / alternating-users (2 rotation(s)",
        "mode        secrets-manager",
        "rotation    enabled",
        "schedule    every 30 days",
        AWSCURRENT,
        AWSPREVIOUS,
        "timeline",
        "dual-phase",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    // Four credentials: the original and three rotations' (the first rotation resumed the
    // pending version). Oldest revoked, the one before the current inactive, the current one
    // active.
    let chart: Vec<&str> = text.lines().filter(|l| l.contains('│')).collect();
    assert_eq!(chart.len(), 4, "{text}");
    assert!(
        chart[0].ends_with("Revoked") && chart[0].contains('×'),
        "{text}"
    );
    assert!(
        chart[2].ends_with("Inactive") && chart[2].contains('▒'),
        "{text}"
    );
    assert!(
        chart[3].ends_with("Active") && chart[3].contains(AWSCURRENT),
        "{text}"
    );

    let (out, status) = rotator_json(&["status", &arn]).await;
    assert!(out.status.success());
    assert_eq!(status["rotationsToRetire"], 2);
    assert_eq!(status["timeline"].as_array().unwrap().len(), 4, "{status}");
    assert_eq!(status["versions"].as_array().unwrap().len(), 4, "{status}");
    assert!(status["lastRotated"].is_string() || status["lastRotated"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: alt,
        user,
        password: original,
    } = stack
        .alternating_user_with_secret(Db::Postgres, "clialt", false, Mode::Workflow)
        .await
        .app;
    let TestUser {
        secret_arn: single,
        user: single_user,
        password: single_password,
    } = stack
        .db_user_with_secret(Db::Postgres, "clidry", Mode::Workflow)
        .await;
    let before = (stack.labels(&alt).await, stack.labels(&single).await);

    for local in [true, false] {
        let mut args = vec!["rotate", "--compromised", "--dry-run", &alt, &single];
        if local {
            args.push("--local");
        }
        let out = rotator(&args).await;
        let text = stdout(&out);
        assert!(out.status.success(), "{text}\n{}", stderr(&out));
        assert!(
            text.contains("2 time(s)") && text.contains("1 time(s)"),
            "{text}"
        );
        assert!(text.contains(&format!("retiring user {user}")), "{text}");
        let how = if local {
            "invoking the four step functions"
        } else {
            "starting the workflow's state machine"
        };
        assert!(text.contains(how), "{text}");
    }
    let (out, report) = rotator_json(&["rotate", "--dry-run", "--local", &single]).await;
    assert!(out.status.success());
    assert_eq!(report["dryRun"], true);
    assert!(report["results"][0]["would"]
        .as_str()
        .unwrap()
        .contains("1 time(s)"));

    assert_eq!(
        (stack.labels(&alt).await, stack.labels(&single).await),
        before,
        "a dry run changed labels"
    );
    stack.assert_db_login(Db::Postgres, &user, &original).await;
    stack
        .assert_db_login(Db::Postgres, &single_user, &single_password)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clear_errors_for_what_on_call_meets() {
    let _stack = Stack::from_env().await;
    let missing = Stack::unique("missing");
    let out = rotator(&["status", &missing]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("secret {missing} not found in region us-east-1")),
        "{}",
        stderr(&out)
    );
    let (out, report) = rotator_json(&[
        "rotate",
        "arn:aws:secretsmanager:eu-west-3:123456789012:secret:x-AbCdEf",
    ])
    .await;
    assert!(!out.status.success());
    assert_eq!(report["results"][0]["errorKind"], "WrongRegion");
    let out = rotator(&["--endpoint-url", "http://127.0.0.1:9", "status", "x"]).await;
    assert!(
        stderr(&out).contains("cannot reach Secrets Manager"),
        "{}",
        stderr(&out)
    );
    let out = rotator(&["--region", "", "status", "x"]).await;
    assert!(stderr(&out).contains("no AWS region"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_not_configured_is_named() {
    let stack = Stack::from_env().await;
    let user = Stack::unique("clinocfg");
    let password = stack.create_db_user(Db::Postgres, &user, Role::App).await;
    // Secrets Manager mode without rotation enabled.
    let arn = stack
        .create_secret(
            &Stack::unique("clinocfg"),
            &stack.db_secret(Db::Postgres, &user, &password),
        )
        .await;
    let (out, report) = rotator_json(&["rotate", "--local", &arn]).await;
    assert!(!out.status.success());
    assert_eq!(report["results"][0]["errorKind"], "RotationNotConfigured");
    assert!(
        report["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("rotation is not enabled"),
        "{report}"
    );
}

/// Against AWS the shared runner follows the labels: the test plays Secrets Manager and moves
/// them itself (moto's RotateSecret cannot run the functions).
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_path_follows_labels_until_the_version_is_current() {
    let stack = Stack::from_env().await;
    let runner = rotation::compromise::Runner::from_lookup(&stack.aws, |name| {
        (name == rotation::compromise::runner::ENV_TIMEOUT).then(|| "20".to_owned())
    })
    .unwrap();
    let arn = stack
        .create_secret(&Stack::unique("clilabels"), &json!({"k": "v1"}))
        .await;
    let current = version_with(&stack.labels(&arn).await, AWSCURRENT)
        .unwrap()
        .to_owned();
    for (token, finish) in [
        (uuid::Uuid::new_v4().to_string(), true),
        (uuid::Uuid::new_v4().to_string(), false),
    ] {
        stack
            .secrets
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&token)
            .secret_string(json!({"k": token}).to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        let mover = {
            let stack = stack.clone();
            let (arn, token, current) = (arn.clone(), token.clone(), current.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let sm = &stack.secrets;
                if finish {
                    sm.update_secret_version_stage()
                        .secret_id(&arn)
                        .version_stage(AWSCURRENT)
                        .move_to_version_id(&token)
                        .remove_from_version_id(&current)
                        .send()
                        .await
                        .unwrap();
                }
                sm.update_secret_version_stage()
                    .secret_id(&arn)
                    .version_stage(AWSPENDING)
                    .remove_from_version_id(&token)
                    .send()
                    .await
                    .unwrap();
            })
        };
        let result = runner.wait_with(&arn, Some(&token), || async {}).await;
        mover.await.unwrap();
        if finish {
            result.unwrap_or_else(|e| panic!("the finished rotation was not seen: {e}"));
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), "RotationAbandoned", "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compromised_keyring_stops_encrypting_with_the_pre_incident_key() {
    let stack = Stack::from_env().await;
    let arn = stack
        .create_rotating_secret(
            &Stack::unique("clikeyring"),
            &json!({"provider": "keyring", "keys": [], "retentionRotations": 3}),
            Mode::Workflow,
        )
        .await;
    assert_succeeded(&stack.driver(Mode::Workflow).rotate(&arn).await.unwrap());
    let active = |value: &Value| -> String {
        value["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == "active")
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .expect("an active key")
    };
    let before = active(&stack.value(&arn, AWSCURRENT).await);

    let (out, report) = rotator_json(&["rotate", "--compromised", "--local", &arn]).await;
    assert!(out.status.success(), "{report}");
    let result = &report["results"][0];
    assert_eq!(result["plan"]["provider"], "keyring");
    assert_eq!(result["rotations"].as_array().unwrap().len(), 1);
    assert_eq!(
        result["retired"][0]["credential"],
        format!("active key {before}")
    );

    // The pre-incident key only decrypts now; a new key encrypts.
    let after = stack.value(&arn, AWSCURRENT).await;
    assert_ne!(active(&after), before);
    let old = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == before.as_str())
        .expect("the pre-incident key is kept for decryption");
    assert_eq!(old["state"], "decrypt-only");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_rotate_keeps_resuming_and_has_dry_run_and_json() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "clilocal", Mode::SecretsManager)
        .await;
    let labels = stack.labels(&arn).await;
    let pending = version_with(&labels, AWSPENDING).unwrap().to_owned();

    let (out, report) = rotator_json(&["local-rotate", "--dry-run", &arn]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["results"][0]["token"], pending.as_str());
    assert_eq!(report["results"][0]["resumed"], true);
    assert_eq!(stack.labels(&arn).await, labels, "a dry run changed labels");
    stack.assert_db_login(Db::Postgres, &user, &original).await;

    let (out, report) = rotator_json(&["local-rotate", &arn]).await;
    assert!(out.status.success(), "{report}");
    assert_eq!(report["results"][0]["succeeded"], true);
    assert_eq!(report["results"][0]["token"], pending.as_str());
    assert_eq!(report["results"][0]["steps"].as_array().unwrap().len(), 4);
    stack
        .assert_db_refused(Db::Postgres, &user, &original)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_times_out_is_named() {
    let stack = Stack::from_env().await;
    // A "database" that accepts connections and never answers: setSecret hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let user = Stack::unique("clislow");
    let mut value = stack.db_secret(Db::Postgres, &user, &Stack::password());
    value["port"] = json!(port);
    // Secrets Manager mode, resuming the version RotateSecret reserved: createSecret answers quickly (the
    // workflow's createSecret waits a second to settle a concurrent put) well inside the 4 s;
    // setSecret's login then hangs until its 5 s connect timeout, past the 4 s.
    let arn = stack
        .create_rotating_secret(&Stack::unique("clislow"), &value, Mode::SecretsManager)
        .await;
    let (out, report) =
        rotator_json(&["rotate", "--local", "--resume", "--timeout", "4", &arn]).await;
    assert!(!out.status.success(), "{report}");
    let error = report["results"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("function rotate timed out")
            && error.contains("setSecret")
            && error.contains("after 4s"),
        "{report}"
    );
    let steps = report["results"][0]["rotations"][0]["steps"]
        .as_array()
        .unwrap();
    assert_eq!(steps.last().unwrap()["outcome"], "failed", "{report}");
    drop(silent);
}
