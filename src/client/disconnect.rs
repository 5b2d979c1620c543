//! Why a session ended: the full reason (with the error text, for people), and its kind (a
//! `Copy` key for counters such as the load test's disconnects by reason).

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
    /// The server sent more at once than the cap (in bytes): a message or polling answer
    /// longer than the engine's maxPayload.
    TooLarge(u64),
}

impl DisconnectReason {
    pub fn kind(&self) -> DisconnectKind {
        match self {
            DisconnectReason::ServerDisconnect => DisconnectKind::Server,
            DisconnectReason::ClientDisconnect => DisconnectKind::Client,
            DisconnectReason::PingTimeout => DisconnectKind::PingTimeout,
            DisconnectReason::TransportClose
            | DisconnectReason::TransportError(_)
            | DisconnectReason::ParseError(_)
            | DisconnectReason::TooLarge(_) => DisconnectKind::Transport,
        }
    }
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
            DisconnectReason::TooLarge(cap) => write!(
                f,
                "the server sent more than {cap} bytes at once (the engine's maxPayload, or the client's cap)"
            ),
        }
    }
}

/// Which side or layer ended a session, without the details: small enough to count by.
/// The discriminants index counter arrays (`kind as usize`), in the order of [`Self::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectKind {
    /// We ended the session (in a load test: the scenario said `disconnect` or `reconnect`,
    /// or the virtual user finished its steps).
    Client,
    /// The server sent a DISCONNECT (or a CONNECT_ERROR after connecting).
    Server,
    /// No ping from the server within pingInterval + pingTimeout.
    PingTimeout,
    /// The transport closed or failed (reset, EOF, websocket error), or the server sent
    /// something that does not parse.
    Transport,
}

impl DisconnectKind {
    pub const ALL: [DisconnectKind; 4] = [
        DisconnectKind::Client,
        DisconnectKind::Server,
        DisconnectKind::PingTimeout,
        DisconnectKind::Transport,
    ];

    /// The name in reports and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DisconnectKind::Client => "client",
            DisconnectKind::Server => "server",
            DisconnectKind::PingTimeout => "ping_timeout",
            DisconnectKind::Transport => "transport",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_the_kind_counters_expect() {
        let cases = [
            (DisconnectReason::ClientDisconnect, "client"),
            (DisconnectReason::ServerDisconnect, "server"),
            (DisconnectReason::PingTimeout, "ping_timeout"),
            (DisconnectReason::TransportClose, "transport"),
            (
                DisconnectReason::TransportError("reset".into()),
                "transport",
            ),
            (DisconnectReason::ParseError("bad".into()), "transport"),
        ];
        for (reason, name) in cases {
            assert_eq!(reason.kind().name(), name, "{reason}");
        }
        for (i, kind) in DisconnectKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "ALL is in discriminant order");
        }
    }
}
