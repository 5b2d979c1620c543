//! What a load test measures, recorded cheaply from thousands of concurrent sessions.
//!
//! Two paths, chosen for the cost of the hot path on a multi-threaded runtime:
//! - Counters are relaxed atomics: one `fetch_add` per event, no lock.
//! - Latencies go into a session's [`Recorder`], a small local buffer of samples. When it fills
//!   (or the session ends, or the runner calls [`Recorder::flush`]) the samples are added to one
//!   of several histogram shards under that shard's lock: one lock per [`FLUSH_EVERY`] samples,
//!   spread over shards so sessions on different worker threads rarely meet. A histogram per
//!   session would cost ~100 KB each; a buffer costs a few hundred bytes.
//!
//! Delivery latency needs no lookup table either: the nonce a sender puts in a message encodes
//! the send time (relative to the run's start) and the run id, so a receiver computes the latency
//! from the message alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::DisconnectKind;

/// Samples a recorder buffers before it takes a shard lock.
pub const FLUSH_EVERY: usize = 32;

/// Significant figures kept by every histogram: 0.1% relative precision.
pub const SIGFIGS: u8 = 3;

/// The latencies a run records, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Latency {
    /// Engine.IO open: from starting the connection to the engine's OPEN packet.
    EngineOpen,
    /// Namespace connect: from starting the connection to the Socket.IO CONNECT answer.
    Connect,
    /// Emit with ack: from the emit to the ack.
    Ack,
    /// `wait_for`: from the start of the wait to the last expected event.
    WaitFor,
    /// From a `post_message` (or emit) to the message's arrival at one session in the room.
    Delivery,
    /// REST request round trip (`post_message`).
    Http,
    /// Open model: how late a session or step started compared with its scheduled time.
    ScheduleLag,
}

impl Latency {
    pub const ALL: [Latency; 7] = [
        Latency::Connect,
        Latency::EngineOpen,
        Latency::Ack,
        Latency::WaitFor,
        Latency::Delivery,
        Latency::Http,
        Latency::ScheduleLag,
    ];

    /// The name in reports and threshold expressions.
    pub fn name(self) -> &'static str {
        match self {
            Latency::Connect => "connect",
            Latency::EngineOpen => "engine_open",
            Latency::Ack => "ack",
            Latency::WaitFor => "wait_for",
            Latency::Delivery => "delivery",
            Latency::Http => "http",
            Latency::ScheduleLag => "schedule_lag",
        }
    }

    pub fn from_name(name: &str) -> Option<Latency> {
        Latency::ALL.into_iter().find(|l| l.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a session never reached the connected state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// HTTP 400/401/403 on the handshake, or a CONNECT_ERROR.
    Refused,
    /// Connection refused, unreachable host, TLS failure.
    Unreachable,
    /// No answer within the connect timeout.
    Timeout,
    /// The server answered something the client could not understand.
    Protocol,
    /// Setup failed before connecting (dev login, sessions file ran out).
    Setup,
}

impl FailReason {
    pub const ALL: [FailReason; 5] = [
        FailReason::Refused,
        FailReason::Unreachable,
        FailReason::Timeout,
        FailReason::Protocol,
        FailReason::Setup,
    ];
    pub fn name(self) -> &'static str {
        match self {
            FailReason::Refused => "refused",
            FailReason::Unreachable => "unreachable",
            FailReason::Timeout => "timeout",
            FailReason::Protocol => "protocol",
            FailReason::Setup => "setup",
        }
    }
}

/// A step that went wrong after the session connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AckTimeout,
    /// The ack arrived but did not match `ack.expect`.
    AckMismatch,
    /// `wait_for` saw fewer events than `count` before its timeout.
    WaitForTimeout,
    /// `post_message` answered with a non-2xx status or did not answer.
    Http,
    /// An emit, join or leave could not be sent (the socket was closed).
    Send,
    /// A `reconnect` step did not get the session back.
    Reconnect,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::AckTimeout,
        ErrorKind::AckMismatch,
        ErrorKind::WaitForTimeout,
        ErrorKind::Http,
        ErrorKind::Send,
        ErrorKind::Reconnect,
    ];
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::AckTimeout => "ack_timeout",
            ErrorKind::AckMismatch => "ack_mismatch",
            ErrorKind::WaitForTimeout => "wait_for_timeout",
            ErrorKind::Http => "http",
            ErrorKind::Send => "send",
            ErrorKind::Reconnect => "reconnect",
        }
    }
}

