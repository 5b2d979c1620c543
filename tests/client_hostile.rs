//! The client against hostile servers (`tests/common/hostile.rs`): what they send never costs
//! more memory than the caps allow, and the commands stay in control of their time.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::binary;
use common::hostile::{HostileServer, Misbehaviour};
use scmarket_ws::client::{ConnectOptions, DisconnectReason, Session, SessionEvent};

/// A polling answer longer than maxPayload ends the connect with a clear error at once, having
/// read no more than the cap (the server offers 200 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_answer_longer_than_max_payload_is_refused() {
    let server = HostileServer::start(Misbehaviour::HugePollingBody(200 << 20)).await;
    let started = Instant::now();
    let out = binary::async_command()
        .args([
            "connect",
            &server.url(),
            "--transport",
            "polling",
            "--timeout",
            "20s",
        ])
        .output()
        .await
        .expect("connect runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("more than 1000000 bytes"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A websocket message longer than maxPayload (2 MB against 1,000,000) ends the session with
/// that reason; the message is never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_longer_than_max_payload_ends_the_session() {
    let server = HostileServer::start(Misbehaviour::OversizedMessage(2_000_000)).await;
    let options = ConnectOptions::new(&server.url(), None).unwrap();
    let mut session = Session::connect(&options)
        .await
        .expect("the connect is proper");
    let event = tokio::time::timeout(Duration::from_secs(10), session.next_event())
        .await
        .expect("something happens within 10 s");
    match event {
        Some(SessionEvent::Disconnected(DisconnectReason::TooLarge(cap))) => {
            assert_eq!(cap, 1_000_000)
        }
        Some(SessionEvent::Event(e)) => panic!("the oversized {} was delivered", e.name),
        other => panic!("expected the session to end for the size, got {other:?}"),
    }
    // A client that allows less than the server announced applies its own cap.
    let server = HostileServer::start(Misbehaviour::OversizedMessage(5_000)).await;
    let mut options = ConnectOptions::new(&server.url(), None).unwrap();
    options.max_payload = Some(1000);
    let mut session = Session::connect(&options)
        .await
        .expect("the connect is proper");
    let event = tokio::time::timeout(Duration::from_secs(10), session.next_event())
        .await
        .expect("something happens within 10 s");
    assert!(
        matches!(
            event,
            Some(SessionEvent::Disconnected(DisconnectReason::TooLarge(_)))
        ),
        "{event:?}"
    );
}

/// `listen` against a server that floods events, with a stdout nobody reads: it still ends at
/// --duration, having dropped (and counted) what stdout could not take instead of queueing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_ends_on_time_when_stdout_is_blocked() {
    let server = HostileServer::start(Misbehaviour::Flood(1000)).await;
    let mut child = binary::async_command()
        .args(["listen", &server.url(), "--duration", "2s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen starts");
    // stdout is kept open and never read: the pipe fills after 64 KiB.
    let _stdout = child.stdout.take();
    let mut stderr = child.stderr.take().unwrap();
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("listen ends within 10 s of a 2 s --duration")
        .expect("listen runs");
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
        .await
        .unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains("dropped (stdout did not keep up)"), "{text}");
}

/// Against a server that accepts and drops every session at once, `listen` waits longer after
/// each drop (the delay starts again only after a session stayed up), instead of reconnecting
/// every --reconnect-delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_back_off_when_sessions_do_not_stay_up() {
    let server = HostileServer::start(Misbehaviour::DropAfterConnect).await;
    let out = binary::async_command()
        .args(["listen", &server.url(), "--duration", "4s"])
        .args(["--reconnect-delay", "100ms", "--reconnect-max-delay", "2s"])
        .output()
        .await
        .expect("listen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("listen: "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let reconnects: u64 = summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" reconnects"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    // Delays of about 100, 200, 400, 800, 1600 ms fit 4 s about five times; a delay that
    // starts again at each connect fits some 40.
    assert!((2..=8).contains(&reconnects), "{summary}");
}
