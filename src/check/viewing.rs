//! The viewing rule: only those who may view a chat (its participants; for order and offer
//! chats also the order's or offer's parties) may read it or join its room. Production lets any
//! logged-in user view a direct or group chat whose id they know (`open-direct-chats`). User B
//! takes no part in A's chat: B reads it over REST, then joins its room.

use super::context::{Context, Watch};
use super::joins::{Entered, room_request, watch_evidence};
use super::report::Evidence;
use super::{Finding, NEEDS_A, NEEDS_B, NEEDS_CHAT, NEEDS_POST, rooms};
use crate::client::rooms::RoomOutcome;
use crate::client::{ClientError, Transport};
use crate::protocol::CLIENT_JOIN_ROOM;

/// `viewing.other-user`.
pub async fn other_user(ctx: &Context) -> Finding {
    let (Some(a), Some(b), Some(chat_id)) = (&ctx.a, &ctx.b, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_B, NEEDS_CHAT]);
    };
    let chat = chat_id.to_string();
    let mut evidence = Vec::new();

    // 1. B reads the chat over REST.
    let read = ctx.api.get_chat(&b.cookie_header(), chat_id).await;
    let read_step =
        Evidence::step("read A's chat as user B").request(format!("GET /api/chats/{chat}"));
    if let (Ok(detail), Some(name)) = (&read, &b.username)
        && detail.chat.participants.contains(name)
    {
        evidence.push(
            read_step
                .status(200)
                .note(format!("{name} is a participant")),
        );
        return Finding::warning(format!(
            "user B ({name}) takes part in this chat, so the viewing rule cannot be checked: give a user B who is not in --chat"
        ))
        .with(evidence)
        .needing(&[NEEDS_B]);
    }
    let read_allowed = match &read {
        Ok(detail) => {
            let n = detail.messages.len();
            evidence.push(read_step.status(200).note(format!(
                "answered the chat with {n} message{}",
                if n == 1 { "" } else { "s" }
            )));
            true
        }
        Err(ClientError::ApiStatus { status, body, .. }) => {
            evidence.push(read_step.status(*status).body(body));
            false
        }
        Err(e) => {
            evidence.push(read_step.note(format!("failed: {e}")));
            false
        }
    };

    // 2. B joins the chat's room.
    let mut b_session = match ctx.connect(b, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => {
            return Finding::fail(format!("user B could not connect: {e}")).with(evidence);
        }
    };
    let joined = room_request(ctx, &b_session, b, CLIENT_JOIN_ROOM, &chat).await;
    let mut joined_by_ack = None;
    match joined {
        Ok(Entered {
            outcome,
            evidence: e,
        }) => {
            evidence.push(e);
            joined_by_ack = outcome;
        }
        Err(e) => evidence.push(Evidence::step("join as user B").note(format!("failed: {e}"))),
    }

    // 3. Without an answer, a message A posts proves whether B is in the room.
    let mut received_by_b = None;
    if joined_by_ack.is_none() && ctx.config.post {
        received_by_b = prove_by_message(ctx, a, &chat, &mut b_session, &mut evidence).await;
    }
    b_session.disconnect().await;

    let joined = matches!(joined_by_ack, Some(RoomOutcome::Done)) || received_by_b == Some(true);
    let refused_socket =
        matches!(joined_by_ack, Some(RoomOutcome::Refused(_))) || received_by_b == Some(false);
    let finding = match (read_allowed, joined) {
        (true, true) => Finding::fail(
            "user B, who takes no part in the chat, read it over REST and joined its room (open-direct-chats)",
        ),
        (true, false) => Finding::fail(
            "user B, who takes no part in the chat, read it over REST (open-direct-chats)",
        ),
        (false, true) => Finding::fail(
            "user B, who takes no part in the chat, joined its room (open-direct-chats)",
        ),
        (false, false) if refused_socket => {
            Finding::pass("user B was refused the chat over REST and its room")
        }
        (false, false) => Finding::warning(
            "user B was refused over REST; the room join got no answer, so whether B would receive its messages is unproven",
        )
        .needing(&[NEEDS_POST]),
    };
    finding.with(evidence)
}

/// A posts a marked message; B must not receive it, A's own session must (the control).
/// `Some(true)` when B received it, `Some(false)` when only A did, `None` when unproven.
async fn prove_by_message(
    ctx: &Context,
    a: &super::context::User,
    chat: &str,
    b_session: &mut crate::client::Session,
    evidence: &mut Vec<Evidence>,
) -> Option<bool> {
    let mut a_session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => {
            evidence.push(Evidence::step("user A's control session").note(format!("failed: {e}")));
            return None;
        }
    };
    // A is in the room from the start, unless the server listens late: make sure.
    let arg = serde_json::json!({ "chat_id": chat });
    if rooms::repeat(
        a_session.handle(),
        &[(CLIENT_JOIN_ROOM, arg)],
        ctx.config.join_window,
        super::context::RESEND_EVERY,
    )
    .await
    .is_err()
    {
        return None;
    }
    let (mark, posted) = ctx.post(a, chat, "viewing.other-user").await;
    evidence.push(ctx.post_evidence("post as user A", a, chat, &posted));
    if posted.is_err() {
        a_session.disconnect().await;
        return None;
    }
    let (b_watch, a_watch) = tokio::join!(
        Context::watch(b_session, &mark, ctx.config.wait),
        Context::watch(&mut a_session, &mark, ctx.config.wait)
    );
    a_session.disconnect().await;
    evidence.push(watch_evidence("user B's session", &b_watch));
    evidence.push(watch_evidence("user A's session (control)", &a_watch));
    match (&b_watch, &a_watch) {
        (Watch::Received { .. }, _) => Some(true),
        (_, Watch::Received { .. }) => Some(false),
        _ => None,
    }
}
