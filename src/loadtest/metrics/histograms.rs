//! One histogram per latency, growing to whatever range it sees.

use hdrhistogram::Histogram;

use super::Latency;

/// Significant figures kept by every histogram: 0.1% relative precision.
pub const SIGFIGS: u8 = 3;

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
