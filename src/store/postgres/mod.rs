//! The store on SC Market's own PostgreSQL: the production tables as they are
//! (`SCMARKET_SCHEMA.md` of the shared docs), through a `deadpool-postgres` pool of
//! `tokio-postgres` connections.
//!
//! It never creates, alters or drops a production table: `serve` checks the columns it needs
//! before it starts (`schema::check`, also `db check`), and only `serve --dev --init` creates
//! tables, in a database that has none of them. New `messages` rows from any writer reach
//! the sockets through `notify` when its trigger is installed.
//!
//! Every call is bounded by `PoolConfig::query_timeout` (waiting for a connection included),
//! so a database that stops answering turns into `StoreError::Unavailable` refusals
//! (`store_error`), never into sockets that hang; connections that broke are dropped by the
//! pool and new ones made when the database answers again.

pub mod fixtures;
pub mod notify;
pub mod schema;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Hook, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use postgres_native_tls::MakeTlsConnector;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Unit;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{ChatAccessFacts, Parties, Store, StoreError, StoreResult, User};
use crate::protocol::{ChatDetail, ChatId, ChatMessage, ChatSummary, WireTimestamp};

/// The pool and its timeouts (`serve --pool-size`, `--pool-warm`, `--pool-wait-timeout`,
/// `--db-connect-timeout`, `--db-query-timeout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections open at once.
    pub size: usize,
    /// Connections `serve` opens and warms at start ([`PostgresStore::warm`]); `None`: all
    /// `size` of them. Commands that make one lookup and exit set `Some(0)`.
    pub warm: Option<usize>,
    /// How long a call waits for a free connection.
    pub wait_timeout: Duration,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long one store call may take in all (waiting for a connection included).
    pub query_timeout: Duration,
}

impl PoolConfig {
    /// How many connections to open and warm at start.
    pub fn warm_count(&self) -> usize {
        self.warm.unwrap_or(self.size).min(self.size.max(1))
    }
}

/// The pool size when none is given: twice the cores of this machine, 4 to 32. Joins and
/// handshakes are short queries, so more connections than the database host can run at once
/// only queue inside it: with PostgreSQL on this 2-core machine, a pool of 16 kept join p99 at
/// 4-13 ms where a pool of 4 kept it at 3-4 ms and admitted more sessions a second
/// (docs/BENCHMARKS.md). The usual rule sizes a pool to the database's cores; this machine's
/// stand in for them, and `--pool-size` says otherwise.
pub fn default_pool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (2 * cores).clamp(4, 32)
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: default_pool_size(),
            warm: None,
            wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether a `--database` value names a PostgreSQL database.
pub fn is_postgres_url(database: &str) -> bool {
    let d = database.trim();
    d.starts_with("postgres://") || d.starts_with("postgresql://")
}

/// The `application_name` of `serve`'s connections when the URL gives none (it shows in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "scmarket-ws";

/// How to open a connection to one database: tokio-postgres' settings and the TLS connector
/// its `sslmode` needs (`tls.rs`).
#[derive(Clone)]
pub struct ConnectionSettings {
    pub config: tokio_postgres::Config,
    pub tls: MakeTlsConnector,
}

/// The connection settings of a URL, with what every connection of this store needs: UTC
/// session time (the `timestamp` columns are UTC wall-clock values, and `now()` defaults must
/// write UTC too), an application name that shows in `pg_stat_activity`, and TLS as the URL's
/// `sslmode` asks.
pub fn connection_config(url: &str, connect_timeout: Duration) -> StoreResult<ConnectionSettings> {
    let tls::Tls {
        url: plain,
        connector,
    } = tls::from_url(url, &redact(url))?;
    let mut config: tokio_postgres::Config = plain.parse().map_err(|e| {
        StoreError::Invalid(format!(
            "{}: not a PostgreSQL URL ({e}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            redact(url)
        ))
    })?;
    if config.get_dbname().is_none() {
        return Err(StoreError::Invalid(format!(
            "{}: the URL names no database (postgres://HOST/DATABASE)",
            redact(url)
        )));
    }
    config.options("-c TimeZone=UTC");
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    config.connect_timeout(connect_timeout);
    Ok(ConnectionSettings {
        config,
        tls: connector,
    })
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.trim().to_string(),
    }
}

