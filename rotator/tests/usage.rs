//! The command line's refusals of bad usage, run as the built binary; none reaches AWS (the
//! endpoint is a closed port).

use std::process::{Command, Output};

fn rotator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rotator"))
        .args([
            "--region",
            "us-east-1",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("ROTATION_STATE_MACHINE_ARN")
        .output()
        .expect("running rotator")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rotate_needs_a_secret_or_a_tag() {
    let out = rotator(&["rotate"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("name at least one secret, or select them with --tag KEY=VALUE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn resume_is_refused_outside_the_local_stack() {
    let out = rotator(&["rotate", "--resume", "app"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--resume works on the local stack only"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_tag_is_named() {
    let out = rotator(&["rotate", "--tag", "team"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected KEY=VALUE, got \"team\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_are_json_with_output_json() {
    let out = rotator(&["--output", "json", "rotate"]);
    assert!(!out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["errorType"], "Usage");
}

#[test]
fn an_unreachable_endpoint_is_named() {
    let out = rotator(&["status", "app"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach Secrets Manager in region us-east-1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_credentials_are_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotator"))
        .args([
            "--region",
            "us-east-1",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ])
        .args(["status", "app"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .output()
        .expect("running rotator");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no AWS credentials") && stderr(&out).contains("AWS_PROFILE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_sso_profile_without_a_cached_token_names_the_profile_and_the_login_to_run() {
    // An IAM Identity Center profile, as `aws configure sso` writes it, and an empty home: no
    // token in ~/.aws/sso/cache. Without aws-config's `sso` feature the SDK cannot even read
    // such a profile ("requires following cargo feature(s) enabled: sso").
    let dir = std::env::temp_dir().join(format!("rotator-sso-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        "[profile oncall]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = OnCall\nregion = us-east-1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rotator"))
        .args(["--endpoint-url", "http://127.0.0.1:9", "status", "app"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_REGION")
        .env("HOME", dir.join("home"))
        .env("AWS_PROFILE", "oncall")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("running rotator");
    std::fs::remove_dir_all(&dir).ok();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no AWS credentials from profile `oncall`"),
        "{err}"
    );
    assert!(err.contains("aws sso login --profile oncall"), "{err}");
    assert!(
        err.contains("sso/cache"),
        "the SSO provider looked for its token: {err}"
    );
    assert!(!err.contains("cargo feature"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