/// One histogram per [`Latency`], in microseconds.
#[derive(Debug, Clone)]
pub struct HistogramSet {
    hists: [Histogram<u64>; 7],
}

/// A histogram that grows to whatever range it sees: a fixed hour-wide range would cost
/// ~180 KB per histogram whether or not it is used.
pub fn new_histogram() -> Histogram<u64> {
    // 3 significant figures is a valid precision, so this cannot fail.
    Histogram::new(SIGFIGS).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
}

impl Default for HistogramSet {
    fn default() -> Self {
        HistogramSet {
            hists: std::array::from_fn(|_| new_histogram()),
        }
    }
}

impl HistogramSet {
    pub fn get(&self, latency: Latency) -> &Histogram<u64> {
        &self.hists[latency.index()]
    }
    pub fn get_mut(&mut self, latency: Latency) -> &mut Histogram<u64> {
        &mut self.hists[latency.index()]
    }
    pub fn record(&mut self, latency: Latency, micros: u64) {
        let h = &mut self.hists[latency.index()];
        // `saturating_record` would clamp to the current (auto-resizing) range instead of
        // growing it, so record normally and only saturate what cannot be tracked at all.
        if h.record(micros).is_err() {
            h.saturating_record(micros);
        }
    }
    /// Add every sample of `other`. Auto-resizing histograms of equal precision always add.
    pub fn add(&mut self, other: &HistogramSet) {
        for (mine, theirs) in self.hists.iter_mut().zip(other.hists.iter()) {
            // Both sides are auto-resizing with the same precision, which `add` accepts.
            let _ = mine.add(theirs);
        }
    }
}

/// Lock-free counters; every field is a relaxed atomic.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    connected: AtomicU64,
    failed: [AtomicU64; 5],
    open: AtomicU64,
    peak_open: AtomicU64,
    disconnects: [AtomicU64; 4],
    reconnects: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    errors: [AtomicU64; 6],
    delivery_expected: AtomicU64,
    delivery_received: AtomicU64,
}

/// The counters at one moment, as plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub started: u64,
    pub connected: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    pub open: u64,
    pub peak_open: u64,
    pub disconnects_by_reason: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub delivery_expected: u64,
    pub delivery_received: u64,
}

impl CounterValues {
    pub fn failed(&self) -> u64 {
        self.failed_by_reason.values().sum()
    }
    pub fn errors_total(&self) -> u64 {
        self.errors_by_kind.values().sum()
    }
}

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
    fn send(&self, room: &str) -> (u64, u64) {
        match self.slot(room) {
            Some(members) => (*members, self.clock.fetch_add(1, Relaxed)),
            None => (0, self.clock.fetch_add(1, Relaxed)),
        }
    }
}

/// The shared metrics of one generator run.
#[derive(Debug)]
pub struct Metrics {
    start: Instant,
    run_id: u32,
    nonce_prefix: String,
    next_shard: AtomicUsize,
    shards: Box<[Mutex<HistogramSet>]>,
    counters: Counters,
    pub rooms: RoomTable,
}

