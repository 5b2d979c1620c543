//! The engine-level gate in front of socketioxide: Origin allowlist, handshake rate limit,
//! cookie authentication and the per-user socket cap, decided on the first engine request
//! (the one without `sid`) exactly where production decides, and refused the way production
//! refuses (HTTP 400, no Socket.IO CONNECT_ERROR).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::AppState;
use super::auth::{self, Refusal};
use super::metrics::Metrics;
use crate::protocol::HANDSHAKE_REFUSAL_BODY;

/// The Origin allowlist, which production never enforces (`no-origin-check` in ARCHITECTURE.md).
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        OriginPolicy {
            allowed: allowed.iter().map(|o| normalise_origin(o)).collect(),
        }
    }

    /// A request without Origin (a non-browser client) is allowed, and so is a same-origin one;
    /// any other Origin must be listed.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = normalise_origin(origin);
        if self.allowed.contains(&origin) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match (host, origin.split_once("://")) {
            (Some(host), Some((_, origin_host))) => origin_host.eq_ignore_ascii_case(host),
            _ => false,
        }
    }
}

fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn is_engine_request(path: &str, engine_path: &str) -> bool {
    path.strip_prefix(engine_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn wants_websocket(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        || query_param(req.uri().query(), "transport") == Some("websocket")
}

/// How a refusal looks on the wire. Polling gets engine.io's JSON error body; a websocket
/// upgrade gets a bare status, as engine.io's `abortUpgrade` writes it.
fn refuse(status: StatusCode, websocket: bool) -> Response {
    let mut response = if websocket {
        let mut r = (status, status.canonical_reason().unwrap_or("")).into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else {
        let body = match status {
            StatusCode::FORBIDDEN => r#"{"code":4,"message":"Forbidden"}"#,
            StatusCode::TOO_MANY_REQUESTS => r#"{"code":3,"message":"Too many requests"}"#,
            _ => HANDSHAKE_REFUSAL_BODY,
        };
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

pub async fn engine_gate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if !is_engine_request(req.uri().path(), &app.engine_path) {
        return next.run(req).await;
    }
    let websocket = wants_websocket(&req);
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
        return refuse(StatusCode::FORBIDDEN, websocket);
    }
    // Requests of an open session (polling, upgrade) carry its sid and were checked at its
    // handshake; socketioxide answers unknown sids itself.
    if query_param(req.uri().query(), "sid").is_some() {
        return next.run(req).await;
    }
    if !app.limits.allow_handshake(peer) {
        tracing::debug!(%peer, "handshake rate limit reached");
        app.metrics.limited("handshake");
        Metrics::reason(&app.metrics.handshakes_refused, "rate_limited");
        return refuse(StatusCode::TOO_MANY_REQUESTS, websocket);
    }
    match auth::authenticate(req.headers(), &app.secrets, app.store.as_ref()).await {
        Ok(authenticated) => {
            if !app.limits.user_has_room(authenticated.user.user_id) {
                tracing::info!(%peer, user = %authenticated.user.username, "per-user socket cap reached");
                app.metrics.limited("connections_per_user");
                Metrics::reason(&app.metrics.handshakes_refused, "too_many_connections");
                return refuse(StatusCode::TOO_MANY_REQUESTS, websocket);
            }
            req.extensions_mut().insert(authenticated);
            next.run(req).await
        }
        Err(refusal) => {
            log_refusal(peer, refusal);
            Metrics::reason(&app.metrics.handshakes_refused, refusal.as_str());
            refuse(StatusCode::BAD_REQUEST, websocket)
        }
    }
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_policy() {
        let p = OriginPolicy::new(&["https://sc-market.space/".into()]);
        assert!(p.allows(&headers(&[])));
        assert!(p.allows(&headers(&[("origin", "https://SC-market.space")])));
        assert!(p.allows(&headers(&[
            ("origin", "http://127.0.0.1:7000"),
            ("host", "127.0.0.1:7000")
        ])));
        assert!(!p.allows(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:7000")
        ])));
        assert!(!p.allows(&headers(&[("origin", "null")])));
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
