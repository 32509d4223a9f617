//! Crashes and concurrent rotations, through the real functions under `cargo lambda watch`.
//!
//! The fault matrix: for each provider, a rotation stops after each of the four steps (the
//! driver goes away, as Secrets Manager's invocation does when the function process is killed
//! after the step's effect), and once inside finishSecret (between its two label moves). While
//! stopped, a valid credential must still be stored; a re-run must then complete the rotation
//! with the labels right and the new credential valid.

use std::fmt::Write as _;

use rotation::secrets_manager::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::Mode;
use rotation::Step;
use rotation_keyring::KeyringClient;
use rotator::driver::render_run;
use rotator::versions::{version_with, Labels};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use test_support::iam::AccessKey;
use test_support::{Credentials, Db, Stack, TestUser};

/// The providers of the matrix's rows.
#[derive(Debug, Clone, Copy)]
enum Provider {
    PgSingle,
    PgAlternating,
    MariaDbSingle,
    MariaDbAlternating,
    IamAccessKey,
    Keyring,
}

impl Provider {
    const ALL: [Provider; 6] = [
        Provider::PgSingle,
        Provider::PgAlternating,
        Provider::MariaDbSingle,
        Provider::MariaDbAlternating,
        Provider::IamAccessKey,
        Provider::Keyring,
    ];

    fn name(self) -> &'static str {
        match self {
            Provider::PgSingle => "PostgreSQL single-user",
            Provider::PgAlternating => "PostgreSQL alternating",
            Provider::MariaDbSingle => "MariaDB single-user",
            Provider::MariaDbAlternating => "MariaDB alternating",
            Provider::IamAccessKey => "IAM access key",
            Provider::Keyring => "keyring",
        }
    }

    fn db(self) -> Option<Db> {
        match self {
            Provider::PgSingle | Provider::PgAlternating => Some(Db::Postgres),
            Provider::MariaDbSingle | Provider::MariaDbAlternating => Some(Db::MariaDb),
            Provider::IamAccessKey | Provider::Keyring => None,
        }
    }

    /// A fresh secret of this provider, rotation enabled; for the keyring, one rotation done
    /// so that it holds a key.
    async fn secret(self, stack: &Stack) -> Subject {
        let arn = match self {
            Provider::PgSingle | Provider::MariaDbSingle => {
                let db = self.db().unwrap();
                stack
                    .db_user_with_secret(db, "matrix", Mode::SecretsManager)
                    .await
                    .secret_arn
            }
            Provider::PgAlternating | Provider::MariaDbAlternating => {
                let db = self.db().unwrap();
                stack
                    .alternating_user_with_secret(db, "mx", false, Mode::SecretsManager)
                    .await
                    .app
                    .secret_arn
            }
            Provider::IamAccessKey => {
                stack
                    .iam_user_with_secret("matrix", Mode::SecretsManager)
                    .await
                    .secret_arn
            }
            Provider::Keyring => {
                let arn = stack
                    .create_rotating_secret(
                        &Stack::unique("matrix"),
                        &json!({"provider": "keyring", "keys": [], "retentionRotations": 3}),
                        Mode::SecretsManager,
                    )
                    .await;
                let run = stack
                    .driver(Mode::SecretsManager)
                    .rotate(&arn)
                    .await
                    .unwrap();
                assert!(run.succeeded(), "keyring setup:\n{}", render_run(&run));
                arn
            }
        };
        let sealed = match self {
            Provider::Keyring => Some(
                KeyringClient::new(stack.secrets.clone(), &arn)
                    .encrypt(b"sealed before the crash", b"matrix")
                    .await
                    .expect("encrypt before the crash"),
            ),
            _ => None,
        };
        Subject {
            provider: self,
            arn,
            sealed,
        }
    }
}

/// One cell's secret.
struct Subject {
    provider: Provider,
    arn: String,
    /// Keyring: a ciphertext sealed before the crash, which must stay readable.
    sealed: Option<Vec<u8>>,
}

