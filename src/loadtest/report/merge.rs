//! `report merge`: the reports of several generators that ran the same scenario at the same
//! time, combined into the report of one run over all their sessions.

use std::collections::BTreeMap;

use crate::loadtest::metrics::{CounterValues, HistogramSet};
use crate::loadtest::thresholds::Threshold;

use super::{Generator, Report, ReportError, RunInfo, rounded};

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
