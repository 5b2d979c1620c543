//! The run over time: counters per interval, latency histograms per interval, and marks
//! (phase starts, server restarts) to draw on the charts.
//!
//! Every counter of [`super::Metrics`] is also counted in the slot of the interval it happened
//! in; latency samples carry their slot through the recorder's buffer and land in the shard's
//! [`SparseCounts`]. Which interval a thing belongs to:
//! - an event (a session started, connected, failed or closed; a message sent or received; an
//!   error): when it happened;
//! - a latency: when the operation it times *began* (a connect from its scheduled arrival, an
//!   ack from the emit, a delivery from the send), so a slow answer is charged to the load that
//!   caused it, and the deliveries of one message stay together;
//! - deliveries expected and received: the interval the message was *sent* in, so received /
//!   expected per interval is that interval's delivery completeness, not a ratio of unrelated
//!   messages.
//!
//! Here: [`Series`] (the clock, the slots and the marks of one run) and the plain snapshot
//! types. Beside it: `clock` (wall-clock aligned intervals), `slots` (the lock-free table),
//! `buckets` (sparse histograms).

mod buckets;
mod clock;
mod slots;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use buckets::{Compacted, group};
pub use buckets::{SparseCounts, decode_bytes, histogram_of};
pub use clock::{
    DEFAULT_INTERVAL, IntervalClock, MAX_INTERVAL, MAX_INTERVALS, MIN_INTERVAL, interval_for,
    intervals_spanned,
};
use slots::SlotTable;

use super::{ErrorKind, FailReason, Latency};
use crate::client::DisconnectKind;

/// The latencies drawn over time, in the order of reports and charts.
pub const SERIES_LATENCIES: [Latency; 3] = [Latency::Connect, Latency::Ack, Latency::Delivery];

/// Position of `latency` in [`SERIES_LATENCIES`], if it is drawn over time.
pub fn series_index(latency: Latency) -> Option<usize> {
    match latency {
        Latency::Connect => Some(0),
        Latency::Ack => Some(1),
        Latency::Delivery => Some(2),
        _ => None,
    }
}

/// What happened at a moment of the run, drawn as a vertical line on the charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// A phase started.
    Phase,
    /// The embedded server was stopped (`setup.restart_server`).
    ServerDown,
    /// The embedded server listens again.
    ServerUp,
}

impl MarkKind {
    pub const ALL: [MarkKind; 3] = [MarkKind::Phase, MarkKind::ServerDown, MarkKind::ServerUp];
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Phase => "phase",
            MarkKind::ServerDown => "server_down",
            MarkKind::ServerUp => "server_up",
        }
    }
    pub fn from_name(name: &str) -> Option<MarkKind> {
        MarkKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Microseconds since the Unix epoch, on the same clock as the intervals.
    pub at_unix_us: u64,
    pub kind: MarkKind,
    pub label: String,
}

/// One interval's counters, bumped with relaxed atomics from any task.
#[derive(Debug, Default)]
pub(super) struct IntervalCounters {
    pub started: AtomicU64,
    pub connected: AtomicU64,
    pub failed: [AtomicU64; FailReason::ALL.len()],
    pub reconnects: AtomicU64,
    /// The most sessions open at once when one opened in this interval.
    pub peak_open: AtomicU64,
    pub disconnects: [AtomicU64; DisconnectKind::ALL.len()],
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Of the messages sent in this interval.
    pub delivery_expected: AtomicU64,
    pub delivery_received: AtomicU64,
}

/// One interval's values at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalValues {
    /// Microseconds since the Unix epoch at which the interval starts.
    pub start_unix_us: u64,
    pub started: u64,
    pub connected: u64,
    /// Indexed like [`FailReason::ALL`].
    pub failed: [u64; FailReason::ALL.len()],
    pub reconnects: u64,
    /// Indexed like [`DisconnectKind::ALL`].
    pub disconnects: [u64; DisconnectKind::ALL.len()],
    /// Sessions open at the end of the interval.
    pub open: u64,
    /// The most sessions open at once during the interval.
    pub peak_open: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Indexed like [`ErrorKind::ALL`].
    pub errors: [u64; ErrorKind::ALL.len()],
    pub delivery_expected: u64,
    pub delivery_received: u64,
    /// Per [`SERIES_LATENCIES`]: the interval's histogram, encoded (V2 + DEFLATE, see
    /// [`decode_bytes`]); `None` without samples.
    pub latencies: [Option<Vec<u8>>; SERIES_LATENCIES.len()],
}

