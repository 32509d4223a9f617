//! The on-call command line authenticates the way on-call engineers do: a named profile
//! (`AWS_PROFILE`) whose credentials come from `credential_process`, as an IAM Identity Center
//! or a vault helper provides them. (An SSO profile without a cached token:
//! `rotator/tests/usage.rs`.)

use std::process::Command;

use rotation::Mode;
use test_support::{Db, Stack};

use crate::cli::rotator_bin;

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_with_credential_process_reaches_the_stack() {
    let stack = Stack::from_env().await;
    let arn = stack
        .db_user_with_secret(Db::Postgres, "cliprof", Mode::SecretsManager)
        .await
        .secret_arn;
    let dir = std::env::temp_dir().join(Stack::unique("rotator-profile"));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("called");
    let script = dir.join("credentials.sh");
    // The stack's test credentials, printed in credential_process's format; the marker proves
    // the SDK ran the command (moto accepts any key, so success alone would not).
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"testing\", \"SecretAccessKey\": \"testing\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile oncall]\ncredential_process = /bin/sh {}\nregion = us-east-1\n",
            script.display()
        ),
    )
    .unwrap();
    let bin = rotator_bin().clone();
    let (config_path, home) = (config.clone(), dir.clone());
    let arn_arg = arn.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["status", &arn_arg])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env("HOME", &home)
            .env("AWS_PROFILE", "oncall")
            .env("AWS_CONFIG_FILE", &config_path)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("running rotator")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&arn), "status names the secret: {text}");
    assert!(
        text.contains("postgres"),
        "status read the secret's provider: {text}"
    );
    assert!(marker.exists(), "credential_process was not run: {text}");
    std::fs::remove_dir_all(&dir).ok();
}
