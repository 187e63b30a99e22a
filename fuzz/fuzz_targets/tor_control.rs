//! Tor control-port replies (`crates/cli/src/tor/control.rs`, included as it is): never a panic,
//! a complete reply's length never exceeds the input, and its lines parse without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/tor/control.rs"]
#[allow(dead_code)]
mod control;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(n)) = control::reply_len(data) {
        assert!(n <= data.len());
        if let Ok(lines) = control::lines(&data[..n]) {
            let _ = control::auth_info(&lines);
            let _ = control::socks_listener(&lines);
            if let Ok(b) = control::bootstrap(&lines) {
                assert!(b.progress <= 100);
            }
        }
    }
});
