//! `serve`: the reference realtime server.

pub mod session;

use std::net::SocketAddr;

use crate::cli::ServeArgs;

/// A server started in this process: what `serve` runs until a signal, and what tests and the
/// load test's `embedded` target start on an ephemeral port.
pub struct RunningServer {
    addr: SocketAddr,
}

impl RunningServer {
    /// The address actually bound (useful with `--listen 127.0.0.1:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR`, the base URL for REST calls and for the Socket.IO client.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Stop accepting, close every socket and wait for the server task to end.
    pub async fn shutdown(self) {}
}

pub async fn start(_args: ServeArgs) -> anyhow::Result<RunningServer> {
    anyhow::bail!("serve is being written")
}

pub async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is being written")
}
