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

    // Untrusted bytes straight into the decrypter. Without the key no piece authenticates, so
    // the receiving nonce does not move and the same pair serves the round trip below.
    let (mut leader, mut follower) = pair();
    let forged = follower.decrypt(data);

    // Round trip, repeated so long plaintexts span several Noise messages.
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    // Mostly short plaintexts (fast); one control value in four spans several Noise messages.
    let repeat = if ctl % 4 == 0 {
        usize::from(ctl) * 1_000 + 1
    } else {
        1
    };
    let len = (rest.len() * repeat).min(140_000);
    let plain: Vec<u8> = rest.iter().copied().cycle().take(len).collect();
    let ct = leader.encrypt(&plain).expect("encrypt");
    let (mut leader, mut follower) = match forged {
        // Accepting input not made with the key would be a forgery.
        Ok(p) => panic!("arbitrary bytes decrypted to {} bytes", p.len()),
        Err(_) => {
            assert_eq!(follower.decrypt(&ct).expect("own frame decrypts"), plain);
            (leader, follower)
        }
    };

    // Tampering is detected.
    let mut ct = leader.encrypt(&plain).expect("encrypt");
    let at = (usize::from(ctl) * 7919) % ct.len();
    ct[at] ^= 0x80;
    assert!(follower.decrypt(&ct).is_err());
});
