//! What each chart draws, taken from the reports: lines of points over time (with gaps where an
//! interval has nothing to show) and the whole-run latency distribution.

use crate::loadtest::metrics::{Latency, SERIES_LATENCIES};

use super::super::{Interval, Report, TimeSeries, merge_series};

/// Most points a line over time gets: a longer run is drawn with its intervals merged in
/// groups (exactly: histograms add), so the page stays light and readable.
pub const MAX_POINTS: usize = 600;

/// One report as the page shows it.
pub struct Run<'a> {
    pub label: String,
    pub report: &'a Report,
    /// The time series to draw (merged into longer intervals past [`MAX_POINTS`]).
    pub series: Option<TimeSeries>,
    /// Why the series is missing or drawn coarser than recorded.
    pub note: Option<String>,
}

impl<'a> Run<'a> {
    pub fn new(label: String, report: &'a Report) -> Run<'a> {
        let (series, note) = match &report.timeseries {
            None => (
                None,
                Some("no time series in this report (schema version 1, or merged from one)".into()),
            ),
            Some(s) if s.intervals.len() > MAX_POINTS => {
                let group = s.intervals.len().div_ceil(MAX_POINTS) as u64;
                match merge_series(&[s], Some(s.interval_ms * group)) {
                    Ok(coarse) => (
                        Some(coarse),
                        Some(format!(
                            "{} intervals of {} ms drawn as intervals of {} ms",
                            s.intervals.len(),
                            s.interval_ms,
                            s.interval_ms * group
                        )),
                    ),
                    Err(e) => (None, Some(format!("time series not drawn: {e}"))),
                }
            }
            Some(s) => (Some(s.clone()), None),
        };
        Run {
            label,
            report,
            series,
            note,
        }
    }
}

/// A line's points; `None` is a gap (an interval with nothing to show).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<Option<(f64, f64)>>,
}

/// A vertical line: a phase start or a server restart, seconds from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub kind: String,
    pub label: String,
}

/// Named values of one interval, `None` where it has nothing to show.
type Values = Vec<(String, Option<f64>)>;
/// What a time chart plots for one interval (given the interval's length in seconds).
type Pick = fn(&Interval, f64) -> Values;

/// A chart over time.
pub struct TimeChart {
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pick: Pick,
}

fn per_second(n: u64, seconds: f64) -> Option<f64> {
    Some(n as f64 / seconds)
}

fn latency_lines(interval: &Interval, index: usize) -> Vec<(String, Option<f64>)> {
    let s = interval.latency_ms.as_array()[index];
    let v = |x: f64| (s.count > 0).then_some(x);
    vec![
        ("p50".into(), v(s.p50)),
        ("p95".into(), v(s.p95)),
        ("p99".into(), v(s.p99)),
    ]
}

/// The charts over time, in page order.
pub fn time_charts() -> Vec<TimeChart> {
    vec![
        TimeChart {
            id: "open_sessions",
            title: "Open sessions",
            unit: "sessions",
            pick: |i, _| vec![("open".into(), Some(i.open as f64))],
        },
        TimeChart {
            id: "arrival_rate",
            title: "Sessions started and failed per second",
            unit: "per second",
            pick: |i, s| {
                vec![
                    ("started".into(), per_second(i.sessions_started, s)),
                    ("failed".into(), per_second(i.sessions_failed, s)),
                ]
            },
        },
        TimeChart {
            id: "latency_connect",
            title: "Connect latency",
            unit: "ms",
            pick: |i, _| latency_lines(i, 0),
        },
        TimeChart {
            id: "latency_ack",
            title: "Ack latency",
            unit: "ms",
            pick: |i, _| latency_lines(i, 1),
        },
        TimeChart {
            id: "latency_delivery",
            title: "Delivery latency (by send time)",
            unit: "ms",
            pick: |i, _| latency_lines(i, 2),
        },
        TimeChart {
            id: "delivery_completeness",
            title: "Delivery completeness (by send time)",
            unit: "%",
            pick: |i, _| {
                vec![(
                    "completeness".into(),
                    i.delivery_completeness.map(|c| c * 100.0),
                )]
            },
        },
        TimeChart {
            id: "messages",
            title: "Messages per second",
            unit: "per second",
            pick: |i, s| {
                vec![
                    ("sent".into(), per_second(i.messages_sent, s)),
                    ("received".into(), per_second(i.messages_received, s)),
                ]
            },
        },
        TimeChart {
            id: "errors",
            title: "Errors per second",
            unit: "per second",
            pick: |i, s| {
                let mut lines = vec![("all errors".into(), per_second(i.errors_total, s))];
                for (kind, n) in &i.errors_by_kind {
                    lines.push((kind.clone(), per_second(*n, s)));
                }
                lines
            },
        },
    ]
}

