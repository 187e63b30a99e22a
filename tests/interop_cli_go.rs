//! The `wormhole` CLI against wormhole-william (Go), both directions, on the Python mailbox server
//! and on ours: text, file, directory, and a file through the transit relay. Each result is checked
//! by content hash.
//!
//! wormhole-william always offers `transit.magic-wormhole.io:4001` as its relay and never
//! advertises 127.x addresses, so the relay cases take the port-4001 lock, run the Python transit
//! relay there, and re-run themselves in a nested `scripts/netns-run` without the 198.18.0.1
//! address: with no direct hint left, both sides must meet at the relay.
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_cli_common.rs"]
mod common;

use common::{Cli, Payload, Server, rerun_without_test_addr, transfer, without_test_addr};
use wormhole_interop::*;

/// A direct case. wormhole-william's sender dials its fixed relay (`transit.magic-wormhole.io:4001`,
/// 127.0.0.1 in the namespace) before anything else and gives up if nothing listens there, so every
/// case runs the Python relay on port 4001 (under the lock; the cases take turns).
fn direct(sender: Cli, receiver: Cli, payload: Payload, server: Server) {
    require_netns();
    let _lock = lock_port_4001();
    let relay = start_python_relay(4001);
    transfer(sender, receiver, payload, server, Some(&relay), false);
}

fn via_relay(test_name: &str, sender: Cli, receiver: Cli, server: Server) {
    require_netns();
    if !without_test_addr() {
        rerun_without_test_addr(test_name);
        return;
    }
    let _lock = lock_port_4001();
    let relay = start_python_relay(4001);
    // `--no-listen` on our side: with no other address our transit would advertise 127.0.0.1
    // (as Python does), which a Go receiver could dial directly.
    let out = transfer(sender, receiver, Payload::File, server, Some(&relay), true);
    // Our sender names the connection it used. (Our receiver cannot yet: the transfer library's
    // `Received` does not report the connection kind; without the test address no direct path
    // exists, so the relay is the only way the bytes can have come.)
    if sender == Cli::Ours {
        assert!(
            out.sender.stderr.contains("->relay:"),
            "not relayed:\n{}",
            out.sender
        );
    }
}

macro_rules! matrix {
    ($server:ident, $kind:expr) => {
        mod $server {
            use super::*;

            #[test]
            fn ours_to_go_text() {
                direct(Cli::Ours, Cli::Go, Payload::Text, $kind);
            }
            #[test]
            fn go_to_ours_text() {
                direct(Cli::Go, Cli::Ours, Payload::Text, $kind);
            }
            #[test]
            fn ours_to_go_file() {
                direct(Cli::Ours, Cli::Go, Payload::File, $kind);
            }
            #[test]
            fn go_to_ours_file() {
                direct(Cli::Go, Cli::Ours, Payload::File, $kind);
            }
            #[test]
            fn ours_to_go_dir() {
                direct(Cli::Ours, Cli::Go, Payload::Dir, $kind);
            }
            #[test]
            fn go_to_ours_dir() {
                direct(Cli::Go, Cli::Ours, Payload::Dir, $kind);
            }
            #[test]
            fn ours_to_go_file_via_relay() {
                via_relay(
                    concat!(stringify!($server), "::ours_to_go_file_via_relay"),
                    Cli::Ours,
                    Cli::Go,
                    $kind,
                );
            }
            #[test]
            fn go_to_ours_file_via_relay() {
                via_relay(
                    concat!(stringify!($server), "::go_to_ours_file_via_relay"),
                    Cli::Go,
                    Cli::Ours,
                    $kind,
                );
            }
        }
    };
}

matrix!(python_server, Server::Python);
matrix!(our_server, Server::Ours);
