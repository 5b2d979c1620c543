//! The load-test report: a stable JSON document (docs/REPORT_SCHEMA.md), its human view, and
//! the merge and compare operations behind `report merge` and `report compare`.
//!
//! Each latency histogram travels inside the report (HdrHistogram V2 + DEFLATE, base64), so
//! merging reports from several generators adds histograms, never averages percentiles: the
//! merged p99 is the p99 of all samples.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use comfy_table::{CellAlignment, Table, presets};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::metrics::{CounterValues, HistogramSet, Latency};
use super::thresholds::{Threshold, ThresholdError};

/// Raised by any change a reader of an older report could misread; additions keep the version.
pub const SCHEMA_VERSION: u32 = 1;

/// How `histograms` are encoded, stated in every report so other tools can decode them.
pub const HISTOGRAM_ENCODING: &str = "hdrhistogram-v2-deflate-base64";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema_version: u32,
    pub scenario: String,
    #[serde(with = "rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub finished_at: OffsetDateTime,
    pub duration_s: f64,
    pub sessions: Sessions,
    pub latency_ms: PerLatency<Summary>,
    pub delivery: Delivery,
    pub counters: Counters,
    pub thresholds: Vec<ThresholdResult>,
    pub generator: Generator,
    pub histograms: Histograms,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    pub started: u64,
    pub connected: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Merged reports: the sum of each generator's peak (an upper bound of the true peak).
    pub peak_open: u64,
    pub open_at_end: u64,
}

/// One value per latency, in the fixed order of the schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerLatency<T> {
    pub connect: T,
    pub engine_open: T,
    pub ack: T,
    pub wait_for: T,
    pub delivery: T,
    pub http: T,
    pub schedule_lag: T,
}

impl<T> PerLatency<T> {
    pub fn get(&self, latency: Latency) -> &T {
        match latency {
            Latency::Connect => &self.connect,
            Latency::EngineOpen => &self.engine_open,
            Latency::Ack => &self.ack,
            Latency::WaitFor => &self.wait_for,
            Latency::Delivery => &self.delivery,
            Latency::Http => &self.http,
            Latency::ScheduleLag => &self.schedule_lag,
        }
    }

    fn from_fn(mut f: impl FnMut(Latency) -> T) -> PerLatency<T> {
        PerLatency {
            connect: f(Latency::Connect),
            engine_open: f(Latency::EngineOpen),
            ack: f(Latency::Ack),
            wait_for: f(Latency::WaitFor),
            delivery: f(Latency::Delivery),
            http: f(Latency::Http),
            schedule_lag: f(Latency::ScheduleLag),
        }
    }
}

/// A latency distribution in milliseconds (microsecond resolution). All zero when count is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            min: ms(h.min()),
            // The mean is the only derived value that is not a recorded bucket; round it to µs.
            mean: (h.mean()).round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// For each message sent, the sessions joined to its room at send time, summed.
    pub expected: u64,
    /// Arrivals of this run's messages (matched by nonce) at sessions.
    pub received: u64,
    /// received / expected as a ratio (0.999 = 99.9%); null when nothing was expected.
    pub completeness: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    pub messages_sent: u64,
    pub messages_received: u64,
    pub reconnects: u64,
    pub disconnects_by_reason: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdResult {
    pub expr: String,
    /// Milliseconds for latencies, a ratio for completeness, a count otherwise; null without data.
    pub value: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// How many generator runs this report combines (1 for a single run).
    pub count: u32,
    pub version: String,
    /// Summed over generators.
    pub cpu_seconds: Option<f64>,
    /// The largest single generator's peak resident memory.
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            count: 1,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            cpu_seconds: None,
            peak_rss_bytes: None,
            warnings: Vec::new(),
        }
    }
}

// No deny_unknown_fields here: serde does not support it together with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    pub encoding: String,
    /// The unit of recorded values.
    pub unit: String,
    #[serde(flatten)]
    pub data: PerLatency<String>,
}

/// Share of its CPUs above which the generator may be what is being measured.
const CPU_WARNING_SHARE: f64 = 0.8;
/// Open-model schedule lag (p99) above which arrivals were not started on time.
const LAG_WARNING_MS: f64 = 50.0;

