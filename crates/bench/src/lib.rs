//! Benchmark helpers shared by the bench binaries.
//!
//! - [`mailbox_client`]: a minimal mailbox-protocol client and the life of one client pair, for
//!   `mailbox-load`.
//! - [`latency`]: latency histograms and their summaries.
//! - [`sys`]: peak/current RSS of a process, own CPU time, open-file limit.
//! - [`server_proc`]: starting a mailbox server under test (ours or Python) and finding its address.
//! - [`child`]: free loopback port, `WORMHOLE_*`-free commands, kill-on-drop guard for started servers.
//!
//! This crate measures and prints; it holds no protocol logic of the product and must not be used by it.

pub mod child;
pub mod latency;
pub mod mailbox_client;
pub mod server_proc;
pub mod sys;
