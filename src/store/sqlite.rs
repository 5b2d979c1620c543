//! The embedded default store: SQLite through rusqlite, migrations embedded in the binary.
//!
//! Every lookup on the session-admission path (handshake, auto-join, room join) is one short
//! indexed query. Such a query costs a few microseconds, far less than handing it to another
//! thread and waking the caller again, so reads run synchronously on the async worker that asks,
//! under a mutex around the connection. Nothing is cached outside SQLite: every answer comes from
//! the database as it is at that moment, including rows written by another process (the
//! `session` command) into the same file.
//!
//! Writes to a file go to the blocking pool instead: a commit may wait for another process's
//! write lock (up to the busy timeout) or run a checkpoint's fsync, and neither may stall a
//! worker that other sockets are waiting on.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

use super::{ChatAccessFacts, Parties, Store, StoreError, StoreResult, User};
use crate::protocol::{ChatDetail, ChatId, ChatMessage, ChatSummary, WireTimestamp};

/// The schema, one script per version, applied in order. `PRAGMA user_version` records how many
/// have run, so a database is migrated exactly once per script. Append; never edit a shipped one.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_init.sql")];

/// Enough for every distinct statement the server runs, so none is ever parsed twice.
const STATEMENT_CACHE: usize = 64;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Shared = Arc<Mutex<Connection>>;

// The statements on the session-admission path (handshake, auto-join, room join) and the
// message post, named so a test can check that SQLite never re-prepares them.
const USER_BY_ID_SQL: &str =
    "SELECT user_id, username, role, banned, deleted FROM accounts WHERE user_id = ?1";
const SESSION_ACCOUNT_SQL: &str = "SELECT json_extract(s.sess, '$.passport.user'), \
       a.user_id, a.username, a.role, a.banned, a.deleted \
     FROM login_sessions s \
     LEFT JOIN accounts a ON a.user_id = json_extract(s.sess, '$.passport.user') \
     WHERE s.sid = ?1 AND s.expire > ?2";
const PARTICIPANT_CHATS_SQL: &str = "SELECT chat_id FROM chat_participants WHERE user_id = ?1";
/// The viewer's account and, when the chat exists, its access facts: the columns of
/// `USER_BY_ID_SQL`, whether the chat exists, then those of `CHAT_ACCESS_FACTS_SQL`.
const JOIN_FACTS_SQL: &str = "SELECT a.user_id, a.username, a.role, a.banned, a.deleted, \
       c.chat_id IS NOT NULL, \
       EXISTS(SELECT 1 FROM chat_participants p WHERE p.chat_id = c.chat_id AND p.user_id = a.user_id), \
       o.customer_id, o.assigned_id, o.contractor_id, om.permissions, \
       s.customer_id, s.assigned_id, s.contractor_id, sm.permissions \
     FROM accounts a \
     LEFT JOIN chats c ON c.chat_id = ?2 \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN contractor_members om ON om.contractor_id = o.contractor_id AND om.user_id = a.user_id \
     LEFT JOIN offer_sessions s ON s.id = c.session_id \
     LEFT JOIN contractor_members sm ON sm.contractor_id = s.contractor_id AND sm.user_id = a.user_id \
     WHERE a.user_id = ?1";
/// The session's account as `SESSION_ACCOUNT_SQL` reads it (its columns first), whether the
/// chat `?3` exists, then the columns of `CHAT_ACCESS_FACTS_SQL` for that account: a message
/// post's authentication and access check in one statement.
const SESSION_CHAT_FACTS_SQL: &str = "SELECT json_extract(s.sess, '$.passport.user'), \
       a.user_id, a.username, a.role, a.banned, a.deleted, \
       c.chat_id IS NOT NULL, \
       EXISTS(SELECT 1 FROM chat_participants p WHERE p.chat_id = c.chat_id AND p.user_id = a.user_id), \
       o.customer_id, o.assigned_id, o.contractor_id, om.permissions, \
       os.customer_id, os.assigned_id, os.contractor_id, sm.permissions \
     FROM login_sessions s \
     LEFT JOIN accounts a ON a.user_id = json_extract(s.sess, '$.passport.user') \
     LEFT JOIN chats c ON c.chat_id = ?3 \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN contractor_members om ON om.contractor_id = o.contractor_id AND om.user_id = a.user_id \
     LEFT JOIN offer_sessions os ON os.id = c.session_id \
     LEFT JOIN contractor_members sm ON sm.contractor_id = os.contractor_id AND sm.user_id = a.user_id \
     WHERE s.sid = ?1 AND s.expire > ?2";
