//! One virtual user: runs a flow's steps against its Socket.IO session and records what it sees.
//!
//! Events are stamped with their arrival time by the client's session task, so a user that is
//! busy with another step (an HTTP post, a think) still measures deliveries exactly; it reads
//! them at its next await point.
//!
//! Here: the user, its flow's step dispatch and its session's life (connect, reconnect, close);
//! `membership.rs`: the rooms it is in against the run's room table; `events.rs`: emits,
//! `wait_for` and the events it reads.

mod events;
mod membership;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::metrics::{ErrorKind, FailReason, Latency, Metrics, Recorder};
use super::scenario::{Repeat, Step, Think, UserScenario};
use super::setup::TargetNode;
use super::shard::Shard;
use super::template::Vars;
use crate::client::rooms::RoomAction;
use crate::client::{
    self, ConnectOptions, DisconnectKind, ErrorClass, Session, SessionEvent, SessionHandle,
};
use crate::protocol::PostMessageRequest;
use membership::{Joining, Stay};

/// Backoff between reconnect attempts: doubling from the start to the cap, plus jitter.
const RECONNECT_BACKOFF_START: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// `wait_for` this pseudo-event to wait until the session is lost (e.g. a server restart).
pub const DISCONNECT_EVENT: &str = "disconnect";
pub use membership::ROOM_ACK_TIMEOUT;

/// What every virtual user of a run shares.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// The target's nodes: where sessions connect and users post.
    pub nodes: Arc<[TargetNode]>,
    /// This generator's part of the run: a virtual user picks its cookie, room and first node
    /// by its number within the shard.
    pub shard: Shard,
    pub cookies: Arc<[String]>,
    pub rooms: Arc<[String]>,
    /// The server puts each session in its user's own dev room on connect.
    pub auto_joined: bool,
    /// Whether the server acknowledges room events (`membership::ACKS_*`), learnt at the first
    /// barrier.
    pub room_acks: std::sync::atomic::AtomicU8,
}

/// The flow stops: the session could not be (re)opened, so later steps would only add noise.
struct Abort;

struct Live {
    handle: SessionHandle,
    events: UnboundedReceiver<SessionEvent>,
}

pub struct VirtualUser {
    shared: Arc<Shared>,
    vu: u64,
    room: String,
    /// Index of the node in `Shared::nodes` this user connects and posts to; a reconnect that
    /// cannot reach it moves on to the next.
    node: usize,
    session: Option<Live>,
    /// Rooms this session is or was in (each open stay counted once in the run's room table).
    stays: Vec<Stay>,
    /// Joins sent without an answer yet, not counted in the room table until one is proven.
    joining: Vec<Joining>,
    pending: VecDeque<(String, Value)>,
    recorder: Recorder,
    /// Open model: when this user was due to arrive; its first connect is timed from here.
    scheduled: Option<Instant>,
    next_nonce: u64,
    buf: String,
}

fn fail_reason(e: &client::ClientError) -> FailReason {
    match e.class() {
        ErrorClass::Refused => FailReason::Refused,
        ErrorClass::Unreachable => FailReason::Unreachable,
        ErrorClass::Timeout => FailReason::Timeout,
        ErrorClass::Usage | ErrorClass::Other => FailReason::Protocol,
    }
}

fn think_time(think: &Think) -> Duration {
    match think {
        Think::Fixed(d) => *d,
        Think::Range { min, max } => {
            let (lo, hi) = (min.as_micros() as u64, max.as_micros() as u64);
            Duration::from_micros(if hi > lo { fastrand::u64(lo..=hi) } else { lo })
        }
    }
}

/// The node virtual user `local` (this shard's number) starts on. The members of one room
/// (local numbers `r`, `r + rooms`, ...) go to successive nodes, so that a room spans the nodes
/// and its deliveries cross them; room `r`'s first member starts on node `r mod nodes`, so the
/// nodes fill evenly whatever the room size (starting every room on the first node put two
/// rooms' worth of 10 members on three of 7 nodes, past their open-file limit at 100,000).
fn first_node(local: u64, rooms: usize, nodes: usize) -> usize {
    let rooms = rooms.max(1) as u64;
    let (member, room) = (local / rooms, local % rooms);
    ((member + room) % nodes.max(1) as u64) as usize
}

impl VirtualUser {
    pub fn new(shared: Arc<Shared>, vu: u64, scheduled: Option<Instant>) -> Self {
        let local = shared.shard.local(vu);
        let room = if shared.rooms.is_empty() {
            String::new()
        } else {
            shared.rooms[(local % shared.rooms.len() as u64) as usize].clone()
        };
        let node = first_node(local, shared.rooms.len(), shared.nodes.len());
        let recorder = shared.metrics.recorder();
        VirtualUser {
            shared,
            vu,
            room,
            node,
            session: None,
            stays: Vec::new(),
            joining: Vec::new(),
            pending: VecDeque::new(),
            recorder,
            scheduled,
            next_nonce: 0,
            buf: String::new(),
        }
    }

