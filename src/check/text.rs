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
    let waiting_for: Vec<&str> = ["--post", "--destructive"]
        .into_iter()
        .filter(|flag| {
            report
                .checks
                .iter()
                .any(|c| c.status == Status::Skipped && c.needs.iter().any(|n| n == flag))
        })
        .collect();
    if !waiting_for.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.on(
                "2",
                &format!(
                    "safe mode: checks that need {} were skipped",
                    waiting_for.join(" or ")
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::check::report::{Settings, Summary};

    fn check(id: &str, status: Status, needs: &[&str]) -> CheckResult {
        CheckResult {
            id: id.into(),
            family: id.split('.').next().unwrap_or_default().into(),
            title: String::new(),
            defect: (status == Status::Fail).then(|| "no-origin-check".to_string()),
            status,
            summary: format!("{id} summary"),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            evidence: vec![
                Evidence::step("a step")
                    .request("GET /ws/?EIO=4&transport=polling")
                    .status(400)
                    .body("{\"code\":3}"),
            ],
            measurements: BTreeMap::from([("dropped_at_once".to_string(), 3.0)]),
            duration_ms: 1.0,
        }
    }

    #[test]
    fn rows_then_evidence_of_failures_only_then_the_summary() {
        let checks = vec![
            check("a.pass", Status::Pass, &[]),
            check("b.fail", Status::Fail, &[]),
            check("c.skip", Status::Skipped, &["--post"]),
        ];
        let report = Report {
            schema_version: 1,
            tool: "scmarket-ws test".into(),
            target: "ws://h/ws/".into(),
            started_at: "2026-01-02T03:04:05.678Z".into(),
            duration_ms: 1500.0,
            settings: Settings {
                post: false,
                destructive: true,
                user_a: true,
                user_b: false,
                banned_user: false,
                chat: None,
                origin: None,
                foreign_origin: "https://x.invalid".into(),
                join_window_ms: 1000.0,
                wait_ms: 2000.0,
            },
            outcome: Outcome::Failed,
            exit_code: 1,
            error: None,
            summary: Summary::of(&checks),
            checks,
        };
        let text = render(&report, false, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "check ws://h/ws/");
        assert!(
            lines[1].starts_with("PASS  a.pass  a.pass summary"),
            "{text}"
        );
        assert!(lines[2].starts_with("FAIL  b.fail"), "{text}");
        assert!(
            text.contains("production defect: no-origin-check"),
            "{text}"
        );
        assert_eq!(
            text.matches("< HTTP 400").count(),
            1,
            "only the failure's evidence: {text}"
        );
        assert!(text.contains("3 checks: 1 passed, 1 failed, 0 warnings, 1 skipped (1.5 s)"));
        assert!(
            text.contains("safe mode: checks that need --post were skipped"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("result: failed (exit 1)"));
        assert!(!text.contains('\x1b'));
        let all = render(&report, true, true);
        assert_eq!(all.matches("< HTTP 400").count(), 3);
        assert!(all.contains("\x1b[31mFAIL\x1b[0m"));
    }
}
