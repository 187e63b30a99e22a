//! Fuzz target: the Dilated File-Transfer records and their checker. The input is split into
//! records (a 2-byte length before each); the checker must reject or accept each without
//! panicking, and accept an offer at once so the later states are reached. A bundle's parts
//! are fed to the checker in turn, as our receiver does.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilated_transfer::{Features, Inbound, InboundEvent, Record};

fuzz_target!(|data: &[u8]| {
    let _ = Record::decode(data).map(|r| Record::decode(&r.encode()));
    let mut inbound = Inbound::new(Features::all());
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (rec, tail) = rest[2..].split_at(n);
        rest = tail;
        let ok = match inbound.handle(rec) {
            Ok(InboundEvent::Offer(_)) => {
                let claim = rec.first().map(|&b| u64::from(b) * 3);
                let _ = inbound.accept(claim);
                true
            }
            Ok(InboundEvent::Bundle(parts)) => parts.iter().all(|p| inbound.handle_part(p).is_ok()),
            Ok(_) => true,
            Err(_) => false,
        };
        if !ok {
            break;
        }
    }
    let _ = inbound.peer_closed();
});
