//! A real browser against `serve`: Debian's Chromium, headless, driven by playwright-core
//! (`tests/node/browser-driver.js`), opens a page served from one origin
//! (`tests/node/browser-page.html`, with the real `socket.io-client` from `tests/node`'s npm
//! packages, nothing from a CDN). The page logs in on `serve`, another origin, with the dev
//! login (a CORS request with a preflight; the browser keeps the cookies it sets), connects as
//! SC Market's web client does (path `/ws`, `withCredentials`, websocket then polling, or
//! polling only), joins a chat and shows a `serverMessage` that the test posts over REST. A
//! screenshot of each run is kept under `target/browser-screenshots/`.
//!
//! Chromium must be installed (`apt-get install -y chromium`, as `.ci/run` does): without it
//! these tests fail, they do not skip.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Debian's Chromium is needed for the browser tests and is not at {}: install it with \
         `apt-get install -y chromium` (.ci/run does), or point CHROMIUM at one",
        path.display()
    );
    path
}

/// The page's own origin: a server of its own on another port, with the page and the
/// socket.io-client bundle from npm.
async fn serve_page() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let dir = ensure_node_modules();
    let page = std::fs::read_to_string(dir.join("browser-page.html")).expect("browser-page.html");
    let bundle = std::fs::read(dir.join("node_modules/socket.io-client/dist/socket.io.min.js"))
        .expect("socket.io-client's browser bundle in tests/node/node_modules");
    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/socket.io.min.js",
            get(move || async move { ([("content-type", "text/javascript")], bundle) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("page server");
    });
    (addr, task)
}

fn screenshot_path(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/browser-screenshots");
    dir.join(format!("{name}.png"))
}

/// Run the page in Chromium with these transports; answers the `message` step of the driver.
async fn run_browser(name: &str, transports: &str) -> Value {
    let chromium = chromium();
    let (page_addr, page_task) = serve_page().await;
    // 127.0.0.1 on two ports: two origins of the same site, so the SameSite=Lax cookies of
    // the dev login travel with the socket's requests, as between localhost:5173 and :7000.
    let page_origin = format!("http://{page_addr}");
    let allowed = page_origin.clone();
    let server = start_dev_server_with(move |c| c.allowed_origins = vec![allowed]).await;
    let base = server.http_url();
    let bob = session_cookie(&base, "bob").await;

    let screenshot = screenshot_path(name);
    let _ = std::fs::remove_file(&screenshot);
    let page_url =
        format!("{page_origin}/?server={base}&chat={DIRECT_CHAT}&transports={transports}");
    let mut child = Command::new("node")
        .arg(ensure_node_modules().join("browser-driver.js"))
        .arg(&page_url)
        .arg(&screenshot)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut message = None;
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let step: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line from the driver ({e}): {line}"));
            match step["event"].as_str() {
                Some("ready") => {
                    assert_eq!(step["joined"], serde_json::json!({"ok": true}), "{step}");
                    let (status, _) = post_message(&base, &bob, DIRECT_CHAT, "hello browser").await;
                    assert_eq!(status, 200);
                }
                Some("message") => message = Some(step.clone()),
                _ => {}
            }
            seen.push(step);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .unwrap_or_else(|_| panic!("the browser run ends within 60 s: {seen:#?}"));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the browser driver failed: {seen:#?}");
    page_task.abort();
    server.shutdown().await;
    let message = message.unwrap_or_else(|| panic!("no serverMessage in the page: {seen:#?}"));
    assert!(
        screenshot.exists(),
        "screenshot at {}",
        screenshot.display()
    );
    message
}

fn check_message(step: &Value) {
    let message = &step["message"];
    assert_eq!(message["content"], "hello browser", "{step}");
    assert_eq!(message["author"], "bob", "{step}");
    assert_eq!(message["chat_id"], DIRECT_CHAT, "{step}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_the_web_client_against_serve_over_websocket() {
    let step = run_browser("websocket", "websocket,polling").await;
    check_message(&step);
    assert_eq!(step["transport"], "websocket", "{step}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_the_web_client_against_serve_over_polling_only() {
    let step = run_browser("polling", "polling").await;
    check_message(&step);
    assert_eq!(step["transport"], "polling", "{step}");
}
