//! cargo-lambda's runtime emulator (`cargo lambda watch --only-lambda-apis`) and function
//! processes started by the bench itself, so that it sees each process from its first
//! instruction to its last: cold start and peak memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rotator::invoke::{InvokeError, LambdaInvoker};
use serde_json::Value;
use tokio::process::{Child, Command};

/// The emulator, serving the Lambda Invoke API and the Runtime API on one port; it stops when
/// dropped.
pub struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    /// Starts `cargo lambda watch --only-lambda-apis` for the workspace at `workspace` on
    /// 127.0.0.1:`port`, logging to `log`.
    pub async fn start(
        cargo_lambda: &Path,
        workspace: &Path,
        port: u16,
        log: &Path,
    ) -> Result<Emulator, String> {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Err(format!(
                "port {port} is taken; choose another with --emulator-port"
            ));
        }
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .current_dir(workspace)
            .stdout(Stdio::from(
                log_file.try_clone().map_err(|e| e.to_string())?,
            ))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", cargo_lambda.display()))?;
        let emulator = Emulator { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(format!(
                    "the emulator did not open port {port}; see {}",
                    log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(emulator)
    }

    /// The Lambda Invoke API endpoint.
    pub fn invoke_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Runtime API base a process serving `function` polls (`AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/.rt/{function}", self.port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// How to start a function binary.
#[derive(Clone)]
pub struct Launcher {
    /// The directory holding the release binaries.
    pub bin_dir: PathBuf,
    /// The environment every function gets (the stack's, as `scripts/stack.sh` gives it).
    pub env: Vec<(String, String)>,
    /// Where the functions' output goes.
    pub log_dir: PathBuf,
}

/// A function process polling the emulator; killed when dropped.
pub struct FunctionProcess {
    child: Child,
}

impl Launcher {
    /// Starts `binary` serving `function` through `emulator`.
    pub fn spawn(
        &self,
        emulator: &Emulator,
        binary: &str,
        log_name: &str,
    ) -> Result<FunctionProcess, String> {
        let path = self.bin_dir.join(binary);
        let log_path = self.log_dir.join(format!("{log_name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = Command::new(&path)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api(binary))
            .env("AWS_LAMBDA_FUNCTION_NAME", binary)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        Ok(FunctionProcess { child })
    }
}

impl FunctionProcess {
    /// The process's peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A function's first invocation: the process serving it from then on, how long the answer
/// took from process start, and the answer.
pub struct Launched {
    /// The process, still polling for the next invocation.
    pub process: FunctionProcess,
    /// From spawning the process to the invocation's response.
    pub elapsed: Duration,
    /// The function's answer.
    pub result: Result<Value, InvokeError>,
}

/// Queues an invocation of `binary`, then starts a fresh process for it and times the
/// response. The invocation is queued first because a release build of the runtime treats the
/// emulator's "nothing queued" answer as an error.
pub async fn launch(
    emulator: &Emulator,
    launcher: &Launcher,
    invoker: &LambdaInvoker,
    binary: &str,
    event: &Value,
) -> Result<Launched, String> {
    let pending = {
        let invoker = invoker.clone();
        let (binary, event) = (binary.to_owned(), event.clone());
        tokio::spawn(async move { invoker.invoke(&binary, &event).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let mut process = launcher.spawn(emulator, binary, binary)?;
    let result = pending.await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !process.running() {
        return Err(format!("{binary} exited during its first invocation"));
    }
    Ok(Launched {
        process,
        elapsed,
        result,
    })
}
