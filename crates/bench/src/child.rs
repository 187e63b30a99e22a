//! Plumbing for the servers a bench binary starts: a free loopback port, a `Command` without the
//! caller's `WORMHOLE_*` variables, and a guard that kills and reaps the child on drop.
//!
//! Only ever touches the process it was given (by its handle, hence its PID); measures nothing.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (bound, then released; another binder may still race for it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// A `Command` for `program` with every `WORMHOLE_*` environment variable removed (they mean
/// different things to different implementations).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WORMHOLE_") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Owns a started child: on drop it is killed and reaped.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Take ownership of `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(child)
    }

    /// The child, e.g. for `try_wait`.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.0
    }

    /// The child's PID.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        // Tests run in parallel and another may take the port between the probe and our bind, so
        // require one of a few probes to be bindable, not every one.
        let bound = (0..5).any(|_| {
            let port = free_port().unwrap();
            assert_ne!(port, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        assert!(bound, "no probed port was bindable");
    }

    #[test]
    fn guard_kills_and_reaps_on_drop() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(ChildGuard::new(child));
        // Killed and reaped: no `sleep` (running or zombie) under that PID any more.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !stat.starts_with(&format!("{pid} (sleep)")),
            "child still there: {stat}"
        );
    }
}
