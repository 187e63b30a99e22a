//! Fuzz target: decrypted file-transfer application messages (offer / answer / error / transit).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::transfer::AppMsg;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = AppMsg::parse(data) {
        let _ = m.to_bytes();
    }
});
