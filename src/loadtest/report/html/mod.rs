//! `report html` and `load-test --html`: one self-contained page per set of reports.
//!
//! The page needs nothing but itself: styles inline, charts as inline SVG, no script, no font,
//! no image or link to fetch, so it opens from a CI artifact or an e-mail with no network.
//! It shows, for each report, the verdict (thresholds and panics), the key figures and the
//! thresholds; then charts over time (open sessions, arrivals, connect / ack / delivery
//! latency percentiles, delivery completeness, messages, errors) with phase starts and server
//! restarts marked; then the whole-run latency distribution. Several reports (a merge, or the
//! two sides of a `report compare`) are drawn on the same axes, each from its own start.
//!
//! `data` picks what each chart draws from the reports; `charts` draws it with plotters.

mod charts;
mod data;

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;

use super::Report;
use crate::loadtest::metrics::Latency;
use crate::loadtest::thresholds::Threshold;
use charts::{Drawn, LegendEntry};
use data::{Run, markers, time_charts};

/// Escape text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; --pass: #1a7f37; --fail: #cf222e; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #f6f8fa; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 0 24px; align-items: start; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card h3 { margin: 0 0 2px; font-size: 16px; display: flex; align-items: center; gap: 10px; }
.verdict { font-size: 13px; font-weight: 700; color: #fff; border-radius: 12px; padding: 1px 10px; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
table { border-collapse: collapse; width: 100%; margin-top: 8px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eaeef2; }
td.num { text-align: right; }
td.ok { color: var(--pass); font-weight: 600; } td.bad { color: var(--fail); font-weight: 700; }
.note, .warning { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
.warning { color: #9a6700; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figure.chart figcaption { font-weight: 600; }
figure.chart svg { width: 100%; height: auto; display: block; }
ul.legend { list-style: none; padding: 0; margin: 4px 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); }
ul.legend li::before { content: ""; display: inline-block; width: 18px; margin-right: 5px; vertical-align: middle; border-top: var(--w) solid var(--c); }
.marks { font-size: 12px; color: var(--muted); }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
"#;

/// The page for `reports`, each with the label it is shown under.
pub fn render_html(reports: &[(String, &Report)], title: Option<&str>) -> Result<String, String> {
    let runs: Vec<Run> = reports
        .iter()
        .map(|(label, report)| Run::new(label.clone(), report))
        .collect();
    let title = title.map_or_else(
        || {
            let mut names: Vec<&str> = reports.iter().map(|(_, r)| r.scenario.as_str()).collect();
            names.dedup();
            format!("Load test: {}", names.join(", "))
        },
        str::to_owned,
    );
    let mut page = String::new();
    // Writing into a String cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"sub\">{} report(s); charts count seconds from the start of each run.</p>\n",
        esc(&title),
        esc(&title),
        runs.len()
    );
    page.push_str("<section class=\"cards\" id=\"summary\">\n");
    for run in &runs {
        summary_card(&mut page, run);
    }
    page.push_str("</section>\n");

    let with_series = runs.iter().any(|r| r.series.is_some());
    page.push_str("<h2>Over time</h2>\n");
    if with_series {
        page.push_str(
            "<p class=\"note\">Events count in the interval they happened in; latencies in the \
             interval their operation began in; deliveries in the interval their message was \
             sent in. Grey vertical lines: phase starts; dark ones: the server stopped and came \
             back.</p>\n<section class=\"charts\" id=\"over-time\">\n",
        );
        for chart in time_charts() {
            let drawn = charts::time_chart(&chart, &runs)?;
            figure(&mut page, chart.id, chart.title, &drawn);
        }
        page.push_str("</section>\n");
    } else {
        page.push_str("<p class=\"note\">No report here has a time series.</p>\n");
    }
    page.push_str("<h2>Whole run</h2>\n<section class=\"charts\" id=\"whole-run\">\n");
    let drawn = charts::distribution_chart(&runs)?;
    figure(
        &mut page,
        "latency_distribution",
        "Latency distribution (connect, ack, delivery)",
        &drawn,
    );
    page.push_str("</section>\n");
    let _ = write!(
        page,
        "<footer>Written by scmarket-ws {}. Report schema: docs/REPORT_SCHEMA.md.</footer>\n\
         </body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION"))
    );
    Ok(page)
}

