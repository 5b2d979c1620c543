//! `report show | merge | compare`: saved load-test reports as tables, merged, or compared.

use anyhow::Context as _;

use crate::cli::{ReportArgs, ReportCommand};
use crate::exit::{CommandError, ExitCode};
use crate::loadtest::report::{self, Report, ReportError};

fn bad_report(e: ReportError) -> anyhow::Error {
    match e {
        ReportError::Write { .. } => anyhow::Error::new(e),
        other => CommandError::usage(other.to_string()).into(),
    }
}

/// `report show | merge | compare`.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
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
