//! The websocket part of the OpenAPI document, generated from `protocol.rs`: the three
//! component schemas, the `serverMessage` webhook and the backend's `x-websocket` extension.
//!
//! The shapes of the webhook and of `x-websocket` follow the backend's `openapi-extension.ts`
//! key for key, so tools written against it keep working; the contents describe what the code
//! really does (see SCMARKET_PROTOCOL.md), not what that hand-written file claimed.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::protocol::{self, ChatMessage, JoinRoomRequest, LeaveRoomRequest, RoomAck, RoomError};

/// Component names of the backend's extension, and the protocol types they are generated from.
pub const MESSAGE_SCHEMA: &str = "WebSocketMessage";
pub const JOIN_SCHEMA: &str = "JoinRoomRequest";
pub const LEAVE_SCHEMA: &str = "LeaveRoomRequest";
/// The webhook standing for the server-to-client event.
pub const WEBHOOK: &str = protocol::SERVER_MESSAGE;
pub const EXTENSION: &str = "x-websocket";

pub const PRODUCTION_URL: &str = "wss://api.sc-market.space/ws";
pub const DEVELOPMENT_URL: &str = "ws://localhost:7000/ws";

/// Everything the merge adds to a base document.
#[derive(Debug, Clone, PartialEq)]
pub struct WebsocketParts {
    pub schemas: Map<String, Value>,
    pub webhooks: Map<String, Value>,
    pub extension: Value,
}

pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// T's schema in JSON Schema 2020-12 (the dialect of OpenAPI 3.1), without `$schema`, with
/// every subschema inlined. Payloads the server sends are described as serialised, those it
/// receives as deserialised (which decides, for instance, whether a `null` author must be
/// present). A definition schemars cannot inline (a recursive type) is added to `components`
/// and referred to as `#/components/schemas/NAME`, never left in a `$defs` the document lacks.
pub fn component_schema<T: JsonSchema>(
    contract: Contract,
    components: &mut Map<String, Value>,
) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
            s.definitions_path = "/components/schemas".into();
            s.contract = contract;
        })
        .into_generator();
    let mut schema = generator.subschema_for::<T>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    for (name, definition) in generator.take_definitions(true) {
        components.entry(name).or_insert(definition);
    }
    schema
}

/// The three schemas of the backend's extension (and any definition they need).
pub fn schemas() -> Map<String, Value> {
    let mut extra = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        MESSAGE_SCHEMA.into(),
        component_schema::<ChatMessage>(Contract::Serialize, &mut extra),
    );
    schemas.insert(
        JOIN_SCHEMA.into(),
        component_schema::<JoinRoomRequest>(Contract::Deserialize, &mut extra),
    );
    schemas.insert(
        LEAVE_SCHEMA.into(),
        component_schema::<LeaveRoomRequest>(Contract::Deserialize, &mut extra),
    );
    for (name, definition) in extra {
        schemas.entry(name).or_insert(definition);
    }
    schemas
}

pub fn webhooks() -> Map<String, Value> {
    let mut webhooks = Map::new();
    webhooks.insert(
        WEBHOOK.into(),
        json!({
            "post": {
                "summary": "New message in a chat room",
                "description": format!(
                    "Not an HTTP call: the Socket.IO event `{ev}` (wire form `42[\"{ev}\",{{...}}]`), \
                     emitted to every socket in the room named by the message's chat_id when a message \
                     is posted with POST /api/chats/{{chat_id}}/messages, and with author null for \
                     system messages on order and offer status changes.",
                    ev = protocol::SERVER_MESSAGE
                ),
                "tags": ["WebSocket"],
                "requestBody": {
                    "description": "The event's single argument.",
                    "required": true,
                    "content": {
                        "application/json": { "schema": schema_ref(MESSAGE_SCHEMA) }
                    }
                },
                "responses": {
                    "200": { "description": "Nothing is answered: the client sends no acknowledgement." }
                }
            }
        }),
    );
    webhooks
}

