//! Runs, samples and thresholds the report tests build their reports from.

use hdrhistogram::Histogram;
use time::OffsetDateTime;

use crate::loadtest::metrics::{CounterValues, HistogramSet, Latency};
use crate::loadtest::thresholds::Threshold;

use super::{Generator, RunInfo};

pub(super) fn run(at: i64, secs: i64) -> RunInfo {
    RunInfo {
        started_at: OffsetDateTime::from_unix_timestamp(at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
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
pub(super) fn samples(seed: u64, n: u64) -> Vec<(Latency, u64)> {
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

pub(super) fn record(samples: &[(Latency, u64)]) -> HistogramSet {
    let mut h = HistogramSet::default();
    for (l, v) in samples {
        h.record(*l, *v);
    }
    h
}

pub(super) fn counters(started: u64, failed: u64, expected: u64, received: u64) -> CounterValues {
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

pub(super) fn thresholds() -> Vec<Threshold> {
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

pub(super) fn recorded(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}
