//! The `load-test` and `report` commands: glue from arguments to the modules, and exit codes.

use anyhow::Context as _;

use crate::cli::{LoadTestArgs, ReportArgs, ReportCommand};
use crate::exit::{CommandError, ExitCode};

use super::report::{self, Report, ReportError};
use super::runner;
use super::scenario::{self, LoadError, Overrides};

/// `load-test`: validate the scenario; with `--check`, print the plan; otherwise run it, print
/// the report, write it with `--output`, and exit 1 when a threshold fails.
pub async fn load_test(args: LoadTestArgs, show_progress: bool) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        sets: args.set.clone(),
        target: args.target.clone(),
    };
    let scenario = scenario::load(&args.scenario, &overrides).map_err(|e| match e {
        LoadError::Read { .. } => CommandError::usage(e.to_string()),
        LoadError::Invalid(d) => CommandError::usage(format!("invalid scenario\n{d}")),
    })?;
    if args.check {
        print!("{}", scenario.plan());
        return Ok(ExitCode::Ok);
    }
    // Fail on an unwritable report path now, not after a ten-minute run.
    if let Some(path) = &args.output {
        check_writable(path)?;
    }
    let report = runner::run(&scenario, show_progress).await?;
    print!("{}", report::render_text(&report));
    if let Some(path) = &args.output {
        report
            .save(path)
            .with_context(|| format!("writing the report to {}", path.display()))?;
        tracing::info!(report = %path.display(), "report written");
    }
    Ok(if report.all_thresholds_pass() {
        ExitCode::Ok
    } else {
        ExitCode::Failure
    })
}

fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CommandError::usage(format!(
            "--output {}: folder {} does not exist",
            path.display(),
            dir.display()
        ))
        .into());
    }
    Ok(())
}

fn bad_report(e: ReportError) -> anyhow::Error {
    match e {
        ReportError::Write { .. } => anyhow::Error::new(e),
        other => CommandError::usage(other.to_string()).into(),
    }
}

/// `report show | merge | compare`.
pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ReportCommand::Show { file, json } => {
            let r = Report::load(&file).map_err(bad_report)?;
            if json {
                println!("{}", r.to_json());
            } else {
                print!("{}", report::render_text(&r));
            }
            Ok(ExitCode::Ok)
        }
        ReportCommand::Merge { files, output } => {
            let reports = files
                .iter()
                .map(|f| Report::load(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_report)?;
            let merged = report::merge(&reports).map_err(bad_report)?;
            merged
                .save(&output)
                .with_context(|| format!("writing the merged report of {} files", files.len()))?;
            print!("{}", report::render_text(&merged));
            Ok(if merged.all_thresholds_pass() {
                ExitCode::Ok
            } else {
                ExitCode::Failure
            })
        }
        ReportCommand::Compare {
            base,
            new,
            max_regression,
        } => {
            let b = Report::load(&base).map_err(bad_report)?;
            let n = Report::load(&new).map_err(bad_report)?;
            if b.scenario != n.scenario {
                tracing::warn!(
                    "comparing different scenarios: {} (base) and {} (new)",
                    b.scenario,
                    n.scenario
                );
            }
            let rows = report::compare(&b, &n, max_regression);
            print!("{}", report::render_compare(&rows, max_regression));
            Ok(if rows.iter().any(|r| r.regressed) {
                ExitCode::Failure
            } else {
                ExitCode::Ok
            })
        }
    }
}
