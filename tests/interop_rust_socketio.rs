//! Interop: `rust_socketio` 0.6 (its async client), the Rust Socket.IO client an integrator
//! would pick, against `serve` and against the production twin (a Node socket.io 4.8 server
//! configured like production), so the test proves the client speaks Socket.IO with both
//! peers: cookie auth, a join with an acknowledgement, the exact `serverMessage` payload, and
//! a clean disconnect.

mod common;

use std::time::Duration;

use common::twin::Peer;
use common::*;
use futures_util::FutureExt;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// The JSON arguments of a payload (rust_socketio 0.6 hands text payloads as a list).
fn arguments(payload: Payload) -> Vec<Value> {
    match payload {
        Payload::Text(values) => values,
        #[allow(deprecated)] // the variant still exists in 0.6; nothing here sends it
        Payload::String(text) => vec![serde_json::from_str(&text).unwrap_or(Value::String(text))],
        Payload::Binary(bytes) => panic!("unexpected binary payload of {} bytes", bytes.len()),
    }
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: channel closed"))
}

async fn run_rust_socketio(peer: &Peer, transport: TransportType, transport_name: &str) {
    let base = peer.base();
    let alice = session_cookie(&base, "alice").await;
    let bob = session_cookie(&base, "bob").await;
    let (connected_tx, mut connected) = mpsc::unbounded_channel();
    let (message_tx, mut messages) = mpsc::unbounded_channel();
    let client = ClientBuilder::new(format!("{base}/ws/"))
        .opening_header("Cookie", alice.as_str())
        .transport_type(transport)
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            let tx = connected_tx.clone();
            async move {
                let _ = tx.send(());
            }
            .boxed()
        })
        .on("serverMessage", move |payload, _| {
            let tx = message_tx.clone();
            async move {
                let _ = tx.send(arguments(payload));
            }
            .boxed()
        })
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: rust_socketio connects: {e}", peer.name()));
    // connect() returns before the namespace CONNECT; the Connect event says it arrived.
    recv(&mut connected, "namespace CONNECT").await;

    let (ack_tx, mut acks) = mpsc::unbounded_channel();
    client
        .emit_with_ack(
            "clientJoinRoom",
            json!({ "chat_id": DIRECT_CHAT }),
            WAIT,
            move |payload, _| {
                let tx = ack_tx.clone();
                async move {
                    let _ = tx.send(arguments(payload));
                }
                .boxed()
            },
        )
        .await
        .expect("emit clientJoinRoom");
    // rust_socketio 0.6 hands an acknowledgement's argument list over as one JSON array.
    assert_eq!(
        recv(&mut acks, "join acknowledgement").await,
        vec![json!([{"ok": true}])],
        "{}",
        peer.name()
    );

    let content = format!("from bob to rust_socketio over {transport_name}");
    let (status, _) = post_message(&base, &bob, DIRECT_CHAT, &content).await;
    assert_eq!(status, 200);
    let message = recv(&mut messages, "serverMessage").await;
    assert_eq!(message.len(), 1, "{message:?}");
    let message = &message[0];
    assert_eq!(message["content"], content.as_str(), "{message}");
    let id = message["message_id"].as_str().expect("message_id");
    assert_eq!(
        *message,
        peer.stored_message(&alice, DIRECT_CHAT, id).await,
        "{}: the payload is the stored message, field for field",
        peer.name()
    );

    client.disconnect().await.expect("clean disconnect");
    peer.wait_until_no_sockets().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socketio_against_serve() {
    let peer = Peer::serve().await;
    run_rust_socketio(&peer, TransportType::Websocket, "websocket").await;
    run_rust_socketio(&peer, TransportType::Polling, "polling").await;
    peer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_socketio_against_the_production_twin() {
    let peer = Peer::production_twin();
    run_rust_socketio(&peer, TransportType::Websocket, "websocket").await;
    run_rust_socketio(&peer, TransportType::Polling, "polling").await;
    peer.stop().await;
}
