//! Who is in which room, so that every message sent knows how many deliveries it should make.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Which sessions are joined to which known room, so a sent message knows how many deliveries
/// to expect. The room set is fixed at setup, so lookups need no lock.
#[derive(Debug, Default)]
pub struct RoomTable {
    index: HashMap<String, usize>,
    /// Sessions in each room. A lock rather than an atomic: a send and a join or leave of the
    /// same room must be ordered, so that "was this session counted for that message" has one
    /// answer on both sides (see [`RoomTable::join`]).
    joined: Vec<Mutex<u64>>,
    /// One sequence for sends, joins and leaves of every room, taken under the room's lock.
    clock: AtomicU64,
    /// Tickets of the posts to each room whose HTTP answer has not come back yet: the server
    /// may not have broadcast them, so a session leaving the room waits for the ones that
    /// started before it left (and only those: at high rates a room is rarely idle).
    sending: Vec<Mutex<BTreeSet<u64>>>,
    next_ticket: AtomicU64,
}

impl RoomTable {
    pub fn new<I: IntoIterator<Item = String>>(rooms: I) -> RoomTable {
        let mut index = HashMap::new();
        for room in rooms {
            let next = index.len();
            index.entry(room.to_ascii_lowercase()).or_insert(next);
        }
        let joined = (0..index.len()).map(|_| Mutex::new(0)).collect();
        let sending = (0..index.len()).map(|_| Mutex::default()).collect();
        RoomTable {
            index,
            joined,
            sending,
            next_ticket: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }
    }

    fn position(&self, room: &str) -> Option<usize> {
        match self.index.get(room) {
            Some(i) => Some(*i),
            // Room names are lowercase UUIDs; only a hand-written id needs the slow path.
            None => self.index.get(&room.to_ascii_lowercase()).copied(),
        }
    }

    fn slot(&self, room: &str) -> Option<std::sync::MutexGuard<'_, u64>> {
        let slot = self.joined.get(self.position(room)?)?;
        Some(slot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn in_flight(&self, room: &str) -> Option<std::sync::MutexGuard<'_, BTreeSet<u64>>> {
        let slot = self.sending.get(self.position(room)?)?;
        Some(slot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A post to `room` is on its way to the server; answers its ticket for [`Self::send_finished`].
    pub fn send_started(&self, room: &str) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Relaxed);
        if let Some(mut set) = self.in_flight(room) {
            set.insert(ticket);
        }
        ticket
    }

    /// The server answered the post with this ticket: its broadcast is queued on every socket
    /// that was in the room.
    pub fn send_finished(&self, room: &str, ticket: u64) {
        if let Some(mut set) = self.in_flight(room) {
            set.remove(&ticket);
        }
    }

    /// The ticket the next post will get: posts that started before now have smaller ones.
    pub fn send_watermark(&self) -> u64 {
        self.next_ticket.load(Relaxed)
    }

    /// Whether every post to `room` that started before `watermark` has been answered.
    pub fn sends_settled(&self, room: &str, watermark: u64) -> bool {
        self.in_flight(room)
            .is_none_or(|set| set.first().is_none_or(|first| *first >= watermark))
    }

    /// A session joined `room`: answers the sequence number of the join, or `None` for a room
    /// outside the table (ids the scenario made up), which is not tracked. A message counts this
    /// session as a receiver exactly when its sequence number (in its nonce) lies between the
    /// session's join and leave numbers.
    pub fn join(&self, room: &str) -> Option<u64> {
        let mut members = self.slot(room)?;
        *members += 1;
        Some(self.clock.fetch_add(1, Relaxed))
    }

    /// A session left `room` or disconnected while joined: the sequence number of the leave.
    pub fn leave(&self, room: &str) -> Option<u64> {
        let mut members = self.slot(room)?;
        // Never wrap below zero if a runner reports a leave twice.
        *members = members.saturating_sub(1);
        Some(self.clock.fetch_add(1, Relaxed))
    }

    /// A message to `room` is being sent: the receivers to expect and its sequence number,
    /// ordered against joins and leaves of the room.
    pub(super) fn send(&self, room: &str) -> (u64, u64) {
        match self.slot(room) {
            Some(members) => (*members, self.clock.fetch_add(1, Relaxed)),
            None => (0, self.clock.fetch_add(1, Relaxed)),
        }
    }
}
