//! Fuzz target: the per-connection Dilation machine (relay `ok\n`, prefix, Noise handshake,
//! KCM, records) fed arbitrary bytes in arbitrary chunks, in both roles, with and without a
//! relay. It must return errors, never panic; after an error every call fails.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::connection::Connection;
use wormhole_proto::dilation::frame::prefix_for;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let role = if ctl & 1 == 0 {
        Role::Leader
    } else {
        Role::Follower
    };
    let relay = (ctl & 2 != 0).then(|| b"please relay x for side y\n".to_vec());
    let chunk = usize::from(ctl >> 2) + 1;
    // Half the time, a correct preamble first, so the handshake stages are reached.
    let mut stream = Vec::new();
    if ctl & 0x80 != 0 {
        if relay.is_some() {
            stream.extend_from_slice(b"ok\n");
        }
        stream.extend_from_slice(prefix_for(role.peer()));
    }
    stream.extend_from_slice(rest);
    let (mut conn, _) = Connection::new(role, [9; 32], relay, 1 << 20);
    let mut failed = false;
    for piece in stream.chunks(chunk) {
        let r = conn.receive(piece);
        if failed {
            assert!(r.is_err());
        }
        failed |= r.is_err();
    }
});
