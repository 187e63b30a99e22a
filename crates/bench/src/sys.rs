//! Process facts the benchmarks report: a process's resident memory from `/proc/PID/status`, CPU
//! times (this process's CPU clock, another's `/proc/PID/stat`), scheduler totals, and this
//! process's open-file limit.
//!
//! Owns the bench crate's system calls, all through `rustix`'s safe wrappers (no `unsafe` here).
//! It must not do anything else (no parsing of untrusted data beyond `/proc` text, which is
//! handled defensively).

use std::time::Duration;

/// A memory field of `/proc/PID/status` (e.g. `VmHWM` = peak RSS, `VmRSS` = current RSS) in kB.
/// `None` if the process or the field does not exist.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&text, field)
}

fn parse_status_kb(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Peak resident set size (`VmHWM`) of `pid`, in kB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM")
}

/// Reset this process's peak RSS (`VmHWM`) to its current RSS, so the next phase of a benchmark
/// reports its own peak (Linux ≥ 4.0: `5` written to `/proc/self/clear_refs`).
pub fn reset_own_peak_rss() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// Current resident set size (`VmRSS`) of `pid`, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmRSS")
}

/// User + system CPU time this process (all threads, also those that ended) has used so far: its
/// CPU-time clock (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn own_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_nanos(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// User + system CPU time used so far by process `pid` (from `/proc/PID/stat`); `None` if unreadable.
pub fn proc_cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    let hz = rustix::param::clock_ticks_per_second();
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line; the command name may contain spaces
/// and parentheses, so fields are counted after the last `)`.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    // After ")" come field 3 (state) onwards; utime is field 14 → index 11 here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Scheduler totals over every thread of a process, from `/proc/PID/task/*/schedstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    /// Time spent running on a CPU.
    pub run: Duration,
    /// Time spent runnable but waiting for a CPU (run-queue delay: CPU contention).
    pub wait: Duration,
}

impl SchedStat {
    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &SchedStat) -> SchedStat {
        SchedStat {
            run: self.run.saturating_sub(earlier.run),
            wait: self.wait.saturating_sub(earlier.wait),
        }
    }
}

/// Sum of `schedstat` over the threads of `pid` alive now; `None` if the process is unreadable.
/// (Threads that already exited are not counted, so take deltas over long-lived processes.)
pub fn proc_sched(pid: u32) -> Option<SchedStat> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = SchedStat::default();
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some((run, wait)) = parse_schedstat(&text) {
            total.run += Duration::from_nanos(run);
            total.wait += Duration::from_nanos(wait);
        }
    }
    Some(total)
}

fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Raise this process's soft `RLIMIT_NOFILE` to `want` (capped at the hard limit, raising the hard limit
/// too when permitted). Returns the soft limit in force afterwards. Children inherit it.
pub fn raise_nofile(want: u64) -> std::io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let (cur, max) = (lim.current.unwrap_or(u64::MAX), lim.maximum.unwrap_or(u64::MAX));
    if cur >= want {
        return Ok(cur);
    }
    // Try to lift the hard limit as well (works as root); fall back to the existing hard limit.
    let mut last = None;
    for (cur, max) in [(want, want.max(max)), (want.min(max), max)] {
        let new = Rlimit {
            current: Some(cur),
            maximum: (max != u64::MAX).then_some(max),
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => return Ok(cur),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(std::io::Error::last_os_error, std::io::Error::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let text = "Name:\tx\nVmPeak:\t  1000 kB\nVmHWM:\t    512 kB\nVmRSS:\t 300 kB\n";
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(512));
        assert_eq!(parse_status_kb(text, "VmRSS"), Some(300));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
        assert_eq!(parse_status_kb("VmHWM: lots", "VmHWM"), None);
    }

    #[test]
    fn parses_stat_lines() {
        let line = "123 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(line), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat("1000 2000 7\n"), Some((1000, 2000)));
        assert_eq!(parse_schedstat("x"), None);
    }

    #[test]
    fn own_process_facts() {
        assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
        // RSS first: the peak read afterwards can only be as large or larger (other test threads
        // may allocate in between, so the opposite order would race).
        let rss = rss_kb(std::process::id());
        assert!(peak_rss_kb(std::process::id()) >= rss);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_time() > Duration::ZERO);
        assert!(proc_cpu_time(std::process::id()).is_some());
        assert!(proc_sched(std::process::id()).is_some_and(|s| s.run > Duration::ZERO));
        let n = raise_nofile(1024).unwrap();
        assert!(n >= 1024);
    }
}
