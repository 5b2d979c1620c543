//! Differential test: the same probes (raw HTTP/1.1 and raw Engine.IO frames) against `serve`
//! and against the production twin, a Node socket.io 4.8 server configured like production
//! (`tests/node/production-server.js`, every defect `serve` fixes on purpose turned off with
//! `--fix`). Statuses, the headers a client or browser reads, bodies and packet sequences are
//! compared after replacing what is random by its shape (sids, message ids, timestamps).
//!
//! Every difference must be in [`ALLOWED`], whose reasons are rows of the README's tables
//! ("What it does differently from production, on purpose" and "Known differences"); any other
//! difference fails, and so does an allowed difference that is gone (the tables must not lie).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::http1::{Answer, Request, exchange};
use common::twin::ProductionTwin;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP: &str = "http://localhost:5173";
const EVIL: &str = "https://evil.example";
const POLLING: &str = "/ws/?EIO=4&transport=polling";
const WEBSOCKET: &str = "/ws/?EIO=4&transport=websocket";
const UNKNOWN_CHAT: &str = "5c0000c4-0000-4000-8000-0000000000ff";

/// Probes whose answers differ on purpose or where socketioxide cannot match, with the README
/// row that says so (the test checks that each text is in README.md).
const ALLOWED: &[(&str, &str)] = &[
    (
        "polling: reads until CONNECT",
        "the first ping comes as soon as the engine opens",
    ),
    (
        "websocket: frames before CONNECT",
        "the first ping comes as soon as the engine opens",
    ),
    (
        "socket ids",
        "the namespace socket id is the engine sid, 16 characters",
    ),
    (
        "REST: POST /api/chats",
        "`POST /api/chats` answers the chat's id",
    ),
];

/// What one probe saw, comparable across servers.
type Observations = BTreeMap<String, Value>;

/// One server under test: where it listens, and the cookies of its own dev logins.
struct Target {
    addr: SocketAddr,
    base: String,
    alice: String,
    bob: String,
    carol: String,
}

impl Target {
    async fn new(addr: SocketAddr, base: String) -> Target {
        Target {
            alice: session_cookie(&base, "alice").await,
            bob: session_cookie(&base, "bob").await,
            carol: session_cookie(&base, "carol").await,
            addr,
            base,
        }
    }
}

/// The headers a browser or a client acts on; `Vary` as a set of lower-case tokens.
fn relevant_headers(answer: &Answer) -> Value {
    let mut headers = serde_json::Map::new();
    for name in [
        "content-type",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "upgrade",
    ] {
        if let Some(value) = answer.header(name) {
            let value = if name == "content-type" {
                value.to_ascii_lowercase().replace("; ", ";")
            } else {
                value.to_string()
            };
            headers.insert(name.into(), value.into());
        }
    }
    let mut vary: Vec<String> = answer
        .headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    vary.sort();
    vary.dedup();
    if !vary.is_empty() {
        headers.insert("vary".into(), json!(vary));
    }
    Value::Object(headers)
}

fn observe(answer: &Answer, body: String) -> Value {
    json!({ "status": answer.status, "headers": relevant_headers(answer), "body": body })
}

/// `text` with each random part replaced by its shape.
fn normalise(text: &str, sids: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (sid, name) in sids {
        if !sid.is_empty() {
            text = text.replace(sid, name);
        }
    }
    // serverMessage: message_id and timestamp.
    if let Some(at) = text.find("\"message_id\":\"") {
        let start = at + "\"message_id\":\"".len();
        if let Some(len) = text[start..].find('"') {
            let id = text[start..start + len].to_string();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "message_id {id}");
            text = text.replace(&id, "<uuid>");
        }
    }
    if let Some(at) = text.find("\"timestamp\":\"") {
        let start = at + "\"timestamp\":\"".len();
        if let Some(len) = text[start..].find('"') {
            let stamp = text[start..start + len].to_string();
            assert!(
                stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
                "timestamp {stamp}: ISO-8601 UTC with milliseconds"
            );
            text = text.replace(&stamp, "<timestamp>");
        }
    }
    text
}

