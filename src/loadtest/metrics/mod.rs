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
//! Over time as well as over the whole run: every counter is also counted in the slot of its
//! interval (one more relaxed `fetch_add`, the slot found from the monotonic clock), and every
//! latency sample carries its interval through the recorder's buffer into the shard, where the
//! connect, ack and delivery samples are also counted per interval (see `series`).
//!
//! Here: [`Metrics`] (the counters and the histogram shards of a run) and [`Recorder`]. Beside
//! it: `kinds` (what is timed and why sessions fail, close or err, with their report names),
//! `histograms` ([`HistogramSet`]), `series` (the run over time), `rooms` ([`RoomTable`], who is
//! in which room at each send) and `usage` (the generator's own CPU and memory).

mod histograms;
mod kinds;
mod rooms;
pub mod series;
mod usage;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use histograms::{HistogramSet, SIGFIGS, new_histogram};
pub use kinds::{ErrorKind, FailReason, Latency};
pub use rooms::{RoomMark, RoomTable};
pub use series::{Mark, MarkKind, SERIES_LATENCIES, Series, SeriesValues};
pub use usage::process_usage;

use series::{SparseCounts, series_index};

use crate::client::DisconnectKind;

/// Samples a recorder buffers before it takes a shard lock.
pub const FLUSH_EVERY: usize = 32;

/// Lock-free counters; every field is a relaxed atomic.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    connected: AtomicU64,
    failed: [AtomicU64; FailReason::ALL.len()],
    open: AtomicU64,
    peak_open: AtomicU64,
    disconnects: [AtomicU64; DisconnectKind::ALL.len()],
    reconnects: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
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

/// The samples of a group of sessions: whole-run histograms, and per-interval counts of the
/// latencies drawn over time.
#[derive(Debug, Default)]
struct Shard {
    hists: HistogramSet,
    series: SparseCounts,
}

/// The deliveries a sent message expects, and the interval it was sent in; hand it back to
/// [`Metrics::message_withdrawn`] if the send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub count: u64,
    slot: usize,
    /// The room's place in the room table (if it is one of the run's rooms) and the message's
    /// sequence number, so that sessions leaving the room stop waiting for it.
    room: Option<usize>,
    seq: u64,
}

/// The shared metrics of one generator run.
#[derive(Debug)]
pub struct Metrics {
    start: Instant,
    run_id: u32,
    nonce_prefix: String,
    next_shard: AtomicUsize,
    shards: Box<[Mutex<Shard>]>,
    counters: Counters,
    series: Series,
    /// The first virtual user that panicked, and why (see [`Metrics::user_panicked`]).
    first_panic: Mutex<Option<String>>,
    pub rooms: RoomTable,
}

impl Metrics {
    /// `run_id` tells this generator's messages apart from other generators' in shared rooms.
    /// Intervals of the default length ([`series::DEFAULT_INTERVAL`]), aligned on the clock of
    /// this machine.
    pub fn new(run_id: u32, rooms: RoomTable) -> Metrics {
        Metrics::with_clock(
            run_id,
            rooms,
            series::DEFAULT_INTERVAL,
            Instant::now(),
            SystemTime::now(),
        )
    }

