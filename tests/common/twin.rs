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
}

impl ProductionTwin {
    /// Start the twin with these extra arguments (`--fix NAME`, `--allowed-origin URL`, ...).
    pub fn start(args: &[&str]) -> ProductionTwin {
        let dir = super::ensure_node_modules();
        let mut child = Command::new("node")
            .arg(dir.join("production-server.js"))
            .args(["--port", "0", "--stdin-lifeline"])
            .args(args)
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
        ProductionTwin { child, port }
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
