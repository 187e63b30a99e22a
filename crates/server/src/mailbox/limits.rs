//! Abuse limits enforced by the connection tasks before anything reaches the engine: a token
//! bucket of commands per connection ([`TokenBucket`], time passed in), a token bucket of new
//! connections per client IP address ([`RatePerIp`]) and counts per client IP address
//! ([`PerIp`]: open connections, connections holding a nameplate).
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

    /// A full bucket whose clock starts at `now` (for buckets made later than their clock's origin).
    pub fn starting_at(rate: f64, burst: u32, now: Duration) -> Self {
        TokenBucket {
            last: now,
            ..TokenBucket::new(rate, burst)
        }
    }

    /// Whether the bucket would be full at `now` (nothing to remember about it).
    pub fn full_at(&self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
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

/// Entries [`RatePerIp`] holds before it forgets the addresses whose bucket is full again.
const RATE_TABLE_PRUNE_AT: usize = 4096;

/// New connections per second per client address: one [`TokenBucket`] per address, forgotten
/// once it has refilled (so the table holds only addresses seen within the last burst/rate s).
#[derive(Debug)]
pub struct RatePerIp {
    rate: f64,
    burst: u32,
    table: Mutex<RateTable>,
}

#[derive(Debug)]
struct RateTable {
    buckets: HashMap<IpAddr, TokenBucket>,
    prune_at: usize,
}

impl RatePerIp {
    /// `rate` new connections per second per address after a burst of `burst` (`rate` 0: no limit).
    pub fn new(rate: f64, burst: u32) -> Self {
        RatePerIp {
            rate,
            burst,
            table: Mutex::new(RateTable {
                buckets: HashMap::new(),
                prune_at: RATE_TABLE_PRUNE_AT,
            }),
        }
    }

    /// The configured rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Count a new connection from `ip` at `now` (since a fixed origin); `false`: over the rate.
    pub fn take(&self, ip: IpAddr, now: Duration) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.buckets.len() >= t.prune_at {
            t.buckets.retain(|_, b| !b.full_at(now));
            // Many addresses all busy at once: prune again only once the table has doubled.
            t.prune_at = (t.buckets.len() * 2).max(RATE_TABLE_PRUNE_AT);
        }
        let (rate, burst) = (self.rate, self.burst);
        t.buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::starting_at(rate, burst, now))
            .take(now)
    }

    /// Addresses remembered now (tests).
    pub fn remembered(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
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
    fn connection_rate_per_address_with_pruning() {
        let r = RatePerIp::new(2.0, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Duration::from_secs(100);
        assert!((0..3).all(|_| r.take(ip, t)));
        assert!(!r.take(ip, t), "burst spent");
        assert!(r.take(other, t), "another address has its own bucket");
        assert!(r.take(ip, t + Duration::from_millis(500)), "refilled at 2/s");
        // Thousands of addresses, once each: the table forgets the refilled ones.
        for i in 0..(RATE_TABLE_PRUNE_AT as u32 * 3) {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(r.take(a, t + Duration::from_secs(10 + u64::from(i / 1000) * 10)));
        }
        assert!(r.remembered() <= 2 * RATE_TABLE_PRUNE_AT, "{}", r.remembered());
        assert!(RatePerIp::new(0.0, 1).take(ip, t) && RatePerIp::new(0.0, 1).take(ip, t));
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
