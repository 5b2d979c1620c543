//! Persistence behind a small trait: the embedded SQLite store (`sqlite`) and SC Market's own
//! PostgreSQL (`postgres`), chosen by the database URL (`server::config::StoreConfig`).
//!
//! The store answers facts (who a user is, who takes part in what); the rules built on those
//! facts, such as who may view a chat, live in `server::access`.

pub mod fixtures;
pub mod metered;
pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use uuid::Uuid;

use crate::protocol::{ChatDetail, ChatId, ChatMessage, ChatSummary};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: usize,
        source: rusqlite::Error,
    },
    #[error("database error: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The database cannot be reached, or did not answer in time: a refusal with reason
    /// `store_error`, and service resumes when it answers again.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An account as the realtime layer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    pub banned: bool,
    pub deleted: bool,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
    /// Banned and deleted users may neither connect nor act (production lets them connect:
    /// `banned-users-connect` in ARCHITECTURE.md).
    pub fn is_active(&self) -> bool {
        !self.banned && !self.deleted
    }
}

/// The parties of an order or an offer session, as far as chat access is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parties {
    pub customer_id: Option<Uuid>,
    pub assigned_id: Option<Uuid>,
    pub contractor_id: Option<Uuid>,
    /// The viewer's membership of the contractor, if any: its permission names.
    pub viewer_permissions: Option<Vec<String>>,
}

/// Everything the viewing rule needs about one chat and one viewer, in one query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatAccessFacts {
    pub viewer_is_participant: bool,
    /// Set when the chat belongs to an order.
    pub order: Option<Parties>,
    /// Set when the chat belongs to an offer session.
    pub offer: Option<Parties>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn user_by_id(&self, user_id: Uuid) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// The user of that name, created with role `user` when missing (dev login, dev chats).
    async fn ensure_user(&self, username: &str) -> StoreResult<User>;
    async fn set_banned(&self, user_id: Uuid, banned: bool) -> StoreResult<()>;

    /// A new `login_sessions` row for the user; answers its sid.
    async fn create_login_session(&self, user_id: Uuid, ttl: Duration) -> StoreResult<String>;
    /// The account logged in by an unexpired session (`sess.passport.user`), in one lookup:
    /// this runs on every handshake. `Some(Err(user_id))` when the session names a user that
    /// does not exist.
    async fn session_account(&self, sid: &str) -> StoreResult<Option<Result<User, Uuid>>>;
    /// What admitting a socket by session cookie needs (every cookie handshake): the account
    /// as [`Store::session_account`] answers it and the chats that account takes part in
    /// ([`Store::participant_chats`]). A store that talks to another process answers both in
    /// one round trip.
    async fn session_admission(
        &self,
        sid: &str,
    ) -> StoreResult<Option<Result<(User, Vec<ChatId>), Uuid>>> {
        Ok(match self.session_account(sid).await? {
            Some(Ok(user)) => {
                let chats = self.participant_chats(user.user_id).await?;
                Some(Ok((user, chats)))
            }
            Some(Err(missing)) => Some(Err(missing)),
            None => None,
        })
    }

    /// What a REST call on one chat needs (every message post): the account an unexpired
    /// session logs in, as [`Store::session_account`] answers it, and with it that account's
    /// access facts for the chat ([`Store::chat_access_facts`]), `None` when no chat has that
    /// id. One statement on either store, instead of a session lookup and then an access one.
    async fn session_chat_facts(
        &self,
        sid: &str,
        chat_id: ChatId,
    ) -> StoreResult<Option<Result<(User, Option<ChatAccessFacts>), Uuid>>> {
        Ok(match self.session_account(sid).await? {
            Some(Ok(user)) => {
                let facts = self.chat_access_facts(chat_id, user.user_id).await?;
                Some(Ok((user, facts)))
            }
            Some(Err(missing)) => Some(Err(missing)),
            None => None,
        })
    }

    /// `None` when no chat has that id.
    async fn chat_access_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<ChatAccessFacts>>;
    /// What a room join needs, in one lookup (it runs on every `clientJoinRoom`): the viewer's
    /// account, `None` when it does not exist, and with it the chat's access facts, `None`
    /// when no chat has that id.
    async fn join_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<(User, Option<ChatAccessFacts>)>> {
        let Some(user) = self.user_by_id(viewer).await? else {
            return Ok(None);
        };
        let facts = self.chat_access_facts(chat_id, viewer).await?;
        Ok(Some((user, facts)))
    }
    /// Chats the user participates in (joined automatically on connect).
    async fn participant_chats(&self, user_id: Uuid) -> StoreResult<Vec<ChatId>>;
    async fn chat_summaries(&self, user_id: Uuid) -> StoreResult<Vec<ChatSummary>>;
    async fn chat_detail(&self, chat_id: ChatId) -> StoreResult<Option<ChatDetail>>;
    async fn create_chat(&self, name: Option<&str>, participants: &[Uuid]) -> StoreResult<ChatId>;
    /// The direct chat between exactly these users (no order, no offer), created when missing.
    async fn find_or_create_direct_chat(&self, participants: &[Uuid]) -> StoreResult<ChatId>;
    /// Store a message; `author` is `None` for system messages.
    async fn insert_message(
        &self,
        chat_id: ChatId,
        author: Option<&User>,
        content: &str,
    ) -> StoreResult<ChatMessage>;

    /// The store's own figures for `/metrics`, read at each scrape: the PostgreSQL pool's
    /// connections and waiters. `None` for a store with nothing of its own to report.
    fn collector(&self) -> Option<Box<dyn Collector>> {
        None
    }
}
