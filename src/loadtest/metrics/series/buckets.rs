//! Per-interval latency histograms kept sparse: a count per HdrHistogram bucket that was hit.
//!
//! A dense HdrHistogram at 3 significant figures spans 40-90 KB once it has seen a value of a
//! second; one per interval and latency would cost hundreds of megabytes over an hour. A bucket
//! is identified instead by a small number (its *class*), and an interval keeps a count only
//! for the classes its samples fell in, typically a few hundred. The classes are exactly the
//! buckets of [`super::super::new_histogram`], so a histogram rebuilt from the counts (by
//! recording each class's lowest value) is the histogram the samples would have made.
//!
//! Counts are sparse only while an interval is recent: the runner regularly moves the counts of
//! intervals that are over out of the shards into [`Compacted`], one encoded histogram (V2 +
//! DEFLATE, typically a few hundred bytes) per interval and latency, so an hour-long run holds
//! kilobytes per interval rather than a hash entry per bucket per shard. A sample that arrives
//! for an interval already compacted (a recorder that flushed late) is added to it at the next
//! compaction or at the end.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use super::super::histograms::SIGFIGS;

/// log2 of the sub-buckets per bucket at [`SIGFIGS`] = 3: the smallest power of two of at
/// least 2 * 10^3, as HdrHistogram computes it.
const SUB_BUCKET_BITS: u32 = 11;
const SUB_BUCKET_MASK: u64 = (1 << SUB_BUCKET_BITS) - 1;
const _: () = assert!(
    SIGFIGS == 3,
    "the class arithmetic below is for 3 significant figures"
);

/// The bucket class of `value` (below 2^17 for any u64).
pub fn class_of(value: u64) -> u32 {
    // As HdrHistogram's bucket_for: powers of two above what fits in the first bucket.
    let bucket = 64 - (value | SUB_BUCKET_MASK).leading_zeros() - SUB_BUCKET_BITS;
    let sub = (value >> bucket) as u32;
    (bucket << SUB_BUCKET_BITS) | sub
}

/// The lowest value of a class: recording it lands in the same bucket as every value of the
/// class.
pub fn class_value(class: u32) -> u64 {
    let bucket = class >> SUB_BUCKET_BITS;
    u64::from(class & SUB_BUCKET_MASK as u32) << bucket
}

/// A histogram built from `(class lowest value, count)` pairs.
pub fn histogram_of(counts: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = super::super::new_histogram();
    for (value, count) in counts {
        // An auto-resizing histogram grows to any value; only u64 overflow of a count could
        // fail, and counts come from u64 sums that cannot exceed the samples recorded.
        if h.record_n(*value, *count).is_err() {
            h.saturating_record(*value);
        }
    }
    h
}

/// Hashes the packed keys with one multiply instead of SipHash: the keys are this process's
/// own numbers, not attacker input, and the shard lock is held while a recorder's batch is
/// counted (SipHash alone cost about 20 ns per sample on the development VM).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // The table picks buckets by the low bits and tags by the high ones: fold the product's
        // high half (where every key bit, the interval's included, has mixed) into the low.
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Sample counts of one shard by (slot, latency, class), packed in one integer key.
#[derive(Debug, Default)]
pub struct SparseCounts {
    counts: HashMap<u64, u64, BuildHasherDefault<KeyHasher>>,
}

/// Latencies drawn over time: at most 256 (one byte of the key).
fn key(slot: u32, latency: usize, class: u32) -> u64 {
    (u64::from(slot) << 32) | ((latency as u64 & 0xff) << 24) | u64::from(class)
}

fn unkey(key: u64) -> (usize, usize, u64) {
    (
        (key >> 32) as usize,
        ((key >> 24) & 0xff) as usize,
        class_value((key & 0xff_ffff) as u32),
    )
}

impl SparseCounts {
    pub fn record(&mut self, slot: u32, latency: usize, micros: u64) {
        *self
            .counts
            .entry(key(slot, latency, class_of(micros)))
            .or_insert(0) += 1;
    }

    /// Remove and answer every count of a slot before `cutoff`, as in [`SparseCounts::entries`].
    pub fn drain_before(&mut self, cutoff: usize) -> Vec<(usize, usize, u64, u64)> {
        let mut drained = Vec::new();
        self.counts.retain(|k, n| {
            let (slot, latency, value) = unkey(*k);
            let keep = slot >= cutoff;
            if !keep {
                drained.push((slot, latency, value, *n));
            }
            keep
        });
        drained
    }

    /// Every count as (slot, latency, class lowest value, count), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, usize, u64, u64)> + '_ {
        self.counts.iter().map(|(k, n)| {
            let (slot, latency, value) = unkey(*k);
            (slot, latency, value, *n)
        })
    }
}