const CHAT_ACCESS_FACTS_SQL: &str = "SELECT \
       EXISTS(SELECT 1 FROM chat_participants p WHERE p.chat_id = c.chat_id AND p.user_id = ?1), \
       o.customer_id, o.assigned_id, o.contractor_id, om.permissions, \
       s.customer_id, s.assigned_id, s.contractor_id, sm.permissions \
     FROM chats c \
     LEFT JOIN orders o ON o.order_id = c.order_id \
     LEFT JOIN contractor_members om ON om.contractor_id = o.contractor_id AND om.user_id = ?1 \
     LEFT JOIN offer_sessions s ON s.id = c.session_id \
     LEFT JOIN contractor_members sm ON sm.contractor_id = s.contractor_id AND sm.user_id = ?1 \
     WHERE c.chat_id = ?2";

pub struct SqliteStore {
    /// Connections for reads. For `:memory:` this is the one connection, also used to write.
    readers: Vec<Shared>,
    writer: Shared,
    /// Writes to a file may block (see the module docs); an in-memory database never waits on
    /// anyone, so its writes run inline too.
    blocking_writes: bool,
    next_reader: AtomicUsize,
}

/// Where a `--database` value points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Memory,
    File(String),
}

impl Location {
    /// Accepts a bare path, `sqlite://PATH`, `sqlite:PATH` and `sqlite::memory:`.
    pub fn parse(database: &str) -> Result<Self, StoreError> {
        let trimmed = database.trim();
        if trimmed.is_empty() {
            return Err(StoreError::Invalid(
                "--database is empty: give a file path or sqlite::memory:".into(),
            ));
        }
        if trimmed == "sqlite::memory:" || trimmed == ":memory:" {
            return Ok(Location::Memory);
        }
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Err(StoreError::Invalid(format!(
                "{trimmed}: a PostgreSQL URL is opened by the Postgres store, not as an SQLite file"
            )));
        }
        let path = trimmed
            .strip_prefix("sqlite://")
            .or_else(|| trimmed.strip_prefix("sqlite:"))
            .unwrap_or(trimmed);
        Ok(Location::File(path.to_string()))
    }
}