impl Metrics {
    /// `run_id` tells this generator's messages apart from other generators' in shared rooms.
    pub fn new(run_id: u32, rooms: RoomTable) -> Metrics {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shards = (0..workers * 4)
            .map(|_| Mutex::new(HistogramSet::default()))
            .collect();
        Metrics {
            start: Instant::now(),
            run_id,
            nonce_prefix: format!("lt{run_id:08x}."),
            next_shard: AtomicUsize::new(0),
            shards,
            counters: Counters::default(),
            rooms,
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// A recorder for one session (or task); spread over the shards round-robin.
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        let shard = self.next_shard.fetch_add(1, Relaxed) % self.shards.len();
        Recorder {
            metrics: Arc::clone(self),
            shard,
            buf: Vec::with_capacity(FLUSH_EVERY),
        }
    }

    pub fn session_started(&self) {
        self.counters.started.fetch_add(1, Relaxed);
    }
    pub fn session_connected(&self) {
        self.counters.connected.fetch_add(1, Relaxed);
        self.opened();
    }
    pub fn session_failed(&self, reason: FailReason) {
        self.counters.failed[reason as usize].fetch_add(1, Relaxed);
    }
    /// A successful reconnect: the session is open again.
    pub fn session_reconnected(&self) {
        self.counters.reconnects.fetch_add(1, Relaxed);
        self.opened();
    }
    fn opened(&self) {
        let now = self.counters.open.fetch_add(1, Relaxed) + 1;
        self.counters.peak_open.fetch_max(now, Relaxed);
    }
    pub fn session_closed(&self, reason: DisconnectKind) {
        self.counters.disconnects[reason as usize].fetch_add(1, Relaxed);
        let _ = self
            .counters
            .open
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }
    pub fn open_sessions(&self) -> u64 {
        self.counters.open.load(Relaxed)
    }
    pub fn error(&self, kind: ErrorKind) {
        self.counters.errors[kind as usize].fetch_add(1, Relaxed);
    }
    /// Any event received by any session (not only the ones matched by a nonce).
    pub fn message_received(&self) {
        self.counters.received.fetch_add(1, Relaxed);
    }

    /// A message is about to be sent to `room`: count it and the deliveries it should produce
    /// (the sessions joined to the room now), and return the nonce to put in it. `reference` is
    /// the time latency counts from: the scheduled time in the open model, so a slow generator
    /// cannot hide server latency (coordinated omission).
    pub fn message_sent(&self, room: &str, reference: Instant) -> String {
        self.message_sent_expecting(room, reference).0
    }

    /// [`Metrics::message_sent`], also answering the deliveries it expects, so that a send the
    /// server refused can be withdrawn with [`Metrics::message_withdrawn`].
    pub fn message_sent_expecting(&self, room: &str, reference: Instant) -> (String, u64) {
        self.counters.sent.fetch_add(1, Relaxed);
        let (expected, seq) = self.rooms.send(room);
        self.counters.delivery_expected.fetch_add(expected, Relaxed);
        let at = reference.saturating_duration_since(self.start).as_micros();
        (format!("{}{seq:x}.{at:x}", self.nonce_prefix), expected)
    }

    /// The server refused or never answered a post: nothing was stored, so no delivery of it is
    /// expected (the failure itself is counted as an error).
    pub fn message_withdrawn(&self, expected: u64) {
        let _ = self
            .counters
            .delivery_expected
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(expected)));
    }

    /// Find this run's nonce in `text` and return the sequence number and send time it encodes.
    fn sent_at(&self, text: &str) -> Option<(u64, Duration)> {
        let pos = text.find(&self.nonce_prefix)?;
        let rest = &text[pos + self.nonce_prefix.len()..];
        let (seq, rest) = rest.split_once('.')?;
        let seq = u64::from_str_radix(seq, 16).ok()?;
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        let micros = u64::from_str_radix(&rest[..end], 16).ok()?;
        Some((seq, Duration::from_micros(micros)))
    }

    pub fn run_id(&self) -> u32 {
        self.run_id
    }

    /// Counters and merged histograms now. Samples still buffered in live recorders are not
    /// included until those recorders flush.
    pub fn snapshot(&self) -> (CounterValues, HistogramSet) {
        let mut hists = HistogramSet::default();
        for shard in self.shards.iter() {
            // A poisoned shard only means a session task panicked mid-flush; its data is intact.
            let guard = shard.lock().unwrap_or_else(|p| p.into_inner());
            hists.add(&guard);
        }
        (self.counter_values(), hists)
    }

    pub fn counter_values(&self) -> CounterValues {
        let c = &self.counters;
        let named = |names: &[&'static str], values: &[AtomicU64]| -> BTreeMap<String, u64> {
            names
                .iter()
                .zip(values)
                .map(|(n, v)| ((*n).to_owned(), v.load(Relaxed)))
                .collect()
        };
        CounterValues {
            started: c.started.load(Relaxed),
            connected: c.connected.load(Relaxed),
            failed_by_reason: named(&FailReason::ALL.map(FailReason::name), &c.failed),
            open: c.open.load(Relaxed),
            peak_open: c.peak_open.load(Relaxed),
            disconnects_by_reason: named(
                &DisconnectKind::ALL.map(DisconnectKind::name),
                &c.disconnects,
            ),
            reconnects: c.reconnects.load(Relaxed),
            messages_sent: c.sent.load(Relaxed),
            messages_received: c.received.load(Relaxed),
            errors_by_kind: named(&ErrorKind::ALL.map(ErrorKind::name), &c.errors),
            delivery_expected: c.delivery_expected.load(Relaxed),
            delivery_received: c.delivery_received.load(Relaxed),
        }
    }
}

