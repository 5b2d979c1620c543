//! Shared by the integration tests: the real server on an ephemeral loopback port, and the real
//! Node peers from the npm registry.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use clap::Parser;
use scmarket_ws::cli::{Cli, Command as CliCommand, ServeArgs};
use scmarket_ws::server::RunningServer;

/// Start `serve --dev` on `127.0.0.1:0` with an in-memory store and the demo data, plus
/// `extra` flags exactly as a user would write them.
pub async fn start_dev_server(extra: &[&str]) -> RunningServer {
    let args = serve_args(extra);
    scmarket_ws::server::start(args)
        .await
        .expect("the reference server starts")
}

pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "scmarket-ws",
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--database",
        "sqlite::memory:",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid serve flags").command {
        CliCommand::Serve(args) => args,
        other => panic!("expected serve, got {other:?}"),
    }
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
            let marker = dir.join("node_modules/.package-lock.json");
            if !marker.exists() {
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
