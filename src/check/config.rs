//! What a `check` run is given: the target, who to be there, and what it is allowed to do.
//! Built from the command line by `commands/check.rs`; nothing here sees clap.

use std::time::Duration;

use crate::protocol::ChatId;

/// How to be one user on the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCredentials {
    /// `NAME=VALUE` cookies (several may be joined with `;`), as a Cookie header carries them.
    pub cookies: Vec<String>,
    /// An access token, sent as the `scmarket.access` cookie.
    pub jwt: Option<String>,
    /// Log in as this user through `POST /api/dev/login` (serve --dev and the production twin).
    pub login: Option<String>,
}

impl UserCredentials {
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty() && self.jwt.is_none() && self.login.is_none()
    }
}

#[derive(Clone, Debug)]
pub struct CheckConfig {
    /// `http|https|ws|wss://HOST[:PORT][/PATH]`.
    pub url: String,
    /// The engine path, when the URL does not name it (default `/ws`).
    pub path: Option<String>,
    /// User A, whose chat is checked.
    pub user_a: UserCredentials,
    /// User B, who takes no part in A's chat.
    pub user_b: UserCredentials,
    /// A `scmarket.sid=...` cookie (or Cookie header) of a banned account.
    pub banned_cookie: Option<String>,
    /// A chat user A takes part in.
    pub chat: Option<ChatId>,
    /// An Origin the deployment allows (its web client's).
    pub origin: Option<String>,
    /// The Origin sent as a hostile page's.
    pub foreign_origin: String,
    /// Messages may be posted.
    pub post: bool,
    /// Requests that crash a server with production's `crash-on-null-join` may be sent.
    pub destructive: bool,
    /// The secret that signs access tokens, to make an expired one (and a fresh control).
    pub jwt_secret: Option<String>,
    /// An access token that has expired, signed by the deployment.
    pub expired_jwt: Option<String>,
    /// A shell command that makes the deployment store a message in `chat` by another way than
    /// the chat REST route (e.g. an order status change); run with `SCMARKET_WS_CHECK_CHAT`.
    pub system_message_command: Option<String>,
    /// Budget for one connect or one HTTP request.
    pub timeout: Duration,
    /// How long a message is waited for, or its absence watched.
    pub wait: Duration,
    /// How long room requests are repeated after CONNECT, so a server that registers its
    /// listeners late still hears one.
    pub join_window: Duration,
    /// Run only these checks (ids), when not empty.
    pub only: Vec<String>,
    /// Leave these checks out (ids).
    pub skip: Vec<String>,
}

/// The Origin a hostile page is given by default: a reserved name no deployment allows.
pub const DEFAULT_FOREIGN_ORIGIN: &str = "https://scmarket-ws-check.invalid";

impl CheckConfig {
    /// A configuration with the defaults of the command line.
    pub fn new(url: impl Into<String>) -> CheckConfig {
        CheckConfig {
            url: url.into(),
            path: None,
            user_a: UserCredentials::default(),
            user_b: UserCredentials::default(),
            banned_cookie: None,
            chat: None,
            origin: None,
            foreign_origin: DEFAULT_FOREIGN_ORIGIN.to_string(),
            post: false,
            destructive: false,
            jwt_secret: None,
            expired_jwt: None,
            system_message_command: None,
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(2),
            join_window: Duration::from_secs(1),
            only: Vec::new(),
            skip: Vec::new(),
        }
    }

    /// Whether the check of this id is selected by `--only` and `--skip`.
    pub fn selects(&self, id: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|o| o == id))
            && !self.skip.iter().any(|s| s == id)
    }
}
