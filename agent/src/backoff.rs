//! Exponential backoff with optional jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    jitter: bool,
    seed: RandomState,
    n: u64,
}

impl Backoff {
    /// Plain doubling from `initial` to `max` (health waits: 0.5 s → 5 s, as the issue says).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next: initial,
            max,
            jitter: false,
            seed: RandomState::new(),
            n: 0,
        }
    }

    /// Doubling with "equal jitter": each delay is uniform in [d/2, d], so that nodes that
    /// boot together do not retry in lockstep against the same leader.
    pub fn with_jitter(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            jitter: true,
            ..Backoff::new(initial, max)
        }
    }

    /// The delay to wait now; advances the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        if !self.jitter {
            return d;
        }
        d / 2 + self.jitter(d / 2)
    }

    /// Uniform in [0, `max`], from the same per-run sequence as the delays.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        self.n += 1;
        let mut h = self.seed.build_hasher();
        h.write_u64(self.n);
        max * (h.finish() % 1_001) as u32 / 1_000
    }

    pub fn reset(&mut self, initial: Duration) {
        self.next = initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let got: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        let mut b = Backoff::with_jitter(Duration::from_secs(1), Duration::from_secs(8));
        for want in [1000u128, 2000, 4000, 8000, 8000] {
            let d = b.next_delay().as_millis();
            assert!(
                d >= want / 2 && d <= want,
                "{d} not in [{}, {want}]",
                want / 2
            );
        }
    }
}
