//! The reference server's own OpenAPI 3.1 document (its REST routes merged with the websocket
//! docs) and its offline documentation page: what `serve` answers on `/openapi.json` and `/docs`.

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::merge::merge;
use super::websocket::{self, MESSAGE_SCHEMA, schema_ref};
use crate::protocol::{
    self, ChatDetail, ChatSummary, CreateChatRequest, CreatedChat, DevBanRequest,
    DevCreateChatRequest, DevLoginRequest, DevLoginResponse, ErrorEnvelope, PostMessageRequest,
    ResultSuccess,
};
use crate::server::rest::METRICS_CONTENT_TYPE;
use crate::server::routes::Route;

/// A self-contained HTML page (no CDN, no external asset) that fetches `/openapi.json` and
/// renders its paths, schemas, webhooks and `x-websocket`.
pub fn docs_page() -> &'static str {
    include_str!("docs_page.html")
}

fn generator(contract: Contract) -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.meta_schema = None;
            s.definitions_path = "/components/schemas".into();
            s.contract = contract;
        })
        .into_generator()
}

/// Component schemas of the REST types. Requests are described as the server deserialises
/// them, answers as it serialises them. The message type inside `ChatDetail` is the websocket
/// docs' `WebSocketMessage`, so the document has one name for one payload.
fn rest_schemas() -> Map<String, Value> {
    let mut requests = generator(Contract::Deserialize);
    let mut answers = generator(Contract::Serialize);
    add::<PostMessageRequest>(&mut requests);
    add::<CreateChatRequest>(&mut requests);
    add::<DevLoginRequest>(&mut requests);
    add::<DevCreateChatRequest>(&mut requests);
    add::<DevBanRequest>(&mut requests);
    add::<ChatSummary>(&mut answers);
    add::<ChatDetail>(&mut answers);
    add::<CreatedChat>(&mut answers);
    add::<DevLoginResponse>(&mut answers);
    add::<ResultSuccess>(&mut answers);
    add::<ErrorEnvelope>(&mut answers);

    let mut schemas = Map::new();
    for (name, schema) in requests
        .take_definitions(true)
        .into_iter()
        .chain(answers.take_definitions(true))
    {
        if name == "ChatMessage" {
            continue;
        }
        schemas.insert(name, schema);
    }
    let mut value = Value::Object(schemas);
    rename_ref(
        &mut value,
        "#/components/schemas/ChatMessage",
        &format!("#/components/schemas/{MESSAGE_SCHEMA}"),
    );
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) {
    // Registers T (and what it refers to) in the generator's definitions.
    let _ = generator.subschema_for::<T>();
}

fn rename_ref(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref" && child.as_str() == Some(from) {
                    *child = Value::String(to.to_string());
                } else {
                    rename_ref(child, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_ref(v, from, to)),
        _ => {}
    }
}

fn data_of(schema: Value) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {"data": schema},
    })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema}},
    })
}

fn json_body(schema_name: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": schema_ref(schema_name)}},
    })
}

