//! Why a session ended.

use std::fmt;

/// Why a session ended, named as socket.io-client names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent a Socket.IO DISCONNECT.
    ServerDisconnect,
    /// We disconnected.
    ClientDisconnect,
    /// No ping within pingInterval + pingTimeout.
    PingTimeout,
    /// The connection closed (server stopped, engine close packet, websocket close).
    TransportClose,
    TransportError(String),
    ParseError(String),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ServerDisconnect => f.write_str("io server disconnect"),
            DisconnectReason::ClientDisconnect => f.write_str("io client disconnect"),
            DisconnectReason::PingTimeout => f.write_str("ping timeout"),
            DisconnectReason::TransportClose => f.write_str("transport close"),
            DisconnectReason::TransportError(e) => write!(f, "transport error: {e}"),
            DisconnectReason::ParseError(e) => write!(f, "parse error: {e}"),
        }
    }
}
