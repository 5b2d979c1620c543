//! Session admission (engine open, cookie lookup, auto-join, CONNECT) and `clientJoinRoom`
//! latency of `serve` on PostgreSQL against `serve` on SQLite, in one run, alternating rounds
//! so the shared machine's load weighs on both alike. Each server is its own release process;
//! PostgreSQL is the one at 127.0.0.1:5432 (a database created for the run and dropped after).
//!
//!     cargo bench --bench store_admission -- [--rounds 4] [--sessions 3000] [--concurrency 256]
//!         [--join-concurrency 16] [--users 100] [--pg-args "ARGS"]
//!         [--baseline PATH [--baseline-args "ARGS"]] [--show-slowest N]
//!
//! `--pg-args` are added to the PostgreSQL `serve`'s arguments (e.g. `--pool-warm 0`).
//! `--baseline PATH` adds a third server: the `scmarket-ws` binary at PATH (e.g. one built from
//! main) on PostgreSQL, a database of its own, with `--baseline-args`; its rounds alternate
//! with the others'. Before round 1 the bench prints how many pool connections each
//! PostgreSQL server holds (`pg_stat_activity`): round 1 follows a fresh start, so a server
//! that opens its pool lazily pays for it there. `--show-slowest N` prints each round's N
//! slowest joins and when each was sent (ms after the round's first join).
//!
//! Env `SCMARKET_WS_BENCH_POSTGRES`: another server's maintenance URL.

#[path = "common/mod.rs"]
mod common;

use common::flag;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn text_flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn exe() -> std::path::PathBuf {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "scmarket-ws"])
        .status()
        .expect("cargo builds the server");
    assert!(status.success());
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/scmarket-ws")
}

