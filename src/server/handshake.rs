//! The engine-level gate in front of socketioxide: Origin allowlist, handshake rate limit,
//! cookie authentication and the per-user socket cap, decided on the first engine request
//! (the one without `sid`) exactly where production decides, and refused the way production
//! refuses (HTTP 400, no Socket.IO CONNECT_ERROR). It also makes engineioxide's own answers to
//! broken engine requests look like engine.io's, which clients and proxies may read: numeric
//! error codes, a refused upgrade as `text/html`, and 400 (not 101, then a close) for an
//! upgrade to a session that does not exist.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Io;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use socketioxide::socket::Sid;

use super::AppState;
use super::auth::{self, Refusal};
use super::metrics::Metrics;
use crate::protocol::HANDSHAKE_REFUSAL_BODY;

pub use super::origin::OriginPolicy;

/// The largest engineioxide answer the gate reads back (an open packet or an error body is
/// about a hundred bytes); anything larger passes through untouched.
const MAX_REWRITTEN_BODY: usize = 16 * 1024;

/// What the gate shares: the app, the Socket.IO server (to look up namespace sockets), and the
/// polling sessions it saw open, since engineioxide does not say which engine sessions exist.
pub struct Gate {
    app: AppState,
    io: Io,
    polling: PollingSessions,
}

impl Gate {
    /// `connect_timeout` is how long an engine session may live without a namespace CONNECT:
    /// after it, a session is either a namespace socket or closed.
    pub fn new(app: AppState, io: Io, connect_timeout: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            app,
            io,
            polling: PollingSessions::new(connect_timeout),
        })
    }

    /// Whether an upgrade to `sid` may reach a live engine session: one opened over polling
    /// moments ago (its namespace CONNECT may still be on its way), or a connected namespace
    /// socket, whose id is its engine sid in socketioxide. An engine session that closed
    /// before its CONNECT is still "known" until `connect_timeout` has passed; an upgrade to it
    /// then gets 101 and a close, as every upgrade did before this check.
    fn knows(&self, sid: &str) -> bool {
        self.polling.contains(sid)
            || sid
                .parse::<Sid>()
                .is_ok_and(|sid| self.io.has_local_socket(sid))
    }
}

/// Sids of engine sessions opened over polling in the last `ttl`.
struct PollingSessions {
    opened: DashMap<String, Instant>,
    ttl: Duration,
    inserts: AtomicU64,
}

impl PollingSessions {
    fn new(ttl: Duration) -> Self {
        PollingSessions {
            opened: DashMap::new(),
            ttl,
            inserts: AtomicU64::new(0),
        }
    }

