//! The library in a few lines: start the reference server in this process from a
//! `server::Config`, log in as a demo user, connect a Socket.IO client, join a chat's room, post
//! a message over REST and receive it on the socket as `serverMessage`.
//!
//!     cargo run --example embedded_server

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use scmarket_ws::client::{ApiClient, ConnectOptions, Session, SessionEvent};
use scmarket_ws::protocol::{CLIENT_JOIN_ROOM, PostMessageRequest, SERVER_MESSAGE};
use scmarket_ws::server::{self, Config};

/// alice's order chat in the demo data every new store is seeded with (`src/store/demo.yaml`).
const ORDER_CHAT: &str = "5c0000c4-0000-4000-8000-000000000001";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Dev mode, an in-memory store with the demo data, a free loopback port. Every field of
    // `Config` can be set the same way, e.g. `config.limits.event_rate = 0`.
    let config = Config::ephemeral_dev();
    let server = server::start(config).await?;
    let url = server.http_url();
    println!("server listening on {url}");

    // The dev helper hands out a signed session cookie, as production's login would.
    let mut options = ConnectOptions::new(&url, None)?;
    // The same server's REST API, typed: dev login, chats, posting.
    let api = ApiClient::for_target(&options);
    let login = api.dev_login("alice").await?;
    options.add_cookies(&login.session_cookie)?;
    let mut session = Session::connect(&options).await?;
    println!(
        "connected as {} over {}",
        login.username,
        session.info().transport.as_str()
    );

    // The server joins alice's chats on connect; a join with an ack says how it went.
    let answer = session
        .emit_with_ack(
            CLIENT_JOIN_ROOM,
            vec![json!({ "chat_id": ORDER_CHAT })],
            Duration::from_secs(2),
        )
        .await?;
    println!("{CLIENT_JOIN_ROOM} answered {}", json!(answer));

    let post = PostMessageRequest {
        content: "hello from the embedded example".into(),
    };
    api.post_message(&login.session_cookie, ORDER_CHAT, &post)
        .await?;
    println!("POST /api/chats/{ORDER_CHAT}/messages: 200");

    let message = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), session.next_event())
            .await
            .context("no serverMessage within 5 s")?;
        match event {
            Some(SessionEvent::Event(event)) if event.name == SERVER_MESSAGE => break event,
            Some(SessionEvent::Disconnected(reason)) => {
                bail!("the session ended before the message arrived: {reason:?}")
            }
            None => bail!("the session ended before the message arrived"),
            Some(_) => continue,
        }
    };
    println!("{SERVER_MESSAGE}: {}", json!(message.args));

    session.disconnect().await;
    server.shutdown().await;
    Ok(())
}
