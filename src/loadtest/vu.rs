//! One virtual user: runs a flow's steps against its Socket.IO session and records what it sees.
//!
//! Events are stamped with their arrival time by the client's session task, so a user that is
//! busy with another step (an HTTP post, a think) still measures deliveries exactly; it reads
//! them at its next await point.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::metrics::{ErrorKind, FailReason, Latency, Metrics, Recorder};
use super::scenario::{Ack, Flow, Payload, Repeat, Step, Think};
use super::template::Vars;
use crate::client::rooms::{self, RoomAction, RoomOutcome};
use crate::client::{
    self, ApiClient, ConnectOptions, DisconnectKind, ErrorClass, Session, SessionEvent,
    SessionHandle,
};
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM, PostMessageRequest, SERVER_MESSAGE};

/// How long `join` and `leave` wait for the reference server's acknowledgement.
pub const ROOM_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between reconnect attempts: doubling from the start to the cap, plus jitter.
const RECONNECT_BACKOFF_START: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// `wait_for` this pseudo-event to wait until the session is lost (e.g. a server restart).
pub const DISCONNECT_EVENT: &str = "disconnect";
/// Received events kept for a later `wait_for`; older ones are dropped past this.
const PENDING_EVENTS: usize = 256;
/// The longest a leaving session waits for posts to its rooms that are still in flight.
const SEND_SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// How long a closing session waits for the ack used as a barrier: while it is not known
/// whether the server acknowledges at all, and once it is known that it does (a loaded server
/// may take seconds, and giving up early would lose messages that are on their way).
const BARRIER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);
/// Without acks (production), how long a closing session keeps reading instead.
const LINGER_WITHOUT_ACKS: Duration = Duration::from_millis(100);

/// Whether the target answers room acks: unknown until the first barrier tells.
const ACKS_UNKNOWN: u8 = 0;
const ACKS_YES: u8 = 1;
const ACKS_NO: u8 = 2;

/// What every virtual user of a run shares.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub options: ConnectOptions,
    pub cookies: Arc<[String]>,
    pub rooms: Arc<[String]>,
    /// The server puts each session in its user's own dev room on connect.
    pub auto_joined: bool,
    /// The target's REST API (`post_message`), one connection pool for every user.
    pub api: ApiClient,
    /// `ACKS_*`: whether the server acknowledges room events, learnt at the first barrier.
    pub room_acks: std::sync::atomic::AtomicU8,
}

/// A stay of this session in a room, as sequence numbers of the room table. A delivery counts
/// only if the message was sent inside a stay: exactly when the sender counted this session as
/// a receiver.
struct Stay {
    room: String,
    since: u64,
    until: Option<u64>,
    /// When the stay ended, for pruning old ones.
    ended_at: Option<Instant>,
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
    session: Option<Live>,
    /// Rooms this session is or was in (each open stay counted once in the run's room table).
    stays: Vec<Stay>,
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

impl VirtualUser {
    pub fn new(shared: Arc<Shared>, vu: u64, scheduled: Option<Instant>) -> Self {
        let room = if shared.rooms.is_empty() {
            String::new()
        } else {
            shared.rooms[(vu % shared.rooms.len() as u64) as usize].clone()
        };
        let recorder = shared.metrics.recorder();
        VirtualUser {
            shared,
            vu,
            room,
            session: None,
            stays: Vec::new(),
            pending: VecDeque::new(),
            recorder,
            scheduled,
            next_nonce: 0,
            buf: String::new(),
        }
    }

