//! Process facts the benchmarks report: a process's resident memory from `/proc/PID/status`, this
//! process's CPU time (`getrusage`) and its open-file limit (`setrlimit`).
//!
//! Owns the only `unsafe` of the bench crate: two plain libc calls on stack structs. It must not do
//! anything else (no parsing of untrusted data beyond `/proc` text, which is handled defensively).

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

/// User + system CPU time this process (all threads) has used so far, from `getrusage(RUSAGE_SELF)`.
pub fn own_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage` on our stack; getrusage only writes into it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage returned 0, so it initialised the struct (it was zeroed before anyway).
    #[allow(unsafe_code)]
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User + system CPU time used so far by process `pid` (from `/proc/PID/stat`); `None` if unreadable.
pub fn proc_cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    // SAFETY: sysconf has no memory effects; it only returns a value.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
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
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit on our stack.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    // Try to lift the hard limit as well (works as root); fall back to the existing hard limit.
    for (cur, max) in [
        (want, want.max(lim.rlim_max)),
        (want.min(lim.rlim_max), lim.rlim_max),
    ] {
        let new = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: `new` is a valid rlimit; setrlimit only reads it.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) };
        if rc == 0 {
            return Ok(cur);
        }
    }
    Err(std::io::Error::last_os_error())
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
