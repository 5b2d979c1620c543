//! The Redis connection under socketioxide-redis, as its `Driver` trait lets a user supply one.
//!
//! socketioxide-redis's own driver keeps the redis crate's default 500 ms response timeout on
//! the one connection that both publishes and receives: on a busy node (a burst of posts, a
//! connect storm) a PUBLISH waits longer than that, fails with "timed out", and the broadcast
//! never reaches the other nodes (a cluster test lost 5-30% of cross-node deliveries that
//! way). This driver is the same protocol (PUBLISH / SUBSCRIBE over RESP3 pushes, PUBSUB
//! NUMSUB) with a response timeout long enough for a loaded node, and a subscription buffer
//! whose overflow is logged as lost messages rather than hidden.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// How long a command may wait for Redis's answer: a node this late is in trouble, but a
/// broadcast that is merely slow must still go out.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct DriverError(redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {}

impl From<redis::RedisError> for DriverError {
    fn from(e: redis::RedisError) -> Self {
        DriverError(e)
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Clone)]
pub struct NodeDriver {
    handlers: Handlers,
    conn: MultiplexedConnection,
}

impl NodeDriver {
    pub async fn connect(client: &redis::Client) -> Result<NodeDriver, redis::RedisError> {
        let handlers: Handlers = Arc::default();
        let pushes = Arc::clone(&handlers);
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_push_sender(move |push| {
                route(push, &pushes);
                Ok::<(), std::convert::Infallible>(())
            });
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(NodeDriver { handlers, conn })
    }
}

/// Hand a pub/sub message to the adapter's stream for its channel.
fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(chan), Some(message)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(chan), Ok(message)) = (
        String::from_redis_value(chan),
        Vec::<u8>::from_redis_value(message),
    ) else {
        tracing::error!("a Redis pub/sub message that is not (channel, bytes)");
        return;
    };
    let handlers = handlers.read().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = handlers.get(&chan)
        && let Err(e) = tx.try_send((chan, message))
    {
        // The adapter's task is this far behind: the request (a broadcast from another node)
        // is lost for this node's sockets.
        tracing::error!(error = %e, "adapter request from another node dropped: this node is too far behind");
    }
}

impl Driver for NodeDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), DriverError> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, DriverError> {
        self.conn.clone().subscribe(chan.as_str()).await?;
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chan, tx);
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), DriverError> {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, DriverError> {
        let mut conn = self.conn.clone();
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }
}
