//! `connect`, `join` and `listen` as a user runs them, against the reference server in-process
//! over real loopback sockets: exit codes, human and JSON output, both cookie kinds, reconnect.

mod common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use common::{DIRECT_CHAT, GROUP_CHAT, OFFER_CHAT, ORDER_CHAT};

const MISSING_CHAT: &str = "5c0000c4-0000-4000-8000-0000000000ff";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bin() -> Command {
    common::binary::async_command()
}

async fn run_with(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = bin();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .expect("the command ends within 30 s")
        .expect("the binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(args: &[&str]) -> Out {
    run_with(args, &[]).await
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The value of a `NAME=VALUE` cookie string.
fn cookie_value(cookie: &str) -> &str {
    cookie.split_once('=').map(|(_, v)| v).unwrap_or(cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_the_handshake_on_every_transport() {
    let server = common::start_dev_server().await;
    let url = server.http_url();

    let out = run(&["connect", &url, "--login", "alice"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "engine sid",
        "ping               every 25000 ms, timeout 20000 ms",
        "max payload        1000000 bytes",
        "engine open",
        "namespace connect",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in {}", out.stdout);
    }

    for transport in ["websocket", "polling", "upgrade"] {
        let out = run(&[
            "connect",
            &url,
            "--login",
            "bob",
            "--transport",
            transport,
            "--json",
        ])
        .await;
        assert_eq!(out.code, 0, "{transport}: {}", out.stderr);
        let report = &json_lines(&out.stdout)[0];
        assert_eq!(report["transport"], transport);
        assert_eq!(report["ping_interval_ms"], 25000);
        assert_eq!(report["max_payload"], 1_000_000);
        assert!(report["sid"].as_str().is_some_and(|s| !s.is_empty()));
        let open = report["engine_open_ms"].as_f64().unwrap();
        let ns = report["namespace_connect_ms"].as_f64().unwrap();
        assert!(open > 0.0 && ns >= open, "{report}");
        if transport == "upgrade" {
            assert!(report["upgrade_ms"].as_f64().is_some(), "{report}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_cookie_kinds_authenticate_and_stay_secret() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let login = common::dev_login(&url, "carol").await;
    let jwt = cookie_value(&login.access_cookie).to_string();

    let by_sid = run(&["-v", "connect", &url, "--cookie", &login.session_cookie]).await;
    assert_eq!(by_sid.code, 0, "{}", by_sid.stderr);
    let by_jwt = run(&["-v", "connect", &url, "--jwt", &jwt, "--json"]).await;
    assert_eq!(by_jwt.code, 0, "{}", by_jwt.stderr);
    let by_env = run_with(
        &["connect", &url, "--transport", "polling"],
        &[("SCMARKET_WS_COOKIE", &login.session_cookie)],
    )
    .await;
    assert_eq!(by_env.code, 0, "{}", by_env.stderr);
    let by_env_jwt = run_with(&["connect", &url], &[("SCMARKET_WS_JWT", &jwt)]).await;
    assert_eq!(by_env_jwt.code, 0, "{}", by_env_jwt.stderr);
    let by_login = run(&["-vv", "connect", &url, "--login", "carol"]).await;
    assert_eq!(by_login.code, 0, "{}", by_login.stderr);
    let by_upgrade = run_with(
        &["-vv", "connect", &url, "--transport", "upgrade"],
        &[("SCMARKET_WS_JWT", &jwt)],
    )
    .await;
    assert_eq!(by_upgrade.code, 0, "{}", by_upgrade.stderr);

    let sid = cookie_value(&login.session_cookie);
    for out in [
        &by_sid,
        &by_jwt,
        &by_env,
        &by_env_jwt,
        &by_login,
        &by_upgrade,
    ] {
        for secret in [sid, jwt.as_str()] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "a secret was printed:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_exit_code_and_advice() {
    let server = common::start_dev_server().await;
    let url = server.http_url();

    // 2: bad usage.
    let out = run(&["connect", "localhost:7000"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(&["connect", &url, "--cookie", "novalue"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("NAME=VALUE"), "{}", out.stderr);
    let out = run(&["connect", &url, "--auth", "{not json"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(&["join", &url, "not-a-chat", "--login", "alice"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // 3: refused handshakes, on both transports, and a banned user's login.
    for transport in ["websocket", "polling"] {
        let out = run(&["connect", &url, "--transport", transport]).await;
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(
            out.stderr.contains("HTTP 400") && out.stderr.contains("missing or expired cookie"),
            "{}",
            out.stderr
        );
    }
    let out = run(&["connect", &url, "--cookie", "scmarket.sid=s%3Aforged.sig"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = run(&[
        "connect",
        &url,
        "--login",
        "alice",
        "--origin",
        "https://evil.example",
    ])
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("HTTP 403") && out.stderr.contains("--origin"),
        "{}",
        out.stderr
    );
    let out = run(&["connect", &url, "--login", "dave"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);

    // 4: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = run(&["connect", &closed_url, "--jwt", "x"]).await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);

    // 4: TLS spoken to a plain HTTP server, on both transports.
    let tls_url = url.replace("http://", "https://");
    for transport in ["websocket", "polling"] {
        let out = run(&["connect", &tls_url, "--jwt", "x", "--transport", transport]).await;
        assert_eq!(out.code, 4, "{}", out.stderr);
        assert!(out.stderr.contains("TLS failed"), "{}", out.stderr);
    }

    // 5: a peer that accepts TCP and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let out = run(&["connect", &silent_url, "--jwt", "x", "--timeout", "300ms"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    holder.abort();

    // 1: a refused room, and a handshake over the server's limits (HTTP 429, not a refusal of
    // the credentials).
    let limited = common::start_dev_server_with(|c| {
        (c.limits.handshake_rate, c.limits.handshake_burst) = (1, 1)
    })
    .await;
    let limited_url = limited.http_url();
    let jwt_cookie = common::dev_login(&limited_url, "bob").await.access_cookie;
    let mut last = run(&["connect", &limited_url, "--cookie", &jwt_cookie]).await;
    for _ in 0..3 {
        if last.code != 0 {
            break;
        }
        last = run(&["connect", &limited_url, "--cookie", &jwt_cookie]).await;
    }
    assert_eq!(last.code, 1, "{}", last.stderr);
    assert!(
        last.stderr.contains("HTTP 429") && last.stderr.contains("--handshake-rate"),
        "{}",
        last.stderr
    );
    limited.shutdown().await;

    let out = run(&["join", &url, "--login", "alice", OFFER_CHAT]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_reports_each_room_with_the_reason() {
    let server = common::start_dev_server().await;
    let url = server.http_url();

    let out = run(&[
        "join",
        &url,
        "--login",
        "alice",
        ORDER_CHAT,
        OFFER_CHAT,
        MISSING_CHAT,
    ])
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("joined") && lines[0].contains(ORDER_CHAT),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("refused") && lines[1].ends_with("not_authorized"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].starts_with("refused") && lines[2].ends_with("chat_not_found"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("refused 2 of 3"), "{}", out.stderr);

    let out = run(&[
        "join",
        &url,
        "--login",
        "bob",
        "--json",
        DIRECT_CHAT,
        GROUP_CHAT,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = &json_lines(&out.stdout)[0];
    assert_eq!(report["rooms"][0]["result"], "joined");
    assert_eq!(report["rooms"][1]["chat_id"], GROUP_CHAT);

    let out = run(&["join", &url, "--login", "bob", "--leave", DIRECT_CHAT]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("left"), "{}", out.stdout);

    // An upper-case id is sent as typed (serve joins the same room; production would not),
    // with a warning; --normalize-ids sends it lower-cased, without one.
    let upper = ORDER_CHAT.to_uppercase();
    let out = run(&["join", &url, "--login", "alice", "--json", &upper]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(json_lines(&out.stdout)[0]["rooms"][0]["chat_id"], upper);
    assert_eq!(json_lines(&out.stdout)[0]["rooms"][0]["result"], "joined");
    assert!(
        out.stderr.contains("is not lower-case") && out.stderr.contains("--normalize-ids"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "join",
        &url,
        "--login",
        "alice",
        "--json",
        "--normalize-ids",
        &upper,
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        json_lines(&out.stdout)[0]["rooms"][0]["chat_id"],
        ORDER_CHAT
    );
    assert!(!out.stderr.contains("lower-case"), "{}", out.stderr);
    server.shutdown().await;
}

/// Start `listen` in the background and wait until it is connected (its first stderr line).
/// Stop `server`, start a fresh one (new in-memory store) on the same address, and wait up to
/// 15 s for a client to come back to it (its rejoin shows on the server as a socket).
async fn restart_and_wait_for_a_socket(
    server: scmarket_ws::server::RunningServer,
    addr: std::net::SocketAddr,
) -> scmarket_ws::server::RunningServer {
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut config = scmarket_ws::server::Config::ephemeral_dev();
    config.listen = addr;
    let server = scmarket_ws::server::start(config)
        .await
        .expect("a second server starts on the same port");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while server.socket_count() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

async fn spawn_listen(args: &[&str]) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut child = bin()
        .arg("listen")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen starts");
    let stderr = child.stderr.take().unwrap();
    let with_rooms = args.contains(&"--room");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = String::new();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
            // Rooms are joined once their line is out; the first line alone is enough otherwise.
            let ready = line.contains("listening on") && !with_rooms
                || line.contains("joined room")
                || line.contains("error");
            if ready && let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        }
        all
    });
    tokio::time::timeout(Duration::from_secs(15), rx)
        .await
        .expect("listen connects within 15 s")
        .expect("listen printed its first line");
    (child, reader)
}

async fn finish(child: tokio::process::Child, reader: tokio::task::JoinHandle<String>) -> Out {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("listen ends within 30 s")
        .expect("listen output");
    let stderr = reader.await.unwrap_or_default();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_messages_as_text_and_ndjson() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let alice = common::session_cookie(&url, "alice").await;

    let (text, text_err) =
        spawn_listen(&[&url, "--login", "bob", "--count", "2", "--duration", "20s"]).await;
    let (json, json_err) = spawn_listen(&[
        &url,
        "--login",
        "bob",
        "--json",
        "--count",
        "2",
        "--duration",
        "20s",
    ])
    .await;
    let long = "x".repeat(900);
    let (status, _) = common::post_message(&url, &alice, ORDER_CHAT, "hello bob").await;
    assert_eq!(status, 200);
    let (status, _) = common::post_message(&url, &alice, DIRECT_CHAT, &long).await;
    assert_eq!(status, 200);

    let out = finish(text, text_err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].contains("serverMessage 5c0000c4 alice hello bob"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].ends_with('…') && lines[1].len() < 400,
        "{}",
        lines[1]
    );
    assert!(out.stderr.contains("listen: 2 events"), "{}", out.stderr);

    let out = finish(json, json_err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events = json_lines(&out.stdout);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "serverMessage");
    assert_eq!(events[0]["args"][0]["chat_id"], ORDER_CHAT);
    assert_eq!(events[0]["args"][0]["author"], "alice");
    assert_eq!(events[1]["args"][0]["content"], long.as_str());
    let at = events[0]["received_at"].as_str().unwrap();
    assert!(
        scmarket_ws::protocol::WireTimestamp::parse(at).is_ok(),
        "{at}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_exits_5_when_the_count_is_not_reached_and_filters_events() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let out = run(&[
        "listen",
        &url,
        "--login",
        "bob",
        "--count",
        "1",
        "--duration",
        "500ms",
    ])
    .await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("only 0 of the 1"), "{}", out.stderr);

    let alice = common::session_cookie(&url, "alice").await;
    let (child, err) = spawn_listen(&[
        &url,
        "--login",
        "bob",
        "--event",
        "somethingElse",
        "--duration",
        "1500ms",
    ])
    .await;
    common::post_message(&url, &alice, ORDER_CHAT, "filtered out").await;
    let out = finish(child, err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("1 skipped by --event"),
        "{}",
        out.stderr
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reconnects_after_a_restart_and_rejoins_its_rooms() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let addr = server.local_addr();
    // The JWT survives a restart of an in-memory server (fixed dev secret and demo ids); the
    // session row behind the sid cookie does not.
    let admin = common::dev_login(&url, "admin").await;
    let jwt = cookie_value(&admin.access_cookie).to_string();
    // admin takes part in no chat: it hears the order chat only because it joined the room, so a
    // message after the restart proves the rejoin.
    let (child, err) = spawn_listen(&[
        &url,
        "--jwt",
        &jwt,
        "--room",
        ORDER_CHAT,
        "--json",
        "--count",
        "1",
        "--duration",
        "25s",
        "--reconnect-delay",
        "100ms",
        "--reconnect-max-delay",
        "400ms",
    ])
    .await;
    let server = restart_and_wait_for_a_socket(server, addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alice = common::session_cookie(&url, "alice").await;
    let (status, _) = common::post_message(&url, &alice, ORDER_CHAT, "after restart").await;
    assert_eq!(status, 200);
    let out = finish(child, err).await;
    assert!(out.stderr.contains("connection lost"), "{}", out.stderr);
    assert!(out.stderr.contains("reconnected"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("rejoined room {ORDER_CHAT}")),
        "{}",
        out.stderr
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        json_lines(&out.stdout)[0]["args"][0]["content"],
        "after restart"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_without_reconnect_exits_1_when_the_server_goes() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let (child, err) = spawn_listen(&[
        &url,
        "--login",
        "bob",
        "--no-reconnect",
        "--duration",
        "20s",
    ])
    .await;
    server.shutdown().await;
    let out = finish(child, err).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("connection lost"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_hold_ends_with_a_reason() {
    let server =
        common::start_dev_server_with(|c| c.engine.ping_interval = Duration::from_millis(200))
            .await;
    let url = server.http_url();
    let out = run(&[
        "connect", &url, "--login", "bob", "--hold", "700ms", "--json",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[0]["type"], "connected");
    assert_eq!(lines[0]["ping_interval_ms"], 200);
    let pings = lines.iter().filter(|l| l["type"] == "ping").count();
    assert!(pings >= 2, "{}", out.stdout);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "disconnect");
    assert_eq!(last["reason"], "io client disconnect");

    let (child, err) = {
        let mut c = bin();
        c.args(["connect", &url, "--login", "bob", "--hold", "20s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        (child, tokio::spawn(async { String::new() }))
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.shutdown().await;
    let out = finish(child, err).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("disconnect"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_ends_cleanly_on_ctrl_c_with_a_summary() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let (child, err) = spawn_listen(&[&url, "--login", "bob"]).await;
    let pid = child.id().expect("listen is running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = finish(child, err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("listen: 0 events, 0 reconnects"),
        "{}",
        out.stderr
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_ends_quietly_when_its_reader_goes_away() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let alice = common::session_cookie(&url, "alice").await;
    let (mut child, err) = spawn_listen(&[&url, "--login", "bob", "--json"]).await;
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    common::post_message(&url, &alice, ORDER_CHAT, "first").await;
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the first event within 10 s")
        .unwrap()
        .unwrap();
    assert!(first.contains("first"), "{first}");
    // Like `listen | head -1`: the reader is gone before the next event.
    drop(lines);
    common::post_message(&url, &alice, ORDER_CHAT, "second").await;
    let out = finish(child, err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_with_login_logs_in_again_when_a_restart_voids_its_cookies() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let addr = server.local_addr();
    // zed is created by the dev login with a random id: after a restart of an in-memory server
    // neither the session row nor the JWT's subject exists any more.
    let (child, err) = spawn_listen(&[
        &url,
        "--login",
        "zed",
        "--reconnect-delay",
        "100ms",
        "--reconnect-max-delay",
        "300ms",
    ])
    .await;
    let server = restart_and_wait_for_a_socket(server, addr).await;
    assert_eq!(server.socket_count(), 1, "listen did not come back");
    let pid = child.id().expect("listen is running").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    let out = finish(child, err).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 400"), "{}", out.stderr);
    assert!(
        out.stderr.contains("logged in again as zed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("reconnected"), "{}", out.stderr);
    server.shutdown().await;
}

/// With `--json`, every failure is one JSON document on stdout (an NDJSON line for `listen`):
/// its class, the HTTP status where there was one, the message, the hint and the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_with_json_is_a_json_document_on_stdout() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cases: Vec<(Vec<&str>, i32, &str, Option<u16>)> = vec![
        (vec!["connect", &url, "--json"], 3, "refused", Some(400)),
        (
            vec!["connect", &url, "--json", "--path", "/nope"],
            1,
            "failure",
            Some(404),
        ),
        (
            vec!["join", &unreachable, DIRECT_CHAT, "--json"],
            4,
            "unreachable",
            None,
        ),
        (vec!["join", &url, "not-a-uuid", "--json"], 2, "usage", None),
        (
            vec![
                "listen",
                &url,
                "--login",
                "bob",
                "--json",
                "--count",
                "1",
                "--duration",
                "300ms",
            ],
            5,
            "timeout",
            None,
        ),
        (
            vec!["connect", &url, "--json", "--no-such-flag"],
            2,
            "usage",
            None,
        ),
    ];
    for (args, code, class, status) in cases {
        let out = run(&args).await;
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        let lines = json_lines(&out.stdout);
        let doc = lines
            .last()
            .unwrap_or_else(|| panic!("{args:?}: nothing on stdout"));
        assert_eq!(doc["type"], "error", "{args:?}: {doc}");
        assert_eq!(doc["error"]["class"], class, "{args:?}: {doc}");
        assert_eq!(doc["exit_code"], code, "{args:?}: {doc}");
        assert_eq!(
            doc["error"]["status"].as_u64(),
            status.map(u64::from),
            "{args:?}: {doc}"
        );
        assert!(
            !doc["error"]["message"].as_str().unwrap().contains("try:"),
            "{doc}"
        );
    }
    let out = run(&["connect", &url, "--json"]).await;
    let doc = &json_lines(&out.stdout)[0];
    assert!(
        doc["error"]["hint"].as_str().unwrap().contains("--cookie"),
        "{doc}"
    );
    server.shutdown().await;
}

/// Logs on a stderr that is not a terminal carry no colour codes, NO_COLOR unset or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let server = common::start_dev_server().await;
    let url = server.http_url();
    let upper = DIRECT_CHAT.to_uppercase();
    let mut c = bin();
    // The chat id's letter case makes the command log a warning.
    c.args(["join", &url, "--login", "bob", &upper])
        .env_remove("NO_COLOR");
    let out = c.output().await.expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    server.shutdown().await;
}
