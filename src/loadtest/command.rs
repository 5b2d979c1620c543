//! The `load-test` and `report` commands: glue from arguments to the modules, and exit codes.

use anyhow::Context as _;

use crate::cli::{LoadTestArgs, ReportArgs, ReportCommand};
use crate::exit::{CommandError, ExitCode};

use super::report::{self, Report, ReportError};
use super::scenario::{self, LoadError, Overrides};

/// `load-test`: validate the scenario; with `--check`, print the plan.
pub async fn load_test(args: LoadTestArgs) -> anyhow::Result<ExitCode> {
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
    // Say so plainly rather than pretend: a run needs the Socket.IO client (src/client/),
    // which is not part of this build yet.
    Err(CommandError::new(
        ExitCode::Failure,
        format!(
            "scenario {} is valid, but this build cannot run it: the load-test runner is not built yet \
             (it needs the Socket.IO client). Use `load-test --check {}` to see the plan.",
            scenario.name,
            args.scenario.display()
        ),
    )
    .into())
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