/// A poisoned lock only means a panic elsewhere while the connection was held; the unwind
/// dropped that caller's statement and transaction (reset, rolled back), so the connection is
/// still usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Settings every connection to a file needs (they are per connection, except WAL).
fn configure_file(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers (here and in other processes) run while one connection writes, and makes
    // each commit an append; NORMAL then syncs only at checkpoints: the file stays consistent
    // through a crash, and a power cut can lose only the last commits.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; readers may wait on writers");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn configure_common(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "foreign_keys", true)?;
    // The bundled SQLite is built with STAT4, which re-prepares a statement whenever a bound
    // value might change its plan: `expire > ?` did so on every handshake (parse and plan
    // again, 7% of serve's CPU). Our plans never depend on the values (no ANALYZE, no LIKE),
    // so keep each statement's first plan.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Bring the schema to the latest version. Each script and its version bump commit together.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    adopt_sqlx_history(conn)?;
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(StoreError::Invalid(format!(
            "the database is at schema version {current}, newer than this scmarket-ws knows \
             ({latest}): use a newer scmarket-ws or another --database"
        )));
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index + 1;
        let failed = |source| StoreError::Migration { version, source };
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(script).map_err(failed)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

/// Databases created before the switch from sqlx record their migrations in `_sqlx_migrations`
/// and leave `user_version` at 0; carry that history over so their schema is not re-created.
fn adopt_sqlx_history(conn: &Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current != 0 {
        return Ok(());
    }
    let has_history: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !has_history {
        return Ok(());
    }
    let applied: Option<i64> = conn.query_row(
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )?;
    if let Some(applied) = applied.filter(|v| *v > 0) {
        conn.pragma_update(None, "user_version", applied)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating when missing) and migrate. Answers whether the database was new, so the
    /// caller can seed the demo data exactly once.
    pub async fn open(database: &str) -> StoreResult<(Self, bool)> {
        let location = Location::parse(database)?;
        // Not a URI: a file called `file:x` is a file, as before.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let (store, fresh_file) = match &location {
            Location::Memory => {
                // Every connection to :memory: is its own database: keep exactly one, forever.
                let mut conn = Connection::open_in_memory()?;
                configure_common(&conn)?;
                migrate(&mut conn)?;
                let conn = Arc::new(Mutex::new(conn));
                let store = SqliteStore {
                    readers: vec![conn.clone()],
                    writer: conn,
                    blocking_writes: false,
                    next_reader: AtomicUsize::new(0),
                };
                (store, true)
            }
            Location::File(path) => {
                let fresh = !Path::new(path).exists();
                let open = |flags| -> StoreResult<Connection> {
                    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
                        StoreError::Invalid(format!(
                            "cannot open SQLite database {path}: {e} (check that the folder exists and is writable)"
                        ))
                    })?;
                    configure_file(&conn)?;
                    configure_common(&conn)?;
                    Ok(conn)
                };
                let mut writer = open(flags)?;
                migrate(&mut writer)?;
                // Readers are opened after the migration so they see the final schema; one per
                // core lets every worker read at once (WAL readers do not block each other).
                let count = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
                let readers = (0..count)
                    .map(|_| {
                        let conn = open(flags)?;
                        // A read connection that wrote would bypass the writer's ordering.
                        conn.pragma_update(None, "query_only", true)?;
                        Ok(Arc::new(Mutex::new(conn)))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let store = SqliteStore {
                    readers,
                    writer: Arc::new(Mutex::new(writer)),
                    blocking_writes: true,
                    next_reader: AtomicUsize::new(0),
                };
                (store, fresh)
            }
        };
        let empty: bool = store.read(|c| {
            Ok(
                c.query_row("SELECT NOT EXISTS(SELECT 1 FROM accounts)", [], |r| {
                    r.get(0)
                })?,
            )
        })?;
        Ok((store, fresh_file || empty))
    }

    /// Run a read on a free connection, on the calling thread (see the module docs).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return f(&conn),
                Err(TryLockError::Poisoned(poisoned)) => return f(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        // All busy: each is held for one short query, so waiting is cheaper than a hand-off.
        f(&lock(&self.readers[start % n]))
    }

    /// Run a write on the single writer connection: inline for `:memory:`, on the blocking
    /// pool for a file (see the module docs).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        if !self.blocking_writes {
            return f(&mut lock(&self.writer));
        }
        let writer = self.writer.clone();
        match tokio::task::spawn_blocking(move || f(&mut lock(&writer))).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Invalid(format!(
                "database write abandoned: {e}"
            ))),
        }
    }

    /// The writer connection, held for a startup task such as loading fixtures: nothing is
    /// being served yet, so blocking this thread holds nobody up.
    pub(crate) fn startup_writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

fn parse_uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(text)
        .map_err(|_| StoreError::Invalid(format!("stored id {text:?} is not a UUID")))
}

fn parse_opt_uuid(text: Option<String>) -> StoreResult<Option<Uuid>> {
    text.as_deref().map(parse_uuid).transpose()
}

/// A user from five columns starting at `at`: user_id, username, role, banned, deleted.
fn user_at(row: &Row<'_>, at: usize) -> StoreResult<User> {
    Ok(User {
        user_id: parse_uuid(&row.get::<_, String>(at)?)?,
        username: row.get(at + 1)?,
        role: row.get(at + 2)?,
        banned: row.get::<_, i64>(at + 3)? != 0,
        deleted: row.get::<_, i64>(at + 4)? != 0,
    })
}

