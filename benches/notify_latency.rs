//! From an INSERT into `messages` by another process to the `serverMessage` at a listening
//! socket: `serve` on PostgreSQL with the notify trigger (`db install-notify`), its own release
//! process; this process inserts on a connection of its own, as psql or the Node backend would,
//! and times each message from just before its INSERT to its arrival.
//!
//!     cargo bench --bench notify_latency -- [--messages 1000] [--interval-ms 5]
//!
//! Env `SCMARKET_WS_BENCH_POSTGRES`: another server's maintenance URL.

#[path = "common/mod.rs"]
mod common;

use common::flag;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const DIRECT_CHAT: &str = "5c0000c4-0000-4000-8000-000000000003";
const ALICE: &str = "5c000000-0000-4000-8000-000000000001";

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(connection);
    client
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let messages = flag(&args, "--messages", 1000);
    let interval = Duration::from_millis(flag(&args, "--interval-ms", 5) as u64);
    let maintenance = std::env::var("SCMARKET_WS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("scmarket_ws_bench_notify_{}", std::process::id());
    let mut db_url = url::Url::parse(&maintenance).unwrap();
    db_url.set_path(&format!("/{db}"));
    let db_url = db_url.to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        connect(&maintenance)
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    });

    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "scmarket-ws"])
        .status()
        .expect("cargo builds the server");
    assert!(status.success());
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/scmarket-ws");
    // Create the tables and demo data, then install the trigger, then serve.
    let init = Command::new(&exe)
        .args(["serve", "--dev", "--init", "--database", &db_url])
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut init = init;
    let mut lines = BufReader::new(init.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("listening on") {
            break;
        }
    }
    let _ = init.kill();
    let _ = init.wait();
    let out = Command::new(&exe)
        .args(["db", "install-notify", "--database", &db_url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut server = Command::new(&exe)
        .args([
            "serve",
            "--dev",
            "--database",
            &db_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = common::serve_address(&mut server);

    runtime.block_on(async {
        let login: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/api/dev/login"))
            .json(&serde_json::json!({ "username": "bob" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cookie = login["data"]["session_cookie"]
            .as_str()
            .unwrap()
            .to_string();
        let url = format!(
            "{}/ws/?EIO=4&transport=websocket",
            base.replacen("http", "ws", 1)
        );
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.next().await.unwrap().unwrap();
        ws.send(Message::text("40")).await.unwrap();
        // bob is auto-joined to the direct chat with alice.
        let writer_url = db_url.clone();
        let writer = tokio::spawn(async move {
            let client = connect(&writer_url).await;
            let insert = client
                .prepare(
                    "INSERT INTO messages (content, author, chat_id) \
                     VALUES ($1, $2::text::uuid, $3::text::uuid)",
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Before the INSERT was sent, and when its commit was acknowledged.
            let mut times = Vec::with_capacity(messages);
            for i in 0..messages {
                let t0 = Instant::now();
                client
                    .execute(&insert, &[&format!("bench {i}"), &ALICE, &DIRECT_CHAT])
                    .await
                    .unwrap();
                times.push((t0, Instant::now()));
                tokio::time::sleep(interval).await;
            }
            times
        });
        let mut arrived: HashMap<usize, Instant> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60) + interval * messages as u32;
        while arrived.len() < messages && Instant::now() < deadline {
            let frame = match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(frame))) => frame,
                _ => break,
            };
            let at = Instant::now();
            let Ok(text) = frame.to_text() else { continue };
            if text == "2" {
                let _ = ws.send(Message::text("3")).await;
                continue;
            }
            if let Some(rest) = text.split("\"bench ").nth(1) {
                let i: usize = rest.split('"').next().unwrap().parse().unwrap();
                arrived.entry(i).or_insert(at);
            }
        }
        let times = writer.await.unwrap();
        let mut from_insert = Vec::new();
        let mut from_commit = Vec::new();
        for (i, (t0, committed)) in times.iter().enumerate() {
            if let Some(at) = arrived.get(&i) {
                from_insert.push(*at - *t0);
                from_commit.push(at.saturating_duration_since(*committed));
            }
        }
        let summary = |latencies: &mut Vec<Duration>| {
            latencies.sort();
            let pct = |p: f64| {
                latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)]
                    .as_secs_f64()
                    * 1e3
            };
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                pct(0.5),
                pct(0.99),
                pct(1.0)
            )
        };
        println!(
            "notify_latency: {} of {messages} INSERTs arrived as serverMessage (one every {:?})",
            from_insert.len(),
            interval
        );
        println!(
            "  from sending the INSERT:      {}",
            summary(&mut from_insert)
        );
        println!(
            "  from its commit acknowledged: {}",
            summary(&mut from_commit)
        );
    });
    let _ = server.kill();
    let _ = server.wait();
    runtime.block_on(async {
        connect(&maintenance)
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
    });
}
