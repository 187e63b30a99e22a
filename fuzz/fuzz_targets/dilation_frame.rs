//! Fuzz target: the Dilation L2 reader (peer prefix, then `u32 BE length ‖ payload` frames)
//! over arbitrary bytes and arbitrary chunkings. The first input byte picks our role and the
//! chunk size; a split stream must give the same events (or error) as the whole stream, and
//! frames we encode must come back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::frame::{ConnectionReader, Inbound, encode_frame, prefix_for};

const CAP: usize = 4096;

fn run(role: Role, stream: &[u8], chunk: usize) -> Result<Vec<Inbound>, String> {
    let mut reader = ConnectionReader::new(role, CAP);
    let mut events = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        events.extend(reader.feed(piece).map_err(|e| e.to_string())?);
    }
    Ok(events)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let role = if ctl & 1 == 0 {
        Role::Leader
    } else {
        Role::Follower
    };
    let chunk = usize::from(ctl >> 1) + 1;

    // Raw bytes, and the same bytes behind a correct prefix.
    let mut prefixed = prefix_for(role.peer()).to_vec();
    prefixed.extend_from_slice(rest);
    for stream in [rest, prefixed.as_slice()] {
        let whole = run(role, stream, stream.len());
        let split = run(role, stream, chunk);
        match (&whole, &split) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            // A split stream may stop early (still waiting) where the whole one failed later.
            (Err(_), Ok(b)) | (Ok(b), Err(_)) => {
                panic!(
                    "whole and split disagree: {whole:?} vs {split:?} ({} events)",
                    b.len()
                )
            }
        }
    }

    // Our own frames of the input's pieces always decode to those pieces.
    let pieces: Vec<&[u8]> = rest.chunks(chunk).collect();
    let mut stream = prefix_for(role.peer()).to_vec();
    for p in &pieces {
        stream.extend(encode_frame(p).expect("small frame"));
    }
    let events = run(role, &stream, chunk).expect("own frames decode");
    let mut want = vec![Inbound::PrefixReceived];
    want.extend(pieces.iter().map(|p| Inbound::Frame(bytes::BytesMut::from(*p))));
    assert_eq!(events, want);
});
