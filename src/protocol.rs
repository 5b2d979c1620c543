//! The SC Market realtime contract, stated once.
//!
//! The server's handlers, the client's decoding, the load test's matching and the generated
//! OpenAPI/AsyncAPI schemas all use these names and types, so a field renamed here is renamed
//! everywhere. The source is `SCMARKET_PROTOCOL.md` (read from the production backend).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

/// Engine.IO request path of the production backend.
pub const ENGINE_PATH: &str = "/ws";
/// Only the default namespace is used.
pub const NAMESPACE: &str = "/";

/// Cookie carrying a HS256 JWT; checked first on the handshake.
pub const ACCESS_COOKIE: &str = "scmarket.access";
/// express-session cookie `s:<sid>.<signature>`; checked when there is no valid access cookie.
pub const SESSION_COOKIE: &str = "scmarket.sid";

/// Client to server: join the room of a chat.
pub const CLIENT_JOIN_ROOM: &str = "clientJoinRoom";
/// Client to server: leave the room of a chat.
pub const CLIENT_LEAVE_ROOM: &str = "clientLeaveRoom";
/// Server to client: a chat message, sent to the room named by its `chat_id`.
pub const SERVER_MESSAGE: &str = "serverMessage";

/// Production engine defaults (socket.io 4.8).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_millis(25_000);
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_millis(20_000);
pub const DEFAULT_MAX_PAYLOAD: u64 = 1_000_000;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(45_000);

/// `messages.content` is `varchar(1000)`; the REST validator counts characters.
pub const MAX_CONTENT_CHARS: usize = 1000;

/// Lifetime of the access JWT production issues, and the leeway it grants on `exp`.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
pub const ACCESS_TOKEN_LEEWAY: Duration = Duration::from_secs(30);

/// Body of an engine-level handshake refusal on the polling transport, exactly as production
/// (socket.io's `Server.errorMessages[BAD_REQUEST]`).
pub const HANDSHAKE_REFUSAL_BODY: &str = r#"{"code":3,"message":"Bad request"}"#;

/// A chat id as the contract means it: a UUID, always compared and used as a room name in its
/// lowercase hyphenated form. Production lets `ABC…` through the database lookup and then joins
/// a room that never receives messages (`case-sensitive-rooms` in ARCHITECTURE.md); parsing through this type prevents that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatId(pub Uuid);

impl ChatId {
    /// The longest text worth trying to parse: a hyphenated UUID (36) with braces or a `urn:uuid:`
    /// prefix stays below this; anything longer is refused before parsing.
    pub const MAX_TEXT_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, ChatIdError> {
        if text.len() > Self::MAX_TEXT_LEN {
            return Err(ChatIdError::TooLong(text.len()));
        }
        // Only the canonical hyphenated form is accepted (in any letter case): the braced, URN
        // and simple forms are not ids production ever hands out.
        if text.len() != 36 {
            return Err(ChatIdError::NotUuid);
        }
        Uuid::try_parse(text)
            .map(ChatId)
            .map_err(|_| ChatIdError::NotUuid)
    }

    /// The room this chat's messages are broadcast to: the lowercase id itself, no prefix.
    pub fn room(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ChatId {
    type Err = ChatIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChatId::parse(s)
    }
}

impl Serialize for ChatId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChatId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChatId::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ChatId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ChatId".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "uuid",
            "description": "Chat id: a lowercase hyphenated UUID. It is also the name of the chat's room.",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatIdError {
    #[error("chat_id is {0} bytes long; a chat id is a 36-character UUID")]
    TooLong(usize),
    #[error("chat_id is not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    NotUuid,
}

/// The wire timestamp of a message: ISO-8601, UTC, exactly three fractional digits, `Z`
/// (what `Date.prototype.toJSON` produces in production).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireTimestamp(pub OffsetDateTime);

impl WireTimestamp {
    pub fn now() -> Self {
        Self::from_unix_millis(
            (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        )
    }

    /// Milliseconds since the epoch; the store keeps timestamps in this form.
    pub fn from_unix_millis(millis: i64) -> Self {
        let nanos = i128::from(millis) * 1_000_000;
        WireTimestamp(
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    pub fn parse(text: &str) -> Result<Self, time::error::Parse> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(|t| WireTimestamp(t.to_offset(time::UtcOffset::UTC)))
    }
}

impl fmt::Display for WireTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Serialize for WireTimestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WireTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        WireTimestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for WireTimestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "When the message was stored: ISO-8601 in UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z.",
            "examples": ["2026-01-02T03:04:05.678Z"],
        })
    }
}

