//! Usage records of finished connections, as magic-wormhole-transit-relay 0.5 computes them
//! (docs/protocol.md §4.6): moods, times, byte totals and the `--blur-usage` rounding.
//!
//! Owns: the pure computation of one record and of the `current` statistics row.
//! Must not: write anywhere (see `usage_sink`), read clocks (times are passed in).

use serde::Serialize;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mood {
    /// Paired and relayed; one record per pair, written for the half that registered first.
    Happy,
    /// Sent a valid request but no partner came (closed, or our wait limit expired).
    Lonely,
    /// Sent a request line that is not a valid request (`bad handshake`).
    Errory,
    /// Sent data before it was paired (`impatient`).
    Impatient,
    /// Dropped because another connection on its token was paired.
    Redundant,
    /// Closed (or was closed) before sending a complete request line.
    Empty,
}

impl Mood {
    /// The name stored in the `result` column and the JSON `mood` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Mood::Happy => "happy",
            Mood::Lonely => "lonely",
            Mood::Errory => "errory",
            Mood::Impatient => "impatient",
            Mood::Redundant => "redundant",
            Mood::Empty => "empty",
        }
    }
}

/// One row of the `usage` table (and one `--log-fd` JSON line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRecord {
    /// Seconds since the epoch when the (first-registered) connection was accepted; blurred if asked.
    pub started: f64,
    /// Seconds from the earlier of the two connections' start to the end.
    pub total_time: f64,
    /// Seconds between the two connections' starts; `None` when there was no partner.
    pub waiting_time: Option<f64>,
    /// Bytes relayed, both directions; blurred if asked.
    pub total_bytes: u64,
    /// How it ended.
    pub mood: Mood,
}

/// One half of a finished connection or pair, as seen by the driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Half {
    /// Seconds since the epoch when it was accepted.
    pub started: f64,
    /// Bytes it sent that were relayed to its partner.
    pub bytes_sent: u64,
}

impl UsageRecord {
    /// Build the record for connection `me`, optionally paired with `buddy`, finished at `finished`
    /// (seconds since the epoch). `blur` is `--blur-usage` in seconds (`None` or 0: no blurring).
    pub fn new(me: Half, buddy: Option<Half>, finished: f64, mood: Mood, blur: Option<u64>) -> Self {
        let (total_time, waiting_time, total_bytes) = match buddy {
            Some(b) => {
                let first = me.started.min(b.started);
                let last = me.started.max(b.started);
                (
                    finished - first,
                    Some(last - first),
                    me.bytes_sent.saturating_add(b.bytes_sent),
                )
            }
            None => (finished - me.started, None, me.bytes_sent),
        };
        let (started, total_bytes) = match blur.filter(|&b| b > 0) {
            Some(b) => {
                let b = b as f64;
                (b * (me.started / b).floor(), blur_size(total_bytes))
            }
            None => (me.started, total_bytes),
        };
        UsageRecord {
            started,
            total_time,
            waiting_time,
            total_bytes,
            mood,
        }
    }
}

fn round_up(size: u64, step: u64) -> u64 {
    step.saturating_mul((size - 1) / step + 1)
}

/// Bucket a byte count: 0 stays 0; below 1 MB up to 10 kB steps; below 1 GB up to 1 MB steps; else up
/// to 100 MB steps.
pub fn blur_size(size: u64) -> u64 {
    match size {
        0 => 0,
        s if s < 1_000_000 => round_up(s, 10_000),
        s if s < 1_000_000_000 => round_up(s, 1_000_000),
        s => round_up(s, 100_000_000),
    }
}

/// The single row of the `current` table, rewritten periodically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRow {
    /// Seconds since the epoch when the relay started.
    pub rebooted: i64,
    /// Seconds since the epoch of this snapshot.
    pub updated: i64,
    /// Connections currently relaying (two per pair).
    pub connected: u64,
    /// Tokens with a connection waiting for its partner.
    pub waiting: u64,
    /// Bytes relayed so far by pairs still relaying.
    pub incomplete_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lonely_record_has_no_waiting_time() {
        let r = UsageRecord::new(
            Half {
                started: 100.5,
                bytes_sent: 0,
            },
            None,
            130.5,
            Mood::Lonely,
            None,
        );
        assert_eq!(r.total_time, 30.0);
        assert_eq!(r.waiting_time, None);
        assert_eq!(r.total_bytes, 0);
        assert_eq!(r.started, 100.5);
    }

    #[test]
    fn happy_record_sums_both_directions() {
        let me = Half {
            started: 10.0,
            bytes_sent: 700,
        };
        let buddy = Half {
            started: 12.0,
            bytes_sent: 300,
        };
        let r = UsageRecord::new(me, Some(buddy), 20.0, Mood::Happy, None);
        assert_eq!(r.total_time, 10.0);
        assert_eq!(r.waiting_time, Some(2.0));
        assert_eq!(r.total_bytes, 1000);
        // the buddy may have connected earlier but registered later
        let r = UsageRecord::new(buddy, Some(me), 20.0, Mood::Happy, None);
        assert_eq!(r.total_time, 10.0);
        assert_eq!(r.started, 12.0);
    }

    #[test]
    fn blur_rounds_start_down_and_bytes_up() {
        let me = Half {
            started: 1_700_000_123.7,
            bytes_sent: 1,
        };
        let r = UsageRecord::new(me, None, 1_700_000_200.0, Mood::Happy, Some(3600));
        assert_eq!(r.started, 1_699_999_200.0);
        assert_eq!(r.total_bytes, 10_000);
        let r = UsageRecord::new(me, None, 1_700_000_200.0, Mood::Happy, Some(0));
        assert_eq!(r.started, 1_700_000_123.7, "0 means no blurring");
    }

    #[test]
    fn blur_size_buckets() {
        assert_eq!(blur_size(0), 0);
        assert_eq!(blur_size(1), 10_000);
        assert_eq!(blur_size(10_000), 10_000);
        assert_eq!(blur_size(10_001), 20_000);
        assert_eq!(blur_size(999_999), 1_000_000);
        assert_eq!(blur_size(1_000_000), 1_000_000);
        assert_eq!(blur_size(1_000_001), 2_000_000);
        assert_eq!(blur_size(999_999_999), 1_000_000_000);
        assert_eq!(blur_size(1_000_000_000), 1_000_000_000);
        assert_eq!(blur_size(1_073_741_824), 1_100_000_000);
        assert_eq!(blur_size(u64::MAX), u64::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn json_shape_matches_python() {
        let r = UsageRecord::new(
            Half {
                started: 5.0,
                bytes_sent: 0,
            },
            None,
            6.0,
            Mood::Empty,
            None,
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"started":5.0,"total_time":1.0,"waiting_time":null,"total_bytes":0,"mood":"empty"}"#
        );
    }
}
