//! Reconnect delays: exponential, capped, with jitter so that many clients dropped by one server
//! restart do not all come back in the same millisecond.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Attempts before giving up; 0 means no limit.
    pub max_attempts: u32,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, max_attempts: u32) -> Self {
        Backoff {
            initial,
            max,
            max_attempts,
            attempt: 0,
        }
    }

    /// Attempts made since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt, or `None` once the attempts are used up.
    /// "Equal jitter": half the exponential delay fixed, the other half random.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_attempts != 0 && self.attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt += 1;
        let half = exp / 2;
        let random = random_u64() % (half.as_micros() as u64 + 1);
        Some(half + Duration::from_micros(random))
    }
}

/// A random number without a dependency: std's hasher keys are randomly seeded per instance.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_stops() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000), 6);
        let delays: Vec<_> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(delays.len(), 6);
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for (d, max) in delays.iter().zip(bounds) {
            assert!(*d >= Duration::from_millis(max / 2) && *d <= Duration::from_millis(max));
        }
        b.reset();
        assert!(b.next_delay().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn zero_attempts_means_unbounded() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 0);
        assert!((0..100).all(|_| b.next_delay().is_some()));
    }
}