fn error(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn chat_id_parameter() -> Value {
    json!({
        "name": "chat_id",
        "in": "path",
        "required": true,
        "description": "The chat's id (a UUID; any letter case, normalised to lowercase).",
        "schema": {"type": "string", "format": "uuid"},
    })
}

const DEV_NOTE: &str = "Development only: mounted when the server runs with `serve --dev`; \
                        answers 404 otherwise.";

/// The `paths` object: every route the server serves (`server::routes`), in the table's order.
fn paths(dev: bool) -> Value {
    let mut paths = Map::new();
    for route in Route::served(dev) {
        let methods = paths
            .entry(route.path())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = methods {
            methods.insert(
                route.method().as_str().to_ascii_lowercase(),
                with_browser_checks(route, operation(route)),
            );
        }
    }
    Value::Object(paths)
}

/// What `rest::guard` answers before a state-changing route runs: 415 unless the body is
/// declared `application/json`, and 403 to a disallowed Origin (merged into a route's own 403,
/// whose description then says both).
fn with_browser_checks(route: Route, mut operation: Value) -> Value {
    if route.method() == http::Method::GET {
        return operation;
    }
    if let Some(responses) = operation["responses"].as_object_mut() {
        responses
            .entry("403")
            .or_insert_with(|| error("OriginNotAllowed"));
        responses.insert("415".into(), error("UnsupportedMediaType"));
    }
    operation
}

/// The OpenAPI operation object of one route.
fn operation(route: Route) -> Value {
    let cookies = json!([{"accessCookie": []}, {"sessionCookie": []}]);
    match route {
        Route::Healthz => json!({
            "tags": ["Operations"],
            "summary": "Liveness check",
            "operationId": "healthz",
            "responses": {"200": {
                "description": "The server is up.",
                "content": {"text/plain": {"schema": {"type": "string", "const": "ok"}}},
            }},
        }),
        Route::Metrics => json!({
            "tags": ["Operations"],
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {"200": {
                "description": "Metrics in the OpenMetrics text format (Prometheus scrapes it).",
                "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
            }},
        }),
        Route::OpenApi => json!({
            "tags": ["Operations"],
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": json_response("The OpenAPI 3.1 document.", json!({"type": "object"}))},
        }),
        Route::Docs => json!({
            "tags": ["Operations"],
            "summary": "Documentation page",
            "description": "A self-contained HTML page that renders /openapi.json; needs no internet access.",
            "operationId": "docs",
            "responses": {"200": {
                "description": "HTML page.",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }},
        }),
        Route::ListChats => json!({
            "tags": ["Chats"],
            "summary": "The caller's chats",
            "operationId": "listChats",
            "security": cookies,
            "responses": {
                "200": json_response("The chats the caller participates in.",
                    data_of(json!({"type": "array", "items": schema_ref("ChatSummary")}))),
                "401": error("NotLoggedIn"),
            },
        }),
        Route::CreateChat => json!({
            "tags": ["Chats"],
            "summary": "Create (or find) a direct chat with the given users",
            "description": "Production answers without the chat id; the reference server adds it.",
            "operationId": "createChat",
            "security": cookies,
            "requestBody": json_body("CreateChatRequest"),
            "responses": {
                "200": json_response("The chat.", data_of(schema_ref("CreatedChat"))),
                "400": error("ValidationFailed"),
                "401": error("NotLoggedIn"),
                "404": error("UserNotFound"),
            },
        }),
        Route::GetChat => json!({
            "tags": ["Chats"],
            "summary": "One chat with all its messages",
            "operationId": "getChat",
            "security": cookies,
            "parameters": [chat_id_parameter()],
            "responses": {
                "200": json_response("The chat.", data_of(schema_ref("ChatDetail"))),
                "400": error("ValidationFailed"),
                "401": error("NotLoggedIn"),
                "403": error("NotAuthorized"),
                "404": error("ChatNotFound"),
            },
        }),
        Route::PostMessage => json!({
            "tags": ["Chats"],
            "summary": "Post a message",
            "description": format!(
                "Stores the message with the caller as author and emits it as `{}` to the chat's room. \
                 Unlike production, a refused post (403) is neither stored nor broadcast.",
                protocol::SERVER_MESSAGE
            ),
            "operationId": "postMessage",
            "security": cookies,
            "parameters": [chat_id_parameter()],
            "requestBody": json_body("PostMessageRequest"),
            "responses": {
                "200": json_response("Stored and broadcast.", data_of(schema_ref("ResultSuccess"))),
                "400": error("ValidationFailed"),
                "401": error("NotLoggedIn"),
                "403": error_response(
                    "The caller may not view this chat (message `Not authorized`), or the request \
                     came from a disallowed Origin (message `Origin not allowed`)."),
                "404": error("ChatNotFound"),
            },
        }),
        Route::DevLogin => json!({
            "tags": ["Development"],
            "summary": "Log in as any user (development only)",
            "description": format!(
                "{DEV_NOTE} Creates the user if needed and sets both cookies ({} and {}); the \
                 answer repeats them ready for a Cookie header.",
                protocol::SESSION_COOKIE, protocol::ACCESS_COOKIE
            ),
            "operationId": "devLogin",
            "requestBody": json_body("DevLoginRequest"),
            "responses": {
                "200": {
                    "description": "Logged in.",
                    "headers": {"Set-Cookie": {
                        "description": format!("{}=... and {}=...", protocol::SESSION_COOKIE, protocol::ACCESS_COOKIE),
                        "schema": {"type": "string"},
                    }},
                    "content": {"application/json": {"schema": data_of(schema_ref("DevLoginResponse"))}},
                },
                "400": error("ValidationFailed"),
                "403": error_response("The user is banned (message `User is banned`), or the request \
                                       came from a disallowed Origin (message `Origin not allowed`)."),
                "404": error("NotFound"),
            },
        }),
        Route::DevCreateChat => json!({
            "tags": ["Development"],
            "summary": "Create a chat with any participants (development only)",
            "description": DEV_NOTE,
            "operationId": "devCreateChat",
            "requestBody": json_body("DevCreateChatRequest"),
            "responses": {
                "200": json_response("The new chat.", data_of(schema_ref("CreatedChat"))),
                "400": error("ValidationFailed"),
                "404": error("NotFound"),
            },
        }),
        Route::DevBan => json!({
            "tags": ["Development"],
            "summary": "Ban or unban a user (development only)",
            "description": format!(
                "{DEV_NOTE} Sets the user's banned flag (`banned` defaults to true); a ban also \
                 closes every socket the user has open. A banned user's cookies are refused at \
                 the next handshake and join."
            ),
            "operationId": "devBan",
            "requestBody": json_body("DevBanRequest"),
            "responses": {
                "200": json_response("Done.", data_of(schema_ref("ResultSuccess"))),
                "400": error("ValidationFailed"),
                "404": error_response("No user has this name, or the route does not exist (without --dev)."),
            },
        }),
    }
}

/// What a server started with `--dev` (or without) documents: see [`server_document`].
fn rest_document(dev: bool) -> Value {
    let mut tags = vec![
        json!({"name": "Chats", "description": "Chats and messages; posting a message emits serverMessage."}),
        json!({"name": "Operations", "description": "Health, metrics and documentation."}),
    ];
    if dev {
        tags.push(json!({"name": "Development", "description": DEV_NOTE}));
    }
    tags.push(
        json!({"name": "WebSocket", "description": "Socket.IO events, documented as webhooks."}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "scmarket-ws reference server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST routes of `scmarket-ws serve`, which speaks SC Market's production \
                            realtime contract, and its Socket.IO layer (webhooks and x-websocket).",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/", "description": "The server that answered this document."}],
        "tags": tags,
        "paths": paths(dev),
        "components": {
            "schemas": rest_schemas(),
            "responses": {
                "ValidationFailed": error_response("The request is malformed: a bad chat id, a missing field, content outside 1 to 1000 characters."),
                "NotLoggedIn": error_response("No valid scmarket.access or scmarket.sid cookie (message `Authentication required`)."),
                "OriginNotAllowed": error_response("The request came from a page whose Origin is neither allowed (--allowed-origin) nor the server's own (message `Origin not allowed`)."),
                "UnsupportedMediaType": error_response("The body is not declared Content-Type: application/json (code `UNSUPPORTED_MEDIA_TYPE`)."),
                "NotAuthorized": error_response("The caller may not view this chat (message `Not authorized`)."),
                "ChatNotFound": error_response("No chat has this id (message `Chat not found`)."),
                "UserNotFound": error_response("A named user does not exist or is banned (message `User <name> not found`)."),
                "NotFound": error_response("The route does not exist (dev routes without --dev)."),
            },
            "securitySchemes": {
                "accessCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": protocol::ACCESS_COOKIE,
                    "description": "A HS256 JWT (15 min lifetime), checked first.",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": protocol::SESSION_COOKIE,
                    "description": "An express-session cookie s:<sid>.<signature>, checked when there is no valid access cookie.",
                },
            },
        },
    })
}

