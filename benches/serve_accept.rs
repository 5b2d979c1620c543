//! How fast `serve` admits Socket.IO sessions: engine open over websocket, cookie auth,
//! auto-join, namespace CONNECT. The server runs as its own release process so its CPU time is
//! measured apart from the driver's.
//!
//! cargo bench --bench serve_accept -- [--sessions N] [--concurrency C] [--users U]
//!
//! The driver is deliberately raw (tokio-tungstenite, two frames per session) so the figure is
//! the server's, not a client library's.

#[path = "common/mod.rs"]
mod common;

use common::flag;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sessions = flag(&args, "--sessions", 5000);
    let concurrency = flag(&args, "--concurrency", 256);
    let users = flag(&args, "--users", 100);

    // --server-pid PID --url URL: drive an already running server instead (e.g. under a profiler).
    let external = args
        .iter()
        .position(|a| a == "--url")
        .and_then(|i| args.get(i + 1).cloned());
    if let Some(url) = external {
        let pid = flag(&args, "--server-pid", 0) as u32;
        drive(url, pid, sessions, concurrency, users);
        return;
    }
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "scmarket-ws"])
        .status()
        .expect("cargo builds the server");
    assert!(status.success());
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/scmarket-ws");
    let mut server = Command::new(exe)
        .args([
            "serve",
            "--dev",
            "--quiet",
            "--database",
            "sqlite::memory:",
            "--listen",
            "127.0.0.1:0",
            "--handshake-rate",
            "0",
            "--max-connections-per-user",
            "0",
            "--max-connections-per-ip",
            "0",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let base = common::serve_address(&mut server);
    drive(base, server.id(), sessions, concurrency, users);
    let _ = server.kill();
    let _ = server.wait();
}

fn drive(base: String, pid: u32, sessions: usize, concurrency: usize, users: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut cookies = Vec::new();
        for u in 0..users {
            let v: serde_json::Value = http
                .post(format!("{base}/api/dev/login"))
                .json(&serde_json::json!({ "username": format!("bench-{u}") }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            cookies.push(v["data"]["session_cookie"].as_str().unwrap().to_string());
        }
        let url = format!("{}/ws/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
        let cpu_before = cpu_seconds(pid);
        let rss_before = rss_kib(pid);
        let gate = Arc::new(Semaphore::new(concurrency));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let permit = gate.clone().acquire_owned().await.unwrap();
            let mut request = url.as_str().into_client_request().unwrap();
            request.headers_mut().insert("cookie", cookies[i % users].parse().unwrap());
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let (mut ws, _) = tokio_tungstenite::connect_async(request).await.ok()?;
                let open = ws.next().await?.ok()?;
                if !open.to_text().ok()?.starts_with('0') {
                    return None;
                }
                ws.send(Message::text("40")).await.ok()?;
                loop {
                    let frame = ws.next().await?.ok()?;
                    if frame.to_text().ok()?.starts_with("40") {
                        break;
                    }
                }
                let took = t0.elapsed();
                drop(permit);
                Some((ws, took))
            }));
        }
        let mut open = Vec::with_capacity(sessions);
        let mut latencies = Vec::with_capacity(sessions);
        for t in tasks {
            if let Ok(Some((ws, took))) = t.await {
                open.push(ws);
                latencies.push(took);
            }
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
            eprintln!(
                "serve_accept: the server process {pid} is gone, so no CPU or memory figure: \
                 each session is a file descriptor on both sides, keep --sessions well below \
                 `ulimit -n` ({sessions} asked)"
            );
            std::process::exit(1);
        }
        let cpu = cpu_seconds(pid) - cpu_before;
        let rss = rss_kib(pid).saturating_sub(rss_before);
        latencies.sort();
        let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or_default();
        println!(
            "serve_accept: {} of {sessions} sessions in {:.2} s = {:.0} sessions/s (concurrency {concurrency}, {users} users)",
            open.len(),
            elapsed.as_secs_f64(),
            open.len() as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  connect latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        println!(
            "  server CPU {cpu:.2} s ({:.0} us per session), server RSS +{} KiB ({:.1} KiB per open session)",
            cpu * 1e6 / open.len().max(1) as f64,
            rss,
            rss as f64 / open.len().max(1) as f64
        );
        drop(open);
    });
}
