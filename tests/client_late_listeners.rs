//! The client commands against a server that listens late and never acknowledges, as SC Market
//! production does: the production twin (`tests/node/production-server.js`) with its defaults,
//! whose connection handler awaits a lookup of 5-50 ms before it registers its room listeners
//! (`late-listeners`) and never answers a room request (`swallowed-errors`). Erin reaches the
//! order chat only by joining it: she is a member of its contractor, not a participant, so the
//! twin does not put her socket in its room at connect.

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use common::twin::ProductionTwin;
use common::{ORDER_CHAT, binary, dev_login, post_message};
use scmarket_ws::client::rooms::{self, Resend, RoomAction, RoomOutcome};
use scmarket_ws::client::{ConnectOptions, Session, SessionEvent};

/// Post to the order chat as alice every 100 ms until `done` resolves (or 15 s pass).
async fn post_until<F: std::future::Future>(base: &str, done: F) -> F::Output {
    let alice = dev_login(base, "alice").await.session_cookie;
    tokio::pin!(done);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        tokio::select! {
            out = &mut done => return out,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                assert!(tokio::time::Instant::now() < give_up, "still waiting after 15 s");
                n += 1;
                let (status, _) = post_message(base, &alice, ORDER_CHAT, &format!("late-listeners post {n}")).await;
                assert_eq!(status, 200, "alice posts to the order chat");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_room_receives_in_every_run() {
    let twin = ProductionTwin::start(&[]);
    let base = twin.url();
    let erin = dev_login(&base, "erin").await.session_cookie;
    const RUNS: usize = 20;
    let runs = (0..RUNS).map(|_| {
        let mut listen = binary::async_command();
        listen
            .args(["listen", &base, "--room", ORDER_CHAT, "--cookie", &erin])
            .args(["--count", "1", "--duration", "10s", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        async move { listen.output().await.expect("listen runs") }
    });
    let outputs = post_until(&base, futures_util::future::join_all(runs)).await;
    let received = outputs.iter().filter(|o| o.status.success()).count();
    for o in outputs.iter().filter(|o| !o.status.success()) {
        eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        received, RUNS,
        "listen --room received in {received} of {RUNS} runs"
    );
    for o in &outputs {
        let line: Value = serde_json::from_slice(&o.stdout).expect("one NDJSON line");
        assert_eq!(line["event"], "serverMessage");
        assert_eq!(line["args"][0]["chat_id"], ORDER_CHAT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_right_after_connect_lands_and_a_post_delivers() {
    let twin = ProductionTwin::start(&[]);
    let base = twin.url();
    let mut options = ConnectOptions::new(&base, None).unwrap();
    options
        .add_cookies(&dev_login(&base, "erin").await.session_cookie)
        .unwrap();
    let mut session = Session::connect(&options).await.expect("erin connects");
    let landing = rooms::land(
        session.handle(),
        RoomAction::Join,
        ORDER_CHAT,
        &Resend::default(),
        Duration::from_millis(100),
    )
    .await
    .expect("the joins are sent");
    assert_eq!(landing.outcome, RoomOutcome::Unconfirmed);
    // Eight on time; a loaded machine that wakes late sends one for several due offsets.
    assert!((4..=8).contains(&landing.sends), "{landing:?}");
    let alice = dev_login(&base, "alice").await.session_cookie;
    let (status, _) = post_message(&base, &alice, ORDER_CHAT, "after the join").await;
    assert_eq!(status, 200);
    let event = tokio::time::timeout(Duration::from_secs(5), session.next_event())
        .await
        .expect("the message arrives within 5 s");
    let Some(SessionEvent::Event(e)) = event else {
        panic!("expected the message, got {event:?}")
    };
    assert_eq!(e.args[0]["content"], "after the join");
}

#[test]
fn join_says_how_often_it_sent_and_that_nothing_confirms() {
    let twin = ProductionTwin::start(&[]);
    let base = twin.url();
    let out = binary::command()
        .args([
            "join",
            &base,
            ORDER_CHAT,
            "--login",
            "erin",
            "--ack-wait",
            "200ms",
        ])
        .output()
        .expect("join runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sends: usize = stdout
        .strip_prefix(&format!("unconfirmed {ORDER_CHAT}  (sent "))
        .and_then(|rest| rest.split_once(" times; the server gives no confirmation)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    // Eight on time; a loaded machine that wakes late sends one for several due offsets.
    assert!((4..=8).contains(&sends), "{stdout}");
    let out = binary::command()
        .args(["join", &base, ORDER_CHAT, "--login", "erin", "--json"])
        .args(["--ack-wait", "100ms", "--resend-until", "100ms"])
        .output()
        .expect("join runs");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["rooms"][0]["result"], "unconfirmed");
    let sends = report["rooms"][0]["sends"].as_u64().unwrap();
    assert!(
        (2..=4).contains(&sends),
        "at 0, 25, 50 and 100 ms: {report}"
    );
}

async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> String {
    while let Some(line) = lines.next_line().await.expect("stderr") {
        if line.contains(needle) {
            return line;
        }
    }
    panic!("listen ended before printing {needle:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_listen_rejoins_and_receives() {
    let mut twin = ProductionTwin::start(&[]);
    let base = twin.url();
    let mut listen = binary::async_command();
    listen
        .args(["listen", &base, "--room", ORDER_CHAT, "--login", "erin"])
        .args(["--count", "1", "--duration", "20s", "--json"])
        .args([
            "--reconnect-delay",
            "100ms",
            "--reconnect-max-delay",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = listen.spawn().expect("listen starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(
        Duration::from_secs(10),
        line_with(&mut stderr, "listening on"),
    )
    .await
    .expect("listen connects");
    twin.restart();
    tokio::time::timeout(
        Duration::from_secs(10),
        line_with(&mut stderr, "reconnected"),
    )
    .await
    .expect("listen reconnects");
    // The rest of stderr is read meanwhile, so listen never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let status = post_until(&base, child.wait()).await.expect("listen ends");
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout)
        .await
        .unwrap();
    assert!(status.success(), "listen: {status}; stdout {stdout}");
    let line: Value = serde_json::from_str(stdout.trim()).expect("one NDJSON line");
    assert_eq!(line["args"][0]["chat_id"], ORDER_CHAT);
}

/// An upper-case chat id is sent as typed, so QA sees production's `case-sensitive-rooms`: the
/// twin joins a room of that name, which never receives, and `listen` warns why.
/// `--normalize-ids` sends it lower-cased, and the message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_case_id_reproduces_case_sensitive_rooms() {
    let twin = ProductionTwin::start(&[]);
    let base = twin.url();
    let erin = dev_login(&base, "erin").await.session_cookie;
    let upper = ORDER_CHAT.to_uppercase();
    let listen = |extra: &'static [&'static str]| {
        let mut listen = binary::async_command();
        listen
            .args(["listen", &base, "--room", &upper, "--cookie", &erin])
            .args(["--count", "1", "--duration", "3s"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        async move { listen.output().await.expect("listen runs") }
    };
    let (as_typed, normalized) = post_until(
        &base,
        futures_util::future::join(listen(&[]), listen(&["--normalize-ids"])),
    )
    .await;
    let stderr = String::from_utf8_lossy(&as_typed.stderr);
    assert_eq!(as_typed.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("is not lower-case"), "{stderr}");
    assert!(
        normalized.status.success(),
        "{}",
        String::from_utf8_lossy(&normalized.stderr)
    );
}
