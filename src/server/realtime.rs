//! The Socket.IO side of `serve`: admission, auto-join, `clientJoinRoom`/`clientLeaveRoom`.
//!
//! Production semantics hold for clients that ask for no acknowledgement: a refused join is
//! silent. A client that asks for one gets `{"ok": true}` or `{"ok": false, "error": ...}`.

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use uuid::Uuid;

use super::AppState;
use super::access::can_view_chat;
use super::auth::Authenticated;
use super::connections::OpenSocket;
use super::delivery::{self, SlowConsumer};
use super::limits::EventLimiter;
use super::metrics::Metrics;
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM, ChatId, RoomAck, RoomError};

/// What a socket carries for its whole life (in its extensions).
#[derive(Clone)]
pub struct SocketSession {
    pub user_id: Uuid,
    pub username: String,
    pub limiter: EventLimiter,
}

/// A private room per user, so a ban can disconnect every socket of that user at once. The
/// prefix keeps it apart from chat rooms, which are bare UUIDs.
pub fn user_room(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// How long the chats a cookie handshake read with the session stay good for the auto-join
/// at CONNECT. A client sends CONNECT right after the engine opens (milliseconds); one that
/// waits longer (a slow polling client) has its chats read again, so a chat it was added to
/// or removed from meanwhile is not missed or joined from a stale list.
pub const HANDSHAKE_CHATS_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("too many connections for this user")]
    TooManyConnections,
}

/// Connect middleware: runs before the CONNECT packet is sent, so the socket is in its rooms
/// and its handlers are registered by the time the client sees it connected (a message posted
/// right after connecting reaches it).
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
) -> Result<(), AdmitError> {
    let Some(authenticated) = socket
        .req_parts()
        .extensions
        .get::<Authenticated>()
        .cloned()
    else {
        // Only reachable if the engine gate was bypassed; refuse rather than trust.
        return Err(AdmitError::NotAuthenticated);
    };
    let user = authenticated.user;
    // Counted before anything else so a concurrent handshake of the same user sees it; given
    // back when the socket is dropped, also when this middleware fails below.
    let Some(open_socket) = OpenSocket::take(&app, user.user_id) else {
        app.metrics.limited("connections_per_user");
        return Err(AdmitError::TooManyConnections);
    };
    let fresh = authenticated
        .chats
        .as_ref()
        .and_then(|read| read.take_fresh(HANDSHAKE_CHATS_FRESH));
    let chats = match fresh {
        Some(chats) => chats,
        None => match app.store.participant_chats(user.user_id).await {
            Ok(chats) => chats,
            Err(e) => {
                // The socket still works; only the auto-join is missing. Say so loudly.
                tracing::error!(error = %e, user = %user.username, "cannot list the user's chats for auto-join");
                Vec::new()
            }
        },
    };
    socket.join(user_room(user.user_id));
    socket.join(
        chats
            .iter()
            .flat_map(|chat| delivery::chat_rooms(&app, chat.room()))
            .collect::<Vec<_>>(),
    );

    socket.extensions.insert(open_socket);
    socket.extensions.insert(SocketSession {
        user_id: user.user_id,
        username: user.username.clone(),
        limiter: app.limits.event_limiter(),
    });
    socket.on(CLIENT_JOIN_ROOM, on_join::<A>);
    socket.on(CLIENT_LEAVE_ROOM, on_leave::<A>);
    socket.on_fallback(on_unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    tracing::debug!(socket = %socket.id, user = %user.username, rooms = chats.len(), "socket connected");
    Ok(())
}

/// The connect handler proper has nothing left to do: `admit` did it before CONNECT was sent.
pub async fn on_connect<A: Adapter>(_socket: SocketRef<A>) {}

/// The counts are given back when the socket is dropped (`connections.rs`), not here: this
/// handler does not run for a socket whose engine closed before CONNECT could be sent.
async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    State(app): State<AppState>,
) {
    // A slow consumer was counted when it was found (`delivery.rs`).
    if socket.extensions.get::<SlowConsumer>().is_none() {
        app.metrics.disconnect_reason(disconnect_label(reason));
    }
    let Some(session) = socket.extensions.get::<SocketSession>() else {
        return;
    };
    tracing::debug!(socket = %socket.id, user = %session.username, ?reason, "socket disconnected");
}

/// The `reason` label of `scmarket_ws_disconnects_total`.
fn disconnect_label(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport_close",
        DisconnectReason::MultipleHttpPollingError => "multiple_polling",
        DisconnectReason::PacketParsingError => "packet_parsing_error",
        DisconnectReason::TransportError => "transport_error",
        DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
        DisconnectReason::ClientNSDisconnect => "client_disconnect",
        DisconnectReason::ServerNSDisconnect => "server_disconnect",
        DisconnectReason::ClosingServer => "closing_server",
    }
}

