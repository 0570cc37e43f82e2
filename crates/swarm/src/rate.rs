//! Transfer rates over a short sliding window, driven by the caller's clock.

use std::time::{Duration, Instant};

/// Seconds of history a [`RateMeter`] averages over.
const WINDOW: usize = 5;

/// Bytes per second over the last few seconds.
///
/// Bytes are counted in one-second buckets keyed by the time since the meter was made; the
/// rate is the sum of the complete buckets in the window divided by their span, so it reacts
/// within a few seconds and costs O(1) per sample.
#[derive(Debug, Clone)]
pub(crate) struct RateMeter {
    origin: Instant,
    buckets: [u64; WINDOW],
    /// The second (since `origin`) the newest bucket stands for.
    head: u64,
    total: u64,
}

impl RateMeter {
    pub(crate) fn new(now: Instant) -> Self {
        RateMeter {
            origin: now,
            buckets: [0; WINDOW],
            head: 0,
            total: 0,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Moves the window so that its newest bucket is second `sec`.
    fn advance(&mut self, sec: u64) {
        if sec <= self.head {
            return;
        }
        let steps = (sec - self.head).min(WINDOW as u64);
        for i in 1..=steps {
            let idx = ((self.head + i) % WINDOW as u64) as usize;
            if let Some(b) = self.buckets.get_mut(idx) {
                *b = 0;
            }
        }
        self.head = sec;
    }

    /// Counts `bytes` transferred at `now`.
    pub(crate) fn add(&mut self, now: Instant, bytes: u64) {
        let sec = self.second(now);
        self.advance(sec);
        let idx = (self.head % WINDOW as u64) as usize;
        if let Some(b) = self.buckets.get_mut(idx) {
            *b = b.saturating_add(bytes);
        }
        self.total = self.total.saturating_add(bytes);
    }

    /// Bytes per second at `now`.
    pub(crate) fn rate(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        let sec = self.second(now);
        self.advance(sec);
        let sum: u64 = self.buckets.iter().sum();
        // The current bucket is partly filled: divide by the time the window really covers.
        let covered = elapsed.min(Duration::from_secs(WINDOW as u64));
        let millis = covered.as_millis().max(1000) as u64;
        sum.saturating_mul(1000) / millis
    }

    /// Bytes counted since the meter was made.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_is_measured() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for ms in (0..10_000).step_by(100) {
            m.add(t0 + Duration::from_millis(ms), 10_000);
        }
        let r = m.rate(t0 + Duration::from_millis(10_000));
        assert!((80_000..=120_000).contains(&r), "{r}");
        assert_eq!(m.total(), 100 * 10_000);
    }

    #[test]
    fn rate_decays_to_zero_when_idle() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        m.add(t0, 1_000_000);
        assert!(m.rate(t0 + Duration::from_millis(500)) > 0);
        assert_eq!(m.rate(t0 + Duration::from_secs(20)), 0);
    }
}
