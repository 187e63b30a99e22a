//! `SO_RCVLOWAT` on a socket: how many bytes must be waiting before the kernel reports it
//! readable. Raising it while a direction is in bulk flow makes one wake-up of the relay move
//! many of the sender's writes (Linux also reports readable below the mark when the receive
//! buffer is under pressure or the window is nearly closed, so a mark can never stall a flow).
//!
//! Owns: setting the option. Must not: decide when to raise or lower it (that is
//! [`crate::zero_copy`]'s), or contain `unsafe` of its own: the system call is nix's, generated
//! by its `sockopt_impl!` for a `c_int` option (neither rustix nor socket2 has this one).

use std::io;
use std::os::fd::AsFd;

// The macro's expansion names `libc` and its helper macros at the call site.
use nix::libc;
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

sockopt_impl!(
    /// `SOL_SOCKET` / `SO_RCVLOWAT`, an `int` in bytes.
    RcvLowat,
    Both,
    libc::SOL_SOCKET,
    libc::SO_RCVLOWAT,
    i32
);

/// Sets the receive low-water mark of `fd` to `bytes` (1 is the kernel's default: readable as
/// soon as one byte is waiting). Lowering it wakes a reader whose data already reaches the new mark.
pub fn set_rcvlowat(fd: &impl AsFd, bytes: usize) -> io::Result<()> {
    let value = i32::try_from(bytes.max(1)).unwrap_or(i32::MAX);
    nix::sys::socket::setsockopt(fd, RcvLowat, &value).map_err(io::Error::from)
}

/// The receive low-water mark of `fd`.
pub fn rcvlowat(fd: &impl AsFd) -> io::Result<usize> {
    let value = nix::sys::socket::getsockopt(fd, RcvLowat).map_err(io::Error::from)?;
    Ok(usize::try_from(value).unwrap_or(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_set_and_read_back() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(rcvlowat(&s).unwrap(), 1);
        set_rcvlowat(&s, 256 * 1024).unwrap();
        assert_eq!(rcvlowat(&s).unwrap(), 256 * 1024);
        set_rcvlowat(&s, 0).unwrap();
        assert_eq!(rcvlowat(&s).unwrap(), 1, "0 means the default, 1");
    }
}
