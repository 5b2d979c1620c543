//! Servers that misbehave on purpose, for the client's defences: each speaks just enough Engine.IO
//! and Socket.IO to get a client to the point of the misbehaviour. They accept any credentials,
//! listen on an ephemeral loopback port and stop when dropped.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The engine open packet every mode sends: production's settings.
pub const OPEN: &str = r#"0{"sid":"hostile","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// Polling: a proper handshake, then every GET of the session answered with a body of this
    /// many bytes (chunked, no Content-Length).
    HugePollingBody(usize),
    /// Websocket: a proper connect, then one `serverMessage` frame of this many bytes.
    OversizedMessage(usize),
    /// Websocket: a proper connect, then events of this many bytes as fast as the socket takes
    /// them, until the client goes.
    Flood(usize),
    /// Websocket: a proper connect, then the connection closed at once.
    DropAfterConnect,
}

pub struct HostileServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    pub async fn start(mode: Misbehaviour) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, mode));
            }
        });
        HostileServer { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, mode: Misbehaviour) {
    match mode {
        Misbehaviour::HugePollingBody(bytes) => {
            let _ = polling(stream, bytes).await;
        }
        ws_mode => {
            let _ = websocket(stream, ws_mode).await;
        }
    }
}

/// One HTTP/1.1 request per connection (the client's pool may reuse it; closing after each
/// answer keeps this simple and is allowed).
async fn polling(mut stream: TcpStream, bytes: usize) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let first = text.lines().next().unwrap_or_default().to_string();
    let answer = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if first.starts_with("POST") {
        // The body (a CONNECT or a pong) is small and already read or not needed.
        stream.write_all(answer("ok").as_bytes()).await?;
    } else if !first.contains("sid=") {
        stream.write_all(answer(OPEN).as_bytes()).await?;
    } else {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .await?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            stream.write_all(&chunk[..n]).await?;
            stream.write_all(b"\r\n").await?;
            left -= n;
        }
        stream.write_all(b"0\r\n\r\n").await?;
    }
    stream.shutdown().await
}

async fn websocket(
    stream: TcpStream,
    mode: Misbehaviour,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    ws.send(Message::Text(OPEN.into())).await?;
    // Wait for the namespace CONNECT.
    while let Some(frame) = ws.next().await {
        if let Message::Text(t) = frame?
            && t.as_str().starts_with("40")
        {
            break;
        }
    }
    ws.send(Message::Text(r#"40{"sid":"hostile-socket"}"#.into()))
        .await?;
    match mode {
        Misbehaviour::OversizedMessage(bytes) => {
            let content = "x".repeat(bytes);
            ws.send(Message::Text(
                format!(r#"42["serverMessage",{{"content":"{content}"}}]"#).into(),
            ))
            .await?;
            // Hold the connection until the client goes.
            while ws.next().await.is_some() {}
        }
        Misbehaviour::Flood(bytes) => {
            let content = "x".repeat(bytes);
            let frame = format!(r#"42["flood",{{"content":"{content}"}}]"#);
            loop {
                ws.send(Message::Text(frame.clone().into())).await?;
            }
        }
        Misbehaviour::DropAfterConnect => {
            ws.close(None).await?;
        }
        Misbehaviour::HugePollingBody(_) => unreachable!("a polling mode"),
    }
    Ok(())
}
