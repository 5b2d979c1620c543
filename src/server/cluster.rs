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

use serde::Serialize;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Sid;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_postgres::{PostgresAdapterConfig, PostgresAdapterCtr, TokioPostgresAdapter};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use super::config::{AdapterConfig, EngineConfig};
use super::redis_driver::NodeDriver;
use super::{AppState, delivery, realtime};
use crate::exit::CommandError;

/// The Redis adapter on this crate's driver (`redis_driver.rs`).
type RedisAdapter = CustomRedisAdapter<Emitter, NodeDriver>;
/// The Redis-backed server.
type RedisIo = SocketIo<RedisAdapter>;

/// Requests from other nodes a node may have queued before it drops one (each a broadcast of
/// a few hundred bytes): deep enough for a burst of posts on every other node.
const ADAPTER_BUFFER: usize = 65_536;

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
        AdapterConfig::Redis { url, prefix } => {
            let unreachable = |e: &dyn std::fmt::Display| {
                CommandError::usage(format!(
                    "--adapter {url}: cannot use Redis there ({e}); is it running? (Redis 7 or \
                     later: the adapter speaks RESP3)"
                ))
            };
            let client = redis::Client::open(resp3(url)).map_err(|e| unreachable(&e))?;
            let config = RedisAdapterConfig::new()
                .with_prefix(prefix.clone())
                .with_stream_buffer(ADAPTER_BUFFER);
            let driver = NodeDriver::connect(&client)
                .await
                .map_err(|e| unreachable(&e))?;
            let ctr = RedisAdapterCtr::new_with_driver(driver, config);
            let builder = SocketIo::builder().with_adapter::<RedisAdapter>(ctr);
            let (layer, io) = configure(builder, engine, path, app).build_layer();
            io.ns(
                "/",
                realtime::on_connect::<RedisAdapter>.with(realtime::admit::<RedisAdapter>),
            )
            .await
            .map_err(|e| unreachable(&e))?;
            tracing::info!(%url, %prefix, "rooms shared with the other nodes through Redis");
            Ok((Layer::Redis(layer), Io::Redis(io)))
        }
        AdapterConfig::Postgres { url, prefix } => {
            let unreachable = |e: &dyn std::fmt::Display| {
                CommandError::usage(format!(
                    "--adapter {url}: cannot use PostgreSQL there ({e}); is it running?"
                ))
            };
            let pg: tokio_postgres::Config = url.parse().map_err(|e| unreachable(&e))?;
            let config = PostgresAdapterConfig::new().with_prefix(prefix.clone());
            let ctr = PostgresAdapterCtr::new_with_tokio_postgres_config(
                pg,
                tokio_postgres::NoTls,
                config,
            )
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

/// socketioxide-redis needs RESP3 (push messages on the connection); the redis crate reads the
/// protocol from the URL.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
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

    /// Close every socket in `room`, on every node.
    pub async fn disconnect_room(&self, room: String) -> Result<(), String> {
        with_io!(self, io => io.to(room).disconnect().await).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_is_asked_for() {
        assert_eq!(
            resp3("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379?protocol=resp3"
        );
        assert_eq!(resp3("redis://h/0?x=1"), "redis://h/0?x=1&protocol=resp3");
        assert_eq!(
            resp3("redis://h?protocol=resp3"),
            "redis://h?protocol=resp3"
        );
    }
}
