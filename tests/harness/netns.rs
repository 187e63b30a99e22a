//! The network-namespace guard: tests in which peers may connect directly must only run inside
//! `scripts/netns-run` (a namespace with nothing but `lo`), which sets `WORMHOLE_TEST_NETNS=1`.

/// True inside `scripts/netns-run` (`WORMHOLE_TEST_NETNS=1`).
pub fn in_netns() -> bool {
    std::env::var("WORMHOLE_TEST_NETNS").is_ok_and(|v| v == "1")
}

/// Panics with a clear message unless running inside `scripts/netns-run`. Call it first in every test
/// that starts peers which may dial each other's advertised addresses.
#[track_caller]
pub fn require_netns() {
    if !in_netns() {
        panic!(
            "this test lets real peers connect directly to each other's advertised addresses, so it must \
             run in a private network namespace: `scripts/netns-run cargo test -p wormhole-interop` \
             (WORMHOLE_TEST_NETNS=1 is not set)"
        );
    }
}
