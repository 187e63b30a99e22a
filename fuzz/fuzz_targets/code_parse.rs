//! Fuzz target: typed codes, `wormhole-transfer:` URIs and word completion of arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::code::{Code, uri::TransferUri, validate_nameplate};
use wormhole_proto::wordlist::get_completions;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(code) = Code::parse(s) {
        assert_eq!(code.full, format!("{}-{}", code.nameplate, code.words));
        assert!(validate_nameplate(&code.nameplate).is_ok());
        // A parsed code survives a URI round trip.
        let uri = TransferUri::new(code.clone()).to_string();
        assert_eq!(TransferUri::parse(&uri).map(|u| u.code), Ok(code));
    }
    let _ = TransferUri::parse(s);
    for c in get_completions(s, 2) {
        assert!(c.len() >= s.len() - s.rsplit('-').next().unwrap_or("").len());
    }
});