    /// Metrics whose run starts at `start`, the instant the wall clock read `wall`, counted in
    /// intervals of `interval`. Two generators given the same wall-clock reading for their
    /// start instants cut the same intervals.
    pub fn with_clock(
        run_id: u32,
        rooms: RoomTable,
        interval: Duration,
        start: Instant,
        wall: SystemTime,
    ) -> Metrics {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shards = (0..workers * 4)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        Metrics {
            start,
            run_id,
            nonce_prefix: format!("lt{run_id:08x}."),
            next_shard: AtomicUsize::new(0),
            shards,
            counters: Counters::default(),
            series: Series::new(interval, start, wall),
            first_panic: Mutex::new(None),
            rooms,
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Put a mark on the charts at `at` (a phase starts, the server restarts).
    pub fn mark(&self, at: Instant, kind: MarkKind, label: impl Into<String>) {
        self.series.mark(at, kind, label);
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
        self.session_started_at(Instant::now());
    }
    pub fn session_started_at(&self, at: Instant) {
        self.counters.started.fetch_add(1, Relaxed);
        self.series.at(at).started.fetch_add(1, Relaxed);
    }
    pub fn session_connected(&self) {
        self.session_connected_at(Instant::now());
    }
    pub fn session_connected_at(&self, at: Instant) {
        self.counters.connected.fetch_add(1, Relaxed);
        let slot = self.series.at(at);
        slot.connected.fetch_add(1, Relaxed);
        self.opened(slot);
    }
    pub fn session_failed(&self, reason: FailReason) {
        self.session_failed_at(reason, Instant::now());
    }
    pub fn session_failed_at(&self, reason: FailReason, at: Instant) {
        self.counters.failed[reason as usize].fetch_add(1, Relaxed);
        self.series.at(at).failed[reason as usize].fetch_add(1, Relaxed);
    }
    /// A successful reconnect: the session is open again.
    pub fn session_reconnected(&self) {
        self.session_reconnected_at(Instant::now());
    }
    pub fn session_reconnected_at(&self, at: Instant) {
        self.counters.reconnects.fetch_add(1, Relaxed);
        let slot = self.series.at(at);
        slot.reconnects.fetch_add(1, Relaxed);
        self.opened(slot);
    }
    fn opened(&self, slot: &series::IntervalCounters) {
        let now = self.counters.open.fetch_add(1, Relaxed) + 1;
        self.counters.peak_open.fetch_max(now, Relaxed);
        slot.peak_open.fetch_max(now, Relaxed);
    }
    pub fn session_closed(&self, reason: DisconnectKind) {
        self.session_closed_at(reason, Instant::now());
    }
    pub fn session_closed_at(&self, reason: DisconnectKind, at: Instant) {
        self.counters.disconnects[reason as usize].fetch_add(1, Relaxed);
        self.series.at(at).disconnects[reason as usize].fetch_add(1, Relaxed);
        let _ = self
            .counters
            .open
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }
    pub fn open_sessions(&self) -> u64 {
        self.counters.open.load(Relaxed)
    }
    pub fn error(&self, kind: ErrorKind) {
        self.error_at(kind, Instant::now());
    }
    pub fn error_at(&self, kind: ErrorKind, at: Instant) {
        self.counters.errors[kind as usize].fetch_add(1, Relaxed);
        self.series.at(at).errors[kind as usize].fetch_add(1, Relaxed);
    }
    /// A virtual user's task panicked (a bug in this tool): an error of kind `panic`, and the
    /// first such message kept for the report's warnings.
    pub fn user_panicked(&self, vu: u64, message: &str) {
        self.error(ErrorKind::Panic);
        let mut first = self.first_panic.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(format!("virtual user {vu}: {message}"));
        }
    }
    /// The first panic of a virtual user, if any did.
    pub fn first_panic(&self) -> Option<String> {
        self.first_panic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Any event received by any session (not only the ones matched by a nonce).
    pub fn message_received(&self) {
        self.message_received_at(Instant::now());
    }
    pub fn message_received_at(&self, at: Instant) {
        self.counters.received.fetch_add(1, Relaxed);
        self.series.at(at).received.fetch_add(1, Relaxed);
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
    pub fn message_sent_expecting(&self, room: &str, reference: Instant) -> (String, Expected) {
        self.counters.sent.fetch_add(1, Relaxed);
        let (expected, seq) = self.rooms.send(room);
        self.counters.delivery_expected.fetch_add(expected, Relaxed);
        let since_start = reference.saturating_duration_since(self.start);
        let slot = self.series.clock().slot_after(since_start);
        let counters = self.series.slot(slot);
        counters.sent.fetch_add(1, Relaxed);
        counters.delivery_expected.fetch_add(expected, Relaxed);
        let at = since_start.as_micros();
        (
            format!("{}{seq:x}.{at:x}", self.nonce_prefix),
            Expected {
                count: expected,
                slot,
                room: self.rooms.position(room),
                seq,
            },
        )
    }

    /// The server refused or never answered a post: nothing was stored, so no delivery of it is
    /// expected (the failure itself is counted as an error).
    pub fn message_withdrawn(&self, expected: Expected) {
        let withdraw = |counter: &AtomicU64| {
            let _ =
                counter.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(expected.count)));
        };
        withdraw(&self.counters.delivery_expected);
        withdraw(&self.series.slot(expected.slot).delivery_expected);
        if let Some(room) = expected.room {
            self.rooms.withdraw(room, expected.seq);
        }
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
            hists.add(&guard.hists);
        }
        (self.counter_values(), hists)
    }