/// The run over time, as plain numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesValues {
    pub interval: Duration,
    /// Contiguous, from the interval the run started in to the one it ended in.
    pub intervals: Vec<IntervalValues>,
    pub marks: Vec<Mark>,
}

/// The per-interval side of a run's metrics.
#[derive(Debug)]
pub struct Series {
    clock: IntervalClock,
    slots: SlotTable<IntervalCounters>,
    marks: Mutex<Vec<Mark>>,
    /// Latency histograms of intervals that are over (see `buckets`).
    compacted: Mutex<Compacted>,
}

impl Series {
    pub fn new(interval: Duration, anchor: Instant, wall: SystemTime) -> Series {
        Series {
            clock: IntervalClock::new(interval, anchor, wall),
            slots: SlotTable::default(),
            marks: Mutex::default(),
            compacted: Mutex::default(),
        }
    }

    /// Keep counts drained from the shards, encoded by interval.
    pub fn absorb(&self, entries: Vec<(usize, usize, u64, u64)>) {
        if entries.is_empty() {
            return;
        }
        self.compacted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .absorb(entries);
    }

    pub fn clock(&self) -> &IntervalClock {
        &self.clock
    }

    /// The counters of the interval `t` falls in.
    pub(super) fn at(&self, t: Instant) -> &IntervalCounters {
        self.slots.get(self.clock.slot(t))
    }

    /// The counters of interval `slot`.
    pub(super) fn slot(&self, slot: usize) -> &IntervalCounters {
        self.slots.get(slot)
    }

    pub fn mark(&self, at: Instant, kind: MarkKind, label: impl Into<String>) {
        let mark = Mark {
            at_unix_us: self.clock.unix_us(at),
            kind,
            label: label.into(),
        };
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(mark);
    }

    /// Every interval from the first to the one `until` falls in, with the latency counts of
    /// `shards` sorted into them.
    pub fn values<'a>(
        &self,
        until: Instant,
        shards: impl IntoIterator<Item = &'a SparseCounts>,
    ) -> SeriesValues {
        let last = self.clock.slot(until);
        let mut intervals: Vec<IntervalValues> = (0..=last)
            .map(|slot| {
                let mut v = IntervalValues {
                    start_unix_us: self.clock.slot_start_unix_us(slot),
                    ..IntervalValues::default()
                };
                if let Some(c) = self.slots.peek(slot) {
                    c.read_into(&mut v);
                }
                v
            })
            .collect();
        // Samples are charged to when their operation began, which is never after `until`; a
        // slot past it could only come from a sample recorded later.
        let recent = group(
            shards
                .into_iter()
                .flat_map(|shard| shard.entries())
                .map(|(slot, latency, value, count)| (slot.min(last), latency, value, count))
                .collect(),
        );
        let compacted = self.compacted.lock().unwrap_or_else(|p| p.into_inner());
        for (slot, v) in intervals.iter_mut().enumerate() {
            for (latency, hist) in v.latencies.iter_mut().enumerate() {
                let counts = recent.get(&(slot, latency)).map_or(&[][..], Vec::as_slice);
                *hist = compacted.with(slot, latency, counts);
            }
        }
        drop(compacted);
        let mut open: u64 = 0;
        for v in &mut intervals {
            let before = open;
            let opened = v.connected + v.reconnects;
            let closed: u64 = v.disconnects.iter().sum();
            // A close is never counted before its open, but the sum saturates rather than wrap
            // should a runner report a close twice.
            open = (open + opened).saturating_sub(closed);
            v.open = open;
            v.peak_open = v.peak_open.max(before).max(open);
        }
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        marks.sort_by_key(|m| m.at_unix_us);
        SeriesValues {
            interval: self.clock.len(),
            intervals,
            marks,
        }
    }
}

impl IntervalCounters {
    fn read_into(&self, v: &mut IntervalValues) {
        let load = |a: &AtomicU64| a.load(Relaxed);
        v.started = load(&self.started);
        v.connected = load(&self.connected);
        v.failed = std::array::from_fn(|i| load(&self.failed[i]));
        v.reconnects = load(&self.reconnects);
        v.peak_open = load(&self.peak_open);
        v.disconnects = std::array::from_fn(|i| load(&self.disconnects[i]));
        v.messages_sent = load(&self.sent);
        v.messages_received = load(&self.received);
        v.errors = std::array::from_fn(|i| load(&self.errors[i]));
        v.delivery_expected = load(&self.delivery_expected);
        v.delivery_received = load(&self.delivery_received);
    }
}
