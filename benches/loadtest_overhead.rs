//! What the load-test's own bookkeeping costs per event, so the generator stays cheaper than the
//! server it measures. Not a test: run it in release and record the figures in
//! docs/BENCHMARKS.md.
//!
//!     cargo bench --bench loadtest_overhead

use std::sync::Arc;
use std::time::{Duration, Instant};

use scmarket_ws::loadtest::metrics::{Latency, Metrics, RoomTable};
use scmarket_ws::loadtest::report::{Report, RunInfo, merge};
use scmarket_ws::loadtest::scenario::{self, Overrides};
use scmarket_ws::loadtest::template::{Template, Var, Vars};

const ROOM: &str = "0b6c5a1e-0000-4000-8000-000000000001";

fn per_op(label: &str, ops: u64, elapsed: Duration) {
    println!(
        "{label:<52} {:>8.1} ns/op  ({ops} ops in {:.3}s)",
        elapsed.as_nanos() as f64 / ops as f64,
        elapsed.as_secs_f64()
    );
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("{threads} thread(s)");

    // Counters and latency samples from every thread at once, as session tasks would.
    let metrics = Arc::new(Metrics::new(1, RoomTable::new([ROOM.to_owned()])));
    let per_thread = 5_000_000u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let metrics = Arc::clone(&metrics);
            s.spawn(move || {
                let mut r = metrics.recorder();
                for i in 0..per_thread {
                    metrics.message_received();
                    r.record(
                        Latency::Ack,
                        Duration::from_micros(100 + (i * 7 + t) % 50_000),
                    );
                }
            });
        }
    });
    per_op(
        "record a latency + count a message (all threads)",
        per_thread * threads as u64,
        start.elapsed(),
    );

    // The same as the runner does it: a latency timed from the instant its operation began
    // and a message counted at its arrival stamp, so the interval of each costs no clock read.
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let metrics = Arc::clone(&metrics);
            s.spawn(move || {
                let mut r = metrics.recorder();
                let began = Instant::now();
                for i in 0..per_thread {
                    metrics.message_received_at(began);
                    r.record_started(
                        Latency::Ack,
                        began,
                        Duration::from_micros(100 + (i * 7 + t) % 50_000),
                    );
                }
            });
        }
    });
    per_op(
        "record from a start instant + count at an arrival stamp",
        per_thread * threads as u64,
        start.elapsed(),
    );

    // A receiver finding the nonce in a message and recording its delivery.
    for _ in 0..100 {
        metrics.rooms.join(ROOM);
    }
    let nonce = metrics.message_sent(ROOM, Instant::now());
    let content = format!("load message from virtual user 1234 with some padding text {nonce}");
    let n = 2_000_000u64;
    let mut r = metrics.recorder();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(r.delivered(std::hint::black_box(&content), Instant::now()));
    }
    per_op(
        "match a delivery by nonce and record it",
        n,
        start.elapsed(),
    );
    drop(r);

    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(metrics.message_sent(ROOM, Instant::now()));
    }
    per_op(
        "account a sent message (expected + nonce)",
        n,
        start.elapsed(),
    );

    // Rendering a template into a reused buffer, as the runner does per step.
    let t = Template::compile("load {{nonce}} from vu-{{vu}} #{{iteration}}", Var::ALL)
        .unwrap_or_else(|e| panic!("{e}"));
    let vars = Vars {
        vu: 1234,
        iteration: 7,
        room: ROOM,
        nonce: &nonce,
    };
    let mut buf = String::with_capacity(128);
    let start = Instant::now();
    for _ in 0..n {
        buf.clear();
        t.render_into(&vars, &mut buf);
        std::hint::black_box(&buf);
    }
    per_op("render a 3-variable template", n, start.elapsed());

    // Validating the fan-out scenario (done once per run).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/chat-fanout.yaml");
    let runs = 1000u64;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(scenario::load(&path, &Overrides::default()).is_ok());
    }
    per_op(
        "load + validate scenarios/chat-fanout.yaml",
        runs,
        start.elapsed(),
    );

    // Merging two reports that each hold the samples above.
    let (counters, hists) = metrics.snapshot();
    let report = Report::build("bench", &counters, &hists, RunInfo::default(), &[]);
    let json = report.to_json();
    let start = Instant::now();
    let a = Report::from_json(&json, "a").unwrap_or_else(|e| panic!("{e}"));
    let b = Report::from_json(&json, "b").unwrap_or_else(|e| panic!("{e}"));
    let merged = merge(&[a, b]).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{:<52} {:>8.1} ms      ({} samples, report {} bytes)",
        "load two reports and merge them",
        start.elapsed().as_secs_f64() * 1000.0,
        merged.latency_ms.ack.count + merged.latency_ms.delivery.count,
        json.len()
    );
    println!(
        "per-session recorder: {} bytes + {} bytes of sample buffer",
        std::mem::size_of::<scmarket_ws::loadtest::metrics::Recorder>(),
        scmarket_ws::loadtest::metrics::FLUSH_EVERY * std::mem::size_of::<(Latency, u64)>()
    );
}
