//! The Origin family. Browsers send cookies with a cross-site websocket and with simple
//! cross-site requests, so a server that does not check `Origin` lets any page act as its
//! visitor (cross-site websocket hijacking: production's `no-origin-check`). The probes carry
//! user A's real cookies, as a visitor's browser would.

use std::collections::BTreeMap;

use super::context::Context;
use super::probe::{Handshake, handshake};
use super::report::Evidence;
use super::{Finding, NEEDS_A};
use crate::client::{Transport, mask};

/// `origin.foreign-refused`: `--foreign-origin` with A's cookies, on websocket and polling.
pub async fn foreign_refused(ctx: &Context) -> Finding {
    let Some(a) = &ctx.a else {
        return Finding::skipped(&[NEEDS_A]);
    };
    let foreign = ctx.config.foreign_origin.as_str();
    let mut accepted = Vec::new();
    let mut unclear = Vec::new();
    let mut evidence = Vec::new();
    for transport in [Transport::Websocket, Transport::Polling] {
        let step = format!("{transport} handshake as user A from a foreign Origin");
        let (outcome, e) = handshake(ctx, &step, a.cookies(), transport, Some(foreign)).await;
        evidence.push(e);
        match &outcome {
            Handshake::Accepted(_) => accepted.push(transport.as_str()),
            Handshake::Refused { .. } => {}
            Handshake::Failed(_) => unclear.push(transport.as_str()),
        }
        outcome.close().await;
    }
    let finding = if !accepted.is_empty() {
        Finding::fail(format!(
            "a page on {foreign} opened a session with its visitor's cookies over {}: the Origin is not checked (no-origin-check)",
            accepted.join(" and ")
        ))
    } else if !unclear.is_empty() {
        Finding::warning(format!(
            "no clear refusal of {foreign} over {}",
            unclear.join(" and ")
        ))
    } else {
        Finding::pass(format!("{foreign} was refused on websocket and polling"))
    };
    finding.with(evidence)
}

/// `origin.cors-credentials`: the polling handshake from `--origin` with A's cookies is answered
/// with `Access-Control-Allow-Origin: <origin>` and `Access-Control-Allow-Credentials: true`
/// (without them a browser hides the answer from the web client), and its websocket connects.
pub async fn cors_credentials(ctx: &Context) -> Finding {
    let (Some(a), Some(origin)) = (&ctx.a, ctx.config.origin.as_deref()) else {
        return Finding::skipped(&[NEEDS_A, "--origin"]);
    };
    let mut evidence = Evidence::step("polling handshake as user A from the allowed Origin")
        .request(ctx.engine_request("polling"));
    evidence
        .request_headers
        .insert("origin".into(), origin.to_string());
    evidence
        .request_headers
        .insert("cookie".into(), mask(&a.cookie_header()));
    let response = ctx
        .http
        .get(ctx.polling_url())
        .header(http::header::ORIGIN, origin)
        .header(http::header::COOKIE, a.cookie_header())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            return Finding::fail(format!("the polling handshake failed: {e}"))
                .with(vec![evidence.note("no answer")]);
        }
    };
    let status = response.status().as_u16();
    let mut headers = BTreeMap::new();
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "vary",
    ] {
        if let Some(value) = response.headers().get(name) {
            headers.insert(
                name.to_string(),
                value.to_str().unwrap_or("<not text>").to_string(),
            );
        }
    }
    let body = read_capped(response).await;
    close_polling_session(ctx, &body, origin, a).await;
    evidence.status = Some(status);
    evidence.headers = headers.clone();
    evidence.packets.push(mask_sid(&body));
    let allow_origin = headers
        .get("access-control-allow-origin")
        .map(String::as_str);
    let credentials = headers
        .get("access-control-allow-credentials")
        .map(String::as_str);

    let (ws, ws_evidence) = handshake(
        ctx,
        "websocket handshake as user A from the allowed Origin",
        a.cookies(),
        Transport::Websocket,
        Some(origin),
    )
    .await;
    let ws_ok = ws.accepted();
    ws.close().await;

    let mut problems = Vec::new();
    if status != 200 {
        problems.push(format!("the polling handshake answered HTTP {status}"));
    }
    if allow_origin != Some(origin) {
        problems.push(format!(
            "Access-Control-Allow-Origin is {}, not {origin}",
            allow_origin.map_or_else(|| "missing".to_string(), |v| format!("{v:?}"))
        ));
    }
    if credentials != Some("true") {
        problems.push("Access-Control-Allow-Credentials is not true".to_string());
    }
    if !ws_ok {
        problems.push("the websocket from this Origin did not connect".to_string());
    }
    let finding = if problems.is_empty() {
        Finding::pass(format!(
            "{origin} gets CORS with credentials on polling, and its websocket connects"
        ))
    } else {
        Finding::fail(format!(
            "the web client on {origin} cannot connect as production's does: {}",
            problems.join("; ")
        ))
    };
    finding.with(vec![evidence, ws_evidence])
}

/// The open packet with its sid masked.
fn mask_sid(body: &str) -> String {
    let Some(json) = body.strip_prefix('0') else {
        return super::report::excerpt(body);
    };
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut open) => {
            if let Some(sid) = open.get("sid").and_then(|s| s.as_str()).map(mask) {
                open["sid"] = sid.into();
            }
            format!("0{open}")
        }
        Err(_) => super::report::excerpt(body),
    }
}

/// Close the engine session a raw polling handshake opened (an engine close packet), so it
/// does not linger until its ping timeout.
async fn close_polling_session(ctx: &Context, body: &str, origin: &str, a: &super::context::User) {
    let sid = body
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .and_then(|open| open.get("sid").and_then(|s| s.as_str()).map(str::to_string));
    if let Some(sid) = sid {
        let url = format!("{}&sid={sid}", ctx.polling_url());
        let _ = ctx
            .http
            .post(url)
            .header(http::header::ORIGIN, origin)
            .header(http::header::COOKIE, a.cookie_header())
            .header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body("1")
            .send()
            .await;
    }
}

/// Bodies read from a target are kept to this many bytes: an open packet is a few hundred, and
/// a hostile or broken server must not fill memory.
const BODY_CAP: usize = 64 * 1024;

/// The start of a body, at most [`BODY_CAP`] bytes; the rest is not read.
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = BODY_CAP - bytes.len();
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= BODY_CAP {
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
