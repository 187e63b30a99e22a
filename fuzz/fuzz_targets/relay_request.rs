//! Fuzz target: the transit relay's request-line scanner/parser and its pairing registry.
//!
//! The input is the byte stream of many connections: each `\n`-terminated line is one
//! connection's first line (scanned exactly as the TCP driver does, including the 1024-byte cap)
//! and also one WebSocket first message. Every request that parses is registered with the
//! pairing table; a line starting with `-` unregisters an earlier connection instead. A simple
//! model of the table checks the pairing rule (same token, different or absent side, oldest
//! waiter wins, the rest are redundant) and the counters.
#![no_main]
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use wormhole_relay::handshake::{
    LineScan, MAX_LINE, Request, SIDE_LEN, Side, TOKEN_LEN, Token, parse_line, parse_message, scan_line,
};
use wormhole_relay::registry::{Registered, Registry};

fn well_formed(line: &[u8], r: &Request) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let mut expect = b"please relay ".to_vec();
    expect.extend_from_slice(&r.token);
    if let Some(side) = &r.side {
        expect.extend_from_slice(b" for side ");
        expect.extend_from_slice(side);
    }
    expect == line && r.token.iter().all(word) && r.side.iter().flatten().all(word)
}

fn sides_match(a: Option<&Side>, b: Option<&Side>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut registry: Registry<u64> = Registry::new();
    // Model: token -> waiters (id, side), oldest first.
    let mut model: HashMap<Token, Vec<(u64, Option<Side>)>> = HashMap::new();
    let mut registered: Vec<(Token, u64)> = Vec::new();
    let mut rest = data;
    let mut id = 0u64;
    while !rest.is_empty() && id < 256 {
        id += 1;
        let (line, consumed) = match scan_line(rest) {
            LineScan::Incomplete => {
                assert!(rest.len() <= MAX_LINE && !rest.contains(&b'\n'));
                (rest, rest.len())
            }
            LineScan::TooLong => {
                assert!(rest.len() > MAX_LINE && !rest[..=MAX_LINE].contains(&b'\n'));
                (&rest[..MAX_LINE], rest.len().min(MAX_LINE + 1))
            }
            LineScan::Line { line_len, consumed } => {
                assert_eq!(consumed, line_len + 1);
                assert_eq!(rest[line_len], b'\n');
                assert!(line_len <= MAX_LINE && !rest[..line_len].contains(&b'\n'));
                (&rest[..line_len], consumed)
            }
        };
        let whole = &rest[..consumed];
        rest = &rest[consumed..];

        // The WebSocket form accepts the line with or without its single trailing newline.
        let ws = parse_message(whole);
        let tcp = parse_line(line);
        if whole.len() == line.len() + 1 && whole.last() == Some(&b'\n') {
            assert_eq!(ws, tcp, "WebSocket and TCP forms disagree");
        }
        if let Some(r) = &tcp {
            assert!(well_formed(line, r), "accepted a malformed line");
            assert_eq!(r.token.len(), TOKEN_LEN);
            assert!(r.side.is_none_or(|s| s.len() == SIDE_LEN));
        }

        if let Some(&b'-') = line.first() {
            let pick = line.get(1).copied().unwrap_or(0) as usize;
            if !registered.is_empty() {
                let (token, rid) = registered[pick % registered.len()];
                let got = registry.unregister(&token, rid);
                let waiters = model.entry(token).or_default();
                let pos = waiters.iter().position(|w| w.0 == rid);
                assert_eq!(got, pos.map(|_| rid), "unregister disagrees with the model");
                if let Some(p) = pos {
                    waiters.remove(p);
                }
                if waiters.is_empty() {
                    model.remove(&token);
                }
            }
            continue;
        }
        let Some(req) = tcp else { continue };
        registered.push((req.token, id));
        let waiters = model.entry(req.token).or_default();
        let partner = waiters
            .iter()
            .position(|w| sides_match(w.1.as_ref(), req.side.as_ref()));
        match (registry.register(&req, id, id), partner) {
            (Registered::Waiting, None) => waiters.push((id, req.side)),
            (Registered::Paired { partner, redundant }, Some(p)) => {
                assert_eq!(partner, waiters[p].0, "not the oldest matching waiter");
                assert_ne!(partner, id);
                let mut others: Vec<u64> = waiters.iter().map(|w| w.0).filter(|&w| w != partner).collect();
                let mut redundant = redundant;
                others.sort_unstable();
                redundant.sort_unstable();
                assert_eq!(redundant, others, "wrong redundant set");
                model.remove(&req.token);
            }
            (got, want) => panic!("registry {got:?}, model partner {want:?}"),
        }
        assert_eq!(registry.waiting_tokens(), model.len());
        assert_eq!(
            registry.waiting_connections(),
            model.values().map(Vec::len).sum::<usize>()
        );
    }
});
