//! `serve` against clients that misbehave on purpose, over real sockets: sessions that vanish
//! mid-handshake, slow and idle connections, consumers that stop reading.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::raw::RawSocket;
use common::*;
use scmarket_ws::server::RunningServer;
use tokio::io::AsyncBufReadExt;

const ALICE_ID: &str = "5c000000-0000-4000-8000-000000000001";

/// The value of an unlabelled metric in `/metrics`.
async fn metric(base: &str, name: &str) -> f64 {
    let text = metrics_text(base).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// Wait until the server holds no socket, then check that every count agrees: the per-user
/// count of the cap, `connections_active` and `users_connected`.
async fn assert_nothing_counted(server: &RunningServer, why: &str) {
    let base = server.http_url();
    let alice = uuid::Uuid::parse_str(ALICE_ID).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let sockets = server.socket_count();
        let counted = server.app().limits.open_sockets(alice);
        let active = metric(&base, "scmarket_ws_connections_active").await;
        let users = metric(&base, "scmarket_ws_users_connected").await;
        if sockets == 0 && counted == 0 && active == 0.0 && users == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: {sockets} sockets open, but alice counted {counted}, \
             connections_active {active}, users_connected {users}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server as `serve` runs it (several worker threads, so a closing engine and a connecting
/// namespace really race), with no handshake rate (one IP opens hundreds of sessions) and
/// short pings, so a polling session whose client vanished is closed within a second.
async fn racing_server() -> RunningServer {
    start_dev_server_with(|c| {
        c.limits.handshake_rate = 0;
        c.engine.ping_interval = Duration::from_millis(300);
        c.engine.ping_timeout = Duration::from_millis(300);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_vanish_after_connect_are_not_counted() {
    let server = racing_server().await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    // 300 sessions, 8 at a time (under the cap of 32), each gone right after its CONNECT.
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..300 {
        if batch.len() >= 8 {
            batch.join_next().await;
        }
        let (base, cookie) = (base.clone(), cookie.clone());
        batch.spawn(async move {
            if let Ok(socket) = RawSocket::open_engine(&base, "/ws", Some(&cookie), &[]).await {
                socket.send_and_vanish("40").await;
            }
        });
    }
    while batch.join_next().await.is_some() {}
    assert_nothing_counted(&server, "raw sessions gone after CONNECT").await;

    // And the cap still lets alice open her 32 sockets.
    let mut open = Vec::new();
    for i in 0..32 {
        let socket = RawSocket::connect(&base, Some(&cookie))
            .await
            .unwrap_or_else(|e| panic!("socket {i} of 32 refused: {e:?}"));
        open.push(socket);
    }
    assert_eq!(
        server
            .app()
            .limits
            .open_sockets(uuid::Uuid::parse_str(ALICE_ID).unwrap()),
        32
    );
    drop(open);
    assert_nothing_counted(&server, "after closing 32 sockets").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_closing_right_after_open_is_not_counted() {
    let dir = ensure_node_modules();
    let server = racing_server().await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    for transport in ["websocket", "polling"] {
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("connect-and-close.js"))
            .args([&base, &cookie, "200", "8", transport])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
            .await
            .expect("connect-and-close.js finishes within 40 s")
            .unwrap()
            .expect("a summary line");
        let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            summary["opened"].as_u64().unwrap() > 150,
            "{transport}: most sessions opened: {summary}"
        );
        let _ = child.wait().await;
        assert_nothing_counted(&server, &format!("socket.io-client over {transport}")).await;
    }
    server.shutdown().await;
}

const DIRECT_CHAT: &str = "5c0000c4-0000-4000-8000-000000000003";

/// The `serverMessage` contents a socket reads until the server ends its session (a namespace
/// DISCONNECT or the connection's end), or until `quiet` passes without a packet.
async fn read_messages(socket: &mut RawSocket, quiet: Duration) -> (Vec<String>, bool) {
    let mut contents = Vec::new();
    loop {
        match socket.packet_or_end(quiet).await {
            Ok(None) => return (contents, false),
            Err(()) => return (contents, true),
            Ok(Some(packet)) if packet.starts_with("41") => return (contents, true),
            Ok(Some(packet)) => {
                if let Some(args) = packet.strip_prefix("42") {
                    let args: serde_json::Value = serde_json::from_str(args).unwrap();
                    if args[0] == "serverMessage" {
                        contents.push(args[1]["content"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_is_disconnected_never_silently_skipped() {
    let server = start_dev_server_with(|c| {
        c.engine.socket_buffer = 32;
        // No heartbeat during the test: the stalled client answers no ping.
        c.engine.ping_interval = Duration::from_secs(120);
    })
    .await;
    let base = server.http_url();
    let alice = session_cookie(&base, "alice").await;
    let bob = session_cookie(&base, "bob").await;
    // Bob stops reading; alice reads everything. Both are in the direct chat from connect.
    let mut stalled = RawSocket::connect_small_window(&base, &bob, 4096).await;
    let mut reader = RawSocket::connect(&base, Some(&alice)).await.unwrap();
    let reading = tokio::spawn(async move {
        let (contents, ended) = read_messages(&mut reader, Duration::from_secs(3)).await;
        assert!(!ended, "the reading socket was disconnected");
        contents
    });
    // 4 kB each (1000 four-byte characters): 6 MB in all, more than the kernel's socket
    // buffers (up to 4 MB for the server's side) and the server's 32 packets hold for bob.
    let sent = 1500;
    let http = reqwest::Client::new();
    for i in 0..sent {
        let content = format!("{i:04} {}", "😀".repeat(995));
        let response = http
            .post(format!("{base}/api/chats/{DIRECT_CHAT}/messages"))
            .header("cookie", &alice)
            .json(&serde_json::json!({ "content": content }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let numbers = |contents: Vec<String>| -> Vec<usize> {
        contents
            .iter()
            .map(|c| c[..4].parse().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        numbers(reading.await.unwrap()),
        (0..sent).collect::<Vec<_>>(),
        "the reading socket got every message in order"
    );

    let (contents, ended) = read_messages(&mut stalled, Duration::from_secs(5)).await;
    let got = numbers(contents);
    assert!(
        got.len() < sent,
        "the stalled socket was expected to fall behind; it got all {sent}"
    );
    assert_eq!(
        got,
        (0..got.len()).collect::<Vec<_>>(),
        "what the stalled socket got is the start of the stream, without a gap"
    );
    assert!(
        ended,
        "the stalled socket missed {} messages and was not disconnected",
        sent - got.len()
    );
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.contains(r#"scmarket_ws_disconnects_total{reason="slow_consumer"} 1"#),
        "{metrics}"
    );
    server.shutdown().await;
}
