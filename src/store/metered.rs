//! Every store call timed and every failure counted, for `/metrics`: which lookup a node waits
//! on when handshakes, joins or posts slow down, and whether the database or the wait for a
//! pooled connection is the cause (the pool's own figures come from [`Store::collector`]).
//!
//! A wrapper rather than timing inside each store, so both stores are measured the same way
//! and from the caller's side: what a call costs the handshake, join or post that waits on it,
//! the wait for a connection and the query timeout included.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use uuid::Uuid;

use super::{ChatAccessFacts, Store, StoreError, StoreResult, User};
use crate::protocol::{ChatDetail, ChatId, ChatMessage, ChatSummary};

/// The store calls, as `call` label values. The hot ones: `session_admission` (every cookie
/// handshake), `join_facts` (every join), `session_chat_facts` and `insert_message` (every
/// post).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    UserById,
    UserByUsername,
    EnsureUser,
    SetBanned,
    CreateLoginSession,
    SessionAccount,
    SessionAdmission,
    SessionChatFacts,
    ChatAccessFacts,
    JoinFacts,
    ParticipantChats,
    ChatSummaries,
    ChatDetail,
    CreateChat,
    FindOrCreateDirectChat,
    InsertMessage,
}

impl Call {
    pub const ALL: [Call; 16] = [
        Call::UserById,
        Call::UserByUsername,
        Call::EnsureUser,
        Call::SetBanned,
        Call::CreateLoginSession,
        Call::SessionAccount,
        Call::SessionAdmission,
        Call::SessionChatFacts,
        Call::ChatAccessFacts,
        Call::JoinFacts,
        Call::ParticipantChats,
        Call::ChatSummaries,
        Call::ChatDetail,
        Call::CreateChat,
        Call::FindOrCreateDirectChat,
        Call::InsertMessage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Call::UserById => "user_by_id",
            Call::UserByUsername => "user_by_username",
            Call::EnsureUser => "ensure_user",
            Call::SetBanned => "set_banned",
            Call::CreateLoginSession => "create_login_session",
            Call::SessionAccount => "session_account",
            Call::SessionAdmission => "session_admission",
            Call::SessionChatFacts => "session_chat_facts",
            Call::ChatAccessFacts => "chat_access_facts",
            Call::JoinFacts => "join_facts",
            Call::ParticipantChats => "participant_chats",
            Call::ChatSummaries => "chat_summaries",
            Call::ChatDetail => "chat_detail",
            Call::CreateChat => "create_chat",
            Call::FindOrCreateDirectChat => "find_or_create_direct_chat",
            Call::InsertMessage => "insert_message",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabel {
    call: &'static str,
    /// `unavailable` (no connection, or no answer within the query timeout), `database` (the
    /// database answered with an error), `invalid` (a value the store could not use).
    kind: &'static str,
}

/// Buckets from 0.25 ms to ~16 s, doubling: a warm primary-key lookup is well under a
/// millisecond, and a call that waits for the query timeout (5 s by default, 30 s in the
/// c100k run) lands in the last bucket or `+Inf`.
pub fn seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_25, 2.0, 17)
}

fn kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Database(_) | StoreError::Migration { .. } | StoreError::Postgres(_) => {
            "database"
        }
        StoreError::Invalid(_) => "invalid",
    }
}

/// A store whose every call is timed (`store_call_seconds{call}`) and whose failures are
/// counted (`store_failures_total{call,kind}`).
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    /// One histogram per [`Call`], in [`Call::ALL`] order, resolved once so a call does not
    /// look its label up.
    seconds: Vec<Histogram>,
    failures: Family<FailureLabel, Counter>,
}