impl Subject {
    /// Whether the version with `stage` holds a credential valid in the target system.
    async fn valid(&self, stack: &Stack, stage: &str) -> Result<(), String> {
        match self.provider {
            Provider::IamAccessKey => {
                let value = stack.value(&self.arn, stage).await;
                let key = AccessKey {
                    id: value["AccessKeyId"].as_str().unwrap_or_default().to_owned(),
                    secret: SecretString::from(
                        value["SecretAccessKey"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                };
                let user = value["UserName"].as_str().unwrap_or_default();
                let expected = stack.user_arn(user).await;
                match stack.caller_arn(&key).await {
                    Ok(arn) if arn == expected => Ok(()),
                    Ok(arn) => Err(format!("{stage} key authenticates as {arn}")),
                    Err(e) => Err(format!("{stage} key refused: {e}")),
                }
            }
            Provider::Keyring => {
                let client = KeyringClient::new(stack.secrets.clone(), &self.arn);
                let keyring = client.refresh().await.map_err(|e| e.to_string())?;
                keyring
                    .active_key()
                    .ok_or("the keyring has no active key")?;
                let sealed = self.sealed.as_deref().unwrap_or_default();
                client
                    .decrypt(sealed, b"matrix")
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("data sealed before the crash is lost: {e}"))
            }
            _ => {
                let db = self.provider.db().unwrap();
                let Credentials { user, password } = stack.credentials(&self.arn, stage).await;
                stack
                    .db_login(db, &user, &password)
                    .await
                    .map_err(|e| format!("{stage}: {e}"))
            }
        }
    }

    /// While a rotation is stopped: a stored credential still works. Alternating users, IAM
    /// keys and the keyring keep AWSCURRENT valid throughout; a single user has one password,
    /// which setSecret changes, so the pending version holds the valid one until finishSecret.
    async fn still_usable(&self, stack: &Stack) -> Result<(), String> {
        match self.valid(stack, AWSCURRENT).await {
            Ok(()) => Ok(()),
            Err(current)
                if matches!(self.provider, Provider::PgSingle | Provider::MariaDbSingle) =>
            {
                self.valid(stack, AWSPENDING)
                    .await
                    .map_err(|pending| format!("{current}; {pending}"))
            }
            Err(e) => Err(e),
        }
    }
}

/// Where a rotation stops.
#[derive(Debug, Clone, Copy)]
enum Crash {
    After(Step),
    InsideFinish,
}

impl Crash {
    const ALL: [Crash; 5] = [
        Crash::After(Step::Create),
        Crash::After(Step::Set),
        Crash::After(Step::Test),
        Crash::InsideFinish,
        Crash::After(Step::Finish),
    ];

