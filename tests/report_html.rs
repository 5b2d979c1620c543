//! The HTML report of a real small run, looked at in a real browser: Debian's headless Chromium
//! driven by playwright-core (pinned in tests/node). Every chart must be there with a point for
//! every interval it has data for, the page must make no request beyond its own file, and a
//! screenshot is kept under target/ as an artifact.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The charts of a page with a time series, in page order.
const CHARTS: [&str; 9] = [
    "open_sessions",
    "arrival_rate",
    "latency_connect",
    "latency_ack",
    "latency_delivery",
    "delivery_completeness",
    "messages",
    "errors",
    "latency_distribution",
];

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scmarket-ws"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// tests/node with playwright-core installed: `npm ci` again if node_modules predates it.
fn node_modules_with_playwright() -> PathBuf {
    let dir = common::ensure_node_modules();
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let lock = std::fs::File::create(std::env::temp_dir().join("scmarket-ws-npm.lock"))
            .expect("create npm lock file");
        lock.lock().expect("take npm lock");
        if !dir
            .join("node_modules/playwright-core/package.json")
            .exists()
        {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm runs");
            assert!(status.success(), "npm ci in tests/node failed");
        }
        let _ = lock.unlock();
    }
    dir
}

/// Run the browser on `page`, saving the screenshot to `shot`; its JSON answer.
fn look_at(page: &Path, shot: &Path) -> Value {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test needs Debian's chromium (apt-get install -y chromium; \
         .ci/run installs it)"
    );
    let dir = node_modules_with_playwright();
    let out = Command::new("node")
        .arg(dir.join("report-browser.js"))
        .arg(page)
        .arg(shot)
        .output()
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser script failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("browser answer is not JSON ({e}): {stderr}"))
}

/// Points each legend line should have: one per interval where the line has a value.
fn expected_points(report: &Value, chart: &str, line: &str) -> usize {
    let intervals = report["timeseries"]["intervals"]
        .as_array()
        .expect("intervals");
    let with = |f: &dyn Fn(&Value) -> bool| intervals.iter().filter(|i| f(i)).count();
    match chart {
        "latency_connect" | "latency_ack" | "latency_delivery" => {
            let latency = &chart["latency_".len()..];
            with(&|i| i["latency_ms"][latency]["count"].as_u64() > Some(0))
        }
        "delivery_completeness" => with(&|i| !i["delivery_completeness"].is_null()),
        // Counting lines have a value (maybe 0) in every interval.
        _ => {
            let _ = line;
            intervals.len()
        }
    }
}

#[test]
fn the_html_report_of_a_real_run_renders_every_chart_offline() {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    std::fs::create_dir_all(&artifacts).expect("artifact folder");
    let json = artifacts.join("smoke.json");
    let html = artifacts.join("smoke.html");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.yaml");
    let out = bin()
        .args(["-q", "load-test"])
        .arg(&scenario)
        .args(["--set", "phases.0.duration=3s", "--interval", "250ms"])
        .arg("-o")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("load-test runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("open sessions  "), "sparkline: {stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let intervals = report["timeseries"]["intervals"]
        .as_array()
        .expect("series");
    assert!(intervals.len() >= 12, "3 s at 250 ms: {}", intervals.len());

    let shot = artifacts.join("smoke.png");
    let seen = look_at(&html, &shot);

    // No network: the only request is the page's own file.
    let page_url = format!("file://{}", html.display());
    let requests: Vec<&str> = seen["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(requests, [page_url.as_str()], "the page fetched something");
    assert_eq!(seen["title"], "Load test: smoke");

    let charts = seen["charts"].as_array().expect("charts");
    let ids: Vec<&str> = charts.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, CHARTS);
    for chart in charts {
        let id = chart["id"].as_str().unwrap_or_default();
        assert!(
            chart["width"].as_f64() > Some(100.0) && chart["height"].as_f64() > Some(50.0),
            "{id} is not rendered: {chart}"
        );
        let legend = chart["legend"].as_array().expect("legend");
        assert!(!legend.is_empty(), "{id} has no lines");
        for entry in legend {
            let line = entry["line"].as_str().unwrap_or_default();
            let drawn = entry["points"].as_u64().unwrap_or(0) as usize;
            if id == "latency_distribution" {
                assert!(drawn >= 2, "{id} {line}: {drawn} points");
                continue;
            }
            let want = expected_points(&report, id, line);
            assert!(want > 0, "{id} {line}: the run measured nothing to draw");
            assert_eq!(
                drawn, want,
                "{id} {line}: drawn points against intervals with data"
            );
        }
    }
    // The smoke run measures all three latencies, so each chart draws p50, p95 and p99.
    for id in ["latency_connect", "latency_ack", "latency_delivery"] {
        let chart = charts.iter().find(|c| c["id"] == id).expect("chart");
        let lines: Vec<&str> = chart["legend"]
            .as_array()
            .expect("legend")
            .iter()
            .filter_map(|e| e["line"].as_str())
            .collect();
        assert_eq!(lines, ["p50", "p95", "p99"], "{id}");
    }
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn report_html_overlays_several_reports_and_refuses_bad_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.yaml");
    let mut files = Vec::new();
    for name in ["base", "new"] {
        let file = dir.path().join(format!("{name}.json"));
        let out = bin()
            .args(["-q", "load-test"])
            .arg(&scenario)
            .args(["--set", "phases.0.duration=1s", "-o"])
            .arg(&file)
            .output()
            .expect("load-test runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.push(file);
    }
    let page = dir.path().join("compare.html");
    let out = bin()
        .args(["report", "html"])
        .args(&files)
        .arg("-o")
        .arg(&page)
        .args(["--title", "base <> new"])
        .output()
        .expect("report html runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&page).expect("page");
    assert!(
        text.contains("<title>base &lt;&gt; new</title>"),
        "title escaped"
    );
    // Both reports in every chart: a legend entry per report and line, each in its own color.
    for run in ["base", "new"] {
        assert!(
            text.contains(&format!("data-run=\"{run}\" data-line=\"open\"")),
            "{run} missing"
        );
    }
    // Nothing to fetch: the only URL in the page is the SVG namespace, which is a name.
    let outside = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !outside.contains("http://") && !outside.contains("https://"),
        "no links out"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").expect("written");
    let out = bin()
        .args(["report", "html"])
        .arg(&bad)
        .arg("-o")
        .arg(dir.path().join("x.html"))
        .output()
        .expect("report html runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `schema_version` field"));
}