pub struct PostgresStore {
    pool: Pool,
    settings: ConnectionSettings,
    query_timeout: Duration,
    /// Set by [`PostgresStore::warm`]: from then on every new connection is warmed.
    statements_ready: Arc<AtomicBool>,
    /// How long each checkout waited for a pooled connection (`store_pool_wait_seconds`).
    pool_wait: Histogram,
}

/// How often warming runs each lookup: PostgreSQL plans a prepared statement afresh for its
/// first five runs (custom plans) and then keeps a generic plan when that costs no more, as it
/// does for these primary-key lookups; from the sixth run on, a join is not planned at all.
const WARM_RUNS: usize = 6;

/// Prepare the lookups every handshake, join and message post makes on `client`, and run each
/// [`WARM_RUNS`] times on ids that match nothing. A new backend's first query of a table
/// loads that table's catalog entries and plans the query cold (about 20 ms for the join
/// lookup on a loaded machine, 0.1 ms warm: docs/BENCHMARKS.md, "Admission and joins");
/// doing it here moves that cost off the first handshakes and joins.
async fn warm_connection(
    client: &deadpool_postgres::ClientWrapper,
) -> Result<(), tokio_postgres::Error> {
    let nobody = Uuid::nil();
    let session = client.prepare_cached(SESSION_ADMISSION_SQL).await?;
    let chats = client.prepare_cached(PARTICIPANT_CHATS_SQL).await?;
    let join = client.prepare_cached(JOIN_FACTS_SQL).await?;
    let user = client.prepare_cached(USER_BY_ID_SQL).await?;
    let post = client.prepare_cached(SESSION_CHAT_FACTS_SQL).await?;
    for _ in 0..WARM_RUNS {
        client.query_opt(&session, &[&"", &now_utc()]).await?;
        client.query(&chats, &[&nobody]).await?;
        client.query_opt(&join, &[&nobody, &nobody]).await?;
        client.query_opt(&post, &[&"", &now_utc(), &nobody]).await?;
        // Last: `tests/serve_postgres.rs` knows a warmed backend by this last statement.
        client.query_opt(&user, &[&nobody]).await?;
    }
    Ok(())
}