    fn insert(&self, sid: String) {
        self.opened.insert(sid, Instant::now());
        // Forget expired sessions now and then: the map holds at most the handshakes of one
        // `ttl`, which the per-IP handshake rate bounds.
        if self.inserts.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
            self.opened.retain(|_, at| at.elapsed() < self.ttl);
        }
    }

    fn contains(&self, sid: &str) -> bool {
        self.opened
            .get(sid)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn is_engine_request(path: &str, engine_path: &str) -> bool {
    path.strip_prefix(engine_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A real websocket upgrade (the `Upgrade: websocket` header), which engine.io answers on the
/// raw socket rather than with a JSON body.
fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// engine.io's `abortUpgrade`: the message as a small `text/html` body, then the connection is
/// closed. (engine.io always writes status 400; `serve`'s own refusals keep 403 and 429, which
/// say more.)
fn abort_upgrade(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(message.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// How a refusal looks on the wire. Polling gets engine.io's JSON error body; a websocket
/// upgrade gets engine.io's `abortUpgrade` answer.
fn refuse(status: StatusCode, upgrade: bool) -> Response {
    let (body, message) = match status {
        StatusCode::FORBIDDEN => (r#"{"code":4,"message":"Forbidden"}"#, "Forbidden"),
        StatusCode::TOO_MANY_REQUESTS => (
            r#"{"code":3,"message":"Too many requests"}"#,
            "Too many requests",
        ),
        _ => (HANDSHAKE_REFUSAL_BODY, "Bad request"),
    };
    let mut response = if upgrade {
        abort_upgrade(status, message)
    } else {
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The refusal of a request from a disallowed Origin (also used for preflights by `origin.rs`).
pub fn refuse_origin(upgrade: bool) -> Response {
    refuse(StatusCode::FORBIDDEN, upgrade)
}

pub async fn engine_gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let app = &gate.app;
    if !is_engine_request(req.uri().path(), &app.engine_path) {
        return next.run(req).await;
    }
    let upgrade = is_upgrade(&req);
    let peer: IpAddr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());

    if !app.origins.allows(req.headers()) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("<not text>");
        tracing::info!(%peer, origin, "refused an engine request from a disallowed Origin");
        Metrics::reason(&app.metrics.handshakes_refused, "origin_not_allowed");
        return refuse(StatusCode::FORBIDDEN, upgrade);
    }
    // Requests of an open session (polling, upgrade) carry its sid and were checked at its
    // handshake. engineioxide answers an unknown sid on polling itself, but accepts any
    // well-formed sid on an upgrade and only then closes it: engine.io refuses it with 400.
    if let Some(sid) = query_param(req.uri().query(), "sid") {
        if upgrade && !gate.knows(sid) {
            tracing::debug!(%peer, "refused an upgrade to an unknown sid");
            return abort_upgrade(StatusCode::BAD_REQUEST, "Session ID unknown");
        }
        let post = req.method() == Method::POST;
        let mut response = as_engine_io(next.run(req).await, upgrade).await;
        if post && response.status() == StatusCode::OK {
            // engine.io answers a polling POST `ok` as text/html, engineioxide as text/plain.
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        }
        return response;
    }
    if !app.limits.allow_handshake(peer) {
        tracing::debug!(%peer, "handshake rate limit reached");
        app.metrics.limited("handshake");
        Metrics::reason(&app.metrics.handshakes_refused, "rate_limited");
        return refuse(StatusCode::TOO_MANY_REQUESTS, upgrade);
    }
    match auth::authenticate_handshake(req.headers(), &app.secrets, app.store.as_ref()).await {
        Ok(authenticated) => {
            if !app.limits.user_has_room(authenticated.user.user_id) {
                tracing::info!(%peer, user = %authenticated.user.username, "per-user socket cap reached");
                app.metrics.limited("connections_per_user");
                Metrics::reason(&app.metrics.handshakes_refused, "too_many_connections");
                return refuse(StatusCode::TOO_MANY_REQUESTS, upgrade);
            }
            req.extensions_mut().insert(authenticated);
            detach_request_head(&mut req);
            let polling_open = req.method() == Method::GET
                && query_param(req.uri().query(), "transport") == Some("polling");
            let response = next.run(req).await;
            if polling_open && response.status() == StatusCode::OK {
                return remember_polling_open(&gate, response).await;
            }
            as_engine_io(response, upgrade).await
        }
        Err(refusal) => {
            log_refusal(peer, refusal);
            Metrics::reason(&app.metrics.handshakes_refused, refusal.as_str());
            refuse(StatusCode::BAD_REQUEST, upgrade)
        }
    }
}

/// Give the head of a session's opening request its own memory. hyper parses the URI and every
/// header value as slices of the connection's read buffer (8 to 16 KiB), and engineioxide keeps
/// the head of the request that opened a session for the session's whole life: without these
/// copies, every idle session holds its connection's entire read buffer. The copies are the
/// size of the head (a few hundred bytes). A value that will not copy (it always does: hyper
/// only hands over valid values) stays as it was. The `Cookie` header is left out: it has been
/// read (the session holds its `Authenticated` user), a browser's can run to kilobytes of other
/// sites' cookies, and a credential need not sit in memory for the session's life.
fn detach_request_head(req: &mut Request) {
    let headers = std::mem::take(req.headers_mut());
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        if name == header::COOKIE {
            continue;
        }
        let copy = HeaderValue::from_bytes(value.as_bytes()).map_or_else(
            |_| value.clone(),
            |mut copy| {
                copy.set_sensitive(value.is_sensitive());
                copy
            },
        );
        owned.append(name.clone(), copy);
    }
    *req.headers_mut() = owned;
    let uri = Uri::from_maybe_shared(Bytes::copy_from_slice(req.uri().to_string().as_bytes()));
    if let Ok(uri) = uri {
        // axum's router kept a copy of the URI too, which holds the same buffer.
        if let Some(original) = req.extensions_mut().get_mut::<OriginalUri>() {
            original.0 = uri.clone();
        }
        *req.uri_mut() = uri;
    }
}

/// Note the sid of a polling open packet (`0{"sid":"...",...}`), so its upgrade is let through.
async fn remember_polling_open(gate: &Gate, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await else {
        tracing::warn!("could not read a polling open packet back");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let sid = bytes
        .strip_prefix(b"0")
        .and_then(|json| {
            let end = json.iter().position(|b| *b == 0x1e).unwrap_or(json.len());
            serde_json::from_slice::<serde_json::Value>(&json[..end]).ok()
        })
        .and_then(|open| open.get("sid")?.as_str().map(str::to_string));
    match sid {
        Some(sid) => gate.polling.insert(sid),
        None => tracing::warn!("a polling open answer without a sid"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// engineioxide's error answers as engine.io writes them: `{"code":5,...}` with a number, not
/// `{"code":"5",...}`, and on an upgrade the bare message as `text/html`. Other answers pass
/// through untouched.
async fn as_engine_io(response: Response, upgrade: bool) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::BAD_REQUEST || !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITTEN_BODY).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some((code, message)) = engine_error(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if upgrade {
        return abort_upgrade(StatusCode::BAD_REQUEST, &message);
    }
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut response = Response::from_parts(parts, Body::from(body));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// The code and message of an engine error body, the code as a number whether it was written
/// as one or as a string.
fn engine_error(body: &[u8]) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = match value.get("code")? {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some((code, value.get("message")?.as_str()?.to_string()))
}

fn log_refusal(peer: IpAddr, refusal: Refusal) {
    match refusal {
        Refusal::StoreError => {
            tracing::error!(%peer, reason = refusal.as_str(), "handshake refused")
        }
        _ => tracing::info!(%peer, reason = refusal.as_str(), "handshake refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_error_codes_become_numbers() {
        assert_eq!(
            engine_error(br#"{"code":"5","message":"Unsupported protocol version"}"#),
            Some((5, "Unsupported protocol version".into()))
        );
        assert_eq!(
            engine_error(br#"{"code":1,"message":"Session ID unknown"}"#),
            Some((1, "Session ID unknown".into()))
        );
        for other in [&b"{}"[..], b"not json", br#"{"code":"x","message":"m"}"#] {
            assert_eq!(engine_error(other), None);
        }
    }

    /// What hyper hands over: URI and header values as slices of one read buffer.
    fn request_in_one_buffer() -> (Request, Bytes) {
        let buffer =
            Bytes::from(b"/ws/?EIO=4&transport=websocket|scmarket.sid=abc|websocket".to_vec());
        let uri = Uri::from_maybe_shared(buffer.slice(0..30)).unwrap();
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri.clone();
        req.extensions_mut().insert(OriginalUri(uri));
        let cookie = HeaderValue::from_maybe_shared(buffer.slice(31..47)).unwrap();
        req.headers_mut().insert(header::COOKIE, cookie);
        let upgrade = HeaderValue::from_maybe_shared(buffer.slice(48..)).unwrap();
        req.headers_mut().insert(header::UPGRADE, upgrade);
        (req, buffer)
    }

    fn inside(buffer: &Bytes, bytes: &[u8]) -> bool {
        buffer.as_ptr_range().contains(&bytes.as_ptr())
    }

    #[test]
    fn a_detached_request_head_holds_nothing_of_the_read_buffer() {
        let (mut req, buffer) = request_in_one_buffer();
        assert!(inside(&buffer, req.headers()[header::COOKIE].as_bytes()));
        detach_request_head(&mut req);
        for value in req.headers().values() {
            assert!(!inside(&buffer, value.as_bytes()), "{value:?}");
        }
        let path = req.uri().path_and_query().unwrap().as_str();
        assert!(!inside(&buffer, path.as_bytes()), "{path}");
        let original = req.extensions().get::<OriginalUri>().unwrap();
        let original = original.0.path_and_query().unwrap().as_str();
        assert!(!inside(&buffer, original.as_bytes()), "{original}");
        // Same head, own memory.
        assert_eq!(req.uri(), "/ws/?EIO=4&transport=websocket");
        assert_eq!(req.headers()[header::UPGRADE], "websocket");
        assert_eq!(
            req.headers().get(header::COOKIE),
            None,
            "read, then dropped"
        );
    }

    #[test]
    fn engine_paths() {
        assert!(is_engine_request("/ws/", "/ws"));
        assert!(is_engine_request("/ws", "/ws"));
        assert!(!is_engine_request("/wsx", "/ws"));
        assert!(!is_engine_request("/api/chats", "/ws"));
        assert_eq!(query_param(Some("EIO=4&sid=abc"), "sid"), Some("abc"));
        assert_eq!(query_param(Some("EIO=4&transport=polling"), "sid"), None);
    }
}
