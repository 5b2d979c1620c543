//! The protocol state of one running session, apart from any I/O: decode what arrives into
//! events and ack answers, encode what the handle asks for. The transport drivers
//! (`transport/websocket.rs`, `transport/polling.rs`) feed it and carry out its [`Step`]s.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::DisconnectReason;
use super::packet::{self, EnginePacket, Handshake, SocketKind};
use super::session::{Command, Emit, Event, SessionEvent};

/// Protocol state shared by both transports: acks, partial binary packets, ping deadline.
pub(super) struct SessionState {
    events: mpsc::UnboundedSender<SessionEvent>,
    /// Acks we wait for; a handful at most, so a Vec beats a map in size and speed.
    pending: Vec<(u64, oneshot::Sender<Vec<Value>>)>,
    next_id: u64,
    /// A binary event or ack waiting for its attachments.
    partial: Option<(packet::SocketPacket, Vec<Vec<u8>>)>,
    /// pingInterval + pingTimeout: a session without a ping for this long is dead.
    pub(super) ping_window: Duration,
    report_pings: bool,
    /// The longest message the server may send (the engine's maxPayload, or the client's cap).
    pub(super) max_payload: u64,
}

/// What the driver must do after a packet.
pub(super) enum Step {
    Nothing,
    Send(String),
    Close(DisconnectReason),
}

impl SessionState {
    pub(super) fn new(
        handshake: &Handshake,
        events: mpsc::UnboundedSender<SessionEvent>,
        report_pings: bool,
        max_payload: u64,
    ) -> Self {
        SessionState {
            events,
            pending: Vec::new(),
            next_id: 0,
            partial: None,
            ping_window: Duration::from_millis(handshake.ping_interval + handshake.ping_timeout),
            report_pings,
            max_payload,
        }
    }

    pub(super) fn on_text(&mut self, text: &str) -> Step {
        match packet::decode_engine(text) {
            Ok(EnginePacket::Ping(data)) => {
                if self.report_pings {
                    let _ = self.events.send(SessionEvent::Ping {
                        received_at: SystemTime::now(),
                    });
                }
                Step::Send(format!("3{data}"))
            }
            Ok(EnginePacket::Message(sio)) => match packet::decode_socket(sio) {
                Ok(p) if p.namespace != "/" => Step::Nothing,
                Ok(p) if p.attachments > 0 => {
                    self.partial = Some((p, Vec::new()));
                    Step::Nothing
                }
                Ok(p) => self.on_socket(p),
                Err(e) => Step::Close(DisconnectReason::ParseError(e.to_string())),
            },
            Ok(EnginePacket::Close) => Step::Close(DisconnectReason::TransportClose),
            Ok(_) => Step::Nothing,
            Err(e) => Step::Close(DisconnectReason::ParseError(e.to_string())),
        }
    }

    pub(super) fn on_binary(&mut self, bytes: Vec<u8>) -> Step {
        let Some((_, parts)) = self.partial.as_mut() else {
            // An attachment nobody announced: ignore it rather than end the session.
            return Step::Nothing;
        };
        parts.push(bytes);
        let complete = self
            .partial
            .as_ref()
            .is_some_and(|(p, parts)| parts.len() >= p.attachments);
        if complete && let Some((mut p, parts)) = self.partial.take() {
            if let Some(data) = p.data.as_mut() {
                packet::fill_placeholders(data, &parts);
            }
            return self.on_socket(p);
        }
        Step::Nothing
    }

    fn on_socket(&mut self, p: packet::SocketPacket) -> Step {
        match p.kind {
            SocketKind::Event | SocketKind::BinaryEvent => {
                let mut args = match p.data {
                    Some(Value::Array(items)) => items,
                    _ => return Step::Nothing,
                };
                if args.is_empty() {
                    return Step::Nothing;
                }
                let name = match args.remove(0) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let _ = self.events.send(SessionEvent::Event(Box::new(Event {
                    name,
                    args,
                    ack_id: p.id,
                    received_at: SystemTime::now(),
                    received: Instant::now(),
                })));
                Step::Nothing
            }
            SocketKind::Ack | SocketKind::BinaryAck => {
                let args = match p.data {
                    Some(Value::Array(items)) => items,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                if let Some(id) = p.id
                    && let Some(i) = self.pending.iter().position(|(pid, _)| *pid == id)
                {
                    let (_, tx) = self.pending.swap_remove(i);
                    let _ = tx.send(args);
                }
                Step::Nothing
            }
            SocketKind::Disconnect => Step::Close(DisconnectReason::ServerDisconnect),
            // A late CONNECT (after a server-side reconnect of the namespace) changes nothing.
            SocketKind::Connect => Step::Nothing,
            SocketKind::ConnectError => Step::Close(DisconnectReason::ServerDisconnect),
        }
    }

    /// Encode a command; `Err` carries the disconnect request.
    pub(super) fn on_command(&mut self, command: Command) -> Result<String, oneshot::Sender<()>> {
        match command {
            Command::Emit(emit) => {
                let Emit { event, args, ack } = *emit;
                let id = ack.map(|tx| {
                    // Timed-out waiters dropped their receivers; forget them here.
                    self.pending.retain(|(_, t)| !t.is_closed());
                    let id = self.next_id;
                    self.next_id += 1;
                    self.pending.push((id, tx));
                    id
                });
                Ok(packet::event(&event, &args, id))
            }
            Command::Ack(ack) => Ok(packet::ack(ack.0, &ack.1)),
            Command::Disconnect(done) => Err(done),
        }
    }

    pub(super) fn finish(self, reason: DisconnectReason) {
        let _ = self.events.send(SessionEvent::Disconnected(reason));
    }
}
