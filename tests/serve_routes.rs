//! The REST routes a running server answers and the ones its `/openapi.json` documents are the
//! same set, with and without `--dev`: every documented operation is served, every route of the
//! table is documented, and no other method is served on a documented path.

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

async fn documented(base: &str) -> BTreeSet<Operation> {
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("the document is JSON");
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

/// Whether the router has a route for this method and path: anything but the fallback's 404
/// ("No such route") and axum's 405 for a known path with another method. The probe carries no
/// cookie and an empty JSON object, so every real handler answers without changing anything
/// (401, 400, or a read).
async fn served(http: &reqwest::Client, base: &str, method: &Method, path: &str) -> bool {
    let url = format!("{base}{}", path.replace("{chat_id}", common::DIRECT_CHAT));
    let response = http
        .request(method.clone(), url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("probe request");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    match status {
        405 => false,
        404 => !body.contains("No such route"),
        _ => true,
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
    let documented = documented(&base).await;
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
            assert_eq!(
                served(&http, &base, method, path).await,
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
    let documented = documented(&server.http_url()).await;
    assert!(
        documented.contains(&("POST".to_string(), "/api/dev/ban".to_string())),
        "{documented:?}"
    );
    server.shutdown().await;
}
