//! The HTTP long-polling transport: the engine handshake (also the first step of an upgrade),
//! the connect sequence, and the driver task that keeps one GET pending and POSTs what it sends.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Early, Link, handshake_status, namespace_answer, parse_open, within};
use crate::client::http::{BodyError, client_from, read_body, reqwest_error};
use crate::client::packet::{self, Handshake, PayloadItem};
use crate::client::session::{Command, ConnectInfo};
use crate::client::state::{SessionState, Step};
use crate::client::{ClientError, ConnectOptions, DisconnectReason, Transport};

/// The polling side of a session.
pub(in crate::client) struct Polling {
    /// The pool of the session's local address (`ConnectOptions::local_address`).
    http: reqwest::Client,
    url: reqwest::Url,
    headers: http::HeaderMap,
    /// The longest answer read (the engine's maxPayload, or the client's cap).
    cap: u64,
}

impl Polling {
    fn get(&self) -> Pin<Box<dyn Future<Output = Result<String, BodyError>> + Send>> {
        let request = self
            .http
            .get(self.url.clone())
            .headers(self.headers.clone());
        let cap = self.cap;
        Box::pin(async move {
            let response = request
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(BodyError::Http)?;
            read_body(response, cap).await
        })
    }

    /// A failed GET during the connect sequence, as a client error.
    fn get_error(&self, e: BodyError) -> ClientError {
        match e {
            BodyError::Http(e) => reqwest_error(e, self.url.as_str(), "a polling GET"),
            BodyError::TooLarge(cap) => ClientError::Closed(DisconnectReason::TooLarge(cap)),
        }
    }

    async fn post(&self, body: String) -> Result<(), ClientError> {
        let target = self.url.as_str();
        self.http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map(|_| ())
            .map_err(|e| reqwest_error(e, target, "a polling POST"))
    }
}

/// The first polling request: the engine handshake, where the server checks our credentials.
pub(super) async fn handshake(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Handshake, Polling, Duration), ClientError> {
    let url = options.engine_url(false, None);
    let target = {
        let mut u = url.clone();
        u.set_query(None);
        u.to_string()
    };
    let mut headers = http::HeaderMap::new();
    for (name, value) in options.request_headers() {
        headers.append(name, value);
    }
    let http = client_from(options.local_address);
    let (status, body) = within(deadline, "the polling handshake", started, async {
        let response = http
            .get(url.clone())
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| reqwest_error(e, &target, "the polling handshake"))?;
        let status = response.status().as_u16();
        let body = match read_body(response, options.payload_cap(None)).await {
            Ok(body) => body,
            Err(BodyError::Http(e)) => {
                return Err(reqwest_error(e, &target, "the polling handshake"));
            }
            Err(BodyError::TooLarge(cap)) => {
                return Err(ClientError::Closed(DisconnectReason::TooLarge(cap)));
            }
        };
        Ok((status, body))
    })
    .await?;
    if status != 200 {
        return Err(handshake_status(status, body));
    }
    let first = packet::decode_payload(&body)
        .next()
        .ok_or_else(|| ClientError::Protocol("empty handshake answer".into()))?
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let PayloadItem::Text(text) = first else {
        return Err(ClientError::Protocol("binary handshake answer".into()));
    };
    let handshake = parse_open(text)?;
    let engine_open = started.elapsed();
    let polling = Polling {
        http,
        url: options.engine_url(false, Some(&handshake.sid)),
        headers,
        cap: options.payload_cap(handshake.max_payload),
    };
    Ok((handshake, polling, engine_open))
}