impl PostgresStore {
    /// A pool on `url`, and one connection made at once so a wrong URL, a refused connection
    /// or a wrong password is reported at start, not at the first handshake.
    pub async fn connect(url: &str, pool: &PoolConfig) -> StoreResult<Self> {
        let settings = connection_config(url, pool.connect_timeout)?;
        let manager = Manager::from_config(
            settings.config.clone(),
            settings.tls.clone(),
            ManagerConfig {
                // A connection that broke says so (`is_closed`); no round trip per checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let statements_ready = Arc::new(AtomicBool::new(false));
        let ready = statements_ready.clone();
        let built = Pool::builder(manager)
            .max_size(pool.size.max(1))
            // A connection made later (more load, or a new one after the database came back)
            // is warmed as those opened at start, before its first lookup, so no handshake or
            // join pays for preparing and first planning. Not before `warm`: until the schema
            // is checked (or created by `--init`) the statements may not prepare.
            .post_create(Hook::async_fn(move |client, _| {
                let ready = ready.load(Ordering::Relaxed);
                Box::pin(async move {
                    if ready && let Err(e) = warm_connection(client).await {
                        // The lookups prepare themselves on first use instead.
                        tracing::warn!(error = %describe(&e), "could not warm a new pool connection");
                    }
                    Ok(())
                })
            }))
            .wait_timeout(Some(pool.wait_timeout))
            .create_timeout(Some(pool.connect_timeout))
            .recycle_timeout(Some(pool.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Invalid(format!("connection pool: {e}")))?;
        let store = PostgresStore {
            pool: built,
            settings,
            query_timeout: pool.query_timeout,
            statements_ready,
            pool_wait: Histogram::new(super::metered::seconds_buckets()),
        };
        let first = store.pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to {}: {}",
                redact(url),
                pool_error(&e)
            ))
        })?;
        drop(first);
        Ok(store)
    }

    /// Open up to `connections` pool connections at once and warm each one
    /// ([`warm_connection`]); from then on every connection the pool adds is warmed before
    /// it serves. Called by `serve` once the schema is known to be there. Answers how many
    /// connections the pool holds afterwards; a database that refuses some (its
    /// `max_connections` reached) is an error, and the pool still works with those it has.
    pub async fn warm(&self, connections: usize) -> StoreResult<usize> {
        self.statements_ready.store(true, Ordering::Relaxed);
        let wanted = connections.min(self.pool.status().max_size);
        // All checked out together, so the pool must open new ones rather than hand the same
        // idle connection back `wanted` times.
        let held = futures_util::future::join_all((0..wanted).map(|_| async {
            let client = self.client().await?;
            warm_connection(&client).await?;
            Ok::<_, StoreError>(client)
        }))
        .await;
        let open = self.pool.status().size;
        let failed: Vec<String> = held
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        match failed.first() {
            None => Ok(open),
            Some(first) => Err(StoreError::Unavailable(format!(
                "{} of {wanted} pool connections could not be opened and warmed ({first}); \
                 {open} open",
                failed.len()
            ))),
        }
    }

    /// The connection settings, for the dedicated LISTEN connection of `notify`.
    pub fn connection_settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// A pooled connection, for `db` commands, `--init` and fixtures.
    pub async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        let started = Instant::now();
        let client = self.pool.get().await;
        self.pool_wait.observe(started.elapsed().as_secs_f64());
        client.map_err(|e| StoreError::Unavailable(pool_error(&e)))
    }

    /// Run one store call within the query timeout.
    async fn timed<T>(&self, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        tokio::time::timeout(self.query_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {:?}",
                    self.query_timeout
                )))
            })
    }
}

/// The pool's figures at each scrape: connections idle and in use, the most it may open, the
/// calls waiting for one, and how long checkouts waited. A pool whose connections are all in
/// use with calls waiting is the database (or the pool size) holding serving back.
struct PoolFigures {
    pool: Pool,
    wait: Histogram,
}

impl std::fmt::Debug for PoolFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolFigures")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Collector for PoolFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.pool.status();
        let gauge = |n: usize| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let in_use = status.size.saturating_sub(status.available);
        let mut connections = encoder.encode_descriptor(
            "store_pool_connections",
            "PostgreSQL pool connections open, by state (idle, in_use)",
            None,
            gauge(0).metric_type(),
        )?;
        for (state, n) in [("idle", status.available), ("in_use", in_use)] {
            gauge(n).encode(connections.encode_family(&[("state", state)])?)?;
        }
        for (name, help, n) in [
            (
                "store_pool_max_connections",
                "The most connections the PostgreSQL pool opens (--pool-size)",
                status.max_size,
            ),
            (
                "store_pool_waiting",
                "Store calls waiting for a PostgreSQL pool connection now",
                status.waiting,
            ),
        ] {
            let value = gauge(n);
            value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)?;
        }
        self.wait.encode(encoder.encode_descriptor(
            "store_pool_wait",
            "How long store calls waited for a PostgreSQL pool connection",
            Some(&Unit::Seconds),
            self.wait.metric_type(),
        )?)
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// A driver error with the server's own message when there is one (tokio-postgres' Display
/// says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Now, as the UTC wall-clock value the `timestamp` columns hold, to the microsecond.
pub fn now_utc() -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc();
    let micros = now.nanosecond() / 1_000 * 1_000;
    let now = now.replace_nanosecond(micros).unwrap_or(now);
    PrimitiveDateTime::new(now.date(), now.time())
}

pub fn wire_timestamp(t: PrimitiveDateTime) -> WireTimestamp {
    let millis = t.assume_offset(UtcOffset::UTC).unix_timestamp_nanos() / 1_000_000;
    WireTimestamp::from_unix_millis(millis as i64)
}

