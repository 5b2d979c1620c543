//! `serve` as a browser sees it: CORS for allowed origins on polling, the upgrade and REST;
//! preflights; the Origin allowlist on state-changing REST requests; REST bodies only as
//! `application/json`; and engine.io's own answers to broken engine requests (numeric error
//! codes, `Bad request` as text/html on a refused upgrade, 400 for an upgrade to an unknown
//! sid). Every exchange is raw HTTP/1.1 over a real socket (`common::http1`).

mod common;

use common::http1::{Answer, Request, exchange};
use common::*;
use scmarket_ws::server::{Config, RunningServer};

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";
const POLLING: &str = "/ws/?EIO=4&transport=polling";

async fn server_allowing(origin: &str) -> RunningServer {
    let origin = origin.to_string();
    start_dev_server_with(move |c| c.allowed_origins = vec![origin]).await
}

fn assert_cors(answer: &Answer, origin: &str, what: &str) {
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(origin),
        "{what}: Access-Control-Allow-Origin in {:?}",
        answer.headers
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true"),
        "{what}: Access-Control-Allow-Credentials in {:?}",
        answer.headers
    );
    assert_varies_by_origin(answer, what);
}

fn assert_varies_by_origin(answer: &Answer, what: &str) {
    let vary: Vec<&str> = answer
        .headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    assert!(
        vary.iter().any(|v| v.eq_ignore_ascii_case("origin")),
        "{what}: Vary: Origin in {:?}",
        answer.headers
    );
}

fn assert_no_cors(answer: &Answer, what: &str) {
    assert!(
        answer.header("access-control-allow-origin").is_none()
            && answer.header("access-control-allow-credentials").is_none(),
        "{what}: no CORS permission expected in {:?}",
        answer.headers
    );
}

/// The sid of an engine open packet `0{"sid":...}` (a polling body may carry more packets).
fn open_sid(answer: &Answer) -> String {
    let text = answer.text();
    let json = text
        .strip_prefix('0')
        .and_then(|t| t.split('\u{1e}').next())
        .unwrap_or_else(|| panic!("not an open packet: {text}"));
    let open: serde_json::Value = serde_json::from_str(json).expect("open packet JSON");
    open["sid"].as_str().expect("sid").to_string()
}

