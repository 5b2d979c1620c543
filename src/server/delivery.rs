//! Broadcasting to a room without losing a delivery silently.
//!
//! socketioxide queues each packet to each socket of the room in a bounded per-socket buffer
//! (`EngineConfig::socket_buffer`); a socket whose client stopped reading fills it, and every
//! later packet to it is dropped. Production's engine.io buffers without bound instead. Here
//! the broadcast stays one room broadcast (serialised once, as cheap as bare socketioxide);
//! only when it reports full buffers are the room's sockets probed to find whose buffer is
//! full, and each of those is taken out of its rooms and disconnected, counted as
//! `slow_consumer`. Its client sees the disconnect, reconnects and refetches the chat, so it
//! learns that it missed messages; what it did receive is a gap-free start of the stream.

use std::time::Duration;

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{BroadcastError, SendError, SocketError, SocketIo};

use super::AppState;

/// Marks a socket disconnected for falling behind, so its disconnect is counted with that
/// reason whichever way the session then ends.
#[derive(Clone, Copy, Debug)]
pub struct SlowConsumer;

/// The `reason` label of `scmarket_ws_disconnects_total` for such a socket.
pub const SLOW_CONSUMER: &str = "slow_consumer";

/// How often the DISCONNECT of a slow consumer is retried while its buffer is still full. The
/// heartbeat closes the session anyway within one ping interval and timeout (its ping finds
/// the buffer full).
const DISCONNECT_RETRY: Duration = Duration::from_millis(20);
/// A bound on those retries should the heartbeat be configured very long.
const DISCONNECT_GIVE_UP: Duration = Duration::from_secs(300);

/// Emit `event` with `data` to every socket in `room`, on every node; a socket of this node
/// whose buffer is full is disconnected (see the module documentation). Answers how many
/// deliveries were dropped here.
///
/// With several nodes, this node's sockets get it first and at once, and the other nodes'
/// through the adapter, excepting the room's part on this node (`room@node`, which this
/// node's members of the room join with it: [`chat_rooms`]). Left to itself,
/// socketioxide-redis publishes a broadcast and waits for Redis's answer before it emits to
/// the node's own sockets: a Redis round trip in every local delivery (docs/BENCHMARKS.md,
/// issue 13). Each socket still gets it once. The excepted room holds only this node's
/// members of the room: socketioxide collects an excepted room's sockets into a set at every
/// broadcast, so one room of all this node's sockets would cost every broadcast a pass over
/// them all (14,000 per node in the 100,000-session run). When the adapter fails (Redis down past
/// `--adapter-timeout`), this node's sockets have the message already; the other nodes' miss
/// it (it stays in the chat's history) and the error is counted.
pub async fn to_room<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) -> usize {
    let Some(node) = &app.node_id else {
        let sent = io.to(room.to_string()).emit(event, data).await;
        return after_broadcast(io, app, room, sent);
    };
    let here = io.local().to(room.to_string()).emit(event, data).await;
    let dropped = after_broadcast(io, app, room, here);
    let elsewhere = io
        .to(room.to_string())
        .except(on_node(room, node))
        .emit(event, data)
        .await;
    match elsewhere {
        Ok(()) => {}
        Err(BroadcastError::Adapter(e)) => {
            app.metrics.adapter_errors.inc();
            tracing::error!(error = %e, %room, "a broadcast could not reach the other nodes; only this node's sockets got it");
        }
        // This node's part of it excepted every member here: nothing of ours can be full.
        Err(e) => tracing::error!(error = %e, %room, "broadcast to the other nodes failed"),
    }
    dropped
}

/// The rooms a socket joins (or leaves) for a chat's `room`: the room, and with several nodes
/// also the room's part on this node (see [`to_room`]).
pub fn chat_rooms(app: &AppState, room: String) -> Vec<String> {
    match &app.node_id {
        Some(node) => {
            let here = on_node(&room, node);
            vec![room, here]
        }
        None => vec![room],
    }
}

/// A room's part on one node: its members on that node.
fn on_node(room: &str, node: &str) -> String {
    format!("{room}@{node}")
}

/// As [`to_room`], to this node's sockets only: for what every node hears by itself (the
/// database's announcements, `feed.rs`), which a broadcast through an adapter would deliver
/// once per node.
pub async fn to_room_on_this_node<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) -> usize {
    let sent = io.local().to(room.to_string()).emit(event, data).await;
    after_broadcast(io, app, room, sent)
}

/// Finds and disconnects the sockets whose buffers were full, if any were.
fn after_broadcast<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    room: &str,
    sent: Result<(), BroadcastError>,
) -> usize {
    let errors = match sent {
        Ok(()) => return 0,
        Err(BroadcastError::Socket(errors)) => errors,
        Err(e) => {
            tracing::error!(error = %e, %room, "broadcast failed");
            return 0;
        }
    };
    let dropped = errors
        .iter()
        .filter(|e| matches!(e, SocketError::InternalChannelFull))
        .count();
    if dropped == 0 {
        // Only sockets closing at this moment: nobody left to deliver to.
        return 0;
    }
    app.metrics.deliveries_dropped.inc_by(dropped as u64);
    let mut found = 0;
    for socket in io.local().to(room.to_string()).sockets() {
        if buffer_is_full(&socket) {
            found += 1;
            disconnect_slow_consumer(socket, app);
        }
    }
    if found < dropped {
        // A buffer drained between the broadcast and the probe: that client resumed reading
        // moments after missing a message. Say so; nothing else can tell which it was.
        tracing::error!(
            %room,
            dropped,
            found,
            "some sockets missed a message but had room again when probed; they were not \
             disconnected"
        );
    }
    dropped
}

/// Serialising this always fails.
struct Probe;

impl Serialize for Probe {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("buffer probe, never sent"))
    }
}

/// Whether the socket's buffer is full, found without sending anything: socketioxide reserves
/// a buffer slot before serialising, so a full buffer fails the reservation, and otherwise the
/// probe's serialisation fails and the reserved slot is given back unused.
fn buffer_is_full<A: Adapter>(socket: &SocketRef<A>) -> bool {
    matches!(
        socket.emit("", &Probe),
        Err(SendError::Socket(SocketError::InternalChannelFull))
    )
}

fn disconnect_slow_consumer<A: Adapter>(socket: SocketRef<A>, app: &AppState) {
    if socket.extensions.get::<SlowConsumer>().is_some() {
        return;
    }
    socket.extensions.insert(SlowConsumer);
    // Nothing more is queued for it, so what it gets stays a gap-free start of the stream.
    socket.leave_all();
    tracing::info!(socket = %socket.id, "a socket fell behind by a full buffer; disconnecting it");
    app.metrics.disconnect_reason(SLOW_CONSUMER);
    tokio::spawn(async move {
        let give_up = tokio::time::Instant::now() + DISCONNECT_GIVE_UP;
        // The DISCONNECT packet itself needs a free slot.
        while socket.connected() && tokio::time::Instant::now() < give_up {
            match socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => tokio::time::sleep(DISCONNECT_RETRY).await,
                Ok(()) | Err(SocketError::Closed) => break,
            }
        }
    });
}