    fn label(self) -> String {
        match self {
            Crash::After(step) => format!("after {}", step.as_str()),
            Crash::InsideFinish => "inside finishSecret".into(),
        }
    }
}

/// Labels a finished rotation leaves: `token` AWSCURRENT, one AWSPREVIOUS, no AWSPENDING.
fn finished(labels: &Labels, token: &str) -> Result<(), String> {
    let holders = |stage: &str| {
        labels
            .values()
            .filter(|s| s.iter().any(|l| l == stage))
            .count()
    };
    let ok = version_with(labels, AWSCURRENT) == Some(token)
        && holders(AWSCURRENT) == 1
        && holders(AWSPREVIOUS) == 1
        && holders(AWSPENDING) == 0;
    if ok {
        Ok(())
    } else {
        Err(format!("labels after the re-run: {labels:?}"))
    }
}

/// One cell: stop a rotation at `crash`, check a credential still works, re-run, check.
async fn cell(stack: &Stack, provider: Provider, crash: Crash) -> Result<(), String> {
    let subject = provider.secret(stack).await;
    let arn = &subject.arn;
    let driver = stack.driver(Mode::SecretsManager);
    let (token, _) = driver.next_token(arn).await?;
    let steps: &[Step] = match crash {
        Crash::After(step) => &Step::ALL[..=Step::ALL.iter().position(|s| *s == step).unwrap()],
        Crash::InsideFinish => &Step::ALL[..3],
    };
    for run in driver.run_steps(steps, arn, &token, None).await {
        run.result
            .map_err(|e| format!("{} before the crash: {e}", run.step))?;
    }
    if let Crash::InsideFinish = crash {
        // finishSecret's first call: AWSCURRENT moves to the token; the process dies before
        // its second call takes AWSPENDING off.
        let labels = stack.labels(arn).await;
        let current = version_with(&labels, AWSCURRENT).map(str::to_owned);
        stack
            .secrets
            .update_secret_version_stage()
            .secret_id(arn)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&token)
            .set_remove_from_version_id(current)
            .send()
            .await
            .map_err(|e| format!("moving AWSCURRENT: {e}"))?;
    }
    subject
        .still_usable(stack)
        .await
        .map_err(|e| format!("while stopped: {e}"))?;
    let rerun = driver.rotate(arn).await?;
    if !rerun.succeeded() {
        return Err(format!("re-run failed:\n{}", render_run(&rerun)));
    }
    finished(&stack.labels(arn).await, &rerun.token)?;
    subject
        .valid(stack, AWSCURRENT)
        .await
        .map_err(|e| format!("after the re-run: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_crash_point_of_every_provider_converges_on_a_rerun() {
    let stack = Stack::from_env().await;
    let mut table = format!("{:<24}", "provider \\ crash");
    for crash in Crash::ALL {
        let _ = write!(table, " {:<20}", crash.label());
    }
    table.push('\n');
    let mut failures = Vec::new();
    for provider in Provider::ALL {
        let _ = write!(table, "{:<24}", provider.name());
        for crash in Crash::ALL {
            let result = cell(&stack, provider, crash).await;
            let _ = write!(table, " {:<20}", if result.is_ok() { "ok" } else { "FAIL" });
            if let Err(e) = result {
                failures.push(format!("{} / {}: {e}", provider.name(), crash.label()));
            }
        }
        table.push('\n');
    }
    let table: String = table
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    println!("fault matrix (crash, then re-run):\n{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fault-matrix.txt");
    std::fs::write(&out, &table).expect("writing target/fault-matrix.txt");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rotation_is_refused_while_one_is_in_progress() {
    let stack = Stack::from_env().await;
    let TestUser {
        secret_arn: arn,
        user,
        ..
    } = stack
        .db_user_with_secret(Db::Postgres, "inprogress", Mode::SecretsManager)
        .await;
    let first = stack.driver(Mode::SecretsManager);
    let (token, _) = first.next_token(&arn).await.unwrap();
    first
        .step(Step::Create, &arn, &token, None)
        .await
        .result
        .expect("first createSecret");
    let pending_before = stack.value(&arn, AWSPENDING).await;

    let other = uuid::Uuid::new_v4().to_string();
    let second = stack.driver(Mode::SecretsManager);
    let refused = second.run_steps(&Step::ALL, &arn, &other, None).await;
    assert_eq!(
        refused.len(),
        1,
        "the second rotation stops at createSecret"
    );
    let message = refused[0].result.as_ref().unwrap_err().to_string();
    assert!(
        message.contains("rotation in progress") && message.contains(&token),
        "{message}"
    );
    assert_eq!(
        stack.value(&arn, AWSPENDING).await,
        pending_before,
        "the refused rotation changed the pending value"
    );

    let rest = first.run_steps(&Step::ALL[1..], &arn, &token, None).await;
    assert!(rest.iter().all(|r| r.result.is_ok()), "{rest:?}");
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    assert_eq!(
        current.expose_secret(),
        pending_before["password"].as_str().unwrap()
    );
    stack.assert_db_login(Db::Postgres, &user, &current).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rotations_at_once_one_completes_and_no_credential_is_lost() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        for round in 0..4 {
            let TestUser {
                secret_arn: arn,
                user,
                ..
            } = stack
                .db_user_with_secret(db, "race", Mode::SecretsManager)
                .await;
            // Finish RotateSecret's own pending version so that both start from no rotation.
            let setup = stack
                .driver(Mode::SecretsManager)
                .rotate(&arn)
                .await
                .unwrap();
            assert!(setup.succeeded(), "{}", render_run(&setup));
            let before = stack.credentials(&arn, AWSCURRENT).await.password;

            let (a, b) = (
                stack.driver(Mode::SecretsManager),
                stack.driver(Mode::SecretsManager),
            );
            let (token_a, token_b) = (
                uuid::Uuid::new_v4().to_string(),
                uuid::Uuid::new_v4().to_string(),
            );
            let (run_a, run_b) = tokio::join!(
                a.run_steps(&Step::ALL, &arn, &token_a, None),
                b.run_steps(&Step::ALL, &arn, &token_b, None)
            );
            let done = |runs: &[rotator::driver::StepRun]| {
                runs.len() == 4 && runs.iter().all(|r| r.result.is_ok())
            };
            let failure = |runs: &[rotator::driver::StepRun]| {
                runs.iter()
                    .find_map(|r| r.result.as_ref().err().map(|e| e.to_string()))
                    .unwrap_or_default()
            };
            let context = format!(
                "{db:?} round {round}: A {:?} / B {:?}",
                failure(&run_a),
                failure(&run_b)
            );
            let winners = [done(&run_a), done(&run_b)];
            assert_eq!(
                winners.iter().filter(|w| **w).count(),
                1,
                "exactly one rotation completes: {context}"
            );
            let (token, loser, losing_runs) = if winners[0] {
                (&token_a, &token_b, &run_b)
            } else {
                (&token_b, &token_a, &run_a)
            };
            let message = failure(losing_runs);
            assert!(
                message.contains("rotation in progress"),
                "the loser's error: {message} ({context})"
            );
            // No credential lost: AWSCURRENT is the winner's and logs in.
            let Credentials {
                user: current_user,
                password: current,
            } = stack.credentials(&arn, AWSCURRENT).await;
            assert_eq!(current_user, user);
            assert_ne!(current.expose_secret(), before.expose_secret());
            stack.assert_db_login(db, &user, &current).await;
            assert_eq!(
                version_with(&stack.labels(&arn).await, AWSCURRENT),
                Some(token.as_str()),
                "{context}"
            );
            // The loser's password, if it stored one, never became valid.
            if let Ok(out) = stack
                .secrets
                .get_secret_value()
                .secret_id(&arn)
                .version_id(loser)
                .send()
                .await
            {
                let value: serde_json::Value =
                    serde_json::from_str(out.secret_string().unwrap()).unwrap();
                let password = SecretString::from(value["password"].as_str().unwrap().to_owned());
                stack.assert_db_refused(db, &user, &password).await;
            }
            println!(
                "{db:?} round {round}: winner {}",
                if winners[0] { "A" } else { "B" }
            );
        }
    }
}
