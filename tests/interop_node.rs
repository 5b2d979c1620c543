//! Interop: the real Node `socket.io-client` 4.8 from npm, configured like SC Market's web
//! client, against `serve` on loopback, and against the production twin (a Node socket.io 4.8
//! server configured like production) so the same client steps are proven against both peers.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::twin::Peer;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Run web-client.js, posting a message as bob once it says it is ready; its JSON lines.
async fn run_web_client(base: &str, cookie: &str, chat: &str, transports: &str) -> Vec<Value> {
    let dir = ensure_node_modules();
    let mut child = Command::new("node")
        .arg(dir.join("web-client.js"))
        .args([base, cookie, chat, transports])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let bob = session_cookie(base, "bob").await;
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).expect("JSON line from web-client.js");
            if v["event"] == "ready" {
                let (status, _) = post_message(base, &bob, chat, "from bob to node").await;
                assert_eq!(status, 200);
            }
            seen.push(v);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("web-client.js finishes within 20 s");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "web-client.js failed: {seen:?}");
    seen
}

fn find<'a>(seen: &'a [Value], event: &str) -> &'a Value {
    seen.iter()
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} in {seen:?}"))
}

fn check_conversation(seen: &[Value]) {
    assert_eq!(find(seen, "join_ack")["ack"], json!({"ok": true}));
    assert_eq!(
        find(seen, "bad_join_ack")["ack"],
        json!({"ok": false, "error": "invalid_chat_id"})
    );
    let message = &find(seen, "serverMessage")["message"];
    assert_eq!(message["content"], "from bob to node");
    assert_eq!(message["author"], "bob");
    assert_eq!(message["chat_id"], DIRECT_CHAT);
}

#[tokio::test]
async fn production_web_client_over_websocket() {
    let server = start_dev_server().await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    let seen = run_web_client(&base, &cookie, DIRECT_CHAT, r#"["websocket","polling"]"#).await;
    assert_eq!(find(&seen, "connect")["transport"], "websocket");
    check_conversation(&seen);
    server.shutdown().await;
}

#[tokio::test]
async fn web_client_polling_then_upgrade_with_access_token() {
    let server = start_dev_server().await;
    let base = server.http_url();
    let cookie = dev_login(&base, "alice").await.access_cookie;
    let seen = run_web_client(&base, &cookie, DIRECT_CHAT, r#"["polling","websocket"]"#).await;
    // The engine opened on polling and upgraded (possibly before the namespace connected).
    assert_eq!(find(&seen, "upgrade")["transport"], "websocket");
    assert_eq!(find(&seen, "ready")["transport"], "websocket");
    check_conversation(&seen);
    server.shutdown().await;
}

#[tokio::test]
async fn web_client_polling_only() {
    let server = start_dev_server().await;
    let base = server.http_url();
    let cookie = session_cookie(&base, "alice").await;
    let seen = run_web_client(&base, &cookie, DIRECT_CHAT, r#"["polling"]"#).await;
    assert_eq!(find(&seen, "ready")["transport"], "polling");
    check_conversation(&seen);
    server.shutdown().await;
}

#[tokio::test]
async fn web_client_without_cookie_gets_a_connect_error() {
    let server = start_dev_server().await;
    let base = server.http_url();
    for transports in [r#"["websocket"]"#, r#"["polling"]"#] {
        let seen = run_web_client(&base, "", DIRECT_CHAT, transports).await;
        let error = find(&seen, "connect_error");
        assert!(
            error["message"] == "websocket error" || error["message"] == "xhr poll error",
            "{transports}: {error}"
        );
        assert!(seen.iter().all(|v| v["event"] != "connect"), "{seen:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn production_web_client_against_the_production_twin() {
    let peer = Peer::production_twin();
    let base = peer.base();
    for transports in [r#"["websocket","polling"]"#, r#"["polling"]"#] {
        let cookie = session_cookie(&base, "alice").await;
        let seen = run_web_client(&base, &cookie, DIRECT_CHAT, transports).await;
        check_conversation(&seen);
        // web-client.js closes its socket after the message: the twin sees it go.
        peer.wait_until_no_sockets().await;
    }
    peer.stop().await;
}
