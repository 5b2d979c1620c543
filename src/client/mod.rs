//! The tool's own lean Engine.IO v4 / Socket.IO v5 client, and the typed SC Market HTTP API
//! around it.
//!
//! `rust_socketio` 0.6 was evaluated first and replaced: it does not expose the engine handshake
//! (sid, upgrades, ping settings, max payload), its `connect()` returns before the namespace
//! CONNECT, it cannot answer acks the server asks for, and it pulls a second HTTP and websocket
//! stack; `docs/CLIENT_BENCHMARKS.md` has the measurements. Each session is one tokio task plus
//! two channels, so the load test can hold thousands of them.
//!
//! Where things are:
//! - `options.rs`: what a session is opened with ([`ConnectOptions`], [`Transport`]).
//! - `session.rs`: the public face of a session ([`Session`], [`SessionHandle`], events).
//! - `transport/`: the connect sequence of each transport and the driver task that owns the
//!   connection afterwards; `state.rs`: the protocol state those drivers feed.
//! - `packet.rs`: the wire encoding; `disconnect.rs`: why a session ended; `error.rs`: how a
//!   call fails.
//! - `rooms.rs`: `clientJoinRoom`/`clientLeaveRoom` with an acknowledgement, answer classified.
//! - `api.rs`: the REST routes ([`ApiClient`]); `http.rs`: the HTTP pool they share with the
//!   polling transport.
//! - `backoff.rs`: reconnect delays.

pub mod api;
pub mod backoff;
mod disconnect;
mod error;
mod http;
mod options;
pub mod packet;
pub mod rooms;
mod session;
mod state;
mod transport;

pub use api::ApiClient;
pub use disconnect::{DisconnectKind, DisconnectReason};
pub use error::{ClientError, ErrorClass};
pub use options::{ConnectOptions, Transport, mask};
pub use packet::Handshake;
pub use session::{ConnectInfo, Event, Session, SessionEvent, SessionHandle};
