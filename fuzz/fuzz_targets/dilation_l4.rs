//! Fuzz target: Dilation L4 reliability fed arbitrary (parsed) records from the peer,
//! interleaved with local sends and reconnections. It must never panic, the unacked queue must
//! stay in seqnum order, and the inbound watermark must never go down.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::l3::Record;
use wormhole_proto::dilation::l4::Reliability;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let role = if ctl & 1 == 0 {
        Role::Leader
    } else {
        Role::Follower
    };
    let mut l4 = Reliability::new(role);
    l4.connection_made();
    let scid = l4.allocate_scid().expect("first scid");
    let _ = l4.send_open(scid, "fuzz");
    // Records are length-prefixed by one byte each; 0xff means "reconnect", 0xfe "send data".
    let mut input = rest;
    while let Some((&len, tail)) = input.split_first() {
        match len {
            0xff => {
                l4.connection_lost();
                let resent = l4.connection_made();
                assert_eq!(resent.len(), l4.unacked().len());
                input = tail;
                continue;
            }
            0xfe => {
                let _ = l4.send_data(scid, tail.iter().take(4).copied().collect::<Vec<u8>>());
                input = tail;
                continue;
            }
            _ => {}
        }
        let n = usize::from(len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        input = next;
        let before = l4.inbound_watermark();
        if let Ok(record) = Record::parse(bytes) {
            let _ = l4.receive(record);
        }
        assert!(l4.inbound_watermark() >= before);
        let seqnums: Vec<u32> = l4
            .unacked()
            .filter_map(|r| match r {
                Record::Open { seqnum, .. } | Record::Data { seqnum, .. } | Record::Close { seqnum, .. } => {
                    Some(*seqnum)
                }
                _ => None,
            })
            .collect();
        assert!(seqnums.windows(2).all(|w| w[0] < w[1]));
    }
});