#[tokio::test]
async fn polling_from_an_allowed_origin_gets_cors_with_credentials() {
    let server = server_allowing(APP).await;
    let addr = server.local_addr();
    let cookie = session_cookie(&server.http_url(), "alice").await;

    let open = exchange(
        addr,
        &Request::new("GET", POLLING)
            .header("origin", APP)
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.text());
    assert_cors(&open, APP, "polling handshake");
    let sid = open_sid(&open);

    let connect = exchange(
        addr,
        &Request::new("POST", &format!("{POLLING}&sid={sid}"))
            .header("origin", APP)
            .header("content-type", "text/plain;charset=UTF-8")
            .body("40"),
    )
    .await;
    assert_eq!(connect.status, 200, "{}", connect.text());
    assert_cors(&connect, APP, "polling POST");
    let read = exchange(
        addr,
        &Request::new("GET", &format!("{POLLING}&sid={sid}")).header("origin", APP),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_cors(&read, APP, "polling GET");
    server.shutdown().await;
}

#[tokio::test]
async fn preflights_are_answered_204_for_allowed_origins_and_403_for_others() {
    let server = server_allowing(APP).await;
    let addr = server.local_addr();
    for target in [
        POLLING,
        "/api/dev/login",
        "/api/chats",
        &format!("/api/chats/{DIRECT_CHAT}/messages"),
    ] {
        let preflight = |origin: &str| {
            Request::new("OPTIONS", target)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
        };
        let allowed = exchange(addr, &preflight(APP)).await;
        assert_eq!(allowed.status, 204, "{target}: {}", allowed.text());
        assert_cors(&allowed, APP, target);
        let methods = allowed
            .header("access-control-allow-methods")
            .unwrap_or_else(|| panic!("{target}: Allow-Methods in {:?}", allowed.headers));
        for method in ["GET", "POST"] {
            assert!(methods.contains(method), "{target}: {methods}");
        }
        let headers = allowed
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(headers.contains("content-type"), "{target}: {headers:?}");
        assert!(allowed.body.is_empty(), "{target}: a preflight has no body");

        let refused = exchange(addr, &preflight(EVIL)).await;
        assert_eq!(refused.status, 403, "{target}: preflight from {EVIL}");
        assert_no_cors(&refused, target);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_upgrade_carries_cors_headers() {
    let server = server_allowing(APP).await;
    let cookie = session_cookie(&server.http_url(), "alice").await;
    let upgrade = exchange(
        server.local_addr(),
        &Request::new("GET", "/ws/?EIO=4&transport=websocket")
            .websocket()
            .header("origin", APP)
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(upgrade.status, 101, "{:?}", upgrade.headers);
    assert_cors(&upgrade, APP, "websocket upgrade");
    server.shutdown().await;
}

#[tokio::test]
async fn rest_cors_and_the_origin_allowlist_on_state_changing_requests() {
    let server = server_allowing(APP).await;
    let base = server.http_url();
    let addr = server.local_addr();
    let cookie = session_cookie(&base, "alice").await;

    let read = exchange(
        addr,
        &Request::new("GET", "/api/chats")
            .header("origin", APP)
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_cors(&read, APP, "GET /api/chats");

    let post = |origin: &str, content: &str| {
        Request::new("POST", &format!("/api/chats/{DIRECT_CHAT}/messages"))
            .header("origin", origin)
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "content": content }).to_string())
    };
    let allowed = exchange(addr, &post(APP, "from the app")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_cors(&allowed, APP, "POST from the allowed origin");

    // A cross-site form or fetch from elsewhere changes nothing, whatever the cookie allows.
    let refused = exchange(addr, &post(EVIL, "from a hostile page")).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_no_cors(&refused, "POST from a hostile origin");
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON error");
    assert_eq!(body["error"]["code"], "FORBIDDEN", "{body}");
    for (what, request) in [
        (
            "dev login",
            Request::new("POST", "/api/dev/login")
                .header("origin", EVIL)
                .header("content-type", "application/json")
                .body(r#"{"username":"mallory"}"#),
        ),
        (
            "create chat",
            Request::new("POST", "/api/chats")
                .header("origin", EVIL)
                .header("cookie", &cookie)
                .header("content-type", "application/json")
                .body(r#"{"users":["carol"]}"#),
        ),
    ] {
        let answer = exchange(addr, &request).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text());
    }
    let chat = get_json(format!("{base}/api/chats/{DIRECT_CHAT}"), &cookie).await;
    let contents: Vec<&str> = chat["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(contents.contains(&"from the app"), "{contents:?}");
    assert!(!contents.contains(&"from a hostile page"), "{contents:?}");

    // Reads from another origin are served without CORS headers: the browser keeps the answer
    // from the page.
    let foreign_read = exchange(
        addr,
        &Request::new("GET", "/api/chats")
            .header("origin", EVIL)
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(foreign_read.status, 200);
    assert_no_cors(&foreign_read, "GET from another origin");
    // Same-origin and Origin-less requests are always allowed.
    let same_origin = exchange(addr, &post(&base, "same origin")).await;
    assert_eq!(same_origin.status, 200, "{}", same_origin.text());
    server.shutdown().await;
}

#[tokio::test]
async fn dev_mode_allows_the_web_clients_dev_origins() {
    let server = start_dev_server().await;
    let addr = server.local_addr();
    let cookie = session_cookie(&server.http_url(), "alice").await;
    for origin in ["http://localhost:5173", "http://127.0.0.1:5173"] {
        let open = exchange(
            addr,
            &Request::new("GET", POLLING)
                .header("origin", origin)
                .header("cookie", &cookie),
        )
        .await;
        assert_eq!(open.status, 200, "{origin}: {}", open.text());
        assert_cors(&open, origin, origin);
    }
    let other = exchange(
        addr,
        &Request::new("GET", POLLING)
            .header("origin", "http://localhost:3000")
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(other.status, 403, "only the web client's dev origins");
    server.shutdown().await;

    // Without --dev, the dev origins are not allowed.
    let mut config = Config::ephemeral_dev();
    config.dev = false;
    config.secrets.session = Some("a-session-secret-of-at-least-32-bytes!".into());
    let server = start_server(config).await;
    let answer = exchange(
        server.local_addr(),
        &Request::new("GET", POLLING).header("origin", "http://localhost:5173"),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    server.shutdown().await;
}

#[tokio::test]
async fn engine_errors_carry_numeric_codes_as_engine_io() {
    let server = start_dev_server().await;
    let addr = server.local_addr();
    let cookie = session_cookie(&server.http_url(), "alice").await;
    for (target, method, body) in [
        (
            "/ws/?EIO=3&transport=polling",
            "GET",
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        (
            "/ws/?EIO=4&transport=carrier-pigeon",
            "GET",
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "/ws/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAAAA",
            "GET",
            r#"{"code":1,"message":"Session ID unknown"}"#,
        ),
        (
            "/ws/?EIO=4&transport=polling",
            "PUT",
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
    ] {
        let answer = exchange(
            addr,
            &Request::new(method, target).header("cookie", &cookie),
        )
        .await;
        assert_eq!(answer.status, 400, "{method} {target}");
        assert_eq!(answer.text(), body, "{method} {target}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{method} {target}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_upgrade_is_answered_as_engine_io_does() {
    let server = start_dev_server().await;
    let refused = exchange(
        server.local_addr(),
        &Request::new("GET", "/ws/?EIO=4&transport=websocket").websocket(),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.text(), "Bad request");
    assert_eq!(refused.header("content-type"), Some("text/html"));
    assert_eq!(refused.header("connection"), Some("close"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_to_an_unknown_sid_is_refused_with_400() {
    let server = start_dev_server().await;
    let addr = server.local_addr();
    let cookie = session_cookie(&server.http_url(), "alice").await;
    for sid in ["AAAAAAAAAAAAAAAA", "not-a-sid", "AAAAAAAAAAAAAAAAAAAAAA"] {
        let answer = exchange(
            addr,
            &Request::new("GET", &format!("/ws/?EIO=4&transport=websocket&sid={sid}"))
                .websocket()
                .header("cookie", &cookie),
        )
        .await;
        assert_eq!(answer.status, 400, "sid {sid}: {:?}", answer.headers);
        assert_eq!(answer.text(), "Session ID unknown", "sid {sid}");
        assert_eq!(answer.header("content-type"), Some("text/html"));
    }

    // A real polling session still upgrades, before and after its namespace CONNECT.
    for connect_first in [false, true] {
        let open = exchange(
            addr,
            &Request::new("GET", POLLING).header("cookie", &cookie),
        )
        .await;
        let sid = open_sid(&open);
        if connect_first {
            let posted = exchange(
                addr,
                &Request::new("POST", &format!("{POLLING}&sid={sid}")).body("40"),
            )
            .await;
            assert_eq!(posted.status, 200);
        }
        let upgrade = exchange(
            addr,
            &Request::new("GET", &format!("/ws/?EIO=4&transport=websocket&sid={sid}")).websocket(),
        )
        .await;
        assert_eq!(
            upgrade.status, 101,
            "upgrade of a live polling session (CONNECT sent: {connect_first})"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rest_401_says_authentication_required() {
    let server = start_dev_server().await;
    let answer = exchange(server.local_addr(), &Request::new("GET", "/api/chats")).await;
    assert_eq!(answer.status, 401);
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body["error"]["message"], "Authentication required",
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn rest_bodies_must_be_application_json() {
    let server = start_dev_server().await;
    let base = server.http_url();
    let addr = server.local_addr();
    let cookie = session_cookie(&base, "alice").await;
    let target = format!("/api/chats/{DIRECT_CHAT}/messages");
    let json = r#"{"content":"typed as something else"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let mut request = Request::new("POST", &target)
            .header("cookie", &cookie)
            .body(json);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = exchange(addr, &request).await;
        assert_eq!(answer.status, 415, "{content_type:?}: {}", answer.text());
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON error");
        assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{body}");
    }
    for (route, body) in [
        ("/api/dev/login", r#"{"username":"alice"}"#),
        ("/api/chats", r#"{"users":["bob"]}"#),
    ] {
        let answer = exchange(
            addr,
            &Request::new("POST", route)
                .header("cookie", &cookie)
                .header("content-type", "text/plain")
                .body(body),
        )
        .await;
        assert_eq!(answer.status, 415, "{route}");
    }
    let chat = get_json(format!("{base}/api/chats/{DIRECT_CHAT}"), &cookie).await;
    assert!(
        !chat.to_string().contains("typed as something else"),
        "nothing stored: {chat}"
    );

    let accepted = exchange(
        addr,
        &Request::new("POST", &target)
            .header("cookie", &cookie)
            .header("content-type", "Application/JSON; charset=utf-8")
            .body(json),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    // An unknown route is still a 404, whatever the body's type.
    let unknown = exchange(
        addr,
        &Request::new("POST", "/api/nothing")
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    assert_eq!(unknown.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn serve_dev_says_which_dev_origins_it_allows() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = common::binary::async_command()
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite::memory:",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let listening = line.contains("listening on");
            log.push(line);
            if listening {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .expect("serve --dev starts within 20 s");
    let _ = child.kill().await;
    let said = log
        .iter()
        .find(|l| l.contains("dev origins"))
        .unwrap_or_else(|| panic!("no line about the dev origins in {log:#?}"));
    for origin in ["http://localhost:5173", "http://127.0.0.1:5173"] {
        assert!(said.contains(origin), "{said}");
    }
}
