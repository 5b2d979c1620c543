//! The websocket transport: open the connection (with the credentials in the upgrade request),
//! the connect sequence, and the driver task that owns the socket for the session's life.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Early, Link, handshake_status, namespace_answer, parse_open, within};
use crate::client::packet;
use crate::client::session::{Command, ConnectInfo};
use crate::client::state::{SessionState, Step};
use crate::client::{ClientError, ConnectOptions, DisconnectReason, Transport};

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_config(cap: u64) -> tungstenite::protocol::WebSocketConfig {
    // Small buffers: the defaults reserve 128 KiB for reading per connection, far above the
    // 16 KB per session the load test allows; SC Market frames are a few hundred bytes.
    // Messages are capped before the server announces its maxPayload (the open packet comes
    // over this socket), at the client's cap; the driver applies a smaller announced one.
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap))
}

/// The websocket handshake, with the extra headers, Origin and cookies of `options`; `sid`
/// joins an engine session opened over polling (the upgrade).
pub(super) async fn open(options: &ConnectOptions, sid: Option<&str>) -> Result<Ws, ClientError> {
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
    let config = ws_config(options.payload_cap(None));
    let opened = match options.local_address {
        None => tokio_tungstenite::connect_async_with_config(request, Some(config), true).await,
        Some(local) => {
            let stream = connect_from(local, &url)
                .await
                .map_err(|e| ClientError::Unreachable {
                    target: target.clone(),
                    detail: format!("from {local}: {e}"),
                })?;
            tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), None)
                .await
        }
    };
    match opened {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(ws_error(e, &target)),
    }
}

/// A TCP connection to the URL's host that leaves from `local`: the first of the host's
/// addresses in `local`'s family that accepts. The port is the kernel's choice for that
/// address, so each local address has the whole ephemeral range of its own.
async fn connect_from(local: IpAddr, url: &url::Url) -> std::io::Result<TcpStream> {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the same family as {local}"),
        )
    }))
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
            handshake_status(status, body)
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

/// The next text frame, skipping others; a close is an error here (the connect sequence).
pub(super) async fn next_text(ws: &mut Ws) -> Result<String, ClientError> {
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

pub(super) async fn send_text(ws: &mut Ws, text: String) -> Result<(), ClientError> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| ClientError::Closed(DisconnectReason::TransportError(e.to_string())))
}

/// Wait for the namespace CONNECT answer on a websocket, answering pings meanwhile.
async fn namespace_answer_on(ws: &mut Ws) -> Result<(Option<String>, Early), ClientError> {
    let mut early = Vec::new();
    loop {
        let text = next_text(ws).await?;
        if let Some(done) = namespace_answer(&text, &mut early)? {
            return Ok((done, early));
        }
        if text == "2" {
            send_text(ws, "3".into()).await?;
        }
    }
}

/// The websocket transport's connect sequence: handshake, engine open packet, namespace CONNECT.
pub(super) async fn connect(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let mut ws = within(
        deadline,
        "the websocket handshake",
        started,
        open(options, None),
    )
    .await?;
    let open = within(deadline, "the engine open packet", started, async {
        parse_open(&next_text(&mut ws).await?)
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
pub(super) async fn connect_namespace(
    ws: &mut Ws,
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Option<String>, Early), ClientError> {
    send_text(ws, packet::connect(options.auth.as_ref())).await?;
    within(
        deadline,
        "the namespace CONNECT answer",
        started,
        namespace_answer_on(ws),
    )
    .await
}

/// The session's task: frames in, commands out, until either side ends it or the pings stop.
pub(super) async fn drive(
    mut ws: Ws,
    mut state: SessionState,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let ping_deadline = tokio::time::sleep(state.ping_window);
    tokio::pin!(ping_deadline);
    let reason = loop {
        tokio::select! {
            frame = ws.next() => {
                let step = match frame {
                    Some(Ok(Message::Text(text))) if text.len() as u64 > state.max_payload => {
                        Step::Close(DisconnectReason::TooLarge(state.max_payload))
                    }
                    Some(Ok(Message::Text(text))) => {
                        if text.as_str().starts_with('2') {
                            ping_deadline.as_mut().reset((Instant::now() + state.ping_window).into());
                        }
                        state.on_text(text.as_str())
                    }
                    Some(Ok(Message::Binary(bytes))) => state.on_binary(bytes.to_vec()),
                    Some(Ok(Message::Close(_))) | None => Step::Close(DisconnectReason::TransportClose),
                    Some(Ok(_)) => Step::Nothing,
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        Step::Close(DisconnectReason::TooLarge(state.max_payload))
                    }
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
                match state.on_command(command) {
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
    state.finish(reason);
}
