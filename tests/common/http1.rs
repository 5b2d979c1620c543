//! One HTTP/1.1 exchange over a fresh TCP connection, written and read byte for byte: what a
//! server really answers (status line, every header as sent, body), including websocket upgrade
//! refusals, which HTTP client libraries hide or turn into errors.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a test reads of one answer: refusals and handshakes are a few hundred bytes.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased, values as sent, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of a header, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to send: the method, the target (path and query), headers, and a body.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_string(),
            target: target.to_string(),
            ..Request::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The headers of a websocket upgrade request (RFC 6455, a fixed key).
    pub fn websocket(self) -> Request {
        self.header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }
}

/// Send `request` to `addr` on a new connection and read the answer: up to the end of the
/// headers for a 101, else the body by its Content-Length, chunked, or up to the close.
pub async fn exchange(addr: SocketAddr, request: &Request) -> Answer {
    tokio::time::timeout(Duration::from_secs(10), exchange_inner(addr, request))
        .await
        .unwrap_or_else(|_| panic!("no answer within 10 s to {request:?}"))
}

async fn exchange_inner(addr: SocketAddr, request: &Request) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\n",
        request.method, request.target
    );
    let upgrade = request
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case("websocket"));
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !upgrade {
        head.push_str("connection: close\r\n");
    }
    if !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("content-length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&request.body).await.expect("write body");

    let mut buffer = Vec::new();
    let header_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "connection closed before the headers ended: {buffer:?}"
        );
        buffer.extend_from_slice(&chunk[..n]);
        assert!(buffer.len() < MAX_ANSWER, "headers too long");
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buffer[header_end + 4..].to_vec();
    let answer = |body| Answer {
        status,
        headers: headers.clone(),
        body,
    };
    if status == 101 {
        return answer(Vec::new());
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    loop {
        if let Some(length) = length
            && body.len() >= length
        {
            body.truncate(length);
            return answer(body);
        }
        if chunked && let Some(decoded) = dechunk(&body) {
            return answer(decoded);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return answer(body);
        }
        body.extend_from_slice(&chunk[..n]);
        assert!(body.len() < MAX_ANSWER, "answer too long");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The body of a complete chunked encoding, or `None` while it is incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
