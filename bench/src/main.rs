//! `bench`: cold start, memory, rotation latency against the floor, Secrets Manager calls on the
//! wire, artifact size and fleet throughput of the release binaries, on the local stack.
//!
//! Run it with `scripts/bench.sh` (it builds the release binaries and starts the stack). The
//! bench starts cargo-lambda's runtime emulator (`cargo lambda watch --only-lambda-apis`) and
//! the function processes itself, so it sees each process from start to exit. It prints
//! markdown tables and writes `target/bench/results.json`.

mod emulator;
mod floor;
mod proxy;
mod report;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::stream::{self, StreamExt};
use rotation::password::PasswordPolicy;
use rotation::secrets_manager::AWSCURRENT;
use rotation::{Mode, RotationContext, Step, FUNCTIONS};
use rotator::driver::{LocalDriver, RotationRun};
use rotator::invoke::LambdaInvoker;
use serde_json::{json, Value};
use test_support::{Db, Stack};

use emulator::{launch, Emulator, FunctionProcess, Launcher};
use floor::FloorSecret;
use proxy::CountingProxy;
use report::{ArtifactRow, CallsRow, ColdStartRow, FleetRow, Machine, MemoryRow, Results, WarmRow};
use stats::Summary;

/// Measure the release binaries on the local stack (see scripts/bench.sh).
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Directory of the release function binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The cargo-lambda executable (its runtime emulator).
    #[arg(long, default_value = "cargo-lambda")]
    cargo_lambda: PathBuf,
    /// Port of the emulator (Invoke API and Runtime API).
    #[arg(long, default_value_t = 49500)]
    emulator_port: u16,
    /// Cold starts per function.
    #[arg(long, default_value_t = 20)]
    cold_runs: usize,
    /// Warm rotations per strategy and mode (and floor runs per strategy).
    #[arg(long, default_value_t = 30)]
    rotations: usize,
    /// Secrets in the fleet.
    #[arg(long, default_value_t = 200)]
    fleet: usize,
    /// Fleet concurrencies.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Where cargo lambda build put the zipped arm64 artifacts.
    #[arg(long, default_value = "target/lambda")]
    artifacts: PathBuf,
    /// Where results.json and the function logs go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
}

/// A secret the warm phase rotates, and how.
struct WarmSecret {
    arn: String,
    strategy: &'static str,
    functions: Mode,
}

