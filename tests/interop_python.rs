//! Interop: `python-socketio` (pinned in tests/requirements.txt, installed into the tests' venv),
//! the Python client an integrator would pick, against `serve` and against the production twin
//! (a Node socket.io 4.8 server configured like production), so the test proves the client
//! speaks Socket.IO with both peers: cookie auth, a join with an acknowledgement, the exact
//! `serverMessage` payload, and a clean disconnect.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::twin::Peer;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn run_python_client(peer: &Peer, transports: &str) {
    let venv = common::python::venv();
    let base = peer.base();
    let alice = session_cookie(&base, "alice").await;
    let bob = session_cookie(&base, "bob").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/socketio_client.py"
    );
    let mut child = Command::new(venv.join("bin/python"))
        .args([script, &base, &alice, DIRECT_CHAT, transports])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the venv's python runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let content = format!("from bob to python over {transports}");
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let step: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line from the client ({e}): {line}"));
            if step["event"] == "ready" {
                let (status, _) = post_message(&base, &bob, DIRECT_CHAT, &content).await;
                assert_eq!(status, 200);
            }
            seen.push(step);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .unwrap_or_else(|_| panic!("{}: the client ends within 30 s: {seen:?}", peer.name()));
    let status = child.wait().await.unwrap();
    assert!(
        status.success(),
        "{}: the client failed: {seen:?}",
        peer.name()
    );

    let step = |event: &str| {
        seen.iter()
            .find(|s| s["event"] == event)
            .unwrap_or_else(|| panic!("{}: no {event} in {seen:?}", peer.name()))
            .clone()
    };
    let first_transport = transports.split(',').next().unwrap();
    assert_eq!(step("connect")["transport"], first_transport, "{seen:?}");
    assert_eq!(step("join_ack")["ack"], json!({"ok": true}), "{seen:?}");
    let message = step("serverMessage")["message"].clone();
    assert_eq!(message["content"], content.as_str(), "{message}");
    let id = message["message_id"].as_str().expect("message_id");
    assert_eq!(
        message,
        peer.stored_message(&alice, DIRECT_CHAT, id).await,
        "{}: the payload is the stored message, field for field",
        peer.name()
    );
    assert_eq!(step("disconnected")["connected"], false);
    peer.wait_until_no_sockets().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socketio_against_serve() {
    let peer = Peer::serve().await;
    run_python_client(&peer, "websocket").await;
    run_python_client(&peer, "polling").await;
    peer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socketio_against_the_production_twin() {
    let peer = Peer::production_twin();
    run_python_client(&peer, "websocket").await;
    run_python_client(&peer, "polling").await;
    peer.stop().await;
}
