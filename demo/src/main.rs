//! The main job: a full rotation on the local stack, shown step by step.
//!
//! `local-rotation demo` creates PostgreSQL users and their secrets, rotates them through the
//! real functions (single-user through `rotate`, alternating users through the four step
//! functions), shows each step and the version labels before and after, and proves that the
//! replaced password no longer logs in while the new one does.
//!
//! `local-rotation seed` prepares the secrets the sample events in `events/` name, for invoking
//! single steps by hand with `cargo lambda invoke`: `rotation/postgres/app` in Secrets Manager mode
//! (events/rotate/, for the `rotate` function, AWSPENDING waiting under the events' token) and
//! `rotation/postgres/app-workflow` in workflow mode (events/, for the step functions), and
//! `rotation/mysql/app` on MariaDB (events/mysql/, for the `rotate` function). The secrets and what
//! the seed makes of them are `test_support::samples`', which the integration tests send every
//! sample event against.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use rotation::secrets_manager::AWSCURRENT;
use rotation::Mode;
use rotator::driver::render_run;
use rotator::versions::render;
use secrecy::SecretString;
use serde_json::{json, Value};
use test_support::samples::SAMPLE_SECRETS;
use test_support::{Credentials, Db, Stack, TestUser};

#[derive(Parser)]
#[command(about = "A full local rotation against the local stack (see scripts/demo.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Rotate demo secrets and prove the result (the default).
    Demo,
    /// (Re)create the secret and user the sample events in events/ name.
    Seed,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let stack = Stack::from_env().await;
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo(&stack).await,
        Command::Seed => seed(&stack).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nFAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The secret's JSON with the password hidden, for display.
fn redacted(value: &Value) -> String {
    let mut value = value.clone();
    if value.get("password").is_some() {
        value["password"] = json!("********");
    }
    value.to_string()
}

async fn prove_logins(
    stack: &Stack,
    old: &[(String, SecretString, &str)],
    new: (&str, &SecretString),
) -> Result<(), String> {
    for (user, password, what) in old {
        match stack.pg_login(user, password).await {
            Ok(_) if *what == "refused" => {
                return Err(format!("the replaced password of {user} still logs in"))
            }
            Ok(_) => println!("  {user} with the previous password: logs in (still valid until the next rotation)"),
            Err(e) if e.is_authentication_failure() && *what == "refused" => {
                println!("  {user} with the replaced password: refused ({})", short(&e.to_string()))
            }
            Err(e) => return Err(format!("unexpected result for {user}: {e}")),
        }
    }
    let client = stack
        .pg_login(new.0, new.1)
        .await
        .map_err(|e| format!("the new password does not log in: {e}"))?;
    let row = client
        .query_one("SELECT session_user::text, current_user::text", &[])
        .await
        .map_err(|e| e.to_string())?;
    let (session, current) = (row.get::<_, String>(0), row.get::<_, String>(1));
    let acting = if session == current {
        String::new()
    } else {
        format!(", acting as {current} so both users share their objects")
    };
    println!(
        "  {} with the new password (AWSCURRENT): logs in over verified TLS{acting}",
        new.0
    );
    Ok(())
}

fn short(message: &str) -> &str {
    message.rsplit(": ").next().unwrap_or(message)
}

async fn demo(stack: &Stack) -> Result<(), String> {
    let started = Instant::now();

    println!("== 1. Single-user rotation through the `rotate` function (Secrets Manager mode)\n");
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .db_user_with_secret(Db::Postgres, "demo_app", Mode::SecretsManager)
        .await;
    println!(
        "secret {arn}\n  {}",
        redacted(&stack.value(&arn, AWSCURRENT).await)
    );
    println!("versions before:\n{}", render(&stack.labels(&arn).await));
    let run = stack.driver(Mode::SecretsManager).rotate(&arn).await?;
    print!("{}", render_run(&run));
    if let Some(e) = run.failure() {
        return Err(e.to_string());
    }
    println!("versions after:\n{}", render(&stack.labels(&arn).await));
    let current = stack.credentials(&arn, AWSCURRENT).await.password;
    println!("proof:");
    prove_logins(
        stack,
        &[(user.clone(), original, "refused")],
        (&user, &current),
    )
    .await?;

    println!("\n== 2. Alternating users through the four step functions (workflow mode), twice\n");
    let TestUser {
        secret_arn: arn,
        user,
        password: original,
    } = stack
        .alternating_user_with_secret(Db::Postgres, "demo_svc", false, Mode::Workflow)
        .await
        .app;
    println!(
        "secret {arn}\n  {}\n",
        redacted(&stack.value(&arn, AWSCURRENT).await)
    );
    let mut replaced: Vec<(String, SecretString)> = vec![(user.clone(), original)];
    for round in 1..=2 {
        let run = stack.driver(Mode::Workflow).rotate(&arn).await?;
        print!("{}", render_run(&run));
        if let Some(e) = run.failure() {
            return Err(e.to_string());
        }
        println!(
            "versions after rotation {round}:\n{}",
            render(&stack.labels(&arn).await)
        );
        let Credentials {
            user: current_user,
            password: current,
        } = stack.credentials(&arn, AWSCURRENT).await;
        let mut checks: Vec<(String, SecretString, &str)> = Vec::new();
        if replaced.len() >= 2 {
            let (u, p) = &replaced[replaced.len() - 2];
            checks.push((u.clone(), p.clone(), "refused"));
        }
        let (u, p) = &replaced[replaced.len() - 1];
        checks.push((u.clone(), p.clone(), "valid"));
        println!("proof:");
        prove_logins(stack, &checks, (&current_user, &current)).await?;
        println!();
        replaced.push((current_user, current));
    }

    println!(
        "All rotations succeeded in {:.1} s. The functions' log: {}",
        started.elapsed().as_secs_f64(),
        stack.lambda_log.display()
    );
    Ok(())
}

async fn seed(stack: &Stack) -> Result<(), String> {
    for sample in SAMPLE_SECRETS {
        let seeded = stack.seed_sample(&sample).await;
        println!(
            "seeded {} ({:?}) for user {}, versions:\n{}",
            sample.name,
            sample.db,
            sample.user,
            render(&stack.labels(&seeded.secret_arn).await)
        );
        println!("run, in order:");
        for step in rotation::Step::ALL {
            println!(
                "  cargo lambda invoke {} --data-file {} -A 127.0.0.1 -P 29001",
                rotation::Caller::of(sample.mode, step).function_name(),
                sample.event_file(step)
            );
        }
        println!();
    }
    Ok(())
}
