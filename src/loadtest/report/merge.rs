//! `report merge`: the reports of several generators that ran the same scenario at the same
//! time, combined into the report of one run over all their sessions.

use std::collections::BTreeMap;

use crate::loadtest::metrics::{CounterValues, HistogramSet};
use crate::loadtest::thresholds::Threshold;

use super::series::merge_series;
use super::{Generator, Report, ReportError, RunInfo, TimeSeries, rounded};

impl Report {
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
/// earliest start to the latest finish, thresholds re-evaluated on the merged data, and the
/// time series combined interval by interval (see `series`).
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
    let (timeseries, warning) = merged_series(reports);
    generator.warnings.extend(warning);
    let run = RunInfo {
        started_at: started,
        finished_at: finished,
        generator,
    };
    let mut merged = Report::build(&first.scenario, &counters, &hists, run, &thresholds);
    merged.timeseries = timeseries;
    Ok(merged)
}

/// The reports' time series combined, or why the merged report has none.
fn merged_series(reports: &[Report]) -> (Option<TimeSeries>, Option<String>) {
    let series: Vec<&TimeSeries> = reports
        .iter()
        .filter_map(|r| r.timeseries.as_ref())
        .collect();
    if series.len() < reports.len() {
        return (
            None,
            Some(format!(
                "{} of {} merged reports have no time series (schema version 1): the merged report has none",
                reports.len() - series.len(),
                reports.len()
            )),
        );
    }
    match merge_series(&series, None) {
        Ok(merged) => (Some(merged), None),
        Err(e) => (None, Some(format!("time series not merged: {e}"))),
    }
}
#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::loadtest::metrics::Latency;

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
}

