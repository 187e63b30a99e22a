//! The `wormhole-server` binary: `mailbox`, `relay`, and `serve` (both in one process).

fn main() {}