impl Generator {
    /// This process's cost so far, with warnings when it, not the server, may be the bottleneck.
    pub fn measure(wall: std::time::Duration, hists: &HistogramSet) -> Generator {
        let usage = super::metrics::process_usage();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lag = hists.get(Latency::ScheduleLag);
        let lag_p99 = (!lag.is_empty()).then(|| lag.value_at_quantile(0.99) as f64 / 1000.0);
        Generator {
            cpu_seconds: usage.map(|(cpu, _)| rounded(cpu)),
            peak_rss_bytes: usage.map(|(_, rss)| rss),
            warnings: bottleneck_warnings(
                usage.map(|(cpu, _)| cpu),
                wall.as_secs_f64(),
                cores,
                lag_p99,
            ),
            ..Generator::default()
        }
    }
}

/// Why the results may describe the generator rather than the server.
pub fn bottleneck_warnings(
    cpu_seconds: Option<f64>,
    wall_seconds: f64,
    cores: usize,
    schedule_lag_p99_ms: Option<f64>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(cpu) = cpu_seconds
        && wall_seconds > 0.0
    {
        let share = cpu / (wall_seconds * cores as f64);
        if share > CPU_WARNING_SHARE {
            warnings.push(format!(
                "the generator used {:.0}% of its {cores} CPU(s): latencies may include its own queueing; run fewer sessions per generator or merge several",
                share * 100.0
            ));
        }
    }
    if let Some(lag) = schedule_lag_p99_ms
        && lag > LAG_WARNING_MS
    {
        warnings.push(format!(
            "schedule lag p99 is {lag:.1}ms: sessions started late, the generator could not keep the arrival rate"
        ));
    }
    warnings
}

/// When a run happened and what it cost the generator.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub generator: Generator,
}

impl Default for RunInfo {
    fn default() -> Self {
        RunInfo {
            started_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            generator: Generator::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a load-test report: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "{path}: schema_version {found} is not supported by this build (it reads {SCHEMA_VERSION})"
    )]
    Version { path: String, found: String },
    #[error("cannot merge reports of different scenarios: {0}")]
    Scenarios(String),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// RFC 3339 timestamps without turning on `time`'s serde feature for the whole crate.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format(&Rfc3339).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| D::Error::custom(format!("`{text}` is not an RFC 3339 time: {e}")))
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing an in-memory histogram into a Vec cannot fail for valid histograms.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    B64.encode(bytes)
}

fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

