//! The REST routes around the realtime layer, production's answers minus its defects, and the
//! dev-only helpers that let tests and load tests provision users and rooms.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::HttpState;
use super::access::can_view_chat;
use super::auth::{self, Refusal};
use super::origin::RequestOrigin;
use super::realtime::user_room;
use super::routes::Route;
use crate::protocol::{
    ACCESS_COOKIE, ACCESS_TOKEN_LIFETIME, ChatId, CreateChatRequest, CreatedChat, DataEnvelope,
    DevBanRequest, DevCreateChatRequest, DevLoginRequest, DevLoginResponse, ErrorBody,
    ErrorEnvelope, MAX_CHAT_USERS, MAX_CONTENT_CHARS, PostMessageRequest, ResultSuccess,
    SERVER_MESSAGE, SESSION_COOKIE,
};
use crate::store::{ChatAccessFacts, StoreError, User};

/// How long a dev-login session lasts: long enough for a soak test.
pub const DEV_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
pub use crate::protocol::MAX_DEV_PARTICIPANTS;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Not authorized")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed during a REST call");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The answer to a state-changing request, or a preflight, from a disallowed Origin.
pub fn origin_refused() -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Origin not allowed").into_response()
}

/// In front of every REST route (a route layer, so an unknown route stays a 404): a request
/// that changes something must come from an allowed page, and its body must be declared
/// `application/json`. A cross-site HTML form can send neither a listed Origin nor that type
/// (browsers preflight it), so it cannot post in a visitor's name whatever the cookie's
/// SameSite allows; production checks neither (`no-origin-check` in ARCHITECTURE.md).
/// Count and time every REST call a route runs, refusals of [`guard`] included
/// (`rest_requests_total`, `rest_request_duration_seconds`). Unknown paths (the fallback's
/// 404) are not counted: their label would be whatever a client sends.
pub async fn observe(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    state.app.metrics.rest_call(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

pub async fn guard(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    // Only a request a route will run is checked: any other method on a known path (QUERY,
    // PUT on a GET route) gets the router's 405, not a 415 about its body.
    let served = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|matched| {
            Route::served(state.app.dev)
                .any(|route| route.path() == matched.as_str() && route.method() == req.method())
        });
    let changes_state = served
        && matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
    if !changes_state {
        return next.run(req).await;
    }
    if state.app.origins.classify(req.headers()) == RequestOrigin::Foreign {
        tracing::info!(origin = ?req.headers().get(header::ORIGIN), path = req.uri().path(), "refused a REST request from a disallowed Origin");
        return origin_refused();
    }
    if !is_json(req.headers()) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether the body is declared `application/json` (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

type ApiResult<T> = Result<Json<DataEnvelope<T>>, ApiError>;

fn data<T: Serialize>(value: T) -> ApiResult<T> {
    Ok(Json(DataEnvelope { data: value }))
}

/// Parse a JSON body ourselves so every malformed body is a 400 in the API's error envelope
/// (axum's own extractor answers 415/422 in plain text).
fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("Invalid request body: {e}")))
}

async fn caller(state: &HttpState, headers: &HeaderMap) -> Result<User, ApiError> {
    auth::authenticate(headers, &state.app.secrets, state.app.store.as_ref())
        .await
        .map(|a| a.user)
        .map_err(unauthenticated)
}

/// The answer to a refused authentication: 401, or 500 when the store failed.
fn unauthenticated(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::StoreError => StoreError::Invalid("authentication lookup failed".into()).into(),
        refusal => {
            tracing::debug!(reason = refusal.as_str(), "REST call not authenticated");
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Authentication required",
            )
        }
    }
}

