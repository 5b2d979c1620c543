//! The rooms a virtual user is in, kept in step with the run's room table: a delivery counts only
//! for a session the sender counted as a receiver. Joining and leaving (acknowledged by the
//! reference server), joins that land on a server that listens late and never acknowledges
//! (production), and the barrier a closing session waits for so that no message already on its
//! way is lost from the count.
//!
//! A session counts in a room only from when its join is known to be in: at the
//! acknowledgement, or, where none comes, at the first message from that room. Messages sent
//! before are neither expected from nor counted for it, so the accounting stays exact whenever
//! the server actually let it in.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::time::Instant;

use super::VirtualUser;
use crate::client::rooms::{self, Resend, RoomAction, RoomOutcome};
use crate::loadtest::metrics::{ErrorKind, Latency};
use crate::protocol::{CLIENT_JOIN_ROOM, CLIENT_LEAVE_ROOM};

/// How long `join` and `leave` wait for the reference server's acknowledgement.
pub const ROOM_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a leaving session waits for posts to its rooms that are still in flight.
const SEND_SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// How long a closing session waits for the ack used as a barrier: while it is not known
/// whether the server acknowledges at all, and once it is known that it does (a loaded server
/// may take seconds, and giving up early would lose messages that are on their way).
const BARRIER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leaving session keeps reading for messages still owed to it (see
/// [`VirtualUser::await_owed_deliveries`]); one that has not come by then counts as lost.
const OWED_LIMIT: Duration = Duration::from_secs(5);
/// While waiting for owed messages, how often a session looks again without an event: a post
/// withdrawn by another virtual user changes what it is owed without waking it.
const OWED_RECHECK: Duration = Duration::from_millis(100);
/// Without acks (production), how long a closing session keeps reading instead.
const LINGER_WITHOUT_ACKS: Duration = Duration::from_millis(100);

/// When an unanswered join is sent again: the client's default schedule.
static RESEND: LazyLock<Resend> = LazyLock::new(Resend::default);

/// Whether the target answers room acks: unknown until the first join or barrier tells.
const ACKS_UNKNOWN: u8 = 0;
const ACKS_YES: u8 = 1;
const ACKS_NO: u8 = 2;

/// A stay of this session in a room, as sequence numbers of the room table. A delivery counts
/// only if the message was sent inside a stay: exactly when the sender counted this session as
/// a receiver.
pub(super) struct Stay {
    pub(super) room: String,
    pub(super) since: u64,
    pub(super) until: Option<u64>,
    /// Posts sent to the room before the join, and before the leave: their difference is how
    /// many messages counted this session as a receiver.
    sends_since: u64,
    sends_until: Option<u64>,
    /// Deliveries counted for this stay.
    pub(super) received: u64,
    /// The session ended the stay itself and is still open: it waits for what the stay is
    /// owed before telling the server (see [`VirtualUser::await_owed_deliveries`]).
    awaiting: bool,
    /// When the stay ended, for pruning old ones.
    ended_at: Option<Instant>,
}

/// A join sent without an answer: sent again on the resend schedule (a server that listens
/// late drops the first ones) until a message from the room shows it is in.
pub(super) struct Joining {
    room: String,
    /// When the first join was sent; the schedule's offsets count from here.
    started: Instant,
    /// Joins sent so far (the index of the next offset).
    sent: usize,
}

impl Stay {
    fn end(&mut self, mark: Option<crate::loadtest::metrics::RoomMark>, awaiting: bool) {
        self.until = mark.map(|m| m.seq);
        self.sends_until = mark.map(|m| m.sends);
        self.awaiting = awaiting && mark.is_some();
        self.ended_at = Some(Instant::now());
    }
}

impl VirtualUser {
    fn in_room(&self, room: &str) -> bool {
        self.stays
            .iter()
            .any(|s| s.until.is_none() && s.room.eq_ignore_ascii_case(room))
    }

    pub(super) fn joined_room(&mut self, room: String) {
        self.joining.retain(|j| !j.room.eq_ignore_ascii_case(&room));
        if self.in_room(&room) {
            return;
        }
        // Stays that ended long ago can no longer match a message in flight.
        let horizon = Instant::now() - Duration::from_secs(30);
        self.stays
            .retain(|s| s.ended_at.is_none_or(|t| t > horizon));
        // Rooms outside the run's table are not tracked: nothing is expected there.
        if let Some(mark) = self.shared.metrics.rooms.join(&room) {
            self.stays.push(Stay {
                room,
                since: mark.seq,
                until: None,
                sends_since: mark.sends,
                sends_until: None,
                received: 0,
                awaiting: false,
                ended_at: None,
            });
        }
    }

    /// End the stay in `room` in the table, before the server hears of it: messages sent from
    /// now on do not count this session.
    pub(super) fn left_room(&mut self, room: &str) -> bool {
        // A join still being sent again would put the session back in the room it leaves.
        self.joining.retain(|j| !j.room.eq_ignore_ascii_case(room));
        let metrics = &self.shared.metrics;
        let mut left = false;
        for stay in self
            .stays
            .iter_mut()
            .filter(|s| s.until.is_none() && s.room.eq_ignore_ascii_case(room))
        {
            stay.end(metrics.rooms.leave(&stay.room), true);
            left = true;
        }
        left
    }

    /// End every stay in the table. `awaiting`: the session is still open and will wait for
    /// what the stays are owed (a close); not when the session is already gone.
    pub(super) fn left_all_rooms(&mut self, awaiting: bool) -> Vec<String> {
        self.joining.clear();
        let mut left = Vec::new();
        for stay in self.stays.iter_mut().filter(|s| s.until.is_none()) {
            stay.end(self.shared.metrics.rooms.leave(&stay.room), awaiting);
            left.push(stay.room.clone());
        }
        left
    }

    /// Wait until no post to these rooms is in flight: a post that counted this session as a
    /// receiver has then been broadcast (or withdrawn), and its message is on the way to this
    /// socket. Woken by each answered post and by this session's own events, never by a timer:
    /// thousands of sessions closing together must not spin.
    pub(super) async fn settle_sends(&mut self, rooms: &[String]) {
        let metrics = Arc::clone(&self.shared.metrics);
        let table = &metrics.rooms;
        let watermark = table.send_watermark();
        let limit = Instant::now() + SEND_SETTLE_LIMIT;
        for room in rooms {
            let Some(answered) = table.answered(room) else {
                continue;
            };
            loop {
                let notified = answered.notified();
                tokio::pin!(notified);
                // Registered before the check, so an answer in between still wakes us.
                notified.as_mut().enable();
                if table.sends_settled(room, watermark) || self.session.is_none() {
                    break;
                }
                tokio::select! {
                    _ = &mut notified => {}
                    read = self.read_one(limit) => {
                        if !read && Instant::now() >= limit {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Messages still owed to the stays this session ended itself: sent while it counted as a
    /// receiver, neither withdrawn nor arrived yet.
    fn deliveries_owed(&self) -> u64 {
        let rooms = &self.shared.metrics.rooms;
        self.stays
            .iter()
            .filter(|s| s.awaiting)
            .filter_map(|s| {
                let (until, sends_until) = (s.until?, s.sends_until?);
                let sent = sends_until.saturating_sub(s.sends_since);
                let withdrawn = rooms.withdrawn_between(&s.room, s.since, until);
                Some(sent.saturating_sub(withdrawn).saturating_sub(s.received))
            })
            .sum()
    }

    /// Before telling the server it leaves (or closing), keep reading until every message that
    /// counted this session as a receiver has arrived, for at most [`OWED_LIMIT`]. With several
    /// nodes, a post answered by another node may still be crossing the adapter when its HTTP
    /// answer is back; a leave that reached this session's node first would take the socket out
    /// of the room before the message comes, and the count would call it lost (7 of 907,006
    /// deliveries in a c100k run). Call after [`Self::settle_sends`], when every post that
    /// counted the session has been answered or withdrawn.
    pub(super) async fn await_owed_deliveries(&mut self) {
        let limit = Instant::now() + OWED_LIMIT;
        while self.session.is_some() {
            let owed = self.deliveries_owed();
            if owed == 0 {
                break;
            }
            let now = Instant::now();
            if now >= limit {
                tracing::debug!(vu = self.vu, owed, "closing with messages still owed");
                break;
            }
            self.read_one((now + OWED_RECHECK).min(limit)).await;
        }
        for stay in &mut self.stays {
            stay.awaiting = false;
        }
    }

    /// Make sure every message the server queued for this socket so far has been read: the
    /// reference server's ack to a room event comes after them on the same socket. A server
    /// that never acks (production) gets a short linger instead, learnt once per run.
    pub(super) async fn barrier(&mut self, room: &str) {
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
            Ok(RoomOutcome::Unconfirmed) if known == ACKS_UNKNOWN => self.no_acks(),
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

    /// The server gave no acknowledgement where one was asked for: remember it for the run,
    /// and say so once (many sessions find out at the same moment).
    fn no_acks(&self) {
        let first = self
            .shared
            .room_acks
            .compare_exchange(ACKS_UNKNOWN, ACKS_NO, Relaxed, Relaxed)
            .is_ok();
        if first {
            tracing::info!(
                "the server does not acknowledge room events: joins are sent again until a \
                 message from the room arrives (a session counts in a room from then), and \
                 closing sessions linger instead of waiting for an acknowledgement"
            );
        }
    }

    /// `join` / `leave`: ask for the reference server's acknowledgement, sending again on the
    /// resend schedule while none comes, and keep the room table right. On a server known not
    /// to acknowledge (production), a join is sent without asking and lands as `emit` does.
    pub(super) async fn room_event(&mut self, action: RoomAction, room: String) {
        if self.session.is_none() {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        }
        let leaving = action == RoomAction::Leave;
        if leaving && self.left_room(&room) {
            self.settle_sends(std::slice::from_ref(&room)).await;
            self.await_owed_deliveries().await;
        }
        let known = self.shared.room_acks.load(Relaxed);
        if known == ACKS_NO {
            if leaving {
                // Nothing would answer; the session left the room table above already.
                if let Some(live) = &self.session
                    && live
                        .handle
                        .emit(
                            CLIENT_LEAVE_ROOM,
                            vec![serde_json::json!({ "chat_id": room })],
                        )
                        .is_err()
                {
                    self.shared.metrics.error(ErrorKind::Send);
                }
            } else {
                self.send_join(room);
            }
            return;
        }
        let Some(live) = &self.session else {
            self.shared.metrics.error(ErrorKind::Send);
            return;
        };
        let ack_wait = if known == ACKS_YES {
            ROOM_ACK_TIMEOUT
        } else {
            BARRIER_PROBE_TIMEOUT
        };
        let started = Instant::now();
        // A server that acknowledges is answered the first time; only while that is unknown
        // can a late listener have dropped it.
        let once = Resend::once();
        let resend = if known == ACKS_YES { &once } else { &*RESEND };
        // Boxed: the landing's state would otherwise be part of every user's step future
        // for the whole session, holding and thinking included.
        let answer = Box::pin(rooms::land(&live.handle, action, &room, resend, ack_wait)).await;
        match answer {
            Ok(landing) if landing.outcome == RoomOutcome::Unconfirmed => {
                if known == ACKS_UNKNOWN {
                    self.no_acks();
                } else {
                    self.shared.metrics.error(ErrorKind::AckTimeout);
                }
                if !leaving {
                    // Every send went out; the first message from the room proves one landed.
                    self.joining.push(Joining {
                        room,
                        started,
                        sent: resend.offsets().len(),
                    });
                }
            }
            Ok(landing) => {
                self.recorder.record_since(Latency::Ack, started.into_std());
                self.shared.room_acks.store(ACKS_YES, Relaxed);
                match landing.outcome {
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

    /// A join without an acknowledgement asked (`emit: clientJoinRoom`, or `join` on a server
    /// that never answers): sent now and again on the resend schedule until a message from the
    /// room arrives.
    pub(super) fn send_join(&mut self, room: String) {
        if self.in_room(&room) || self.joining.iter().any(|j| j.room == room) {
            return;
        }
        self.joining.push(Joining {
            room,
            started: Instant::now(),
            sent: 0,
        });
        self.resend_due();
    }

    /// Send the joins that are due on the schedule (one per join however late this runs: a
    /// busy user sends one, not a burst).
    pub(super) fn resend_due(&mut self) {
        let Some(live) = &self.session else { return };
        let offsets = RESEND.offsets();
        let now = Instant::now();
        for join in &mut self.joining {
            if join.sent >= offsets.len() || join.started + offsets[join.sent] > now {
                continue;
            }
            if live
                .handle
                .emit(
                    CLIENT_JOIN_ROOM,
                    vec![serde_json::json!({ "chat_id": join.room })],
                )
                .is_err()
            {
                self.shared.metrics.error(ErrorKind::Send);
            }
            while join.sent < offsets.len() && join.started + offsets[join.sent] <= now {
                join.sent += 1;
            }
        }
    }

    /// When the next join is due to be sent again.
    pub(super) fn next_resend(&self) -> Option<Instant> {
        if self.joining.is_empty() {
            return None;
        }
        let offsets = RESEND.offsets();
        self.joining
            .iter()
            .filter_map(|j| offsets.get(j.sent).map(|o| j.started + *o))
            .min()
    }

    /// A message from `room` arrived: a join of it that was waiting for proof is in, and the
    /// session counts in the room from now.
    pub(super) fn message_from(&mut self, room: &str) {
        if let Some(i) = self
            .joining
            .iter()
            .position(|j| j.room.eq_ignore_ascii_case(room))
        {
            let join = self.joining.swap_remove(i);
            self.joined_room(join.room);
        }
    }
}