fn rounded(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Report {
    /// Build a report from a run's counters and histograms, evaluating `thresholds`.
    pub fn build(
        scenario: &str,
        counters: &CounterValues,
        hists: &HistogramSet,
        run: RunInfo,
        thresholds: &[Threshold],
    ) -> Report {
        let duration = run.finished_at - run.started_at;
        let expected = counters.delivery_expected;
        let received = counters.delivery_received;
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            scenario: scenario.to_owned(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_s: rounded(duration.as_seconds_f64().max(0.0)),
            sessions: Sessions {
                started: counters.started,
                connected: counters.connected,
                failed: counters.failed(),
                failed_by_reason: counters.failed_by_reason.clone(),
                peak_open: counters.peak_open,
                open_at_end: counters.open,
            },
            latency_ms: PerLatency::from_fn(|l| Summary::of(hists.get(l))),
            delivery: Delivery {
                expected,
                received,
                completeness: (expected > 0).then(|| rounded(received as f64 / expected as f64)),
            },
            counters: Counters {
                messages_sent: counters.messages_sent,
                messages_received: counters.messages_received,
                reconnects: counters.reconnects,
                disconnects_by_reason: counters.disconnects_by_reason.clone(),
                errors_total: counters.errors_total(),
                errors_by_kind: counters.errors_by_kind.clone(),
            },
            thresholds: Vec::new(),
            generator: run.generator,
            histograms: Histograms {
                encoding: HISTOGRAM_ENCODING.to_owned(),
                unit: "us".to_owned(),
                data: PerLatency::from_fn(|l| encode(hists.get(l))),
            },
        };
        report.evaluate(thresholds);
        report
    }

    /// (Re-)evaluate thresholds against this report's data.
    pub fn evaluate(&mut self, thresholds: &[Threshold]) {
        self.thresholds = thresholds
            .iter()
            .map(|t| {
                let (value, passed) = t.evaluate(self);
                ThresholdResult {
                    expr: t.expr.clone(),
                    value: value.map(rounded),
                    passed,
                }
            })
            .collect();
    }

    pub fn all_thresholds_pass(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// Decode every histogram.
    pub fn histogram_set(&self) -> Result<HistogramSet, String> {
        let mut set = HistogramSet::default();
        for latency in Latency::ALL {
            let h = decode(self.histograms.data.get(latency))
                .map_err(|e| format!("histograms.{}: {e}", latency.name()))?;
            set.get_mut(latency)
                .add(&h)
                .map_err(|e| format!("histograms.{}: {e:?}", latency.name()))?;
        }
        Ok(set)
    }

    /// The threshold expressions this report was evaluated with, parsed again.
    pub fn parsed_thresholds(&self) -> Result<Vec<Threshold>, ThresholdError> {
        self.thresholds
            .iter()
            .map(|t| Threshold::parse(&t.expr))
            .collect()
    }

    pub fn to_json(&self) -> String {
        // A Report holds only strings, numbers and maps with string keys: always serializable.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse and check a report: the version, the histograms, and that the summaries agree
    /// with the histograms (a hand-edited or truncated file is refused, not half-used).
    pub fn from_json(text: &str, path: &str) -> Result<Report, ReportError> {
        let invalid = |message: String| ReportError::Invalid {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            Some(v) => {
                return Err(ReportError::Version {
                    path: path.to_owned(),
                    found: v.to_string(),
                });
            }
            None => return Err(invalid("no `schema_version` field".into())),
        }
        let report: Report = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        if report.histograms.encoding != HISTOGRAM_ENCODING {
            return Err(invalid(format!(
                "histograms.encoding is `{}`, expected `{HISTOGRAM_ENCODING}`",
                report.histograms.encoding
            )));
        }
        let hists = report.histogram_set().map_err(&invalid)?;
        for latency in Latency::ALL {
            let in_summary = report.latency_ms.get(latency).count;
            let in_histogram = hists.get(latency).len();
            if in_summary != in_histogram {
                return Err(invalid(format!(
                    "latency_ms.{name}.count is {in_summary} but histograms.{name} holds {in_histogram} samples",
                    name = latency.name()
                )));
            }
        }
        report
            .parsed_thresholds()
            .map_err(|e| invalid(format!("thresholds: {e}")))?;
        Ok(report)
    }

    pub fn load(path: &Path) -> Result<Report, ReportError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: name.clone(),
            source,
        })?;
        Report::from_json(&text, &name)
    }

    pub fn save(&self, path: &Path) -> Result<(), ReportError> {
        std::fs::write(path, self.to_json() + "\n").map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The counters of this report, as recorded (for merging).
    fn counter_values(&self) -> CounterValues {
        CounterValues {
            started: self.sessions.started,
            connected: self.sessions.connected,
            failed_by_reason: self.sessions.failed_by_reason.clone(),
            open: self.sessions.open_at_end,
            peak_open: self.sessions.peak_open,
            disconnects_by_reason: self.counters.disconnects_by_reason.clone(),
            reconnects: self.counters.reconnects,
            messages_sent: self.counters.messages_sent,
            messages_received: self.counters.messages_received,
            errors_by_kind: self.counters.errors_by_kind.clone(),
            delivery_expected: self.delivery.expected,
            delivery_received: self.delivery.received,
        }
    }
}

fn add_maps(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// Combine the reports of several generators that ran the same scenario at the same time:
/// histograms added, counters and deliveries summed, peaks summed, the time span from the
/// earliest start to the latest finish, thresholds re-evaluated on the merged data.
pub fn merge(reports: &[Report]) -> Result<Report, ReportError> {
    let Some(first) = reports.first() else {
        return Err(ReportError::Scenarios("no reports given".into()));
    };
    let names: Vec<&str> = reports.iter().map(|r| r.scenario.as_str()).collect();
    if names.iter().any(|n| *n != first.scenario) {
        return Err(ReportError::Scenarios(names.join(", ")));
    }
    let mut counters = CounterValues::default();
    let mut hists = HistogramSet::default();
    let mut thresholds: Vec<Threshold> = Vec::new();
    let mut generator = Generator {
        count: 0,
        ..Generator::default()
    };
    let mut cpu = Some(0.0);
    let (mut started, mut finished) = (first.started_at, first.finished_at);
    for r in reports {
        let c = r.counter_values();
        counters.started += c.started;
        counters.connected += c.connected;
        add_maps(&mut counters.failed_by_reason, &c.failed_by_reason);
        counters.open += c.open;
        counters.peak_open += c.peak_open;
        add_maps(
            &mut counters.disconnects_by_reason,
            &c.disconnects_by_reason,
        );
        counters.reconnects += c.reconnects;
        counters.messages_sent += c.messages_sent;
        counters.messages_received += c.messages_received;
        add_maps(&mut counters.errors_by_kind, &c.errors_by_kind);
        counters.delivery_expected += c.delivery_expected;
        counters.delivery_received += c.delivery_received;
        // Loaded reports were checked by `from_json`; a histogram that fails here was built in
        // memory by this build and cannot be malformed.
        if let Ok(set) = r.histogram_set() {
            hists.add(&set);
        }
        for t in r.parsed_thresholds().unwrap_or_default() {
            if !thresholds.iter().any(|have| have.expr == t.expr) {
                thresholds.push(t);
            }
        }
        started = started.min(r.started_at);
        finished = finished.max(r.finished_at);
        generator.count += r.generator.count;
        cpu = cpu.zip(r.generator.cpu_seconds).map(|(a, b)| a + b);
        generator.peak_rss_bytes = generator.peak_rss_bytes.max(r.generator.peak_rss_bytes);
        generator
            .warnings
            .extend(r.generator.warnings.iter().cloned());
    }
    generator.cpu_seconds = cpu.map(rounded);
    let run = RunInfo {
        started_at: started,
        finished_at: finished,
        generator,
    };
    Ok(Report::build(
        &first.scenario,
        &counters,
        &hists,
        run,
        &thresholds,
    ))
}

/// Which direction is worse for a compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

/// One line of `report compare`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    pub metric: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// Relative change (new - base) / base; None when it cannot be computed.
    pub change: Option<f64>,
    pub regressed: bool,
}

/// Compare NEW against BASE metric by metric; a metric regresses when it is worse by more than
/// `max_regression` (a ratio: 0.1 = 10%) relative to BASE, or when NEW lost data BASE had.
pub fn compare(base: &Report, new: &Report, max_regression: f64) -> Vec<CompareRow> {
    let mut rows = Vec::new();
    let mut push = |metric: String, b: Option<f64>, n: Option<f64>, better: Better| {
        let change = match (b, n) {
            (Some(b), Some(n)) if b != 0.0 => Some((n - b) / b),
            (Some(b), Some(n)) if b == n => Some(0.0),
            _ => None,
        };
        let regressed = match (b, n) {
            (Some(_), None) => true,
            (Some(b), Some(n)) => match better {
                // A zero base (no failures before) regresses on any increase.
                Better::Lower => n > b * (1.0 + max_regression) + 1e-9 || (b == 0.0 && n > 0.0),
                Better::Higher => n < b * (1.0 - max_regression) - 1e-9,
            },
            _ => false,
        };
        rows.push(CompareRow {
            metric,
            base: b,
            new: n,
            change,
            regressed,
        });
    };
    for latency in Latency::ALL {
        let (b, n) = (base.latency_ms.get(latency), new.latency_ms.get(latency));
        if b.count == 0 && n.count == 0 {
            continue;
        }
        let pick = |s: &Summary, v: f64| (s.count > 0).then_some(v);
        for (stat, bv, nv) in [
            ("p50", b.p50, n.p50),
            ("p90", b.p90, n.p90),
            ("p95", b.p95, n.p95),
            ("p99", b.p99, n.p99),
            ("p999", b.p999, n.p999),
        ] {
            push(
                format!("{}.{stat} (ms)", latency.name()),
                pick(b, bv),
                pick(n, nv),
                Better::Lower,
            );
        }
    }
    if base.delivery.completeness.is_some() || new.delivery.completeness.is_some() {
        push(
            "delivery.completeness".into(),
            base.delivery.completeness,
            new.delivery.completeness,
            Better::Higher,
        );
    }
    push(
        "sessions.failed".into(),
        Some(base.sessions.failed as f64),
        Some(new.sessions.failed as f64),
        Better::Lower,
    );
    push(
        "errors.total".into(),
        Some(base.counters.errors_total as f64),
        Some(new.counters.errors_total as f64),
        Better::Lower,
    );
    rows
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
    use super::*;

    fn run(at: i64, secs: i64) -> RunInfo {
        RunInfo {
            started_at: OffsetDateTime::from_unix_timestamp(at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            finished_at: OffsetDateTime::from_unix_timestamp(at + secs)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            generator: Generator {
                cpu_seconds: Some(1.5),
                peak_rss_bytes: Some(50_000_000),
                ..Generator::default()
            },
        }
    }

    /// Deterministic samples: a different spread per latency and per seed.
    fn samples(seed: u64, n: u64) -> Vec<(Latency, u64)> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let l = Latency::ALL[(i % 7) as usize];
                (l, 50 + x % 2_000_000)
            })
            .collect()
    }

    fn record(samples: &[(Latency, u64)]) -> HistogramSet {
        let mut h = HistogramSet::default();
        for (l, v) in samples {
            h.record(*l, *v);
        }
        h
    }

    fn counters(started: u64, failed: u64, expected: u64, received: u64) -> CounterValues {
        let mut c = CounterValues {
            started,
            connected: started - failed,
            peak_open: started - failed,
            messages_sent: 10,
            messages_received: received,
            delivery_expected: expected,
            delivery_received: received,
            ..CounterValues::default()
        };
        c.failed_by_reason.insert("timeout".into(), failed);
        c.errors_by_kind.insert("http".into(), 1);
        c.disconnects_by_reason
            .insert("client".into(), started - failed);
        c
    }

    fn thresholds() -> Vec<Threshold> {
        [
            "connect.p99 < 1s",
            "delivery.completeness >= 99%",
            "sessions.failed == 0",
            "connect.count > 0",
        ]
        .iter()
        .map(|t| Threshold::parse(t).expect("parses"))
        .collect()
    }

    fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    #[test]
    fn merging_two_reports_equals_one_run_over_both() {
        let (sa, sb) = (samples(1, 5000), samples(2, 3000));
        let a = Report::build(
            "fanout",
            &counters(100, 0, 1000, 1000),
            &record(&sa),
            run(1000, 60),
            &thresholds(),
        );
        let b = Report::build(
            "fanout",
            &counters(50, 2, 500, 480),
            &record(&sb),
            run(1010, 60),
            &thresholds(),
        );
        // Through JSON, as `report merge` sees them.
        let a = Report::from_json(&a.to_json(), "a.json").expect("a loads");
        let b = Report::from_json(&b.to_json(), "b.json").expect("b loads");
        let merged = merge(&[a, b]).expect("merges");

        let union: Vec<_> = sa.iter().chain(sb.iter()).copied().collect();
        let mut run_both = run(1000, 70);
        run_both.generator.count = 2;
        run_both.generator.cpu_seconds = Some(3.0);
        let mut c = counters(150, 2, 1500, 1480);
        // Peaks add; disconnects and failures add per reason.
        c.peak_open = 98 + 50;
        c.errors_by_kind.insert("http".into(), 2);
        c.messages_sent = 20;
        let direct = Report::build("fanout", &c, &record(&union), run_both, &thresholds());

        let (mh, dh) = (
            merged.histogram_set().expect("decodes"),
            direct.histogram_set().expect("decodes"),
        );
        for l in Latency::ALL {
            assert_eq!(recorded(mh.get(l)), recorded(dh.get(l)), "{}", l.name());
            assert_eq!(mh.get(l).len(), dh.get(l).len());
        }
        assert_eq!(merged.latency_ms, direct.latency_ms);
        assert_eq!(merged.sessions, direct.sessions);
        assert_eq!(merged.delivery, direct.delivery);
        assert_eq!(merged.counters, direct.counters);
        assert_eq!(merged.thresholds, direct.thresholds);
        assert_eq!(merged.duration_s, 70.0);
        assert_eq!(merged.generator.count, 2);
        assert_eq!(merged.generator.cpu_seconds, Some(3.0));
        // Re-evaluated, not copied: b failed sessions, so the merged run fails that gate.
        assert!(!merged.thresholds[2].passed);
        assert_eq!(merged.delivery.completeness, Some(rounded(1480.0 / 1500.0)));
    }

    #[test]
    fn merge_refuses_different_scenarios() {
        let a = Report::build("a", &counters(1, 0, 0, 0), &record(&[]), run(0, 1), &[]);
        let b = Report::build("b", &counters(1, 0, 0, 0), &record(&[]), run(0, 1), &[]);
        let e = merge(&[a, b]).expect_err("different scenarios");
        assert_eq!(
            e.to_string(),
            "cannot merge reports of different scenarios: a, b"
        );
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let r = Report::build(
            "x",
            &counters(10, 1, 10, 9),
            &record(&samples(3, 700)),
            run(5, 5),
            &thresholds(),
        );
        let back = Report::from_json(&r.to_json(), "r.json").expect("loads");
        assert_eq!(back, r);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let r = Report::build(
            "x",
            &counters(10, 0, 10, 10),
            &record(&samples(4, 70)),
            run(5, 5),
            &[],
        );
        let good = r.to_json();
        let err = |text: &str| {
            Report::from_json(text, "f.json")
                .expect_err("refused")
                .to_string()
        };
        assert!(err("{").starts_with("f.json: not a load-test report: not JSON"));
        assert_eq!(
            err("{}"),
            "f.json: not a load-test report: no `schema_version` field"
        );
        assert!(
            err(&good.replacen("\"schema_version\": 1", "\"schema_version\": 9", 1))
                .contains("schema_version 9 is not supported")
        );
        let edited = good.replacen("\"count\": 10,", "\"count\": 11,", 1);
        assert!(
            err(&edited)
                .contains("latency_ms.connect.count is 11 but histograms.connect holds 10 samples"),
            "{}",
            err(&edited)
        );
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["histograms"]["ack"] = "!!!".into();
        assert!(err(&v.to_string()).contains("histograms.ack: not base64"));
        v["histograms"]["ack"] = B64.encode(b"not a histogram").into();
        assert!(err(&v.to_string()).contains("histograms.ack: not an HdrHistogram"));
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["sessions"]["extra"] = 1.into();
        assert!(err(&v.to_string()).contains("unknown field `extra`"));
        let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
        v["thresholds"] = serde_json::json!([{"expr": "nope < 1", "value": null, "passed": false}]);
        assert!(err(&v.to_string()).contains("thresholds: unknown metric `nope`"));
    }

    #[test]
    fn compare_flags_regressions_beyond_the_limit() {
        let base_samples: Vec<_> = (0..1000).map(|i| (Latency::Connect, 10_000 + i)).collect();
        let slower: Vec<_> = (0..1000).map(|i| (Latency::Connect, 11_500 + i)).collect();
        let a_bit: Vec<_> = (0..1000).map(|i| (Latency::Connect, 10_500 + i)).collect();
        let base = Report::build(
            "x",
            &counters(10, 0, 100, 100),
            &record(&base_samples),
            run(0, 1),
            &[],
        );
        let worse = Report::build(
            "x",
            &counters(10, 0, 100, 100),
            &record(&slower),
            run(0, 1),
            &[],
        );
        let close = Report::build(
            "x",
            &counters(10, 0, 100, 100),
            &record(&a_bit),
            run(0, 1),
            &[],
        );
        let rows = compare(&base, &worse, 0.10);
        let p50 = rows
            .iter()
            .find(|r| r.metric == "connect.p50 (ms)")
            .expect("row");
        assert!(p50.regressed, "{p50:?}");
        assert!(compare(&base, &close, 0.10).iter().all(|r| !r.regressed));
        // Higher completeness is better; lower regresses.
        let lossy = Report::build(
            "x",
            &counters(10, 0, 100, 80),
            &record(&base_samples),
            run(0, 1),
            &[],
        );
        let rows = compare(&base, &lossy, 0.10);
        assert!(
            rows.iter()
                .any(|r| r.metric == "delivery.completeness" && r.regressed)
        );
        // From zero failures to one is a regression at any limit.
        let failing = Report::build(
            "x",
            &counters(10, 1, 100, 100),
            &record(&base_samples),
            run(0, 1),
            &[],
        );
        assert!(
            compare(&base, &failing, 10.0)
                .iter()
                .any(|r| r.metric == "sessions.failed" && r.regressed)
        );
        // A metric that lost all samples regresses.
        let empty = Report::build(
            "x",
            &counters(10, 0, 100, 100),
            &record(&[]),
            run(0, 1),
            &[],
        );
        assert!(
            compare(&base, &empty, 0.10)
                .iter()
                .any(|r| r.metric == "connect.p99 (ms)" && r.regressed)
        );
        let text = render_compare(&compare(&base, &worse, 0.10), 0.10);
        assert!(
            text.contains("REGRESSION") && text.contains("regression(s) beyond 10.0%"),
            "{text}"
        );
    }

    #[test]
    fn the_generator_warns_when_it_is_the_bottleneck() {
        assert!(bottleneck_warnings(Some(1.0), 10.0, 2, Some(1.0)).is_empty());
        let w = bottleneck_warnings(Some(18.0), 10.0, 2, None);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("the generator used 90% of its 2 CPU(s)"),
            "{w:?}"
        );
        let w = bottleneck_warnings(None, 10.0, 2, Some(120.0));
        assert!(w[0].starts_with("schedule lag p99 is 120.0ms"), "{w:?}");
        let g = Generator::measure(std::time::Duration::from_secs(1), &HistogramSet::default());
        if cfg!(target_os = "linux") {
            assert!(g.cpu_seconds.is_some() && g.peak_rss_bytes.is_some());
        }
    }

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