/// The chat id of a `{ "chat_id": string }` argument. Production crashes on a null or missing
/// argument (`crash-on-null-join` in ARCHITECTURE.md); here every shape of payload maps to an
/// answer.
pub fn chat_id_argument<E>(data: Result<Value, E>) -> Result<ChatId, RoomError> {
    let value = data.map_err(|_| RoomError::InvalidPayload)?;
    let chat_id = value
        .as_object()
        .and_then(|o| o.get("chat_id"))
        .and_then(Value::as_str)
        .ok_or(RoomError::InvalidPayload)?;
    ChatId::parse(chat_id).map_err(|_| RoomError::InvalidChatId)
}

/// Checks shared by every event: the socket's session and its event budget.
fn admit_event<A: Adapter>(
    socket: &SocketRef<A>,
    app: &AppState,
    event: &str,
) -> Result<SocketSession, RoomError> {
    app.metrics.event(event);
    let session = socket
        .extensions
        .get::<SocketSession>()
        .ok_or(RoomError::Internal)?;
    if !session.limiter.allow() {
        app.metrics.limited("events");
        return Err(RoomError::RateLimited);
    }
    Ok(session)
}

fn answer<A: Adapter>(ack: AckSender<A>, result: Result<(), RoomError>) {
    let body = match result {
        Ok(()) => RoomAck::ok(),
        Err(e) => RoomAck::refused(e),
    };
    // Without a requested ack this sends nothing, as production.
    if let Err(e) = ack.send(&body) {
        tracing::debug!(error = %e, "could not send an acknowledgement");
    }
}

async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
) {
    let result = join(&socket, &app, data).await;
    if let Err(reason) = result {
        Metrics::reason(&app.metrics.failed_joins, reason.as_str());
        tracing::debug!(socket = %socket.id, %reason, "clientJoinRoom refused");
    }
    answer(ack, result);
    if result == Err(RoomError::AccountDisabled) {
        // Production never re-checks after the handshake (`banned-users-connect`); here a
        // banned or deleted user loses the socket at the next room event.
        let _ = socket.disconnect();
    }
}

async fn join<A: Adapter, E>(
    socket: &SocketRef<A>,
    app: &AppState,
    data: Result<Value, E>,
) -> Result<(), RoomError> {
    let session = admit_event(socket, app, CLIENT_JOIN_ROOM)?;
    let chat_id = chat_id_argument(data)?;
    // The account is read again on every join, never remembered from the handshake, so a ban
    // or deletion since then takes effect here.
    let (user, facts) = app
        .store
        .join_facts(chat_id, session.user_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "store failed while checking a join");
            RoomError::StoreError
        })?
        .ok_or(RoomError::AccountDisabled)?;
    if !user.is_active() {
        return Err(RoomError::AccountDisabled);
    }
    let facts = facts.ok_or(RoomError::ChatNotFound)?;
    if !can_view_chat(&user, &facts) {
        return Err(RoomError::NotAuthorized);
    }
    socket.join(delivery::chat_rooms(app, chat_id.room()));
    app.metrics.room_joins.inc();
    Ok(())
}

async fn on_leave<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
) {
    let result = admit_event(&socket, &app, CLIENT_LEAVE_ROOM)
        .and_then(|_| chat_id_argument(data))
        .map(|chat_id| {
            socket.leave(delivery::chat_rooms(&app, chat_id.room()));
            app.metrics.room_leaves.inc();
        });
    answer(ack, result);
}

async fn on_unknown_event<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
    Event(event): Event,
    ack: AckSender<A>,
) {
    let result = admit_event(&socket, &app, "unknown").and(Err(RoomError::UnknownEvent));
    tracing::debug!(socket = %socket.id, event = %event.chars().take(64).collect::<String>(), "unknown event");
    answer(ack, result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_payload_shape_has_an_answer() {
        let ok: Result<Value, ()> = Ok(json!({"chat_id": "5C0000C4-0000-4000-8000-000000000001"}));
        assert_eq!(
            chat_id_argument(ok).unwrap().room(),
            "5c0000c4-0000-4000-8000-000000000001"
        );
        for bad in [
            json!(null),
            json!("x"),
            json!(1),
            json!([]),
            json!({}),
            json!({"chat_id": null}),
            json!({"chat_id": 5}),
        ] {
            assert_eq!(
                chat_id_argument::<()>(Ok(bad)),
                Err(RoomError::InvalidPayload)
            );
        }
        assert_eq!(
            chat_id_argument::<()>(Err(())),
            Err(RoomError::InvalidPayload)
        );
        for bad in ["", "abc", "5c0000c4-0000-4000-8000-00000000000z"] {
            assert_eq!(
                chat_id_argument::<()>(Ok(json!({"chat_id": bad}))),
                Err(RoomError::InvalidChatId)
            );
        }
        assert_eq!(
            chat_id_argument::<()>(Ok(json!({"chat_id": "x".repeat(100_000)}))),
            Err(RoomError::InvalidChatId)
        );
    }
}
