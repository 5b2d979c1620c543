//! The human view of reports: the tables `load-test`, `report show` and `report compare` print.

use std::collections::BTreeMap;

use comfy_table::{CellAlignment, Table, presets};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::loadtest::metrics::Latency;
use crate::loadtest::thresholds::Threshold;

use super::{CompareRow, Report, TimeSeries};

/// Widest a sparkline gets, in characters; longer runs show each character as the maximum of
/// a group of intervals.
const SPARK_WIDTH: usize = 60;
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per value (or per group of values, past [`SPARK_WIDTH`]), scaled from 0 to the
/// largest; a gap (`None`) is a space.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let group = values.len().div_ceil(SPARK_WIDTH).max(1);
    let cells: Vec<Option<f64>> = values
        .chunks(group)
        .map(|chunk| chunk.iter().flatten().copied().reduce(f64::max))
        .collect();
    let top = cells.iter().flatten().copied().fold(0.0f64, f64::max);
    cells
        .iter()
        .map(|cell| match cell {
            None => ' ',
            Some(_) if top <= 0.0 => SPARKS[0],
            Some(v) => {
                let level = (v / top * (SPARKS.len() - 1) as f64).round() as usize;
                SPARKS[level.min(SPARKS.len() - 1)]
            }
        })
        .collect()
}

/// The two sparkline lines of a report's time series: open sessions and delivery p99.
fn sparklines(series: &TimeSeries) -> String {
    let open: Vec<Option<f64>> = series
        .intervals
        .iter()
        .map(|i| Some(i.open as f64))
        .collect();
    let p99: Vec<Option<f64>> = series
        .intervals
        .iter()
        .map(|i| (i.latency_ms.delivery.count > 0).then_some(i.latency_ms.delivery.p99))
        .collect();
    let peak = series
        .intervals
        .iter()
        .map(|i| i.peak_open)
        .max()
        .unwrap_or(0);
    let worst = p99.iter().flatten().copied().fold(f64::NAN, f64::max);
    let mut out = format!(
        "over time ({} intervals of {}):\n  open sessions  {}  peak {peak}\n",
        series.intervals.len(),
        humantime::format_duration(std::time::Duration::from_millis(series.interval_ms)),
        sparkline(&open)
    );
    if worst.is_nan() {
        out.push_str("  delivery p99   (no deliveries)\n");
    } else {
        out.push_str(&format!(
            "  delivery p99   {}  max {} ms\n",
            sparkline(&p99),
            fmt_ms(worst)
        ));
    }
    out
}

fn fmt_ms(v: f64) -> String {
    format!("{v:.3}")
}