/// Seconds from the report's start to the middle of each interval.
fn x_of(report: &Report, series: &TimeSeries, interval: &Interval) -> f64 {
    let mid = interval.start + time::Duration::milliseconds(series.interval_ms as i64 / 2);
    (mid - report.started_at).as_seconds_f64()
}

impl TimeChart {
    /// The chart's lines for one run, a point per interval. A line that an interval does not
    /// name (an error kind that had not occurred yet) is zero there: only a value the interval
    /// cannot have (a latency without samples) is a gap.
    pub fn lines(&self, run: &Run) -> Vec<Line> {
        let Some(series) = &run.series else {
            return Vec::new();
        };
        let seconds = series.interval_ms as f64 / 1000.0;
        let picked: Vec<(f64, Values)> = series
            .intervals
            .iter()
            .map(|i| (x_of(run.report, series, i), (self.pick)(i, seconds)))
            .collect();
        let mut names: Vec<&String> = Vec::new();
        for (_, values) in &picked {
            for (name, _) in values {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
            .into_iter()
            .map(|name| Line {
                name: name.clone(),
                points: picked
                    .iter()
                    .map(|(x, values)| match values.iter().find(|(n, _)| n == name) {
                        Some((_, value)) => value.map(|y| (*x, y)),
                        None => Some((*x, 0.0)),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The marks of a run, in seconds from its start.
pub fn markers(run: &Run) -> Vec<Marker> {
    let Some(series) = &run.series else {
        return Vec::new();
    };
    series
        .marks
        .iter()
        .map(|m| Marker {
            x: (m.at - run.report.started_at).as_seconds_f64(),
            kind: m.kind.clone(),
            label: m.label.clone(),
        })
        .collect()
}

/// Quantiles of the distribution chart: 0% to 99.999% on the "nines" scale.
const DISTRIBUTION_STEPS: u32 = 50;

/// x of quantile `q` on the nines scale: 0 at 0%, 1 at 90%, 2 at 99%, 3 at 99.9%...
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-9).log10()
}

/// The whole-run latency distribution of connect, ack and delivery: one line each (empty when
/// the latency was not measured), latency in ms against quantile on the nines scale.
pub fn distribution(run: &Run) -> Vec<Line> {
    let Ok(hists) = run.report.histogram_set() else {
        return Vec::new();
    };
    SERIES_LATENCIES
        .iter()
        .map(|latency: &Latency| {
            let h = hists.get(*latency);
            let mut points = Vec::new();
            if !h.is_empty() {
                // Beyond 1 - 1/count a quantile repeats the maximum.
                let top = nines(1.0 - 1.0 / h.len() as f64).max(0.0);
                for k in 0..=DISTRIBUTION_STEPS {
                    let x = 5.0 * f64::from(k) / f64::from(DISTRIBUTION_STEPS);
                    if x > top && k > 0 {
                        break;
                    }
                    let q = 1.0 - 10f64.powf(-x);
                    points.push(Some((x, h.value_at_quantile(q) as f64 / 1000.0)));
                }
                points.push(Some((top, h.max() as f64 / 1000.0)));
            }
            Line {
                name: latency.name().to_owned(),
                points,
            }
        })
        .collect()
}
