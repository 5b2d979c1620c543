//! The connect sequences, one per transport, and what they share: the overall deadline, the
//! engine open packet, the namespace CONNECT answer and an HTTP refusal of the handshake. Each
//! sequence ends with a [`Link`] that a driver task then owns.

mod polling;
mod upgrade;
mod websocket;

use std::future::Future;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::mpsc;

use super::packet::{self, EnginePacket, Handshake, SocketKind};
use super::session::{Command, ConnectInfo};
use super::state::SessionState;
use super::{ClientError, ConnectOptions, DisconnectReason, Transport};

/// An engine connection after the namespace CONNECT, ready for its driver task.
pub(super) enum Link {
    Websocket(websocket::Ws),
    Polling(polling::Polling),
}

impl Link {
    /// Hand the connection to a task of its own for the rest of the session.
    pub(super) fn spawn_driver(
        self,
        state: SessionState,
        commands: mpsc::UnboundedReceiver<Command>,
    ) {
        match self {
            Link::Websocket(ws) => {
                tokio::spawn(websocket::drive(ws, state, commands));
            }
            Link::Polling(polling) => {
                tokio::spawn(polling::drive(polling, state, commands));
            }
        }
    }
}

/// Open the engine connection and the default namespace over `options.transport`.
pub(super) async fn open(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    match options.transport {
        Transport::Websocket => websocket::connect(options, started, deadline).await,
        Transport::Polling => polling::connect(options, started, deadline).await,
        Transport::Upgrade => upgrade::connect(options, started, deadline).await,
    }
}

/// Packets that arrived with the namespace CONNECT answer, for the session to read first.
pub(super) type Early = Vec<String>;

/// `fut`, failing with a timeout that names what it waited for once `deadline` passes.
async fn within<T, F: Future<Output = Result<T, ClientError>>>(
    deadline: Instant,
    waiting_for: &'static str,
    started: Instant,
    fut: F,
) -> Result<T, ClientError> {
    match tokio::time::timeout_at(deadline.into(), fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout {
            waiting_for,
            after: started.elapsed(),
        }),
    }
}

/// Look at one engine packet while waiting for the namespace CONNECT: `Some(sid)` when it is
/// the answer, an error for CONNECT_ERROR or a closed engine, `None` to keep waiting.
fn namespace_answer(text: &str, early: &mut Early) -> Result<Option<Option<String>>, ClientError> {
    match packet::decode_engine(text) {
        Ok(EnginePacket::Message(sio)) => {
            let p = packet::decode_socket(sio).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if p.namespace != "/" {
                return Ok(None);
            }
            match p.kind {
                SocketKind::Connect => {
                    let sid = p
                        .data
                        .as_ref()
                        .and_then(|d| d.get("sid"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    Ok(Some(sid))
                }
                SocketKind::ConnectError => {
                    let message = match &p.data {
                        Some(Value::Object(m)) => m
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| Value::Object(m.clone()).to_string()),
                        Some(other) => other.to_string(),
                        None => "no reason given".to_string(),
                    };
                    Err(ClientError::ConnectError { message })
                }
                _ => {
                    early.push(text.to_string());
                    Ok(None)
                }
            }
        }
        Ok(EnginePacket::Close) => Err(ClientError::Closed(DisconnectReason::TransportClose)),
        Ok(_) => Ok(None),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// The engine open packet (`0{...}`): the handshake's sid, upgrades and ping settings.
fn parse_open(text: &str) -> Result<Handshake, ClientError> {
    match packet::decode_engine(text) {
        Ok(EnginePacket::Open(data)) => {
            packet::decode_handshake(data).map_err(|e| ClientError::Protocol(e.to_string()))
        }
        _ => Err(ClientError::Protocol(format!(
            "expected the engine open packet, got {:?}",
            text.chars().take(80).collect::<String>()
        ))),
    }
}

/// A handshake answered with an HTTP error: 400/401/403 are refusals (bad credentials or
/// Origin), anything else a server problem.
fn handshake_status(status: u16, body: String) -> ClientError {
    if matches!(status, 400 | 401 | 403) {
        ClientError::Refused { status, body }
    } else {
        ClientError::HttpStatus { status, body }
    }
}
