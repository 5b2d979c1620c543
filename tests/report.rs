//! `report show | merge | compare` over real files, as CI uses them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use scmarket_ws::loadtest::metrics::{CounterValues, HistogramSet, Latency};
use scmarket_ws::loadtest::report::{Generator, Report, RunInfo};
use scmarket_ws::loadtest::thresholds::Threshold;
use time::OffsetDateTime;

fn run(args: &[&str]) -> Output {
    common::binary::command()
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A report whose connect latencies are `base_us + i` for i in 0..n, and deliveries as given.
fn report(base_us: u64, n: u64, expected: u64, received: u64, failed: u64) -> Report {
    let mut h = HistogramSet::default();
    for i in 0..n {
        h.record(Latency::Connect, base_us + i);
        h.record(Latency::Delivery, base_us / 2 + i);
    }
    let mut c = CounterValues {
        started: n + failed,
        connected: n,
        peak_open: n,
        messages_sent: 5,
        delivery_expected: expected,
        delivery_received: received,
        ..CounterValues::default()
    };
    c.failed_by_reason.insert("refused".into(), failed);
    let thresholds: Vec<Threshold> = [
        "connect.p99 < 50ms",
        "delivery.completeness >= 99%",
        "sessions.failed == 0",
    ]
    .iter()
    .map(|t| Threshold::parse(t).expect("valid threshold"))
    .collect();
    let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("valid time");
    let run = RunInfo {
        started_at: at,
        finished_at: at + time::Duration::seconds(30),
        generator: Generator::default(),
    };
    Report::build("chat-fanout", &c, &h, run, &thresholds)
}

fn write(dir: &Path, name: &str, r: &Report) -> String {
    let path = dir.join(name);
    r.save(&path).expect("saved");
    path.to_string_lossy().into_owned()
}

#[test]
fn show_prints_tables_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = write(dir.path(), "a.json", &report(10_000, 500, 100, 100, 0));
    let out = run(&["report", "show", &a]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for needle in [
        "latency (ms)",
        "p99.9",
        "connect",
        "delivery completeness",
        "100.000%",
        "connect.p99 < 50ms",
        "pass",
    ] {
        assert!(stdout.contains(needle), "missing {needle}:\n{stdout}");
    }
    let out = run(&["report", "show", "--json", &a]);
    assert_eq!(out.status.code(), Some(0));
    let back =
        Report::from_json(&text(&out.stdout), "stdout").expect("show --json prints a report");
    assert_eq!(back, report(10_000, 500, 100, 100, 0));
}

#[test]
fn merge_adds_histograms_and_reevaluates_thresholds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = write(dir.path(), "a.json", &report(10_000, 500, 100, 100, 0));
    let b = write(dir.path(), "b.json", &report(20_000, 300, 100, 99, 0));
    let out_path = dir.path().join("merged.json");
    let out = run(&["report", "merge", &a, &b, "-o", &out_path.to_string_lossy()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let merged = Report::load(&out_path).expect("merged report loads");
    assert_eq!(merged.latency_ms.connect.count, 800);
    assert_eq!(merged.sessions.peak_open, 800);
    assert_eq!(
        (merged.delivery.expected, merged.delivery.received),
        (200, 199)
    );
    assert_eq!(merged.generator.count, 2);
    // 199/200 = 99.5% >= 99%: still passes after the merge.
    assert!(merged.all_thresholds_pass(), "{:?}", merged.thresholds);

    // One generator with a failed session makes the merged result fail: exit 1.
    let c = write(dir.path(), "c.json", &report(10_000, 10, 10, 10, 1));
    let out = run(&["report", "merge", &a, &c, "-o", &out_path.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("FAIL"));
}

#[test]
fn merge_needs_two_files_and_one_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = write(dir.path(), "a.json", &report(10_000, 5, 1, 1, 0));
    let out = run(&["report", "merge", &a, "-o", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    let mut other = report(10_000, 5, 1, 1, 0);
    other.scenario = "soak".into();
    let b = write(dir.path(), "b.json", &other);
    let out = run(&[
        "report",
        "merge",
        &a,
        &b,
        "-o",
        &dir.path().join("m.json").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("cannot merge reports of different scenarios: chat-fanout, soak")
    );
}

#[test]
fn compare_fails_ci_only_beyond_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = write(dir.path(), "base.json", &report(10_000, 1000, 100, 100, 0));
    let close = write(dir.path(), "close.json", &report(10_500, 1000, 100, 100, 0));
    let slow = write(dir.path(), "slow.json", &report(13_000, 1000, 100, 100, 0));

    let out = run(&[
        "report",
        "compare",
        &base,
        &close,
        "--max-regression",
        "10%",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("0 regression(s) beyond 10.0%"));

    let out = run(&["report", "compare", &base, &slow, "--max-regression", "10%"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("REGRESSION"), "{stdout}");
    assert!(stdout.contains("connect.p50 (ms)"), "{stdout}");

    // A looser limit lets the same change through.
    let out = run(&["report", "compare", &base, &slow, "--max-regression", "40%"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = run(&[
        "report",
        "compare",
        &base,
        &slow,
        "--max-regression",
        "lots",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_files_exit_2_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = report(10_000, 50, 10, 10, 0).to_json();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not-json.json",
            "hello".into(),
            "not a load-test report: not JSON",
        ),
        (
            "empty.json",
            String::new(),
            "not a load-test report: not JSON",
        ),
        ("no-version.json", "{}".into(), "no `schema_version` field"),
        (
            "future.json",
            good.replacen("\"schema_version\": 2", "\"schema_version\": 3", 1),
            "schema_version 3 is not supported by this build (it reads 1 and 2)",
        ),
        (
            "truncated.json",
            good[..good.len() / 2].to_owned(),
            "not a load-test report: not JSON",
        ),
        (
            "edited.json",
            good.replacen("\"count\": 50,", "\"count\": 51,", 1),
            "latency_ms.connect.count is 51 but histograms.connect holds 50 samples",
        ),
        (
            "missing-field.json",
            good.replacen("\"scenario\": \"chat-fanout\",", "", 1),
            "missing field `scenario`",
        ),
    ];
    let good_path = write(dir.path(), "good.json", &report(10_000, 50, 10, 10, 0));
    for (name, content, reason) in cases {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, content).expect("written");
        let path = path.to_string_lossy().into_owned();
        for args in [
            vec!["report", "show", path.as_str()],
            vec!["report", "compare", good_path.as_str(), path.as_str()],
            vec![
                "report",
                "merge",
                good_path.as_str(),
                path.as_str(),
                "-o",
                "unused.json",
            ],
        ] {
            let out = run(&args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&path) && stderr.contains(reason),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    let out = run(&[
        "report",
        "show",
        &dir.path().join("absent.json").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("absent.json: cannot read"));
    assert!(!Path::new("unused.json").exists());
}

/// A report as version 1 wrote it: no `timeseries`, no `panic` error kind.
fn as_version_1(r: &Report) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("JSON");
    v["schema_version"] = 1.into();
    let top = v.as_object_mut().expect("object");
    top.remove("timeseries");
    top["counters"]["errors_by_kind"]
        .as_object_mut()
        .expect("kinds")
        .remove("panic");
    serde_json::to_string_pretty(&v).expect("JSON")
}

#[test]
fn version_1_reports_are_still_read_without_a_time_series() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("old.json");
    std::fs::write(&old, as_version_1(&report(10_000, 50, 10, 10, 0))).expect("written");
    let old = old.to_string_lossy().into_owned();
    let out = run(&["report", "show", &old]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("over time"));
    let page = dir.path().join("old.html");
    let out = run(&["report", "html", &old, "-o", &page.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("no time series in this report"), "{html}");
    assert!(html.contains("data-chart=\"latency_distribution\""));
    // Merged with a version-2 report: counts add, every error kind is listed, no series.
    let new = write(dir.path(), "new.json", &report(10_000, 50, 10, 10, 0));
    let merged = dir.path().join("merged.json");
    let out = run(&[
        "report",
        "merge",
        &old,
        &new,
        "-o",
        &merged.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let merged = Report::load(&merged).expect("loads");
    assert_eq!(merged.schema_version, 2);
    assert!(merged.timeseries.is_none());
    assert_eq!(merged.counters.errors_by_kind["panic"], 0);
    assert_eq!(merged.sessions.started, 100);
}

#[test]
fn intervals_that_do_not_add_up_are_refused() {
    use scmarket_ws::loadtest::metrics::{Metrics, RoomTable};
    let metrics = std::sync::Arc::new(Metrics::new(1, RoomTable::default()));
    for _ in 0..3 {
        metrics.session_started();
        metrics.session_connected();
    }
    let (c, h) = metrics.snapshot();
    let at = OffsetDateTime::now_utc();
    let run_info = RunInfo {
        started_at: at,
        finished_at: at,
        generator: Generator::default(),
    };
    let good = Report::build("s", &c, &h, run_info, &[])
        .with_series(&metrics.series_values(std::time::Instant::now()));
    let json = good.to_json();
    assert_eq!(Report::from_json(&json, "ok.json").expect("valid"), good);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    v["timeseries"]["intervals"][0]["sessions_started"] = 4.into();
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, v.to_string()).expect("written");
    let out = run(&["report", "show", &edited.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("the intervals of timeseries add up to 4 for sessions.started, which is 3"),
        "{}",
        text(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    v["timeseries"]["intervals"][0]["start"] = "2026-01-01T00:00:00.5Z".into();
    std::fs::write(&edited, v.to_string()).expect("written");
    let out = run(&["report", "show", &edited.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a multiple of interval_ms"),
        "{}",
        text(&out.stderr)
    );
}
