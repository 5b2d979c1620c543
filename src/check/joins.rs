//! The joins family: room requests. A socket is in the rooms of its user's chats from the
//! start, so a join of one's own chat proves nothing by itself: the message-proven checks first
//! leave the room, then join it again (as the id is written, for `joins.upper-case-id`), and
//! see whether a message posted to the chat arrives.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use super::context::{Context, RESEND_EVERY, User, Watch};
use super::report::Evidence;
use super::rooms::{self, Landing};
use super::{Finding, NEEDS_A, NEEDS_CHAT, NEEDS_POST};
use crate::client::rooms::RoomOutcome;
use crate::client::{ClientError, Session, Transport};
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM};

/// How a room request went: the server's answer, or none (it never answers).
pub struct Entered {
    pub outcome: Option<RoomOutcome>,
    pub evidence: Evidence,
}

fn chat_arg(chat: &str) -> Value {
    json!({ "chat_id": chat })
}

/// Send `event` for `chat` so that it lands: with acknowledgements (when the server gives them)
/// repeated until one arrives, else repeated through the join window.
pub async fn room_request(
    ctx: &Context,
    session: &Session,
    who: &User,
    event: &str,
    chat: &str,
) -> Result<Entered, ClientError> {
    let acks = ctx.ack_support().await.is_some_and(|s| s.acknowledges);
    let window = ctx.config.join_window;
    let sent = format!("42[\"{event}\",{}]", chat_arg(chat));
    let evidence = Evidence::step(format!("{event} as {}", who.describe()));
    if acks {
        let landing = rooms::land_with_ack(
            session.handle(),
            event,
            Some(chat_arg(chat)),
            window,
            RESEND_EVERY,
        )
        .await?;
        let outcome = landing
            .answer
            .as_ref()
            .map(|answer| RoomOutcome::from_ack(answer));
        let mut evidence = evidence.request(format!("{sent} with an acknowledgement asked"));
        if let Some(answer) = &landing.answer {
            evidence
                .packets
                .push(format!("43N{}", Value::from(answer.clone())));
        }
        let note = match &outcome {
            Some(o) => format!(
                "{} (request {} of {})",
                describe(o),
                landing.acked_attempt.unwrap_or(0) + 1,
                landing.attempts
            ),
            None => format!("no acknowledgement to {} requests", landing.attempts),
        };
        Ok(Entered {
            outcome,
            evidence: evidence.note(note),
        })
    } else {
        let rounds = rooms::repeat(
            session.handle(),
            &[(event, chat_arg(chat))],
            window,
            RESEND_EVERY,
        )
        .await?;
        Ok(Entered {
            outcome: None,
            evidence: evidence.request(sent).note(format!(
                "sent {rounds} times over {} ms (the server gives no acknowledgement)",
                window.as_millis()
            )),
        })
    }
}

fn describe(outcome: &RoomOutcome) -> String {
    match outcome {
        RoomOutcome::Done => "acknowledged: ok".into(),
        RoomOutcome::Refused(reason) => format!("refused: {reason}"),
        RoomOutcome::Unconfirmed => "unconfirmed".into(),
    }
}

