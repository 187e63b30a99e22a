//! Abuse limits enforced by the connection tasks before anything reaches the engine: a token
//! bucket of commands per connection ([`TokenBucket`], time passed in) and counts per client IP
//! address ([`PerIp`]: open connections, connections holding a nameplate).
//!
//! Owns: the arithmetic and the shared per-address tables. Must not: send anything or read the
//! clock; the connection task decides what a refusal looks like (docs/operations.md lists them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Commands per second per connection, with a burst allowance.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// Time of the last refill, as an offset from the connection's start.
    last: Duration,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second (`rate` 0: no limit).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Duration::ZERO,
        }
    }

    /// Take one token at time `now` (since the connection's start); `false` when empty.
    pub fn take(&mut self, now: Duration) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts per client address, each below a limit (0: no limit).
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted unit; gives it back when dropped.
#[derive(Debug)]
pub struct PerIpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl PerIp {
    /// A table allowing `limit` units per address (0: unlimited, but still counted).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerIp {
            limit,
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Take a unit for `ip`, or `None` when it already holds `limit`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpSlot> {
        let mut counts = self.lock();
        let n = counts.entry(ip).or_insert(0);
        if self.limit > 0 && *n >= self.limit {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(PerIpSlot {
            table: self.clone(),
            ip,
        })
    }

    /// Units held by `ip` now (tests).
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// The address limits count: IPv4-mapped IPv6 folded to IPv4, so one client is one key.
pub fn client_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(10.0, 5);
        let t0 = Duration::ZERO;
        assert!((0..5).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        // 100 ms later: one more token.
        assert!(b.take(Duration::from_millis(100)));
        assert!(!b.take(Duration::from_millis(100)));
        // Long idle: refills to the burst, not beyond.
        let later = Duration::from_secs(60);
        assert!((0..5).all(|_| b.take(later)));
        assert!(!b.take(later));
        // Time going backwards gives nothing.
        assert!(!b.take(Duration::from_secs(1)));
        let mut unlimited = TokenBucket::new(0.0, 1);
        assert!((0..1000).all(|_| unlimited.take(t0)));
    }

    #[test]
    fn per_ip_counts_and_releases() {
        let t = PerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = t.acquire(ip).unwrap();
        let _b = t.acquire(ip).unwrap();
        assert!(t.acquire(ip).is_none());
        assert!(t.acquire(other).is_some());
        drop(a);
        assert_eq!(t.count(ip), 1);
        assert!(t.acquire(ip).is_some());
        assert_eq!(client_ip("::ffff:192.0.2.1".parse().unwrap()), ip);
    }
}
