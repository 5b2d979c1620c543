//! `report compare`: a new report against a base, metric by metric, for regressions in CI.

use crate::loadtest::metrics::Latency;

use super::{Report, Summary};

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
#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::render_compare;
    use super::*;

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
}