fn later(ttl: Duration) -> PrimitiveDateTime {
    let now = OffsetDateTime::now_utc();
    let then = now
        .checked_add(time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX))
        .unwrap_or(now + time::Duration::days(365 * 100));
    PrimitiveDateTime::new(then.date(), then.time())
}

/// The account columns of a query, in the order `user_at` reads them.
const USER_COLUMNS: &str = "a.user_id, COALESCE(a.username, ''), a.role, a.banned";
const USER_BY_ID_SQL: &str = "SELECT a.user_id, COALESCE(a.username, ''), a.role, a.banned FROM accounts a WHERE a.user_id = $1";
const USER_BY_USERNAME_SQL: &str = "SELECT a.user_id, COALESCE(a.username, ''), a.role, a.banned \
     FROM accounts a WHERE a.username = $1 LIMIT 1";
/// What follows the select list of the session lookups: the session's `passport.user` as text
/// (`p.u`), and the account it names when it is a UUID. The `sess` JSON may be anything (an
/// anonymous session, a number for a user, not an object): only a UUID string is looked up,
/// never cast in a way that could fail the query.
macro_rules! session_account_from {
    () => {
        concat!(
            session_account_joins!(),
            " WHERE s.sid = $1 AND s.expire > $2"
        )
    };
}
/// [`session_account_from!`] without its `WHERE`, for a lookup that joins more.
macro_rules! session_account_joins {
    () => {
        " FROM login_sessions s \
         CROSS JOIN LATERAL (SELECT CASE WHEN json_typeof(s.sess::json) = 'object' \
             AND json_typeof(s.sess::json -> 'passport') = 'object' \
             THEN s.sess::json -> 'passport' ->> 'user' END AS u) p \
         LEFT JOIN accounts a ON a.user_id = CASE \
             WHEN p.u ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p.u::uuid END"
    };
}
/// The session's user as text, then the account's columns.
const SESSION_ACCOUNT_SQL: &str = concat!(
    "SELECT p.u, a.user_id, COALESCE(a.username, ''), a.role, a.banned",
    session_account_from!()
);
/// [`SESSION_ACCOUNT_SQL`] and the account's chats: admission in one round trip.
const SESSION_ADMISSION_SQL: &str = concat!(
    "SELECT p.u, a.user_id, COALESCE(a.username, ''), a.role, a.banned, \
     ARRAY(SELECT cp.chat_id FROM chat_participants cp WHERE cp.user_id = a.user_id)",
    session_account_from!()
);
const PARTICIPANT_CHATS_SQL: &str = "SELECT chat_id FROM chat_participants WHERE user_id = $1";

/// The permission names the viewer (`$v`) holds through their roles in contractor `$c`, or
/// NULL when the viewer is no member of it. Membership alone (no role) is an empty list.
macro_rules! permissions_sql {
    ($c:literal, $v:literal) => {
        concat!(
            "CASE WHEN EXISTS(SELECT 1 FROM contractor_members m WHERE m.contractor_id = ",
            $c,
            " AND m.user_id = ",
            $v,
            ") THEN ARRAY(SELECT DISTINCT v.p FROM contractor_member_roles mr \
               JOIN contractor_roles r ON r.role_id = mr.role_id \
               CROSS JOIN LATERAL (VALUES ('manage_roles', r.manage_roles), ('manage_orders', r.manage_orders), \
                 ('kick_members', r.kick_members), ('manage_invites', r.manage_invites), \
                 ('manage_org_details', r.manage_org_details), ('manage_stock', r.manage_stock), \
                 ('manage_market', r.manage_market), ('manage_recruiting', r.manage_recruiting), \
                 ('manage_webhooks', r.manage_webhooks), ('manage_blocklist', r.manage_blocklist)) v(p, granted) \
               WHERE mr.user_id = ",
            $v,
            " AND r.contractor_id = ",
            $c,
            " AND v.granted ORDER BY 1)::text[] END"
        )
    };
}

