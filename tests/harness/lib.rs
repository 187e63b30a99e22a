//! Test harness: locating and spawning the real peers and our own binaries.
