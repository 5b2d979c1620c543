//! A session as its users see it: [`Session::connect`], then a [`SessionHandle`] to emit, ack
//! and disconnect with, and the [`SessionEvent`]s that arrive. Behind it, one task per session
//! owns the connection (`transport/`), runs the protocol state (`state.rs`) and is driven
//! through a channel of [`Command`]s.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::packet::Handshake;
use super::state::SessionState;
use super::{ClientError, ConnectOptions, DisconnectReason, Transport, http, transport};

/// What the handshake told us, and how long it took.
#[derive(Clone, Debug)]
pub struct ConnectInfo {
    pub handshake: Handshake,
    /// The Socket.IO session id from the namespace CONNECT answer.
    pub namespace_sid: Option<String>,
    /// The transport the session ended up on.
    pub transport: Transport,
    /// From the start of `connect` to the engine open packet.
    pub engine_open: Duration,
    /// From the start of `connect` to the end of the polling-to-websocket upgrade.
    pub upgraded: Option<Duration>,
    /// From the start of `connect` to the namespace CONNECT answer.
    pub namespace_connect: Duration,
}

/// An event the server sent.
#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub args: Vec<Value>,
    /// Set when the server asked for an acknowledgement: answer it with [`SessionHandle::ack`].
    pub ack_id: Option<u64>,
    pub received_at: SystemTime,
    /// The same moment on the monotonic clock, for latency measurements.
    pub received: Instant,
}

#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// Boxed so the channel's slots stay small: tokio allocates them 32 at a time per session.
    Event(Box<Event>),
    /// An engine ping (only with `report_pings`).
    Ping { received_at: SystemTime },
    /// The session ended; nothing follows.
    Disconnected(DisconnectReason),
}

/// Boxed payloads keep the command channel's slots at 16 bytes (see `SessionEvent`).
pub(super) enum Command {
    Emit(Box<Emit>),
    Ack(Box<(u64, Vec<Value>)>),
    Disconnect(oneshot::Sender<()>),
}

pub(super) struct Emit {
    pub(super) event: String,
    pub(super) args: Vec<Value>,
    pub(super) ack: Option<oneshot::Sender<Vec<Value>>>,
}

/// The sending half of a session; cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Emit(e) => write!(f, "Emit({})", e.event),
            Command::Ack(a) => write!(f, "Ack({})", a.0),
            Command::Disconnect(_) => f.write_str("Disconnect"),
        }
    }
}

impl SessionHandle {
    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Closed(DisconnectReason::TransportClose))
    }

    /// Send an event without asking for an acknowledgement.
    pub fn emit(&self, event: &str, args: Vec<Value>) -> Result<(), ClientError> {
        self.send(Command::Emit(Box::new(Emit {
            event: event.to_string(),
            args,
            ack: None,
        })))
    }

    /// Send an event asking for an acknowledgement (sequential ids), and wait at most `timeout`.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Emit(Box::new(Emit {
            event: event.to_string(),
            args,
            ack: Some(tx),
        })))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(ClientError::Closed(DisconnectReason::TransportClose)),
            Err(_) => Err(ClientError::AckTimeout(timeout)),
        }
    }

    /// Answer an acknowledgement the server asked for.
    pub fn ack(&self, id: u64, args: Vec<Value>) -> Result<(), ClientError> {
        self.send(Command::Ack(Box::new((id, args))))
    }

    /// Leave the namespace and close the connection; waits briefly for the close to go out.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Disconnect(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }
}

/// An open session: a handle to send with, and the events that arrive.
#[derive(Debug)]
pub struct Session {
    handle: SessionHandle,
    events: mpsc::UnboundedReceiver<SessionEvent>,
    info: Box<ConnectInfo>,
}

impl Session {
    /// Open the engine connection and the default namespace; returns once the server answered
    /// the namespace CONNECT (or fails on CONNECT_ERROR).
    pub async fn connect(options: &ConnectOptions) -> Result<Session, ClientError> {
        // Boxed: the connect state machine is several KiB, and any future that awaits it
        // inline (a load-test virtual user holding its session for minutes) would carry that
        // size for its whole life.
        Box::pin(Self::connect_inner(options)).await
    }

    async fn connect_inner(options: &ConnectOptions) -> Result<Session, ClientError> {
        if options.transport != Transport::Websocket {
            // Building the HTTP client loads the TLS roots (tens of ms): not part of connecting.
            http::client_from(options.local_address);
        }
        let started = Instant::now();
        let deadline = started + options.timeout;
        let (link, info, early) = transport::open(options, started, deadline).await?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let cap = options.payload_cap(info.handshake.max_payload);
        let mut state = SessionState::new(&info.handshake, ev_tx, options.report_pings, cap);
        for text in early {
            // Packets that came with the CONNECT answer (an event already queued for us).
            let _ = state.on_text(&text);
        }
        link.spawn_driver(state, cmd_rx);
        Ok(Session {
            handle: SessionHandle { commands: cmd_tx },
            events: ev_rx,
            info: Box::new(info),
        })
    }

    pub fn info(&self) -> &ConnectInfo {
        &self.info
    }

    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// The next event; `None` after [`SessionEvent::Disconnected`] was delivered.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }

    pub fn emit(&self, event: &str, args: Vec<Value>) -> Result<(), ClientError> {
        self.handle.emit(event, args)
    }

    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, ClientError> {
        self.handle.emit_with_ack(event, args, timeout).await
    }

    pub fn ack(&self, id: u64, args: Vec<Value>) -> Result<(), ClientError> {
        self.handle.ack(id, args)
    }

    pub async fn disconnect(&self) {
        self.handle.disconnect().await
    }

    /// Split into the sending handle and the event receiver, for callers that read and write
    /// from different tasks. The session lives as long as one handle does (dropping the last
    /// one disconnects); events queue without bound until read, so a caller that does not want
    /// them should drop the receiver.
    pub fn into_parts(
        self,
    ) -> (
        SessionHandle,
        mpsc::UnboundedReceiver<SessionEvent>,
        Box<ConnectInfo>,
    ) {
        (self.handle, self.events, self.info)
    }
}