/// Leave `chat`'s room, then join it as `join_as` (the id as written), each landing; then post
/// as A and watch for the message. What both message-proven join checks do.
async fn rejoin_and_receive(
    ctx: &Context,
    a: &User,
    chat: &str,
    join_as: &str,
    check: &str,
) -> Result<(Option<RoomOutcome>, Watch, Vec<Evidence>), ClientError> {
    let mut session = ctx.connect(a, Transport::Websocket).await?;
    let mut evidence = Vec::new();
    let acks = ctx.ack_support().await.is_some_and(|s| s.acknowledges);
    let outcome = if acks {
        let left = room_request(ctx, &session, a, CLIENT_LEAVE_ROOM, chat).await?;
        evidence.push(left.evidence);
        let joined = room_request(ctx, &session, a, CLIENT_JOIN_ROOM, join_as).await?;
        evidence.push(joined.evidence);
        joined.outcome
    } else {
        // Without answers the pair is repeated: whichever round the server first hears, the
        // last request it handles is the join.
        let rounds = rooms::repeat(
            session.handle(),
            &[
                (CLIENT_LEAVE_ROOM, chat_arg(chat)),
                (CLIENT_JOIN_ROOM, chat_arg(join_as)),
            ],
            ctx.config.join_window,
            RESEND_EVERY,
        )
        .await?;
        evidence.push(
            Evidence::step(format!("leave, then join as {}", a.describe()))
                .request(format!(
                    "42[\"{CLIENT_LEAVE_ROOM}\",{}] then 42[\"{CLIENT_JOIN_ROOM}\",{}]",
                    chat_arg(chat),
                    chat_arg(join_as)
                ))
                .note(format!(
                    "sent {rounds} times over {} ms (the server gives no acknowledgement)",
                    ctx.config.join_window.as_millis()
                )),
        );
        None
    };
    if matches!(outcome, Some(RoomOutcome::Refused(_))) {
        session.disconnect().await;
        return Ok((outcome, Watch::Nothing, evidence));
    }
    let (mark, posted) = ctx.post(a, chat, check).await;
    evidence.push(ctx.post_evidence("post as user A", a, chat, &posted));
    if let Err(e) = posted {
        session.disconnect().await;
        return Err(e);
    }
    let watch = Context::watch(&mut session, &mark, ctx.config.wait).await;
    evidence.push(watch_evidence("user A's session after the post", &watch));
    session.disconnect().await;
    Ok((outcome, watch, evidence))
}

/// Evidence of a watch.
pub fn watch_evidence(step: &str, watch: &Watch) -> Evidence {
    let evidence = Evidence::step(step);
    match watch {
        Watch::Received { packet, .. } => {
            evidence.packet(packet.clone()).note("received the message")
        }
        Watch::Nothing => evidence.note("nothing carrying the message's mark arrived"),
        Watch::Closed(reason) => evidence.note(format!("the session ended: {reason}")),
    }
}

/// `joins.own-chat`.
pub async fn own_chat(ctx: &Context) -> Finding {
    let (Some(a), Some(chat)) = (&ctx.a, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_CHAT]);
    };
    let chat = chat.to_string();
    let acks = ctx.ack_support().await.is_some_and(|s| s.acknowledges);
    if acks {
        let session = match ctx.connect(a, Transport::Websocket).await {
            Ok(s) => s,
            Err(e) => return Finding::fail(format!("user A could not connect: {e}")),
        };
        let entered = room_request(ctx, &session, a, CLIENT_JOIN_ROOM, &chat).await;
        session.disconnect().await;
        return match entered {
            Ok(Entered {
                outcome: Some(RoomOutcome::Done),
                evidence,
            }) => Finding::pass("joined: the server acknowledged the join").with(vec![evidence]),
            Ok(Entered {
                outcome: Some(RoomOutcome::Refused(reason)),
                evidence,
            }) => Finding::fail(format!(
                "user A's join of their own chat was refused: {reason} (is --chat a chat user A takes part in?)"
            ))
            .with(vec![evidence]),
            Ok(Entered { evidence, .. }) => Finding::warning(
                "no acknowledgement this time, though the server gave one before",
            )
            .with(vec![evidence]),
            Err(e) => Finding::fail(format!("the session failed: {e}")),
        };
    }
    if !ctx.config.post {
        return Finding::skipped(&[NEEDS_POST]).with(
            ctx.ack_support()
                .await
                .map(|s| vec![s.evidence.clone()])
                .unwrap_or_default(),
        );
    }
    match rejoin_and_receive(ctx, a, &chat, &chat, "joins.own-chat").await {
        Ok((_, Watch::Received { .. }, evidence)) => {
            Finding::pass("after leaving and joining again, the room received a message").with(evidence)
        }
        Ok((_, _, evidence)) => Finding::fail(
            "after leaving and joining again, a message posted to the chat did not arrive: the join did not land",
        )
        .with(evidence),
        Err(e) => Finding::warning(format!("could not prove the join: {e}")),
    }
}

