//! The rooms a virtual user is in, kept in step with the run's room table: a delivery counts only
//! for a session the sender counted as a receiver. Joining and leaving (acknowledged by the
//! reference server), and the barrier a closing session waits for so that no message already on
//! its way is lost from the count.

use std::time::Duration;

use tokio::time::Instant;

use super::VirtualUser;
use crate::client::rooms::{self, RoomAction, RoomOutcome};
use crate::loadtest::metrics::{ErrorKind, Latency};

/// How long `join` and `leave` wait for the reference server's acknowledgement.
pub const ROOM_ACK_TIMEOUT: Duration = Duration::from_secs(5);
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

/// A stay of this session in a room, as sequence numbers of the room table. A delivery counts
/// only if the message was sent inside a stay: exactly when the sender counted this session as
/// a receiver.
pub(super) struct Stay {
    pub(super) room: String,
    pub(super) since: u64,
    pub(super) until: Option<u64>,
    /// When the stay ended, for pruning old ones.
    ended_at: Option<Instant>,
}

impl VirtualUser {
    fn in_room(&self, room: &str) -> bool {
        self.stays
            .iter()
            .any(|s| s.until.is_none() && s.room.eq_ignore_ascii_case(room))
    }

    pub(super) fn joined_room(&mut self, room: String) {
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
    pub(super) fn left_room(&mut self, room: &str) -> bool {
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

    pub(super) fn left_all_rooms(&mut self) -> Vec<String> {
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
    pub(super) async fn settle_sends(&mut self, rooms: &[String]) {
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

    /// Make sure every message the server queued for this socket so far has been read: the
    /// reference server's ack to a room event comes after them on the same socket. A server
    /// that never acks (production) gets a short linger instead, learnt once per run.
    pub(super) async fn barrier(&mut self, room: &str) {
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
    pub(super) async fn room_event(&mut self, action: RoomAction, room: String) {
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
}
