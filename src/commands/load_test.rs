//! `load-test`: validate a scenario, print its plan or run it, write the report (JSON, HTML);
//! exit 1 when a threshold fails or a virtual user panicked.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::LoadTestArgs;
use crate::exit::{CommandError, ExitCode};

use crate::loadtest::local_ips;
use crate::loadtest::metrics::series::{MAX_INTERVALS, interval_for, intervals_spanned};
use crate::loadtest::report::{self, Report};
use crate::loadtest::runner::{self, RunOptions};
use crate::loadtest::scenario::{self, LoadError, Overrides, Scenario};
use crate::loadtest::shard::Shard;
use crate::loadtest::workers::{self, WorkerPlan};

/// `load-test`: validate the scenario; with `--check`, print the plan; otherwise run it, print
/// the report, write it with `--output` and `--html`, and exit 1 when the run did not pass.
pub async fn run(args: LoadTestArgs, show_progress: bool) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        sets: args.set.clone(),
        targets: args.target.clone(),
        generators: args.shard.map_or(1, |s| s.count()) * args.workers,
    };
    let scenario = scenario::load(&args.scenario, &overrides).map_err(|e| match e {
        LoadError::Read { .. } => CommandError::usage(e.to_string()),
        LoadError::Invalid(d) => CommandError::usage(format!("invalid scenario\n{d}")),
    })?;
    check_interval(&scenario, &args)?;
    let local_ips = local_ips::parse(&args.local_ips).map_err(CommandError::usage)?;
    if args.check {
        print!("{}", scenario.plan());
        return Ok(ExitCode::Ok);
    }
    // Fail on an unwritable report path now, not after a ten-minute run.
    for (flag, path) in [("--output", &args.output), ("--html", &args.html)] {
        if let Some(path) = path {
            check_writable(flag, path)?;
        }
    }
    local_ips::check_local(&local_ips).map_err(CommandError::usage)?;
    let shard = args.shard.unwrap_or_default();
    let report = if args.workers > 1 {
        workers::run(&scenario, &worker_plan(&args, shard, show_progress)?).await?
    } else {
        let options = RunOptions {
            show_progress,
            interval: args.interval,
            shard,
            worker: args.worker,
            local_ips: local_ips.into(),
        };
        runner::run(&scenario, &options).await?
    };
    if !args.worker {
        print!("{}", report::render_text(&report));
    }
    if let Some(path) = &args.output {
        report
            .save(path)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        tracing::info!(report = %path.display(), "report written");
    }
    if let Some(path) = &args.html {
        write_html(&report, path)?;
        tracing::info!(page = %path.display(), "HTML report written");
    }
    if report.panics() > 0 {
        tracing::error!(
            panics = report.panics(),
            "virtual users panicked: the run fails whatever its thresholds say"
        );
    }
    Ok(if report.passed() {
        ExitCode::Ok
    } else {
        ExitCode::Failure
    })
}

/// What every worker is started with: this run's arguments, less those the parent handles.
fn worker_plan(
    args: &LoadTestArgs,
    shard: Shard,
    show_progress: bool,
) -> anyhow::Result<WorkerPlan> {
    let exe = std::env::current_exe().map_err(|e| {
        CommandError::new(
            ExitCode::Failure,
            format!("cannot find this binary to start workers: {e}"),
        )
    })?;
    let mut passed: Vec<OsString> = vec![args.scenario.clone().into_os_string()];
    for set in &args.set {
        passed.extend(["--set".into(), set.into()]);
    }
    passed.extend([
        "--interval".into(),
        format!("{}ms", args.interval.as_millis()).into(),
    ]);
    if let Some(threads) = args.threads {
        passed.extend(["--threads".into(), threads.to_string().into()]);
    }
    for ips in &args.local_ips {
        passed.extend(["--local-ips".into(), ips.into()]);
    }
    Ok(WorkerPlan {
        exe,
        workers: args.workers,
        shard,
        args: passed,
        targets: args.target.clone(),
        show_progress,
    })
}

/// The time series must fit the report: a run planned for longer than [`MAX_INTERVALS`]
/// intervals (the phases plus the grace period) needs a longer `--interval`.
fn check_interval(scenario: &Scenario, args: &LoadTestArgs) -> anyhow::Result<()> {
    let longest = scenario.duration() + scenario.grace_period;
    let intervals = intervals_spanned(longest, args.interval);
    if intervals > MAX_INTERVALS {
        return Err(CommandError::usage(format!(
            "--interval {}: this run may last {} (its phases and the {} grace period), which is \
             {intervals} intervals; a report holds at most {MAX_INTERVALS}: use --interval {} or more",
            humantime::format_duration(args.interval),
            humantime::format_duration(longest),
            humantime::format_duration(scenario.grace_period),
            humantime::format_duration(interval_for(longest)),
        ))
        .into());
    }
    Ok(())
}

/// The page of one report, under its scenario's name.
fn write_html(report: &Report, path: &Path) -> anyhow::Result<()> {
    let page = report::render_html(&[(report.scenario.clone(), report)], None)
        .map_err(|e| anyhow::anyhow!("rendering the HTML report: {e}"))?;
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}

fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CommandError::usage(format!(
            "{flag} {}: folder {} does not exist",
            path.display(),
            dir.display()
        ))
        .into());
    }
    Ok(())
}