impl MeteredStore {
    /// Wrap `inner` and register its metrics (and the store's own collector, if it has one)
    /// in `registry`.
    pub fn new(inner: Arc<dyn Store>, registry: &mut Registry) -> Self {
        let calls = Family::<CallLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(seconds_buckets())) as fn() -> Histogram,
        );
        let seconds = Call::ALL
            .iter()
            .map(|call| {
                calls
                    .get_or_create(&CallLabel {
                        call: call.as_str(),
                    })
                    .clone()
            })
            .collect();
        registry.register_with_unit(
            "store_call",
            "Store calls by call, from the caller's side: the wait for a pooled connection and the query included",
            Unit::Seconds,
            calls,
        );
        let failures = Family::<FailureLabel, Counter>::default();
        registry.register(
            "store_failures",
            "Store calls that failed, by call and kind (unavailable, database, invalid)",
            failures.clone(),
        );
        if let Some(collector) = inner.collector() {
            registry.register_collector(collector);
        }
        MeteredStore {
            inner,
            seconds,
            failures,
        }
    }

    async fn time<T>(
        &self,
        call: Call,
        work: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = work.await;
        self.record(call, started.elapsed(), result.as_ref().err());
        result
    }

    fn record(&self, call: Call, took: Duration, error: Option<&StoreError>) {
        // `Call::ALL` lists every variant in declaration order.
        self.seconds[call as usize].observe(took.as_secs_f64());
        if let Some(error) = error {
            self.failures
                .get_or_create(&FailureLabel {
                    call: call.as_str(),
                    kind: kind(error),
                })
                .inc();
        }
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn user_by_id(&self, user_id: Uuid) -> StoreResult<Option<User>> {
        self.time(Call::UserById, self.inner.user_by_id(user_id))
            .await
    }
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.time(Call::UserByUsername, self.inner.user_by_username(username))
            .await
    }
    async fn ensure_user(&self, username: &str) -> StoreResult<User> {
        self.time(Call::EnsureUser, self.inner.ensure_user(username))
            .await
    }
    async fn set_banned(&self, user_id: Uuid, banned: bool) -> StoreResult<()> {
        self.time(Call::SetBanned, self.inner.set_banned(user_id, banned))
            .await
    }
    async fn create_login_session(&self, user_id: Uuid, ttl: Duration) -> StoreResult<String> {
        self.time(
            Call::CreateLoginSession,
            self.inner.create_login_session(user_id, ttl),
        )
        .await
    }
    async fn session_account(&self, sid: &str) -> StoreResult<Option<Result<User, Uuid>>> {
        self.time(Call::SessionAccount, self.inner.session_account(sid))
            .await
    }
    // The combined lookups go to the wrapped store's own versions (one round trip on
    // PostgreSQL), never to the trait's defaults built from the parts.
    async fn session_admission(
        &self,
        sid: &str,
    ) -> StoreResult<Option<Result<(User, Vec<ChatId>), Uuid>>> {
        self.time(Call::SessionAdmission, self.inner.session_admission(sid))
            .await
    }
    async fn session_chat_facts(
        &self,
        sid: &str,
        chat_id: ChatId,
    ) -> StoreResult<Option<Result<(User, Option<ChatAccessFacts>), Uuid>>> {
        self.time(
            Call::SessionChatFacts,
            self.inner.session_chat_facts(sid, chat_id),
        )
        .await
    }
    async fn chat_access_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<ChatAccessFacts>> {
        self.time(
            Call::ChatAccessFacts,
            self.inner.chat_access_facts(chat_id, viewer),
        )
        .await
    }
    async fn join_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<(User, Option<ChatAccessFacts>)>> {
        self.time(Call::JoinFacts, self.inner.join_facts(chat_id, viewer))
            .await
    }
    async fn participant_chats(&self, user_id: Uuid) -> StoreResult<Vec<ChatId>> {
        self.time(
            Call::ParticipantChats,
            self.inner.participant_chats(user_id),
        )
        .await
    }
    async fn chat_summaries(&self, user_id: Uuid) -> StoreResult<Vec<ChatSummary>> {
        self.time(Call::ChatSummaries, self.inner.chat_summaries(user_id))
            .await
    }
    async fn chat_detail(&self, chat_id: ChatId) -> StoreResult<Option<ChatDetail>> {
        self.time(Call::ChatDetail, self.inner.chat_detail(chat_id))
            .await
    }
    async fn create_chat(&self, name: Option<&str>, participants: &[Uuid]) -> StoreResult<ChatId> {
        self.time(Call::CreateChat, self.inner.create_chat(name, participants))
            .await
    }
    async fn find_or_create_direct_chat(&self, participants: &[Uuid]) -> StoreResult<ChatId> {
        self.time(
            Call::FindOrCreateDirectChat,
            self.inner.find_or_create_direct_chat(participants),
        )
        .await
    }
    async fn insert_message(
        &self,
        chat_id: ChatId,
        author: Option<&User>,
        content: &str,
    ) -> StoreResult<ChatMessage> {
        self.time(
            Call::InsertMessage,
            self.inner.insert_message(chat_id, author, content),
        )
        .await
    }
    fn collector(&self) -> Option<Box<dyn Collector>> {
        self.inner.collector()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_listed_once_in_declaration_order() {
        for (i, call) in Call::ALL.iter().enumerate() {
            assert_eq!(*call as usize, i, "{call:?}");
        }
        let mut names: Vec<_> = Call::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Call::ALL.len());
    }
}