    /// Run one pass of the flow, then close the session if the flow left it open.
    pub async fn run(&mut self, flow: &UserScenario) {
        if let Some(at) = self.scheduled {
            self.recorder.record(
                Latency::ScheduleLag,
                Instant::now().saturating_duration_since(at),
            );
        }
        let _ = self.steps(&flow.steps, 0).await;
        self.close().await;
    }

    fn steps<'a>(
        &'a mut self,
        steps: &'a [Step],
        iteration: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), Abort>> + Send + 'a>> {
        Box::pin(async move {
            for step in steps {
                self.drain_ready();
                self.step(step, iteration).await?;
            }
            Ok(())
        })
    }

    async fn step(&mut self, step: &Step, iteration: u64) -> Result<(), Abort> {
        match step {
            Step::Connect { timeout } => self.connect(*timeout, false).await,
            Step::Reconnect { timeout } => {
                self.close().await;
                self.connect(*timeout, true).await
            }
            Step::Disconnect => {
                self.close().await;
                Ok(())
            }
            Step::Join { chat_id } => {
                let room = self.render(chat_id, iteration, "");
                self.room_event(RoomAction::Join, room).await;
                Ok(())
            }
            Step::Leave { chat_id } => {
                let room = self.render(chat_id, iteration, "");
                self.room_event(RoomAction::Leave, room).await;
                Ok(())
            }
            Step::Emit { event, data, ack } => {
                self.emit(event, data.as_ref(), ack.as_ref(), iteration)
                    .await;
                Ok(())
            }
            Step::WaitFor {
                event,
                count,
                matching,
                timeout,
            } => {
                self.wait_for(event, *count, matching.as_ref(), *timeout, iteration)
                    .await;
                Ok(())
            }
            Step::PostMessage { chat_id, content } => {
                self.post_message(chat_id, content, iteration).await;
                Ok(())
            }
            Step::Think(think) => {
                self.pump_until(Instant::now() + think_time(think)).await;
                Ok(())
            }
            Step::Loop { repeat, steps } => match repeat {
                Repeat::Count(n) => {
                    for i in 0..u64::from(*n) {
                        self.steps(steps, i).await?;
                    }
                    Ok(())
                }
                Repeat::Duration(d) => {
                    let end = Instant::now() + *d;
                    let mut i = 0;
                    while Instant::now() < end {
                        self.steps(steps, i).await?;
                        i += 1;
                        // A body without awaits that take time must not starve other users.
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }
            },
        }
    }

    /// This user's `Cookie` header text (users share the sessions file's lines round-robin).
    fn cookie(&self) -> &str {
        let local = self.shared.shard.local(self.vu);
        &self.shared.cookies[(local % self.shared.cookies.len() as u64) as usize]
    }

    fn render(
        &mut self,
        template: &super::template::Template,
        iteration: u64,
        nonce: &str,
    ) -> String {
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce,
        };
        template.render(&vars)
    }

    async fn connect(&mut self, timeout: Duration, reconnect: bool) -> Result<(), Abort> {
        if self.session.is_some() {
            self.close().await;
        }
        let metrics = Arc::clone(&self.shared.metrics);
        // Open model: the first connect counts from the scheduled arrival (coordinated
        // omission); later ones from when the step starts.
        let reference = self.scheduled.take().unwrap_or_else(Instant::now);
        if !reconnect {
            metrics.session_started();
        }
        let Some(mut options) = self.node_options(timeout) else {
            metrics.session_failed(FailReason::Setup);
            return Err(Abort);
        };
        // A reconnect keeps trying until its timeout, as a client does while a server
        // restarts; its latency is the time until the session is back.
        let deadline = Instant::now() + timeout;
        let mut backoff = RECONNECT_BACKOFF_START;
        let result = loop {
            // Boxed: the connect future is about 9.5 KB (websocket handshake state). Awaited
            // inline it would be part of this user's step future for the whole session,
            // thinking included; boxed, it is freed once connected (the load test's budget is
            // 16 KB per held session: docs/BENCHMARKS.md).
            let attempt = Box::pin(Session::connect(&options)).await;
            match attempt {
                Err(e) if reconnect && Instant::now() + backoff < deadline => {
                    tracing::debug!(vu = self.vu, error = %e, "reconnect attempt failed; retrying");
                    let jitter =
                        Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    // The node may be gone: the next attempt goes to the next one.
                    if self.shared.nodes.len() > 1 {
                        self.node = (self.node + 1) % self.shared.nodes.len();
                        let Some(next) = self.node_options(timeout) else {
                            break Err(e);
                        };
                        options = next;
                    }
                    options.timeout = deadline.saturating_duration_since(Instant::now());
                }
                other => break other,
            }
        };
        match result {
            Ok(session) => {
                let (handle, events, info) = session.into_parts();
                // Events of an earlier session are history: a `wait_for` after a reconnect
                // waits for what this session receives.
                self.pending.clear();
                self.recorder.record(Latency::EngineOpen, info.engine_open);
                self.recorder
                    .record_since(Latency::Connect, reference.into_std());
                self.session = Some(Live { handle, events });
                if reconnect {
                    metrics.session_reconnected();
                } else {
                    metrics.session_connected();
                }
                if self.shared.auto_joined && !self.room.is_empty() {
                    let room = self.room.clone();
                    self.joined_room(room);
                }
                Ok(())
            }
            Err(e) => {
                tracing::debug!(vu = self.vu, error = %e, "session failed to connect");
                if reconnect {
                    metrics.error(ErrorKind::Reconnect);
                } else {
                    metrics.session_failed(fail_reason(&e));
                }
                Err(Abort)
            }
        }
    }

    /// Connect options for this user's node, with its cookie.
    fn node_options(&self, timeout: Duration) -> Option<ConnectOptions> {
        let node = &self.shared.nodes[self.node];
        let mut options = node.options.clone();
        options.timeout = timeout;
        options.local_address = node.local_address(self.vu);
        match options.add_cookies(self.cookie()) {
            Ok(()) => Some(options),
            Err(e) => {
                tracing::warn!(vu = self.vu, error = %e, "unusable session cookie");
                None
            }
        }
    }

    /// Leave every room and close the session (a client disconnect), without losing messages
    /// that were sent while this session was still counted in a room.
    async fn close(&mut self) {
        if self.session.is_none() {
            return;
        }
        let rooms = self.left_all_rooms(true);
        if !rooms.is_empty() {
            self.settle_sends(&rooms).await;
            self.await_owed_deliveries().await;
            self.barrier(&rooms[0]).await;
        }
        self.drain_ready();
        if let Some(live) = self.session.take() {
            live.handle.disconnect().await;
            self.shared.metrics.session_closed(DisconnectKind::Client);
        }
        self.stays.clear();
        self.joining.clear();
    }

    async fn post_message(
        &mut self,
        chat_id: &super::template::Template,
        content: &super::template::Template,
        iteration: u64,
    ) {
        let room = self.render(chat_id, iteration, "");
        let sent_at = Instant::now();
        let ticket = self.shared.metrics.rooms.send_started(&room);
        let (nonce, expected) = self
            .shared
            .metrics
            .message_sent_expecting(&room, sent_at.into_std());
        self.buf.clear();
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce: &nonce,
        };
        content.render_into(&vars, &mut self.buf);
        // The rendered buffer moves into the request and back: no copy of the content per post.
        let request = PostMessageRequest {
            content: std::mem::take(&mut self.buf),
        };
        let result = self.shared.nodes[self.node]
            .api(self.vu)
            .post_message(self.cookie(), &room, &request)
            .await;
        self.buf = request.content;
        // Withdrawn before the post counts as answered: a session waiting for the room's posts
        // to settle then knows not to wait for this one's message.
        if let Err(e) = &result {
            tracing::debug!(vu = self.vu, error = %e, %room, "post_message failed");
            self.shared.metrics.error(ErrorKind::Http);
            self.shared.metrics.message_withdrawn(expected);
        }
        self.shared.metrics.rooms.send_finished(&room, ticket);
        self.recorder
            .record_since(Latency::Http, sent_at.into_std());
    }
}

#[cfg(test)]
mod tests {
    use super::first_node;

    #[test]
    fn a_room_spans_successive_nodes_and_the_nodes_fill_evenly() {
        // c100k's shape per worker: 16,667 users in 1,667 rooms of 10, over 7 nodes.
        let (users, rooms, nodes) = (16_667u64, 1_667usize, 7usize);
        let mut per_node = vec![0u64; nodes];
        for local in 0..users {
            per_node[first_node(local, rooms, nodes)] += 1;
        }
        let even = users / nodes as u64;
        for (node, held) in per_node.iter().enumerate() {
            assert!(
                held.abs_diff(even) <= even / 100,
                "node {node}: {held} of {per_node:?}"
            );
        }
        // Room 3's members: successive nodes from node 3.
        let room3: Vec<usize> = (0..10)
            .map(|m| first_node(m * rooms as u64 + 3, rooms, nodes))
            .collect();
        assert_eq!(room3, vec![3, 4, 5, 6, 0, 1, 2, 3, 4, 5]);
        // No rooms: round robin.
        assert_eq!(
            (0..4).map(|l| first_node(l, 0, 3)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0]
        );
    }
}
