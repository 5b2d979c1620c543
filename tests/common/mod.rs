//! Shared by the integration tests: the real server on an ephemeral loopback port, the real
//! binary in a clean environment (`binary`), raw Engine.IO frames (`raw`), and the real Node
//! peers from the npm registry.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use scmarket_ws::server::{Config, RunningServer};

pub mod binary;
pub mod hostile;
pub mod http1;
pub mod postgres;
pub mod python;
pub mod raw;
pub mod stores;
pub mod twin;

/// Start a throwaway dev server in this process: `Config::ephemeral_dev()`, that is dev mode on
/// `127.0.0.1:0` with an in-memory store holding the demo data.
pub async fn start_dev_server() -> RunningServer {
    start_server(Config::ephemeral_dev()).await
}

/// The same, with `adjust` applied to the configuration first, e.g.
/// `start_dev_server_with(|c| c.limits.event_rate = 0)`.
pub async fn start_dev_server_with(adjust: impl FnOnce(&mut Config)) -> RunningServer {
    let mut config = Config::ephemeral_dev();
    adjust(&mut config);
    start_server(config).await
}

pub async fn start_server(config: Config) -> RunningServer {
    scmarket_ws::server::start(config)
        .await
        .expect("the reference server starts")
}

pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// Install the pinned npm packages of `tests/node` once (`npm ci`), so a fresh machine with
/// Node needs no manual step. Several test binaries may race here: a file lock serialises them.
pub fn ensure_node_modules() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = node_dir();
            let lock_path = std::env::temp_dir().join("scmarket-ws-npm.lock");
            let lock = std::fs::File::create(&lock_path).expect("create npm lock file");
            lock.lock().expect("take npm lock");
            if !node_packages_installed(&dir) {
                let status = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir)
                    .status()
                    .expect("npm is on PATH (Node.js is needed for the interop tests)");
                assert!(status.success(), "npm ci in tests/node failed");
            }
            let _ = lock.unlock();
            dir
        })
        .clone()
}

/// Whether every dependency pinned in `tests/node/package.json` is installed at its version, so
/// a checkout that added a package (e.g. playwright-core) reinstalls instead of failing later.
fn node_packages_installed(dir: &Path) -> bool {
    let Ok(manifest) = std::fs::read_to_string(dir.join("package.json")) else {
        return false;
    };
    let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&manifest) else {
        return false;
    };
    let Some(dependencies) = manifest["dependencies"].as_object() else {
        return false;
    };
    dependencies.iter().all(|(name, version)| {
        std::fs::read_to_string(dir.join("node_modules").join(name).join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|installed| installed["version"] == *version)
    })
}

use scmarket_ws::protocol::{DataEnvelope, DevLoginResponse};

/// Demo data ids (src/store/demo.yaml).
pub const ORDER_CHAT: &str = "5c0000c4-0000-4000-8000-000000000001";
pub const OFFER_CHAT: &str = "5c0000c4-0000-4000-8000-000000000002";
pub const DIRECT_CHAT: &str = "5c0000c4-0000-4000-8000-000000000003";
pub const GROUP_CHAT: &str = "5c0000c4-0000-4000-8000-000000000004";

/// Log in through the dev helper; answers the `Cookie` header value with the session cookie.
pub async fn dev_login(base: &str, username: &str) -> DevLoginResponse {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/dev/login"))
        .json(&serde_json::json!({ "username": username }))
        .send()
        .await
        .expect("dev login request");
    assert!(
        response.status().is_success(),
        "dev login as {username}: {}",
        response.status()
    );
    response
        .json::<DataEnvelope<DevLoginResponse>>()
        .await
        .expect("dev login JSON")
        .data
}

pub async fn session_cookie(base: &str, username: &str) -> String {
    dev_login(base, username).await.session_cookie
}

/// `POST /api/chats/:id/messages` as the owner of `cookie`: status and JSON body.
pub async fn post_message(
    base: &str,
    cookie: &str,
    chat_id: &str,
    content: &str,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/chats/{chat_id}/messages"))
        .header("cookie", cookie)
        .json(&serde_json::json!({ "content": content }))
        .send()
        .await
        .expect("post message request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// `GET /metrics` as text.
pub async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// `GET url` with a `Cookie` header; the JSON body.
pub async fn get_json(url: String, cookie: impl AsRef<str>) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .header("cookie", cookie.as_ref())
        .send()
        .await
        .expect("GET request")
        .json()
        .await
        .expect("JSON answer")
}
