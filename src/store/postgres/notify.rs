//! New `messages` rows from any writer, as they commit: an optional trigger that notifies a
//! channel (`db install-notify`), and a listener on a dedicated connection that turns each
//! notification into the stored message and hands it to the server (`server::feed` emits it).
//!
//! The listener reconnects with backoff when its connection breaks. After each (re)connect it
//! listens first and then reads every message stamped since the newest one it has seen, less
//! [`CATCH_UP_OVERLAP`]: rows committed while it was away are found by their timestamp, and
//! the ids it has already handed on in that window are remembered, so nothing is lost and
//! nothing is handed on twice. (A row whose transaction commits more than the overlap after
//! the timestamp it was given, while the listener is down, is the one case it can miss.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use time::PrimitiveDateTime;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, GenericClient};
use uuid::Uuid;

use super::{MESSAGE_SQL, describe, message_at, now_utc};
use crate::protocol::ChatMessage;
use crate::store::StoreResult;

/// The channel the trigger notifies; the payload is `{"message_id": ..., "chat_id": ...}`.
pub const CHANNEL: &str = "scmarket_ws_messages";
pub const TRIGGER: &str = "scmarket_ws_notify_message";
pub const FUNCTION: &str = "scmarket_ws_notify_message";
/// The listener connection's `application_name`, so an operator (or a test) can find it in
/// `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "scmarket-ws listener";

/// How far before the newest message seen a catch-up reads: longer than any transaction that
/// inserts a message should take between stamping it (`now()` is the transaction's start) and
/// committing.
pub const CATCH_UP_OVERLAP: Duration = Duration::from_secs(10);
/// The most rows one catch-up reads; more are read in further rounds.
const CATCH_UP_BATCH: i64 = 5_000;
/// Notifications handled together: their rows are read in one query.
const BATCH: usize = 256;
/// Messages waiting for the server to emit them; the listener waits when it is full.
pub const FEED_CAPACITY: usize = 4_096;
/// How often the listener checks that the trigger is still installed.
pub const TRIGGER_CHECK: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Idempotent: the function is replaced and the trigger re-created in one transaction.
pub const INSTALL_SQL: &str = r#"
CREATE OR REPLACE FUNCTION scmarket_ws_notify_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('scmarket_ws_messages',
    json_build_object('message_id', NEW.message_id, 'chat_id', NEW.chat_id)::text);
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS scmarket_ws_notify_message ON messages;
CREATE TRIGGER scmarket_ws_notify_message AFTER INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION scmarket_ws_notify_message();
"#;

pub const UNINSTALL_SQL: &str = r#"
DROP TRIGGER IF EXISTS scmarket_ws_notify_message ON messages;
DROP FUNCTION IF EXISTS scmarket_ws_notify_message();
"#;

/// Whether the trigger is on `messages` (and enabled).
pub async fn installed(client: &impl GenericClient) -> StoreResult<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = 'messages' AND t.tgname = $1 \
               AND t.tgenabled <> 'D')",
            &[&TRIGGER],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub async fn install(client: &mut deadpool_postgres::Object) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(INSTALL_SQL).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn uninstall(client: &mut deadpool_postgres::Object) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.batch_execute(UNINSTALL_SQL).await?;
    tx.commit().await?;
    Ok(())
}

/// The newest position handed on, and the ids handed on within the overlap before it.
struct Seen {
    newest: PrimitiveDateTime,
    ids: HashMap<Uuid, PrimitiveDateTime>,
}

impl Seen {
    fn window_start(&self) -> PrimitiveDateTime {
        self.newest - CATCH_UP_OVERLAP
    }

    /// True the first time an id is offered.
    fn first_time(&mut self, id: Uuid, stamp: PrimitiveDateTime) -> bool {
        if self.ids.contains_key(&id) {
            return false;
        }
        self.ids.insert(id, stamp);
        if stamp > self.newest {
            self.newest = stamp;
        }
        true
    }

    fn forget_old(&mut self) {
        let start = self.window_start();
        self.ids.retain(|_, stamp| *stamp >= start);
    }
}

