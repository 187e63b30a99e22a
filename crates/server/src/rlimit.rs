//! Raise `RLIMIT_NOFILE` at start-up, like server 0.8.0: if the soft limit is below 10000, try
//! the hard limit, then 10000, 3200, 1024. Failures are logged, never fatal.
//!
//! Owns: that one start-up adjustment. Must not: touch other limits. The system calls go
//! through `rustix` (safe wrappers), so this crate has no `unsafe` at all.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// `None` in an [`Rlimit`] means "unlimited"; we count that as `u64::MAX`.
fn finite(limit: Option<u64>) -> u64 {
    limit.unwrap_or(u64::MAX)
}

/// Raise the soft open-file limit if it is low. Returns the soft limit in force afterwards.
pub fn raise_nofile() -> Option<u64> {
    let lim = getrlimit(Resource::Nofile);
    let (current, maximum) = (finite(lim.current), finite(lim.maximum));
    if current >= 10_000 {
        return Some(current);
    }
    for want in [maximum, 10_000, 3_200, 1_024] {
        if want > maximum || want <= current {
            continue;
        }
        let new = Rlimit {
            current: (want != u64::MAX).then_some(want),
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                tracing::info!("raised RLIMIT_NOFILE from {current} to {want}");
                return Some(want);
            }
            Err(e) => tracing::debug!("setrlimit(RLIMIT_NOFILE, {want}) failed: {e}"),
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_never_lowers() {
        let before = super::finite(rustix::process::getrlimit(rustix::process::Resource::Nofile).current);
        let after = super::raise_nofile();
        let now = super::finite(rustix::process::getrlimit(rustix::process::Resource::Nofile).current);
        assert!(now >= before, "soft limit went from {before} down to {now}");
        assert_eq!(after, Some(now));
    }
}
