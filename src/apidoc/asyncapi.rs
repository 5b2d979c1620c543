//! `spec asyncapi`: the same contract as an AsyncAPI 3.0 document. OpenAPI webhooks only
//! approximate a socket; AsyncAPI has words for a channel, who sends what on it, and replies.

use schemars::generate::Contract;
use serde_json::{Map, Value, json};

use super::websocket::{
    self, DEVELOPMENT_URL, JOIN_SCHEMA, LEAVE_SCHEMA, MESSAGE_SCHEMA, PRODUCTION_URL,
};
use crate::protocol::{self, RoomAck};

pub const CHANNEL: &str = "socket";
const ACK_SCHEMA: &str = "RoomAck";
const ACK_MESSAGE: &str = "roomAck";

/// `wss://host/path` -> (`wss`, `host`, `/path`), the pieces an AsyncAPI server is made of.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (protocol, rest) = url.split_once("://").unwrap_or(("wss", url));
    match rest.find('/') {
        Some(i) => (protocol, &rest[..i], &rest[i..]),
        None => (protocol, rest, "/"),
    }
}

fn server(url: &str, description: &str) -> Value {
    let (protocol, host, pathname) = split_url(url);
    json!({
        "host": host,
        "protocol": protocol,
        "pathname": pathname,
        "description": description,
        "security": [
            {"$ref": "#/components/securitySchemes/accessCookie"},
            {"$ref": "#/components/securitySchemes/sessionCookie"}
        ],
    })
}

fn message(name: &str, summary: &str, schema: &str) -> Value {
    json!({
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": format!("#/components/schemas/{schema}")},
    })
}

fn channel_message(name: &str) -> Value {
    json!({"$ref": format!("#/channels/{CHANNEL}/messages/{name}")})
}

pub fn document() -> Value {
    let parts = websocket::parts();
    let extension = &parts.extension;
    let text = |pointer: &str| {
        extension
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };

    let mut schemas = parts.schemas.clone();
    let ack = websocket::component_schema::<RoomAck>(Contract::Serialize, &mut schemas);
    schemas.insert(ACK_SCHEMA.into(), ack);

    let mut messages = Map::new();
    messages.insert(
        protocol::CLIENT_JOIN_ROOM.into(),
        message(
            protocol::CLIENT_JOIN_ROOM,
            "Join the room of a chat the user may view.",
            JOIN_SCHEMA,
        ),
    );
    messages.insert(
        protocol::CLIENT_LEAVE_ROOM.into(),
        message(
            protocol::CLIENT_LEAVE_ROOM,
            "Leave the room of a chat.",
            LEAVE_SCHEMA,
        ),
    );
    messages.insert(
        protocol::SERVER_MESSAGE.into(),
        message(
            protocol::SERVER_MESSAGE,
            "A chat message, sent to every socket in the chat's room.",
            MESSAGE_SCHEMA,
        ),
    );
    messages.insert(
        ACK_MESSAGE.into(),
        message(
            ACK_MESSAGE,
            "Reference server only: the acknowledgement of a room event, when the client asks for one.",
            ACK_SCHEMA,
        ),
    );
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|name| {
            (
                name.clone(),
                json!({"$ref": format!("#/components/messages/{name}")}),
            )
        })
        .collect();

    let room_operation = |event: &str, summary: &str| {
        json!({
            "action": "send",
            "title": event,
            "summary": summary,
            "description": format!(
                "Emitted as the Socket.IO event `{event}` (wire form `42[\"{event}\",{{\"chat_id\":\"...\"}}]`). {}",
                text("/events/client-to-server/0/x-acknowledgement/description")
            ),
            "channel": {"$ref": format!("#/channels/{CHANNEL}")},
            "messages": [channel_message(event)],
            "reply": {
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "messages": [channel_message(ACK_MESSAGE)],
            },
        })
    };

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "SC Market realtime layer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": text("/description"),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": server(PRODUCTION_URL, "The production backend."),
            "development": server(DEVELOPMENT_URL, "A local backend, or `scmarket-ws serve`."),
        },
        "channels": {
            CHANNEL: {
                "address": protocol::ENGINE_PATH,
                "title": "Socket.IO connection",
                "description": format!(
                    "One Socket.IO session on the engine path {}, default namespace. {} {}",
                    protocol::ENGINE_PATH,
                    text("/rooms/description"),
                    text("/rooms/naming"),
                ),
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "EIO": {"type": "string", "const": "4"},
                                "transport": {"type": "string", "enum": ["polling", "websocket"]},
                                "sid": {"type": "string", "description": "Engine session id, on every request after the first."}
                            },
                            "required": ["EIO", "transport"],
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
            }
        },
        "operations": {
            protocol::CLIENT_JOIN_ROOM: room_operation(protocol::CLIENT_JOIN_ROOM, "Join the room of a chat."),
            protocol::CLIENT_LEAVE_ROOM: room_operation(protocol::CLIENT_LEAVE_ROOM, "Leave the room of a chat."),
            protocol::SERVER_MESSAGE: {
                "action": "receive",
                "title": protocol::SERVER_MESSAGE,
                "summary": "Receive the messages of the chats whose rooms the socket is in.",
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "messages": [channel_message(protocol::SERVER_MESSAGE)],
            },
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "accessCookie": {
                    "type": "httpApiKey",
                    "name": protocol::ACCESS_COOKIE,
                    "in": "cookie",
                    "description": "A HS256 JWT, checked first on the handshake.",
                },
                "sessionCookie": {
                    "type": "httpApiKey",
                    "name": protocol::SESSION_COOKIE,
                    "in": "cookie",
                    "description": "An express-session cookie s:<sid>.<signature>, checked when there is no valid access cookie.",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_server_fields() {
        assert_eq!(
            split_url("wss://api.sc-market.space/ws"),
            ("wss", "api.sc-market.space", "/ws")
        );
        assert_eq!(
            split_url("ws://localhost:7000"),
            ("ws", "localhost:7000", "/")
        );
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        assert_eq!(crate::apidoc::validate::unresolved_refs(&doc), []);
    }
}
