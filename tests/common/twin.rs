//! The production twin (`tests/node/production-server.js`): a real Node socket.io 4.8 server
//! that behaves like SC Market's production backend, defects included unless `--fix NAME`
//! turns one off (the names of ARCHITECTURE.md). Started on an ephemeral loopback port; it
//! ends with the test (killed on drop, and `--stdin-lifeline` ends it if the test dies).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every defect the twin knows, as `--fix` takes them: `serve` fixes all of them.
pub const DEFECTS: [&str; 9] = [
    "crash-on-null-join",
    "no-origin-check",
    "post-after-403",
    "case-sensitive-rooms",
    "banned-users-connect",
    "open-direct-chats",
    "swallowed-errors",
    "unemitted-messages",
    "late-listeners",
];

pub struct ProductionTwin {
    child: Child,
    port: u16,
    args: Vec<String>,
}

impl ProductionTwin {
    /// Start the twin with these extra arguments (`--fix NAME`, `--allowed-origin URL`, ...).
    pub fn start(args: &[&str]) -> ProductionTwin {
        ProductionTwin::start_on(0, args.iter().map(|a| a.to_string()).collect())
    }

    /// Kill the twin and start it again on the same port with the same arguments: a deploy.
    /// Its store starts afresh (session cookies of the old one are unknown to the new one).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args = std::mem::take(&mut self.args);
        *self = ProductionTwin::start_on(self.port, args);
    }

    fn start_on(port: u16, args: Vec<String>) -> ProductionTwin {
        let dir = super::ensure_node_modules();
        let mut child = Command::new("node")
            .arg(dir.join("production-server.js"))
            .args(["--port", &port.to_string(), "--stdin-lifeline"])
            .args(&args)
            // Its secrets are serve's development secret unless these say otherwise.
            .env_remove("SESSION_SECRET")
            .env_remove("JWT_SECRET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is on PATH (Node.js is needed for the interop tests)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the production twin starts within 30 s");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the production twin: {line:?}"));
        ProductionTwin { child, port, args }
    }

    /// The twin with every defect fixed: on the wire, what `serve --dev` answers.
    pub fn start_fixed(extra: &[&str]) -> ProductionTwin {
        let mut args: Vec<&str> = DEFECTS.iter().flat_map(|d| ["--fix", d]).collect();
        args.extend_from_slice(extra);
        ProductionTwin::start(&args)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for ProductionTwin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server a client interop test talks to: `serve`, or the production twin with the two
/// defects fixed that no client can work around when it asks for a join acknowledgement right
/// after connecting (`swallowed-errors`: production never acknowledges; `late-listeners`: a
/// join sent right after CONNECT is dropped). Every other defect stays as production has it.
pub enum Peer {
    Serve(scmarket_ws::server::RunningServer),
    Twin(ProductionTwin),
}

impl Peer {
    pub async fn serve() -> Peer {
        Peer::Serve(super::start_dev_server().await)
    }

    pub fn production_twin() -> Peer {
        Peer::Twin(ProductionTwin::start(&[
            "--fix",
            "swallowed-errors",
            "--fix",
            "late-listeners",
        ]))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Peer::Serve(_) => "serve",
            Peer::Twin(_) => "production twin",
        }
    }

    pub fn base(&self) -> String {
        match self {
            Peer::Serve(server) => server.http_url(),
            Peer::Twin(twin) => twin.url(),
        }
    }

    /// Sockets connected to the default namespace right now.
    pub async fn open_sockets(&self) -> usize {
        match self {
            Peer::Serve(server) => server.socket_count(),
            Peer::Twin(twin) => {
                let state: serde_json::Value = reqwest::get(format!("{}/test/state", twin.url()))
                    .await
                    .expect("GET /test/state")
                    .json()
                    .await
                    .expect("state JSON");
                state["sockets"].as_u64().expect("sockets") as usize
            }
        }
    }

    /// Wait until no socket is connected (a clean disconnect reaches the server).
    pub async fn wait_until_no_sockets(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let open = self.open_sockets().await;
            if open == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {open} socket(s) still open 5 s after the client disconnected",
                self.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The message as the chat's history holds it, by id: what `serverMessage` must carry.
    pub async fn stored_message(
        &self,
        cookie: &str,
        chat_id: &str,
        message_id: &str,
    ) -> serde_json::Value {
        let chat = super::get_json(format!("{}/api/chats/{chat_id}", self.base()), cookie).await;
        chat["data"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["message_id"] == message_id)
            .cloned()
            .unwrap_or_else(|| panic!("{}: message {message_id} not in {chat}", self.name()))
    }

    pub async fn stop(self) {
        if let Peer::Serve(server) = self {
            server.shutdown().await;
        }
    }
}