/// `serverMessage`: what production really sends to every socket in the chat's room.
/// (The backend's hand-written docs claim a `type` field, a numeric timestamp and an author id;
/// clients receive this.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "WebSocketMessage",
    description = "A chat message pushed to every socket in the room named by its chat_id."
)]
pub struct ChatMessage {
    /// Id of the stored message.
    #[schemars(with = "Uuid")]
    pub message_id: Uuid,
    /// The message text, 1 to 1000 characters (system messages may be longer in production).
    #[schemars(length(max = 1000))]
    pub content: String,
    /// Username of the author; null for system messages.
    pub author: Option<String>,
    pub chat_id: ChatId,
    pub timestamp: WireTimestamp,
}

/// Argument of `clientJoinRoom`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "JoinRoomRequest",
    description = "Join the room of a chat the user may view. Without an acknowledgement requested, a refused join is silent."
)]
pub struct JoinRoomRequest {
    pub chat_id: ChatId,
}

/// Argument of `clientLeaveRoom`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "LeaveRoomRequest", description = "Leave the room of a chat.")]
pub struct LeaveRoomRequest {
    pub chat_id: ChatId,
}

/// Why the reference server refused a room event. Sent only to clients that asked for an
/// acknowledgement; production never answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomError {
    /// The argument is missing, not an object, or has no string `chat_id`.
    InvalidPayload,
    /// `chat_id` is not a UUID (or is far too long to be one).
    InvalidChatId,
    /// No chat has that id.
    ChatNotFound,
    /// The chat exists but this user may not view it.
    NotAuthorized,
    /// The user was banned or deleted after the handshake.
    AccountDisabled,
    /// The socket sent events faster than the per-socket limit allows.
    RateLimited,
    /// The server has no handler for that event name.
    UnknownEvent,
    /// The database failed or did not answer in time; try again.
    StoreError,
    /// The server lost this socket's session state.
    Internal,
}

impl RoomError {
    pub fn as_str(&self) -> &'static str {
        match self {
            RoomError::InvalidPayload => "invalid_payload",
            RoomError::InvalidChatId => "invalid_chat_id",
            RoomError::ChatNotFound => "chat_not_found",
            RoomError::NotAuthorized => "not_authorized",
            RoomError::AccountDisabled => "account_disabled",
            RoomError::RateLimited => "rate_limited",
            RoomError::UnknownEvent => "unknown_event",
            RoomError::StoreError => "store_error",
            RoomError::Internal => "internal",
        }
    }
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The acknowledgement the reference server sends for `clientJoinRoom`/`clientLeaveRoom` when the
/// client asked for one: `{"ok": true}` or `{"ok": false, "error": "<reason>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "RoomAck")]
pub struct RoomAck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RoomError>,
}

impl RoomAck {
    pub fn ok() -> Self {
        RoomAck {
            ok: true,
            error: None,
        }
    }
    pub fn refused(error: RoomError) -> Self {
        RoomAck {
            ok: false,
            error: Some(error),
        }
    }
}

/// Body of `POST /api/chats/:chat_id/messages`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PostMessageRequest {
    #[schemars(length(min = 1, max = 1000))]
    pub content: String,
}

/// What a username the server accepts looks like: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`.
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";
/// The most users one `POST /api/chats` may name.
pub const MAX_CHAT_USERS: usize = 100;
/// The most participants one dev chat may be created with.
pub const MAX_DEV_PARTICIPANTS: usize = 50_000;

/// Body of `POST /api/chats`: usernames to start a direct chat with.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreateChatRequest {
    #[schemars(length(min = 1, max = MAX_CHAT_USERS), inner(regex(pattern = USERNAME_PATTERN)))]
    pub users: Vec<String>,
}