/// `joins.upper-case-id`.
pub async fn upper_case_id(ctx: &Context) -> Finding {
    let (Some(a), Some(chat)) = (&ctx.a, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_CHAT, NEEDS_POST]);
    };
    if !ctx.config.post {
        return Finding::skipped(&[NEEDS_POST]);
    }
    let chat = chat.to_string();
    let upper = chat.to_uppercase();
    match rejoin_and_receive(ctx, a, &chat, &upper, "joins.upper-case-id").await {
        Ok((_, Watch::Received { .. }, evidence)) => Finding::pass(format!(
            "joined as {upper}, the room received a message posted to the chat"
        ))
        .with(evidence),
        Ok((Some(RoomOutcome::Refused(reason)), _, evidence)) => Finding::warning(format!(
            "the upper-case id was refused ({reason}): no silent dead room, but clients that send ids as typed get no room"
        ))
        .with(evidence),
        Ok((_, _, evidence)) => Finding::fail(format!(
            "joined as {upper}, the room never received the chat's message: the id's letter case picks a room that never receives (case-sensitive-rooms)"
        ))
        .with(evidence),
        Err(e) => Finding::warning(format!("could not run the check: {e}")),
    }
}

/// `joins.refusal-reason`: a join of a chat that does not exist, asked with an acknowledgement.
pub async fn refusal_reason(ctx: &Context) -> Finding {
    let Some(a) = &ctx.a else {
        return Finding::skipped(&[NEEDS_A]);
    };
    let session = match ctx.connect(a, Transport::Websocket).await {
        Ok(s) => s,
        Err(e) => return Finding::fail(format!("user A could not connect: {e}")),
    };
    let chat = Uuid::new_v4().to_string();
    let landing = rooms::land_with_ack(
        session.handle(),
        CLIENT_JOIN_ROOM,
        Some(chat_arg(&chat)),
        ctx.config.join_window,
        RESEND_EVERY,
    )
    .await;
    session.disconnect().await;
    let landing = match landing {
        Ok(l) => l,
        Err(e) => return Finding::fail(format!("the session failed: {e}")),
    };
    let mut evidence =
        Evidence::step("join a chat that does not exist, as user A").request(format!(
            "42N[\"{CLIENT_JOIN_ROOM}\",{}], every {} ms for {} ms",
            chat_arg(&chat),
            RESEND_EVERY.as_millis(),
            ctx.config.join_window.as_millis()
        ));
    let Some(answer) = &landing.answer else {
        return Finding::fail(format!(
            "no answer to {} joins of a chat that does not exist: a client cannot tell an invalid chat from a refused one (swallowed-errors)",
            landing.attempts
        ))
        .with(vec![evidence.note("no acknowledgement")]);
    };
    evidence
        .packets
        .push(format!("43N{}", Value::from(answer.clone())));
    match RoomOutcome::from_ack(answer) {
        RoomOutcome::Refused(reason) if reason == "chat_not_found" => {
            Finding::pass("refused with its reason: chat_not_found").with(vec![evidence])
        }
        RoomOutcome::Refused(reason) => Finding::warning(format!(
            "refused, with the reason {reason:?} rather than chat_not_found"
        ))
        .with(vec![evidence]),
        _ => Finding::fail("the server says it joined a chat that does not exist")
            .with(vec![evidence]),
    }
}

/// When the late-listener check sends its request after CONNECT, by session, for the
/// message-proven way; a few sessions at once because production's delay varies per
/// connection.
const PROBE_OFFSETS_MS: [u64; 8] = [0, 0, 0, 10, 20, 50, 100, 250];
/// Sessions of the acknowledged way; each repeats its join every 10 ms until answered.
const ACK_PROBE_SESSIONS: usize = 5;
const ACK_PROBE_STEP: Duration = Duration::from_millis(10);