/// A packet with its sid replaced: the namespace socket id in a CONNECT, the engine sid
/// elsewhere (in socketioxide both are the same, which the "socket ids" probe records).
fn normalise_packet(packet: &str, sid: &str, namespace_sid: &str) -> String {
    if packet.starts_with("40") {
        normalise(packet, &[(namespace_sid, "<nsid>")])
    } else {
        normalise(packet, &[(sid, "<sid>")])
    }
}

fn open_sid(packet: &str) -> String {
    let json = packet.strip_prefix('0').expect("an open packet");
    let json = json.split('\u{1e}').next().unwrap_or_default();
    let open: Value = serde_json::from_str(json).expect("open packet JSON");
    open["sid"].as_str().expect("sid").to_string()
}

fn connect_sid(packet: &str) -> String {
    let connect: Value =
        serde_json::from_str(packet.strip_prefix("40").expect("a CONNECT")).expect("CONNECT JSON");
    connect["sid"].as_str().expect("namespace sid").to_string()
}

async fn engine_probes(t: &Target, seen: &mut Observations) {
    let cases: Vec<(&str, Request)> = vec![
        (
            "engine: polling handshake without a cookie",
            Request::new("GET", POLLING),
        ),
        (
            "engine: polling handshake with a forged cookie",
            Request::new("GET", POLLING).header("cookie", "scmarket.sid=s%3Aforged.sig"),
        ),
        (
            "engine: upgrade without a cookie",
            Request::new("GET", WEBSOCKET).websocket(),
        ),
        (
            "engine: EIO=3",
            Request::new("GET", "/ws/?EIO=3&transport=polling").header("cookie", &t.alice),
        ),
        (
            "engine: unknown transport",
            Request::new("GET", "/ws/?EIO=4&transport=carrier-pigeon").header("cookie", &t.alice),
        ),
        (
            "engine: polling with an unknown sid",
            Request::new("GET", &format!("{POLLING}&sid=AAAAAAAAAAAAAAAAAAAA")),
        ),
        (
            "engine: upgrade to an unknown sid",
            Request::new("GET", &format!("{WEBSOCKET}&sid=AAAAAAAAAAAAAAAAAAAA")).websocket(),
        ),
        (
            "engine: PUT handshake",
            Request::new("PUT", POLLING).header("cookie", &t.alice),
        ),
        (
            "engine: disallowed Origin, polling",
            Request::new("GET", POLLING)
                .header("cookie", &t.alice)
                .header("origin", EVIL),
        ),
        (
            "engine: disallowed Origin, upgrade",
            Request::new("GET", WEBSOCKET)
                .websocket()
                .header("cookie", &t.alice)
                .header("origin", EVIL),
        ),
        (
            "engine: refusal to an allowed Origin",
            Request::new("GET", POLLING).header("origin", APP),
        ),
        (
            "engine: preflight from an allowed Origin",
            Request::new("OPTIONS", POLLING)
                .header("origin", APP)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        ),
        (
            "engine: preflight from a disallowed Origin",
            Request::new("OPTIONS", POLLING)
                .header("origin", EVIL)
                .header("access-control-request-method", "POST"),
        ),
        (
            "engine: upgrade from an allowed Origin",
            Request::new("GET", WEBSOCKET)
                .websocket()
                .header("cookie", &t.alice)
                .header("origin", APP),
        ),
    ];
    for (name, request) in cases {
        let answer = exchange(t.addr, &request).await;
        seen.insert(name.into(), observe(&answer, answer.text()));
    }
}

