//! Raise `RLIMIT_NOFILE` at start-up, like server 0.8.0: if the soft limit is below 10000, try
//! the hard limit, then 10000, 3200, 1024. Failures are logged, never fatal.
//!
//! This is the only file with `unsafe`: two libc calls on a local struct.

/// Raise the soft open-file limit if it is low. Returns the soft limit in force afterwards.
#[allow(unsafe_code)]
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct owned by this frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("getrlimit(RLIMIT_NOFILE) failed; leaving it alone");
        return None;
    }
    if lim.rlim_cur >= 10_000 {
        return Some(lim.rlim_cur);
    }
    for want in [lim.rlim_max, 10_000, 3_200, 1_024] {
        if want > lim.rlim_max || want <= lim.rlim_cur {
            continue;
        }
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `new` is a valid rlimit struct; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            tracing::info!("raised RLIMIT_NOFILE from {} to {want}", lim.rlim_cur);
            return Some(want);
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raising_never_lowers() {
        let after = super::raise_nofile();
        assert!(after.is_some_and(|n| n >= 1024));
    }
}
