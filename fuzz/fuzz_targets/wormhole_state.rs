//! Fuzz target: the serialized wormhole state (docs/journal.md), parsed, restored into a
//! machine, snapshotted again and re-serialized. Never panics; bounded by `MAX_STATE_BYTES`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use wormhole_proto::machine::{Boss, SerializedWormholeWithKeys};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(state) = SerializedWormholeWithKeys::from_json(text) else { return };
    let json = state.to_json();
    let again = SerializedWormholeWithKeys::from_json(&json).expect("our own output parses");
    assert_eq!(again.to_json(), json, "serialization is stable");
    if let Ok(mut boss) = Boss::restore(
        state.machine().clone(),
        Box::new(rand::rngs::StdRng::seed_from_u64(7)),
    ) {
        boss.start();
        while boss.poll_action().is_some() {}
        let _ = boss.snapshot();
    }
});