/// A histogram in the V2 + DEFLATE encoding (the report's, before base64).
pub fn encode_bytes(h: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Serializing an in-memory histogram into a Vec cannot fail.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

/// The inverse of [`encode_bytes`].
pub fn decode_bytes(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("not an HdrHistogram V2 histogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// Add `(value, count)` pairs to the encoded histogram `stored` (empty: none yet).
fn add_encoded(stored: &mut Vec<u8>, counts: &[(u64, u64)]) {
    let mut h = histogram_of(counts);
    if !stored.is_empty()
        && let Ok(before) = decode_bytes(stored)
    {
        // Both auto-resize at the same precision, which `add` accepts.
        let _ = h.add(&before);
    }
    *stored = encode_bytes(&h);
}

/// The latency histograms of intervals that are over, encoded, by (slot, latency).
#[derive(Debug, Default)]
pub struct Compacted {
    hists: BTreeMap<(usize, usize), Vec<u8>>,
}

impl Compacted {
    /// Add drained counts `(slot, latency, value, count)`.
    pub fn absorb(&mut self, entries: Vec<(usize, usize, u64, u64)>) {
        for ((slot, latency), counts) in group(entries) {
            add_encoded(self.hists.entry((slot, latency)).or_default(), &counts);
        }
    }

    /// The encoded histogram of `slot` and `latency` with `counts` added; `None` when neither
    /// has a sample.
    pub fn with(&self, slot: usize, latency: usize, counts: &[(u64, u64)]) -> Option<Vec<u8>> {
        let stored = self.hists.get(&(slot, latency));
        match (stored, counts.is_empty()) {
            (None, true) => None,
            (Some(bytes), true) => Some(bytes.clone()),
            (stored, false) => {
                let mut bytes = stored.cloned().unwrap_or_default();
                add_encoded(&mut bytes, counts);
                Some(bytes)
            }
        }
    }
}

/// Counts grouped by (slot, latency).
pub fn group(entries: Vec<(usize, usize, u64, u64)>) -> BTreeMap<(usize, usize), Vec<(u64, u64)>> {
    let mut grouped: BTreeMap<(usize, usize), Vec<(u64, u64)>> = BTreeMap::new();
    for (slot, latency, value, count) in entries {
        grouped
            .entry((slot, latency))
            .or_default()
            .push((value, count));
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values around every bucket edge up to hours in microseconds, and a few huge ones.
    fn probe_values() -> Vec<u64> {
        let mut values: Vec<u64> = (0..5000).collect();
        for shift in 0..64u32 {
            let p = 1u64 << shift;
            for v in [p.saturating_sub(1), p, p.saturating_add(1), p / 3 * 2] {
                values.push(v);
            }
        }
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x % 7_200_000_000);
        }
        values.push(u64::MAX);
        values
    }

    #[test]
    fn a_class_is_exactly_an_hdrhistogram_bucket() {
        let h = crate::loadtest::metrics::new_histogram();
        for v in probe_values() {
            let c = class_of(v);
            assert!(c < 1 << 17, "{v} -> {c}");
            assert_eq!(class_value(c), h.lowest_equivalent(v), "{v}");
            assert!(h.equivalent(class_value(c), v), "{v}");
        }
    }

    #[test]
    fn compacted_intervals_keep_every_sample_including_late_ones() {
        let mut shard = SparseCounts::default();
        for v in [100, 200, 300, 4000] {
            shard.record(0, 1, v);
            shard.record(2, 1, v * 2);
        }
        let mut compacted = Compacted::default();
        compacted.absorb(shard.drain_before(1));
        assert_eq!(shard.entries().count(), 4, "slot 2 stays sparse");
        // A late sample for slot 0, flushed after its interval was compacted.
        shard.record(0, 1, 250);
        compacted.absorb(shard.drain_before(1));
        let h = decode_bytes(&compacted.with(0, 1, &[]).expect("slot 0")).expect("decodes");
        assert_eq!(h.len(), 5);
        assert!(h.equivalent(h.max(), 4000));
        let rest: Vec<(u64, u64)> = shard.entries().map(|(_, _, v, n)| (v, n)).collect();
        let h = decode_bytes(&compacted.with(2, 1, &rest).expect("slot 2")).expect("decodes");
        assert_eq!(h.len(), 4);
        assert!(compacted.with(1, 1, &[]).is_none());
    }

    #[test]
    fn counts_rebuild_the_histogram_the_samples_would_have_made() {
        let values = probe_values();
        let mut direct = crate::loadtest::metrics::new_histogram();
        let mut sparse = SparseCounts::default();
        for v in values.iter().copied().filter(|v| *v < 1 << 40) {
            direct.record(v).expect("records");
            sparse.record(7, 2, v);
        }
        let counts: Vec<(u64, u64)> = sparse.entries().map(|(_, _, v, n)| (v, n)).collect();
        assert!(
            sparse
                .entries()
                .all(|(slot, lat, _, _)| slot == 7 && lat == 2)
        );
        let rebuilt = histogram_of(&counts);
        assert_eq!(rebuilt.len(), direct.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                rebuilt.value_at_quantile(q),
                direct.value_at_quantile(q),
                "q={q}"
            );
        }
        assert_eq!(rebuilt.max(), direct.max());
        assert_eq!(rebuilt.min(), direct.min());
    }
}