/// The reference server's optional acknowledgement. Production never answers room events, so
/// this sits under an `x-` key the backend's consumers ignore, leaving its key set intact.
fn acknowledgement(components: &mut Map<String, Value>) -> Value {
    json!({
        "description": "Reference server (`scmarket-ws serve`) only: a client that emits with an \
                        acknowledgement callback receives {\"ok\": true} or {\"ok\": false, \"error\": \
                        \"<reason>\"}. Production never calls the callback.",
        "schema": component_schema::<RoomAck>(Contract::Serialize, components),
    })
}

/// The reasons of a refused room event, read from `RoomError`'s generated schema so their wire
/// names and descriptions are the code's.
fn room_error_entries() -> Vec<Value> {
    let schema = component_schema::<RoomError>(Contract::Serialize, &mut Map::new());
    let variants = schema
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    variants
        .iter()
        .filter_map(|v| {
            let name = v.get("const").and_then(Value::as_str)?;
            let description = v.get("description").and_then(Value::as_str).unwrap_or("");
            Some(json!({
                "type": name,
                "description": format!(
                    "{} (reference server only, in the acknowledgement of {} or {})",
                    description.trim_end_matches('.'),
                    protocol::CLIENT_JOIN_ROOM,
                    protocol::CLIENT_LEAVE_ROOM,
                ),
            }))
        })
        .collect()
}

/// `x-websocket`; a schema it needs beyond the three goes to `components`.
pub fn extension(components: &mut Map<String, Value>) -> Value {
    let mut errors = vec![
        json!({
            "type": "Handshake refused",
            "description": format!(
                "No valid {} or {} cookie: the first engine request is answered HTTP 400, with body {} \
                 on the polling transport and `Bad request` (text/html) on a websocket upgrade. No CONNECT_ERROR \
                 packet is sent and the reason never reaches the client.",
                protocol::ACCESS_COOKIE, protocol::SESSION_COOKIE, protocol::HANDSHAKE_REFUSAL_BODY
            ),
        }),
        json!({
            "type": "Join refused",
            "description": "An invalid, unknown or not viewable chat_id: production does not join the \
                            room and says nothing, so a refused join cannot be told from a slow one.",
        }),
    ];
    errors.extend(room_error_entries());
    json!({
        "path": protocol::ENGINE_PATH,
        "protocol": "socket.io",
        "description": format!(
            "Socket.IO v5 over Engine.IO v4 (EIO=4) on the REST API's HTTP port, engine path {}, \
             default namespace {} only; polling and websocket transports with upgrade. Engine \
             defaults: pingInterval {} ms, pingTimeout {} ms, maxPayload {} bytes, connectTimeout {} ms. \
             Authentication travels in cookies only.",
            protocol::ENGINE_PATH,
            protocol::NAMESPACE,
            protocol::DEFAULT_PING_INTERVAL.as_millis(),
            protocol::DEFAULT_PING_TIMEOUT.as_millis(),
            protocol::DEFAULT_MAX_PAYLOAD,
            protocol::DEFAULT_CONNECT_TIMEOUT.as_millis(),
        ),
        "authentication": {
            "type": "cookie",
            "description": format!(
                "Checked once, on the first engine request. Cookie {access}: a HS256 JWT (claims sub, \
                 role, username, iat, exp; {life} s lifetime, {leeway} s leeway) of a user that exists \
                 and is not banned. Otherwise cookie {sid}: an express-session cookie s:<sid>.<signature> \
                 of an unexpired login session. Bearer tokens, the Socket.IO auth payload and query \
                 tokens are not accepted. Browsers send the cookies with withCredentials: true.",
                access = protocol::ACCESS_COOKIE,
                sid = protocol::SESSION_COOKIE,
                life = protocol::ACCESS_TOKEN_LIFETIME.as_secs(),
                leeway = protocol::ACCESS_TOKEN_LEEWAY.as_secs(),
            ),
        },
        "connection": {
            "url": {
                "production": PRODUCTION_URL,
                "development": DEVELOPMENT_URL,
            },
            "options": {
                "withCredentials": true,
                "path": protocol::ENGINE_PATH,
            },
        },
        "events": {
            "client-to-server": [
                {
                    "name": protocol::CLIENT_JOIN_ROOM,
                    "description": "Join the room of a chat. The server joins the socket only if the \
                                    chat exists and the user may view it; production answers nothing either way.",
                    "schema": schema_ref(JOIN_SCHEMA),
                    "x-acknowledgement": acknowledgement(components),
                },
                {
                    "name": protocol::CLIENT_LEAVE_ROOM,
                    "description": "Leave the room of a chat.",
                    "schema": schema_ref(LEAVE_SCHEMA),
                    "x-acknowledgement": acknowledgement(components),
                },
            ],
            "server-to-client": [
                {
                    "name": protocol::SERVER_MESSAGE,
                    "description": "A message posted in a chat whose room the socket is in, or a system \
                                    message (author null).",
                    "schema": schema_ref(MESSAGE_SCHEMA),
                },
            ],
        },
        "rooms": {
            "description": format!(
                "On connection the socket is joined to the room of every chat the user participates \
                 in; {} adds the room of another chat the user may view.",
                protocol::CLIENT_JOIN_ROOM
            ),
            "naming": "The room name is the chat_id itself, a lowercase hyphenated UUID with no prefix \
                       (e.g. 550e8400-e29b-41d4-a716-446655440000).",
        },
        "errorHandling": {
            "description": "Production reports no error on the socket: refusals are silent and details \
                            only reach the server log. The reference server reports room-event errors in \
                            the acknowledgement when the client asks for one.",
            "errors": errors,
        },
    })
}