/// Columns for the viewer `$v`: participant, then order parties (customer, assigned,
/// contractor, permissions), then offer parties (offer session `os`).
macro_rules! access_columns {
    ($v:literal) => {
        concat!(
            "EXISTS(SELECT 1 FROM chat_participants cp WHERE cp.chat_id = c.chat_id AND cp.user_id = ",
            $v,
            "), o.customer_id, o.assigned_id, o.contractor_id, ",
            permissions_sql!("o.contractor_id", $v),
            ", os.customer_id, os.assigned_id, os.contractor_id, ",
            permissions_sql!("os.contractor_id", $v)
        )
    };
}

const CHAT_ACCESS_FACTS_SQL: &str = concat!(
    "SELECT ",
    access_columns!("$1"),
    " FROM chats c \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN offer_sessions os ON os.id = c.session_id \
     WHERE c.chat_id = $2"
);
/// The viewer's account, whether the chat exists, then the access columns.
const JOIN_FACTS_SQL: &str = concat!(
    "SELECT a.user_id, COALESCE(a.username, ''), a.role, a.banned, c.chat_id IS NOT NULL, ",
    access_columns!("$1"),
    " FROM accounts a \
     LEFT JOIN chats c ON c.chat_id = $2 \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN offer_sessions os ON os.id = c.session_id \
     WHERE a.user_id = $1"
);
/// A message post's authentication and access check in one round trip: the columns of
/// [`SESSION_ACCOUNT_SQL`] for session `$1`, whether chat `$3` exists, then the access
/// columns for the session's account.
const SESSION_CHAT_FACTS_SQL: &str = concat!(
    "SELECT p.u, a.user_id, COALESCE(a.username, ''), a.role, a.banned, c.chat_id IS NOT NULL, ",
    access_columns!("a.user_id"),
    session_account_joins!(),
    " LEFT JOIN chats c ON c.chat_id = $3 \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN offer_sessions os ON os.id = c.session_id \
     WHERE s.sid = $1 AND s.expire > $2"
);

const CHAT_SUMMARY_SQL: &str = "SELECT c.chat_id, c.name, c.icon::text, c.order_id, c.session_id, \
       ARRAY(SELECT COALESCE(a.username, '') FROM chat_participants p \
             JOIN accounts a ON a.user_id = p.user_id WHERE p.chat_id = c.chat_id)::text[] \
     FROM chats c ";

/// The message columns `message_at` reads, joined with the author's account.
pub(crate) const MESSAGE_SQL: &str = "SELECT m.message_id, m.content, a.username, m.chat_id, m.timestamp \
     FROM messages m LEFT JOIN accounts a ON a.user_id = m.author ";

fn user_at(row: &Row, at: usize) -> StoreResult<User> {
    Ok(User {
        user_id: row.try_get(at)?,
        username: row.try_get(at + 1)?,
        role: row.try_get(at + 2)?,
        banned: row.try_get(at + 3)?,
        // Production deletes accounts; a deleted account is a missing row.
        deleted: false,
    })
}

/// The answer of a session lookup ([`SESSION_ACCOUNT_SQL`] and its kin) from its row.
fn session_at(row: Option<&Row>) -> StoreResult<Option<Result<User, Uuid>>> {
    let Some(row) = row else {
        return Ok(None);
    };
    // No passport.user, or not a UUID string: an anonymous session, not logged in.
    let Some(session_user) = row
        .try_get::<_, Option<String>>(0)?
        .and_then(|u| Uuid::try_parse(&u).ok())
    else {
        return Ok(None);
    };
    if row.try_get::<_, Option<Uuid>>(1)?.is_none() {
        return Ok(Some(Err(session_user)));
    }
    Ok(Some(Ok(user_at(row, 1)?)))
}

fn parties_at(row: &Row, at: usize) -> StoreResult<Option<Parties>> {
    let Some(customer) = row.try_get::<_, Option<Uuid>>(at)? else {
        return Ok(None);
    };
    Ok(Some(Parties {
        customer_id: Some(customer),
        assigned_id: row.try_get(at + 1)?,
        contractor_id: row.try_get(at + 2)?,
        viewer_permissions: row.try_get(at + 3)?,
    }))
}