/// `joins.late-listeners`: how long after CONNECT the server honours a room request.
/// With acknowledgements: each of a few fresh sessions sends a join at once and again every
/// 10 ms until one is answered; the first answered request bounds the delay (a server handles a
/// socket's events in order, so the ones before it were dropped). Without them (needs `--post`):
/// fresh sessions each send one `clientLeaveRoom` of A's chat at a set time after CONNECT, and
/// one message is posted; a session that still receives it had its leave dropped. Both events'
/// listeners are registered together, so a leave honoured means a join would be.
pub async fn late_listeners(ctx: &Context) -> Finding {
    let (Some(a), Some(chat)) = (&ctx.a, ctx.chat()) else {
        return Finding::skipped(&[NEEDS_A, NEEDS_CHAT]);
    };
    let chat = chat.to_string();
    let support = ctx.ack_support().await.cloned();
    if support.as_ref().is_some_and(|s| s.acknowledges) {
        return late_listeners_by_ack(ctx, a, &chat).await;
    }
    if !ctx.config.post {
        return Finding::skipped(&[NEEDS_POST])
            .with(support.map(|s| vec![s.evidence]).unwrap_or_default());
    }
    late_listeners_by_message(ctx, a, &chat).await
}

async fn late_listeners_by_ack(ctx: &Context, a: &User, chat: &str) -> Finding {
    let probes = (0..ACK_PROBE_SESSIONS).map(|_| async {
        let session = ctx.connect(a, Transport::Websocket).await?;
        let landing = rooms::land_with_ack(
            session.handle(),
            CLIENT_JOIN_ROOM,
            Some(chat_arg(chat)),
            ctx.config.join_window,
            ACK_PROBE_STEP,
        )
        .await;
        session.disconnect().await;
        landing
    });
    let results: Vec<Result<Landing, ClientError>> = join_all(probes).await;
    let mut landings = Vec::new();
    for result in results {
        match result {
            Ok(l) => landings.push(l),
            Err(e) => return Finding::fail(format!("a probe session failed: {e}")),
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let evidence: Vec<Evidence> = landings
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let e = Evidence::step(format!(
                "session {}: join at once, again every 10 ms",
                i + 1
            ))
            .request(format!("42N[\"{CLIENT_JOIN_ROOM}\",{}]", chat_arg(chat)));
            match l.acked_sent_at() {
                Some(at) => e.note(format!(
                    "request {} of {} answered: the one sent {:.0} ms after CONNECT",
                    l.acked_attempt.unwrap_or(0) + 1,
                    l.attempts,
                    ms(at)
                )),
                None => e.note(format!("none of {} requests answered", l.attempts)),
            }
        })
        .collect();
    let dropped_at_once = landings
        .iter()
        .filter(|l| l.acked_attempt != Some(0))
        .count();
    let unanswered = landings.iter().filter(|l| l.answer.is_none()).count();
    let honoured_after = landings
        .iter()
        .filter_map(Landing::acked_sent_at)
        .max()
        .map_or(0.0, ms);
    let dropped_up_to = landings
        .iter()
        .filter_map(|l| {
            if l.answer.is_some() {
                l.last_dropped_at()
            } else {
                None
            }
        })
        .max()
        .map_or(0.0, ms);
    let finding = if dropped_at_once == 0 {
        Finding::pass(format!(
            "a join sent right after CONNECT was answered in {0} of {0} sessions",
            landings.len()
        ))
    } else if unanswered > 0 {
        Finding::fail(format!(
            "joins sent right after CONNECT were dropped in {dropped_at_once} of {} sessions, and {unanswered} never got an answer within {} ms (late-listeners)",
            landings.len(),
            ctx.config.join_window.as_millis()
        ))
    } else {
        Finding::fail(format!(
            "joins sent right after CONNECT were dropped in {dropped_at_once} of {} sessions; honoured only {honoured_after:.0} ms after CONNECT (late-listeners)",
            landings.len()
        ))
    };
    finding
        .with(evidence)
        .measure("sessions", landings.len() as f64)
        .measure("dropped_at_once", dropped_at_once as f64)
        .measure("honoured_after_ms", honoured_after)
        .measure("dropped_up_to_ms", dropped_up_to)
}

