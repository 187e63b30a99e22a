//! Benchmark helpers shared by the bench binaries.
//!
//! - [`mailbox_client`]: a minimal mailbox-protocol client and the life of one client pair, for
//!   `mailbox-load`.
//! - [`latency`]: latency histograms and their summaries.
//! - [`sys`]: peak/current RSS of a process, own CPU time, open-file limit.
//! - [`server_proc`]: the mailbox server under test (ours or Python), from `wormhole-testkit`, the
//!   workspace's test kit (which also holds the commands, guards and ports the binaries use).
//!
//! This crate has no `unsafe` (system facts come through `rustix`).
//!
//! This crate measures and prints; it holds no protocol logic of the product and must not be used by it.

#![forbid(unsafe_code)]

pub mod latency;
pub mod mailbox_client;
pub mod server_proc;
pub mod sys;
