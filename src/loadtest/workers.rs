//! `--workers N`: one load test run by N worker processes of this same binary on this machine,
//! each a shard of the scenario (`shard.rs`: its share of the arrival rate, virtual users and
//! rooms), their reports merged exactly (histograms added, `report::merge`) into one report, with
//! one progress display and one exit code.
//!
//! One process may hold only so many sockets (its open-file limit), so past that a run needs
//! several; and one process's runtime tops out on a couple of cores. The workers are plain
//! `load-test --shard K/N --worker` runs: a worker writes its counters as JSON lines on stdout
//! (summed here into the progress line), its errors on stderr (passed through), and its report
//! to a file that is merged once every worker has finished. Because each worker owns whole
//! rooms, every message is counted and received in one worker, and the merged delivery counts
//! are exact.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::progress::{Progress, Status};
use super::report::{self, Report};
use super::scenario::{Scenario, Target};
use super::setup::Embedded;
use super::shard::Shard;
use crate::exit::{CommandError, ExitCode};

/// The most workers one run may fork: each is a whole process with its runtime.
pub const MAX_WORKERS: u32 = 64;

/// How often the combined progress line is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(250);

/// How to start the workers.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// This binary.
    pub exe: PathBuf,
    pub workers: u32,
    /// The part of the scenario the workers share between them (`--shard`, or the whole).
    pub shard: Shard,
    /// `load-test` arguments every worker gets as they are: the scenario file, `--set`,
    /// `--interval`, `--threads`.
    pub args: Vec<OsString>,
    /// `--target` URLs given on the command line (none: the scenario's).
    pub targets: Vec<String>,
    pub show_progress: bool,
}

/// Run the workers to one merged report.
pub async fn run(scenario: &Scenario, plan: &WorkerPlan) -> anyhow::Result<Report> {
    let mut targets = plan.targets.clone();
    // One embedded server for all workers, in this process: they then share its rooms and
    // store as they would share a deployment.
    let embedded = match &scenario.target {
        Target::Embedded if scenario.setup.restart_server.is_some() => {
            return Err(CommandError::usage(
                "--workers with setup.restart_server: the workers share one embedded server, \
                 which this run cannot restart under them; run without --workers",
            )
            .into());
        }
        Target::Embedded => {
            let server = Embedded::start(&scenario.engine_path, false).await?;
            targets = vec![server.http_url()];
            Some(server)
        }
        Target::Urls(_) => None,
    };
    let dir = ReportDir::create()?;
    let result = run_workers(scenario, plan, &targets, &dir.0).await;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    result
}

async fn run_workers(
    scenario: &Scenario,
    plan: &WorkerPlan,
    targets: &[String],
    dir: &Path,
) -> anyhow::Result<Report> {
    let shards = plan.shard.split(plan.workers);
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<(usize, Status)>();
    let mut running = JoinSet::new();
    let mut paths = Vec::with_capacity(shards.len());
    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(format!("worker-{}.json", i + 1));
        let mut command = Command::new(&plan.exe);
        command
            .args(["-q", "load-test"])
            .args(&plan.args)
            .args(targets.iter().flat_map(|t| ["--target", t.as_str()]))
            .args(["--shard", &shard.to_string(), "--worker", "--output"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            CommandError::new(
                ExitCode::Failure,
                format!("cannot start worker {}: {e}", i + 1),
            )
        })?;
        let stdout = child.stdout.take();
        let tx = status_tx.clone();
        running.spawn(async move {
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(status) = serde_json::from_str::<Status>(&line) {
                        let _ = tx.send((i, status));
                    }
                }
            }
            (i, child.wait().await)
        });
        paths.push(path);
    }
    drop(status_tx);
    tracing::info!(workers = shards.len(), shard = %plan.shard, "workers started");

    let progress = Progress::new(plan.show_progress, scenario.duration());
    let mut statuses = vec![Status::default(); shards.len()];
    let mut exits = vec![None; shards.len()];
    let started = Instant::now();
    let mut draw = tokio::time::interval(DRAW_EVERY);
    // Ctrl-C reaches the workers too (one process group); they stop and write their reports,
    // which are merged as usual.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    while !running.is_empty() {
        tokio::select! {
            Some(done) = running.join_next() => {
                let (i, status) = done.map_err(|e| anyhow::anyhow!("worker task: {e}"))?;
                exits[i] = Some(status?.code());
            }
            Some((i, status)) = status_rx.recv() => statuses[i] = status,
            _ = draw.tick() => progress.show(&Status::sum(&statuses), started.elapsed()),
            _ = &mut ctrl_c, if !interrupted => interrupted = true,
        }
    }
    progress.finish();
    for (i, code) in exits.iter().enumerate() {
        match code.flatten() {
            Some(0 | 1) => {}
            Some(2) => {
                return Err(CommandError::usage(format!(
                    "worker {} of {} refused its part of the run (its error is above)",
                    i + 1,
                    shards.len()
                ))
                .into());
            }
            other => {
                return Err(CommandError::new(
                    ExitCode::Failure,
                    format!(
                        "worker {} of {} ended with {} before writing its report (its error is above)",
                        i + 1,
                        shards.len(),
                        other.map_or("a signal".to_owned(), |c| format!("exit code {c}"))
                    ),
                )
                .into());
            }
        }
    }
    let reports = paths
        .iter()
        .map(|p| Report::load(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CommandError::new(ExitCode::Failure, format!("a worker's report: {e}")))?;
    report::merge(&reports)
        .map_err(|e| CommandError::new(ExitCode::Failure, format!("merging: {e}")).into())
}

/// A folder for the workers' reports, removed with what is in it when the run is over.
struct ReportDir(PathBuf);

impl ReportDir {
    fn create() -> anyhow::Result<ReportDir> {
        let dir = std::env::temp_dir().join(format!(
            "scmarket-ws-workers-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            CommandError::new(
                ExitCode::Failure,
                format!("creating {} for the workers' reports: {e}", dir.display()),
            )
        })?;
        Ok(ReportDir(dir))
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
