//! The embedded default store: SQLite through sqlx, migrations embedded in the binary.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use super::{ChatAccessFacts, Parties, Store, StoreError, StoreResult, User};
use crate::protocol::{ChatDetail, ChatId, ChatMessage, ChatSummary, WireTimestamp};

pub struct SqliteStore {
    pool: SqlitePool,
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
                "{trimmed}: only SQLite stores are built in so far; give a file path or sqlite::memory:"
            )));
        }
        let path = trimmed
            .strip_prefix("sqlite://")
            .or_else(|| trimmed.strip_prefix("sqlite:"))
            .unwrap_or(trimmed);
        Ok(Location::File(path.to_string()))
    }
}

impl SqliteStore {
    /// Open (creating when missing) and migrate. Answers whether the database was new, so the
    /// caller can seed the demo data exactly once.
    pub async fn open(database: &str) -> StoreResult<(Self, bool)> {
        let location = Location::parse(database)?;
        let (options, pool_options, fresh_file) = match &location {
            Location::Memory => (
                SqliteConnectOptions::from_str("sqlite::memory:")?,
                // Every connection to :memory: is its own database: keep exactly one, forever.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None),
                true,
            ),
            Location::File(path) => {
                let fresh = !std::path::Path::new(path).exists();
                (
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5)),
                    SqlitePoolOptions::new().max_connections(4),
                    fresh,
                )
            }
        };
        let options = options.foreign_keys(true);
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|e| match &location {
                Location::File(path) => StoreError::Invalid(format!(
                    "cannot open SQLite database {path}: {e} (check that the folder exists and is writable)"
                )),
                Location::Memory => StoreError::Database(e),
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let empty: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&pool)
            .await?;
        Ok((SqliteStore { pool }, fresh_file || empty == 0))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn parse_uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(text)
        .map_err(|_| StoreError::Invalid(format!("stored id {text:?} is not a UUID")))
}

fn parse_opt_uuid(text: Option<String>) -> StoreResult<Option<Uuid>> {
    text.as_deref().map(parse_uuid).transpose()
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<User> {
    Ok(User {
        user_id: parse_uuid(&row.try_get::<String, _>("user_id")?)?,
        username: row.try_get("username")?,
        role: row.try_get("role")?,
        banned: row.try_get::<i64, _>("banned")? != 0,
        deleted: row.try_get::<i64, _>("deleted")? != 0,
    })
}

fn parties_from_row(row: &sqlx::sqlite::SqliteRow, prefix: &str) -> StoreResult<Option<Parties>> {
    let customer: Option<String> = row.try_get(format!("{prefix}_customer").as_str())?;
    let Some(customer) = customer else {
        return Ok(None);
    };
    let permissions: Option<String> = row.try_get(format!("{prefix}_permissions").as_str())?;
    Ok(Some(Parties {
        customer_id: Some(parse_uuid(&customer)?),
        assigned_id: parse_opt_uuid(row.try_get(format!("{prefix}_assigned").as_str())?)?,
        contractor_id: parse_opt_uuid(row.try_get(format!("{prefix}_contractor").as_str())?)?,
        viewer_permissions: permissions.map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        }),
    }))
}

const USER_COLUMNS: &str = "user_id, username, role, banned, deleted";

const CHAT_SUMMARY_SQL: &str = "SELECT c.chat_id, c.name, c.icon, c.order_id, c.session_id, \
     (SELECT group_concat(a.username, char(31)) FROM chat_participants p \
        JOIN accounts a ON a.user_id = p.user_id WHERE p.chat_id = c.chat_id) AS participants \
     FROM chats c";

