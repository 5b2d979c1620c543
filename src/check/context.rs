//! What every check shares: the target, users A and B with their cookies, the REST client, and
//! the handful of moves the checks are made of (open a session as someone, post a marked
//! message, wait for it or for its absence).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::config::{CheckConfig, UserCredentials};
use super::report::Evidence;
use super::rooms;
use crate::client::{
    ApiClient, ClientError, ConnectOptions, DisconnectReason, Session, SessionEvent, Transport,
    mask,
};
use crate::protocol::{self, ChatId, PostMessageRequest};

/// One user as the checks act for them.
#[derive(Clone, Debug)]
pub struct User {
    /// `A` or `B`, for evidence.
    pub label: &'static str,
    cookies: Vec<(String, String)>,
    pub username: Option<String>,
    /// The account id (`sub` of the access token), when known.
    pub user_id: Option<String>,
}

impl User {
    /// The cookies as a `Cookie` header value.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookies(&self) -> &[(String, String)] {
        &self.cookies
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `user A (alice)`.
    pub fn describe(&self) -> String {
        match &self.username {
            Some(name) => format!("user {} ({name})", self.label),
            None => format!("user {}", self.label),
        }
    }
}

/// Split `NAME=VALUE; NAME=VALUE` into pairs (a later name replaces an earlier one).
pub fn parse_cookies(text: &str, into: &mut Vec<(String, String)>) -> Result<(), String> {
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| {
            format!(
                "cookie {:?} has no '=': write NAME=VALUE, e.g. {}=s%3A...",
                mask(part),
                protocol::SESSION_COOKIE
            )
        })?;
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.is_empty() || value.is_empty() {
            return Err(format!("cookie {name:?} has an empty name or value"));
        }
        into.retain(|(n, _)| *n != name);
        into.push((name, value));
    }
    Ok(())
}

