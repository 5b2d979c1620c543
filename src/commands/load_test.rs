//! `load-test`: validate a scenario, print its plan or run it, write the report; exit 1 when a
//! threshold fails.

use anyhow::Context as _;

use crate::cli::LoadTestArgs;
use crate::exit::{CommandError, ExitCode};

use crate::loadtest::report;
use crate::loadtest::runner;
use crate::loadtest::scenario::{self, LoadError, Overrides};

/// `load-test`: validate the scenario; with `--check`, print the plan; otherwise run it, print
/// the report, write it with `--output`, and exit 1 when a threshold fails.
pub async fn run(args: LoadTestArgs, show_progress: bool) -> anyhow::Result<ExitCode> {
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
