//! The results: a JSON document (`target/bench/results.json`) and the markdown tables printed
//! in the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Summary;

/// Everything one bench run measured.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    /// Where and when.
    pub machine: Machine,
    /// Cold start per function binary.
    pub cold_start: Vec<ColdStartRow>,
    /// Warm end-to-end rotations against the floor.
    pub warm: Vec<WarmRow>,
    /// Peak memory of the warm function processes over all their rotations.
    pub peak_memory: Vec<MemoryRow>,
    /// Secrets Manager calls per rotation, counted at the HTTP layer.
    pub secrets_manager_calls: Vec<CallsRow>,
    /// The zipped arm64 artifacts.
    pub artifacts: Vec<ArtifactRow>,
    /// Many secrets at several concurrencies.
    pub fleet: Vec<FleetRow>,
}

/// The machine and the run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// UTC start of the run.
    pub date: String,
    /// `git describe` of the workspace.
    pub commit: String,
    /// The CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory, in GiB.
    pub memory_gib: f64,
    /// The kernel.
    pub kernel: String,
    /// Release profile settings the binaries were built with.
    pub release_profile: String,
}

/// One function's cold start.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdStartRow {
    /// The binary.
    pub function: String,
    /// What the first invocation asked.
    pub invocation: String,
    /// Process start to first response.
    pub time: Option<Summary>,
    /// Median peak RSS after the first invocation, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Runs whose invocation failed (with the first error).
    pub failures: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Warm rotations of one kind, with the floor for the same work.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmRow {
    /// Strategy (single-user, alternating-users).
    pub strategy: String,
    /// Which functions ran the steps.
    pub functions: String,
    /// The four invocations, as the caller sees them.
    pub rotation: Option<Summary>,
    /// The floor.
    pub floor: Option<Summary>,
    /// Median rotation / median floor.
    pub ratio: Option<f64>,
    /// Rotations that failed.
    pub failures: usize,
}

/// Peak memory of one function process.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRow {
    /// The binary.
    pub function: String,
    /// What it ran.
    pub work: String,
    /// VmHWM, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// Secrets Manager calls of one rotation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallsRow {
    /// Strategy.
    pub strategy: String,
    /// Which functions ran the steps.
    pub functions: String,
    /// Per step, per operation.
    pub per_step: BTreeMap<String, BTreeMap<String, u32>>,
    /// Sum over the steps.
    pub total: u32,
}

/// One zipped artifact.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRow {
    /// The function.
    pub function: String,
    /// bootstrap.zip, bytes.
    pub zip_bytes: u64,
    /// Its contents (the bootstrap binary) unzipped, bytes.
    pub binary_bytes: Option<u64>,
}

/// The fleet at one concurrency.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRow {
    /// Rotations in flight at once.
    pub concurrency: usize,
    /// Secrets rotated.
    pub secrets: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Rotations per second.
    pub rotations_per_second: f64,
    /// Throughput relative to concurrency 1.
    pub speedup: Option<f64>,
    /// Rotations that failed.
    pub failures: usize,
}

fn ms(summary: &Option<Summary>, pick: fn(&Summary) -> f64) -> String {
    summary
        .as_ref()
        .map_or("-".into(), |s| format!("{:.1}", pick(s)))
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
}

impl Results {
    /// The tables, in markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Machine: {} ({} CPUs, {:.0} GiB), kernel {}; commit {}; {}; release profile: {}\n\n",
            m.cpu, m.cpus, m.memory_gib, m.kernel, m.commit, m.date, m.release_profile
        );
        out.push_str("### Cold start (process start to first response)\n\n");
        out.push_str("| function | first invocation | runs | median ms | p95 ms | peak RSS MiB | failures |\n|---|---|---:|---:|---:|---:|---:|\n");
        for r in &self.cold_start {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.function,
                r.invocation,
                r.time.as_ref().map_or(0, |s| s.runs),
                ms(&r.time, |s| s.median_ms),
                ms(&r.time, |s| s.p95_ms),
                opt(r.peak_rss_mib, 1),
                r.failures
            );
        }
        out.push_str("\n### Warm rotation (four steps) against the floor\n\n");
        out.push_str("| strategy | functions | runs | median ms | p95 ms | floor median ms | floor p95 ms | ratio | failures |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.warm {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.strategy,
                r.functions,
                r.rotation.as_ref().map_or(0, |s| s.runs),
                ms(&r.rotation, |s| s.median_ms),
                ms(&r.rotation, |s| s.p95_ms),
                ms(&r.floor, |s| s.median_ms),
                ms(&r.floor, |s| s.p95_ms),
                opt(r.ratio, 2),
                r.failures
            );
        }
        out.push_str("\n### Peak memory (VmHWM of the warm process)\n\n| function | work | peak RSS MiB |\n|---|---|---:|\n");
        for r in &self.peak_memory {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.function,
                r.work,
                opt(r.peak_rss_mib, 1)
            );
        }
        out.push_str("\n### Secrets Manager calls per rotation (counted on the wire)\n\n| strategy | functions | createSecret | setSecret | testSecret | finishSecret | total |\n|---|---|---|---|---|---|---:|\n");
        for r in &self.secrets_manager_calls {
            let step = |name: &str| {
                r.per_step.get(name).map_or("-".into(), |ops| {
                    let n: u32 = ops.values().sum();
                    let detail: Vec<String> =
                        ops.iter().map(|(op, c)| format!("{op} {c}")).collect();
                    format!("{n} ({})", detail.join(", "))
                })
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.strategy,
                r.functions,
                step("createSecret"),
                step("setSecret"),
                step("testSecret"),
                step("finishSecret"),
                r.total
            );
        }
        out.push_str("\n### Zipped arm64 artifacts\n\n| function | bootstrap.zip | bootstrap |\n|---|---:|---:|\n");
        if self.artifacts.is_empty() {
            out.push_str("| (not built: run scripts/build-artifacts.sh) | | |\n");
        }
        for r in &self.artifacts {
            let _ = writeln!(
                out,
                "| {} | {:.2} MiB | {} |",
                r.function,
                r.zip_bytes as f64 / 1048576.0,
                r.binary_bytes
                    .map_or("-".into(), |b| format!("{:.2} MiB", b as f64 / 1048576.0))
            );
        }
        out.push_str("\n### Fleet rotation\n\n| concurrency | secrets | seconds | rotations/s | speedup | failures |\n|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.fleet {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.2} | {} | {} |",
                r.concurrency,
                r.secrets,
                r.seconds,
                r.rotations_per_second,
                opt(r.speedup, 2),
                r.failures
            );
        }
        out
    }
}
