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
//!
//! Here: [`Metrics`] (the counters and the histogram shards of a run) and [`Recorder`]. Beside
//! it: `kinds` (what is timed and why sessions fail, close or err, with their report names),
//! `histograms` ([`HistogramSet`]), `rooms` ([`RoomTable`], who is in which room at each send)
//! and `usage` (the generator's own CPU and memory).

mod histograms;
mod kinds;
mod rooms;
mod usage;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use histograms::{HistogramSet, SIGFIGS, new_histogram};
pub use kinds::{DisconnectReason, ErrorKind, FailReason, Latency};
pub use rooms::RoomTable;
pub use usage::process_usage;

/// Samples a recorder buffers before it takes a shard lock.
pub const FLUSH_EVERY: usize = 32;

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
    pub fn session_closed(&self, reason: DisconnectReason) {
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
                &DisconnectReason::ALL.map(DisconnectReason::name),
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
        m.session_closed(DisconnectReason::Server);
        m.session_reconnected();
        m.session_closed(DisconnectReason::Client);
        m.session_closed(DisconnectReason::Client);
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
}
