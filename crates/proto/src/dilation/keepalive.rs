//! Timers of the Dilation endpoint (docs/protocol.md §6.7): the keepalive of the connection in
//! use and the bounded exponential backoff between reconnection attempts.
//!
//! Owns: when the next PING is due, when a connection that has been silent too long must be
//! aborted, and how long to wait before the next attempt (base · 2^attempt, capped, scaled by
//! a jitter factor the caller draws).
//!
//! Must not: read clocks or draw random numbers (both are passed in), build records or decide
//! what an expiry means (that is [`super::endpoint`]).

use std::time::{Duration, Instant};

/// The keepalive of one connection in use.
///
/// The Leader sends a PING every `interval`; both sides abort the connection when nothing at all
/// arrived on it for `timeout` (any inbound bytes count, not only PONGs, so a busy connection is
/// never aborted for a PONG stuck behind data).
#[derive(Debug, Clone)]
pub struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    next_ping: Option<Instant>,
    last_rx: Instant,
}

impl Keepalive {
    /// A keepalive for a connection chosen at `now`. `interval` is `None` on a side that does not
    /// ping (the Follower).
    pub fn new(now: Instant, interval: Option<Duration>, timeout: Duration) -> Self {
        Keepalive {
            interval,
            timeout,
            next_ping: interval.map(|i| now + i),
            last_rx: now,
        }
    }

    /// Something arrived on the connection.
    pub fn received(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// True once the connection was silent for the whole timeout: abort it.
    pub fn is_dead(&self, now: Instant) -> bool {
        now >= self.deadline()
    }

    /// When [`Keepalive::is_dead`] becomes true unless something arrives.
    pub fn deadline(&self) -> Instant {
        self.last_rx + self.timeout
    }

    /// True if a PING is due at `now`; schedules the next one.
    pub fn ping_due(&mut self, now: Instant) -> bool {
        match (self.next_ping, self.interval) {
            (Some(at), Some(interval)) if now >= at => {
                self.next_ping = Some(now + interval);
                true
            }
            _ => false,
        }
    }

    /// When the next PING is due (if this side pings at all).
    pub fn next_ping(&self) -> Option<Instant> {
        self.next_ping
    }

    /// The earliest instant at which [`Keepalive::ping_due`] or [`Keepalive::is_dead`] changes.
    pub fn next_timeout(&self) -> Instant {
        match self.next_ping {
            Some(p) => p.min(self.deadline()),
            None => self.deadline(),
        }
    }
}

/// Bounded exponential backoff: attempt `n` waits `min(base · 2^n, max) · jitter`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt, counting it. `jitter` is clamped to [0.5, 1.0].
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let raw = self.base.saturating_mul(factor).min(self.max);
        raw.mul_f64(jitter.clamp(0.5, 1.0))
    }

    /// How many attempts were counted since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A connection proved stable: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay(1.0).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.next_delay(0.0), Duration::from_millis(500));
        for _ in 0..100 {
            b.next_delay(1.0);
        }
        assert_eq!(b.next_delay(1.0), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next_delay(0.75), Duration::from_millis(75));
    }

    #[test]
    fn keepalive_pings_and_dies() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(t0, Some(s), 2 * s);
        assert!(!k.ping_due(t0));
        assert_eq!(k.next_timeout(), t0 + s);
        assert!(k.ping_due(t0 + s));
        assert!(!k.ping_due(t0 + s));
        assert!(!k.is_dead(t0 + s));
        k.received(t0 + s);
        assert!(!k.is_dead(t0 + 2 * s));
        assert!(k.is_dead(t0 + 3 * s));
        let f = Keepalive::new(t0, None, s);
        assert_eq!(f.next_timeout(), t0 + s);
    }
}
