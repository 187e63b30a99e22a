//! Fuzz target: Dilation Noise transport decryption of untrusted frame payloads, with a fixed
//! key and fixed ephemerals (deterministic). Arbitrary bytes must fail cleanly; a frame we
//! encrypt (any length, so the 65519/65535 splitting is exercised) must decrypt to its
//! plaintext; and flipping any byte of it must make decryption fail.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::noise::transport_pair_for_testing;

const PSK: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let pair = || transport_pair_for_testing(&PSK, &[1; 32], &[2; 32]).expect("fixed pair");

    // Untrusted bytes straight into the decrypter.
    let (_, mut follower) = pair();
    let _ = follower.decrypt(data);

    // Round trip, repeated so long plaintexts span several Noise messages.
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let repeat = usize::from(ctl % 8) * 10_000 + 1;
    let len = (rest.len() * repeat).min(200_000);
    let plain: Vec<u8> = rest.iter().copied().cycle().take(len).collect();
    let (mut leader, mut follower) = pair();
    let ct = leader.encrypt(&plain).expect("encrypt");
    assert_eq!(follower.decrypt(&ct).expect("own frame decrypts"), plain);

    // Tampering is detected.
    let (mut leader, mut follower) = pair();
    let mut ct = leader.encrypt(&plain).expect("encrypt");
    let at = (usize::from(ctl) * 7919) % ct.len();
    ct[at] ^= 0x80;
    assert!(follower.decrypt(&ct).is_err());
});
