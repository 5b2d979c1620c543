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

/// A TCP connection to the server from `source` (any 127.0.0.0/8 address is this machine).
async fn tcp_from(source: [u8; 4], server: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// Whether the server ends the connection within `wait` (EOF or reset on read).
async fn ended_within(stream: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_others_still_served() {
    use tokio::io::AsyncWriteExt;
    let server = start_dev_server_with(|c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
        c.limits.max_connections_per_ip = 1000;
    })
    .await;
    let addr = server.local_addr();
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;

    // Slowloris: 40 connections sending their request head a byte every 200 ms, 20 that send
    // nothing at all, and one that idles after a first request on a kept-alive connection.
    let mut trickling = Vec::new();
    for _ in 0..40 {
        trickling.push(tcp_from([127, 0, 0, 1], addr).await);
    }
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tcp_from([127, 0, 0, 1], addr).await);
    }
    let mut kept_alive = tcp_from([127, 0, 0, 1], addr).await;
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut closed = vec![false; trickling.len()];
        for byte in head.iter().cycle().take(20) {
            for (i, stream) in trickling.iter_mut().enumerate() {
                if !closed[i] && stream.write_all(&[*byte]).await.is_err() {
                    closed[i] = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // 4 s of trickling: every one must have been closed by now.
        let mut open = 0;
        for stream in trickling.iter_mut() {
            if !ended_within(stream, Duration::from_millis(100)).await {
                open += 1;
            }
        }
        open
    });

    // Meanwhile a legitimate client connects, joins and gets a message.
    let mut socket = RawSocket::connect(&base, Some(&cookie)).await.unwrap();
    let (status, _) = post_message(&base, &cookie, DIRECT_CHAT, "still served").await;
    assert_eq!(status, 200);
    let (event, data) = socket.next_event().await;
    assert_eq!(
        (event.as_str(), data["content"].as_str()),
        ("serverMessage", Some("still served"))
    );

    assert_eq!(
        trickle.await.unwrap(),
        0,
        "slow request heads still open after 4 s"
    );
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(
            ended_within(stream, Duration::from_secs(2)).await,
            "idle connection {i} still open"
        );
    }
    assert!(
        ended_within(&mut kept_alive, Duration::from_secs(3)).await,
        "an idle kept-alive connection was not closed"
    );
    // The websocket, upgraded, is the engine's business: it is still open.
    let (status, _) = post_message(&base, &cookie, DIRECT_CHAT, "after").await;
    assert_eq!(status, 200);
    assert_eq!(socket.next_event().await.1["content"], "after");
    let timed_out = metric(&base, "scmarket_ws_tcp_connections_timed_out_total").await;
    assert!(timed_out >= 61.0, "timed out: {timed_out}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ip_is_capped_and_another_still_served() {
    let server = start_dev_server_with(|c| c.limits.max_connections_per_ip = 30).await;
    let addr = server.local_addr();
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    // Let the login's kept-alive connection go.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 127.0.0.2 holds 30 idle connections: its 31st is closed at once.
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(tcp_from([127, 0, 0, 2], addr).await);
    }
    let mut over = tcp_from([127, 0, 0, 2], addr).await;
    assert!(
        ended_within(&mut over, Duration::from_secs(2)).await,
        "the connection over the per-IP cap was kept"
    );
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            !ended_within(stream, Duration::from_millis(10)).await,
            "held connection {i} was closed"
        );
    }
    // Another IP is served: a websocket session and a REST call.
    let mut socket = RawSocket::connect(&base, Some(&cookie)).await.unwrap();
    let (status, _) = post_message(&base, &cookie, DIRECT_CHAT, "other ip").await;
    assert_eq!(status, 200);
    assert_eq!(socket.next_event().await.1["content"], "other ip");
    let metrics = metrics_text(&base).await;
    assert!(
        metrics.contains(r#"scmarket_ws_tcp_connections_refused_total{reason="per_ip_cap"} 1"#),
        "{metrics}"
    );
    // A slot comes back when its connection closes.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = tcp_from([127, 0, 0, 2], addr).await;
    assert!(!ended_within(&mut again, Duration::from_millis(300)).await);
    server.shutdown().await;
}
