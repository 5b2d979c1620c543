//! A node among several: the Socket.IO server with the adapter its deployment shares.
//!
//! socketioxide types the server by its adapter (`SocketIo<A>`), and the adapter is chosen at
//! start (`--adapter`). The namespace handlers of `realtime.rs` are generic over it; what the
//! REST handlers and the engine gate do with the server (a room broadcast, a room's disconnect,
//! "is this sid one of mine") goes through [`Io`], one enum over the two servers, so nothing
//! above this module names an adapter.
//!
//! With Redis, a broadcast to a room and a room's disconnect reach the sockets of every node
//! (socketioxide-redis publishes the request; each node applies it to its own sockets), while
//! [`Io::to_room_on_this_node`] stays on this node: for messages every node learns of by itself
//! (the database's NOTIFY feed, `feed.rs`), so that each socket gets them once.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, EventInterface, PubsubInterface, ReconnectPolicy};
use fred::types::RespVersion;
use serde::Serialize;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Sid;
use socketioxide::{BroadcastError, SocketIo, SocketIoBuilder};
use socketioxide_postgres::{PostgresAdapterConfig, PostgresAdapterCtr, TokioPostgresAdapter};
use socketioxide_redis::drivers::fred::fred_client as fred;
use socketioxide_redis::{FredAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::broadcast::error::RecvError;

use super::config::{AdapterConfig, EngineConfig};
use super::{AppState, delivery, realtime};
use crate::exit::CommandError;

/// The Redis adapter on socketioxide-redis's driver for the fred client.
type RedisAdapter = FredAdapter<Emitter>;
/// The Redis-backed server.
type RedisIo = SocketIo<RedisAdapter>;

/// Requests from other nodes a node may have queued before it drops one (each a broadcast of
/// a few hundred bytes): deep enough for a burst of posts on every other node. Also the bound
/// on this node's publishes queued while Redis is unreachable.
const ADAPTER_BUFFER: usize = 65_536;
/// PostgreSQL adapter: how long opening its connection may take.
const ADAPTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Depth of fred's broadcast channels, the pub/sub one among them, which hands every message
/// from the other nodes to the driver's task before the adapter's buffer: fred allocates this
/// many slots for each of its nine event channels at start (measured: docs/BENCHMARKS.md).
const PUBSUB_BUFFER: usize = 16_384;

/// The Socket.IO server of this node, whichever adapter it runs on.
#[derive(Clone)]
pub enum Io {
    Local(SocketIo<LocalAdapter>),
    Redis(RedisIo),
    Postgres(SocketIo<PostgresAdapter>),
}

/// The PostgreSQL adapter (LISTEN/NOTIFY) on tokio-postgres.
type PostgresAdapter = TokioPostgresAdapter<Emitter>;

/// The tower layer that serves the engine, typed like its server.
pub enum Layer {
    Local(SocketIoLayer<LocalAdapter>),
    Redis(SocketIoLayer<RedisAdapter>),
    Postgres(SocketIoLayer<PostgresAdapter>),
}

impl Layer {
    /// `router` with the Socket.IO layer around it.
    pub fn wrap(self, router: axum::Router) -> axum::Router {
        match self {
            Layer::Local(layer) => router.layer(layer),
            Layer::Redis(layer) => router.layer(layer),
            Layer::Postgres(layer) => router.layer(layer),
        }
    }
}

/// Build the Socket.IO server with `engine`'s settings and the `/` namespace's handlers, on the
/// adapter `adapter` says; with Redis, connected and subscribed before it returns, so a node
/// that cannot reach its Redis refuses to start instead of serving rooms only it can see.
pub async fn build(
    adapter: &AdapterConfig,
    engine: &EngineConfig,
    path: &str,
    app: AppState,
) -> anyhow::Result<(Layer, Io)> {
    match adapter {
        AdapterConfig::Local => {
            let (layer, io) = configure(SocketIo::builder(), engine, path, app).build_layer();
            io.ns(
                "/",
                realtime::on_connect::<LocalAdapter>.with(realtime::admit::<LocalAdapter>),
            );
            Ok((Layer::Local(layer), Io::Local(io)))
        }
        AdapterConfig::Redis {
            url,
            prefix,
            timeout,
        } => {
            let unreachable = |e: &dyn std::fmt::Display| {
                CommandError::usage(format!(
                    "--adapter {url}: cannot use Redis there ({e}); is it running? (Redis 7 or \
                     later: the adapter speaks RESP3 and sharded pub/sub)"
                ))
            };
            let client = redis_client(url, *timeout).map_err(|e| unreachable(&e))?;
            let config = RedisAdapterConfig::new()
                .with_prefix(prefix.clone())
                .with_stream_buffer(ADAPTER_BUFFER);
            // Connects (once: a node that cannot reach its Redis refuses to start) and starts
            // the task that hands each pub/sub message to the adapter.
            let ctr = RedisAdapterCtr::new_with_fred_config(client.clone(), config)
                .await
                .map_err(|e| unreachable(&e))?;
            let builder = SocketIo::builder().with_adapter::<RedisAdapter>(ctr);
            let (layer, io) = configure(builder, engine, path, app).build_layer();
            io.ns(
                "/",
                realtime::on_connect::<RedisAdapter>.with(realtime::admit::<RedisAdapter>),
            )
            .await
            .map_err(|e| unreachable(&e))?;
            // Only now are the adapter's channels subscribed, and so tracked for resubscription.
            resubscribe_on_reconnect(client);
            tracing::info!(%url, %prefix, "rooms shared with the other nodes through Redis");
            Ok((Layer::Redis(layer), Io::Redis(io)))
        }
        AdapterConfig::Postgres { url, prefix } => {
            let unreachable = |e: &dyn std::fmt::Display| {
                CommandError::usage(format!(
                    "--adapter {url}: cannot use PostgreSQL there ({e}); is it running?"
                ))
            };
            // The store's URL rules, TLS (`sslmode`) included.
            let mut pg = crate::store::postgres::connection_config(url, ADAPTER_CONNECT_TIMEOUT)
                .map_err(|e| unreachable(&e))?;
            // Told apart from the store's pool in `pg_stat_activity`, unless the URL names it.
            if pg.config.get_application_name() == Some(crate::store::postgres::APPLICATION_NAME) {
                pg.config.application_name("scmarket-ws-adapter");
            }
            let config = PostgresAdapterConfig::new().with_prefix(prefix.clone());
            let ctr = PostgresAdapterCtr::new_with_tokio_postgres_config(pg.config, pg.tls, config)
                .await
                .map_err(|e| unreachable(&e))?;
            let builder = SocketIo::builder().with_adapter::<PostgresAdapter>(ctr);
            let (layer, io) = configure(builder, engine, path, app).build_layer();
            io.ns(
                "/",
                realtime::on_connect::<PostgresAdapter>.with(realtime::admit::<PostgresAdapter>),
            )
            .await
            .map_err(|e| unreachable(&e))?;
            tracing::info!(%prefix, "rooms shared with the other nodes through PostgreSQL NOTIFY");
            Ok((Layer::Postgres(layer), Io::Postgres(io)))
        }
    }
}

fn configure<A: Adapter>(
    builder: SocketIoBuilder<A>,
    engine: &EngineConfig,
    path: &str,
    app: AppState,
) -> SocketIoBuilder<A> {
    let max_payload = usize::try_from(engine.max_payload).unwrap_or(usize::MAX);
    builder
        .req_path(path.to_owned())
        .ping_interval(engine.ping_interval)
        .ping_timeout(engine.ping_timeout)
        .connect_timeout(engine.connect_timeout)
        .max_payload(engine.max_payload)
        .max_buffer_size(engine.socket_buffer)
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .with_state(app)
}

/// The websocket read buffer each session starts with. Clients send small frames (pings, room
/// requests of under a hundred bytes); a larger frame grows the buffer to its size (up to
/// `--max-payload`), so this costs no capability, while engineioxide's default (4 KiB) would
/// sit mostly empty in every idle session.
const WS_READ_BUFFER: usize = 1024;

/// The fred client under the Redis adapter, as socketioxide-redis's fred driver wants it: one
/// connection (RESP3, so it publishes and receives pub/sub pushes at once) that reconnects
/// with backoff whenever it breaks, and whose commands wait at most `timeout` for Redis.
fn redis_client(url: &str, timeout: Duration) -> Result<SubscriberClient, fred::error::Error> {
    let mut config = fred::prelude::Config::from_url(url)?;
    // fred reads no `protocol=` from the URL; the driver's pushes need RESP3.
    config.version = RespVersion::RESP3;
    let mut builder = Builder::from_config(config);
    builder
        // Reconnect forever, 100 ms doubling to 10 s (with fred's jitter), as the NOTIFY
        // feed's listener does: a node outlives a Redis restart.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 10_000, 2))
        .with_performance_config(|perf| {
            // 0 is "no timeout" to fred as to `--adapter-timeout`. A publish that times out
            // before it is written is never written afterwards; one written but answered late
            // may have gone out. Either way this node's own sockets had the broadcast before
            // the publish (`delivery::to_room`), and no socket gets it twice.
            perf.default_command_timeout = timeout;
            // Every pub/sub message passes through a broadcast channel of this depth on its
            // way to the adapter's task; fred's 32 would overflow (messages lost, logged as
            // "lagged") in a burst from the other nodes.
            perf.broadcast_channel_capacity = PUBSUB_BUFFER;
        })
        .with_connection_config(|connection| {
            // Publishes queued while Redis is unreachable: a bound, past which a broadcast
            // fails at once (and reaches this node's sockets only) instead of growing memory.
            connection.max_command_buffer_len = ADAPTER_BUFFER;
            // A publish in flight when the connection breaks fails rather than being sent
            // again on the next one: Redis may have delivered it already, and a socket must
            // not get a message twice. This node's sockets had it before the publish.
            connection.max_command_attempts = 1;
            // A connection on which an answer is overdue by the timeout is taken for dead
            // (a half-open TCP connection otherwise looks healthy for hours) and replaced.
            connection.unresponsive.max_timeout = (!timeout.is_zero()).then_some(timeout);
        });
    builder.build_subscriber_client()
}

/// After every reconnection, subscribe the adapter's channels again (a new connection has
/// none). Not fred's own `manage_subscriptions`: it re-sends plain SUBSCRIBE and PSUBSCRIBE
/// with no channel when there are none, Redis answers "wrong number of arguments", and fred
/// gives up the rest (seen: one of the adapter's three sharded channels subscribed again). The
/// adapter's channels are all sharded ones (SSUBSCRIBE).
fn resubscribe_on_reconnect(client: SubscriberClient) {
    let mut reconnected = client.reconnect_rx();
    tokio::spawn(async move {
        loop {
            match reconnected.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            // One channel a command: on a Redis cluster, channels of different slots may not
            // share one SSUBSCRIBE.
            for channel in client.tracked_shard_channels() {
                if let Err(e) = client.ssubscribe(channel.to_string()).await {
                    tracing::error!(error = %e, %channel, "reconnected to Redis but could not subscribe an adapter channel again; what other nodes send there is not received until the next reconnection");
                }
            }
            tracing::info!("reconnected to Redis; the adapter's channels are subscribed again");
        }
    });
}

/// Run `$body` with `$io` bound to whichever typed server `$self` holds: the three adapters'
/// `SocketIo`s have the same methods but different types, so every operation is written once.
macro_rules! with_io {
    ($self:expr, $io:ident => $body:expr) => {
        match $self {
            Io::Local($io) => $body,
            Io::Redis($io) => $body,
            Io::Postgres($io) => $body,
        }
    };
}

impl Io {
    /// Emit `event` to every socket in `room`, on every node; a socket of this node that
    /// cannot take it is disconnected (`delivery.rs`). Answers the deliveries dropped here.
    pub async fn to_room<T: Serialize + ?Sized>(
        &self,
        app: &AppState,
        room: &str,
        event: &str,
        data: &T,
    ) -> usize {
        with_io!(self, io => delivery::to_room(io, app, room, event, data).await)
    }

    /// As [`Io::to_room`], to this node's sockets only: for messages every node learns of by
    /// itself (the database's announcements), which a broadcast would deliver once per node.
    pub async fn to_room_on_this_node<T: Serialize + ?Sized>(
        &self,
        app: &AppState,
        room: &str,
        event: &str,
        data: &T,
    ) -> usize {
        with_io!(self, io => delivery::to_room_on_this_node(io, app, room, event, data).await)
    }

    /// Close every socket in `room`, on every node. When the adapter cannot reach the other
    /// nodes, this node's sockets in `room` are still closed, and the error says the others
    /// were not.
    pub async fn disconnect_room(&self, room: String) -> Result<(), String> {
        with_io!(self, io => match io.to(room.clone()).disconnect().await {
            Err(BroadcastError::Adapter(e)) => {
                // As for a broadcast (`delivery::to_room`): the adapter skipped this node too.
                let here = io.local().to(room).disconnect().await;
                Err(format!("not passed to the other nodes ({e}); on this node: {here:?}"))
            }
            done => done.map_err(|e| e.to_string()),
        })
    }

    /// Whether `sid` is a namespace socket of this node.
    pub fn has_local_socket(&self, sid: Sid) -> bool {
        with_io!(self, io => io.get_socket(sid).is_some())
    }

    /// Sockets connected to this node's default namespace.
    pub fn local_socket_count(&self) -> usize {
        with_io!(self, io => io.sockets().len())
    }

    /// Close every socket of this node.
    pub async fn close(&self) {
        with_io!(self, io => io.close().await)
    }
}
