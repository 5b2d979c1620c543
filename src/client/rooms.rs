//! Room requests: `clientJoinRoom` / `clientLeaveRoom` with an acknowledgement asked for, and
//! the answer classified. The reference server acknowledges with a [`RoomAck`] (a refusal names
//! its reason, where production's `swallowed-errors` says nothing); production never
//! acknowledges, so no answer in time is "unconfirmed", not a failure.
//!
//! Production also registers its room listeners only after an awaited database query
//! (`late-listeners`): a request sent right after CONNECT is dropped without a trace. Room
//! requests are idempotent on every Socket.IO server, so [`land`] sends one again on a
//! [`Resend`] schedule until it is acknowledged, or until the schedule ends.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ClientError, SessionHandle};
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM, RoomAck};

/// Which room request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAction {
    Join,
    Leave,
}

impl RoomAction {
    pub fn event(self) -> &'static str {
        match self {
            RoomAction::Join => CLIENT_JOIN_ROOM,
            RoomAction::Leave => CLIENT_LEAVE_ROOM,
        }
    }
}

/// What the server said about one room request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomOutcome {
    /// `{"ok": true}`.
    Done,
    /// A refusal with its reason (or what the server answered instead of a [`RoomAck`]).
    Refused(String),
    /// No acknowledgement in time: the server does not confirm (production).
    Unconfirmed,
}

impl RoomOutcome {
    /// One word for the outcome of `action`, for people.
    pub fn word(&self, action: RoomAction) -> &'static str {
        match (self, action) {
            (RoomOutcome::Done, RoomAction::Join) => "joined",
            (RoomOutcome::Done, RoomAction::Leave) => "left",
            (RoomOutcome::Refused(_), _) => "refused",
            (RoomOutcome::Unconfirmed, _) => "unconfirmed",
        }
    }

    /// The acknowledgement's arguments, classified.
    pub fn from_ack(args: &[Value]) -> RoomOutcome {
        match args.first().map(RoomAck::deserialize) {
            Some(Ok(RoomAck { ok: true, .. })) => RoomOutcome::Done,
            Some(Ok(RoomAck { error, .. })) => RoomOutcome::Refused(
                error.map_or_else(|| "no reason given".to_string(), |e| e.to_string()),
            ),
            _ => RoomOutcome::Refused(format!(
                "unexpected acknowledgement {}",
                Value::from(args.to_vec())
            )),
        }
    }
}

/// Send one room request for `chat_id` (sent as written, so a load test can also send ids the
/// server must refuse) and wait at most `ack_wait` for the answer. An error only when the
/// session itself failed.
pub async fn request(
    session: &SessionHandle,
    action: RoomAction,
    chat_id: &str,
    ack_wait: Duration,
) -> Result<RoomOutcome, ClientError> {
    let answer = session
        .emit_with_ack(
            action.event(),
            vec![json!({ "chat_id": chat_id })],
            ack_wait,
        )
        .await;
    match answer {
        Ok(args) => Ok(RoomOutcome::from_ack(&args)),
        Err(ClientError::AckTimeout(_)) => Ok(RoomOutcome::Unconfirmed),
        Err(e) => Err(e),
    }
}

/// When a room request is sent again while it is not acknowledged: offsets from the first send.
/// A server that listens late hears one of them; a server that acknowledges stops them at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resend {
    offsets: Vec<Duration>,
}

impl Default for Resend {
    /// 0, 25, 50, 100, 200, 400, 800 and 1600 ms: dense where production's listeners usually
    /// arrive (a few to 50 ms after CONNECT), sparse up to a loaded database's seconds.
    fn default() -> Self {
        Resend::doubling(Duration::from_millis(25), Duration::from_millis(1600))
    }
}

impl Resend {
    /// Sent once: for a server known to listen before CONNECT.
    pub fn once() -> Self {
        Resend {
            offsets: vec![Duration::ZERO],
        }
    }

    /// At 0, then at `first`, doubling, up to and including `until` (at least one send).
    pub fn doubling(first: Duration, until: Duration) -> Self {
        let mut offsets = vec![Duration::ZERO];
        let mut next = first;
        while !first.is_zero() && next <= until {
            offsets.push(next);
            next = next.saturating_mul(2);
        }
        Resend { offsets }
    }