/// Body of the dev-only `POST /api/dev/login`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DevLoginRequest {
    #[schemars(regex(pattern = USERNAME_PATTERN))]
    pub username: String,
}

/// Body of the dev-only `POST /api/dev/chats`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DevCreateChatRequest {
    #[schemars(length(max = MAX_DEV_PARTICIPANTS), inner(regex(pattern = USERNAME_PATTERN)))]
    pub participants: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Body of the dev-only `POST /api/dev/ban`: ban a user (or unban with `banned: false`); the
/// server closes every socket of a user it bans.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DevBanRequest {
    #[schemars(regex(pattern = USERNAME_PATTERN))]
    pub username: String,
    #[serde(default = "banned_by_default")]
    pub banned: bool,
}

fn banned_by_default() -> bool {
    true
}

/// Answer of the dev-only `POST /api/dev/chats` and of `POST /api/chats` (production's answer
/// to the latter lacks the id; the reference server adds it).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreatedChat {
    pub chat_id: ChatId,
}

/// Answer of the dev-only `POST /api/dev/login` (the cookies themselves arrive as `Set-Cookie`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DevLoginResponse {
    #[schemars(with = "Uuid")]
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    /// `scmarket.sid=...`, ready for a `Cookie` header.
    pub session_cookie: String,
    /// `scmarket.access=...`, ready for a `Cookie` header.
    pub access_cookie: String,
}

/// One chat as listed by `GET /api/chats`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ChatSummary {
    pub chat_id: ChatId,
    pub name: Option<String>,
    pub icon: Option<String>,
    /// Set when the chat belongs to an order.
    #[schemars(with = "Option<Uuid>")]
    pub order_id: Option<Uuid>,
    /// Set when the chat belongs to an offer session.
    #[schemars(with = "Option<Uuid>")]
    pub session_id: Option<Uuid>,
    /// Usernames of the participants.
    pub participants: Vec<String>,
}

/// One chat with all its messages, as answered by `GET /api/chats/:chat_id`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ChatDetail {
    #[serde(flatten)]
    pub chat: ChatSummary,
    pub messages: Vec<ChatMessage>,
}

/// `{"data": ...}`: the success envelope of the REST API.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DataEnvelope<T> {
    pub data: T,
}

/// `{"result": "Success"}` as answered by `POST .../messages`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ResultSuccess {
    pub result: String,
}

/// `{"error": {"code": ..., "message": ...}}`: the error envelope of the REST API.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_id_is_normalised_to_lowercase() {
        let id = ChatId::parse("0F8FAD5B-D9CB-469F-A165-70867728950E").unwrap();
        assert_eq!(id.room(), "0f8fad5b-d9cb-469f-a165-70867728950e");
    }

    #[test]
    fn chat_id_refuses_other_forms() {
        assert_eq!(
            ChatId::parse("0f8fad5bd9cb469fa16570867728950e"),
            Err(ChatIdError::NotUuid)
        );
        assert_eq!(ChatId::parse(""), Err(ChatIdError::NotUuid));
        assert_eq!(
            ChatId::parse(&"a".repeat(10_000)),
            Err(ChatIdError::TooLong(10_000))
        );
    }

    #[test]
    fn timestamp_has_milliseconds_and_z() {
        let t = WireTimestamp::from_unix_millis(1_767_323_045_678);
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.678Z");
        assert_eq!(WireTimestamp::parse(&t.to_string()).unwrap(), t);
        assert_eq!(
            WireTimestamp::from_unix_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn message_serialises_as_production() {
        let m = ChatMessage {
            message_id: Uuid::nil(),
            content: "hi".into(),
            author: None,
            chat_id: ChatId(Uuid::nil()),
            timestamp: WireTimestamp::from_unix_millis(1_767_323_045_678),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"message_id":"00000000-0000-0000-0000-000000000000","content":"hi","author":null,"chat_id":"00000000-0000-0000-0000-000000000000","timestamp":"2026-01-02T03:04:05.678Z"}"#
        );
    }
}
