//! Interop: our client and commands against a real Node socket.io 4.8 server that behaves like
//! SC Market production (tests/node/mimic-server.js: cookie check in an engine middleware, path
//! /ws, join/leave without acknowledgements, REST route that broadcasts serverMessage).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use scmarket_ws::client::{
    ClientError, ConnectOptions, DisconnectReason, Session, SessionEvent, Transport,
};

const CHAT: &str = "11111111-1111-4111-8111-111111111111";
const BOB_SID: &str = "scmarket.sid=s%3Asid-bob.sig";

struct Mimic {
    child: Child,
    port: u16,
}

impl Mimic {
    fn start(extra: &[&str]) -> Mimic {
        let dir = common::ensure_node_modules();
        let mut child = std::process::Command::new("node")
            .arg(dir.join("mimic-server.js"))
            .args(["--port", "0", "--stdin-lifeline"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is on PATH");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the mimic server starts within 20 s");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the mimic server: {line:?}"));
        Mimic { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn post(&self, path: &str, body: Value, cookie: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.url()))
            .json(&body)
            .timeout(Duration::from_secs(10));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("mimic answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Mimic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bin() -> tokio::process::Command {
    common::binary::async_command()
}

async fn run(args: &[&str]) -> Out {
    let out = tokio::time::timeout(Duration::from_secs(30), bin().args(args).output())
        .await
        .expect("the command ends within 30 s")
        .expect("the binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn options(mimic: &Mimic, transport: Transport) -> ConnectOptions {
    let mut o = ConnectOptions::new(&mimic.url(), None).unwrap();
    o.add_cookies(BOB_SID).unwrap();
    o.transport = transport;
    o.timeout = Duration::from_secs(10);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_on_every_transport_and_each_refusal() {
    let mimic = Mimic::start(&["--allowed-origin", "https://sc-market.space"]);
    let url = mimic.url();
    for transport in ["websocket", "polling", "upgrade"] {
        let out = run(&[
            "connect",
            &url,
            "--cookie",
            BOB_SID,
            "--transport",
            transport,
            "--json",
        ])
        .await;
        assert_eq!(out.code, 0, "{transport}: {}", out.stderr);
        let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(report["transport"], transport);
        assert_eq!(report["ping_interval_ms"], 25000);
        assert_eq!(report["ping_timeout_ms"], 20000);
        assert_eq!(report["max_payload"], 1_000_000);
        // socket.io offers the websocket upgrade only to polling sessions.
        let upgrades = if transport == "websocket" {
            json!([])
        } else {
            json!(["websocket"])
        };
        assert_eq!(report["upgrades"], upgrades);
    }
    let out = run(&[
        "connect",
        &url,
        "--jwt",
        "jwt-alice",
        "--origin",
        "https://sc-market.space",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = run(&["connect", &url, "--transport", "polling"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"HTTP 400 ({"code":3,"message":"Bad request"})"#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("missing or expired cookie"),
        "{}",
        out.stderr
    );
    let out = run(&["connect", &url, "--jwt", "jwt-mallory"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = run(&[
        "connect",
        &url,
        "--cookie",
        BOB_SID,
        "--origin",
        "https://evil.example",
    ])
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    // socket.io answers a refused websocket upgrade with 400 and the reason in the body.
    assert!(
        out.stderr.contains("HTTP 400 (Forbidden)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--origin"), "{}", out.stderr);
    let out = run(&[
        "connect",
        &url,
        "--cookie",
        BOB_SID,
        "--origin",
        "https://evil.example",
        "--transport",
        "polling",
    ])
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 403"), "{}", out.stderr);
    // The auth payload reaches the server's namespace middleware, whose refusal is a CONNECT_ERROR.
    let out = run(&[
        "connect",
        &url,
        "--cookie",
        BOB_SID,
        "--auth",
        r#"{"refuse":true}"#,
    ])
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("CONNECT_ERROR") && out.stderr.contains("refused by auth middleware"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "connect",
        &url,
        "--cookie",
        BOB_SID,
        "--auth",
        r#"{"refuse":false}"#,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Extra headers go out with the handshake: here the cookie travels as a raw header.
    let out = run(&[
        "connect",
        &url,
        "--header",
        "Cookie: scmarket.access=jwt-carol",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["connect", &url, "--cookie", BOB_SID, "--path", "/socket.io"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--path"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_says_that_production_gives_no_confirmation() {
    let mimic = Mimic::start(&[]);
    let out = run(&[
        "join",
        &mimic.url(),
        "--cookie",
        BOB_SID,
        "--ack-wait",
        "300ms",
        CHAT,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("unconfirmed"), "{}", out.stdout);
    assert!(out.stdout.contains("no confirmation"), "{}", out.stdout);
    let out = run(&[
        "join",
        &mimic.url(),
        "--cookie",
        BOB_SID,
        "--ack-wait",
        "300ms",
        "--leave",
        "--json",
        CHAT,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["rooms"][0]["result"], "unconfirmed");
    assert_eq!(report["rooms"][0]["action"], "leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_shows_messages_binary_events_and_answers_server_acks() {
    let mimic = Mimic::start(&[]);
    let url = mimic.url();
    let mut child = bin()
        .args([
            "listen",
            &url,
            "--cookie",
            BOB_SID,
            "--json",
            "--count",
            "4",
            "--duration",
            "20s",
            "--ack-wait",
            "200ms",
            "--room",
            CHAT,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the room request to be out (its line on stderr) before sending anything.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut all = String::new();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("room")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    tokio::time::timeout(Duration::from_secs(15), rx)
        .await
        .unwrap()
        .unwrap();

    let (status, _) = mimic
        .post(
            &format!("/api/chats/{CHAT}/messages"),
            json!({"content": "hi bob"}),
            Some("scmarket.access=jwt-alice"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = mimic
        .post(
            "/test/emit",
            json!({"event": "fileShared", "args": [{"name": "a.bin"}], "binary": true}),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = mimic
        .post(
            "/test/ask",
            json!({"event": "areYouThere", "args": [1]}),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "the server's ack request was not answered: {answer}"
    );
    assert_eq!(
        answer["replies"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let (status, _) = mimic
        .post(
            "/test/emit",
            json!({"event": "somethingNew", "args": ["x"]}),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = reader.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0]["event"], "serverMessage");
    assert_eq!(events[0]["args"][0]["content"], "hi bob");
    assert_eq!(events[0]["args"][0]["author"], "alice");
    assert_eq!(events[1]["event"], "fileShared");
    assert_eq!(events[1]["args"][1]["_binary"], "AQIDBA==");
    assert_eq!(events[2]["event"], "areYouThere");
    assert_eq!(events[3]["event"], "somethingNew");
}

async fn wait_for(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = rx.recv().await {
            if line.contains(needle) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} line within 15 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reconnects_when_the_server_disconnects_it() {
    let mimic = Mimic::start(&[]);
    let url = mimic.url();
    let mut child = bin()
        .args([
            "listen",
            &url,
            "--cookie",
            BOB_SID,
            "--count",
            "1",
            "--duration",
            "20s",
            "--reconnect-delay",
            "50ms",
            "--transport",
            "polling",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    wait_for(&mut rx, "listening on").await;
    mimic.post("/test/disconnect-all", json!({}), None).await;
    wait_for(&mut rx, "reconnected").await;
    let (status, _) = mimic
        .post(
            &format!("/api/chats/{CHAT}/messages"),
            json!({"content": "back again"}),
            Some("scmarket.access=jwt-alice"),
        )
        .await;
    assert_eq!(status, 200);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = reader.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("connection lost (io server disconnect)"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("serverMessage 11111111 alice back again"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_acks_match_by_id_time_out_and_work_on_every_transport() {
    let mimic = Mimic::start(&[]);
    for transport in [Transport::Websocket, Transport::Polling, Transport::Upgrade] {
        let session = Session::connect(&options(&mimic, transport)).await.unwrap();
        let echoes = (0..5).map(|i| {
            session.emit_with_ack(
                "echo",
                vec![json!(i), json!({"n": i})],
                Duration::from_secs(5),
            )
        });
        let answers = futures_util::future::join_all(echoes).await;
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(
                answer.unwrap(),
                vec![json!(i), json!({"n": i})],
                "{transport}"
            );
        }
        // No handler answers this one: the ack times out on its own, and the session goes on.
        let started = std::time::Instant::now();
        let silent = session
            .emit_with_ack("nobodyListens", vec![], Duration::from_millis(200))
            .await;
        assert!(
            matches!(silent, Err(ClientError::AckTimeout(_))),
            "{silent:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let again = session
            .emit_with_ack("echo", vec![json!("still here")], Duration::from_secs(5))
            .await;
        assert_eq!(again.unwrap(), vec![json!("still here")]);
        session.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reports_pings_refusals_and_disconnect_reasons() {
    let mimic = Mimic::start(&["--ping-interval", "150", "--ping-timeout", "1000"]);
    let mut o = options(&mimic, Transport::Websocket);
    o.report_pings = true;
    let mut session = Session::connect(&o).await.unwrap();
    let info = session.info().clone();
    assert_eq!(info.handshake.ping_interval, 150);
    assert!(info.namespace_sid.is_some());
    assert!(info.namespace_connect >= info.engine_open);
    let mut pings = 0;
    while pings < 2 {
        match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
            Ok(Some(SessionEvent::Ping { .. })) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    let handle = session.handle().clone();
    handle.disconnect().await;
    let last = loop {
        match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
            Ok(Some(SessionEvent::Disconnected(reason))) => break reason,
            Ok(Some(_)) => continue,
            other => panic!("expected a disconnect, got {other:?}"),
        }
    };
    assert_eq!(last, DisconnectReason::ClientDisconnect);

    // The server ends the session: the reason says so.
    let mut session = Session::connect(&options(&mimic, Transport::Polling))
        .await
        .unwrap();
    mimic.post("/test/disconnect-all", json!({}), None).await;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
            Ok(Some(SessionEvent::Disconnected(reason))) => break reason,
            Ok(Some(_)) => continue,
            other => panic!("expected a disconnect, got {other:?}"),
        }
    };
    assert_eq!(reason, DisconnectReason::ServerDisconnect);

    for transport in [Transport::Websocket, Transport::Polling] {
        let mut o = ConnectOptions::new(&mimic.url(), None).unwrap();
        o.transport = transport;
        match Session::connect(&o).await {
            Err(ClientError::Refused { status: 400, .. }) => {}
            other => panic!("{transport}: expected a 400 refusal, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_pinging_ends_the_session_with_ping_timeout() {
    let mimic = Mimic::start(&["--ping-interval", "200", "--ping-timeout", "300"]);
    let mut session = Session::connect(&options(&mimic, Transport::Websocket))
        .await
        .unwrap();
    // Freeze the server: its TCP socket stays open, so only the missing pings can tell.
    let pid = mimic.child.id().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stop.success());
    let started = std::time::Instant::now();
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
            Ok(Some(SessionEvent::Disconnected(reason))) => break reason,
            Ok(Some(_)) => continue,
            other => break DisconnectReason::TransportError(format!("no disconnect: {other:?}")),
        }
    };
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert_eq!(reason, DisconnectReason::PingTimeout);
    // pingInterval + pingTimeout = 500 ms, measured from the last ping.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_attachments_arrive_as_base64_on_both_transports() {
    let mimic = Mimic::start(&[]);
    for transport in [Transport::Websocket, Transport::Polling] {
        let mut session = Session::connect(&options(&mimic, transport)).await.unwrap();
        let body = json!({"event": "file", "args": [{"name": "a"}], "binary": true});
        let (status, _) = mimic.post("/test/emit", body, None).await;
        assert_eq!(status, 200);
        let event = loop {
            match tokio::time::timeout(Duration::from_secs(5), session.next_event()).await {
                Ok(Some(SessionEvent::Event(e))) => break e,
                Ok(Some(_)) => continue,
                other => panic!("{transport}: expected an event, got {other:?}"),
            }
        };
        assert_eq!(event.name, "file");
        assert_eq!(
            event.args,
            vec![json!({"name": "a"}), json!({"_binary": "AQIDBA=="})],
            "{transport}"
        );
        session.disconnect().await;
    }
}
