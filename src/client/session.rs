//! A connected session: the connect sequence for each transport, then one task that owns the
//! connection (answers pings, matches acks, delivers events) and is driven through a channel.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::packet::{self, EnginePacket, Handshake, PayloadItem, SocketKind};
use super::{ClientError, ConnectOptions, Transport};
use crate::protocol::{DataEnvelope, DevLoginRequest, DevLoginResponse};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// Boxed payloads keep the command channel's slots at 16 bytes (see `SessionEvent`).
enum Command {
    Emit(Box<Emit>),
    Ack(Box<(u64, Vec<Value>)>),
    Disconnect(oneshot::Sender<()>),
}

struct Emit {
    event: String,
    args: Vec<Value>,
    ack: Option<oneshot::Sender<Vec<Value>>>,
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
            http_client();
        }
        let started = Instant::now();
        let deadline = started + options.timeout;
        let (link, info, early) = match options.transport {
            Transport::Websocket => connect_websocket(options, started, deadline).await?,
            Transport::Polling => connect_polling(options, started, deadline).await?,
            Transport::Upgrade => connect_upgrade(options, started, deadline).await?,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let mut core = Core::new(&info.handshake, ev_tx, options.report_pings);
        for text in early {
            // Packets that came with the CONNECT answer (an event already queued for us).
            let _ = core.on_text(&text);
        }
        match link {
            Link::Websocket(ws) => {
                tokio::spawn(drive_websocket(ws, core, cmd_rx));
            }
            Link::Polling(polling) => {
                tokio::spawn(drive_polling(polling, core, cmd_rx));
            }
        }
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

/// `POST /api/dev/login` on a `serve --dev`: the cookies of a demo user.
pub async fn dev_login(
    options: &ConnectOptions,
    username: &str,
) -> Result<DevLoginResponse, ClientError> {
    let url = options
        .http_base()
        .join("api/dev/login")
        .map_err(|e| ClientError::InvalidOption(e.to_string()))?;
    let target = url.to_string();
    let response = http_client()
        .post(url)
        .json(&DevLoginRequest {
            username: username.to_string(),
        })
        .timeout(options.timeout)
        .send()
        .await
        .map_err(|e| reqwest_error(e, &target, "the dev login answer"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| reqwest_error(e, &target, "the dev login answer"))?;
    if status == 404 {
        return Err(ClientError::InvalidOption(format!(
            "{target} answered 404: --login needs a server started with serve --dev"
        )));
    }
    if status != 200 {
        return Err(ClientError::LoginFailed { status, body });
    }
    serde_json::from_str::<DataEnvelope<DevLoginResponse>>(&body)
        .map(|e| e.data)
        .map_err(|e| ClientError::Protocol(format!("unexpected dev login answer: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Connect sequences

enum Link {
    Websocket(Ws),
    Polling(Polling),
}

type Early = Vec<String>;

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

fn ws_config() -> tungstenite::protocol::WebSocketConfig {
    // Small buffers: the defaults reserve 128 KiB for reading per connection, far above the
    // 16 KB per session the load test allows; SC Market frames are a few hundred bytes.
    tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
}

async fn open_websocket(options: &ConnectOptions, sid: Option<&str>) -> Result<Ws, ClientError> {
    let url = options.engine_url(true, sid);
    let target = {
        let mut u = url.clone();
        u.set_query(None);
        u.to_string()
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ClientError::InvalidOption(format!("cannot build the request: {e}")))?;
    for (name, value) in options.request_headers() {
        request.headers_mut().append(name, value);
    }
    match tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(ws_error(e, &target)),
    }
}

fn ws_error(e: tungstenite::Error, target: &str) -> ClientError {
    use tungstenite::Error as E;
    match e {
        E::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            status_error(status, body)
        }
        E::Io(io) => ClientError::Unreachable {
            target: target.to_string(),
            detail: io.to_string(),
        },
        E::Tls(tls) => ClientError::Tls {
            target: target.to_string(),
            detail: tls.to_string(),
        },
        E::Url(url) => ClientError::InvalidOption(format!("cannot use {target}: {url}")),
        E::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete)
        | E::ConnectionClosed
        | E::AlreadyClosed => ClientError::HandshakeClosed {
            target: target.to_string(),
        },
        other => ClientError::Protocol(format!("websocket handshake with {target}: {other}")),
    }
}

fn status_error(status: u16, body: String) -> ClientError {
    if matches!(status, 400 | 401 | 403) {
        ClientError::Refused { status, body }
    } else {
        ClientError::HttpStatus { status, body }
    }
}

async fn ws_next_text(ws: &mut Ws) -> Result<String, ClientError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
            Some(Ok(Message::Close(_))) | None => {
                return Err(ClientError::Closed(DisconnectReason::TransportClose));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                return Err(ClientError::Closed(DisconnectReason::TransportError(
                    e.to_string(),
                )));
            }
        }
    }
}