/// Parties from four columns starting at `at`: customer, assigned, contractor, permissions.
fn parties_at(row: &Row<'_>, at: usize) -> StoreResult<Option<Parties>> {
    let Some(customer) = row.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    let permissions: Option<String> = row.get(at + 3)?;
    Ok(Some(Parties {
        customer_id: Some(parse_uuid(&customer)?),
        assigned_id: parse_opt_uuid(row.get(at + 1)?)?,
        contractor_id: parse_opt_uuid(row.get(at + 2)?)?,
        viewer_permissions: permissions.map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        }),
    }))
}

/// Columns: chat_id, name, icon, order_id, session_id, participants.
macro_rules! chat_summary_sql {
    ($tail:literal) => {
        concat!(
            "SELECT c.chat_id, c.name, c.icon, c.order_id, c.session_id, \
               (SELECT group_concat(a.username, char(31)) FROM chat_participants p \
                  JOIN accounts a ON a.user_id = p.user_id WHERE p.chat_id = c.chat_id) \
             FROM chats c ",
            $tail
        )
    };
}

fn summary_from_row(row: &Row<'_>) -> StoreResult<ChatSummary> {
    let participants: Option<String> = row.get(5)?;
    let mut participants: Vec<String> = participants
        .map(|p| p.split('\u{1f}').map(String::from).collect())
        .unwrap_or_default();
    participants.sort();
    Ok(ChatSummary {
        chat_id: ChatId(parse_uuid(&row.get::<_, String>(0)?)?),
        name: row.get(1)?,
        icon: row.get(2)?,
        order_id: parse_opt_uuid(row.get(3)?)?,
        session_id: parse_opt_uuid(row.get(4)?)?,
        participants,
    })
}

fn now_millis() -> i64 {
    WireTimestamp::now().unix_millis()
}

fn user_by_username(conn: &Connection, username: &str) -> StoreResult<Option<User>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, username, role, banned, deleted FROM accounts WHERE username = ?1",
    )?;
    let mut rows = stmt.query([username])?;
    rows.next()?.map(|r| user_at(r, 0)).transpose()
}

fn create_chat(
    tx: &Transaction<'_>,
    name: Option<&str>,
    participants: &[Uuid],
) -> StoreResult<ChatId> {
    let chat_id = ChatId(Uuid::new_v4());
    let id = chat_id.to_string();
    tx.prepare_cached("INSERT INTO chats (chat_id, name) VALUES (?1, ?2)")?
        .execute(params![id, name])?;
    let mut add = tx.prepare_cached(
        "INSERT OR IGNORE INTO chat_participants (chat_id, user_id) VALUES (?1, ?2)",
    )?;
    for user in participants {
        add.execute(params![id, user.to_string()])?;
    }
    Ok(chat_id)
}

/// The account an unexpired session logs in (`Store::session_account`).
fn session_account_in(conn: &Connection, sid: &str) -> StoreResult<Option<Result<User, Uuid>>> {
    let mut stmt = conn.prepare_cached(SESSION_ACCOUNT_SQL)?;
    let mut rows = stmt.query(params![sid, now_millis()])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    session_account_at(row)
}

/// The answer of a session lookup from the first six columns of its row (`SESSION_ACCOUNT_SQL`
/// and `SESSION_CHAT_FACTS_SQL`).
fn session_account_at(row: &Row<'_>) -> StoreResult<Option<Result<User, Uuid>>> {
    // A session without passport.user is an anonymous session: not logged in. So is
    // one whose passport.user is not a UUID string (a number, an object).
    let session_user = match row.get_ref(0)? {
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|u| Uuid::try_parse(u).ok()),
        _ => None,
    };
    let Some(session_user) = session_user else {
        return Ok(None);
    };
    if row.get_ref(1)? == ValueRef::Null {
        return Ok(Some(Err(session_user)));
    }
    Ok(Some(Ok(user_at(row, 1)?)))
}

