//! The REST routes a running server answers and the ones its `/openapi.json` documents are the
//! same set, with and without `--dev`: every documented operation is served, every route of the
//! table is documented, no other method is served on a documented path, and what an
//! unauthenticated request gets with a 200 has the documented media type.

mod common;

use std::collections::BTreeSet;

use reqwest::Method;
use scmarket_ws::server::routes::Route;
use serde_json::Value;

/// Methods probed on each documented path. HEAD (answered by every GET route) and OPTIONS are
/// transport details that OpenAPI documents do not list.
const PROBED: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

type Operation = (String, String);

async fn document(base: &str) -> Value {
    reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("the document is JSON")
}

fn operations(doc: &Value) -> BTreeSet<Operation> {
    let paths = doc["paths"].as_object().expect("a paths object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item object");
            methods
                .keys()
                .map(|method| (method.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The media type without parameters: `text/plain; charset=utf-8` is `text/plain`.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

struct Answer {
    status: u16,
    media_type: String,
    body: String,
}

impl Answer {
    /// Whether the router has a route for the request: anything but the fallback's 404
    /// ("No such route") and axum's 405 for a known path with another method.
    fn served(&self) -> bool {
        match self.status {
            405 => false,
            404 => !self.body.contains("No such route"),
            _ => true,
        }
    }
}

/// The probe carries no cookie and an empty JSON object, so every real handler answers without
/// changing anything (401, 400, or a read).
async fn probe(http: &reqwest::Client, base: &str, method: &Method, path: &str) -> Answer {
    let url = format!("{base}{}", path.replace("{chat_id}", common::DIRECT_CHAT));
    let response = http
        .request(method.clone(), url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("probe request");
    let status = response.status().as_u16();
    let media_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| essence(v).to_string())
        .unwrap_or_default();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        media_type,
        body,
    }
}

fn table(dev: bool) -> BTreeSet<Operation> {
    Route::served(dev)
        .map(|r| (r.method().to_string(), r.path().to_string()))
        .collect()
}

async fn check(dev: bool) {
    let server = common::start_dev_server_with(|c| {
        c.dev = dev;
        c.secrets.session = Some("routes-test-secret".into());
    })
    .await;
    let base = server.http_url();
    let doc = document(&base).await;
    let documented = operations(&doc);
    assert_eq!(
        documented,
        table(dev),
        "/openapi.json (dev: {dev}) documents other routes than the route table"
    );
    let http = reqwest::Client::new();
    let paths: BTreeSet<&str> = Route::ALL.iter().map(|r| r.path()).collect();
    for path in paths {
        for method in &PROBED {
            let in_doc = documented.contains(&(method.to_string(), path.to_string()));
            let answer = probe(&http, &base, method, path).await;
            if in_doc && answer.status == 200 {
                let documented_types = doc["paths"][path][method.as_str().to_ascii_lowercase()]
                    ["responses"]["200"]["content"]
                    .as_object()
                    .map(|c| c.keys().map(|k| essence(k).to_string()).collect::<Vec<_>>())
                    .unwrap_or_default();
                assert!(
                    documented_types.contains(&answer.media_type),
                    "{method} {path} answers {} but documents {documented_types:?}",
                    answer.media_type
                );
            }
            assert_eq!(
                answer.served(),
                in_doc,
                "{method} {path} (dev: {dev}): {}",
                if in_doc {
                    "documented but not served"
                } else {
                    "served but not documented"
                }
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_dev_server_serves_exactly_what_it_documents() {
    check(true).await;
}

#[tokio::test]
async fn a_server_without_dev_serves_exactly_what_it_documents() {
    check(false).await;
}

#[tokio::test]
async fn the_ban_helper_is_documented() {
    let server = common::start_dev_server().await;
    let documented = operations(&document(&server.http_url()).await);
    assert!(
        documented.contains(&("POST".to_string(), "/api/dev/ban".to_string())),
        "{documented:?}"
    );
    server.shutdown().await;
}

/// `/metrics` counts every REST call by its route (as the router matched it, not the path
/// sent), method and status, the Origin and body refusals included, and times it by route; a
/// path no route serves is not counted, so a client cannot grow the label set.
#[tokio::test]
async fn rest_calls_are_counted_by_route_method_and_status() {
    let server = common::start_dev_server().await;
    let base = server.http_url();
    let cookie = common::session_cookie(&base, "alice").await;
    let (status, body) = common::post_message(&base, &cookie, common::GROUP_CHAT, "hi").await;
    assert_eq!(status, 200, "{body}");
    let url = format!("{base}/api/chats/{}/messages", common::GROUP_CHAT);
    let http = reqwest::Client::new();
    let not_json = http
        .post(&url)
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let foreign = http
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", "https://elsewhere.example")
        .json(&serde_json::json!({ "content": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let unknown = http
        .get(format!("{base}/api/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let text = common::metrics_text(&base).await;
    let posts = r#"route="/api/chats/{chat_id}/messages",method="POST""#;
    for line in [
        format!(r#"scmarket_ws_rest_requests_total{{{posts},status="200"}} 1"#),
        format!(r#"scmarket_ws_rest_requests_total{{{posts},status="415"}} 1"#),
        format!(r#"scmarket_ws_rest_requests_total{{{posts},status="403"}} 1"#),
        r#"scmarket_ws_rest_requests_total{route="/api/dev/login",method="POST",status="200"} 1"#
            .to_string(),
        r#"scmarket_ws_rest_request_duration_seconds_count{route="/api/chats/{chat_id}/messages"} 3"#
            .to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(!text.contains("no-such-route"), "{text}");
    server.shutdown().await;
}
