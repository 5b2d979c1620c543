//! Which web pages may use `serve` from a browser, and the CORS answers they get. Production
//! answers CORS for its listed origins (the origin echoed back, credentials allowed, `Vary:
//! Origin`, preflights 204) but never refuses anyone (`no-origin-check` in ARCHITECTURE.md);
//! here an Origin that is neither listed nor the server's own is refused: 403 on every engine
//! request (`handshake.rs`), on preflights, and on state-changing REST requests (`rest.rs`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::AppState;

/// The origins SC Market's web client is served from in development (Vite's dev server, by
/// either loopback name), allowed by `serve --dev` on top of `--allowed-origin`.
pub const DEV_WEB_CLIENT_ORIGINS: [&str; 2] = ["http://localhost:5173", "http://127.0.0.1:5173"];

/// What a preflight allows: the `cors` package's default list, which production answers.
pub const ALLOWED_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";

/// Where a request comes from, as its `Origin` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOrigin {
    /// No `Origin` header: not a browser's cross-origin request (curl, a bot, a server).
    Absent,
    /// A page served by this server itself.
    SameOrigin,
    /// A listed origin: CORS permissions with credentials.
    Listed,
    /// Any other origin, or an `Origin` that is not text.
    Foreign,
}

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

    /// The policy of a server: `--allowed-origin`, plus the web client's dev origins in
    /// development mode (logged, so nobody wonders why a page on :5173 gets in).
    pub fn for_server(allowed: &[String], dev: bool) -> Self {
        let mut policy = OriginPolicy::new(allowed);
        if dev {
            for origin in DEV_WEB_CLIENT_ORIGINS {
                if !policy.allowed.iter().any(|o| o == origin) {
                    policy.allowed.push(origin.to_string());
                }
            }
            tracing::info!(
                origins = %DEV_WEB_CLIENT_ORIGINS.join(", "),
                "development mode: the web client's dev origins are allowed (CORS with credentials)"
            );
        }
        policy
    }

    pub fn classify(&self, headers: &HeaderMap) -> RequestOrigin {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return RequestOrigin::Absent;
        };
        let Ok(origin) = origin.to_str() else {
            return RequestOrigin::Foreign;
        };
        let origin = normalise_origin(origin);
        if self.allowed.contains(&origin) {
            return RequestOrigin::Listed;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match (host, origin.split_once("://")) {
            (Some(host), Some((_, origin_host))) if origin_host.eq_ignore_ascii_case(host) => {
                RequestOrigin::SameOrigin
            }
            _ => RequestOrigin::Foreign,
        }
    }

    /// A request without Origin (a non-browser client) is allowed, and so is a same-origin one;
    /// any other Origin must be listed.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        self.classify(headers) != RequestOrigin::Foreign
    }
}

fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The outermost layer of the router: answers preflights, and gives every answer to a listed
/// origin (polling, the websocket upgrade, REST, refusals too) its CORS permissions, so the
/// browser hands the answer to the page.
pub async fn cors(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let from = app.origins.classify(req.headers());
    let origin = req.headers().get(header::ORIGIN).cloned();
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let mut response = if req.method() == Method::OPTIONS && from != RequestOrigin::Absent {
        preflight(&app, &req, from)
    } else {
        next.run(req).await
    };
    // engine.io writes a refused upgrade straight to the socket, without the headers its
    // middlewares set (those go on a 101 only).
    if upgrade && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (RequestOrigin::Listed, Some(origin)) = (from, origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// A preflight (`OPTIONS` with an Origin), answered for every path as production's `cors`
/// middleware does: 204, and for a listed origin the methods and the request headers asked
/// for. A foreign origin is refused with the 403 of the path it asks about.
fn preflight(app: &AppState, req: &Request, from: RequestOrigin) -> Response {
    if from == RequestOrigin::Foreign {
        tracing::info!(origin = ?req.headers().get(header::ORIGIN), path = req.uri().path(), "refused a preflight from a disallowed Origin");
        return if super::handshake::is_engine_request(req.uri().path(), &app.engine_path) {
            super::handshake::refuse_origin(false)
        } else {
            super::rest::origin_refused()
        };
    }
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if from == RequestOrigin::Listed {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            headers.append(
                header::VARY,
                HeaderValue::from_static("Access-Control-Request-Headers"),
            );
        }
    }
    response
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
        assert_eq!(p.classify(&headers(&[])), RequestOrigin::Absent);
        assert_eq!(
            p.classify(&headers(&[("origin", "https://SC-market.space")])),
            RequestOrigin::Listed
        );
        assert_eq!(
            p.classify(&headers(&[
                ("origin", "http://127.0.0.1:7000"),
                ("host", "127.0.0.1:7000")
            ])),
            RequestOrigin::SameOrigin
        );
        assert!(!p.allows(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:7000")
        ])));
        assert!(!p.allows(&headers(&[("origin", "null")])));
    }

    #[test]
    fn dev_adds_the_web_clients_origins_once() {
        let p = OriginPolicy::for_server(&["http://localhost:5173".into()], true);
        assert_eq!(p.allowed.len(), 2);
        for origin in DEV_WEB_CLIENT_ORIGINS {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            assert_eq!(p.classify(&h), RequestOrigin::Listed, "{origin}");
        }
        assert!(OriginPolicy::for_server(&[], false).allowed.is_empty());
    }
}
