//! What a running file transfer reports: the progress bar on stderr (only on a terminal, sized
//! to its width), the rate-bounded `progress` events of `--json`, and the figures of the final
//! summary (bytes, time, rate, connection kind).
//!
//! Fed by the library's progress callback and transfer events (wired in `files.rs`); it must not
//! print anything but the bar and the summary line.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use wormhole::transfer::ConnectionInfo;
use wormhole::transit::Progress;

use crate::json::{self, Event, Summary, Via};
use crate::output::{finish_bar, naturalsize, show_bar, stop_bar};

/// The shortest time between two `progress` events (the last one is always sent).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    connection: Option<ConnectionInfo>,
    connected_at: Option<Instant>,
    ended_at: Option<Instant>,
    bytes: u64,
    total: u64,
    last_event: Option<Instant>,
    last_event_bytes: Option<u64>,
}

/// The meter of one transfer (cheap to clone: the clones share it).
#[derive(Clone)]
pub struct Meter {
    bar: ProgressBar,
    state: Arc<Mutex<State>>,
    hide: bool,
}

impl Meter {
    /// A meter with no bar yet (see [`Meter::start`]); `hide` is `--hide-progress`.
    pub fn new(hide: bool) -> Meter {
        Meter {
            bar: ProgressBar::hidden(),
            state: Arc::default(),
            hide: hide || json::enabled(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The size is known: show the bar (on a terminal, unless hidden or in JSON mode).
    pub fn start(&self, total: u64) {
        self.state().total = total;
        show_bar(&self.bar, total, self.hide);
    }

    /// The bar, for printing lines around it.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// The transit connection is up (the clock of the summary starts).
    pub fn connected(&self, info: &ConnectionInfo) {
        let mut s = self.state();
        s.connection = Some(info.clone());
        s.connected_at = Some(Instant::now());
    }

    /// The library's progress callback for this meter.
    pub fn progress(&self) -> Progress {
        let me = self.clone();
        Arc::new(move |done, total| me.advance(done, total))
    }

    fn advance(&self, done: u64, total: u64) {
        self.bar.set_position(done);
        let now = Instant::now();
        let event = {
            let mut s = self.state();
            s.bytes = done;
            s.total = total;
            if done >= total && s.ended_at.is_none() {
                s.ended_at = Some(now);
            }
            let due = s
                .last_event
                .is_none_or(|t| now.duration_since(t) >= PROGRESS_INTERVAL);
            let last = done >= total && s.last_event_bytes != Some(done);
            if due || last {
                s.last_event = Some(now);
                s.last_event_bytes = Some(done);
                true
            } else {
                false
            }
        };
        if event {
            json::emit(&Event::Progress { bytes: done, total });
        }
    }

    /// All data went through: finish the bar (once).
    pub fn finish(&self) {
        self.end_clock();
        finish_bar(&self.bar);
    }

    /// The transfer stopped early: leave the bar where it is.
    pub fn stop(&self) {
        stop_bar(&self.bar);
    }

    fn end_clock(&self) {
        let mut s = self.state();
        if s.ended_at.is_none() {
            s.ended_at = Some(Instant::now());
        }
    }

    /// The figures of the transfer so far.
    pub fn summary(&self) -> Summary {
        let s = self.state();
        let seconds = match (s.connected_at, s.ended_at) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64()),
            _ => None,
        };
        #[allow(clippy::cast_precision_loss)]
        let rate = seconds.filter(|&t| t > 0.0).map(|t| s.bytes as f64 / t);
        Summary {
            bytes: Some(s.bytes),
            seconds,
            bytes_per_second: rate,
            connection: s.connection.as_ref().map(|c| Via::of(&c.kind)),
        }
    }

    /// Print the summary line on stderr when the bar was shown (people at a terminal; scripts
    /// and `--hide-progress` keep the Python CLI's output unchanged).
    pub fn print_summary(&self) {
        if self.bar.is_hidden() {
            return;
        }
        let conn = self.state().connection.clone();
        eprintln!("{}", summary_line(&self.summary(), conn.as_ref()));
    }
}

/// `Transferred 12.3 MB in 4.1 s (3.0 MB/s), direct (->tcp:HOST:PORT)`.
pub fn summary_line(s: &Summary, conn: Option<&ConnectionInfo>) -> String {
    let mut line = format!("Transferred {}", naturalsize(s.bytes.unwrap_or(0)));
    if let Some(t) = s.seconds {
        line.push_str(&format!(" in {t:.1} s"));
    }
    if let Some(r) = s.bytes_per_second {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let r = r as u64;
        line.push_str(&format!(" ({}/s)", naturalsize(r)));
    }
    if let Some(c) = conn {
        let kind = match Via::of(&c.kind) {
            Via::Direct => "direct",
            Via::Relay => "relayed",
        };
        line.push_str(&format!(", {kind} ({})", c.describe()));
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use wormhole::transit::ConnectionKind;

    #[test]
    fn summary_figures_and_line() {
        let m = Meter::new(true);
        m.start(1000);
        m.connected(&ConnectionInfo {
            kind: ConnectionKind::Relay,
            peer: "127.0.0.1:4001".into(),
        });
        (m.progress())(500, 1000);
        (m.progress())(1000, 1000);
        m.finish();
        let s = m.summary();
        assert_eq!(s.bytes, Some(1000));
        assert_eq!(s.connection, Some(Via::Relay));
        assert!(s.seconds.is_some());
        let conn = ConnectionInfo {
            kind: ConnectionKind::DirectOutbound,
            peer: "10.0.0.1:9".into(),
        };
        let line = summary_line(
            &Summary {
                bytes: Some(3_000_000),
                seconds: Some(2.0),
                bytes_per_second: Some(1_500_000.0),
                connection: Some(Via::Direct),
            },
            Some(&conn),
        );
        assert_eq!(
            line,
            "Transferred 3.0 MB in 2.0 s (1.5 MB/s), direct (->tcp:10.0.0.1:9)"
        );
    }

    #[test]
    fn progress_events_are_rate_bounded_and_the_last_is_kept() {
        let m = Meter::new(true);
        m.start(1_000_000);
        let p = m.progress();
        let mut sent = 0;
        for i in 1..=1000u64 {
            p(i * 1000, 1_000_000);
            if m.state().last_event_bytes == Some(i * 1000) {
                sent += 1;
            }
        }
        // A fast loop: the first update, perhaps a few more, and the last.
        assert!((2..50).contains(&sent), "{sent}");
        assert_eq!(m.state().last_event_bytes, Some(1_000_000));
    }
}
