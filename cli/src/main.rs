//! `rotator`: the command line for running rotations by hand.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rotator::driver::{Functions, LocalDriver, RotationRun};
use rotator::invoke::LambdaInvoker;
use rotator::versions::{labels, render};

/// Rotate Secrets Manager secrets with this project's functions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a rotation through functions served by `cargo lambda watch` (the local stack),
    /// playing Secrets Manager's part: createSecret, setSecret, testSecret, finishSecret.
    LocalRotate {
        /// Secret names or ARNs.
        #[arg(required = true)]
        secrets: Vec<String>,
        /// The Lambda Invoke API of `cargo lambda watch`.
        #[arg(
            long,
            env = "ROTATION_LAMBDA_ENDPOINT",
            default_value = "http://127.0.0.1:49001"
        )]
        lambda_endpoint: String,
        /// Invoke `rotate` for every step, or one function per step.
        #[arg(long, value_enum, default_value_t = FunctionsArg::Rotate)]
        functions: FunctionsArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FunctionsArg {
    Rotate,
    PerStep,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::LocalRotate {
            secrets,
            lambda_endpoint,
            functions,
        } => {
            let invoker = match LambdaInvoker::new(&lambda_endpoint, Duration::from_secs(120)) {
                Ok(invoker) => invoker,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let aws = aws_config::load_from_env().await;
            let client = aws_sdk_secretsmanager::Client::new(&aws);
            let functions = match functions {
                FunctionsArg::Rotate => Functions::Rotate,
                FunctionsArg::PerStep => Functions::PerStep,
            };
            let driver = LocalDriver::new(invoker, client.clone(), functions);
            let mut failed = false;
            for secret in secrets {
                match driver.rotate(&secret).await {
                    Ok(run) => {
                        print!("{}", rotator::driver::render_run(&run));
                        if let Ok(after) = labels(&client, &secret).await {
                            print!("versions after:\n{}", render(&after));
                        }
                        failed |= !run.succeeded();
                        print_outcome(&run);
                    }
                    Err(e) => {
                        eprintln!("error: {secret}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn print_outcome(run: &RotationRun) {
    match run.failure() {
        None => println!("rotation of {} succeeded\n", run.secret_id),
        Some(e) => println!("rotation of {} FAILED: {e}\n", run.secret_id),
    }
}