#[cfg(test)]
mod series_tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use super::super::Interval;
    use super::super::fixtures::recorded;
    use super::*;
    use crate::client::DisconnectKind;
    use crate::loadtest::metrics::{ErrorKind, FailReason, Latency, MarkKind, Metrics, RoomTable};

    const ROOM_A: &str = "0b6c5a1e-0000-4000-8000-00000000000a";
    const ROOM_B: &str = "0b6c5a1e-0000-4000-8000-00000000000b";

    /// Feeds the same events to a generator and to the one run that sees everything.
    struct Both<'a> {
        sender: &'a Arc<Metrics>,
        one: &'a Arc<Metrics>,
    }

    impl Both<'_> {
        fn each(&self, f: impl Fn(&Arc<Metrics>)) {
            f(self.sender);
            f(self.one);
        }
    }

    /// Two generators, the second started 1.4 s after the first, both 250 ms into a second of
    /// the wall clock, run six seconds of sessions, acks, messages and errors; the same events
    /// go to one run over both. Merging the two reports gives that run's intervals.
    #[test]
    fn merged_intervals_equal_one_run_over_both_generators() {
        let origin = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let second = Duration::from_secs(1);
        let late = Duration::from_millis(1400);
        let rooms = || RoomTable::new([ROOM_A.to_owned(), ROOM_B.to_owned()]);
        let one = Arc::new(Metrics::with_clock(9, rooms(), second, origin, wall));
        let a = Arc::new(Metrics::with_clock(1, rooms(), second, origin, wall));
        let b = Arc::new(Metrics::with_clock(
            2,
            rooms(),
            second,
            origin + late,
            wall + late,
        ));
        // Three listeners of a's room on a, two of b's on b.
        for (sender, room, n) in [(&a, ROOM_A, 3), (&b, ROOM_B, 2)] {
            for _ in 0..n {
                sender.rooms.join(room);
                one.rooms.join(room);
            }
        }
        let at = |ms: u64| origin + Duration::from_millis(ms);
        for (sender, start) in [(&a, 0), (&b, 1400)] {
            Both { sender, one: &one }.each(|m| m.mark(at(start), MarkKind::Phase, "phase 1/1"));
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut rec_a, mut rec_b, mut rec_one) = (a.recorder(), b.recorder(), one.recorder());
        for k in 0..600u64 {
            let t = k * 10 + next(10);
            // As the runner does a few times a second: intervals that are over are compacted,
            // and samples still buffered in recorders reach them late.
            if k % 25 == 0 {
                for m in [&a, &b, &one] {
                    m.compact_series(at(t));
                }
            }
            let on_b = t >= 1400 && next(2) == 0;
            let (sender, rec, room) = if on_b {
                (&b, &mut rec_b, ROOM_B)
            } else {
                (&a, &mut rec_a, ROOM_A)
            };
            let both = Both { sender, one: &one };
            match next(6) {
                0 => {
                    let took = 1 + next(900);
                    both.each(|m| m.session_started_at(at(t)));
                    if next(8) == 0 {
                        both.each(|m| m.session_failed_at(FailReason::Timeout, at(t + took)));
                    } else {
                        both.each(|m| m.session_connected_at(at(t + took)));
                        let latency = Duration::from_millis(took);
                        rec.record_started(Latency::Connect, at(t), latency);
                        rec_one.record_started(Latency::Connect, at(t), latency);
                        // Everything happens before the reports are taken, at 7 s.
                        let close = (t + took + 200 + next(3000)).min(6990);
                        both.each(|m| m.session_closed_at(DisconnectKind::Client, at(close)));
                    }
                }
                1 | 2 => {
                    let listeners = if on_b { 2 } else { 3 };
                    let (nonce, _) = sender.message_sent_expecting(room, at(t));
                    let (nonce_one, _) = one.message_sent_expecting(room, at(t));
                    for _ in 0..listeners {
                        // One delivery in seven is lost.
                        if next(7) == 0 {
                            continue;
                        }
                        let arrives = at((t + 1 + next(1500)).min(6999));
                        assert!(rec.delivered(&nonce, arrives));
                        assert!(rec_one.delivered(&nonce_one, arrives));
                        both.each(|m| m.message_received_at(arrives));
                    }
                }
                3 => {
                    let took = Duration::from_micros(100 + next(50_000));
                    rec.record_started(Latency::Ack, at(t), took);
                    rec_one.record_started(Latency::Ack, at(t), took);
                }
                4 => both.each(|m| m.error_at(ErrorKind::AckTimeout, at(t))),
                _ => both.each(|m| m.message_received_at(at(t))),
            }
        }
        drop((rec_a, rec_b, rec_one));
        let until = at(7000);
        let report = |m: &Arc<Metrics>, started: i64| {
            let (c, h) = m.snapshot();
            let r = Report::build(
                "fanout",
                &c,
                &h,
                super::super::fixtures::run(started, 7),
                &[],
            )
            .with_series(&m.series_values(until));
            // Through JSON, as `report merge` reads them (and every check on reading passes).
            Report::from_json(&r.to_json(), "r.json").expect("a valid report")
        };
        let merged =
            merge(&[report(&a, 1_800_000_000), report(&b, 1_800_000_001)]).expect("merges");
        let whole = report(&one, 1_800_000_000);
        let (m, w) = (
            merged.timeseries.as_ref().expect("merged series"),
            whole.timeseries.as_ref().expect("series"),
        );
        assert_eq!(m.interval_ms, 1000);
        assert_eq!(m.intervals.len(), w.intervals.len());
        assert_eq!(m.intervals.len(), 8, "00.0 to 07.25 of the wall clock");
        assert_eq!(m.marks, w.marks);
        for (n, (mi, wi)) in m.intervals.iter().zip(&w.intervals).enumerate() {
            // Peaks add up to an upper bound (they need not coincide); everything else is exact.
            assert!(mi.peak_open >= wi.peak_open, "interval {n}");
            let same = |i: &Interval| Interval {
                peak_open: 0,
                histograms: Default::default(),
                ..i.clone()
            };
            assert_eq!(same(mi), same(wi), "interval {n}");
            for index in 0..3 {
                assert_eq!(
                    recorded(&mi.histogram(index).expect("decodes")),
                    recorded(&wi.histogram(index).expect("decodes")),
                    "interval {n}, latency {index}"
                );
            }
        }
        // The run did something in every interval it spans, and the totals agree.
        assert!(w.intervals.iter().all(|i| i.messages_received > 0));
        assert_eq!(merged.counters, whole.counters);
        assert_eq!(merged.delivery, whole.delivery);
        let lost = w.intervals.iter().filter_map(|i| i.delivery_completeness);
        assert!(lost.clone().any(|c| c < 1.0), "some deliveries were lost");
    }

    #[test]
    fn a_version_1_report_merges_without_a_time_series() {
        let metrics = Arc::new(Metrics::new(1, RoomTable::default()));
        metrics.session_started();
        let (c, h) = metrics.snapshot();
        let with = Report::build("x", &c, &h, super::super::fixtures::run(0, 1), &[])
            .with_series(&metrics.series_values(Instant::now()));
        let mut without = with.clone();
        without.timeseries = None;
        let merged = merge(&[with.clone(), without]).expect("merges");
        assert!(merged.timeseries.is_none());
        assert!(
            merged
                .generator
                .warnings
                .iter()
                .any(|w| w.contains("1 of 2 merged reports have no time series")),
            "{:?}",
            merged.generator.warnings
        );
        let merged = merge(&[with.clone(), with]).expect("merges");
        assert!(merged.timeseries.is_some());
    }
}
