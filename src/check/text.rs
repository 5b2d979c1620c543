//! The report for people: one row per check, the evidence of every failure and warning (of
//! every check with `all_evidence`), then the summary.

use std::fmt::Write as _;

use super::report::{CheckResult, Evidence, Outcome, Report, Status};

/// ANSI colours, or none.
struct Paint(bool);

impl Paint {
    fn on(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn label(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Pass => ("PASS", "32"),
        Status::Fail => ("FAIL", "31"),
        Status::Warning => ("WARN", "33"),
        Status::Skipped => ("SKIP", "2"),
    }
}

pub fn render(report: &Report, colour: bool, all_evidence: bool) -> String {
    let paint = Paint(colour);
    let mut out = String::new();
    let _ = writeln!(out, "check {}", report.target);
    if let Some(error) = &report.error {
        let _ = writeln!(out, "{} {error}", paint.on("31", "error:"));
        let _ = writeln!(out, "{}", outcome_line(report));
        return out;
    }
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    for check in &report.checks {
        let (word, code) = label(check.status);
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            paint.on(code, word),
            check.id,
            check.summary
        );
        let show = all_evidence || matches!(check.status, Status::Fail | Status::Warning);
        if show {
            evidence(&mut out, check, &paint);
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{} checks: {} passed, {} failed, {} warnings, {} skipped ({:.1} s)",
        report.checks.len(),
        s.pass,
        s.fail,
        s.warning,
        s.skipped,
        report.duration_ms / 1000.0
    );
    if !report.settings.post || !report.settings.destructive {
        let mut off = Vec::new();
        if !report.settings.post {
            off.push("--post");
        }
        if !report.settings.destructive {
            off.push("--destructive");
        }
        let _ = writeln!(
            out,
            "{}",
            paint.on(
                "2",
                &format!(
                    "safe mode: checks that need {} were skipped",
                    off.join(" or ")
                )
            )
        );
    }
    let _ = writeln!(out, "{}", outcome_line(report));
    out
}

fn outcome_line(report: &Report) -> String {
    let word = match report.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Refused => "refused",
        Outcome::Unreachable => "unreachable",
        Outcome::TimedOut => "timed out",
    };
    format!("result: {word} (exit {})", report.exit_code)
}

fn evidence(out: &mut String, check: &CheckResult, paint: &Paint) {
    if let Some(defect) = &check.defect
        && check.status == Status::Fail
    {
        let _ = writeln!(out, "        production defect: {defect}");
    }
    for e in &check.evidence {
        step(out, e, paint);
    }
    for (name, value) in &check.measurements {
        let _ = writeln!(out, "        {name} = {value}");
    }
}

fn step(out: &mut String, e: &Evidence, paint: &Paint) {
    let _ = writeln!(out, "        {}", paint.on("1", &e.step));
    if let Some(request) = &e.request {
        let _ = writeln!(out, "          > {request}");
    }
    for (name, value) in &e.request_headers {
        let _ = writeln!(out, "          > {name}: {value}");
    }
    if let Some(status) = e.status {
        let _ = writeln!(out, "          < HTTP {status}");
    }
    for (name, value) in &e.headers {
        let _ = writeln!(out, "          < {name}: {value}");
    }
    if let Some(body) = &e.body
        && !body.is_empty()
    {
        let _ = writeln!(out, "          < {}", body.replace('\n', " "));
    }
    for packet in &e.packets {
        let _ = writeln!(out, "          | {packet}");
    }
    if let Some(note) = &e.note {
        for line in note.lines() {
            let _ = writeln!(out, "          = {line}");
        }
    }
}
