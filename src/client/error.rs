//! How a client call fails, in words for people and in classes for exit codes.

use std::time::Duration;

use super::DisconnectReason;
use super::api::ApiCall;

/// What kind of failure, so commands can pick an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Usage,
    Refused,
    Unreachable,
    Timeout,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    InvalidOption(String),
    #[error(
        "the server refused the handshake with HTTP {status}{}",
        body_note(body)
    )]
    Refused { status: u16, body: String },
    #[error(
        "the server answered the handshake with HTTP {status}{}",
        body_note(body)
    )]
    HttpStatus { status: u16, body: String },
    #[error("the server refused the namespace connection (CONNECT_ERROR): {message}")]
    ConnectError { message: String },
    /// A REST call answered with an error status.
    #[error("{call} answered HTTP {status}{}", body_note(body))]
    ApiStatus {
        call: ApiCall,
        status: u16,
        body: String,
    },
    #[error("{target} closed the connection without answering the websocket handshake")]
    HandshakeClosed { target: String },
    #[error("cannot connect to {target}: {detail}")]
    Unreachable { target: String, detail: String },
    #[error("TLS failed with {target}: {detail}")]
    Tls { target: String, detail: String },
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        waiting_for: &'static str,
        after: Duration,
    },
    #[error("no acknowledgement within {0:?}")]
    AckTimeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the session is closed ({0})")]
    Closed(DisconnectReason),
}

fn body_note(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        let cut: String = body.chars().take(200).collect();
        format!(" ({cut})")
    }
}

impl ClientError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::InvalidOption(_) => ErrorClass::Usage,
            ClientError::Refused { .. } | ClientError::ConnectError { .. } => ErrorClass::Refused,
            // Only `serve --dev` has the dev routes: a 404 there means the wrong server.
            ClientError::ApiStatus {
                call, status: 404, ..
            } if call.dev_only() => ErrorClass::Usage,
            // A refused dev login (a banned user, an invalid name) is a refusal like a refused
            // handshake.
            ClientError::ApiStatus {
                call: ApiCall::DevLogin,
                ..
            }
            | ClientError::ApiStatus {
                status: 401 | 403, ..
            } => ErrorClass::Refused,
            ClientError::Unreachable { .. } | ClientError::Tls { .. } => ErrorClass::Unreachable,
            ClientError::Timeout { .. } | ClientError::AckTimeout(_) => ErrorClass::Timeout,
            ClientError::HttpStatus { .. }
            | ClientError::ApiStatus { .. }
            | ClientError::HandshakeClosed { .. }
            | ClientError::Protocol(_)
            | ClientError::Closed(_) => ErrorClass::Other,
        }
    }

    /// The HTTP status the server answered with, where the failure was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. }
            | ClientError::HttpStatus { status, .. }
            | ClientError::ApiStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What to try next, for the person reading the error.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            // socket.io answers every refused websocket upgrade with 400 and names the reason in
            // the body, so a refused Origin arrives as "400 (Forbidden)" there.
            ClientError::Refused { status, body }
                if *status == 403 || body.trim() == "Forbidden" =>
            {
                "the server refused this Origin (or these credentials): check --origin, or drop it"
            }
            ClientError::Refused { .. } => {
                "a bare HTTP 400/401 on the handshake usually means a missing or expired cookie: pass --cookie scmarket.sid=..., --jwt TOKEN (or SCMARKET_WS_COOKIE / SCMARKET_WS_JWT), or --login USER against serve --dev"
            }
            ClientError::ConnectError { .. } => {
                "the server's namespace middleware refused this session: check the credentials and --auth"
            }
            ClientError::HttpStatus { status: 429, .. } => {
                "the server rate-limits handshakes or caps sockets per user (serve: --handshake-rate, --max-connections-per-user): wait, or close other sessions"
            }
            ClientError::HttpStatus { status: 404, .. } => {
                "HTTP 404 usually means a wrong engine path: SC Market serves Socket.IO at /ws (see --path)"
            }
            ClientError::HandshakeClosed { .. } => {
                "a socket.io server drops upgrades on paths it does not serve: check --path (SC Market serves Socket.IO at /ws)"
            }
            ClientError::HttpStatus { .. } => {
                "the server failed to answer the handshake: check its logs"
            }
            ClientError::ApiStatus {
                call, status: 404, ..
            } if call.dev_only() => {
                "the dev helpers (/api/dev/*) exist only on a server started with serve --dev"
            }
            ClientError::ApiStatus { status: 401, .. } => {
                "the cookie is missing or expired: log in again"
            }
            ClientError::Unreachable { .. } => {
                "check the host and port, and that the server is running"
            }
            ClientError::Tls { .. } => {
                "check the server's certificate, or use http:// or ws:// for a server without TLS"
            }
            ClientError::Timeout { .. } => {
                "the server did not answer in time: check the URL and --path, or raise --timeout"
            }
            _ => return None,
        })
    }
}