pub fn parts() -> WebsocketParts {
    let mut schemas = schemas();
    let extension = extension(&mut schemas);
    WebsocketParts {
        schemas,
        webhooks: webhooks(),
        extension,
    }
}

/// `spec websocket`: the parts as a standalone OpenAPI 3.1 document, which `spec merge
/// --websocket` and `spec check` read back.
pub fn document() -> Value {
    let parts = parts();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SC Market realtime layer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Socket.IO contract of SC Market's /ws endpoint, generated by scmarket-ws \
                            from its protocol types.",
        },
        "components": { "schemas": parts.schemas },
        "webhooks": parts.webhooks,
        EXTENSION: parts.extension,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PartsError(String);

/// The parts of a websocket document given with `--websocket`: whatever schemas and webhooks it
/// has, and its `x-websocket`, which must be there (without it, the file is not websocket docs).
pub fn parts_from_document(doc: &Value) -> Result<WebsocketParts, PartsError> {
    let extension = doc
        .get(EXTENSION)
        .cloned()
        .ok_or_else(|| PartsError(format!("has no top-level `{EXTENSION}`")))?;
    let schemas = match doc.get("components").and_then(|c| c.get("schemas")) {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(PartsError("`components.schemas` is not an object".into())),
    };
    let webhooks = match doc.get("webhooks") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(PartsError("`webhooks` is not an object".into())),
    };
    Ok(WebsocketParts {
        schemas,
        webhooks,
        extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)] // only its schema is used
    #[derive(JsonSchema)]
    struct Thread {
        replies: Vec<Thread>,
    }

    #[test]
    fn recursive_types_refer_to_components_not_defs() {
        let mut components = Map::new();
        let schema = component_schema::<Thread>(Contract::Deserialize, &mut components);
        assert_eq!(
            schema["properties"]["replies"]["items"]["$ref"],
            "#/components/schemas/Thread"
        );
        assert!(components.contains_key("Thread"));
        assert!(!schema.to_string().contains("$defs") && !schema.to_string().contains("$schema"));
    }

    #[test]
    fn the_three_schemas_need_nothing_else() {
        let names: Vec<String> = parts().schemas.keys().cloned().collect();
        assert_eq!(names, [MESSAGE_SCHEMA, JOIN_SCHEMA, LEAVE_SCHEMA]);
    }
}