fn summary_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<ChatSummary> {
    let chat_id: String = row.try_get("chat_id")?;
    let participants: Option<String> = row.try_get("participants")?;
    let mut participants: Vec<String> = participants
        .map(|p| p.split('\u{1f}').map(String::from).collect())
        .unwrap_or_default();
    participants.sort();
    Ok(ChatSummary {
        chat_id: ChatId(parse_uuid(&chat_id)?),
        name: row.try_get("name")?,
        icon: row.try_get("icon")?,
        order_id: parse_opt_uuid(row.try_get("order_id")?)?,
        session_id: parse_opt_uuid(row.try_get("session_id")?)?,
        participants,
    })
}

fn now_millis() -> i64 {
    WireTimestamp::now().unix_millis()
}

#[async_trait]
impl Store for SqliteStore {
    async fn user_by_id(&self, user_id: Uuid) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM accounts WHERE user_id = ?"
        )))
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM accounts WHERE username = ?"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn ensure_user(&self, username: &str) -> StoreResult<User> {
        sqlx::query("INSERT INTO accounts (user_id, username) VALUES (?, ?) ON CONFLICT(username) DO NOTHING")
            .bind(Uuid::new_v4().to_string())
            .bind(username)
            .execute(&self.pool)
            .await?;
        self.user_by_username(username)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("user {username} vanished after insert")))
    }

    async fn set_banned(&self, user_id: Uuid, banned: bool) -> StoreResult<()> {
        sqlx::query("UPDATE accounts SET banned = ? WHERE user_id = ?")
            .bind(i64::from(banned))
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_login_session(&self, user_id: Uuid, ttl: Duration) -> StoreResult<String> {
        // express-session ids are 32 url-safe characters; a simple-form UUID is as unguessable.
        let sid = Uuid::new_v4().simple().to_string();
        let expire = now_millis().saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let sess = serde_json::json!({
            "cookie": { "originalMaxAge": ttl.as_millis() as u64, "httpOnly": true, "path": "/" },
            "passport": { "user": user_id.to_string() },
        });
        sqlx::query("INSERT INTO login_sessions (sid, sess, expire) VALUES (?, ?, ?)")
            .bind(&sid)
            .bind(sess.to_string())
            .bind(expire)
            .execute(&self.pool)
            .await?;
        Ok(sid)
    }

    async fn session_account(&self, sid: &str) -> StoreResult<Option<Result<User, Uuid>>> {
        let row = sqlx::query(
            "SELECT json_extract(s.sess, '$.passport.user') AS session_user, \
                    a.user_id, a.username, a.role, a.banned, a.deleted \
             FROM login_sessions s \
             LEFT JOIN accounts a ON a.user_id = json_extract(s.sess, '$.passport.user') \
             WHERE s.sid = ? AND s.expire > ?",
        )
        .bind(sid)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        // A session without passport.user is an anonymous session: not logged in.
        let Some(session_user) = row
            .try_get::<Option<String>, _>("session_user")
            .ok()
            .flatten()
            .and_then(|u| Uuid::try_parse(&u).ok())
        else {
            return Ok(None);
        };
        if row.try_get::<Option<String>, _>("user_id")?.is_none() {
            return Ok(Some(Err(session_user)));
        }
        Ok(Some(Ok(user_from_row(&row)?)))
    }

    async fn chat_access_facts(
        &self,
        chat_id: ChatId,
        viewer: Uuid,
    ) -> StoreResult<Option<ChatAccessFacts>> {
        let row = sqlx::query(
            "SELECT \
               EXISTS(SELECT 1 FROM chat_participants p WHERE p.chat_id = c.chat_id AND p.user_id = ?1) AS participant, \
               o.customer_id AS order_customer, o.assigned_id AS order_assigned, o.contractor_id AS order_contractor, \
               om.permissions AS order_permissions, \
               s.customer_id AS offer_customer, s.assigned_id AS offer_assigned, s.contractor_id AS offer_contractor, \
               sm.permissions AS offer_permissions \
             FROM chats c \
             LEFT JOIN orders o ON o.order_id = c.order_id \
             LEFT JOIN contractor_members om ON om.contractor_id = o.contractor_id AND om.user_id = ?1 \
             LEFT JOIN offer_sessions s ON s.id = c.session_id \
             LEFT JOIN contractor_members sm ON sm.contractor_id = s.contractor_id AND sm.user_id = ?1 \
             WHERE c.chat_id = ?2",
        )
        .bind(viewer.to_string())
        .bind(chat_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ChatAccessFacts {
            viewer_is_participant: row.try_get::<i64, _>("participant")? != 0,
            order: parties_from_row(&row, "order")?,
            offer: parties_from_row(&row, "offer")?,
        }))
    }

    async fn participant_chats(&self, user_id: Uuid) -> StoreResult<Vec<ChatId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT chat_id FROM chat_participants WHERE user_id = ?")
                .bind(user_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        ids.iter().map(|id| parse_uuid(id).map(ChatId)).collect()
    }

    async fn chat_summaries(&self, user_id: Uuid) -> StoreResult<Vec<ChatSummary>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CHAT_SUMMARY_SQL} WHERE c.chat_id IN \
               (SELECT chat_id FROM chat_participants WHERE user_id = ?) ORDER BY c.chat_id"
        )))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    async fn chat_detail(&self, chat_id: ChatId) -> StoreResult<Option<ChatDetail>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CHAT_SUMMARY_SQL} WHERE c.chat_id = ?"
        )))
        .bind(chat_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let chat = summary_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT m.message_id, m.content, a.username, m.timestamp FROM messages m \
             LEFT JOIN accounts a ON a.user_id = m.author \
             WHERE m.chat_id = ? ORDER BY m.timestamp, m.rowid",
        )
        .bind(chat_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let messages = rows
            .iter()
            .map(|r| {
                Ok(ChatMessage {
                    message_id: parse_uuid(&r.try_get::<String, _>("message_id")?)?,
                    content: r.try_get("content")?,
                    author: r.try_get("username")?,
                    chat_id,
                    timestamp: WireTimestamp::from_unix_millis(r.try_get("timestamp")?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(ChatDetail { chat, messages }))
    }

    async fn create_chat(&self, name: Option<&str>, participants: &[Uuid]) -> StoreResult<ChatId> {
        let chat_id = ChatId(Uuid::new_v4());
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO chats (chat_id, name) VALUES (?, ?)")
            .bind(chat_id.to_string())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        for user in participants {
            sqlx::query("INSERT OR IGNORE INTO chat_participants (chat_id, user_id) VALUES (?, ?)")
                .bind(chat_id.to_string())
                .bind(user.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(chat_id)
    }

    async fn find_or_create_direct_chat(&self, participants: &[Uuid]) -> StoreResult<ChatId> {
        let mut wanted: Vec<String> = participants.iter().map(Uuid::to_string).collect();
        wanted.sort();
        wanted.dedup();
        let wanted_joined = wanted.join(",");
        // A direct chat has no order and no offer, and exactly this set of participants.
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT c.chat_id FROM chats c \
             WHERE c.order_id IS NULL AND c.session_id IS NULL \
               AND (SELECT group_concat(user_id, ',') FROM \
                     (SELECT user_id FROM chat_participants p WHERE p.chat_id = c.chat_id ORDER BY user_id)) = ? \
             LIMIT 1",
        )
        .bind(&wanted_joined)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = existing {
            return Ok(ChatId(parse_uuid(&id)?));
        }
        let ids: Vec<Uuid> = wanted
            .iter()
            .map(|u| parse_uuid(u))
            .collect::<StoreResult<_>>()?;
        self.create_chat(None, &ids).await
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
        sqlx::query(
            "INSERT INTO messages (message_id, content, author, chat_id, timestamp) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(message.message_id.to_string())
        .bind(content)
        .bind(author.map(|a| a.user_id.to_string()))
        .bind(chat_id.to_string())
        .bind(message.timestamp.unix_millis())
        .execute(&self.pool)
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
}