fn facts_at(row: &Row, at: usize) -> StoreResult<ChatAccessFacts> {
    Ok(ChatAccessFacts {
        viewer_is_participant: row.try_get(at)?,
        order: parties_at(row, at + 1)?,
        offer: parties_at(row, at + 5)?,
    })
}

fn summary_at(row: &Row) -> StoreResult<ChatSummary> {
    let mut participants: Vec<String> = row.try_get(5)?;
    participants.sort();
    Ok(ChatSummary {
        chat_id: ChatId(row.try_get(0)?),
        name: row.try_get(1)?,
        icon: row.try_get(2)?,
        order_id: row.try_get(3)?,
        session_id: row.try_get(4)?,
        participants,
    })
}

/// A message from the columns of [`MESSAGE_SQL`], and its stored timestamp.
pub(crate) fn message_at(row: &Row) -> StoreResult<(ChatMessage, PrimitiveDateTime)> {
    let stamp: PrimitiveDateTime = row.try_get(4)?;
    Ok((
        ChatMessage {
            message_id: row.try_get(0)?,
            content: row.try_get(1)?,
            author: row.try_get(2)?,
            chat_id: ChatId(row.try_get(3)?),
            timestamp: wire_timestamp(stamp),
        },
        stamp,
    ))
}

/// A `discord_id` for an account made by a dev login: production requires a unique one;
/// negative numbers are never real Discord ids.
fn dev_discord_id() -> i64 {
    -fastrand::i64(1..i64::MAX)
}

/// Create a chat and its participants in `tx`.
async fn create_chat(
    tx: &deadpool_postgres::Transaction<'_>,
    name: Option<&str>,
    participants: &[Uuid],
) -> StoreResult<ChatId> {
    let chat_id = Uuid::new_v4();
    tx.execute(
        "INSERT INTO chats (chat_id, name) VALUES ($1, $2)",
        &[&chat_id, &name],
    )
    .await?;
    tx.execute(
        "INSERT INTO chat_participants (chat_id, user_id) \
         SELECT $1, u FROM unnest($2::uuid[]) u \
         WHERE NOT EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = $1 AND p.user_id = u)",
        &[&chat_id, &participants],
    )
    .await?;
    Ok(ChatId(chat_id))
}

