//! A report from a run's counters and histograms, judged against the scenario's thresholds.

use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::client::DisconnectKind;
use crate::loadtest::metrics::{CounterValues, ErrorKind, FailReason, HistogramSet, SeriesValues};
use crate::loadtest::thresholds::{Measurements, Metric, Stat, Threshold};

use super::schema::encode;
use super::{
    Counters, Delivery, Generator, HISTOGRAM_ENCODING, Histograms, PerLatency, Report,
    SCHEMA_VERSION, Sessions, Summary, ThresholdResult, TimeSeries, rounded,
};

/// `map` with every name of `names` present (0 where it was missing), so a report always lists
/// every reason and kind, even merged from reports of an older version that lacked one.
fn every_key<const N: usize>(
    map: &BTreeMap<String, u64>,
    names: [&str; N],
) -> BTreeMap<String, u64> {
    let mut full = map.clone();
    for name in names {
        full.entry(name.to_owned()).or_insert(0);
    }
    full
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
                failed_by_reason: every_key(
                    &counters.failed_by_reason,
                    FailReason::ALL.map(FailReason::name),
                ),
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
                disconnects_by_reason: every_key(
                    &counters.disconnects_by_reason,
                    DisconnectKind::ALL.map(DisconnectKind::name),
                ),
                errors_total: counters.errors_total(),
                errors_by_kind: every_key(
                    &counters.errors_by_kind,
                    ErrorKind::ALL.map(ErrorKind::name),
                ),
            },
            thresholds: Vec::new(),
            generator: run.generator,
            histograms: Histograms {
                encoding: HISTOGRAM_ENCODING.to_owned(),
                unit: "us".to_owned(),
                data: PerLatency::from_fn(|l| encode(hists.get(l))),
            },
            timeseries: None,
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

    /// Attach the run over time.
    pub fn with_series(mut self, values: &SeriesValues) -> Report {
        self.timeseries = Some(TimeSeries::build(values));
        self
    }

    pub fn all_thresholds_pass(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// Virtual users whose task panicked: a bug in this tool, reported as errors of kind
    /// `panic`.
    pub fn panics(&self) -> u64 {
        self.counters
            .errors_by_kind
            .get(ErrorKind::Panic.name())
            .copied()
            .unwrap_or(0)
    }

    /// Whether the run passes: every threshold holds and no virtual user panicked (a run
    /// that lost users to a bug has not measured what it was asked to, whatever its
    /// thresholds say).
    pub fn passed(&self) -> bool {
        self.all_thresholds_pass() && self.panics() == 0
    }
}

/// The values thresholds are checked against are the report's own fields, so a threshold means
/// the same in a single run, in `report show` of a saved file and in a merged report.
impl Measurements for Report {
    fn value(&self, metric: Metric) -> Option<f64> {
        let report = self;
        let s = &report.sessions;
        let count = |n: u64| Some(n as f64);
        match metric {
            Metric::Latency(latency, stat) => {
                let summary = report.latency_ms.get(latency);
                if stat == Stat::Count {
                    return count(summary.count);
                }
                if summary.count == 0 {
                    return None;
                }
                Some(match stat {
                    Stat::Count => summary.count as f64,
                    Stat::Min => summary.min,
                    Stat::Mean => summary.mean,
                    Stat::P50 => summary.p50,
                    Stat::P90 => summary.p90,
                    Stat::P95 => summary.p95,
                    Stat::P99 => summary.p99,
                    Stat::P999 => summary.p999,
                    Stat::Max => summary.max,
                })
            }
            Metric::DeliveryCompleteness => report.delivery.completeness,
            Metric::DeliveryExpected => count(report.delivery.expected),
            Metric::DeliveryReceived => count(report.delivery.received),
            Metric::SessionsStarted => count(s.started),
            Metric::SessionsConnected => count(s.connected),
            Metric::SessionsFailed => count(s.failed),
            Metric::SessionsPeakOpen => count(s.peak_open),
            Metric::MessagesSent => count(report.counters.messages_sent),
            Metric::MessagesReceived => count(report.counters.messages_received),
            Metric::Reconnects => count(report.counters.reconnects),
            Metric::Disconnects => count(report.counters.disconnects_by_reason.values().sum()),
            Metric::ErrorsTotal => count(report.counters.errors_total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::metrics::Latency;

    fn report_with(connect_us: &[u64], expected: u64, received: u64, failed: u64) -> Report {
        let mut h = HistogramSet::default();
        for v in connect_us {
            h.record(Latency::Connect, *v);
        }
        let mut c = CounterValues {
            delivery_expected: expected,
            delivery_received: received,
            ..CounterValues::default()
        };
        c.failed_by_reason.insert("refused".into(), failed);
        Report::build("t", &c, &h, Default::default(), &[])
    }

    #[test]
    fn evaluates_against_a_report() {
        let r = report_with(&[100_000, 200_000, 300_000], 1000, 999, 0);
        let check = |e: &str| Threshold::parse(e).expect("parses").evaluate(&r).1;
        assert!(check("connect.p99 < 500ms"));
        assert!(!check("connect.p99 < 250ms"));
        assert!(check("connect.max <= 300.2ms"));
        assert!(check("connect.count == 3"));
        assert!(check("delivery.completeness >= 99.9%"));
        assert!(!check("delivery.completeness > 99.9%"));
        assert!(check("sessions.failed == 0"));
        assert!(!check("sessions.failed != 0"));
    }

    #[test]
    fn no_data_fails_the_gate() {
        let r = report_with(&[], 0, 0, 0);
        let t = Threshold::parse("delivery.p99 < 250ms").expect("parses");
        assert_eq!(t.evaluate(&r), (None, false));
        let t = Threshold::parse("delivery.completeness >= 99%").expect("parses");
        assert_eq!(t.evaluate(&r), (None, false));
        let t = Threshold::parse("delivery.count == 0").expect("parses");
        assert_eq!(t.evaluate(&r), (Some(0.0), true));
    }
}