/// The claims of a JWT, read without checking its signature (to learn who it names).
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Whether the server answers room requests with an acknowledgement (the reference server
/// does; production never does: `swallowed-errors`), found once per run.
#[derive(Clone, Debug)]
pub struct AckSupport {
    pub acknowledges: bool,
    pub evidence: Evidence,
}

/// What arrived while a session watched for a marked message.
#[derive(Debug)]
pub enum Watch {
    /// The `serverMessage` carrying the mark: its argument and its wire form.
    Received { message: Value, packet: String },
    /// Nothing carrying the mark within the time.
    Nothing,
    /// The session ended first.
    Closed(DisconnectReason),
}

pub struct Context {
    pub config: CheckConfig,
    /// URL and path only: every session adds its own credentials.
    base: ConnectOptions,
    pub api: ApiClient,
    /// For requests whose answer headers matter (CORS); no cookie store, no redirects.
    pub http: reqwest::Client,
    pub a: Option<User>,
    pub b: Option<User>,
    acks: OnceCell<Option<AckSupport>>,
}

/// Room requests are repeated this often within the join window.
pub const RESEND_EVERY: Duration = Duration::from_millis(50);

impl Context {
    pub fn new(config: CheckConfig) -> Result<Context, ClientError> {
        let base = ConnectOptions::new(&config.url, config.path.as_deref())?;
        let api = ApiClient::for_target(&base).with_timeout(config.timeout);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::InvalidOption(format!("cannot build an HTTP client: {e}")))?;
        Ok(Context {
            config,
            base,
            api,
            http,
            a: None,
            b: None,
            acks: OnceCell::new(),
        })
    }

    /// The engine endpoint, for the report.
    pub fn target(&self) -> String {
        self.base.display_target()
    }

    /// `GET /ws/?EIO=4&transport=polling`, as evidence writes an engine request.
    pub fn engine_request(&self, transport: &str) -> String {
        format!("GET {}/?EIO=4&transport={transport}", self.base.path())
    }

    /// `http(s)://host:port`, without a trailing slash.
    pub fn api_base(&self) -> String {
        self.base
            .http_base()
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    /// The polling handshake URL, for raw requests.
    pub fn polling_url(&self) -> String {
        let mut url = self.base.http_base().clone();
        url.set_path(&format!("{}/", self.base.path()));
        url.set_query(Some("EIO=4&transport=polling"));
        url.to_string()
    }

    /// Log in or read the cookies of one user.
    pub async fn resolve_user(
        &self,
        label: &'static str,
        credentials: &UserCredentials,
    ) -> Result<Option<User>, ClientError> {
        if credentials.is_empty() {
            return Ok(None);
        }
        let mut cookies = Vec::new();
        for text in &credentials.cookies {
            parse_cookies(text, &mut cookies).map_err(ClientError::InvalidOption)?;
        }
        if let Some(jwt) = &credentials.jwt {
            parse_cookies(
                &format!("{}={}", protocol::ACCESS_COOKIE, jwt.trim()),
                &mut cookies,
            )
            .map_err(ClientError::InvalidOption)?;
        }
        let mut user = User {
            label,
            cookies,
            username: None,
            user_id: None,
        };
        if let Some(name) = &credentials.login {
            let login = self.api.dev_login(name).await?;
            parse_cookies(&login.session_cookie, &mut user.cookies)
                .map_err(ClientError::Protocol)?;
            parse_cookies(&login.access_cookie, &mut user.cookies)
                .map_err(ClientError::Protocol)?;
            user.username = Some(login.username);
            user.user_id = Some(login.user_id.to_string());
        }
        if let Some(claims) = user.cookie(protocol::ACCESS_COOKIE).and_then(jwt_claims) {
            if user.user_id.is_none() {
                user.user_id = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            if user.username.is_none() {
                user.username = claims
                    .get("username")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
        }
        Ok(Some(user))
    }

    /// Session options with exactly these cookies (and Origin, when given).
    pub fn options(
        &self,
        cookies: &[(String, String)],
        transport: Transport,
        origin: Option<&str>,
    ) -> Result<ConnectOptions, ClientError> {
        let mut options = self.base.clone();
        options.transport = transport;
        options.timeout = self.config.timeout;
        for (name, value) in cookies {
            options.add_cookies(&format!("{name}={value}"))?;
        }
        if let Some(origin) = origin {
            options.set_origin(origin)?;
        }
        Ok(options)
    }

    /// Open a session as `user` over `transport`.
    pub async fn connect(&self, user: &User, transport: Transport) -> Result<Session, ClientError> {
        Session::connect(&self.options(user.cookies(), transport, None)?).await
    }

    /// Post a marked message to `chat` as `user`: the mark (to find it again) and the answer.
    pub async fn post(
        &self,
        user: &User,
        chat: &str,
        check: &str,
    ) -> (String, Result<(), ClientError>) {
        let mark = Uuid::new_v4().simple().to_string();
        let request = PostMessageRequest {
            content: format!("scmarket-ws check {check} {mark}"),
        };
        let result = self
            .api
            .post_message(&user.cookie_header(), chat, &request)
            .await;
        (mark, result)
    }

    /// Evidence for a post: the route, the status and the answer's body on a refusal.
    pub fn post_evidence(
        &self,
        step: &str,
        user: &User,
        chat: &str,
        result: &Result<(), ClientError>,
    ) -> Evidence {
        let evidence = Evidence::step(step).request(format!(
            "POST /api/chats/{chat}/messages as {}",
            user.describe()
        ));
        match result {
            Ok(()) => evidence.status(200),
            Err(ClientError::ApiStatus { status, body, .. }) => evidence.status(*status).body(body),
            Err(e) => evidence.note(format!("the request failed: {e}")),
        }
    }

    /// Watch `session` for the `serverMessage` carrying `mark`, at most `within`.
    pub async fn watch(session: &mut Session, mark: &str, within: Duration) -> Watch {
        let deadline = Instant::now() + within;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, session.next_event()).await {
                Err(_) => return Watch::Nothing,
                Ok(None) => return Watch::Closed(DisconnectReason::TransportClose),
                Ok(Some(SessionEvent::Disconnected(reason))) => return Watch::Closed(reason),
                Ok(Some(SessionEvent::Ping { .. })) => {}
                Ok(Some(SessionEvent::Event(event))) => {
                    let marked = event.name == protocol::SERVER_MESSAGE
                        && event.args.first().is_some_and(|m| {
                            m.get("content")
                                .and_then(Value::as_str)
                                .is_some_and(|c| c.contains(mark))
                        });
                    if marked {
                        let mut wire = vec![Value::from(event.name.clone())];
                        wire.extend(event.args.iter().cloned());
                        return Watch::Received {
                            message: event.args[0].clone(),
                            packet: format!("42{}", Value::from(wire)),
                        };
                    }
                }
            }
        }
    }

    /// Whether the server acknowledges room requests, found once with user A: a join of
    /// `--chat` (or of a chat that does not exist) asked with an acknowledgement, repeated
    /// through the join window. `None` without user A, or when A cannot connect.
    pub async fn ack_support(&self) -> Option<&AckSupport> {
        self.acks
            .get_or_init(|| async {
                let a = self.a.as_ref()?;
                let session = self.connect(a, Transport::Websocket).await.ok()?;
                let chat = self
                    .config
                    .chat
                    .map_or_else(|| Uuid::new_v4().to_string(), |c| c.to_string());
                let landing = rooms::land_with_ack(
                    session.handle(),
                    protocol::CLIENT_JOIN_ROOM,
                    Some(json!({ "chat_id": chat })),
                    self.config.join_window,
                    RESEND_EVERY,
                )
                .await;
                session.disconnect().await;
                let landing = landing.ok()?;
                let evidence = Evidence::step("does the server acknowledge room requests?")
                    .request(format!(
                        "42N[\"{}\",{{\"chat_id\":\"{chat}\"}}] as {}, every {} ms for {} ms",
                        protocol::CLIENT_JOIN_ROOM,
                        a.describe(),
                        RESEND_EVERY.as_millis(),
                        self.config.join_window.as_millis()
                    ));
                Some(match &landing.answer {
                    Some(answer) => AckSupport {
                        acknowledges: true,
                        evidence: evidence
                            .packet(format!("43N{}", Value::from(answer.clone())))
                            .note(format!(
                                "acknowledged (request {} of {})",
                                landing.acked_attempt.unwrap_or(0) + 1,
                                landing.attempts
                            )),
                    },
                    None => AckSupport {
                        acknowledges: false,
                        evidence: evidence.note(format!(
                            "no acknowledgement to any of {} requests: production's swallowed-errors; joins can only be proven by a message",
                            landing.attempts
                        )),
                    },
                })
            })
            .await
            .as_ref()
    }

    pub fn chat(&self) -> Option<ChatId> {
        self.config.chat
    }
}