#[async_trait]
impl Store for PostgresStore {
    async fn user_by_id(&self, user_id: Uuid) -> StoreResult<Option<User>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(USER_BY_ID_SQL).await?;
            let row = client.query_opt(&stmt, &[&user_id]).await?;
            row.map(|r| user_at(&r, 0)).transpose()
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(USER_BY_USERNAME_SQL).await?;
            let row = client.query_opt(&stmt, &[&username]).await?;
            row.map(|r| user_at(&r, 0)).transpose()
        })
        .await
    }

    async fn ensure_user(&self, username: &str) -> StoreResult<User> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Production has no unique index on username: two logins of one new name at once
            // must not make two accounts, so they take turns on a lock named by the name.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('scmarket-ws user ' || $1))",
                &[&username],
            )
            .await?;
            if let Some(row) = tx.query_opt(USER_BY_USERNAME_SQL, &[&username]).await? {
                tx.commit().await?;
                return user_at(&row, 0);
            }
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO accounts AS a (user_id, username, display_name, discord_id) \
                         VALUES ($1, $2, $2, $3) RETURNING {USER_COLUMNS}"
                    ),
                    &[&Uuid::new_v4(), &username, &dev_discord_id()],
                )
                .await?;
            tx.commit().await?;
            user_at(&row, 0)
        })
        .await
    }

    async fn set_banned(&self, user_id: Uuid, banned: bool) -> StoreResult<()> {
        self.timed(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE accounts SET banned = $1 WHERE user_id = $2",
                    &[&banned, &user_id],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn create_login_session(&self, user_id: Uuid, ttl: Duration) -> StoreResult<String> {
        // express-session ids are 32 url-safe characters; a simple-form UUID is as unguessable.
        let sid = Uuid::new_v4().simple().to_string();
        let sess = serde_json::json!({
            "cookie": { "originalMaxAge": ttl.as_millis() as u64, "httpOnly": true, "path": "/" },
            "passport": { "user": user_id.to_string() },
        });
        self.timed(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO login_sessions (sid, sess, expire) VALUES ($1, $2, $3)",
                    &[&sid, &sess, &later(ttl)],
                )
                .await?;
            Ok(())
        })
        .await?;
        Ok(sid)
    }

    async fn session_account(&self, sid: &str) -> StoreResult<Option<Result<User, Uuid>>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(SESSION_ACCOUNT_SQL).await?;
            let row = client.query_opt(&stmt, &[&sid, &now_utc()]).await?;
            session_at(row.as_ref())
        })
        .await
    }

    async fn session_admission(
        &self,
        sid: &str,
    ) -> StoreResult<Option<Result<(User, Vec<ChatId>), Uuid>>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(SESSION_ADMISSION_SQL).await?;
            let row = client.query_opt(&stmt, &[&sid, &now_utc()]).await?;
            Ok(match (session_at(row.as_ref())?, row) {
                (Some(Ok(user)), Some(row)) => {
                    let chats: Vec<Uuid> = row.try_get(5)?;
                    Some(Ok((user, chats.into_iter().map(ChatId).collect())))
                }
                (Some(Err(missing)), _) => Some(Err(missing)),
                _ => None,
            })
        })
        .await
    }

    async fn session_chat_facts(
        &self,
        sid: &str,
        chat_id: ChatId,
    ) -> StoreResult<Option<Result<(User, Option<ChatAccessFacts>), Uuid>>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(SESSION_CHAT_FACTS_SQL).await?;
            let row = client
                .query_opt(&stmt, &[&sid, &now_utc(), &chat_id.0])
                .await?;
            Ok(match (session_at(row.as_ref())?, row) {
                (Some(Ok(user)), Some(row)) => {
                    let facts = if row.try_get::<_, bool>(5)? {
                        Some(facts_at(&row, 6)?)
                    } else {
                        None
                    };
                    Some(Ok((user, facts)))
                }
                (Some(Err(missing)), _) => Some(Err(missing)),
                _ => None,
            })
        })
        .await
    }

    async fn chat_access_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<ChatAccessFacts>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(CHAT_ACCESS_FACTS_SQL).await?;
            let row = client.query_opt(&stmt, &[&viewer, &chat_id.0]).await?;
            row.map(|r| facts_at(&r, 0)).transpose()
        })
        .await
    }

    async fn join_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<(User, Option<ChatAccessFacts>)>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(JOIN_FACTS_SQL).await?;
            let Some(row) = client.query_opt(&stmt, &[&viewer, &chat_id.0]).await? else {
                return Ok(None);
            };
            let user = user_at(&row, 0)?;
            if !row.try_get::<_, bool>(4)? {
                return Ok(Some((user, None)));
            }
            Ok(Some((user, Some(facts_at(&row, 5)?))))
        })
        .await
    }

    async fn participant_chats(&self, user_id: Uuid) -> StoreResult<Vec<ChatId>> {
        self.timed(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(PARTICIPANT_CHATS_SQL).await?;
            let rows = client.query(&stmt, &[&user_id]).await?;
            rows.iter()
                .map(|r| Ok(ChatId(r.try_get(0)?)))
                .collect::<StoreResult<Vec<_>>>()
        })
        .await
    }

    async fn chat_summaries(&self, user_id: Uuid) -> StoreResult<Vec<ChatSummary>> {
        self.timed(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "{CHAT_SUMMARY_SQL} WHERE c.chat_id IN \
                         (SELECT chat_id FROM chat_participants WHERE user_id = $1) ORDER BY c.chat_id::text"
                    ),
                    &[&user_id],
                )
                .await?;
            rows.iter().map(summary_at).collect()
        })
        .await
    }

    async fn chat_detail(&self, chat_id: ChatId) -> StoreResult<Option<ChatDetail>> {
        self.timed(async {
            let client = self.client().await?;
            let Some(row) = client
                .query_opt(
                    &format!("{CHAT_SUMMARY_SQL} WHERE c.chat_id = $1"),
                    &[&chat_id.0],
                )
                .await?
            else {
                return Ok(None);
            };
            let chat = summary_at(&row)?;
            let rows = client
                .query(
                    &format!(
                        "{MESSAGE_SQL} WHERE m.chat_id = $1 ORDER BY m.timestamp, m.message_id"
                    ),
                    &[&chat_id.0],
                )
                .await?;
            let messages = rows
                .iter()
                .map(|r| message_at(r).map(|(m, _)| m))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(ChatDetail { chat, messages }))
        })
        .await
    }

    async fn create_chat(&self, name: Option<&str>, participants: &[Uuid]) -> StoreResult<ChatId> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let chat_id = create_chat(&tx, name, participants).await?;
            tx.commit().await?;
            Ok(chat_id)
        })
        .await
    }

    async fn find_or_create_direct_chat(&self, participants: &[Uuid]) -> StoreResult<ChatId> {
        let mut wanted = participants.to_vec();
        // Uuid orders by bytes, as PostgreSQL orders uuid values.
        wanted.sort();
        wanted.dedup();
        let key = wanted
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Two callers asking for the same set at once get one chat, not one each.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('scmarket-ws direct ' || $1))",
                &[&key],
            )
            .await?;
            let existing = match wanted.first() {
                None => None,
                Some(first) => tx
                    .query_opt(
                        "SELECT c.chat_id FROM chats c \
                         WHERE c.order_id IS NULL AND c.session_id IS NULL \
                           AND c.chat_id IN (SELECT chat_id FROM chat_participants WHERE user_id = $1) \
                           AND ARRAY(SELECT p.user_id FROM chat_participants p \
                                     WHERE p.chat_id = c.chat_id ORDER BY p.user_id) = $2::uuid[] \
                         LIMIT 1",
                        &[first, &wanted],
                    )
                    .await?
                    .map(|r| r.try_get::<_, Uuid>(0))
                    .transpose()?,
            };
            let chat_id = match existing {
                Some(id) => ChatId(id),
                None => create_chat(&tx, None, &wanted).await?,
            };
            tx.commit().await?;
            Ok(chat_id)
        })
        .await
    }

    async fn insert_message(
        &self,
        chat_id: ChatId,
        author: Option<&User>,
        content: &str,
    ) -> StoreResult<ChatMessage> {
        let stamp = now_utc();
        let message = ChatMessage {
            message_id: Uuid::new_v4(),
            content: content.to_string(),
            author: author.map(|a| a.username.clone()),
            chat_id,
            timestamp: wire_timestamp(stamp),
        };
        self.timed(async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO messages (message_id, content, author, chat_id, timestamp) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            client
                .execute(
                    &stmt,
                    &[
                        &message.message_id,
                        &message.content,
                        &author.map(|a| a.user_id),
                        &chat_id.0,
                        &stamp,
                    ],
                )
                .await?;
            Ok(())
        })
        .await?;
        Ok(message)
    }

    fn collector(&self) -> Option<Box<dyn Collector>> {
        Some(Box::new(PoolFigures {
            pool: self.pool.clone(),
            wait: self.pool_wait.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(is_postgres_url("postgres://h/db"));
        assert!(is_postgres_url(" postgresql://h/db"));
        assert!(!is_postgres_url("sqlite::memory:"));
        assert!(connection_config("postgres://u@h/db", Duration::from_secs(1)).is_ok());
        let err = connection_config("postgres://u@h:notaport/db", Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a PostgreSQL URL"), "{err}");
        let err = connection_config("postgres://u@h", Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("names no database"), "{err}");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn timestamps_are_utc_wall_clock() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.678901);
        assert_eq!(wire_timestamp(t).to_string(), "2026-01-02T03:04:05.678Z");
    }
}