/// The chats a user takes part in (`Store::participant_chats`).
fn participant_chats_in(conn: &Connection, user_id: Uuid) -> StoreResult<Vec<ChatId>> {
    let mut stmt = conn.prepare_cached(PARTICIPANT_CHATS_SQL)?;
    let mut rows = stmt.query([user_id.to_string()])?;
    let mut chats = Vec::new();
    while let Some(row) = rows.next()? {
        chats.push(ChatId(parse_uuid(&row.get::<_, String>(0)?)?));
    }
    Ok(chats)
}

#[async_trait]
impl Store for SqliteStore {
    async fn user_by_id(&self, user_id: Uuid) -> StoreResult<Option<User>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(USER_BY_ID_SQL)?;
            let mut rows = stmt.query([user_id.to_string()])?;
            rows.next()?.map(|r| user_at(r, 0)).transpose()
        })
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.read(|conn| user_by_username(conn, username))
    }

    async fn ensure_user(&self, username: &str) -> StoreResult<User> {
        let username = username.to_string();
        // Insert and read back on the writer, so the answer is the row this call saw.
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO accounts (user_id, username) VALUES (?1, ?2) ON CONFLICT(username) DO NOTHING",
            )?
            .execute(params![Uuid::new_v4().to_string(), username])?;
            user_by_username(conn, &username)?
                .ok_or_else(|| StoreError::Invalid(format!("user {username} vanished after insert")))
        })
        .await
    }

    async fn set_banned(&self, user_id: Uuid, banned: bool) -> StoreResult<()> {
        self.write(move |conn| {
            conn.prepare_cached("UPDATE accounts SET banned = ?1 WHERE user_id = ?2")?
                .execute(params![banned, user_id.to_string()])?;
            Ok(())
        })
        .await
    }

    async fn create_login_session(&self, user_id: Uuid, ttl: Duration) -> StoreResult<String> {
        // express-session ids are 32 url-safe characters; a simple-form UUID is as unguessable.
        let sid = Uuid::new_v4().simple().to_string();
        let expire = now_millis().saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let sess = serde_json::json!({
            "cookie": { "originalMaxAge": ttl.as_millis() as u64, "httpOnly": true, "path": "/" },
            "passport": { "user": user_id.to_string() },
        });
        let row_sid = sid.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO login_sessions (sid, sess, expire) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![row_sid, sess.to_string(), expire])?;
            Ok(())
        })
        .await?;
        Ok(sid)
    }

    async fn session_account(&self, sid: &str) -> StoreResult<Option<Result<User, Uuid>>> {
        self.read(|conn| session_account_in(conn, sid))
    }

    async fn session_admission(
        &self,
        sid: &str,
    ) -> StoreResult<Option<Result<(User, Vec<ChatId>), Uuid>>> {
        // Both lookups on one reader, as one call.
        self.read(|conn| {
            Ok(match session_account_in(conn, sid)? {
                Some(Ok(user)) => {
                    let chats = participant_chats_in(conn, user.user_id)?;
                    Some(Ok((user, chats)))
                }
                Some(Err(missing)) => Some(Err(missing)),
                None => None,
            })
        })
    }

    async fn session_chat_facts(
        &self,
        sid: &str,
        chat_id: ChatId,
    ) -> StoreResult<Option<Result<(User, Option<ChatAccessFacts>), Uuid>>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(SESSION_CHAT_FACTS_SQL)?;
            let mut rows = stmt.query(params![sid, now_millis(), chat_id.to_string()])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let user = match session_account_at(row)? {
                Some(Ok(user)) => user,
                Some(Err(missing)) => return Ok(Some(Err(missing))),
                None => return Ok(None),
            };
            if row.get::<_, i64>(6)? == 0 {
                return Ok(Some(Ok((user, None))));
            }
            let facts = ChatAccessFacts {
                viewer_is_participant: row.get::<_, i64>(7)? != 0,
                order: parties_at(row, 8)?,
                offer: parties_at(row, 12)?,
            };
            Ok(Some(Ok((user, Some(facts)))))
        })
    }

    async fn chat_access_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<ChatAccessFacts>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(CHAT_ACCESS_FACTS_SQL)?;
            let mut rows = stmt.query(params![viewer.to_string(), chat_id.to_string()])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            Ok(Some(ChatAccessFacts {
                viewer_is_participant: row.get::<_, i64>(0)? != 0,
                order: parties_at(row, 1)?,
                offer: parties_at(row, 5)?,
            }))
        })
    }

    async fn join_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<(User, Option<ChatAccessFacts>)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(JOIN_FACTS_SQL)?;
            let mut rows = stmt.query(params![viewer.to_string(), chat_id.to_string()])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let user = user_at(row, 0)?;
            if row.get::<_, i64>(5)? == 0 {
                return Ok(Some((user, None)));
            }
            let facts = ChatAccessFacts {
                viewer_is_participant: row.get::<_, i64>(6)? != 0,
                order: parties_at(row, 7)?,
                offer: parties_at(row, 11)?,
            };
            Ok(Some((user, Some(facts))))
        })
    }

    async fn participant_chats(&self, user_id: Uuid) -> StoreResult<Vec<ChatId>> {
        self.read(|conn| participant_chats_in(conn, user_id))
    }

    async fn chat_summaries(&self, user_id: Uuid) -> StoreResult<Vec<ChatSummary>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(chat_summary_sql!(
                "WHERE c.chat_id IN (SELECT chat_id FROM chat_participants WHERE user_id = ?1) \
                 ORDER BY c.chat_id"
            ))?;
            let mut rows = stmt.query([user_id.to_string()])?;
            let mut chats = Vec::new();
            while let Some(row) = rows.next()? {
                chats.push(summary_from_row(row)?);
            }
            Ok(chats)
        })
    }

    async fn chat_detail(&self, chat_id: ChatId) -> StoreResult<Option<ChatDetail>> {
        self.read(|conn| {
            let id = chat_id.to_string();
            let mut stmt = conn.prepare_cached(chat_summary_sql!("WHERE c.chat_id = ?1"))?;
            let Some(chat) = stmt
                .query_row([&id], |row| Ok(summary_from_row(row)))
                .optional()?
                .transpose()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT m.message_id, m.content, a.username, m.timestamp FROM messages m \
                 LEFT JOIN accounts a ON a.user_id = m.author \
                 WHERE m.chat_id = ?1 ORDER BY m.timestamp, m.rowid",
            )?;
            let mut rows = stmt.query([&id])?;
            let mut messages = Vec::new();
            while let Some(r) = rows.next()? {
                messages.push(ChatMessage {
                    message_id: parse_uuid(&r.get::<_, String>(0)?)?,
                    content: r.get(1)?,
                    author: r.get(2)?,
                    chat_id,
                    timestamp: WireTimestamp::from_unix_millis(r.get(3)?),
                });
            }
            Ok(Some(ChatDetail { chat, messages }))
        })
    }

    async fn create_chat(&self, name: Option<&str>, participants: &[Uuid]) -> StoreResult<ChatId> {
        let name = name.map(String::from);
        let participants = participants.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let chat_id = create_chat(&tx, name.as_deref(), &participants)?;
            tx.commit()?;
            Ok(chat_id)
        })
        .await
    }

    async fn find_or_create_direct_chat(&self, participants: &[Uuid]) -> StoreResult<ChatId> {
        let mut wanted: Vec<Uuid> = participants.to_vec();
        wanted.sort_by_key(|u| u.to_string());
        wanted.dedup();
        let wanted_joined = wanted
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Look up and create in one write transaction, so two callers asking for the same pair
        // at once get the same chat rather than one each.
        self.write(move |conn| {
            let tx = conn.transaction()?;
            // A direct chat has no order and no offer, and exactly this set of participants.
            let existing: Option<String> = tx
                .prepare_cached(
                    "SELECT c.chat_id FROM chats c \
                     WHERE c.order_id IS NULL AND c.session_id IS NULL \
                       AND (SELECT group_concat(user_id, ',') FROM \
                             (SELECT user_id FROM chat_participants p WHERE p.chat_id = c.chat_id ORDER BY user_id)) = ?1 \
                     LIMIT 1",
                )?
                .query_row([&wanted_joined], |r| r.get(0))
                .optional()?;
            let chat_id = match existing {
                Some(id) => ChatId(parse_uuid(&id)?),
                None => create_chat(&tx, None, &wanted)?,
            };
            tx.commit()?;
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
        let message = ChatMessage {
            message_id: Uuid::new_v4(),
            content: content.to_string(),
            author: author.map(|a| a.username.clone()),
            chat_id,
            timestamp: WireTimestamp::now(),
        };
        let row = (
            message.message_id.to_string(),
            message.content.clone(),
            author.map(|a| a.user_id.to_string()),
            chat_id.to_string(),
            message.timestamp.unix_millis(),
        );
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO messages (message_id, content, author, chat_id, timestamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![row.0, row.1, row.2, row.3, row.4])?;
            Ok(())
        })
        .await?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_locations() {
        assert_eq!(
            Location::parse("sqlite::memory:").unwrap(),
            Location::Memory
        );
        assert_eq!(
            Location::parse("sqlite://x/y.db").unwrap(),
            Location::File("x/y.db".into())
        );
        assert_eq!(
            Location::parse("a.db").unwrap(),
            Location::File("a.db".into())
        );
        assert!(Location::parse("").is_err());
        assert!(Location::parse("postgres://localhost/db").is_err());
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_file_is_migrated_once_and_reopened_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (store, fresh) = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        assert!(fresh);
        store.ensure_user("kept").await.unwrap();
        drop(store);
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
        let (store, fresh) = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        assert!(!fresh);
        assert!(store.user_by_username("kept").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_database_migrated_by_sqlx_keeps_its_schema_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // What the sqlx build left behind: the schema, its history table, user_version 0.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                   installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
                   checksum BLOB NOT NULL, execution_time BIGINT NOT NULL); \
                 INSERT INTO _sqlx_migrations VALUES (1, 'init', CURRENT_TIMESTAMP, 1, x'00', 1); \
                 INSERT INTO accounts (user_id, username) VALUES ('00000000-0000-4000-8000-000000000001', 'old');",
            )
            .unwrap();
        }
        let (store, fresh) = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        assert!(!fresh, "its rows are kept, so no demo data is seeded");
        assert!(store.user_by_username("old").await.unwrap().is_some());
        assert_eq!(user_version(&path), 1);
    }

    /// A statement SQLite re-prepares is parsed and planned again, which costs more than the
    /// lookup itself; the hot statements must be prepared once and then only re-bound.
    #[tokio::test]
    async fn hot_statements_are_never_re_prepared() {
        use rusqlite::StatementStatus;
        let (store, _) = SqliteStore::open("sqlite::memory:").await.unwrap();
        let mut users = Vec::new();
        for name in ["a", "b", "c"] {
            let user = store.ensure_user(name).await.unwrap();
            let sid = store
                .create_login_session(user.user_id, Duration::from_secs(60))
                .await
                .unwrap();
            let chat = store.create_chat(None, &[user.user_id]).await.unwrap();
            users.push((user, sid, chat));
        }
        for _ in 0..3 {
            for (user, sid, chat) in &users {
                assert!(store.session_account(sid).await.unwrap().is_some());
                assert!(store.user_by_id(user.user_id).await.unwrap().is_some());
                assert_eq!(
                    store.participant_chats(user.user_id).await.unwrap().len(),
                    1
                );
                let facts = store.chat_access_facts(*chat, user.user_id).await.unwrap();
                assert!(facts.unwrap().viewer_is_participant);
                let (_, facts) = store
                    .join_facts(*chat, user.user_id)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(facts.unwrap().viewer_is_participant);
                let found = store.session_chat_facts(sid, *chat).await.unwrap();
                let (_, facts) = found.unwrap().unwrap();
                assert!(facts.unwrap().viewer_is_participant);
            }
        }
        let conn = store.startup_writer();
        for sql in [
            USER_BY_ID_SQL,
            SESSION_ACCOUNT_SQL,
            PARTICIPANT_CHATS_SQL,
            CHAT_ACCESS_FACTS_SQL,
            JOIN_FACTS_SQL,
            SESSION_CHAT_FACTS_SQL,
        ] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    /// An in-memory store with the demo data, its user ids and its chat ids.
    async fn demo_store() -> (SqliteStore, Vec<Uuid>, Vec<Uuid>) {
        use crate::store::fixtures::{DEMO_YAML, Fixtures};
        let (store, _) = SqliteStore::open("sqlite::memory:").await.unwrap();
        store
            .load_fixtures(&Fixtures::parse(DEMO_YAML, "demo").unwrap())
            .await
            .unwrap();
        let (users, chats) = {
            let conn = store.startup_writer();
            let ids = |sql: &str| -> Vec<Uuid> {
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(|id| Uuid::try_parse(&id.unwrap()).unwrap())
                    .collect()
            };
            (
                ids("SELECT user_id FROM accounts"),
                ids("SELECT chat_id FROM chats"),
            )
        };
        (store, users, chats)
    }

    /// The one-query join lookup answers exactly what its two parts answer, for every demo
    /// user and chat (orders, offers, contractor members, direct and group chats), for a chat
    /// that does not exist and for a viewer that does not exist.
    #[tokio::test]
    async fn join_facts_agree_with_their_parts() {
        let (store, users, chats) = demo_store().await;
        assert!(users.len() >= 7 && chats.len() >= 4);
        let mut chats: Vec<ChatId> = chats.into_iter().map(ChatId).collect();
        chats.push(ChatId(Uuid::new_v4()));
        let mut viewers = users;
        viewers.push(Uuid::new_v4());
        for viewer in &viewers {
            for chat in &chats {
                let one = store.join_facts(*chat, *viewer).await.unwrap();
                let user = store.user_by_id(*viewer).await.unwrap();
                let parts = match user {
                    None => None,
                    Some(user) => {
                        Some((user, store.chat_access_facts(*chat, *viewer).await.unwrap()))
                    }
                };
                assert_eq!(one, parts, "viewer {viewer}, chat {chat}");
            }
        }
    }

    /// The one-statement post lookup answers exactly what the session lookup and then the
    /// access lookup answer, for a session of every demo user on every chat (and a chat that
    /// does not exist), and for a session that is unknown, expired, or names no account.
    #[tokio::test]
    async fn session_chat_facts_agree_with_their_parts() {
        let (store, users, chats) = demo_store().await;
        let hour = Duration::from_secs(3600);
        let mut sids = vec!["nosuchsession".to_string()];
        for user in &users {
            sids.push(store.create_login_session(*user, hour).await.unwrap());
        }
        sids.push(
            store
                .create_login_session(users[0], Duration::ZERO)
                .await
                .unwrap(),
        );
        sids.push(
            store
                .create_login_session(Uuid::new_v4(), hour)
                .await
                .unwrap(),
        );
        let mut chats: Vec<ChatId> = chats.into_iter().map(ChatId).collect();
        chats.push(ChatId(Uuid::new_v4()));
        let mut seen_facts = 0;
        for sid in &sids {
            for chat in &chats {
                let one = store.session_chat_facts(sid, *chat).await.unwrap();
                let parts = match store.session_account(sid).await.unwrap() {
                    Some(Ok(user)) => {
                        let facts = store.chat_access_facts(*chat, user.user_id).await.unwrap();
                        seen_facts += usize::from(facts.is_some());
                        Some(Ok((user, facts)))
                    }
                    Some(Err(missing)) => Some(Err(missing)),
                    None => None,
                };
                assert_eq!(one, parts, "session {sid}, chat {chat}");
            }
        }
        assert!(seen_facts >= users.len() * 4, "{seen_facts}");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = SqliteStore::open(path.to_str().unwrap())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("99") && err.contains("newer"), "{err}");
    }
}