/// The polling transport's connect sequence: handshake GET, namespace CONNECT by POST, then
/// GETs until its answer arrives.
pub(super) async fn connect(
    options: &ConnectOptions,
    started: Instant,
    deadline: Instant,
) -> Result<(Link, ConnectInfo, Early), ClientError> {
    let (handshake, polling, engine_open) = handshake(options, started, deadline).await?;
    within(
        deadline,
        "the namespace CONNECT",
        started,
        polling.post(packet::connect(options.auth.as_ref())),
    )
    .await?;
    let mut early = Vec::new();
    let namespace_sid = within(deadline, "the namespace CONNECT answer", started, async {
        loop {
            let body = polling.get().await.map_err(|e| polling.get_error(e))?;
            let mut pong = false;
            let mut answer = None;
            for item in packet::decode_payload(&body) {
                match item.map_err(|e| ClientError::Protocol(e.to_string()))? {
                    PayloadItem::Text("2") => pong = true,
                    PayloadItem::Text(text) if answer.is_none() => {
                        answer = namespace_answer(text, &mut early)?;
                    }
                    PayloadItem::Text(text) => early.push(text.to_string()),
                    PayloadItem::Binary(_) => {}
                }
            }
            if pong {
                polling.post("3".into()).await?;
            }
            if let Some(sid) = answer {
                return Ok(sid);
            }
        }
    })
    .await?;
    let info = ConnectInfo {
        handshake,
        namespace_sid,
        transport: Transport::Polling,
        engine_open,
        upgraded: None,
        namespace_connect: started.elapsed(),
    };
    Ok((Link::Polling(polling), info, early))
}

/// The session's task: one GET always pending, a POST per command, until either side ends it
/// or the pings stop.
pub(super) async fn drive(
    polling: Polling,
    mut state: SessionState,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let ping_deadline = tokio::time::sleep(state.ping_window);
    tokio::pin!(ping_deadline);
    let mut get = polling.get();
    let reason = loop {
        tokio::select! {
            body = &mut get => {
                let body = match body {
                    Ok(body) => body,
                    Err(BodyError::Http(e)) if e.status().is_some() => break DisconnectReason::TransportClose,
                    Err(BodyError::Http(e)) => break DisconnectReason::TransportError(e.to_string()),
                    Err(BodyError::TooLarge(cap)) => break DisconnectReason::TooLarge(cap),
                };
                let mut replies = Vec::new();
                let mut closed = None;
                for item in packet::decode_payload(&body) {
                    let step = match item {
                        Ok(PayloadItem::Text(text)) => {
                            if text.starts_with('2') {
                                ping_deadline.as_mut().reset((Instant::now() + state.ping_window).into());
                            }
                            state.on_text(text)
                        }
                        Ok(PayloadItem::Binary(bytes)) => state.on_binary(bytes),
                        Err(e) => Step::Close(DisconnectReason::ParseError(e.to_string())),
                    };
                    match step {
                        Step::Nothing => {}
                        Step::Send(text) => replies.push(text),
                        Step::Close(reason) => {
                            closed = Some(reason);
                            break;
                        }
                    }
                }
                if let Some(reason) = closed {
                    break reason;
                }
                if !replies.is_empty()
                    && let Err(e) = polling.post(packet::encode_payload(&replies)).await
                {
                    break DisconnectReason::TransportError(e.to_string());
                }
                get = polling.get();
            }
            command = commands.recv() => {
                let text = match command.map(|c| state.on_command(c)) {
                    Some(Ok(text)) => text,
                    Some(Err(done)) => {
                        let _ = polling.post(packet::encode_payload(&[packet::disconnect(), "1".into()])).await;
                        let _ = done.send(());
                        break DisconnectReason::ClientDisconnect;
                    }
                    None => {
                        let _ = polling.post(packet::encode_payload(&[packet::disconnect(), "1".into()])).await;
                        break DisconnectReason::ClientDisconnect;
                    }
                };
                if let Err(e) = polling.post(text).await {
                    break DisconnectReason::TransportError(e.to_string());
                }
            }
            _ = &mut ping_deadline => break DisconnectReason::PingTimeout,
        }
    };
    tracing::debug!(%reason, "session ended");
    state.finish(reason);
}
