//! A deliberately raw Engine.IO v4 / Socket.IO v5 websocket peer for the server tests: it
//! sends exactly the frames a test writes, including ones no well-behaved client would send.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct RawSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ack: u64,
    pub open: Value,
}

/// What a refused websocket handshake looked like.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

pub fn ws_url(http_url: &str, path: &str) -> String {
    format!(
        "{}{path}/?EIO=4&transport=websocket",
        http_url.replacen("http", "ws", 1)
    )
}

impl RawSocket {
    /// Open the engine over websocket and connect the default namespace.
    pub async fn connect(http_url: &str, cookie: Option<&str>) -> Result<RawSocket, Refused> {
        Self::connect_with(http_url, "/ws", cookie, &[]).await
    }

    pub async fn connect_with(
        http_url: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<RawSocket, Refused> {
        let mut socket = Self::open_engine(http_url, path, cookie, headers).await?;
        socket.send_text("40").await;
        let connect = socket.next_packet().await.expect("CONNECT answer");
        assert!(
            connect.starts_with("40"),
            "expected a namespace CONNECT, got {connect}"
        );
        Ok(socket)
    }

    /// Only the engine: the open packet, no namespace CONNECT yet.
    pub async fn open_engine(
        http_url: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<RawSocket, Refused> {
        Self::open_engine_receiving(http_url, path, cookie, headers, None).await
    }

    /// A connected socket whose TCP receive buffer is `bytes` (so a socket that stops reading
    /// backs up into the server quickly instead of into this kernel's buffers).
    pub async fn connect_small_window(http_url: &str, cookie: &str, bytes: u32) -> RawSocket {
        let mut socket =
            Self::open_engine_receiving(http_url, "/ws", Some(cookie), &[], Some(bytes))
                .await
                .expect("engine opens");
        socket.send_text("40").await;
        let connect = socket.next_packet().await.expect("CONNECT answer");
        assert!(connect.starts_with("40"), "{connect}");
        socket
    }

    async fn open_engine_receiving(
        http_url: &str,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        receive_buffer: Option<u32>,
    ) -> Result<RawSocket, Refused> {
        let mut request = ws_url(http_url, path)
            .into_client_request()
            .expect("valid websocket URL");
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().expect("cookie header"));
        }
        for (k, v) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                v.parse().expect("header value"),
            );
        }
        let connected = match receive_buffer {
            None => tokio_tungstenite::connect_async(request).await,
            Some(bytes) => {
                let addr = request
                    .uri()
                    .authority()
                    .expect("URL with a host")
                    .as_str()
                    .parse::<std::net::SocketAddr>()
                    .expect("an IP address and port");
                let socket = tokio::net::TcpSocket::new_v4().expect("TCP socket");
                socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
                let tcp = socket.connect(addr).await.expect("TCP connect");
                tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await
            }
        };
        let (ws, _) = match connected {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .unwrap_or_default();
                return Err(Refused { status, body });
            }
            Err(e) => panic!("websocket connect failed without an HTTP answer: {e}"),
        };
        let mut socket = RawSocket {
            ws,
            next_ack: 0,
            open: Value::Null,
        };
        let open = socket.next_packet().await.expect("engine open packet");
        let json = open
            .strip_prefix('0')
            .expect("engine open packet starts with 0");
        socket.open = serde_json::from_str(json).expect("open packet JSON");
        Ok(socket)
    }

    pub async fn send_text(&mut self, frame: &str) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send text frame");
    }

    /// Send one frame and a close frame in the same write, then drop the connection: a client
    /// that leaves the moment it has spoken (the server reads both at once).
    pub async fn send_and_vanish(mut self, frame: &str) {
        let _ = self.ws.feed(Message::text(frame.to_string())).await;
        let _ = self.ws.feed(Message::Close(None)).await;
        let _ = self.ws.flush().await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("send binary frame");
    }

    /// `42["event", data]`
    pub async fn emit(&mut self, event: &str, data: Value) {
        let frame = format!("42{}", serde_json::json!([event, data]));
        self.send_text(&frame).await;
    }

    /// `42<id>["event", data]`, then wait for the `43<id>[...]` answer and return its first arg.
    pub async fn emit_ack(&mut self, event: &str, data: Value) -> Value {
        let frame = format!("{}", serde_json::json!([event, data]));
        self.emit_raw_ack(&frame).await
    }

    /// Send `42<id><args>` with `args` written verbatim; wait for the ack.
    pub async fn emit_raw_ack(&mut self, args: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_text(&format!("42{id}{args}")).await;
        let prefix = format!("43{id}");
        loop {
            let packet = self
                .next_packet()
                .await
                .unwrap_or_else(|| panic!("no ack {id} for {args}"));
            if let Some(rest) = packet.strip_prefix(&prefix) {
                let args: Value = serde_json::from_str(rest).expect("ack args JSON");
                return args[0].clone();
            }
        }
    }

    /// The next Socket.IO EVENT `(name, first arg)`, answering pings on the way.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let packet = tokio::time::timeout(remaining, self.next_packet())
                .await
                .ok()??;
            if let Some(rest) = packet.strip_prefix("42") {
                let args: Value = serde_json::from_str(rest).expect("event JSON");
                let name = args[0].as_str().unwrap_or_default().to_string();
                return Some((name, args[1].clone()));
            }
        }
    }

    pub async fn next_event(&mut self) -> (String, Value) {
        self.next_event_within(WAIT)
            .await
            .expect("an event within 5 s")
    }

    /// Next text packet other than a ping (pings are answered); `None` when the socket closed.
    pub async fn next_packet(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    if text.as_str() == "2" {
                        let _ = self.ws.send(Message::text("3")).await;
                        continue;
                    }
                    if text.as_str() == "1" {
                        return None;
                    }
                    return Some(text.to_string());
                }
                Ok(Some(Ok(Message::Close(_)))) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next text packet other than a ping within `wait` (`Ok(None)`: nothing came), or
    /// `Err(())` when the connection ended; unlike `next_packet`, an end and a silence differ.
    pub async fn packet_or_end(&mut self, wait: Duration) -> Result<Option<String>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return Err(()),
                Ok(Some(Ok(Message::Text(text)))) => match text.as_str() {
                    "2" => {
                        let _ = self.ws.send(Message::text("3")).await;
                    }
                    "1" => return Err(()),
                    _ => return Ok(Some(text.to_string())),
                },
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Whether the server closes the socket within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(remaining, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(Message::Text(t))))
                    if t.as_str() == "1" || t.as_str().starts_with("41") =>
                {
                    return true;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}
