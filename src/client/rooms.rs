//! Room requests: `clientJoinRoom` / `clientLeaveRoom` with an acknowledgement asked for, and
//! the answer classified. The reference server acknowledges with a [`RoomAck`] (a refusal names
//! its reason, where production's `swallowed-errors` says nothing); production never
//! acknowledges, so no answer in time is "unconfirmed", not a failure.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ClientError, SessionHandle};
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM, ChatId, RoomAck};

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

/// One room request per chat, all sent at once; the outcomes in the order of `chats`.
pub async fn request_all(
    session: &SessionHandle,
    action: RoomAction,
    chats: &[ChatId],
    ack_wait: Duration,
) -> Result<Vec<RoomOutcome>, ClientError> {
    let requests = chats
        .iter()
        .map(|chat| async move { request(session, action, &chat.to_string(), ack_wait).await });
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
}
