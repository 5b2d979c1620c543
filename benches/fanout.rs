//! What one room broadcast costs the caller per delivery: bare socketioxide
//! (`io.to(room).emit`) against `serve`'s `delivery::to_room` (the same broadcast, plus the
//! slow-consumer check on failure), alternated round by round in one process so the shared
//! machine weighs on both alike.
//!
//! cargo bench --bench fanout -- [--sockets N] [--rounds R] [--broadcasts B]
//!
//! N raw websocket clients, all in one chat room, read everything; each round times B
//! broadcasts of a typical `serverMessage` with A, then B with B (the order flips every round).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use scmarket_ws::server::cluster::Io;
use scmarket_ws::server::{Config, LimitsConfig, delivery};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ROOM: &str = "5c0000c4-0000-4000-8000-000000000003";

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sockets = flag(&args, "--sockets", 500);
    let rounds = flag(&args, "--rounds", 10);
    let broadcasts = flag(&args, "--broadcasts", 200);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(sockets, rounds, broadcasts));
}

async fn run(sockets: usize, rounds: usize, broadcasts: usize) {
    let server = scmarket_ws::server::start(Config {
        limits: LimitsConfig::off(),
        ..Config::ephemeral_dev()
    })
    .await
    .unwrap();
    let base = server.http_url();
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/dev/login"))
        .json(&serde_json::json!({"username": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = login["data"]["session_cookie"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!(
        "{}/ws/?EIO=4&transport=websocket",
        base.replacen("http", "ws", 1)
    );
    for _ in 0..sockets {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.next().await.unwrap().unwrap(); // open
        ws.send(Message::text("40")).await.unwrap();
        ws.next().await.unwrap().unwrap(); // CONNECT
        // Read everything, answer pings.
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if message.to_text().is_ok_and(|t| t == "2") {
                    let _ = ws.send(Message::text("3")).await;
                }
            }
        });
    }
    let message = serde_json::json!({
        "message_id": "5c0000aa-0000-4000-8000-000000000001",
        "content": "x".repeat(200),
        "author": "alice",
        "chat_id": ROOM,
        "timestamp": "2026-11-29T12:00:00.000Z",
    });
    let Io::Local(io) = server.io().clone() else {
        unreachable!("a server without --adapter broadcasts through the local adapter")
    };
    let app = server.app().clone();
    let mut bare = Vec::new();
    let mut checked = Vec::new();
    println!("{sockets} sockets in the room, {broadcasts} broadcasts per round");
    println!("round | bare socketioxide ns/delivery | delivery::to_room ns/delivery");
    for round in 0..rounds {
        let time_bare = || async {
            let start = Instant::now();
            for _ in 0..broadcasts {
                io.to(ROOM).emit("serverMessage", &message).await.unwrap();
            }
            start.elapsed()
        };
        let time_checked = || async {
            let start = Instant::now();
            for _ in 0..broadcasts {
                assert_eq!(
                    delivery::to_room(&io, &app, ROOM, "serverMessage", &message).await,
                    0
                );
            }
            start.elapsed()
        };
        let (a, b) = if round % 2 == 0 {
            let a = time_bare().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (a, time_checked().await)
        } else {
            let b = time_checked().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            (time_bare().await, b)
        };
        // Let the writers drain before the next round.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let per = |d: Duration| d.as_nanos() as f64 / (broadcasts * sockets) as f64;
        println!("{round} | {:.0} | {:.0}", per(a), per(b));
        bare.push(per(a));
        checked.push(per(b));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median | {:.0} | {:.0}",
        median(&mut bare),
        median(&mut checked)
    );
    server.shutdown().await;
}