    /// Explicit offsets from the first send (sorted; the first send is always at 0).
    pub fn at(mut offsets: Vec<Duration>) -> Self {
        offsets.push(Duration::ZERO);
        offsets.sort();
        offsets.dedup();
        Resend { offsets }
    }

    pub fn offsets(&self) -> &[Duration] {
        &self.offsets
    }

    /// Offset of the last send.
    pub fn window(&self) -> Duration {
        self.offsets.last().copied().unwrap_or_default()
    }
}

/// How a repeated room request went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landing {
    pub outcome: RoomOutcome,
    /// Requests sent (the acknowledged one included).
    pub sends: usize,
}

/// Send a room request for `chat_id` on the `resend` schedule, each asking for an
/// acknowledgement, until one is answered; after the last send, wait `ack_wait` for an answer.
/// An error only when the session itself failed.
pub async fn land(
    session: &SessionHandle,
    action: RoomAction,
    chat_id: &str,
    resend: &Resend,
    ack_wait: Duration,
) -> Result<Landing, ClientError> {
    let start = Instant::now();
    let end = start + resend.window() + ack_wait;
    let mut waiting = FuturesUnordered::new();
    let mut offsets = resend.offsets().iter().peekable();
    let mut sends = 0;
    loop {
        // Sends that are due: from the schedule, not from when this task woke, but a late
        // wake-up sends one request, not a burst.
        let mut due = false;
        while offsets
            .peek()
            .is_some_and(|o| start + **o <= Instant::now())
        {
            offsets.next();
            due = true;
        }
        if due {
            sends += 1;
            let wait = end.saturating_duration_since(Instant::now());
            waiting.push(request(session, action, chat_id, wait));
        }
        let next_send = offsets.peek().map(|o| start + **o);
        tokio::select! {
            Some(answer) = waiting.next(), if !waiting.is_empty() => match answer? {
                RoomOutcome::Unconfirmed => {}
                outcome => return Ok(Landing { outcome, sends }),
            },
            _ = tokio::time::sleep_until(next_send.unwrap_or(end).into()), if next_send.is_some() => {}
            else => break,
        }
    }
    Ok(Landing {
        outcome: RoomOutcome::Unconfirmed,
        sends,
    })
}

/// One repeated room request per chat, all at once; the landings in the order of `chats`.
pub async fn land_all(
    session: &SessionHandle,
    action: RoomAction,
    chats: &[String],
    resend: &Resend,
    ack_wait: Duration,
) -> Result<Vec<Landing>, ClientError> {
    let requests = chats
        .iter()
        .map(|chat| land(session, action, chat, resend, ack_wait));
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_classified() {
        assert_eq!(
            RoomOutcome::from_ack(&[json!({"ok": true})]),
            RoomOutcome::Done
        );
        assert_eq!(
            RoomOutcome::from_ack(&[json!({"ok": false, "error": "not_authorized"})]),
            RoomOutcome::Refused("not_authorized".into())
        );
        assert_eq!(
            RoomOutcome::from_ack(&[json!({"ok": false})]),
            RoomOutcome::Refused("no reason given".into())
        );
        assert_eq!(
            RoomOutcome::from_ack(&[json!("yes")]),
            RoomOutcome::Refused(r#"unexpected acknowledgement ["yes"]"#.into())
        );
        assert_eq!(
            RoomOutcome::from_ack(&[]),
            RoomOutcome::Refused("unexpected acknowledgement []".into())
        );
        assert_eq!(RoomOutcome::Done.word(RoomAction::Leave), "left");
        assert_eq!(
            RoomOutcome::Unconfirmed.word(RoomAction::Join),
            "unconfirmed"
        );
    }

    #[test]
    fn resend_schedules() {
        let ms = Duration::from_millis;
        assert_eq!(
            Resend::default().offsets(),
            [0, 25, 50, 100, 200, 400, 800, 1600].map(ms)
        );
        assert_eq!(Resend::once().offsets(), [ms(0)]);
        assert_eq!(Resend::doubling(ms(0), ms(100)).offsets(), [ms(0)]);
        assert_eq!(
            Resend::at(vec![ms(50), ms(10)]).offsets(),
            [0, 10, 50].map(ms)
        );
        assert_eq!(Resend::default().window(), ms(1600));
    }
}