/// A polling session as a browser runs it, from the listed origin: open, CONNECT, reads.
async fn polling_probes(t: &Target, seen: &mut Observations) {
    let get = |target: String| {
        Request::new("GET", &target)
            .header("origin", APP)
            .header("cookie", &t.alice)
    };
    let open = exchange(t.addr, &get(POLLING.into())).await;
    let sid = open_sid(&open.text());
    let sids = [(sid.as_str(), "<sid>")];
    seen.insert(
        "polling: open".into(),
        observe(&open, normalise(&open.text(), &sids)),
    );
    let session = format!("{POLLING}&sid={sid}");
    let connect = exchange(
        t.addr,
        &Request::new("POST", &session)
            .header("origin", APP)
            .header("content-type", "text/plain;charset=UTF-8")
            .body("40"),
    )
    .await;
    seen.insert("polling: CONNECT".into(), observe(&connect, connect.text()));

    // Reads until the namespace CONNECT arrives; pings are answered as a client would.
    let mut reads = Vec::new();
    let mut namespace_sid = String::new();
    for _ in 0..4 {
        let read = exchange(t.addr, &get(session.clone())).await;
        let text = read.text();
        for packet in text.split('\u{1e}') {
            if packet.starts_with("40") {
                namespace_sid = connect_sid(packet);
            }
        }
        reads.push(observe(&read, text.clone()));
        if !namespace_sid.is_empty() {
            break;
        }
        if text == "2" {
            exchange(
                t.addr,
                &Request::new("POST", &session)
                    .header("content-type", "text/plain;charset=UTF-8")
                    .body("3"),
            )
            .await;
        }
    }
    assert!(
        !namespace_sid.is_empty(),
        "no CONNECT over polling: {reads:?}"
    );
    let reads: Vec<Value> = reads
        .into_iter()
        .map(|mut r| {
            let body = r["body"].as_str().unwrap_or_default();
            let packets: Vec<String> = body
                .split('\u{1e}')
                .map(|p| normalise_packet(p, &sid, &namespace_sid))
                .collect();
            r["body"] = packets.join("\u{1e}").into();
            r
        })
        .collect();
    seen.insert("polling: reads until CONNECT".into(), json!(reads));
    seen.insert(
        "socket ids".into(),
        json!({
            "engine sid length": sid.len(),
            "namespace sid length": namespace_sid.len(),
            "namespace sid equals engine sid": sid == namespace_sid,
        }),
    );

    let upgrade = exchange(
        t.addr,
        &Request::new("GET", &format!("{WEBSOCKET}&sid={sid}"))
            .websocket()
            .header("origin", APP),
    )
    .await;
    seen.insert(
        "polling: upgrade of the session".into(),
        observe(&upgrade, String::new()),
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame within `wait`; pings answered and recorded as "2" when `pings` is set,
/// skipped otherwise.
async fn next_frame(ws: &mut Ws, wait: Duration, pings: bool) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let text = text.to_string();
                if text == "2" {
                    ws.send(Message::text("3")).await.expect("pong");
                    if !pings {
                        continue;
                    }
                }
                return Some(text);
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

async fn until(ws: &mut Ws, prefix: &str) -> String {
    next_frame(ws, Duration::from_secs(5), false)
        .await
        .filter(|f| f.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}... frame"))
}

/// A websocket session as the web client runs it: open, CONNECT, join with an ack, a message
/// posted over REST arrives, leave with an ack.
async fn websocket_probes(t: &Target, seen: &mut Observations) {
    let mut request = format!("ws://{}{WEBSOCKET}", t.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", t.alice.parse().unwrap());
    request.headers_mut().insert("origin", APP.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket opens");
    let open = next_frame(&mut ws, Duration::from_secs(5), true)
        .await
        .expect("open packet");
    let sid = open_sid(&open);
    let mut early = Vec::new();
    while let Some(frame) = next_frame(&mut ws, Duration::from_millis(300), true).await {
        early.push(frame);
    }
    seen.insert("websocket: frames before CONNECT".into(), json!(early));

    ws.send(Message::text("40")).await.unwrap();
    let connect = until(&mut ws, "40").await;
    let namespace_sid = connect_sid(&connect);
    let mut frames = vec![
        normalise_packet(&open, &sid, &namespace_sid),
        normalise_packet(&connect, &sid, &namespace_sid),
    ];

    let chat = json!({ "chat_id": DIRECT_CHAT });
    ws.send(Message::text(format!(
        "420{}",
        json!(["clientJoinRoom", chat])
    )))
    .await
    .unwrap();
    frames.push(until(&mut ws, "430").await);
    ws.send(Message::text(format!(
        "421{}",
        json!(["clientJoinRoom", { "chat_id": UNKNOWN_CHAT }])
    )))
    .await
    .unwrap();
    frames.push(until(&mut ws, "431").await);
    let (status, _) = post_message(&t.base, &t.bob, DIRECT_CHAT, "differential").await;
    assert_eq!(status, 200);
    frames.push(normalise(&until(&mut ws, "42").await, &[]));
    ws.send(Message::text(format!(
        "422{}",
        json!(["clientLeaveRoom", chat])
    )))
    .await
    .unwrap();
    frames.push(until(&mut ws, "432").await);
    ws.send(Message::text("41")).await.unwrap();
    let _ = ws.close(None).await;
    seen.insert("websocket: session".into(), json!(frames));
}

async fn rest_probes(t: &Target, seen: &mut Observations) {
    let messages = format!("/api/chats/{DIRECT_CHAT}/messages");
    let post = |target: &str, cookie: &str, body: Value| {
        Request::new("POST", target)
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let cases: Vec<(&str, Request)> = vec![
        ("REST: not logged in", Request::new("GET", "/api/chats")),
        (
            "REST: GET a chat from an allowed Origin",
            Request::new("GET", &format!("/api/chats/{GROUP_CHAT}"))
                .header("cookie", &t.alice)
                .header("origin", APP),
        ),
        (
            "REST: GET a chat that is not yours",
            Request::new("GET", &format!("/api/chats/{DIRECT_CHAT}")).header("cookie", &t.carol),
        ),
        (
            "REST: post a message",
            post(&messages, &t.alice, json!({"content": "rest probe"})).header("origin", APP),
        ),
        (
            "REST: post to a chat that is not yours",
            post(&messages, &t.carol, json!({"content": "not mine"})),
        ),
        (
            "REST: post to an unknown chat",
            post(
                &format!("/api/chats/{UNKNOWN_CHAT}/messages"),
                &t.alice,
                json!({"content": "nowhere"}),
            ),
        ),
        (
            "REST: post an empty message",
            post(&messages, &t.alice, json!({"content": ""})),
        ),
        (
            "REST: post from a disallowed Origin",
            post(&messages, &t.alice, json!({"content": "csrf"})).header("origin", EVIL),
        ),
        (
            "REST: post as text/plain",
            Request::new("POST", &messages)
                .header("cookie", &t.alice)
                .header("content-type", "text/plain")
                .body(json!({"content": "form"}).to_string()),
        ),
        (
            "REST: preflight from an allowed Origin",
            Request::new("OPTIONS", &messages)
                .header("origin", APP)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        ),
        (
            "REST: preflight from a disallowed Origin",
            Request::new("OPTIONS", &messages)
                .header("origin", EVIL)
                .header("access-control-request-method", "POST"),
        ),
        (
            "REST: POST /api/chats",
            post("/api/chats", &t.alice, json!({"users": ["carol"]})),
        ),
    ];
    for (name, request) in cases {
        let answer = exchange(t.addr, &request).await;
        let body = normalise(&answer.text(), &[]);
        seen.insert(name.into(), observe(&answer, body));
    }
}

async fn observe_all(t: &Target) -> Observations {
    let mut seen = Observations::new();
    engine_probes(t, &mut seen).await;
    polling_probes(t, &mut seen).await;
    websocket_probes(t, &mut seen).await;
    rest_probes(t, &mut seen).await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_as_the_production_twin_except_where_the_readme_says() {
    let server = start_dev_server_with(|c| {
        c.allowed_origins = vec![APP.into()];
        c.limits = scmarket_ws::server::LimitsConfig::off();
    })
    .await;
    let serve = observe_all(&Target::new(server.local_addr(), server.http_url()).await).await;
    let twin = ProductionTwin::start_fixed(&["--allowed-origin", APP, "--listener-delay", "0"]);
    let node = observe_all(&Target::new(twin.addr(), twin.url()).await).await;
    server.shutdown().await;

    assert_eq!(
        serve.keys().collect::<Vec<_>>(),
        node.keys().collect::<Vec<_>>()
    );
    let mut failures = Vec::new();
    for (probe, ours) in &serve {
        let theirs = &node[probe];
        let allowed = ALLOWED.iter().find(|(p, _)| p == probe);
        match (ours == theirs, allowed) {
            (true, None) => {}
            (false, Some(_)) => {}
            (false, None) => failures.push(format!(
                "{probe}: differs\n    serve: {ours}\n    twin:  {theirs}"
            )),
            (true, Some((_, row))) => failures.push(format!(
                "{probe}: allowed to differ ({row}) but answers the same now: {ours}; \
                 remove it from ALLOWED and the README"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} difference(s) outside the README's tables:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (probe, row) in ALLOWED {
        assert!(
            readme.contains(row),
            "the allowlist entry for {probe:?} names a README row that is not there: {row:?}"
        );
    }
}
