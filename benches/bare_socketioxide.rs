//! A bare socketioxide + axum server for the three-way benchmark (`benches/three-way.sh`): the
//! same routes the load test uses against `serve --dev` (dev login, dev chats, posting) and the
//! same room events, with nothing else: any cookie is a user, rooms live only in socketioxide,
//! no store, limits or metrics. It shows what the libraries alone cost, so `serve`'s own cost
//! is what lies above it.
//!
//!   cargo bench --bench bare_socketioxide --no-run      # prints the executable's path
//!   <executable> --listen 127.0.0.1:7301                # prints `listening PORT`
//!
//! Run without `--listen` (as `cargo bench` does) it says how to use it and exits.

use std::net::SocketAddr;

use axum::extract::{Json, Path, State};
use axum::routing::{get, post};
use axum::{Router, http::StatusCode};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(listen) = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
    else {
        println!("bare_socketioxide: a server for benches/three-way.sh; run it with --listen ADDR");
        return;
    };
    let addr: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("--listen {listen}: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(serve(addr)) {
        eprintln!("bare_socketioxide: {e}");
        std::process::exit(1);
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let (layer, io) = SocketIo::builder().req_path("/ws").build_layer();
    io.ns("/", on_connect);
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/dev/login", post(dev_login))
        .route("/api/dev/chats", post(dev_create_chat))
        .route("/api/chats/{chat_id}/messages", post(post_message))
        .with_state(io)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening {}", listener.local_addr()?.port());
    axum::serve(listener, app).await
}

async fn on_connect(socket: SocketRef) {
    socket.on("clientJoinRoom", on_join);
    socket.on("clientLeaveRoom", on_leave);
}

async fn on_join(socket: SocketRef, ack: AckSender, Data(arg): Data<Value>) {
    let answer = match arg.get("chat_id").and_then(Value::as_str) {
        Some(chat_id) => {
            socket.join(chat_id.to_ascii_lowercase());
            json!({ "ok": true })
        }
        None => json!({ "ok": false, "error": "invalid_payload" }),
    };
    ack.send(&answer).ok();
}

async fn on_leave(socket: SocketRef, ack: AckSender, Data(arg): Data<Value>) {
    if let Some(chat_id) = arg.get("chat_id").and_then(Value::as_str) {
        socket.leave(chat_id.to_ascii_lowercase());
    }
    ack.send(&json!({ "ok": true })).ok();
}

async fn dev_login(Json(body): Json<Value>) -> Json<Value> {
    let username = body
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or("anyone");
    Json(json!({ "data": {
        "user_id": Uuid::new_v4(),
        "username": username,
        "role": "user",
        "session_cookie": format!("scmarket.sid={username}"),
        "access_cookie": format!("scmarket.access={username}"),
    } }))
}

async fn dev_create_chat() -> Json<Value> {
    Json(json!({ "data": { "chat_id": Uuid::new_v4() } }))
}

async fn post_message(
    State(io): State<SocketIo>,
    Path(chat_id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let Some(content) = body.get("content").and_then(Value::as_str) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": { "code": "INVALID_BODY" } })),
        );
    };
    let chat_id = chat_id.to_ascii_lowercase();
    let message = json!({
        "message_id": Uuid::new_v4(),
        "content": content,
        "author": "bench",
        "chat_id": chat_id,
        "timestamp": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
    });
    let _ = io.to(chat_id).emit("serverMessage", &message).await;
    (StatusCode::OK, Json(json!({ "result": "Success" })))
}
