//! Latency recording for load runs: an HDR histogram of microseconds with a small summary type.
//!
//! Owns arithmetic only; it must not measure time itself (callers pass durations).

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies up to this long are recorded exactly (3 significant digits); longer ones are clamped.
const MAX_TRACKED: Duration = Duration::from_secs(600);

/// A histogram of durations (microsecond resolution).
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Latencies {
        let max = u64::try_from(MAX_TRACKED.as_micros()).unwrap_or(u64::MAX);
        // Constant, valid bounds (low ≥ 1, high ≥ 2·low, sigfig ≤ 5): this cannot fail.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, max, 3).expect("valid histogram bounds");
        Latencies { hist }
    }

    /// Record one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(us);
    }

    /// Add another histogram's samples.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.hist.add(&other.hist);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0.0..=1.0); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.hist.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.hist.value_at_quantile(q))
    }

    /// Largest sample; zero when empty.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.hist.max())
    }

    /// Mean; zero when empty.
    pub fn mean(&self) -> Duration {
        Duration::from_secs_f64(self.hist.mean() / 1e6)
    }
}

/// Milliseconds as `f64`, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut l = Latencies::new();
        assert_eq!(l.quantile(0.5), Duration::ZERO);
        for i in 1..=100u64 {
            l.record(Duration::from_millis(i));
        }
        assert_eq!(l.count(), 100);
        let p50 = ms(l.quantile(0.5));
        let p99 = ms(l.quantile(0.99));
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        let mut other = Latencies::new();
        other.record(Duration::from_secs(2));
        l.merge(&other);
        assert_eq!(l.count(), 101);
        assert!(l.max() >= Duration::from_millis(1999));
    }
}