async fn ws_send(ws: &mut Ws, text: String) -> Result<(), ClientError> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| ClientError::Closed(DisconnectReason::TransportError(e.to_string())))
}

/// Wait for the namespace CONNECT answer on a websocket, answering pings meanwhile.
async fn ws_namespace_connect(ws: &mut Ws) -> Result<(Option<String>, Early), ClientError> {
    let mut early = Vec::new();
    loop {
        let text = ws_next_text(ws).await?;
        if let Some(done) = namespace_answer(&text, &mut early)? {
            return Ok((done, early));
        }
        if text == "2" {
            ws_send(ws, "3".into()).await?;
        }
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

async fn connect_websocket(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let mut ws = within(
        deadline,
        "the websocket handshake",
        started,
        open_websocket(options, None),
    )
    .await?;
    let open = within(deadline, "the engine open packet", started, async {
        parse_open(&ws_next_text(&mut ws).await?)
    })
    .await?;
    let engine_open = started.elapsed();
    let (namespace_sid, early) = connect_namespace(&mut ws, options, started, deadline).await?;
    let info = ConnectInfo {
        handshake: open,
        namespace_sid,
        transport: Transport::Websocket,
        engine_open,
        upgraded: None,
        namespace_connect: started.elapsed(),
    };
    Ok((Link::Websocket(ws), info, early))
}

/// Send the namespace CONNECT over an open websocket and wait for the answer; both transports
/// that end on a websocket finish this way.
async fn connect_namespace(
    ws: &mut Ws,
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Option<String>, Early), ClientError> {
    ws_send(ws, packet::connect(options.auth.as_ref())).await?;
    within(
        deadline,
        "the namespace CONNECT answer",
        started,
        ws_namespace_connect(ws),
    )
    .await
}

fn http_client() -> &'static reqwest::Client {
    // One pool for every polling session of the process: connections are reused across requests.
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

fn reqwest_error(e: reqwest::Error, target: &str, waiting_for: &'static str) -> ClientError {
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

/// The polling side of a session.
struct Polling {
    url: reqwest::Url,
    headers: http::HeaderMap,
}

impl Polling {
    fn get(&self) -> Pin<Box<dyn Future<Output = Result<String, reqwest::Error>> + Send>> {
        let request = http_client()
            .get(self.url.clone())
            .headers(self.headers.clone());
        Box::pin(async move {
            let response = request.send().await?.error_for_status()?;
            response.text().await
        })
    }

    async fn post(&self, body: String) -> Result<(), ClientError> {
        let target = self.url.as_str();
        http_client()
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map(|_| ())
            .map_err(|e| reqwest_error(e, target, "a polling POST"))
    }
}

/// The first polling request: the engine handshake, where the server checks our credentials.
async fn polling_handshake(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Handshake, Polling, Duration), ClientError> {
    let url = options.engine_url(false, None);
    let target = {
        let mut u = url.clone();
        u.set_query(None);
        u.to_string()
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in options.request_headers() {
        headers.append(name, value);
    }
    let (status, body) = within(deadline, "the polling handshake", started, async {
        let response = http_client()
            .get(url.clone())
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| reqwest_error(e, &target, "the polling handshake"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| reqwest_error(e, &target, "the polling handshake"))?;
        Ok((status, body))
    })
    .await?;
    if status != 200 {
        return Err(status_error(status, body));
    }
    let first = packet::decode_payload(&body)
        .next()
        .ok_or_else(|| ClientError::Protocol("empty handshake answer".into()))?
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let PayloadItem::Text(text) = first else {
        return Err(ClientError::Protocol("binary handshake answer".into()));
    };
    let handshake = parse_open(text)?;
    let engine_open = started.elapsed();
    let polling = Polling {
        url: options.engine_url(false, Some(&handshake.sid)),
        headers,
    };
    Ok((handshake, polling, engine_open))
}

async fn connect_polling(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let (handshake, polling, engine_open) = polling_handshake(options, started, deadline).await?;
    within(
        deadline,
        "the namespace CONNECT",
        started,
        polling.post(packet::connect(options.auth.as_ref())),
    )
    .await?;
    let mut early = Vec::new();
    let namespace_sid = within(deadline, "the namespace CONNECT answer", started, async {
        loop {
            let body = polling
                .get()
                .await
                .map_err(|e| reqwest_error(e, polling.url.as_str(), "a polling GET"))?;
            let mut pong = false;
            let mut answer = None;
            for item in packet::decode_payload(&body) {
                match item.map_err(|e| ClientError::Protocol(e.to_string()))? {
                    PayloadItem::Text("2") => pong = true,
                    PayloadItem::Text(text) if answer.is_none() => {
                        answer = namespace_answer(text, &mut early)?;
                    }
                    PayloadItem::Text(text) => early.push(text.to_string()),
                    PayloadItem::Binary(_) => {}
                }
            }
            if pong {
                polling.post("3".into()).await?;
            }
            if let Some(sid) = answer {
                return Ok(sid);
            }
        }
    })
    .await?;
    let info = ConnectInfo {
        handshake,
        namespace_sid,
        transport: Transport::Polling,
        engine_open,
        upgraded: None,
        namespace_connect: started.elapsed(),
    };
    Ok((Link::Polling(polling), info, early))
}

async fn connect_upgrade(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let (handshake, polling, engine_open) = polling_handshake(options, started, deadline).await?;
    if !handshake.upgrades.iter().any(|u| u == "websocket") {
        return Err(ClientError::Protocol(
            "the server offers no websocket upgrade: use --transport polling".into(),
        ));
    }
    // Upgrade before the namespace CONNECT: no polling GET is in flight, so the server has
    // nothing to flush and the probe is the only exchange.
    let mut ws = within(
        deadline,
        "the websocket upgrade",
        started,
        open_websocket(options, Some(&handshake.sid)),
    )
    .await?;
    within(deadline, "the upgrade probe answer", started, async {
        ws_send(&mut ws, "2probe".into()).await?;
        loop {
            let text = ws_next_text(&mut ws).await?;
            if text == "3probe" {
                return Ok(());
            }
        }
    })
    .await?;
    ws_send(&mut ws, "5".into()).await?;
    let upgraded = started.elapsed();
    drop(polling);
    let (namespace_sid, early) = connect_namespace(&mut ws, options, started, deadline).await?;
    let info = ConnectInfo {
        handshake,
        namespace_sid,
        transport: Transport::Upgrade,
        engine_open,
        upgraded: Some(upgraded),
        namespace_connect: started.elapsed(),
    };
    Ok((Link::Websocket(ws), info, early))
}

// ---------------------------------------------------------------------------------------------
// The running session

/// Protocol state shared by both transports: acks, partial binary packets, ping deadline.
struct Core {
    events: mpsc::UnboundedSender<SessionEvent>,
    /// Acks we wait for; a handful at most, so a Vec beats a map in size and speed.
    pending: Vec<(u64, oneshot::Sender<Vec<Value>>)>,
    next_id: u64,
    /// A binary event or ack waiting for its attachments.
    partial: Option<(packet::SocketPacket, Vec<Vec<u8>>)>,
    ping_window: Duration,
    report_pings: bool,
}

/// What the driver must do after a packet.
enum Step {
    Nothing,
    Send(String),
    Close(DisconnectReason),
}

impl Core {
    fn new(
        handshake: &Handshake,
        events: mpsc::UnboundedSender<SessionEvent>,
        report_pings: bool,
    ) -> Self {
        Core {
            events,
            pending: Vec::new(),
            next_id: 0,
            partial: None,
            ping_window: Duration::from_millis(handshake.ping_interval + handshake.ping_timeout),
            report_pings,
        }
    }

    fn on_text(&mut self, text: &str) -> Step {
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

    fn on_binary(&mut self, bytes: Vec<u8>) -> Step {
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
    fn on_command(&mut self, command: Command) -> Result<String, oneshot::Sender<()>> {
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

    fn finish(self, reason: DisconnectReason) {
        let _ = self.events.send(SessionEvent::Disconnected(reason));
    }
}

async fn drive_websocket(
    mut ws: Ws,
    mut core: Core,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let ping_deadline = tokio::time::sleep(core.ping_window);
    tokio::pin!(ping_deadline);
    let reason = loop {
        tokio::select! {
            frame = ws.next() => {
                let step = match frame {
                    Some(Ok(Message::Text(text))) => {
                        if text.as_str().starts_with('2') {
                            ping_deadline.as_mut().reset((Instant::now() + core.ping_window).into());
                        }
                        core.on_text(text.as_str())
                    }
                    Some(Ok(Message::Binary(bytes))) => core.on_binary(bytes.to_vec()),
                    Some(Ok(Message::Close(_))) | None => Step::Close(DisconnectReason::TransportClose),
                    Some(Ok(_)) => Step::Nothing,
                    Some(Err(e)) => Step::Close(DisconnectReason::TransportError(e.to_string())),
                };
                match step {
                    Step::Nothing => {}
                    Step::Send(text) => {
                        if let Err(e) = ws.send(Message::Text(text.into())).await {
                            break DisconnectReason::TransportError(e.to_string());
                        }
                    }
                    Step::Close(reason) => break reason,
                }
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    // Every handle is gone: nobody can use this session any more.
                    let _ = ws.send(Message::Text(packet::disconnect().into())).await;
                    let _ = ws.close(None).await;
                    break DisconnectReason::ClientDisconnect;
                };
                match core.on_command(command) {
                    Ok(text) => {
                        if let Err(e) = ws.send(Message::Text(text.into())).await {
                            break DisconnectReason::TransportError(e.to_string());
                        }
                    }
                    Err(done) => {
                        let _ = ws.send(Message::Text(packet::disconnect().into())).await;
                        let _ = ws.close(None).await;
                        let _ = done.send(());
                        break DisconnectReason::ClientDisconnect;
                    }
                }
            }
            _ = &mut ping_deadline => break DisconnectReason::PingTimeout,
        }
    };
    tracing::debug!(%reason, "session ended");
    core.finish(reason);
}

async fn drive_polling(
    polling: Polling,
    mut core: Core,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let ping_deadline = tokio::time::sleep(core.ping_window);
    tokio::pin!(ping_deadline);
    let mut get = polling.get();
    let reason = loop {
        tokio::select! {
            body = &mut get => {
                let body = match body {
                    Ok(body) => body,
                    Err(e) if e.status().is_some() => break DisconnectReason::TransportClose,
                    Err(e) => break DisconnectReason::TransportError(e.to_string()),
                };
                let mut replies = Vec::new();
                let mut closed = None;
                for item in packet::decode_payload(&body) {
                    let step = match item {
                        Ok(PayloadItem::Text(text)) => {
                            if text.starts_with('2') {
                                ping_deadline.as_mut().reset((Instant::now() + core.ping_window).into());
                            }
                            core.on_text(text)
                        }
                        Ok(PayloadItem::Binary(bytes)) => core.on_binary(bytes),
                        Err(e) => Step::Close(DisconnectReason::ParseError(e.to_string())),
                    };
                    match step {
                        Step::Nothing => {}
                        Step::Send(text) => replies.push(text),
                        Step::Close(reason) => {
                            closed = Some(reason);
                            break;
                        }
                    }
                }
                if let Some(reason) = closed {
                    break reason;
                }
                if !replies.is_empty()
                    && let Err(e) = polling.post(packet::encode_payload(&replies)).await
                {
                    break DisconnectReason::TransportError(e.to_string());
                }
                get = polling.get();
            }
            command = commands.recv() => {
                let text = match command.map(|c| core.on_command(c)) {
                    Some(Ok(text)) => text,
                    Some(Err(done)) => {
                        let _ = polling.post(packet::encode_payload(&[packet::disconnect(), "1".into()])).await;
                        let _ = done.send(());
                        break DisconnectReason::ClientDisconnect;
                    }
                    None => {
                        let _ = polling.post(packet::encode_payload(&[packet::disconnect(), "1".into()])).await;
                        break DisconnectReason::ClientDisconnect;
                    }
                };
                if let Err(e) = polling.post(text).await {
                    break DisconnectReason::TransportError(e.to_string());
                }
            }
            _ = &mut ping_deadline => break DisconnectReason::PingTimeout,
        }
    };
    tracing::debug!(%reason, "session ended");
    core.finish(reason);
}
