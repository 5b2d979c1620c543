//! Who is in which room, so that every message sent knows how many deliveries it should make.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::Notify;

/// Which sessions are joined to which known room, so a sent message knows how many deliveries
/// to expect. The room set is fixed at setup, so lookups need no lock.
#[derive(Debug, Default)]
pub struct RoomTable {
    index: HashMap<String, usize>,
    /// Sessions in each room. A lock rather than an atomic: a send and a join or leave of the
    /// same room must be ordered, so that "was this session counted for that message" has one
    /// answer on both sides (see [`RoomTable::join`]).
    joined: Vec<Mutex<Members>>,
    /// Sequence numbers of the posts to each room that the server refused or never answered
    /// (withdrawn from the count), so that a leaving session does not wait for their messages.
    /// Only failures land here: the list stays short.
    withdrawn: Vec<Mutex<Vec<u64>>>,
    /// One sequence for sends, joins and leaves of every room, taken under the room's lock.
    clock: AtomicU64,
    /// Tickets of the posts to each room whose HTTP answer has not come back yet: the server
    /// may not have broadcast them, so a session leaving the room waits for the ones that
    /// started before it left (and only those: at high rates a room is rarely idle).
    sending: Vec<Mutex<BTreeSet<u64>>>,
    /// Woken whenever a post to the room is answered, so a leaving session waits for its
    /// room's posts to settle without polling.
    answered: Vec<Notify>,
    next_ticket: AtomicU64,
}

/// A room's members and the posts sent to it so far, changed under one lock.
#[derive(Debug, Default)]
struct Members {
    count: u64,
    sends: u64,
}

/// Where a join or leave fell in a room's history: its sequence number, and how many posts had
/// been sent to the room before it. Between a session's join and leave, the difference of
/// `sends` is exactly how many messages counted the session as a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomMark {
    pub seq: u64,
    pub sends: u64,
}

impl RoomTable {
    pub fn new<I: IntoIterator<Item = String>>(rooms: I) -> RoomTable {
        let mut index = HashMap::new();
        for room in rooms {
            let next = index.len();
            index.entry(room.to_ascii_lowercase()).or_insert(next);
        }
        let joined = (0..index.len()).map(|_| Mutex::default()).collect();
        let withdrawn = (0..index.len()).map(|_| Mutex::default()).collect();
        let sending = (0..index.len()).map(|_| Mutex::default()).collect();
        let answered = (0..index.len()).map(|_| Notify::new()).collect();
        RoomTable {
            index,
            joined,
            withdrawn,
            sending,
            answered,
            next_ticket: AtomicU64::new(0),
            clock: AtomicU64::new(0),
        }
    }

    pub(super) fn position(&self, room: &str) -> Option<usize> {
        match self.index.get(room) {
            Some(i) => Some(*i),
            // Room names are lowercase UUIDs; only a hand-written id needs the slow path.
            None => self.index.get(&room.to_ascii_lowercase()).copied(),
        }
    }

    fn slot(&self, room: &str) -> Option<std::sync::MutexGuard<'_, Members>> {
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
        // One lookup of the room for both: this runs once per post.
        let Some(i) = self.position(room) else { return };
        if let Some(set) = self.sending.get(i) {
            set.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ticket);
        }
        if let Some(answered) = self.answered.get(i) {
            answered.notify_waiters();
        }
    }

    /// Woken whenever a post to `room` is answered (see [`Self::sends_settled`]); `None` for a
    /// room outside the table. Enable the `Notified` before checking, or a wake-up between
    /// the check and the wait is lost.
    pub fn answered(&self, room: &str) -> Option<&Notify> {
        self.answered.get(self.position(room)?)
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
    pub fn join(&self, room: &str) -> Option<RoomMark> {
        let mut members = self.slot(room)?;
        members.count += 1;
        Some(RoomMark {
            seq: self.clock.fetch_add(1, Relaxed),
            sends: members.sends,
        })
    }

    /// A session left `room` or disconnected while joined: the mark of the leave.
    pub fn leave(&self, room: &str) -> Option<RoomMark> {
        let mut members = self.slot(room)?;
        // Never wrap below zero if a runner reports a leave twice.
        members.count = members.count.saturating_sub(1);
        Some(RoomMark {
            seq: self.clock.fetch_add(1, Relaxed),
            sends: members.sends,
        })
    }

    /// A message to `room` is being sent: the receivers to expect and its sequence number,
    /// ordered against joins and leaves of the room.
    pub(super) fn send(&self, room: &str) -> (u64, u64) {
        match self.slot(room) {
            Some(mut members) => {
                members.sends += 1;
                (members.count, self.clock.fetch_add(1, Relaxed))
            }
            None => (0, self.clock.fetch_add(1, Relaxed)),
        }
    }

    /// The post to the room at `position` with sequence number `seq` was withdrawn.
    pub(super) fn withdraw(&self, position: usize, seq: u64) {
        if let Some(list) = self.withdrawn.get(position) {
            list.lock().unwrap_or_else(|p| p.into_inner()).push(seq);
        }
    }

    /// Posts to `room` withdrawn whose sequence numbers lie strictly between `since` and
    /// `until`: the posts of a stay that will never arrive.
    pub fn withdrawn_between(&self, room: &str, since: u64, until: u64) -> u64 {
        let Some(list) = self.position(room).and_then(|i| self.withdrawn.get(i)) else {
            return 0;
        };
        let list = list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().filter(|s| since < **s && **s < until).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::RoomTable;

    /// A leaving session learns exactly how many messages counted it as a receiver: the posts
    /// between its join and leave marks, less those withdrawn.
    #[test]
    fn marks_count_the_posts_of_a_stay() {
        let table = RoomTable::new(["r".to_owned()]);
        let (_, before) = table.send("r");
        let position = table.position("r").expect("a known room");
        table.withdraw(position, before);
        let joined = table.join("r").expect("a known room");
        let (receivers, _) = table.send("r");
        assert_eq!(receivers, 1);
        let (_, refused) = table.send("r");
        table.withdraw(position, refused);
        let left = table.leave("r").expect("a known room");
        let (_, after) = table.send("r");
        table.withdraw(position, after);
        assert_eq!(left.sends - joined.sends, 2);
        assert_eq!(table.withdrawn_between("r", joined.seq, left.seq), 1);
        assert!(joined.seq < left.seq);
        assert_eq!(table.join("elsewhere"), None);
    }
}
