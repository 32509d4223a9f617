//! `rotator`: the on-call command line. `rotate` (now, after a compromise, or many secrets by
//! tag), `rollback`, `status`, and `local-rotate` (the local driver's raw view).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rotation::Mode;
use rotator::batch;
use rotator::diagnose::{CliError, Context};
use rotator::driver::{LocalDriver, RotationRun};
use rotator::invoke::LambdaInvoker;
use rotator::rotate::{Backend, Request, Rotator};
use rotator::status;
use rotator::versions::{labels, render};
use serde_json::json;

/// Rotate Secrets Manager secrets with this project's functions, and see where they stand.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Output for people, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    /// AWS region (else AWS_REGION / the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Secrets Manager endpoint (else AWS_ENDPOINT_URL), e.g. the local stack's moto.
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Rotate secrets now and wait for each rotation to finish.
    Rotate(RotateArgs),
    /// Move AWSCURRENT back to the AWSPREVIOUS version (and AWSPREVIOUS to the version that was
    /// AWSCURRENT), where that credential is proved to work now; run again to roll forward.
    Rollback {
        /// Secret name or ARN.
        secret: String,
        /// Prove and say what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The EventBridge bus that records the rollback.
        #[arg(long, env = "ROTATION_EVENT_BUS")]
        event_bus: Option<String>,
    },
    /// Show a secret's versions, provider, schedule and credential timeline.
    Status {
        /// Secret name or ARN.
        secret: String,
    },
    /// Drive a rotation through functions served by `cargo lambda watch` (the local stack),
    /// playing Secrets Manager's part: createSecret, setSecret, testSecret, finishSecret.
    /// Resumes a rotation in progress.
    LocalRotate {
        /// Secret names or ARNs.
        #[arg(required = true)]
        secrets: Vec<String>,
        /// The Lambda Invoke API of `cargo lambda watch`.
        #[arg(
            long,
            env = "ROTATION_LAMBDA_ENDPOINT",
            default_value = "http://127.0.0.1:29001"
        )]
        lambda_endpoint: String,
        /// Invoke `rotate` for every step, or one function per step.
        #[arg(long, default_value = "rotate", value_parser = functions_parser())]
        functions: Mode,
        /// Print the token each rotation would use (and whether it resumes); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args)]
