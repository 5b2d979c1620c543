//! `report show | merge | compare | html`: saved load-test reports as tables, merged, compared,
//! or drawn as one HTML page.

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
            Ok(if merged.passed() {
                ExitCode::Ok
            } else {
                ExitCode::Failure
            })
        }
        ReportCommand::Html {
            files,
            output,
            title,
        } => {
            let reports = files
                .iter()
                .map(|f| Report::load(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_report)?;
            let labelled: Vec<(String, &Report)> = files
                .iter()
                .zip(&reports)
                .map(|(file, r)| (label(file), r))
                .collect();
            let page = report::render_html(&labelled, title.as_deref())
                .map_err(|e| anyhow::anyhow!("rendering the HTML report: {e}"))?;
            std::fs::write(&output, page)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("wrote {}", output.display());
            Ok(ExitCode::Ok)
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

/// How a report is named on the page: its file name without `.json`.
fn label(file: &std::path::Path) -> String {
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    name.strip_suffix(".json")
        .map_or(name.clone(), str::to_owned)
}