/// The caller and their access facts for the chat named in the path, in one store lookup
/// (`auth::authenticate_for_chat`). The answers keep production's order: 401 before a 400 for
/// a malformed chat id, so a path that is no chat id is checked only once the caller is known.
async fn caller_in_chat(
    state: &HttpState,
    headers: &HeaderMap,
    chat_id: &str,
) -> Result<(User, ChatId, Option<ChatAccessFacts>), ApiError> {
    let parsed = match ChatId::parse(chat_id) {
        Ok(parsed) => parsed,
        Err(e) => {
            caller(state, headers).await?;
            return Err(ApiError::validation(e.to_string()));
        }
    };
    let (user, facts) = auth::authenticate_for_chat(
        headers,
        &state.app.secrets,
        state.app.store.as_ref(),
        parsed,
    )
    .await
    .map_err(unauthenticated)?;
    Ok((user, parsed, facts))
}

/// Whether the caller may view the chat, from its facts: 404 before 403, as production.
fn viewable(user: &User, facts: Option<ChatAccessFacts>) -> Result<(), ApiError> {
    let facts = facts.ok_or_else(|| ApiError::not_found("Chat not found"))?;
    if can_view_chat(user, &facts) {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// `POST /api/chats/:chat_id/messages`: store, broadcast `serverMessage`, answer Success.
/// A 403 stores and broadcasts nothing (the `post-after-403` defect of ARCHITECTURE.md).
pub async fn post_message(
    State(state): State<HttpState>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ResultSuccess> {
    let (user, chat_id, facts) = caller_in_chat(&state, &headers, &chat_id).await?;
    let request: PostMessageRequest = json_body(&body)?;
    let length = request.content.chars().count();
    if length == 0 || length > MAX_CONTENT_CHARS {
        return Err(ApiError::validation(format!(
            "content must be 1 to {MAX_CONTENT_CHARS} characters long (got {length})"
        )));
    }
    viewable(&user, facts)?;
    let message = state
        .app
        .store
        .insert_message(chat_id, Some(&user), &request.content)
        .await?;
    // With the database announcing every insert, `feed.rs` emits this message like any other.
    if !state
        .app
        .messages_from_database
        .load(std::sync::atomic::Ordering::Acquire)
    {
        let room = chat_id.room();
        // A socket that cannot take it is disconnected, never skipped silently; the message
        // stays in the chat's history for it to refetch.
        state
            .io
            .to_room(&state.app, &room, SERVER_MESSAGE, &message)
            .await;
        state.app.metrics.message_sent(&room);
    }
    data(ResultSuccess {
        result: "Success".into(),
    })
}

/// `GET /api/chats`: the caller's chats.
pub async fn list_chats(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> ApiResult<Vec<crate::protocol::ChatSummary>> {
    let user = caller(&state, &headers).await?;
    data(state.app.store.chat_summaries(user.user_id).await?)
}

/// `GET /api/chats/:chat_id`: one chat with all its messages.
pub async fn get_chat(
    State(state): State<HttpState>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<crate::protocol::ChatDetail> {
    let (user, chat_id, facts) = caller_in_chat(&state, &headers, &chat_id).await?;
    viewable(&user, facts)?;
    let detail = state
        .app
        .store
        .chat_detail(chat_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Chat not found"))?;
    data(detail)
}

/// `POST /api/chats`: find or create the direct chat between the caller and these users.
/// The answer carries the `chat_id` (production's does not).
pub async fn create_chat(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<CreatedChat> {
    let user = caller(&state, &headers).await?;
    let request: CreateChatRequest = json_body(&body)?;
    if request.users.is_empty() || request.users.len() > MAX_CHAT_USERS {
        return Err(ApiError::validation(format!(
            "users must name 1 to {MAX_CHAT_USERS} other users"
        )));
    }
    let mut ids = vec![user.user_id];
    for name in &request.users {
        valid_username(name)?;
        let other = state
            .app
            .store
            .user_by_username(name)
            .await?
            .filter(User::is_active)
            .ok_or_else(|| ApiError::not_found(format!("User {name} not found")))?;
        ids.push(other.user_id);
    }
    let chat_id = state.app.store.find_or_create_direct_chat(&ids).await?;
    data(CreatedChat { chat_id })
}

fn valid_username(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "username {:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// Dev only: log in as a user (created when missing), setting both auth cookies.
pub async fn dev_login(State(state): State<HttpState>, body: Bytes) -> Result<Response, ApiError> {
    let request: DevLoginRequest = json_body(&body)?;
    valid_username(&request.username)?;
    let user = state.app.store.ensure_user(&request.username).await?;
    if !user.is_active() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "User is banned",
        ));
    }
    let sid = state
        .app
        .store
        .create_login_session(user.user_id, DEV_SESSION_TTL)
        .await?;
    let session_value = auth::sign_session_cookie(&sid, &state.app.secrets);
    let token = auth::issue_access_token(&user, &state.app.secrets, ACCESS_TOKEN_LIFETIME);
    let answer = DevLoginResponse {
        user_id: user.user_id,
        username: user.username.clone(),
        role: user.role.clone(),
        session_cookie: format!("{SESSION_COOKIE}={session_value}"),
        access_cookie: format!("{ACCESS_COOKIE}={token}"),
    };
    let mut response = Json(DataEnvelope { data: answer }).into_response();
    for cookie in [
        format!(
            "{SESSION_COOKIE}={session_value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            DEV_SESSION_TTL.as_secs()
        ),
        format!(
            "{ACCESS_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            ACCESS_TOKEN_LIFETIME.as_secs()
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// Dev only: create a chat among these users (created when missing).
pub async fn dev_create_chat(
    State(state): State<HttpState>,
    body: Bytes,
) -> ApiResult<CreatedChat> {
    let request: DevCreateChatRequest = json_body(&body)?;
    if request.participants.len() > MAX_DEV_PARTICIPANTS {
        return Err(ApiError::validation(format!(
            "at most {MAX_DEV_PARTICIPANTS} participants per chat"
        )));
    }
    let mut ids = Vec::with_capacity(request.participants.len());
    for name in &request.participants {
        valid_username(name)?;
        ids.push(state.app.store.ensure_user(name).await?.user_id);
    }
    let chat_id = state
        .app
        .store
        .create_chat(request.name.as_deref(), &ids)
        .await?;
    data(CreatedChat { chat_id })
}

/// Dev only: ban (or unban) a user and close every socket they have open, to exercise the
/// re-checks production lacks (the `banned-users-connect` defect of ARCHITECTURE.md).
pub async fn dev_ban(State(state): State<HttpState>, body: Bytes) -> ApiResult<ResultSuccess> {
    let request: DevBanRequest = json_body(&body)?;
    valid_username(&request.username)?;
    let user = state
        .app
        .store
        .user_by_username(&request.username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("User {} not found", request.username)))?;
    state
        .app
        .store
        .set_banned(user.user_id, request.banned)
        .await?;
    if request.banned
        && let Err(e) = state.io.disconnect_room(user_room(user.user_id)).await
    {
        tracing::warn!(error = %e, "could not disconnect every socket of a banned user");
    }
    data(ResultSuccess {
        result: "Success".into(),
    })
}

/// `GET /openapi.json`: the routes this server serves (`routes.rs`: the dev-only ones only with
/// `--dev`) merged with the websocket docs, built once per process for each mode.
pub async fn openapi(State(state): State<HttpState>) -> Response {
    static DOCUMENTS: [std::sync::OnceLock<String>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let dev = state.app.dev;
    let body = DOCUMENTS[usize::from(dev)].get_or_init(|| {
        serde_json::to_string_pretty(&crate::apidoc::server_document(dev))
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// `GET /docs`: a documentation page that works without internet access.
pub async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(crate::apidoc::docs_page())
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// What `GET /metrics` answers: the OpenMetrics text format, which Prometheus scrapes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.app.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("No such route")
}