/// A session's latency recorder: buffers samples locally and adds them to a shared shard in
/// batches. Dropping it flushes.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    shard: usize,
    buf: Vec<(Latency, u64)>,
}

impl Recorder {
    pub fn record(&mut self, latency: Latency, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buf.push((latency, micros));
        if self.buf.len() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Time from `since` to now.
    pub fn record_since(&mut self, latency: Latency, since: Instant) {
        self.record(latency, since.elapsed());
    }

    /// A message arrived at this session at `now`. When it carries this run's nonce, count the
    /// delivery and record its latency; returns whether it did.
    pub fn delivered(&mut self, text: &str, now: Instant) -> bool {
        self.delivered_if(text, now, |_| true)
    }

    /// Like [`Recorder::delivered`], counting the delivery only when `expected(seq)` says this
    /// session was counted in the room when the message with that sequence number was sent
    /// (see [`RoomTable::join`]). Deliveries to a session that joined after the send, or had
    /// started to leave, were never expected and must not inflate completeness.
    pub fn delivered_if(
        &mut self,
        text: &str,
        now: Instant,
        expected: impl FnOnce(u64) -> bool,
    ) -> bool {
        let Some((seq, sent)) = self.metrics.sent_at(text) else {
            return false;
        };
        if !expected(seq) {
            return false;
        }
        self.metrics
            .counters
            .delivery_received
            .fetch_add(1, Relaxed);
        let elapsed = now.saturating_duration_since(self.metrics.start);
        self.record(Latency::Delivery, elapsed.saturating_sub(sent));
        true
    }

    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let shard = &self.metrics.shards[self.shard];
        let mut hists = shard.lock().unwrap_or_else(|p| p.into_inner());
        for (latency, micros) in self.buf.drain(..) {
            hists.record(latency, micros);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// CPU seconds and peak resident memory of this process, read from /proc (Linux only; other
/// systems get `None` and the report says so).
pub fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces or parentheses; fields resume after the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI in use; /proc reports in those ticks.
    let cpu = (utime + stime) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((cpu, hwm_kb * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "0b6c5a1e-0000-4000-8000-000000000001";

    #[test]
    fn a_listener_that_misses_a_message_lowers_completeness() {
        let metrics = Arc::new(Metrics::new(7, RoomTable::new([ROOM.to_owned()])));
        // Three listeners in the room, one sender outside it.
        for _ in 0..3 {
            metrics.rooms.join(ROOM);
        }
        let t0 = metrics.start();
        let nonce = metrics.message_sent(ROOM, t0);
        let content = format!("load {nonce}");
        let mut a = metrics.recorder();
        let mut b = metrics.recorder();
        assert!(a.delivered(&content, t0 + Duration::from_millis(5)));
        assert!(b.delivered(&content, t0 + Duration::from_millis(7)));
        // The third listener never receives it.
        drop((a, b));
        let (c, h) = metrics.snapshot();
        assert_eq!(c.delivery_expected, 3);
        assert_eq!(c.delivery_received, 2);
        let delivery = h.get(Latency::Delivery);
        assert_eq!(delivery.len(), 2);
        assert!(
            delivery.equivalent(delivery.max(), 7000),
            "{}",
            delivery.max()
        );
        assert!(
            delivery.equivalent(delivery.min(), 5000),
            "{}",
            delivery.min()
        );
    }

    #[test]
    fn expected_counts_the_room_at_send_time() {
        let metrics = Arc::new(Metrics::new(1, RoomTable::new([ROOM.to_owned()])));
        metrics.rooms.join(ROOM);
        metrics.rooms.join(&ROOM.to_uppercase());
        let _ = metrics.message_sent(ROOM, Instant::now());
        metrics.rooms.leave(ROOM);
        let _ = metrics.message_sent(ROOM, Instant::now());
        // A room the table does not know expects nothing.
        let _ = metrics.message_sent("not-a-room", Instant::now());
        let c = metrics.counter_values();
        assert_eq!(c.delivery_expected, 3);
        assert_eq!(c.messages_sent, 3);
    }

    #[test]
    fn other_runs_messages_are_not_counted_as_deliveries() {
        let ours = Arc::new(Metrics::new(1, RoomTable::default()));
        let theirs = Metrics::new(2, RoomTable::default());
        let nonce = theirs.message_sent(ROOM, Instant::now());
        let mut r = ours.recorder();
        assert!(!r.delivered(&format!("x {nonce}"), Instant::now()));
        assert!(!r.delivered("no nonce at all", Instant::now()));
        drop(r);
        assert_eq!(ours.counter_values().delivery_received, 0);
    }

    #[test]
    fn delivery_counts_from_the_reference_time() {
        let metrics = Arc::new(Metrics::new(3, RoomTable::default()));
        let scheduled = metrics.start() + Duration::from_millis(100);
        let nonce = metrics.message_sent(ROOM, scheduled);
        let mut r = metrics.recorder();
        assert!(r.delivered(&nonce, scheduled + Duration::from_millis(40)));
        drop(r);
        let (_, h) = metrics.snapshot();
        assert!(
            h.get(Latency::Delivery)
                .equivalent(h.get(Latency::Delivery).max(), 40_000)
        );
    }

    #[test]
    fn sessions_open_peak_and_reasons() {
        let m = Metrics::new(0, RoomTable::default());
        for _ in 0..3 {
            m.session_started();
        }
        m.session_connected();
        m.session_connected();
        m.session_failed(FailReason::Refused);
        m.session_closed(DisconnectKind::Server);
        m.session_reconnected();
        m.session_closed(DisconnectKind::Client);
        m.session_closed(DisconnectKind::Client);
        m.error(ErrorKind::AckTimeout);
        let c = m.counter_values();
        assert_eq!((c.started, c.connected, c.failed()), (3, 2, 1));
        assert_eq!(c.failed_by_reason["refused"], 1);
        assert_eq!((c.open, c.peak_open, c.reconnects), (0, 2, 1));
        assert_eq!(c.disconnects_by_reason["client"], 2);
        assert_eq!(c.errors_total(), 1);
    }

    #[test]
    fn recorders_flush_in_batches_and_on_drop() {
        let m = Arc::new(Metrics::new(0, RoomTable::default()));
        let mut r = m.recorder();
        for i in 0..FLUSH_EVERY as u64 + 1 {
            r.record(Latency::Ack, Duration::from_micros(100 + i));
        }
        // One full batch is visible before the recorder ends; the last sample after.
        assert_eq!(m.snapshot().1.get(Latency::Ack).len(), FLUSH_EVERY as u64);
        drop(r);
        assert_eq!(
            m.snapshot().1.get(Latency::Ack).len(),
            FLUSH_EVERY as u64 + 1
        );
    }

    #[test]
    fn concurrent_recorders_lose_nothing() {
        let m = Arc::new(Metrics::new(0, RoomTable::default()));
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let m = Arc::clone(&m);
                s.spawn(move || {
                    let mut r = m.recorder();
                    for i in 0..1000 {
                        m.message_received();
                        r.record(Latency::Connect, Duration::from_micros(t * 1000 + i));
                    }
                });
            }
        });
        let (c, h) = m.snapshot();
        assert_eq!(c.messages_received, 4000);
        assert_eq!(h.get(Latency::Connect).len(), 4000);
    }

    #[test]
    fn process_usage_reads_proc_on_linux() {
        if cfg!(target_os = "linux") {
            let (cpu, rss) = process_usage().expect("/proc is readable");
            assert!(cpu >= 0.0 && rss > 0);
        }
    }
}
