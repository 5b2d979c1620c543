//! The HTTP side of the client: the process's one `reqwest` pool (polling transport and
//! REST API alike) and how its failures read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::{ClientError, DisconnectReason};

/// How long a kept-alive connection may sit unused in the pool before it is closed rather than
/// reused: shorter than the servers' own idle close (Node's http server 5 s, `serve`'s
/// `--header-read-timeout` 10 s), so that a request never goes out on a connection the server
/// is closing at that moment. That race reset a few first posts of every load test whose users
/// posted 10 s after the setup's last request (`tests/cluster_script.rs`).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// One pool for every polling session and REST call of the process: connections are reused
/// across requests, and the TLS roots are loaded once.
pub(super) fn shared_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| build_client(None))
}

/// The pool whose connections leave from `local` (`ConnectOptions::local_address`), one per
/// address for the process; `None`: the shared pool.
pub(super) fn client_from(local: Option<IpAddr>) -> reqwest::Client {
    static BY_ADDRESS: OnceLock<Mutex<HashMap<IpAddr, reqwest::Client>>> = OnceLock::new();
    let Some(local) = local else {
        return shared_client().clone();
    };
    let mut pools = BY_ADDRESS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(local)
        .or_insert_with(|| build_client(Some(local)))
        .clone()
}

fn build_client(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .local_address(local)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Why a response body could not be read.
pub(super) enum BodyError {
    Http(reqwest::Error),
    /// Longer than the cap (the cap in bytes).
    TooLarge(u64),
}

/// A response body as text, read up to `cap` bytes: a server that answers with more (a hostile
/// or broken one) costs at most that much memory, never the gigabytes it may send.
pub(super) async fn read_body(
    mut response: reqwest::Response,
    cap: u64,
) -> Result<String, BodyError> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(BodyError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(body)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A failed request as a client error: timeout, TLS, unreachable, or a transport error.
pub(super) fn reqwest_error(
    e: reqwest::Error,
    target: &str,
    waiting_for: &'static str,
) -> ClientError {
    if e.is_timeout() {
        return ClientError::Timeout {
            waiting_for,
            after: Duration::ZERO,
        };
    }
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") {
        ClientError::Tls {
            target: target.to_string(),
            detail: chain,
        }
    } else if e.is_connect() || e.is_request() {
        ClientError::Unreachable {
            target: target.to_string(),
            detail: chain,
        }
    } else {
        ClientError::Closed(DisconnectReason::TransportError(chain))
    }
}