fn error_response(description: &str) -> Value {
    json_response(description, schema_ref("ErrorEnvelope"))
}

/// The document `serve` answers on `GET /openapi.json`: the REST routes of a server started
/// with `--dev` (`dev`) or without, and the websocket docs.
pub fn server_document(dev: bool) -> Value {
    let mut doc = rest_document(dev);
    // The REST document is generated here, so the only way this fails is a programming error
    // (a section that is not an object); the unmerged document is still worth serving.
    if let Err(e) = merge(&mut doc, &websocket::parts()) {
        tracing::error!("cannot merge the websocket docs into the server document: {e}");
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves() {
        let doc = server_document(true);
        assert_eq!(crate::apidoc::validate::unresolved_refs(&doc), []);
        assert!(doc.pointer("/components/schemas/ChatMessage").is_none());
        assert!(
            doc.pointer("/components/schemas/WebSocketMessage")
                .is_some()
        );
    }

    #[test]
    fn state_changing_routes_document_the_browser_checks() {
        let doc = server_document(true);
        for route in Route::ALL {
            let operation =
                &doc["paths"][route.path()][route.method().as_str().to_ascii_lowercase()];
            let responses = operation["responses"].as_object().expect("responses");
            if route.method() == http::Method::GET {
                assert!(!responses.contains_key("415"), "{route:?}");
                continue;
            }
            assert_eq!(
                responses["415"],
                json!({"$ref": "#/components/responses/UnsupportedMediaType"}),
                "{route:?}"
            );
            let forbidden = responses["403"].to_string();
            assert!(
                forbidden.contains("OriginNotAllowed") || forbidden.contains("Origin not allowed"),
                "{route:?}: {forbidden}"
            );
        }
    }

    #[test]
    fn docs_page_needs_no_network() {
        let page = docs_page();
        assert!(page.contains("/openapi.json"));
        for external in ["http://", "https://", "//cdn", "<link"] {
            assert!(!page.contains(external), "page refers to {external}");
        }
    }
}
