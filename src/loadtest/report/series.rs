//! The report's time series: built from a run's per-interval values, checked on reading, and
//! combined interval by interval when reports are merged (or coarsened to draw them).
//!
//! Intervals start at multiples of their length since the Unix epoch, so the intervals of
//! generators that ran together line up, and merging adds counters and histograms of the same
//! wall-clock interval: the merged per-interval counts and percentiles are those of one run
//! over all their sessions. Intervals of different lengths merge when each length divides the
//! longest: the shorter ones are grouped into the longer, which is exact for the same reason.
//!
//! Histograms are decoded one interval at a time, so merging or drawing an hour of intervals
//! never holds more than a few dense histograms at once.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use time::OffsetDateTime;

use crate::client::DisconnectKind;
use crate::loadtest::metrics::series::decode_bytes;
use crate::loadtest::metrics::{
    ErrorKind, FailReason, MarkKind, SERIES_LATENCIES, SeriesValues, new_histogram,
};

use super::schema::{decode, encode};
use super::{Interval, MarkEntry, Report, SeriesLatencies, Summary, TimeSeries, rounded};

/// Keeps only the non-zero counts, under their report names.
fn named_nonzero<const N: usize>(
    names: [&'static str; N],
    values: &[u64; N],
) -> BTreeMap<String, u64> {
    names
        .iter()
        .zip(values)
        .filter(|(_, v)| **v > 0)
        .map(|(n, v)| ((*n).to_owned(), *v))
        .collect()
}

fn time_of_unix_us(us: u64) -> OffsetDateTime {
    let nanos = i128::from(us) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn completeness(expected: u64, received: u64) -> Option<f64> {
    (expected > 0).then(|| rounded(received as f64 / expected as f64))
}

impl Interval {
    /// An interval with no events and no samples, starting at `start`.
    fn empty(start: OffsetDateTime) -> Interval {
        Interval {
            start,
            sessions_started: 0,
            sessions_connected: 0,
            sessions_failed: 0,
            failed_by_reason: BTreeMap::new(),
            reconnects: 0,
            disconnects: 0,
            disconnects_by_reason: BTreeMap::new(),
            open: 0,
            peak_open: 0,
            messages_sent: 0,
            messages_received: 0,
            delivery_expected: 0,
            delivery_received: 0,
            delivery_completeness: None,
            errors_total: 0,
            errors_by_kind: BTreeMap::new(),
            latency_ms: SeriesLatencies::default(),
            histograms: SeriesLatencies::default(),
        }
    }

    /// Set the latency summaries and encoded histograms (null where empty).
    fn set_latencies(&mut self, hists: [&Histogram<u64>; 3]) {
        self.latency_ms = SeriesLatencies::from_array(hists.map(Summary::of));
        self.histograms =
            SeriesLatencies::from_array(hists.map(|h| (!h.is_empty()).then(|| encode(h))));
    }

    /// The histogram of the `index`-th latency of [`SERIES_LATENCIES`] (empty where null).
    pub fn histogram(&self, index: usize) -> Result<Histogram<u64>, String> {
        match self.histograms.as_array().get(index) {
            Some(Some(text)) => decode(text),
            _ => Ok(new_histogram()),
        }
    }
}

impl TimeSeries {
    /// The report form of a run's per-interval values.
    pub fn build(values: &SeriesValues) -> TimeSeries {
        let intervals = values
            .intervals
            .iter()
            .map(|v| {
                let mut i = Interval::empty(time_of_unix_us(v.start_unix_us));
                i.sessions_started = v.started;
                i.sessions_connected = v.connected;
                i.sessions_failed = v.failed.iter().sum();
                i.failed_by_reason =
                    named_nonzero(FailReason::ALL.map(FailReason::name), &v.failed);
                i.reconnects = v.reconnects;
                i.disconnects = v.disconnects.iter().sum();
                i.disconnects_by_reason = named_nonzero(
                    DisconnectKind::ALL.map(DisconnectKind::name),
                    &v.disconnects,
                );
                i.open = v.open;
                i.peak_open = v.peak_open;
                i.messages_sent = v.messages_sent;
                i.messages_received = v.messages_received;
                i.delivery_expected = v.delivery_expected;
                i.delivery_received = v.delivery_received;
                i.delivery_completeness = completeness(v.delivery_expected, v.delivery_received);
                i.errors_total = v.errors.iter().sum();
                i.errors_by_kind = named_nonzero(ErrorKind::ALL.map(ErrorKind::name), &v.errors);
                // Decoded one interval at a time: a dense histogram is tens of kilobytes.
                let hists = v.latencies.each_ref().map(|bytes| {
                    bytes
                        .as_deref()
                        .and_then(|b| decode_bytes(b).ok())
                        .unwrap_or_else(new_histogram)
                });
                i.set_latencies(hists.each_ref());
                i
            })
            .collect();
        TimeSeries {
            interval_ms: u64::try_from(values.interval.as_millis()).unwrap_or(u64::MAX),
            intervals,
            marks: values
                .marks
                .iter()
                .map(|m| MarkEntry {
                    at: time_of_unix_us(m.at_unix_us),
                    kind: m.kind.name().to_owned(),
                    label: m.label.clone(),
                })
                .collect(),
        }
    }

    /// Unix milliseconds at which the first interval starts.
    fn first_ms(&self) -> i64 {
        self.intervals.first().map_or(0, |i| unix_ms(i.start))
    }

    /// Every check a reader makes: aligned contiguous intervals, histograms that decode and
    /// agree with their summaries, marks of known kinds, and per-interval counts that add up to
    /// the whole-run counts of `report`.
    pub fn check(&self, report: &Report) -> Result<(), String> {
        if self.interval_ms == 0 {
            return Err("timeseries.interval_ms must be at least 1".into());
        }
        let len =
            i64::try_from(self.interval_ms).map_err(|_| "timeseries.interval_ms is too large")?;
        let first = self.first_ms();
        if first.rem_euclid(len) != 0 {
            return Err(format!(
                "timeseries.intervals[0].start is not a multiple of interval_ms ({len} ms) since the Unix epoch"
            ));
        }
        let mut sums = [0u64; 11];
        let mut samples = [0u64; 3];
        for (n, interval) in self.intervals.iter().enumerate() {
            let at = |what: &str| format!("timeseries.intervals[{n}].{what}");
            let expected_start = first + len * n as i64;
            if unix_ms(interval.start) != expected_start {
                return Err(format!(
                    "{}: intervals must follow one another every {len} ms",
                    at("start")
                ));
            }
            for (index, latency) in SERIES_LATENCIES.iter().enumerate() {
                let h = interval.histogram(index).map_err(|e| {
                    format!("{}: {e}", at(&format!("histograms.{}", latency.name())))
                })?;
                let in_summary = interval.latency_ms.as_array()[index].count;
                if in_summary != h.len() {
                    return Err(format!(
                        "{}.count is {in_summary} but {} holds {} samples",
                        at(&format!("latency_ms.{}", latency.name())),
                        at(&format!("histograms.{}", latency.name())),
                        h.len()
                    ));
                }
                samples[index] += h.len();
            }
            let parts = [
                (
                    "sessions_failed",
                    interval.sessions_failed,
                    &interval.failed_by_reason,
                ),
                (
                    "disconnects",
                    interval.disconnects,
                    &interval.disconnects_by_reason,
                ),
                (
                    "errors_total",
                    interval.errors_total,
                    &interval.errors_by_kind,
                ),
            ];
            for (name, total, by) in parts {
                if by.values().sum::<u64>() != total {
                    return Err(format!("{} is not the sum of its reasons", at(name)));
                }
            }
            let row = [
                interval.sessions_started,
                interval.sessions_connected,
                interval.sessions_failed,
                interval.reconnects,
                interval.disconnects,
                interval.messages_sent,
                interval.messages_received,
                interval.delivery_expected,
                interval.delivery_received,
                interval.errors_total,
                interval
                    .errors_by_kind
                    .get(ErrorKind::Panic.name())
                    .copied()
                    .unwrap_or(0),
            ];
            for (sum, value) in sums.iter_mut().zip(row) {
                *sum += value;
            }
        }
        let whole = [
            ("sessions.started", report.sessions.started),
            ("sessions.connected", report.sessions.connected),
            ("sessions.failed", report.sessions.failed),
            ("counters.reconnects", report.counters.reconnects),
            (
                "counters.disconnects_by_reason",
                report.counters.disconnects_by_reason.values().sum(),
            ),
            ("counters.messages_sent", report.counters.messages_sent),
            (
                "counters.messages_received",
                report.counters.messages_received,
            ),
            ("delivery.expected", report.delivery.expected),
            ("delivery.received", report.delivery.received),
            ("counters.errors_total", report.counters.errors_total),
            (
                "counters.errors_by_kind.panic",
                report
                    .counters
                    .errors_by_kind
                    .get(ErrorKind::Panic.name())
                    .copied()
                    .unwrap_or(0),
            ),
        ];
        for ((name, total), sum) in whole.iter().zip(sums) {
            if *total != sum {
                return Err(format!(
                    "the intervals of timeseries add up to {sum} for {name}, which is {total}"
                ));
            }
        }
        for (index, latency) in SERIES_LATENCIES.iter().enumerate() {
            let total = report.latency_ms.get(*latency).count;
            if samples[index] != total {
                return Err(format!(
                    "the intervals of timeseries hold {} {} samples, latency_ms.{} counts {total}",
                    samples[index],
                    latency.name(),
                    latency.name()
                ));
            }
        }
        for (n, mark) in self.marks.iter().enumerate() {
            if MarkKind::from_name(&mark.kind).is_none() {
                return Err(format!(
                    "timeseries.marks[{n}].kind is `{}`, expected one of phase, server_down, server_up",
                    mark.kind
                ));
            }
        }
        Ok(())
    }
}

/// Combine the series of reports that ran together, interval by interval. The result's
/// intervals are the longest of the inputs' (each must divide it), or `interval_ms` when given
/// (to draw a long run with fewer points; it must be a multiple of every input's).
pub fn merge_series(
    series: &[&TimeSeries],
    interval_ms: Option<u64>,
) -> Result<TimeSeries, String> {
    let longest = series.iter().map(|s| s.interval_ms).max().unwrap_or(1);
    let target = interval_ms.unwrap_or(longest).max(1);
    if let Some(s) = series
        .iter()
        .find(|s| s.interval_ms == 0 || !target.is_multiple_of(s.interval_ms))
    {
        let lengths: Vec<String> = series
            .iter()
            .map(|s| format!("{} ms", s.interval_ms))
            .collect();
        return Err(format!(
            "intervals of {} do not divide {target} ms ({} ms does not)",
            lengths.join(", "),
            s.interval_ms
        ));
    }
    let len = i64::try_from(target).map_err(|_| "interval too long")?;
    let present: Vec<&&TimeSeries> = series.iter().filter(|s| !s.intervals.is_empty()).collect();
    let start = present
        .iter()
        .map(|s| s.first_ms())
        .min()
        .unwrap_or(0)
        .div_euclid(len)
        * len;
    let end = present
        .iter()
        .map(|s| s.first_ms() + s.intervals.len() as i64 * s.interval_ms as i64)
        .max()
        .unwrap_or(start);
    let mut intervals = Vec::new();
    let mut t = start;
    while t < end {
        intervals.push(combine(&present, t, len)?);
        t += len;
    }
    let mut marks: Vec<MarkEntry> = series
        .iter()
        .flat_map(|s| s.marks.iter().cloned())
        .collect();
    marks.sort_by(|a, b| (a.at, &a.kind, &a.label).cmp(&(b.at, &b.kind, &b.label)));
    marks.dedup();
    Ok(TimeSeries {
        interval_ms: target,
        intervals,
        marks,
    })
}

fn add_maps(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// The interval `[t, t + len)` of the merged series: every input interval that starts inside it.
fn combine(series: &[&&TimeSeries], t: i64, len: i64) -> Result<Interval, String> {
    let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000)
        .map_err(|e| format!("interval start out of range: {e}"))?;
    let mut out = Interval::empty(start);
    let mut hists: [Histogram<u64>; 3] = std::array::from_fn(|_| new_histogram());
    for s in series {
        let step = s.interval_ms as i64;
        let n = s.intervals.len() as i64;
        let first = s.first_ms();
        // Input intervals i with t <= first + i * step < t + len.
        let lo = (t - first + step - 1).div_euclid(step).clamp(0, n);
        let hi = (t + len - first + step - 1).div_euclid(step).clamp(0, n);
        // Sessions open at the end of this interval: as at the end of the input's last interval
        // up to here (none before the input started, and as it ended after it ended).
        let open_after = |i: i64| {
            if i < 0 {
                0
            } else {
                s.intervals[i as usize].open
            }
        };
        let open = open_after(hi - 1);
        out.open += open;
        if lo == hi {
            out.peak_open += open;
            continue;
        }
        let mut peak = 0;
        for i in lo..hi {
            let src = &s.intervals[i as usize];
            out.sessions_started += src.sessions_started;
            out.sessions_connected += src.sessions_connected;
            out.sessions_failed += src.sessions_failed;
            add_maps(&mut out.failed_by_reason, &src.failed_by_reason);
            out.reconnects += src.reconnects;
            out.disconnects += src.disconnects;
            add_maps(&mut out.disconnects_by_reason, &src.disconnects_by_reason);
            out.messages_sent += src.messages_sent;
            out.messages_received += src.messages_received;
            out.delivery_expected += src.delivery_expected;
            out.delivery_received += src.delivery_received;
            out.errors_total += src.errors_total;
            add_maps(&mut out.errors_by_kind, &src.errors_by_kind);
            peak = peak.max(src.peak_open);
            for (index, hist) in hists.iter_mut().enumerate() {
                let h = src.histogram(index)?;
                hist.add(&h)
                    .map_err(|e| format!("adding histograms: {e:?}"))?;
            }
        }
        out.peak_open += peak;
    }
    out.delivery_completeness = completeness(out.delivery_expected, out.delivery_received);
    out.set_latencies(hists.each_ref());
    Ok(out)
}