fn numeric_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(header.iter().copied());
    for i in 1..header.len() {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn nonzero(map: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    parts.join(", ")
}

/// The human view of a report: latencies, counters, thresholds.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let when = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    out.push_str(&format!(
        "scenario {}: {} to {} ({:.1}s, {} generator{})\n\n",
        report.scenario,
        when(report.started_at),
        when(report.finished_at),
        report.duration_s,
        report.generator.count,
        if report.generator.count == 1 { "" } else { "s" }
    ));
    if let Some(series) = &report.timeseries {
        out.push_str(&sparklines(series));
        out.push('\n');
    }

    let mut latency = numeric_table(&[
        "latency (ms)",
        "count",
        "min",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "max",
    ]);
    for l in Latency::ALL {
        let s = report.latency_ms.get(l);
        if s.count == 0 {
            latency.add_row(vec![
                l.name().to_owned(),
                "0".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        } else {
            latency.add_row(vec![
                l.name().to_owned(),
                s.count.to_string(),
                fmt_ms(s.min),
                fmt_ms(s.p50),
                fmt_ms(s.p90),
                fmt_ms(s.p95),
                fmt_ms(s.p99),
                fmt_ms(s.p999),
                fmt_ms(s.max),
            ]);
        }
    }
    out.push_str(&latency.to_string());
    out.push_str("\n\n");

    let mut counters = numeric_table(&["counter", "value", "detail"]);
    let s = &report.sessions;
    let c = &report.counters;
    let d = &report.delivery;
    let rows: Vec<(&str, String, String)> = vec![
        ("sessions started", s.started.to_string(), String::new()),
        ("sessions connected", s.connected.to_string(), String::new()),
        (
            "sessions failed",
            s.failed.to_string(),
            nonzero(&s.failed_by_reason),
        ),
        ("sessions peak open", s.peak_open.to_string(), String::new()),
        ("deliveries expected", d.expected.to_string(), String::new()),
        ("deliveries received", d.received.to_string(), String::new()),
        (
            "delivery completeness",
            d.completeness
                .map_or("-".into(), |v| format!("{:.3}%", v * 100.0)),
            String::new(),
        ),
        ("messages sent", c.messages_sent.to_string(), String::new()),
        (
            "messages received",
            c.messages_received.to_string(),
            String::new(),
        ),
        ("reconnects", c.reconnects.to_string(), String::new()),
        (
            "disconnects",
            c.disconnects_by_reason.values().sum::<u64>().to_string(),
            nonzero(&c.disconnects_by_reason),
        ),
        (
            "errors",
            c.errors_total.to_string(),
            nonzero(&c.errors_by_kind),
        ),
    ];
    for (name, value, detail) in rows {
        counters.add_row(vec![name.to_owned(), value, detail]);
    }
    if let Some(column) = counters.column_mut(2) {
        column.set_cell_alignment(CellAlignment::Left);
    }
    out.push_str(&counters.to_string());
    out.push('\n');

    if !report.thresholds.is_empty() {
        out.push('\n');
        let mut table = numeric_table(&["threshold", "value", "result"]);
        for t in &report.thresholds {
            table.add_row(vec![
                t.expr.clone(),
                match (t.value, Threshold::parse(&t.expr)) {
                    (None, _) => "no data".to_owned(),
                    (Some(v), Ok(parsed)) => parsed.format_value(v),
                    (Some(v), Err(_)) => v.to_string(),
                },
                if t.passed { "pass" } else { "FAIL" }.to_owned(),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }

    let g = &report.generator;
    out.push_str(&format!(
        "\ngenerator: cpu {}, peak memory {}\n",
        g.cpu_seconds
            .map_or("unknown".into(), |c| format!("{c:.2}s")),
        g.peak_rss_bytes
            .map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
    ));
    for w in &g.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// The `report compare` table.
pub fn render_compare(rows: &[CompareRow], max_regression: f64) -> String {
    let mut table = numeric_table(&["metric", "base", "new", "change", "result"]);
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    for r in rows {
        let change = match (r.change, r.base, r.new) {
            (Some(c), _, _) => format!("{:+.1}%", c * 100.0),
            (None, Some(_), None) => "no data".into(),
            (None, Some(b), Some(n)) if b == 0.0 && n > 0.0 => "from 0".into(),
            _ => "-".into(),
        };
        let result = if r.regressed { "REGRESSION" } else { "ok" };
        table.add_row(vec![
            r.metric.clone(),
            show(r.base),
            show(r.new),
            change,
            result.into(),
        ]);
    }
    let regressions = rows.iter().filter(|r| r.regressed).count();
    format!(
        "{table}\n{} regression(s) beyond {:.1}%\n",
        regressions,
        max_regression * 100.0
    )
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn text_view_shows_latencies_counters_and_thresholds() {
        let r = Report::build(
            "x",
            &counters(10, 1, 10, 9),
            &record(&samples(5, 700)),
            run(5, 5),
            &thresholds(),
        );
        let text = render_text(&r);
        for needle in [
            "latency (ms)",
            "p99.9",
            "connect",
            "schedule_lag",
            "sessions failed",
            "timeout 1",
            "90.000%",
            "FAIL",
            "pass",
            "ms",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
    }
}
