//! Handshake probes: open a session with exactly the credentials and Origin a check chooses,
//! and keep what the server answered as evidence (status and body of a refusal, the open packet
//! and CONNECT of an accepted session; secrets and engine sids masked).

use serde_json::json;

use super::context::Context;
use super::report::Evidence;
use crate::client::{ClientError, ConnectInfo, Session, Transport, mask};

/// How a handshake went.
pub enum Handshake {
    /// The session reached the namespace CONNECT.
    Accepted(Session),
    /// HTTP 400/401/403 on the engine request, or a CONNECT_ERROR.
    Refused { status: Option<u16>, body: String },
    /// Anything else: the server could not be reached, answered something else, timed out.
    Failed(ClientError),
}

impl Handshake {
    pub fn accepted(&self) -> bool {
        matches!(self, Handshake::Accepted(_))
    }

    /// Close an accepted session.
    pub async fn close(self) {
        if let Handshake::Accepted(session) = self {
            session.disconnect().await;
        }
    }
}

/// Open a session over `transport` with these cookies and Origin; the outcome and its evidence.
pub async fn handshake(
    ctx: &Context,
    step: &str,
    cookies: &[(String, String)],
    transport: Transport,
    origin: Option<&str>,
) -> (Handshake, Evidence) {
    let first = match transport {
        Transport::Websocket => "websocket",
        Transport::Polling | Transport::Upgrade => "polling",
    };
    let mut evidence = Evidence::step(step).request(ctx.engine_request(first));
    if !cookies.is_empty() {
        let shown: Vec<String> = cookies
            .iter()
            .map(|(n, v)| format!("{n}={}", mask(v)))
            .collect();
        evidence
            .request_headers
            .insert("cookie".into(), shown.join("; "));
    }
    if let Some(origin) = origin {
        evidence
            .request_headers
            .insert("origin".into(), origin.to_string());
    }
    let options = match ctx.options(cookies, transport, origin) {
        Ok(options) => options,
        Err(e) => return (Handshake::Failed(e), evidence),
    };
    match Session::connect(&options).await {
        Ok(session) => {
            let evidence = accepted_evidence(evidence, session.info());
            (Handshake::Accepted(session), evidence)
        }
        Err(ClientError::Refused { status, body }) => {
            let evidence = evidence
                .status(status)
                .body(&body)
                .note(format!("refused with HTTP {status}"));
            (
                Handshake::Refused {
                    status: Some(status),
                    body,
                },
                evidence,
            )
        }
        Err(ClientError::ConnectError { message }) => {
            let evidence = evidence
                .packet(format!("44{}", json!({ "message": message })))
                .note("refused with CONNECT_ERROR");
            (
                Handshake::Refused {
                    status: None,
                    body: message,
                },
                evidence,
            )
        }
        Err(ClientError::HttpStatus { status, body }) => {
            let evidence = evidence
                .status(status)
                .body(&body)
                .note(format!("answered HTTP {status}"));
            (
                Handshake::Failed(ClientError::HttpStatus { status, body }),
                evidence,
            )
        }
        Err(e) => {
            let evidence = evidence.note(format!("failed: {e}"));
            (Handshake::Failed(e), evidence)
        }
    }
}

/// The open packet and CONNECT of an accepted session, sids masked (an engine sid lets anyone
/// poll that session while it lives).
pub fn accepted_evidence(mut evidence: Evidence, info: &ConnectInfo) -> Evidence {
    let h = &info.handshake;
    let open = json!({
        "sid": mask(&h.sid),
        "upgrades": h.upgrades,
        "pingInterval": h.ping_interval,
        "pingTimeout": h.ping_timeout,
        "maxPayload": h.max_payload,
    });
    evidence.packets.push(format!("0{open}"));
    let connect = match &info.namespace_sid {
        Some(sid) => format!("40{}", json!({ "sid": mask(sid) })),
        None => "40".to_string(),
    };
    evidence.packets.push(connect);
    evidence.note = Some(format!(
        "accepted: CONNECT over {} after {} ms",
        info.transport.describe(),
        info.namespace_connect.as_millis()
    ));
    evidence
}