fn functions_label(functions: Mode) -> &'static str {
    match functions {
        Mode::SecretsManager => "rotate",
        Mode::Workflow => "step functions",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(results) => {
            print!("{}", results.markdown());
            let path = args.out_dir.join("results.json");
            let json = serde_json::to_string_pretty(&results).unwrap_or_default();
            if let Err(e) = std::fs::write(&path, json + "\n") {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("\nresults: {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

async fn run(args: &Args) -> Result<Results, String> {
    let log_dir = args.out_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    for binary in FUNCTIONS {
        let path = args.bin_dir.join(binary);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: build the release binaries first (scripts/bench.sh does)",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(log_dir.join(format!("{binary}.log")));
    }
    let stack = Stack::from_env().await;
    let workspace = std::env::current_dir().map_err(|e| e.to_string())?;
    let emulator = Emulator::start(
        &args.cargo_lambda,
        &workspace,
        args.emulator_port,
        &log_dir.join("emulator.log"),
    )
    .await?;
    let moto = std::env::var("AWS_ENDPOINT_URL").map_err(|_| "AWS_ENDPOINT_URL is not set")?;
    let proxy = CountingProxy::start(&moto)
        .await
        .map_err(|e| format!("counting proxy: {e}"))?;
    let direct = Launcher {
        bin_dir: args.bin_dir.clone(),
        env: function_env(),
        log_dir: log_dir.clone(),
    };
    let mut counted = direct.clone();
    counted
        .env
        .push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), proxy.url()));
    let invoker = LambdaInvoker::new(&emulator.invoke_endpoint(), Duration::from_secs(120))
        .map_err(|e| e.to_string())?;

    progress("preparing the secrets");
    let events = ColdEvents::prepare(&stack).await?;

    progress(&format!("cold starts: {} per function", args.cold_runs));
    let mut cold_start = Vec::new();
    for binary in FUNCTIONS {
        cold_start.push(cold_starts(args, &log_dir, &direct, binary, &events).await?);
    }

    let warm_secrets = warm_secrets(&stack).await;

    progress("Secrets Manager calls on the wire");
    let secrets_manager_calls = {
        let (emulator, invoker) = fresh_emulator(args, &log_dir, "counting").await?;
        let _processes = start_functions(&emulator, &counted, &invoker, &events).await?;
        let mut rows = Vec::new();
        for secret in &warm_secrets {
            rows.push(count_calls(&stack, &invoker, &proxy, secret).await?);
        }
        rows
    };

    progress(&format!(
        "warm rotations: {} per strategy and mode, and the floor",
        args.rotations
    ));
    let processes = start_functions(&emulator, &direct, &invoker, &events).await?;
    let warm = warm_rotations(&stack, &invoker, &warm_secrets, args.rotations).await?;
    let peak_memory = processes
        .iter()
        .map(|(binary, process)| MemoryRow {
            function: (*binary).to_owned(),
            work: format!(
                "{} warm rotations (single-user and alternating users)",
                2 * (args.rotations + 1)
            ),
            peak_rss_mib: process.peak_rss_kib().map(mib),
        })
        .collect();

    progress(&format!(
        "fleet: {} secrets at concurrency {:?}",
        args.fleet, args.concurrency
    ));
    let fleet = fleet(&stack, &emulator, &direct, &invoker, args).await?;
    drop(processes);

    Ok(Results {
        machine: machine(&workspace),
        cold_start,
        warm,
        peak_memory,
        secrets_manager_calls,
        artifacts: artifacts(&args.artifacts),
        fleet,
    })
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// The environment `scripts/stack.sh` gives the functions, from the stack's variables, with
/// the production defaults for the password policy and the log level.
fn function_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "ROTATION_DB_CA_FILE",
        "ROTATION_DB_HOST_OVERRIDES",
        "USERNAME_CHARACTER_LIMIT",
        "ROTATION_EVENT_BUS",
        "ROTATION_RACE_SETTLE_MILLISECONDS",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
    .filter(|(_, v)| !v.is_empty())
    .collect();
    if let Ok(rds) = std::env::var("ROTATION_RDS_ENDPOINT") {
        env.push(("AWS_ENDPOINT_URL_RDS".into(), rds));
    }
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "info".into()));
    env
}

/// The first invocation of each function: a step whose token is already AWSCURRENT, so the
/// function starts, checks the secret (one DescribeSecret) and answers, changing nothing.
struct ColdEvents {
    rotate: Value,
    workflow_secret: String,
    workflow_token: String,
    compromise: Value,
}

impl ColdEvents {
    async fn prepare(stack: &Stack) -> Result<ColdEvents, String> {
        let sm_arn = stack
            .db_user_with_secret(Db::Postgres, "bench_cold", Mode::SecretsManager)
            .await
            .secret_arn;
        let wf_arn = stack
            .db_user_with_secret(Db::Postgres, "bench_cold_wf", Mode::Workflow)
            .await
            .secret_arn;
        let current = |arn: String| async move {
            let labels = stack.labels(&arn).await;
            rotator::versions::version_with(&labels, AWSCURRENT)
                .map(str::to_owned)
                .ok_or_else(|| format!("{arn} has no AWSCURRENT version"))
        };
        let sm_token = current(sm_arn.clone()).await?;
        let workflow_token = current(wf_arn.clone()).await?;
        let marker = Stack::unique("bench");
        Ok(ColdEvents {
            rotate: json!({"Step": "finishSecret", "SecretId": sm_arn, "ClientRequestToken": sm_token}),
            workflow_secret: wf_arn,
            workflow_token,
            compromise: json!({
                "source": "secret-rotation.incident",
                "detail-type": "Secret Compromised",
                "detail": {"tags": {"bench-selects-nothing": marker}, "incident": "BENCH"}
            }),
        })
    }