/// Start `serve` on `database` with every limit off; answers the process and its base URL.
fn start(exe: &std::path::Path, database: &str, extra: &[&str]) -> (Child, String) {
    let mut server = Command::new(exe)
        .args([
            "serve",
            "--dev",
            "--database",
            database,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--handshake-rate", "0", "--event-rate", "0"])
        .args([
            "--max-connections-per-user",
            "0",
            "--max-connections-per-ip",
            "0",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let base = common::serve_address(&mut server);
    (server, base)
}

async fn admin(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
}

/// Connections of `serve`'s pool (application_name `scmarket-ws`) open on `database`.
async fn pool_connections(maintenance: &str, database: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(maintenance, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{maintenance}: {e}"));
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'scmarket-ws'",
            &[&database],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

struct Target {
    name: &'static str,
    base: String,
    cookies: Vec<String>,
    chat: String,
    /// The PostgreSQL database it serves, for the pool count.
    database: Option<String>,
}

async fn prepare(name: &'static str, base: String, users: usize) -> Target {
    let http = reqwest::Client::new();
    let mut cookies = Vec::new();
    let mut names = Vec::new();
    for u in 0..users {
        let username = format!("bench-{u}");
        let v: serde_json::Value = http
            .post(format!("{base}/api/dev/login"))
            .json(&serde_json::json!({ "username": username }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cookies.push(v["data"]["session_cookie"].as_str().unwrap().to_string());
        names.push(username);
    }
    let v: serde_json::Value = http
        .post(format!("{base}/api/dev/chats"))
        .json(&serde_json::json!({ "participants": names }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = v["data"]["chat_id"].as_str().unwrap().to_string();
    Target {
        name,
        base,
        cookies,
        chat,
        database: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}

/// Open `sessions` sessions, `concurrency` at a time; then each sends one acknowledged
/// `clientJoinRoom`, `join_concurrency` in flight. Sessions/s, join p50, p99, max.
async fn round(
    target: &Target,
    sessions: usize,
    concurrency: usize,
    join_concurrency: usize,
    show_slowest: usize,
) -> (f64, f64, f64, f64) {
    let url = format!(
        "{}/ws/?EIO=4&transport=websocket",
        target.base.replacen("http", "ws", 1)
    );
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let mut request = url.as_str().into_client_request().unwrap();
        let cookie = &target.cookies[i % target.cookies.len()];
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await.ok()?;
            ws.next().await?.ok()?;
            ws.send(Message::text("40")).await.ok()?;
            loop {
                let frame = ws.next().await?.ok()?;
                if frame.to_text().ok()?.starts_with("40") {
                    break;
                }
            }
            drop(permit);
            Some(ws)
        }));
    }
    let mut open = Vec::with_capacity(sessions);
    for t in tasks {
        if let Ok(Some(ws)) = t.await {
            open.push(ws);
        }
    }
    let rate = open.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        open.len(),
        sessions,
        "{}: sessions failed to open",
        target.name
    );

    let join = format!(
        "421[\"clientJoinRoom\",{{\"chat_id\":\"{}\"}}]",
        target.chat
    );
    let gate = Arc::new(Semaphore::new(join_concurrency));
    let mut tasks = Vec::with_capacity(open.len());
    let joins_started = Instant::now();
    for mut ws in open {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let join = join.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let at = t0 - joins_started;
            ws.send(Message::text(join)).await.ok()?;
            loop {
                let frame = ws.next().await?.ok()?;
                let text = frame.to_text().ok()?;
                if text.starts_with("431") {
                    assert!(text.contains("\"ok\":true"), "join refused: {text}");
                    break;
                }
            }
            let took = t0.elapsed();
            drop(permit);
            let _ = ws.close(None).await;
            Some((took, at))
        }));
    }
    let mut timed = Vec::new();
    for t in tasks {
        if let Ok(Some(join)) = t.await {
            timed.push(join);
        }
    }
    timed.sort();
    if show_slowest > 0 {
        let slowest: Vec<String> = timed
            .iter()
            .rev()
            .take(show_slowest)
            .map(|(took, at)| {
                format!(
                    "{:.1} ms at +{:.0} ms",
                    took.as_secs_f64() * 1e3,
                    at.as_secs_f64() * 1e3
                )
            })
            .collect();
        println!("  {} slowest joins: {}", target.name, slowest.join(", "));
    }
    let joins: Vec<Duration> = timed.into_iter().map(|(took, _)| took).collect();
    (
        rate,
        percentile(&joins, 0.5),
        percentile(&joins, 0.99),
        percentile(&joins, 1.0),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = flag(&args, "--rounds", 4);
    let sessions = flag(&args, "--sessions", 3000);
    let concurrency = flag(&args, "--concurrency", 256);
    let users = flag(&args, "--users", 100);
    let join_concurrency = flag(&args, "--join-concurrency", 16);
    let show_slowest = flag(&args, "--show-slowest", 0);
    let pg_args = text_flag(&args, "--pg-args").unwrap_or_default();
    let baseline = text_flag(&args, "--baseline").map(std::path::PathBuf::from);
    let baseline_args = text_flag(&args, "--baseline-args").unwrap_or_default();
    let maintenance = std::env::var("SCMARKET_WS_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = |suffix: &str| {
        let db = format!("scmarket_ws_bench_{}_{suffix}", std::process::id());
        runtime.block_on(admin(&maintenance, &format!("CREATE DATABASE {db}")));
        let mut url = url::Url::parse(&maintenance).unwrap();
        url.set_path(&format!("/{db}"));
        (db, url.to_string())
    };

    let exe = exe();
    let mut servers = Vec::new();
    let mut databases = Vec::new();
    let (sqlite, sqlite_base) = start(&exe, "sqlite::memory:", &[]);
    servers.push(sqlite);
    let (db, url) = database("new");
    let mut extra = vec!["--init"];
    extra.extend(pg_args.split_whitespace());
    let (postgres, postgres_base) = start(&exe, &url, &extra);
    servers.push(postgres);
    databases.push(db.clone());
    let mut started = vec![
        ("sqlite", sqlite_base, None),
        ("postgres", postgres_base, Some(db)),
    ];
    if let Some(baseline) = &baseline {
        let (db, url) = database("baseline");
        let mut extra = vec!["--init"];
        extra.extend(baseline_args.split_whitespace());
        let (server, base) = start(baseline, &url, &extra);
        servers.push(server);
        databases.push(db.clone());
        started.push(("baseline", base, Some(db)));
    }
    runtime.block_on(async {
        let mut targets = Vec::new();
        for (name, base, database) in started {
            let mut target = prepare(name, base, users).await;
            target.database = database;
            targets.push(target);
        }
        println!(
            "store_admission: {sessions} sessions per round, {concurrency} at a time, {users} users; \
             joins {join_concurrency} in flight; postgres args {pg_args:?}{}; load average {}",
            match &baseline {
                Some(path) => format!(", baseline {} {baseline_args:?}", path.display()),
                None => String::new(),
            },
            load_average()
        );
        for target in &targets {
            if let Some(database) = &target.database {
                println!(
                    "before round 1 {:>8}: {} pool connections open (round 1 follows a fresh start)",
                    target.name,
                    pool_connections(&maintenance, database).await
                );
            }
        }
        for r in 1..=rounds {
            for target in &targets {
                let (rate, p50, p99, max) =
                    round(target, sessions, concurrency, join_concurrency, show_slowest).await;
                println!(
                    "round {r} {:>8}: {rate:>6.0} sessions/s admitted, join p50 {p50:.2} ms, \
                     p99 {p99:.2} ms, max {max:.2} ms",
                    target.name
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        println!("load average at the end: {}", load_average());
    });
    for server in &mut servers {
        let _ = server.kill();
        let _ = server.wait();
    }
    for db in databases {
        runtime.block_on(admin(
            &maintenance,
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        ));
    }
}
