//! A load test past one process: `--shard K/N` splits a scenario so that the merged reports of
//! its shards equal one run, `--workers N` does the split in N processes of this machine and
//! merges them itself, and a `target` that lists several nodes spreads the sessions over them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn read_report(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {}: {e}", path.display()));
    serde_json::from_str(&text).expect("a JSON report")
}

/// The counts a run of `rooms-once.yaml` must reproduce whoever runs which user.
fn counts(report: &Value) -> Vec<(&'static str, Value)> {
    vec![
        ("sessions.started", report["sessions"]["started"].clone()),
        (
            "sessions.connected",
            report["sessions"]["connected"].clone(),
        ),
        ("sessions.failed", report["sessions"]["failed"].clone()),
        ("messages_sent", report["counters"]["messages_sent"].clone()),
        ("delivery.expected", report["delivery"]["expected"].clone()),
        ("delivery.received", report["delivery"]["received"].clone()),
        // The merged histograms hold every sample of every generator, not one generator's.
        (
            "latency_ms.delivery.count",
            report["latency_ms"]["delivery"]["count"].clone(),
        ),
        (
            "latency_ms.connect.count",
            report["latency_ms"]["connect"]["count"].clone(),
        ),
        (
            "latency_ms.http.count",
            report["latency_ms"]["http"]["count"].clone(),
        ),
    ]
}

/// Start `load-test` of `rooms-once.yaml` against `url` with `extra` arguments, writing `report`.
fn generator(url: &str, report: &Path, extra: &[&str]) -> std::process::Child {
    common::binary::command()
        .args([
            "-q",
            "load-test",
            &fixture("rooms-once.yaml"),
            "--target",
            url,
        ])
        .args(extra)
        .arg("-o")
        .arg(report)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

fn finish(child: std::process::Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn serve() -> scmarket_ws::server::RunningServer {
    common::start_dev_server_with(|c| c.limits = scmarket_ws::server::LimitsConfig::off()).await
}

/// Two shards run at once and their reports merged equal one unsharded run in every count:
/// 40 sessions in 4 rooms, one post each, every post expected by and delivered to its room's 10.
/// So does `--workers 2`, which merges its workers' reports itself.
#[tokio::test(flavor = "multi_thread")]
async fn shards_merged_and_workers_equal_one_run() {
    let server = serve().await;
    let url = server.http_url();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.json");
    let shards: Vec<PathBuf> = (1..=2)
        .map(|k| dir.path().join(format!("shard-{k}.json")))
        .collect();
    let workers = dir.path().join("workers.json");
    let (u, w, s, wk) = (url.clone(), whole.clone(), shards.clone(), workers.clone());
    tokio::task::spawn_blocking(move || {
        finish(generator(&u, &w, &[]), "unsharded");
        finish(generator(&u, &wk, &["--workers", "2"]), "--workers 2");
        let children: Vec<_> = s
            .iter()
            .enumerate()
            .map(|(i, path)| generator(&u, path, &["--shard", &format!("{}/2", i + 1)]))
            .collect();
        for child in children {
            finish(child, "shard");
        }
    })
    .await
    .unwrap();
    server.shutdown().await;

    let whole = read_report(&whole);
    let expected = counts(&whole);
    assert_eq!(expected[0].1, 40, "{whole}");
    assert_eq!(expected[4].1, 400, "{whole}");
    assert_eq!(expected[6].1, 400, "{whole}");
    assert_eq!(expected[7].1, 40, "{whole}");
    // Each shard ran half the users, in its own rooms.
    for path in &shards {
        let shard = read_report(path);
        assert_eq!(shard["sessions"]["started"], 20, "{shard}");
        assert_eq!(shard["delivery"]["expected"], 200, "{shard}");
    }
    let merged = dir.path().join("merged.json");
    let out = common::binary::command()
        .args(["report", "merge"])
        .args(&shards)
        .arg("-o")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(counts(&read_report(&merged)), expected);
    let workers = read_report(&workers);
    assert_eq!(counts(&workers), expected, "{workers}");
    assert_eq!(workers["generator"]["count"], 2, "{workers}");
}

#[test]
fn a_shard_needs_a_room_of_its_own() {
    let out = common::binary::command()
        .args(["-q", "load-test", &fixture("rooms-once.yaml")])
        .args(["--set", "setup.rooms=2", "--shard", "3/3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at least one room per shard"), "{stderr}");
    for bad in ["0/2", "3/2", "two"] {
        let out = common::binary::command()
            .args(["load-test", &fixture("rooms-once.yaml"), "--shard", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--shard {bad}");
    }
}
