//! The destructive family, run only with `--destructive` and last: requests that crash
//! production. Its room handlers read `chat_id` from their argument without looking, so a
//! `clientJoinRoom` with `null` or with no argument at all throws an uncaught TypeError and the
//! process exits (`crash-on-null-join`), dropping every user's socket. The check sends both,
//! then reports whether its session and the server survived.

use std::time::Duration;

use serde_json::Value;

use super::context::{Context, RESEND_EVERY};
use super::report::Evidence;
use super::{Finding, NEEDS_A, rooms};
use crate::client::{ClientError, DisconnectReason, Session, SessionEvent, Transport};
use crate::protocol::CLIENT_JOIN_ROOM;

/// `destructive.null-join`.
pub async fn null_join(ctx: &Context) -> Finding {
    let Some(a) = &ctx.a else {
        return Finding::skipped(&[NEEDS_A, "--destructive"]);
    };
    if !ctx.config.destructive {
        return Finding::skipped(&["--destructive"]);
    }
    let mut session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("user A could not connect: {e}")),
    };
    let mut evidence = Vec::new();
    let window = ctx.config.join_window;

    // 1. `null`, with an acknowledgement asked, repeated until answered (a server that listens
    // late drops the first ones; a crash ends the session).
    let null = rooms::land_with_ack(
        session.handle(),
        CLIENT_JOIN_ROOM,
        Some(Value::Null),
        window,
        RESEND_EVERY,
    )
    .await;
    let step = Evidence::step("clientJoinRoom with a null argument").request(format!(
        "42N[\"{CLIENT_JOIN_ROOM}\",null], every {} ms for {} ms",
        RESEND_EVERY.as_millis(),
        window.as_millis()
    ));
    let mut closed = match &null {
        Ok(landing) => {
            evidence.push(match &landing.answer {
                Some(answer) => step
                    .packet(format!("43N{}", Value::from(answer.clone())))
                    .note("answered"),
                None => step.note(format!("no answer to {} requests", landing.attempts)),
            });
            None
        }
        Err(ClientError::Closed(reason)) => {
            evidence.push(step.note(format!("the session ended: {reason}")));
            Some(reason.clone())
        }
        Err(e) => {
            evidence.push(step.note(format!("failed: {e}")));
            Some(DisconnectReason::TransportError(e.to_string()))
        }
    };

    // 2. No argument at all, without an acknowledgement (asking for one would hand the
    // handler the callback as its argument): repeated through the window.
    if closed.is_none() {
        let sent = repeat_bare(&session, window).await;
        let step = Evidence::step("clientJoinRoom without an argument").request(format!(
            "42[\"{CLIENT_JOIN_ROOM}\"], every {} ms for {} ms",
            RESEND_EVERY.as_millis(),
            window.as_millis()
        ));
        closed = ended_within(&mut session, ctx.config.wait)
            .await
            .or(sent.err());
        evidence.push(match &closed {
            None => step.note("the session stayed open"),
            Some(reason) => step.note(format!("the session ended: {reason}")),
        });
    }
    session.disconnect().await;

    // 3. Can a new session still connect?
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = Session::connect(
        &match ctx.options(a.cookies(), Transport::Websocket, None) {
            Ok(o) => o,
            Err(e) => return Finding::warning(format!("cannot reconnect: {e}")).with(evidence),
        },
    )
    .await;
    let step = Evidence::step("reconnect as user A").request(ctx.engine_request("websocket"));
    let survived = match again {
        Ok(s) => {
            evidence.push(step.note("connected"));
            s.disconnect().await;
            true
        }
        Err(e) => {
            evidence.push(step.note(format!("failed: {e}")));
            false
        }
    };
    match (survived, closed) {
        (false, _) => Finding::fail(
            "the server stopped answering after a clientJoinRoom without a usable argument: it crashed (crash-on-null-join)",
        ),
        (true, Some(DisconnectReason::ServerDisconnect)) => Finding::warning(
            "the server survived, but disconnected the session that sent the malformed requests",
        ),
        (true, Some(reason)) => Finding::fail(format!(
            "the session was dropped ({reason}) after a clientJoinRoom without a usable argument, then a new one connected: the server crashed and was restarted, dropping every socket (crash-on-null-join)"
        )),
        (true, None) => Finding::pass(
            "clientJoinRoom with null and without an argument left the session and the server running",
        ),
    }
    .with(evidence)
}

/// `42["clientJoinRoom"]` every step through the window.
async fn repeat_bare(session: &Session, window: Duration) -> Result<(), DisconnectReason> {
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        if session.emit(CLIENT_JOIN_ROOM, Vec::new()).is_err() {
            return Err(DisconnectReason::TransportClose);
        }
        tokio::time::sleep(RESEND_EVERY).await;
    }
    Ok(())
}

/// The reason the session ended within `within`, if it did.
async fn ended_within(session: &mut Session, within: Duration) -> Option<DisconnectReason> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, session.next_event()).await {
            Err(_) => return None,
            Ok(None) => return Some(DisconnectReason::TransportClose),
            Ok(Some(SessionEvent::Disconnected(reason))) => return Some(reason),
            Ok(Some(_)) => {}
        }
    }
}
