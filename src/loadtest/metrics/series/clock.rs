//! Which interval an instant falls in, with intervals aligned on wall-clock time.
//!
//! Interval `k` of a report covers `[k * len, (k + 1) * len)` counted from the Unix epoch, not
//! from the start of the run. Two generators started a few hundred milliseconds apart therefore
//! cut time at the same boundaries, and merging their reports adds interval to interval exactly
//! (given clocks kept in step by NTP, as any distributed measurement needs).
//!
//! Instants are mapped to wall-clock time through one anchor taken when the run's metrics are
//! created: after that only the monotonic clock is read, so a wall-clock step during a run
//! (NTP slew, a manual change) cannot move samples between intervals.

use std::time::{Duration, Instant, SystemTime};

/// The shortest interval accepted: finer slices are mostly noise and cost a report entry each.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval accepted.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The default of `load-test --interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The most intervals a run may plan: about 2 KB of report each, so 20 MB of JSON at most.
/// A longer run takes a longer `--interval`.
pub const MAX_INTERVALS: u64 = 10_000;

/// Intervals of `interval` a run of `duration` spans (one more, since a run rarely starts on a
/// boundary).
pub fn intervals_spanned(duration: Duration, interval: Duration) -> u64 {
    let len = interval.as_micros().max(1);
    u64::try_from(duration.as_micros() / len)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The shortest whole-second interval (or whole-minute, past a minute) that keeps a run of
/// `duration` within [`MAX_INTERVALS`], for the error that asks for it.
pub fn interval_for(duration: Duration) -> Duration {
    let seconds = duration.as_secs().div_ceil(MAX_INTERVALS - 1).max(1);
    if seconds > 60 {
        Duration::from_secs(seconds.div_ceil(60) * 60)
    } else {
        Duration::from_secs(seconds)
    }
}

/// Maps instants of this process to wall-clock-aligned interval numbers.
#[derive(Debug, Clone, Copy)]
pub struct IntervalClock {
    /// Interval length in microseconds (a whole number of milliseconds).
    len_us: u64,
    /// The monotonic instant the anchor was taken at.
    anchor: Instant,
    /// The interval (counted from the Unix epoch) the anchor falls in: slot 0.
    first: u64,
    /// How far into that interval the anchor lies, in microseconds.
    offset_us: u64,
}

impl IntervalClock {
    /// Intervals of `len` (rounded to whole milliseconds, at least 1 ms), anchored at `anchor`,
    /// which happened at wall-clock time `wall`.
    pub fn new(len: Duration, anchor: Instant, wall: SystemTime) -> IntervalClock {
        let len_us = (len.as_millis().max(1) as u64).saturating_mul(1000);
        // A clock before 1970 is a broken machine; count from the epoch rather than fail.
        let unix_us = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        IntervalClock {
            len_us,
            anchor,
            first: unix_us / len_us,
            offset_us: unix_us % len_us,
        }
    }

    /// The interval length.
    pub fn len(&self) -> Duration {
        Duration::from_micros(self.len_us)
    }

    /// The slot (0 = the anchor's interval) of `t`; instants before the anchor count in slot 0.
    pub fn slot(&self, t: Instant) -> usize {
        self.slot_after(t.saturating_duration_since(self.anchor))
    }

    /// The slot of the instant `since_anchor` after the anchor.
    pub fn slot_after(&self, since_anchor: Duration) -> usize {
        let us = u64::try_from(since_anchor.as_micros()).unwrap_or(u64::MAX);
        usize::try_from(self.offset_us.saturating_add(us) / self.len_us).unwrap_or(usize::MAX)
    }

    /// Microseconds since the Unix epoch at `t`, on this clock.
    pub fn unix_us(&self, t: Instant) -> u64 {
        let anchor = self.first * self.len_us + self.offset_us;
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        match t.checked_duration_since(self.anchor) {
            Some(after) => anchor.saturating_add(micros(after)),
            None => anchor.saturating_sub(micros(self.anchor - t)),
        }
    }

    /// Microseconds since the Unix epoch at which `slot` starts.
    pub fn slot_start_unix_us(&self, slot: usize) -> u64 {
        (self.first.saturating_add(slot as u64)).saturating_mul(self.len_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_cut_on_the_wall_clock_not_at_the_start_of_the_run() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        // Two generators anchored 300 ms apart, at 12.4 s and 12.7 s past a round minute.
        let a_wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_012_400);
        let a = IntervalClock::new(second, now, a_wall);
        let b = IntervalClock::new(
            second,
            now + Duration::from_millis(300),
            a_wall + Duration::from_millis(300),
        );
        assert_eq!(a.slot_start_unix_us(0), 1_800_000_012_000_000);
        assert_eq!(b.slot_start_unix_us(0), 1_800_000_012_000_000);
        // 500 ms after a's anchor is 12.9 s: still the first interval for both.
        let t = now + Duration::from_millis(500);
        assert_eq!((a.slot(t), b.slot(t)), (0, 0));
        // 13.0 s starts the next one for both, whenever each started.
        let t = now + Duration::from_millis(600);
        assert_eq!((a.slot(t), b.slot(t)), (1, 1));
        assert_eq!(
            a.slot(now - second),
            0,
            "before the anchor counts in slot 0"
        );
    }

    #[test]
    fn other_lengths_align_on_their_own_multiples() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_012_345);
        let c = IntervalClock::new(Duration::from_millis(250), now, wall);
        assert_eq!(c.slot_start_unix_us(0), 1_000_012_250_000);
        assert_eq!(c.slot(now + Duration::from_millis(154)), 0);
        assert_eq!(c.slot(now + Duration::from_millis(155)), 1);
        assert_eq!(c.len(), Duration::from_millis(250));
    }
}