    /// Run one pass of the flow, then close the session if the flow left it open.
    pub async fn run(&mut self, flow: &Flow) {
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
        &self.shared.cookies[(self.vu % self.shared.cookies.len() as u64) as usize]
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
        let mut options = self.shared.options.clone();
        options.timeout = timeout;
        let cookie = self.cookie();
        if let Err(e) = options.add_cookies(cookie) {
            tracing::warn!(vu = self.vu, error = %e, "unusable session cookie");
            metrics.session_failed(FailReason::Setup);
            return Err(Abort);
        }
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
                    options.timeout = deadline.saturating_duration_since(Instant::now());
                }
                other => break other,
            }
        };
        match result {
            Ok(session) => {
                let (handle, events, info) = session.into_parts();
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

    fn in_room(&self, room: &str) -> bool {
        self.stays
            .iter()
            .any(|s| s.until.is_none() && s.room.eq_ignore_ascii_case(room))
    }

    fn joined_room(&mut self, room: String) {
        if self.in_room(&room) {
            return;
        }
        // Stays that ended long ago can no longer match a message in flight.
        let horizon = Instant::now() - Duration::from_secs(30);
        self.stays
            .retain(|s| s.ended_at.is_none_or(|t| t > horizon));
        // Rooms outside the run's table are not tracked: nothing is expected there.
        if let Some(since) = self.shared.metrics.rooms.join(&room) {
            self.stays.push(Stay {
                room,
                since,
                until: None,
                ended_at: None,
            });
        }
    }

    /// End the stay in `room` in the table, before the server hears of it: messages sent from
    /// now on do not count this session.
    fn left_room(&mut self, room: &str) -> bool {
        let metrics = &self.shared.metrics;
        let mut left = false;
        for stay in self
            .stays
            .iter_mut()
            .filter(|s| s.until.is_none() && s.room.eq_ignore_ascii_case(room))
        {
            stay.until = metrics.rooms.leave(&stay.room);
            stay.ended_at = Some(Instant::now());
            left = true;
        }
        left
    }

    fn left_all_rooms(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        for stay in self.stays.iter_mut().filter(|s| s.until.is_none()) {
            stay.until = self.shared.metrics.rooms.leave(&stay.room);
            stay.ended_at = Some(Instant::now());
            left.push(stay.room.clone());
        }
        left
    }

    /// Wait until no post to these rooms is in flight: a post that counted this session as a
    /// receiver has then been broadcast, and its message is on the way to this socket.
    async fn settle_sends(&mut self, rooms: &[String]) {
        let watermark = self.shared.metrics.rooms.send_watermark();
        let limit = Instant::now() + SEND_SETTLE_LIMIT;
        while Instant::now() < limit
            && !rooms
                .iter()
                .all(|r| self.shared.metrics.rooms.sends_settled(r, watermark))
        {
            self.pump_until(Instant::now() + Duration::from_millis(1))
                .await;
        }
    }

    /// Leave every room and close the session (a client disconnect), without losing messages
    /// that were sent while this session was still counted in a room.
    async fn close(&mut self) {
        if self.session.is_none() {
            return;
        }
        let rooms = self.left_all_rooms();
        if !rooms.is_empty() {
            self.settle_sends(&rooms).await;
            self.barrier(&rooms[0]).await;
        }
        self.drain_ready();
        if let Some(live) = self.session.take() {
            live.handle.disconnect().await;
            self.shared.metrics.session_closed(DisconnectKind::Client);
        }
        self.stays.clear();
    }

    /// Make sure every message the server queued for this socket so far has been read: the
    /// reference server's ack to a room event comes after them on the same socket. A server
    /// that never acks (production) gets a short linger instead, learnt once per run.
    async fn barrier(&mut self, room: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(live) = &self.session else { return };
        let known = self.shared.room_acks.load(Relaxed);
        if known == ACKS_NO {
            self.pump_until(Instant::now() + LINGER_WITHOUT_ACKS).await;
            return;
        }
        let timeout = if known == ACKS_YES {
            BARRIER_TIMEOUT
        } else {
            BARRIER_PROBE_TIMEOUT
        };
        let answer = rooms::request(&live.handle, RoomAction::Leave, room, timeout).await;
        match answer {
            Ok(RoomOutcome::Unconfirmed) if known == ACKS_UNKNOWN => {
                tracing::info!(
                    "the server does not acknowledge room events; closing sessions linger instead"
                );
                self.shared.room_acks.store(ACKS_NO, Relaxed);
            }
            // Messages still on their way may now be missed in the count: say so.
            Ok(RoomOutcome::Unconfirmed) => self.shared.metrics.error(ErrorKind::AckTimeout),
            // Any answer, a refusal included, comes after what the server queued before it.
            Ok(RoomOutcome::Done | RoomOutcome::Refused(_)) => {
                self.shared.room_acks.store(ACKS_YES, Relaxed)
            }
            Err(_) => {}
        }
        self.drain_ready();
    }

    /// `join` / `leave`: ask for the reference server's acknowledgement and keep the room
    /// table right. A server that never acknowledges (production) shows up as ack timeouts;
    /// use `emit` for those.
    async fn room_event(&mut self, action: RoomAction, room: String) {
        if self.session.is_none() {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        }
        let leaving = action == RoomAction::Leave;
        if leaving && self.left_room(&room) {
            self.settle_sends(std::slice::from_ref(&room)).await;
        }
        let Some(live) = &self.session else {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        };
        let started = Instant::now();
        let answer = rooms::request(&live.handle, action, &room, ROOM_ACK_TIMEOUT).await;
        match answer {
            Ok(RoomOutcome::Unconfirmed) => self.shared.metrics.error(ErrorKind::AckTimeout),
            Ok(outcome) => {
                self.recorder.record_since(Latency::Ack, started.into_std());
                self.shared
                    .room_acks
                    .store(ACKS_YES, std::sync::atomic::Ordering::Relaxed);
                match outcome {
                    RoomOutcome::Done if !leaving => self.joined_room(room),
                    RoomOutcome::Done => {}
                    refused => {
                        let event = action.event();
                        tracing::debug!(vu = self.vu, %room, ?refused, "{event} refused");
                        self.shared.metrics.error(ErrorKind::AckMismatch);
                    }
                }
            }
            Err(_) => self.shared.metrics.error(ErrorKind::Send),
        }
        // Messages that arrived before the ack belong to the stay that just ended or began.
        self.drain_ready();
    }

    async fn emit(
        &mut self,
        event: &str,
        data: Option<&Payload>,
        ack: Option<&Ack>,
        iteration: u64,
    ) {
        // A nonce unique to this step, so payloads can be told apart; emits are not counted as
        // chat messages (only post_message has a room to expect deliveries in).
        self.next_nonce += 1;
        let nonce = format!(
            "e{:x}.{:x}.{:x}",
            self.shared.metrics.run_id(),
            self.vu,
            self.next_nonce
        );
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce: &nonce,
        };
        let args: Vec<Value> = data.map(|d| vec![d.render(&vars)]).unwrap_or_default();
        let room = args
            .first()
            .and_then(|a| a.get("chat_id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(live) = &self.session else {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        };
        match ack {
            Some(ack) => {
                let started = Instant::now();
                match live.handle.emit_with_ack(event, args, ack.timeout).await {
                    Ok(answer) => {
                        self.recorder.record_since(Latency::Ack, started.into_std());
                        let vars = Vars {
                            vu: self.vu,
                            iteration,
                            room: &self.room,
                            nonce: &nonce,
                        };
                        let first = answer.first().unwrap_or(&Value::Null);
                        if ack
                            .expect
                            .as_ref()
                            .is_some_and(|e| !e.matches(&vars, first))
                        {
                            self.shared.metrics.error(ErrorKind::AckMismatch);
                        }
                    }
                    Err(client::ClientError::AckTimeout(_)) => {
                        self.shared.metrics.error(ErrorKind::AckTimeout)
                    }
                    Err(_) => self.shared.metrics.error(ErrorKind::Send),
                }
            }
            None => {
                if live.handle.emit(event, args).is_err() {
                    self.shared.metrics.error(ErrorKind::Send);
                    return;
                }
                // A raw room event (production has no acks): assume it worked.
                if let Some(room) = room {
                    if event == CLIENT_JOIN_ROOM {
                        self.joined_room(room);
                    } else if event == CLIENT_LEAVE_ROOM {
                        let _ = self.left_room(&room);
                    }
                }
            }
        }
    }

    async fn wait_for(
        &mut self,
        event: &str,
        count: u32,
        matching: Option<&Payload>,
        timeout: Duration,
        iteration: u64,
    ) {
        let started = Instant::now();
        let deadline = started + timeout;
        if event == DISCONNECT_EVENT {
            self.wait_for_disconnect(started, deadline).await;
            return;
        }
        let mut needed = count;
        loop {
            needed -= self.take_matching(event, matching, needed, iteration);
            if needed == 0 {
                self.recorder
                    .record_since(Latency::WaitFor, started.into_std());
                return;
            }
            if self.session.is_none() || !self.read_one(deadline).await {
                self.shared.metrics.error(ErrorKind::WaitForTimeout);
                return;
            }
        }
    }

    /// Until the session is lost (or already is).
    async fn wait_for_disconnect(&mut self, started: Instant, deadline: Instant) {
        loop {
            if self.session.is_none() {
                self.recorder
                    .record_since(Latency::WaitFor, started.into_std());
                return;
            }
            if !self.read_one(deadline).await {
                self.shared.metrics.error(ErrorKind::WaitForTimeout);
                return;
            }
        }
    }

    /// Remove up to `limit` pending events that match; answers how many.
    fn take_matching(
        &mut self,
        event: &str,
        matching: Option<&Payload>,
        limit: u32,
        iteration: u64,
    ) -> u32 {
        let vars = Vars {
            vu: self.vu,
            iteration,
            room: &self.room,
            nonce: "",
        };
        let mut taken = 0;
        self.pending.retain(|(name, first)| {
            if taken < limit && name == event && matching.is_none_or(|p| p.matches(&vars, first)) {
                taken += 1;
                false
            } else {
                true
            }
        });
        taken
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
        let result = self
            .shared
            .api
            .post_message(self.cookie(), &room, &request)
            .await;
        self.buf = request.content;
        self.shared.metrics.rooms.send_finished(&room, ticket);
        self.recorder
            .record_since(Latency::Http, sent_at.into_std());
        if let Err(e) = result {
            tracing::debug!(vu = self.vu, error = %e, %room, "post_message failed");
            self.shared.metrics.error(ErrorKind::Http);
            self.shared.metrics.message_withdrawn(expected);
        }
    }

    /// Read events until `deadline` (a think): deliveries are timed and counted meanwhile.
    async fn pump_until(&mut self, deadline: Instant) {
        while self.session.is_some() {
            if !self.read_one(deadline).await {
                return;
            }
        }
        tokio::time::sleep_until(deadline).await;
    }

    /// Read and absorb one event, or notice that the session ended; `false` when `deadline`
    /// came first (or there is no session).
    async fn read_one(&mut self, deadline: Instant) -> bool {
        let Some(live) = &mut self.session else {
            return false;
        };
        let next = tokio::time::timeout_at(deadline, live.events.recv()).await;
        match next {
            Ok(Some(ev)) => self.absorb(ev),
            Ok(None) => self.lost_session(client::DisconnectReason::TransportClose),
            Err(_) => return false,
        }
        true
    }

    /// Whatever has already arrived, without waiting.
    fn drain_ready(&mut self) {
        while let Some(live) = &mut self.session {
            match live.events.try_recv() {
                Ok(ev) => self.absorb(ev),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.lost_session(client::DisconnectReason::TransportClose)
                }
            }
        }
    }

    fn absorb(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Event(e) => {
                self.shared.metrics.message_received();
                if e.name == SERVER_MESSAGE
                    && let Some(message) = e.args.first()
                    && let Some(content) = message.get("content").and_then(Value::as_str)
                {
                    let room = message.get("chat_id").and_then(Value::as_str).unwrap_or("");
                    let stays = &self.stays;
                    self.recorder.delivered_if(content, e.received, |sent| {
                        stays.iter().any(|s| {
                            s.room.eq_ignore_ascii_case(room)
                                && s.since < sent
                                && s.until.is_none_or(|u| sent < u)
                        })
                    });
                }
                if let (Some(id), Some(live)) = (e.ack_id, &self.session) {
                    // A server that asks for an ack gets an empty one, as a browser client would.
                    let _ = live.handle.ack(id, Vec::new());
                }
                if self.pending.len() == PENDING_EVENTS {
                    self.pending.pop_front();
                }
                let first = e.args.into_iter().next().unwrap_or(Value::Null);
                self.pending.push_back((e.name, first));
            }
            SessionEvent::Ping { .. } => {}
            SessionEvent::Disconnected(reason) => self.lost_session(reason),
        }
    }

    /// The server or the network ended the session.
    fn lost_session(&mut self, reason: client::DisconnectReason) {
        if self.session.take().is_some() {
            tracing::debug!(vu = self.vu, %reason, "session lost");
            self.shared.metrics.session_closed(reason.kind());
            self.left_all_rooms();
        }
    }
}
