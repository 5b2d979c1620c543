//! A table of per-interval slots that grows without locks and never moves a slot.
//!
//! Counters are bumped from every session task at once, so the table is read far more often
//! than it grows: segments double in size (64, 128, 256, ... slots) and each is allocated once,
//! on first use, through a `OnceLock`. A slot's address never changes, so a task holds no lock
//! while it bumps an atomic in it, and a run pays for the slots it reaches, not for a
//! preallocated maximum.

use std::sync::OnceLock;

/// Slots in the first segment; segment `s` holds `FIRST << s`.
const FIRST: usize = 64;
/// Enough segments for `FIRST * (2^SEGMENTS - 1)` slots: far beyond any run's interval count.
const SEGMENTS: usize = 26;

#[derive(Debug)]
pub struct SlotTable<T> {
    segments: [OnceLock<Box<[T]>>; SEGMENTS],
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        SlotTable {
            segments: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

/// Segment and position of slot `index`.
fn locate(index: usize) -> (usize, usize) {
    // Block numbers count in units of FIRST from 1; segment s starts at block 2^s.
    let block = index / FIRST + 1;
    let segment = (usize::BITS - 1 - block.leading_zeros()) as usize;
    (segment, index - FIRST * ((1 << segment) - 1))
}

/// The largest index the table holds.
fn last_index() -> usize {
    FIRST * ((1 << SEGMENTS) - 1) - 1
}

impl<T: Default> SlotTable<T> {
    /// Slot `index`, allocating its segment on first use. Indices past the table's end (about
    /// 4 billion intervals, unreachable within the longest run a scenario may plan) share the
    /// last slot rather than panic.
    pub fn get(&self, index: usize) -> &T {
        let (segment, at) = locate(index.min(last_index()));
        let slots = self.segments[segment]
            .get_or_init(|| (0..FIRST << segment).map(|_| T::default()).collect());
        &slots[at]
    }

    /// Slot `index` if its segment was ever allocated (nothing was recorded in it otherwise).
    pub fn peek(&self, index: usize) -> Option<&T> {
        let (segment, at) = locate(index.min(last_index()));
        self.segments[segment].get().map(|slots| &slots[at])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;

    #[test]
    fn segments_double_and_tile_the_index_space() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        assert_eq!(locate(447), (2, 255));
        assert_eq!(
            locate(last_index()),
            (SEGMENTS - 1, (FIRST << (SEGMENTS - 1)) - 1)
        );
    }

    #[test]
    fn slots_keep_their_values_as_the_table_grows() {
        let table: SlotTable<AtomicU64> = SlotTable::default();
        assert!(table.peek(5).is_none());
        for i in 0..1000 {
            table.get(i).fetch_add(i as u64, Relaxed);
        }
        for i in 0..1000 {
            assert_eq!(table.get(i).load(Relaxed), i as u64);
        }
        assert_eq!(table.peek(999).map(|s| s.load(Relaxed)), Some(999));
        assert!(table.peek(5000).is_none());
    }
}
