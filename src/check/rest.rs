//! The REST family: a post by user B to a chat of A's that B may not view must be refused and
//! have no effect. Production answers 403 and then stores and broadcasts the message anyway
//! (`post-after-403`). The chat is one B is refused over REST (a read, found before anything is
//! posted): `--chat` when B may not read it, else another of A's chats.

use super::context::{Context, User, Watch};
use super::joins::{room_request, watch_evidence};
use super::report::Evidence;
use super::{Finding, NEEDS_A, NEEDS_B, NEEDS_POST};
use crate::client::{ClientError, Transport};
use crate::protocol::{CLIENT_JOIN_ROOM, ChatId};

const CHECK: &str = "rest.refused-post";

/// `rest.refused-post`.
pub async fn refused_post(ctx: &Context) -> Finding {
    let (Some(a), Some(b)) = (&ctx.a, &ctx.b) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_B, NEEDS_POST]);
    };
    if !ctx.config.post {
        return Finding::skipped(&[NEEDS_POST]);
    }
    let mut evidence = Vec::new();
    let Some(chat) = chat_b_may_not_read(ctx, a, b, &mut evidence).await else {
        return Finding::warning(
            "user B may read every chat of user A's that was tried, so no post of B's can be refused (see viewing.other-user); nothing was posted",
        )
        .with(evidence);
    };
    let chat_id = chat;
    let chat = chat_id.to_string();
    let mut a_session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("user A could not connect: {e}")).with(evidence),
    };
    match room_request(ctx, &a_session, a, CLIENT_JOIN_ROOM, &chat).await {
        Ok(entered) => evidence.push(entered.evidence),
        Err(e) => return Finding::fail(format!("the session failed: {e}")).with(evidence),
    }

    let (mark, posted) = ctx.post(b, &chat, CHECK).await;
    evidence.push(ctx.post_evidence("post as user B", b, &chat, &posted));
    let status = match &posted {
        Ok(()) => 200,
        Err(ClientError::ApiStatus { status, .. }) => *status,
        Err(e) => {
            a_session.disconnect().await;
            return Finding::warning(format!("user B's post failed: {e}")).with(evidence);
        }
    };
    let broadcast = Context::watch(&mut a_session, &mark, ctx.config.wait).await;
    evidence.push(watch_evidence(
        "user A's session after B's post",
        &broadcast,
    ));
    let broadcast = matches!(broadcast, Watch::Received { .. });

    let stored = match ctx.api.get_chat(&a.cookie_header(), chat_id).await {
        Ok(detail) => {
            let found = detail.messages.iter().any(|m| m.content.contains(&mark));
            evidence.push(
                Evidence::step("read the chat as user A")
                    .request(format!("GET /api/chats/{chat}"))
                    .status(200)
                    .note(if found {
                        "B's message is in the chat's history"
                    } else {
                        "B's message is not in the chat's history"
                    }),
            );
            Some(found)
        }
        Err(e) => {
            evidence.push(Evidence::step("read the chat as user A").note(format!("failed: {e}")));
            None
        }
    };

    // The control: A's own post reaches A's session, so silence above means something.
    let mut control_received = true;
    if !broadcast {
        let (control_mark, control) = ctx.post(a, &chat, CHECK).await;
        evidence.push(ctx.post_evidence("control: post as user A", a, &chat, &control));
        let watch = Context::watch(&mut a_session, &control_mark, ctx.config.wait).await;
        evidence.push(watch_evidence("user A's session after A's post", &watch));
        control_received = matches!(watch, Watch::Received { .. });
    }
    a_session.disconnect().await;

    let finding = if (200..300).contains(&status) {
        Finding::fail(format!(
            "user B's post to a chat B may not read was accepted (HTTP {status}) and stored"
        ))
    } else if broadcast || stored == Some(true) {
        let effects: Vec<&str> = [(stored == Some(true), "stored"), (broadcast, "broadcast")]
            .into_iter()
            .filter_map(|(yes, what)| yes.then_some(what))
            .collect();
        Finding::fail(format!(
            "answered HTTP {status}, and still {} the message (post-after-403)",
            effects.join(" and ")
        ))
    } else if !control_received || stored.is_none() {
        Finding::warning(format!(
            "answered HTTP {status}; whether the message had an effect is unproven (the control message did not arrive, or the chat could not be read)"
        ))
    } else if status == 403 {
        Finding::pass("refused with HTTP 403; neither stored nor broadcast")
    } else {
        Finding::warning(format!(
            "refused with HTTP {status} rather than production's 403; neither stored nor broadcast"
        ))
    };
    finding.with(evidence)
}

/// `--chat`, then A's other chats: the first B is refused over REST (403).
async fn chat_b_may_not_read(
    ctx: &Context,
    a: &User,
    b: &User,
    evidence: &mut Vec<Evidence>,
) -> Option<ChatId> {
    let mut candidates: Vec<ChatId> = ctx.chat().into_iter().collect();
    match ctx.api.list_chats(&a.cookie_header()).await {
        Ok(chats) => {
            for chat in chats {
                if !candidates.contains(&chat.chat_id) {
                    candidates.push(chat.chat_id);
                }
            }
        }
        Err(e) => evidence.push(
            Evidence::step("list user A's chats")
                .request("GET /api/chats")
                .note(format!("failed: {e}")),
        ),
    }
    for chat in candidates {
        let step = Evidence::step("read as user B, to find a chat B may not view")
            .request(format!("GET /api/chats/{chat}"));
        match ctx.api.get_chat(&b.cookie_header(), chat).await {
            Ok(_) => evidence.push(step.status(200).note("B may read it")),
            Err(ClientError::ApiStatus {
                status: 403, body, ..
            }) => {
                evidence.push(
                    step.status(403)
                        .body(&body)
                        .note("B is refused: this chat is used"),
                );
                return Some(chat);
            }
            Err(ClientError::ApiStatus { status, body, .. }) => {
                evidence.push(step.status(status).body(&body));
            }
            Err(e) => evidence.push(step.note(format!("failed: {e}"))),
        }
    }
    None
}
