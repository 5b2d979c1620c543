//! The one place messages announced by the database become `serverMessage`s: every new
//! `messages` row, whoever inserted it (this server's REST route, the Node backend, a system
//! message, psql), arrives here from `store::postgres::notify` and is emitted to its chat's
//! room.
//!
//! It emits to this node's sockets only (`Io::to_room_on_this_node`): each node of a multi-node deployment
//! runs its own listener and hears every notification, so with a shared adapter a broadcast
//! would reach each socket once per node. Local emission from every node delivers each
//! message exactly once.

use tokio::sync::mpsc;

use super::{AppState, Io};
use crate::protocol::{ChatMessage, SERVER_MESSAGE};

/// Emit every message of `feed` until it closes.
pub async fn run(mut feed: mpsc::Receiver<ChatMessage>, io: Io, app: AppState) {
    while let Some(message) = feed.recv().await {
        let room = message.chat_id.room();
        io.to_room_on_this_node(&app, &room, SERVER_MESSAGE, &message)
            .await;
        app.metrics.message_sent(&room);
    }
}