struct RotateArgs {
    /// Secret names or ARNs.
    secrets: Vec<String>,
    /// Retire every credential valid before now: rotate as often as each secret's provider
    /// needs (1 single-phase, 2 dual-phase).
    #[arg(long)]
    compromised: bool,
    /// Also rotate the secrets carrying this tag (repeat: all of them).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = batch::parse_tag)]
    tags: Vec<(String, String)>,
    /// Rotate every secret the tags select (required when they select more than one).
    #[arg(long)]
    all_matching: bool,
    /// Rotations running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Secrets Manager calls (rotation starts, steps, polls) per second, at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
    rate: u32,
    /// Seconds one rotation (or one function invocation) may take.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=900))]
    timeout: u64,
    /// Print what would happen; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Local stack only: finish a rotation in progress instead of refusing.
    #[arg(long)]
    resume: bool,
    /// Run the four steps through the local stack's functions (ROTATION_LAMBDA_ENDPOINT).
    #[arg(long)]
    local: bool,
    /// The Lambda Invoke API serving the functions (implies --local).
    #[arg(long)]
    lambda_endpoint: Option<String>,
    /// The workflow's state machine, for workflow mode secrets in AWS.
    #[arg(long, env = "ROTATION_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// `--functions`: `rotate` (Secrets Manager mode) or `per-step` (workflow mode).
fn functions_parser() -> impl TypedValueParser<Value = Mode> {
    PossibleValuesParser::new(["rotate", "per-step"]).map(|value| match value.as_str() {
        "per-step" => Mode::Workflow,
        _ => Mode::SecretsManager,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.output;
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            match output {
                Output::Text => eprintln!("error: {e}"),
                Output::Json => {
                    println!("{}", json!({"error": e.to_string(), "errorType": e.kind()}))
                }
            }
            ExitCode::FAILURE
        }
    }
}

async fn aws_config(cli: &Cli) -> Result<(aws_config::SdkConfig, Context), CliError> {
    let mut loader = aws_config::from_env();
    if let Some(region) = &cli.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &cli.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let aws = loader.load().await;
    let region = aws
        .region()
        .map(ToString::to_string)
        .filter(|r| !r.trim().is_empty())
        .ok_or(CliError::NoRegion)?;
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.trim().is_empty());
    if aws.credentials_provider().is_none() {
        return Err(CliError::NoCredentials {
            detail: "no credentials provider is configured".to_owned(),
            profile,
        });
    }
    Ok((aws, Context { region, profile }))
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let (aws, context) = aws_config(&cli).await?;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    match cli.command {
        Command::Rotate(args) => rotate(&aws, client, context, cli.output, args).await,
        Command::Rollback {
            secret,
            dry_run,
            event_bus,
        } => {
            let engine = rollback_engine(&aws, event_bus)?;
            let outcome = rotator::rollback::rollback(&engine, &context, &secret, dry_run).await?;
            match cli.output {
                Output::Text => print!("{}", rotator::rollback::render(&outcome)),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&outcome).expect("serializable")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { secret } => {
            let status = status::read(&client, &context, &secret).await?;
            match cli.output {
                Output::Text => print!("{}", status::render(&status)),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("serializable")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::LocalRotate {
            secrets,
            lambda_endpoint,
            functions,
            dry_run,
        } => {
            let driver = local_driver(client, &lambda_endpoint, functions)?;
            local_rotate(&driver, &secrets, dry_run, cli.output).await
        }
    }
}

async fn rotate(
    aws: &aws_config::SdkConfig,
    client: aws_sdk_secretsmanager::Client,
    context: Context,
    output: Output,
    args: RotateArgs,
) -> Result<ExitCode, CliError> {
    let timeout = Duration::from_secs(args.timeout);
    let local_endpoint = match (&args.lambda_endpoint, args.local) {
        (Some(endpoint), _) => Some(endpoint.clone()),
        (None, true) => Some(
            std::env::var("ROTATION_LAMBDA_ENDPOINT")
                .unwrap_or_else(|_| "http://127.0.0.1:29001".to_owned()),
        ),
        (None, false) => None,
    };
    if args.resume && local_endpoint.is_none() {
        return Err(CliError::Usage(
            "--resume works on the local stack only (--local): in AWS, Secrets Manager retries a failed rotation by itself".to_owned(),
        ));
    }
    let backend = match local_endpoint {
        Some(endpoint) => Backend::Local(
            LambdaInvoker::new(&endpoint, timeout).map_err(|e| CliError::Other(e.to_string()))?,
        ),
        None => {
            let timeout_text = args.timeout.to_string();
            let machine = args.state_machine_arn.clone();
            let runner = rotation::compromise::Runner::from_lookup(aws, |name| match name {
                rotation::compromise::runner::ENV_TIMEOUT => Some(timeout_text.clone()),
                rotation::compromise::runner::ENV_STATE_MACHINE_ARN => machine.clone(),
                _ => None,
            })
            .map_err(|e| CliError::Other(e.to_string()))?;
            Backend::Aws(runner)
        }
    };
    let tags: BTreeMap<String, String> = args.tags.iter().cloned().collect();
    let secrets = batch::select(&client, &context, &args.secrets, &tags, args.all_matching).await?;
    let rate = NonZeroU32::new(args.rate).expect("at least 2");
    let rotator = Rotator::new(client, backend, rate, timeout, context);
    let request = Request {
        compromised: args.compromised,
        dry_run: args.dry_run,
        resume: args.resume,
    };
    let progress = output == Output::Text && std::io::stderr().is_terminal();
    let outcomes = batch::run_all(
        &rotator,
        &secrets,
        request,
        usize::from(args.concurrency),
        progress,
    )
    .await;
    let failed = outcomes.iter().filter(|o| !o.succeeded()).count();
    match output {
        Output::Text => print!("{}", batch::render(&outcomes)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dryRun": args.dry_run,
                "compromised": args.compromised,
                "succeeded": outcomes.len() - failed,
                "failed": failed,
                "results": outcomes,
            }))
            .expect("serializable")
        ),
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The rotation engine `rollback` proves a version with: the operator's AWS configuration, the
/// functions' settings read from this environment (database CA, host overrides, timeouts) and
/// the event bus that records the rollback.
fn rollback_engine(
    aws: &aws_config::SdkConfig,
    event_bus: Option<String>,
) -> Result<rotation::protocol::Engine, CliError> {
    let mut config =
        rotation::config::Config::from_env().map_err(|e| CliError::Usage(e.to_string()))?;
    config.event_bus = event_bus.filter(|bus| !bus.trim().is_empty());
    rotation::protocol::Engine::new(aws.clone(), config).map_err(|e| CliError::Usage(e.to_string()))
}

fn local_driver(
    client: aws_sdk_secretsmanager::Client,
    lambda_endpoint: &str,
    mode: Mode,
) -> Result<LocalDriver, CliError> {
    let invoker = LambdaInvoker::new(lambda_endpoint, Duration::from_secs(120))
        .map_err(|e| CliError::Other(e.to_string()))?;
    Ok(LocalDriver::new(invoker, client, mode))
}

/// `local-rotate`: the driver's raw view, resuming a rotation in progress.
async fn local_rotate(
    driver: &LocalDriver,
    secrets: &[String],
    dry_run: bool,
    output: Output,
) -> Result<ExitCode, CliError> {
    let mut failed = false;
    let mut results = Vec::new();
    for secret in secrets {
        if dry_run {
            let (token, resumed) = driver
                .next_token(secret)
                .await
                .map_err(|e| CliError::Other(e.to_string()))?;
            match output {
                Output::Text => println!(
                    "would rotate {secret} with token {token}{}",
                    if resumed {
                        " (resuming the rotation in progress)"
                    } else {
                        ""
                    }
                ),
                Output::Json => results.push(
                    json!({"secretId": secret, "token": token, "resumed": resumed, "dryRun": true}),
                ),
            }
            continue;
        }
        match driver.rotate(secret).await {
            Ok(run) => {
                failed |= !run.succeeded();
                match output {
                    Output::Text => {
                        print!("{}", rotator::driver::render_run(&run));
                        if let Ok(after) = labels(driver.secrets(), secret).await {
                            print!("versions after:\n{}", render(&after));
                        }
                        print_outcome(&run);
                    }
                    Output::Json => results.push(run_json(&run)),
                }
            }
            Err(e) => {
                failed = true;
                match output {
                    Output::Text => eprintln!("error: {secret}: {e}"),
                    Output::Json => results.push(json!({"secretId": secret, "error": e})),
                }
            }
        }
    }
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"results": results})).expect("serializable")
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_json(run: &RotationRun) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = run
        .steps
        .iter()
        .map(|s| {
            let mut step = json!({
                "step": s.step.as_str(),
                "function": s.function,
                "ms": s.elapsed.as_millis(),
            });
            match &s.result {
                Ok(report) => step["outcome"] = json!(report.outcome.as_str()),
                Err(e) => step["error"] = json!(e.to_string()),
            }
            step
        })
        .collect();
    json!({
        "secretId": run.secret_id,
        "token": run.token,
        "resumed": run.resumed,
        "succeeded": run.succeeded(),
        "steps": steps,
    })
}

fn print_outcome(run: &RotationRun) {
    match run.failure() {
        None => println!("rotation of {} succeeded\n", run.secret_id),
        Some(e) => println!("rotation of {} FAILED: {e}\n", run.secret_id),
    }
}