/// Run the listener until `feed` is closed (the server stopped): connect, listen, catch up,
/// hand on each new message; on any failure wait (backoff with jitter) and start again.
/// `announcing` is cleared (and the listener ends) when the trigger is found removed: from then
/// on nothing announces messages, so the REST route must emit what it stores again.
pub async fn listen(
    mut settings: super::ConnectionSettings,
    feed: mpsc::Sender<ChatMessage>,
    announcing: Arc<AtomicBool>,
) {
    settings.config.application_name(LISTENER_APPLICATION_NAME);
    let mut seen: Option<Seen> = None;
    let mut backoff = BACKOFF_START;
    loop {
        let connected_at = tokio::time::Instant::now();
        match session(&settings, &feed, &mut seen).await {
            Ok(Ended::FeedClosed) => return,
            Ok(Ended::TriggerRemoved) => {
                announcing.store(false, Ordering::Release);
                tracing::error!(
                    "the notify trigger was removed from messages while serving: serve emits the \
                     messages it stores itself again, and no others; `scmarket-ws db \
                     install-notify` and a restart bring every message back"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the NOTIFY listener lost its database connection; reconnecting");
            }
        }
        if feed.is_closed() {
            return;
        }
        // A connection that lasted a while was healthy: start the backoff over.
        if connected_at.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_START;
        }
        let jitter = backoff.mul_f64(fastrand::f64() * 0.5);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why a listener's session ended other than by a broken connection.
enum Ended {
    /// The server stopped taking messages.
    FeedClosed,
    /// The trigger is gone: no notification will come.
    TriggerRemoved,
}

/// One connection's life.
async fn session(
    settings: &super::ConnectionSettings,
    feed: &mpsc::Sender<ChatMessage>,
    seen: &mut Option<Seen>,
) -> Result<Ended, String> {
    let (client, mut connection) = settings
        .config
        .connect(settings.tls.clone())
        .await
        .map_err(|e| describe(&e))?;
    // The connection's messages: notifications go to `notes`; the end of the stream (or an
    // error) drops `notes_tx`, which ends this session.
    let (notes_tx, mut notes) = mpsc::channel::<String>(BATCH * 4);
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes_tx.send(n.payload().to_string()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %describe(&e), "NOTIFY connection ended");
                    return;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    let reconnect = seen.is_some();
    if !reconnect {
        // First start: what is stored already is not news. The rows a later catch-up would
        // read again are remembered before listening (a row committed in between is then
        // neither remembered nor announced, and a catch-up hands it on).
        let mut first = Seen {
            newest: now_utc(),
            ids: HashMap::new(),
        };
        let rows = client
            .query(
                "SELECT message_id, timestamp FROM messages WHERE timestamp >= $1",
                &[&first.window_start()],
            )
            .await
            .map_err(|e| describe(&e))?;
        for row in &rows {
            first.ids.insert(row.get(0), row.get(1));
        }
        *seen = Some(first);
    }
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| describe(&e))?;
    let Some(seen) = seen.as_mut() else {
        return Err("no listener state".into());
    };
    if !installed(&client).await.map_err(|e| e.to_string())? {
        return Ok(Ended::TriggerRemoved);
    }
    if reconnect {
        let handed = catch_up(&client, feed, seen).await?;
        tracing::info!(
            channel = CHANNEL,
            caught_up = handed,
            "listening again; messages stored meanwhile were read by timestamp"
        );
    } else {
        tracing::info!(channel = CHANNEL, "listening for new messages");
    }
    let fetch = client
        .prepare(&format!(
            "{MESSAGE_SQL} WHERE m.message_id = ANY($1) ORDER BY m.timestamp, m.message_id"
        ))
        .await
        .map_err(|e| describe(&e))?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut check = tokio::time::interval(TRIGGER_CHECK);
    loop {
        batch.clear();
        let first = tokio::select! {
            note = notes.recv() => note,
            _ = check.tick() => {
                if !installed(&client).await.map_err(|e| e.to_string())? {
                    return Ok(Ended::TriggerRemoved);
                }
                continue;
            }
        };
        let Some(first) = first else {
            return Err("the connection closed".into());
        };
        batch.push(first);
        while batch.len() < BATCH {
            match notes.try_recv() {
                Ok(payload) => batch.push(payload),
                Err(_) => break,
            }
        }
        let ids: Vec<Uuid> = batch.iter().filter_map(|p| message_id(p)).collect();
        if ids.is_empty() {
            continue;
        }
        let rows = client
            .query(&fetch, &[&ids])
            .await
            .map_err(|e| describe(&e))?;
        for row in &rows {
            let (message, stamp) = message_at(row).map_err(|e| e.to_string())?;
            if seen.first_time(message.message_id, stamp) && feed.send(message).await.is_err() {
                return Ok(Ended::FeedClosed);
            }
        }
        seen.forget_old();
    }
}

/// Hand on every message stamped within the overlap before the newest seen, or later, that
/// was not handed on yet. Answers how many it handed on.
async fn catch_up(
    client: &tokio_postgres::Client,
    feed: &mpsc::Sender<ChatMessage>,
    seen: &mut Seen,
) -> Result<usize, String> {
    let sql = format!(
        "{MESSAGE_SQL} WHERE m.timestamp >= $1 ORDER BY m.timestamp, m.message_id LIMIT $2 OFFSET $3"
    );
    let from = seen.window_start();
    let mut handed = 0;
    let mut offset: i64 = 0;
    loop {
        let rows = client
            .query(&sql, &[&from, &CATCH_UP_BATCH, &offset])
            .await
            .map_err(|e| describe(&e))?;
        for row in &rows {
            let (message, stamp) = message_at(row).map_err(|e| e.to_string())?;
            if seen.first_time(message.message_id, stamp) {
                handed += 1;
                if feed.send(message).await.is_err() {
                    return Ok(handed);
                }
            }
        }
        if (rows.len() as i64) < CATCH_UP_BATCH {
            break;
        }
        offset += CATCH_UP_BATCH;
    }
    seen.forget_old();
    Ok(handed)
}

fn message_id(payload: &str) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_str(payload)
        .map_err(
            |e| tracing::warn!(error = %e, "a notification on the messages channel is not JSON"),
        )
        .ok()?;
    let id = value.get("message_id")?.as_str()?;
    Uuid::try_parse(id).ok()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let id = Uuid::new_v4();
        assert_eq!(
            message_id(&format!(r#"{{"message_id":"{id}","chat_id":"x"}}"#)),
            Some(id)
        );
        assert_eq!(message_id("not json"), None);
        assert_eq!(message_id(r#"{"message_id":5}"#), None);
    }

    #[test]
    fn an_id_is_handed_on_once_and_forgotten_after_the_overlap() {
        let t0 = time::macros::datetime!(2026-01-01 00:00:00);
        let mut seen = Seen {
            newest: t0,
            ids: HashMap::new(),
        };
        let a = Uuid::new_v4();
        assert!(seen.first_time(a, t0));
        assert!(!seen.first_time(a, t0));
        let later = t0 + time::Duration::seconds(60);
        assert!(seen.first_time(Uuid::new_v4(), later));
        assert_eq!(seen.newest, later);
        seen.forget_old();
        assert!(!seen.ids.contains_key(&a));
        assert_eq!(seen.ids.len(), 1);
    }
}