    /// The error a function is expected to answer its first invocation with: `compromise`
    /// refuses a request that selects no secret (the only request that changes nothing), and
    /// that refusal is its first response.
    fn expected_error(binary: &str) -> Option<&'static str> {
        (binary == "compromise").then_some("no secret carries all the tags")
    }

    fn event(&self, binary: &str) -> (Value, String) {
        let step = match binary {
            "rotate" => return (self.rotate.clone(), "finishSecret, already done".into()),
            "compromise" => {
                return (
                    self.compromise.clone(),
                    "a request selecting no secret (refused)".into(),
                )
            }
            "create-secret" => Step::Create,
            "set-secret" => Step::Set,
            "test-secret" => Step::Test,
            _ => Step::Finish,
        };
        (
            json!({
                "Step": step.as_str(),
                "SecretId": self.workflow_secret,
                "ClientRequestToken": self.workflow_token,
            }),
            format!("{}, already done", step.as_str()),
        )
    }
}

/// A fresh emulator on a free port, and an invoker for it. Each cold start and each set of
/// processes that is killed gets its own: the emulator may hand the next invocation to the poll
/// of a process that was killed (the invocation is then lost).
async fn fresh_emulator(
    args: &Args,
    log_dir: &Path,
    name: &str,
) -> Result<(Emulator, LambdaInvoker), String> {
    let workspace = std::env::current_dir().map_err(|e| e.to_string())?;
    let emulator = Emulator::start(
        &args.cargo_lambda,
        &workspace,
        test_support::faults::free_port(),
        &log_dir.join(format!("emulator-{name}.log")),
    )
    .await?;
    let invoker = LambdaInvoker::new(&emulator.invoke_endpoint(), Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    Ok((emulator, invoker))
}

async fn cold_starts(
    args: &Args,
    log_dir: &Path,
    launcher: &Launcher,
    binary: &str,
    events: &ColdEvents,
) -> Result<ColdStartRow, String> {
    let runs = args.cold_runs;
    let (event, invocation) = events.event(binary);
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    for _ in 0..runs {
        let (emulator, invoker) = fresh_emulator(args, log_dir, "cold").await?;
        let launched = launch(&emulator, launcher, &invoker, binary, &event).await?;
        rss.extend(launched.process.peak_rss_kib());
        let expected = ColdEvents::expected_error(binary);
        match launched.result {
            Ok(_) => times.push(launched.elapsed),
            Err(e) if expected.is_some_and(|text| e.to_string().contains(text)) => {
                times.push(launched.elapsed)
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    rss.sort_unstable();
    Ok(ColdStartRow {
        function: binary.to_owned(),
        invocation,
        time: Summary::of(&times),
        peak_rss_mib: rss.get(rss.len() / 2).copied().map(mib),
        failures,
        first_error,
    })
}

/// Starts one warm process for `rotate` and each step function (not `compromise`).
async fn start_functions(
    emulator: &Emulator,
    launcher: &Launcher,
    invoker: &LambdaInvoker,
    events: &ColdEvents,
) -> Result<Vec<(&'static str, FunctionProcess)>, String> {
    let mut processes = Vec::new();
    for binary in &FUNCTIONS[..5] {
        let launched = launch(emulator, launcher, invoker, binary, &events.event(binary).0).await?;
        launched
            .result
            .map_err(|e| format!("{binary} failed its first invocation: {e}"))?;
        processes.push((*binary, launched.process));
    }
    Ok(processes)
}

/// A PostgreSQL secret of each strategy in each mode.
async fn warm_secrets(stack: &Stack) -> Vec<WarmSecret> {
    let mut secrets = Vec::new();
    for functions in [Mode::SecretsManager, Mode::Workflow] {
        let arn = stack
            .db_user_with_secret(Db::Postgres, "bench_single", functions)
            .await
            .secret_arn;
        secrets.push(WarmSecret {
            arn,
            strategy: "single-user",
            functions,
        });
        secrets.push(WarmSecret {
            arn: stack
                .alternating_user_with_secret(Db::Postgres, "bench_alt", false, functions)
                .await
                .app
                .secret_arn,
            strategy: "alternating-users",
            functions,
        });
    }
    secrets
}

fn driver(stack: &Stack, invoker: &LambdaInvoker, functions: Mode) -> LocalDriver {
    LocalDriver::new(invoker.clone(), stack.secrets.clone(), functions)
}

/// The token of a new rotation, reserved the way Secrets Manager does in its mode: RotateSecret
/// (moto's) labels an empty version AWSPENDING under the token before the first step, so the
/// functions see what they see on AWS. The workflow has no such version (moto refuses an empty
/// PutSecretValue, and so does AWS). A rotation in progress is resumed with its own token.
async fn reserve(
    stack: &Stack,
    driver: &LocalDriver,
    arn: &str,
    functions: Mode,
) -> Result<String, String> {
    let (token, resumed) = driver.next_token(arn).await?;
    if functions == Mode::SecretsManager && !resumed {
        stack.enable_rotation_with_token(arn, Some(&token)).await;
    }
    Ok(token)
}

/// One whole rotation, as Secrets Manager or the workflow runs it.
async fn rotate(
    stack: &Stack,
    driver: &LocalDriver,
    arn: &str,
    functions: Mode,
) -> Result<RotationRun, String> {
    let token = reserve(stack, driver, arn, functions).await?;
    let steps = driver.run_steps(&Step::ALL, arn, &token, None).await;
    Ok(RotationRun {
        secret_id: arn.to_owned(),
        token,
        resumed: false,
        steps,
    })
}

/// One rotation step by step, counting the Secrets Manager requests of each step.
async fn count_calls(
    stack: &Stack,
    invoker: &LambdaInvoker,
    proxy: &CountingProxy,
    secret: &WarmSecret,
) -> Result<CallsRow, String> {
    let driver = driver(stack, invoker, secret.functions);
    let token = reserve(stack, &driver, &secret.arn, secret.functions).await?;
    let mut context = RotationContext::default();
    let mut per_step = BTreeMap::new();
    let mut total = 0;
    for step in Step::ALL {
        proxy.counts.take();
        let run = driver
            .step_with(step, &secret.arn, &token, None, context.clone())
            .await;
        let counts = proxy.counts.take();
        let report = run.result.map_err(|e| {
            format!(
                "{} rotation of {}: {}: {e}",
                secret.strategy,
                secret.arn,
                step.as_str()
            )
        })?;
        if secret.functions == Mode::Workflow {
            context.provider = report.provider.or(context.provider);
            context.strategy = report.strategy.or(context.strategy);
        }
        total += counts.values().sum::<u32>();
        per_step.insert(step.as_str().to_owned(), counts);
    }
    Ok(CallsRow {
        strategy: secret.strategy.to_owned(),
        functions: functions_label(secret.functions).to_owned(),
        per_step,
        total,
    })
}

/// Warm rotations of every secret, interleaved with floor runs of the same strategy.
async fn warm_rotations(
    stack: &Stack,
    invoker: &LambdaInvoker,
    secrets: &[WarmSecret],
    rotations: usize,
) -> Result<Vec<WarmRow>, String> {
    let policy = PasswordPolicy::default();
    let mut floors = [
        FloorSecret::single_user(stack).await?,
        FloorSecret::alternating(stack).await?,
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); secrets.len()];
    let mut failures = vec![0; secrets.len()];
    let mut floor_times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rotations {
        for (i, secret) in secrets.iter().enumerate() {
            let driver = driver(stack, invoker, secret.functions);
            let run = rotate(stack, &driver, &secret.arn, secret.functions).await?;
            if run.succeeded() {
                times[i].push(run.steps.iter().map(|s| s.elapsed).sum());
            } else {
                failures[i] += 1;
                progress(&rotator::driver::render_run(&run));
            }
        }
        for (floor, samples) in floors.iter_mut().zip(floor_times.iter_mut()) {
            samples.push(floor.rotate(stack, &policy).await?);
        }
    }
    let floor_summaries = floor_times.map(|t| Summary::of(&t));
    Ok(secrets
        .iter()
        .enumerate()
        .map(|(i, secret)| {
            let floor = floor_summaries[usize::from(secret.strategy != "single-user")].clone();
            let rotation = Summary::of(&times[i]);
            let ratio = match (&rotation, &floor) {
                (Some(r), Some(f)) if f.median_ms > 0.0 => {
                    Some((r.median_ms / f.median_ms * 100.0).round() / 100.0)
                }
                _ => None,
            };
            WarmRow {
                strategy: secret.strategy.to_owned(),
                functions: functions_label(secret.functions).to_owned(),
                rotation,
                floor,
                ratio,
                failures: failures[i],
            }
        })
        .collect())
}

/// Rotates `args.fleet` single-user secrets through `rotate` at each concurrency, with as many
/// `rotate` processes as the highest concurrency (Lambda scales out the same way).
async fn fleet(
    stack: &Stack,
    emulator: &Emulator,
    launcher: &Launcher,
    invoker: &LambdaInvoker,
    args: &Args,
) -> Result<Vec<FleetRow>, String> {
    let arns: Vec<String> = stream::iter(0..args.fleet)
        .map(|_| async {
            stack
                .db_user_with_secret(Db::Postgres, "bench_fleet", Mode::SecretsManager)
                .await
                .secret_arn
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let instances = args.concurrency.iter().copied().max().unwrap_or(1);
    let mut extra = Vec::new();
    for _ in 1..instances {
        extra.push(launcher.spawn(emulator, "rotate", "rotate-fleet")?);
    }
    let driver = driver(stack, invoker, Mode::SecretsManager);
    let mut rows: Vec<FleetRow> = Vec::new();
    for &concurrency in &args.concurrency {
        let started = Instant::now();
        let outcomes: Vec<bool> = stream::iter(&arns)
            .map(|arn| {
                let driver = driver.clone();
                async move {
                    rotate(stack, &driver, arn, Mode::SecretsManager)
                        .await
                        .is_ok_and(|run| run.succeeded())
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let rate = arns.len() as f64 / seconds;
        let base = rows.first().map(|r| r.rotations_per_second);
        rows.push(FleetRow {
            concurrency,
            secrets: arns.len(),
            seconds: (seconds * 10.0).round() / 10.0,
            rotations_per_second: (rate * 100.0).round() / 100.0,
            speedup: base.map(|b| (rate / b * 100.0).round() / 100.0),
            failures: outcomes.iter().filter(|ok| !**ok).count(),
        });
    }
    drop(extra);
    Ok(rows)
}

fn artifacts(dir: &Path) -> Vec<ArtifactRow> {
    FUNCTIONS
        .iter()
        .filter_map(|name| {
            let zip = std::fs::metadata(dir.join(name).join("bootstrap.zip")).ok()?;
            Some(ArtifactRow {
                function: (*name).to_owned(),
                zip_bytes: zip.len(),
                binary_bytes: unzipped_size(&dir.join(name).join("bootstrap.zip")),
            })
        })
        .collect()
}

/// The uncompressed size of every entry of a zip file.
fn unzipped_size(path: &Path) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let mut archive = zip::ZipArchive::new(file).ok()?;
    let mut total = 0;
    for i in 0..archive.len() {
        total += archive.by_index_raw(i).ok()?.size();
    }
    Some(total)
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine(workspace: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cargo_toml = std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap_or_default();
    let release_profile = cargo_toml
        .split("[profile.release]")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with('['))
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Machine {
        date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        commit: command_output("git", &["describe", "--always", "--dirty"]),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| (kib / 1048576.0 * 10.0).round() / 10.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        release_profile,
    }
}