async fn late_listeners_by_message(ctx: &Context, a: &User, chat: &str) -> Finding {
    // Each probe connects, waits its offset from its own CONNECT, sends one leave.
    let probes = PROBE_OFFSETS_MS.iter().map(|&offset| async move {
        let session = ctx.connect(a, Transport::Websocket).await?;
        let connected = Instant::now();
        tokio::time::sleep_until((connected + Duration::from_millis(offset)).into()).await;
        session
            .handle()
            .emit(CLIENT_LEAVE_ROOM, vec![chat_arg(chat)])?;
        Ok::<_, ClientError>((offset, session))
    });
    let control = async { ctx.connect(a, Transport::Websocket).await };
    let (probes, control) = tokio::join!(join_all(probes), control);
    let mut sessions = Vec::new();
    for probe in probes {
        match probe {
            Ok(p) => sessions.push(p),
            Err(e) => return Finding::fail(format!("a probe session failed: {e}")),
        }
    }
    let mut control = match control {
        Ok(c) => c,
        Err(e) => return Finding::fail(format!("the control session failed: {e}")),
    };
    // Long enough for any leave the server will ever handle, and for its own joins.
    tokio::time::sleep(ctx.config.join_window).await;
    let (mark, posted) = ctx.post(a, chat, "joins.late-listeners").await;
    let post_evidence = ctx.post_evidence("then post as user A", a, chat, &posted);
    let mut evidence = Vec::new();
    if let Err(e) = posted {
        for (_, s) in sessions {
            s.disconnect().await;
        }
        control.disconnect().await;
        return Finding::warning(format!(
            "could not post the message that proves the leaves: {e}"
        ))
        .with(vec![post_evidence]);
    }
    let within = ctx.config.wait;
    let watches = join_all(
        sessions
            .iter_mut()
            .map(|(_, s)| Context::watch(s, &mark, within)),
    );
    let (watches, control_watch) =
        tokio::join!(watches, Context::watch(&mut control, &mark, within));
    control.disconnect().await;
    let mut dropped = Vec::new();
    let mut honoured = Vec::new();
    for ((offset, session), watch) in sessions.iter().zip(&watches) {
        let received = matches!(watch, Watch::Received { .. });
        evidence.push(
            Evidence::step(format!("session that left {offset} ms after CONNECT"))
                .request(format!("42[\"{CLIENT_LEAVE_ROOM}\",{}]", chat_arg(chat)))
                .note(if received {
                    "still received the message: its leave was dropped"
                } else {
                    "received nothing: its leave was honoured"
                }),
        );
        if received {
            dropped.push(*offset);
        } else {
            honoured.push(*offset);
        }
        session.disconnect().await;
    }
    evidence.push(post_evidence);
    evidence.push(watch_evidence(
        "control session (never left)",
        &control_watch,
    ));
    if !matches!(control_watch, Watch::Received { .. }) {
        return Finding::warning(
            "the control session did not receive the message either, so nothing can be concluded: is --chat a chat user A takes part in?",
        )
        .with(evidence);
    }
    let at_once = PROBE_OFFSETS_MS.iter().filter(|o| **o == 0).count();
    let dropped_at_once = dropped.iter().filter(|o| **o == 0).count();
    let dropped_up_to = dropped.iter().max().copied().unwrap_or(0);
    let honoured_after = honoured
        .iter()
        .filter(|o| **o > dropped_up_to)
        .min()
        .copied();
    let finding = if dropped.is_empty() {
        Finding::pass(format!(
            "a leave sent right after CONNECT was honoured in {at_once} of {at_once} sessions (and every later one)"
        ))
    } else {
        let after = honoured_after.map_or_else(
            || {
                format!(
                    "none was honoured within {} ms",
                    PROBE_OFFSETS_MS[PROBE_OFFSETS_MS.len() - 1]
                )
            },
            |h| format!("honoured from {h} ms after CONNECT"),
        );
        Finding::fail(format!(
            "room requests sent right after CONNECT were dropped in {dropped_at_once} of {at_once} sessions (dropped up to {dropped_up_to} ms; {after}) (late-listeners)"
        ))
    };
    let mut finding = finding
        .with(evidence)
        .measure("sessions", PROBE_OFFSETS_MS.len() as f64)
        .measure("dropped_at_once", dropped_at_once as f64)
        .measure("dropped_up_to_ms", dropped_up_to as f64);
    if let Some(h) = honoured_after {
        finding = finding.measure("honoured_after_ms", h as f64);
    }
    finding
}