    /// The run over time, from its first interval to the one `until` falls in. Like
    /// [`Metrics::snapshot`], samples still buffered in live recorders are not included.
    pub fn series_values(&self, until: Instant) -> SeriesValues {
        let guards: Vec<_> = self
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        self.series.values(until, guards.iter().map(|g| &g.series))
    }

    /// Move the latency counts of intervals that ended before `now`'s previous one out of the
    /// shards into encoded histograms, so a long run's memory grows by kilobytes per interval.
    /// The runner calls it a few times a second; it takes each shard's lock briefly in turn.
    pub fn compact_series(&self, now: Instant) {
        let cutoff = self.series.clock().slot(now).saturating_sub(1);
        let mut drained = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            drained.extend(shard.series.drain_before(cutoff));
        }
        self.series.absorb(drained);
    }

    /// The length of this run's intervals.
    pub fn interval(&self) -> Duration {
        self.series.clock().len()
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

/// A latency sample waiting in a recorder's buffer: what, how long, and the interval its
/// operation began in (only read for the latencies drawn over time).
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Latency,
    slot: u32,
    micros: u64,
}

/// A session's latency recorder: buffers samples locally and adds them to a shared shard in
/// batches. Dropping it flushes.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    shard: usize,
    buf: Vec<Sample>,
}

impl Recorder {
    /// An operation that took `elapsed` and ended now.
    pub fn record(&mut self, latency: Latency, elapsed: Duration) {
        // Only the latencies drawn over time need to know when the operation began: the
        // others skip the clock read.
        let slot = match series_index(latency) {
            Some(_) => {
                let now = Instant::now();
                self.slot_of(now.checked_sub(elapsed).unwrap_or(self.metrics.start))
            }
            None => 0,
        };
        self.push(latency, slot, elapsed);
    }

    /// Time from `since` to now.
    pub fn record_since(&mut self, latency: Latency, since: Instant) {
        self.record_started(latency, since, since.elapsed());
    }

    /// An operation that began at `started` and took `elapsed`.
    pub fn record_started(&mut self, latency: Latency, started: Instant, elapsed: Duration) {
        let slot = self.slot_of(started);
        self.push(latency, slot, elapsed);
    }

    fn slot_of(&self, t: Instant) -> u32 {
        u32::try_from(self.metrics.series.clock().slot(t)).unwrap_or(u32::MAX)
    }

    fn push(&mut self, latency: Latency, slot: u32, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buf.push(Sample {
            latency,
            slot,
            micros,
        });
        if self.buf.len() >= FLUSH_EVERY {
            self.flush();
        }
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
        // Charged to the interval the message was sent in, like its expected deliveries.
        let slot = self.metrics.series.clock().slot_after(sent);
        self.metrics
            .counters
            .delivery_received
            .fetch_add(1, Relaxed);
        self.metrics
            .series
            .slot(slot)
            .delivery_received
            .fetch_add(1, Relaxed);
        let elapsed = now.saturating_duration_since(self.metrics.start);
        self.push(
            Latency::Delivery,
            u32::try_from(slot).unwrap_or(u32::MAX),
            elapsed.saturating_sub(sent),
        );
        true
    }

    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let shard = &self.metrics.shards[self.shard];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        for sample in self.buf.drain(..) {
            shard.hists.record(sample.latency, sample.micros);
            if let Some(index) = series_index(sample.latency) {
                shard.series.record(sample.slot, index, sample.micros);
            }
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
}