fn figure(page: &mut String, id: &str, title: &str, drawn: &Drawn) {
    let _ = write!(
        page,
        "<figure class=\"chart\" id=\"chart-{id}\" data-chart=\"{id}\">\n<figcaption>{}</figcaption>\n<ul class=\"legend\">\n",
        esc(title)
    );
    for LegendEntry {
        run,
        line,
        color,
        width,
        ..
    } in &drawn.legend
    {
        let _ = writeln!(
            page,
            "<li data-run=\"{}\" data-line=\"{}\" data-color=\"{color}\" data-width=\"{width}\" \
             style=\"--c:{color};--w:{width}px\">{}</li>",
            esc(run),
            esc(line),
            if drawn.legend.iter().any(|e| e.run != *run) {
                esc(&format!("{run}: {line}"))
            } else {
                esc(line)
            }
        );
    }
    page.push_str("</ul>\n");
    page.push_str(&drawn.svg);
    page.push_str("</figure>\n");
}

fn summary_card(page: &mut String, run: &Run) {
    let r = run.report;
    let when = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    let (class, verdict) = if r.passed() {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let _ = write!(
        page,
        "<article class=\"card\" data-run=\"{label}\">\n<h3><span class=\"verdict {class}\">{verdict}</span>{label}</h3>\n\
         <p class=\"sub\">scenario {scenario}, {from} to {to} ({duration:.1} s), {gens} generator(s)</p>\n",
        label = esc(&run.label),
        scenario = esc(&r.scenario),
        from = esc(&when(r.started_at)),
        to = esc(&when(r.finished_at)),
        duration = r.duration_s,
        gens = r.generator.count,
    );
    let ms = |l: Latency| {
        let s = r.latency_ms.get(l);
        if s.count == 0 {
            "-".to_owned()
        } else {
            format!("{:.3} / {:.3} / {:.3}", s.p50, s.p95, s.p99)
        }
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "sessions started / connected / failed",
            format!(
                "{} / {} / {}",
                r.sessions.started, r.sessions.connected, r.sessions.failed
            ),
        ),
        ("peak open sessions", r.sessions.peak_open.to_string()),
        (
            "messages sent / received",
            format!(
                "{} / {}",
                r.counters.messages_sent, r.counters.messages_received
            ),
        ),
        (
            "delivery completeness",
            r.delivery.completeness.map_or("-".into(), |c| {
                format!(
                    "{:.3}% ({} of {})",
                    c * 100.0,
                    r.delivery.received,
                    r.delivery.expected
                )
            }),
        ),
        ("errors", r.counters.errors_total.to_string()),
        ("connect p50 / p95 / p99 (ms)", ms(Latency::Connect)),
        ("ack p50 / p95 / p99 (ms)", ms(Latency::Ack)),
        ("delivery p50 / p95 / p99 (ms)", ms(Latency::Delivery)),
    ];
    page.push_str("<div class=\"tables\">\n<table class=\"figures\">\n");
    for (name, value) in rows {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
            esc(name),
            esc(&value)
        );
    }
    page.push_str("</table>\n");
    if !r.thresholds.is_empty() {
        page.push_str(
            "<table class=\"thresholds\">\n<tr><th>threshold</th><th>value</th><th>result</th></tr>\n",
        );
        for t in &r.thresholds {
            let value = match (t.value, Threshold::parse(&t.expr)) {
                (None, _) => "no data".to_owned(),
                (Some(v), Ok(parsed)) => parsed.format_value(v),
                (Some(v), Err(_)) => v.to_string(),
            };
            let (class, result) = if t.passed {
                ("ok", "pass")
            } else {
                ("bad", "FAIL")
            };
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"{class}\">{result}</td></tr>",
                esc(&t.expr),
                esc(&value)
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</div>\n");
    for w in &r.generator.warnings {
        let _ = writeln!(page, "<p class=\"warning\">warning: {}</p>", esc(w));
    }
    if let Some(note) = &run.note {
        let _ = writeln!(page, "<p class=\"note\">{}</p>", esc(note));
    }
    let marks = markers(run);
    if !marks.is_empty() {
        page.push_str("<p class=\"marks\">");
        let listed: Vec<String> = marks
            .iter()
            .map(|m| format!("+{:.1} s {}", m.x, esc(&m.label)))
            .collect();
        page.push_str(&listed.join(" · "));
        page.push_str("</p>\n");
    }
    page.push_str("</article>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
