//! Unit tests of the race machine: no sockets, no clock (every instant is `t0 + offset`).

use super::*;

const S: Duration = Duration::from_secs(1);

fn hint(host: &str, port: u16, priority: f64) -> DirectHint {
    DirectHint {
        hostname: host.into(),
        port,
        priority,
    }
}

fn config(role: RaceRole, listening: bool) -> RaceConfig {
    RaceConfig {
        role,
        listening,
        relay_delay: 2 * S,
        handshake_timeout: 60 * S,
        overall_timeout: Some(120 * S),
        key_mismatch_grace: 10 * S,
        max_inbound: 32,
        send_nevermind: true,
    }
}

fn plan(direct: &[&str], relays: &[DirectHint]) -> Plan {
    Plan {
        direct: direct.iter().map(|h| hint(h, 1, 0.0)).collect(),
        relays: relays.to_vec(),
        relay_websockets: Vec::new(),
    }
}

fn ws(url: &str) -> WebSocketHint {
    WebSocketHint::new(url).unwrap()
}

/// The WebSocket dials among `actions`: (id, url).
fn ws_dials(actions: &[Action]) -> Vec<(ConnId, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::DialWebSocket { id, target } => Some((*id, target.url.clone())),
            _ => None,
        })
        .collect()
}

fn drain(r: &mut Race) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

/// The ids of the dials among `actions`, in order.
fn dials(actions: &[Action]) -> Vec<ConnId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Dial succeeded and the handshake completed on `id`.
fn complete(r: &mut Race, t: Instant, id: ConnId) -> Vec<Action> {
    r.handle(t, id, ConnEvent::Dialed);
    assert_eq!(drain(r), [Action::Handshake(id)]);
    r.handle(t, id, ConnEvent::HandshakeCompleted);
    drain(r)
}

#[test]
fn decider_takes_the_first_completed_handshake_and_declines_the_others() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Decider, false), plan(&["a", "b", "c"], &[]), t0);
    let ids = dials(&drain(&mut r));
    let [a, b, c] = ids[..] else { panic!("{ids:?}") };
    assert_eq!(complete(&mut r, t0 + S, b), [Action::SendGo(b)]);
    // A second completion while `go` is being written waits.
    assert_eq!(complete(&mut r, t0 + S, a), []);
    r.handle(t0 + S, b, ConnEvent::GoSent);
    assert_eq!(
        drain(&mut r),
        [
            Action::SendNevermind(a),
            Action::Close(a),
            Action::Close(c),
            Action::Winner(b)
        ]
    );
    assert!(r.is_done());
    assert_eq!(r.poll_timeout(), None);
    // Late reports change nothing.
    r.handle(t0 + S, c, ConnEvent::Dialed);
    assert_eq!(drain(&mut r), []);
}

#[test]
fn decider_falls_back_when_go_cannot_be_written() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Decider, false), plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(complete(&mut r, t0, a), [Action::SendGo(a)]);
    assert_eq!(complete(&mut r, t0, b), []);
    r.handle(t0, a, ConnEvent::Failed("broken pipe".into()));
    assert_eq!(drain(&mut r), [Action::SendGo(b)]);
    r.handle(t0, b, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), [Action::Winner(b)]);
}

#[test]
fn follower_waits_for_the_peers_go() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Follower, false), plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(complete(&mut r, t0, a), [Action::AwaitGo(a)]);
    assert_eq!(complete(&mut r, t0, b), [Action::AwaitGo(b)]);
    // The follower never decides and never sends go or nevermind.
    r.handle(t0, b, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), []);
    r.handle(t0, b, ConnEvent::GoReceived);
    assert_eq!(drain(&mut r), [Action::Close(a), Action::Winner(b)]);
}

#[test]
fn nevermind_closes_that_connection_only() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Follower, false), plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    complete(&mut r, t0, a);
    complete(&mut r, t0, b);
    r.handle(t0, a, ConnEvent::NevermindReceived);
    assert_eq!(drain(&mut r), [Action::Close(a)]);
    assert!(!r.is_done());
    // With nothing else left (no listener), the race is lost and says why.
    r.handle(t0, b, ConnEvent::NevermindReceived);
    let got = drain(&mut r);
    assert_eq!(got[0], Action::Close(b));
    let Action::Fail(RaceError::NoConnection(why)) = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(why.len(), 2);
    assert!(
        why[0].starts_with("to a:1: ") && why[0].contains("nevermind"),
        "{why:?}"
    );
}

#[test]
fn relays_wait_for_the_delay_when_there_are_direct_hints() {
    let t0 = Instant::now();
    let relays = [
        hint("r-high", 2, 2.0),
        hint("r-low", 3, 0.0),
        hint("r-high", 2, 2.0),
    ];
    let mut r = Race::new(config(RaceRole::Decider, false), plan(&["a"], &relays), t0);
    assert_eq!(dials(&drain(&mut r)).len(), 1, "only the direct hint at once");
    assert_eq!(r.poll_timeout(), Some(t0 + 2 * S));
    r.handle_timeout(t0 + 2 * S - Duration::from_millis(1));
    assert_eq!(drain(&mut r), []);
    r.handle_timeout(t0 + 2 * S);
    let got = drain(&mut r);
    let [
        Action::Dial {
            route: Route::Relay,
            target,
            ..
        },
    ] = &got[..]
    else {
        panic!("{got:?}")
    };
    assert_eq!(target.hostname, "r-high");
    // The next priority group one delay later; the duplicate is dialled only once.
    assert_eq!(r.poll_timeout(), Some(t0 + 4 * S));
    r.handle_timeout(t0 + 4 * S);
    let got = drain(&mut r);
    let [Action::Dial { target, .. }] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(target.hostname, "r-low");
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + 60 * S),
        "then the first handshake deadline"
    );
}

#[test]
fn relays_start_at_once_without_direct_hints() {
    let t0 = Instant::now();
    let mut r = Race::new(
        config(RaceRole::Follower, false),
        plan(&[], &[hint("r", 2, 0.0)]),
        t0,
    );
    let got = drain(&mut r);
    assert!(
        matches!(
            &got[..],
            [Action::Dial {
                route: Route::Relay,
                ..
            }]
        ),
        "{got:?}"
    );
}

#[test]
fn a_handshake_that_never_finishes_times_out() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Decider, false), plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    r.handle(t0, b, ConnEvent::Failed("refused".into()));
    r.handle(t0 + S, a, ConnEvent::Dialed);
    drain(&mut r);
    r.handle_timeout(t0 + 60 * S);
    let got = drain(&mut r);
    assert_eq!(got[0], Action::Close(a));
    assert_eq!(
        got[1],
        Action::Fail(RaceError::NoConnection(vec![
            "to b:1: refused".into(),
            "a:1: timed out".into()
        ]))
    );
}

#[test]
fn key_mismatch_fails_at_once_when_no_dial_is_left() {
    let t0 = Instant::now();
    // Even with a listener: once the dials proved another key, no inbound can succeed either.
    let mut r = Race::new(config(RaceRole::Follower, true), plan(&["a"], &[]), t0);
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    r.handle(t0, a, ConnEvent::Dialed);
    drain(&mut r);
    r.handle(t0 + S, a, ConnEvent::HandshakeMismatched);
    assert_eq!(
        drain(&mut r),
        [Action::Fail(RaceError::KeyMismatch(vec!["to a:1".into()]))]
    );
}

#[test]
fn key_mismatch_grace_bounds_the_remaining_attempts() {
    let t0 = Instant::now();
    let mut r = Race::new(
        config(RaceRole::Decider, true),
        plan(&["a"], &[hint("r", 2, 0.0)]),
        t0,
    );
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    // A stranger on our port proves nothing; a peer with another key does.
    let x = r.accepted(t0, "192.0.2.9:1000".into()).unwrap();
    let y = r.accepted(t0, "192.0.2.7:2000".into()).unwrap();
    assert_eq!(drain(&mut r), [Action::Handshake(x), Action::Handshake(y)]);
    r.handle(t0, x, ConnEvent::Failed("GET / HTTP/1.1".into()));
    r.handle(t0 + S, y, ConnEvent::HandshakeMismatched);
    assert_eq!(drain(&mut r), [], "the dial and the relay may still succeed");
    assert_eq!(r.poll_timeout(), Some(t0 + 2 * S), "the relay is still due first");
    r.handle_timeout(t0 + 2 * S);
    let [relay] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(
        r.poll_timeout(),
        Some(t0 + 11 * S),
        "grace ends 10 s after the proof"
    );
    r.handle_timeout(t0 + 11 * S);
    assert_eq!(
        drain(&mut r),
        [
            Action::Close(a),
            Action::Close(relay),
            Action::Fail(RaceError::KeyMismatch(vec!["from 192.0.2.7:2000".into()]))
        ]
    );
}

#[test]
fn a_good_connection_still_wins_within_the_grace() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Decider, false), plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    r.handle(t0, a, ConnEvent::Dialed);
    r.handle(t0, a, ConnEvent::HandshakeMismatched);
    drain(&mut r);
    assert_eq!(complete(&mut r, t0 + 5 * S, b), [Action::SendGo(b)]);
    r.handle(t0 + 5 * S, b, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), [Action::Winner(b)]);
}

#[test]
fn fixed_roles_a_peer_that_only_dials_us() {
    // wormhole-william's receiver sends no hints and only dials; we are the Sender.
    let t0 = Instant::now();
    let mut r = Race::new(
        config(RaceRole::Decider, true),
        Plan::transit(&[hint("relay", 4001, 0.0)], &TransitMsg::default(), true, 50),
        t0,
    );
    let [relay] = dials(&drain(&mut r))[..] else {
        panic!("our relay, at once")
    };
    let inbound = r.accepted(t0 + S, "192.0.2.1:5000".into()).unwrap();
    assert_eq!(drain(&mut r), [Action::Handshake(inbound)]);
    r.handle(t0 + S, inbound, ConnEvent::HandshakeCompleted);
    assert_eq!(drain(&mut r), [Action::SendGo(inbound)]);
    r.handle(t0 + S, inbound, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), [Action::Close(relay), Action::Winner(inbound)]);
}

#[test]
fn fixed_roles_a_peer_that_never_dials() {
    // wormhole-william's sender only listens (and uses a relay); we are the Receiver.
    let t0 = Instant::now();
    let mut peer = TransitMsg::default();
    peer.hints
        .push(super::super::Hint::DirectTcp(hint("go-sender", 7, 0.0)));
    let mut r = Race::new(
        config(RaceRole::Follower, false),
        Plan::transit(&[], &peer, true, 50),
        t0,
    );
    let [d] = dials(&drain(&mut r))[..] else { panic!() };
    assert_eq!(complete(&mut r, t0, d), [Action::AwaitGo(d)]);
    r.handle(t0, d, ConnEvent::GoReceived);
    assert_eq!(drain(&mut r), [Action::Winner(d)]);
}

#[test]
fn every_dial_failing_without_a_listener_fails_with_every_reason() {
    let t0 = Instant::now();
    let mut r = Race::new(
        config(RaceRole::Decider, false),
        plan(&["a"], &[hint("r", 2, 0.0)]),
        t0,
    );
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    r.handle(t0, a, ConnEvent::Failed("connection refused".into()));
    assert_eq!(drain(&mut r), [], "the relay is still scheduled");
    r.handle_timeout(t0 + 2 * S);
    let [relay] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    r.handle(
        t0 + 2 * S,
        relay,
        ConnEvent::Failed("relay ok: unexpected byte".into()),
    );
    assert_eq!(
        drain(&mut r),
        [Action::Fail(RaceError::NoConnection(vec![
            "to a:1: connection refused".into(),
            "via relay r:2: relay ok: unexpected byte".into()
        ]))]
    );
}

#[test]
fn nothing_to_dial_and_no_listener_fails_at_once() {
    let r = &mut Race::new(config(RaceRole::Follower, false), Plan::default(), Instant::now());
    assert_eq!(drain(r), [Action::Fail(RaceError::NoConnection(vec![]))]);
}

#[test]
fn with_a_listener_only_the_overall_timeout_ends_a_failed_race() {
    let t0 = Instant::now();
    let mut r = Race::new(config(RaceRole::Follower, true), plan(&["a"], &[]), t0);
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    r.handle(t0, a, ConnEvent::Failed("refused".into()));
    assert_eq!(drain(&mut r), []);
    assert_eq!(r.poll_timeout(), Some(t0 + 120 * S));
    r.handle_timeout(t0 + 120 * S);
    assert_eq!(drain(&mut r), [Action::Fail(RaceError::TimedOut(120 * S))]);
}

#[test]
fn a_late_timer_call_handles_due_timers_in_deadline_order() {
    let t0 = Instant::now();
    let mut cfg = config(RaceRole::Decider, false);
    cfg.overall_timeout = Some(5 * S);
    let relays = [hint("r1", 2, 1.0), hint("r2", 3, 0.0)];
    let mut r = Race::new(cfg, plan(&["a"], &relays), t0);
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    // One call long after every deadline: relays at 2 s and 4 s, then the overall limit at 5 s.
    r.handle_timeout(t0 + 100 * S);
    let got = drain(&mut r);
    let ids = dials(&got);
    let [r1, r2] = ids[..] else { panic!("{got:?}") };
    assert_eq!(
        got[2..],
        [
            Action::Close(a),
            Action::Close(r1),
            Action::Close(r2),
            Action::Fail(RaceError::TimedOut(5 * S))
        ]
    );
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn relay_handshake_deadline_counts_from_its_scheduled_dial() {
    let t0 = Instant::now();
    let mut r = Race::new(
        config(RaceRole::Decider, true),
        plan(&["a"], &[hint("r", 2, 0.0)]),
        t0,
    );
    let [a] = dials(&drain(&mut r))[..] else { panic!() };
    r.handle(t0, a, ConnEvent::Failed("refused".into()));
    r.handle_timeout(t0 + 3 * S);
    let [relay] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(r.poll_timeout(), Some(t0 + 62 * S));
    r.handle_timeout(t0 + 62 * S);
    assert_eq!(drain(&mut r), [Action::Close(relay)]);
}

#[test]
fn inbound_connections_are_bounded() {
    let t0 = Instant::now();
    let mut cfg = config(RaceRole::Decider, true);
    cfg.max_inbound = 2;
    let mut r = Race::new(cfg, Plan::default(), t0);
    assert!(r.accepted(t0, "x:1".into()).is_some());
    let second = r.accepted(t0, "x:2".into()).unwrap();
    assert_eq!(r.accepted(t0, "x:3".into()), None);
    r.handle(t0, second, ConnEvent::Failed("noise".into()));
    assert!(r.accepted(t0, "x:4".into()).is_some());
    let mut closed = Race::new(config(RaceRole::Decider, false), plan(&["a"], &[]), t0);
    assert_eq!(closed.accepted(t0, "x:1".into()), None, "not listening");
}

#[test]
fn decider_without_nevermind_just_closes_the_losers() {
    // Dilation's Leader: losers are dropped without a word.
    let t0 = Instant::now();
    let mut cfg = config(RaceRole::Decider, false);
    cfg.send_nevermind = false;
    cfg.overall_timeout = None;
    let mut r = Race::new(cfg, plan(&["a", "b"], &[]), t0);
    let [a, b] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    complete(&mut r, t0, a);
    complete(&mut r, t0, b);
    r.handle(t0, a, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), [Action::Close(b), Action::Winner(a)]);
}

#[test]
fn the_transit_plan_merges_our_relays_with_the_peers() {
    let peer = TransitMsg::new(vec![
        super::super::Hint::Relay(super::super::RelayHint {
            tcp: vec![hint("go-relay", 4001, 2.0), hint("mine", 1, 0.0)],
            tor: vec![],
            websocket: vec![],
            name: None,
        }),
        super::super::Hint::DirectTcp(hint("peer", 9, 0.0)),
    ]);
    let p = Plan::transit(&[hint("mine", 1, 0.0)], &peer, true, 50);
    assert_eq!(p.direct.len(), 1);
    let got: Vec<(&str, Duration)> = relay_schedule(p.relays, vec![], true, 2 * S)
        .iter()
        .map(|(r, d)| {
            let RelayTarget::Tcp(r) = r else {
                panic!("no WebSocket relays here")
            };
            (
                if r.hostname == "go-relay" {
                    "go-relay"
                } else {
                    "mine"
                },
                *d,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("go-relay", 2 * S), ("mine", 4 * S)],
        "deduplicated, by priority"
    );
    assert!(
        Plan::transit(&[], &peer, false, 50).direct.is_empty(),
        "dialling direct hints is off"
    );
    assert!(Plan::transit(&[], &peer, true, 0).direct.is_empty(), "capped");
}

#[test]
fn under_tor_onion_hints_come_first_and_relays_offer_their_onions_too() {
    use super::super::{Hint, RelayHint};
    let peer = TransitMsg::new(vec![
        Hint::DirectTcp(hint("192.0.2.7", 9, 0.0)),
        Hint::TorTcp(hint("peer.onion", 80, 0.0)),
        Hint::Relay(RelayHint {
            tcp: vec![hint("relay.example", 4001, 0.0)],
            tor: vec![hint("relay.onion", 4001, 0.0)],
            websocket: vec![],
            name: None,
        }),
    ]);
    let p = Plan::transit_via_tor(&[hint("mine", 1, 0.0)], &peer, 50);
    let direct: Vec<&str> = p.direct.iter().map(|h| h.hostname.as_str()).collect();
    assert_eq!(direct, ["peer.onion", "192.0.2.7"]);
    let relays: Vec<&str> = p.relays.iter().map(|h| h.hostname.as_str()).collect();
    assert_eq!(relays, ["mine", "relay.onion", "relay.example"]);
    assert_eq!(Plan::transit_via_tor(&[], &peer, 1).direct.len(), 1, "capped");
    // Without Tor, onion hints are never dialled.
    let plain = Plan::transit(&[], &peer, true, 50);
    assert!(plain.direct.iter().all(|h| !h.hostname.ends_with(".onion")));
    assert!(plain.relays.iter().all(|h| !h.hostname.ends_with(".onion")));
}

#[test]
fn any_order_of_events_ends_exactly_once_and_nothing_follows_the_end() {
    use rand::{Rng, SeedableRng};
    let events = |r: &mut rand::rngs::StdRng| match r.gen_range(0..7) {
        0 => ConnEvent::Dialed,
        1 => ConnEvent::Failed("x".into()),
        2 => ConnEvent::HandshakeCompleted,
        3 => ConnEvent::HandshakeMismatched,
        4 => ConnEvent::GoSent,
        5 => ConnEvent::GoReceived,
        _ => ConnEvent::NevermindReceived,
    };
    for seed in 0..500u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let role = if seed % 2 == 0 {
            RaceRole::Decider
        } else {
            RaceRole::Follower
        };
        let t0 = Instant::now();
        let relays = [hint("r1", 2, 1.0), hint("r2", 3, 0.0)];
        let mut p = plan(&["a", "b"], &relays);
        p.relay_websockets = vec![ws("ws://r1/"), ws("wss://r2/")];
        let mut r = Race::new(config(role, seed % 3 == 0), p, t0);
        let mut t = t0;
        let mut ends = 0;
        let mut ids: Vec<ConnId> = Vec::new();
        for _ in 0..200 {
            for a in drain(&mut r) {
                assert_eq!(ends, 0, "seed {seed}: {a:?} after the end");
                match a {
                    Action::Dial { id, .. } | Action::DialWebSocket { id, .. } => ids.push(id),
                    Action::Winner(_) | Action::Fail(_) => ends += 1,
                    _ => {}
                }
            }
            match rng.gen_range(0..4) {
                0 => {
                    t += Duration::from_millis(rng.gen_range(0..20_000));
                    r.handle_timeout(t);
                }
                1 => {
                    if let Some(id) = r.accepted(t, "192.0.2.1:1".into()) {
                        ids.push(id);
                    }
                }
                _ if !ids.is_empty() => {
                    let id = ids[rng.gen_range(0..ids.len())];
                    let ev = events(&mut rng);
                    r.handle(t, id, ev);
                }
                _ => {}
            }
        }
        r.handle_timeout(t + 200 * S);
        ends += drain(&mut r)
            .iter()
            .filter(|a| matches!(a, Action::Winner(_) | Action::Fail(_)))
            .count();
        assert_eq!(ends, 1, "seed {seed}: the race must end exactly once");
        assert!(r.is_done() && r.poll_timeout().is_none());
    }
}

#[test]
fn websocket_relays_come_after_every_tcp_group() {
    let t0 = Instant::now();
    let mut p = plan(&["a"], &[hint("r1", 2, 1.0), hint("r2", 3, 0.0)]);
    p.relay_websockets = vec![ws("ws://r1/"), ws("ws://r1/"), ws("wss://r2/x")];
    let mut r = Race::new(config(RaceRole::Decider, false), p, t0);
    assert_eq!(dials(&drain(&mut r)).len(), 1, "only the direct hint at first");
    r.handle_timeout(t0 + 2 * S);
    assert_eq!(dials(&drain(&mut r)).len(), 1, "relay r1");
    r.handle_timeout(t0 + 4 * S);
    assert_eq!(dials(&drain(&mut r)).len(), 1, "relay r2");
    assert_eq!(r.poll_timeout(), Some(t0 + 6 * S));
    r.handle_timeout(t0 + 6 * S);
    let urls: Vec<String> = ws_dials(&drain(&mut r)).into_iter().map(|(_, u)| u).collect();
    assert_eq!(urls, ["ws://r1/", "wss://r2/x"], "deduplicated, in order");
}

#[test]
fn websocket_relays_start_at_once_when_tcp_to_every_relay_failed() {
    let t0 = Instant::now();
    let mut p = plan(&[], &[hint("r1", 2, 0.0)]);
    p.relay_websockets = vec![ws("ws://r1:4002/")];
    let mut r = Race::new(config(RaceRole::Decider, false), p, t0);
    let [tcp] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(r.poll_timeout(), Some(t0 + 2 * S), "WebSocket one group later");
    r.handle(t0 + S / 10, tcp, ConnEvent::Failed("connection refused".into()));
    assert_eq!(
        drain(&mut r),
        [],
        "the race is not lost: a WebSocket dial is still to come"
    );
    assert_eq!(r.poll_timeout(), Some(t0 + S / 10), "and it comes now");
    r.handle_timeout(t0 + S / 10);
    let [(id, url)] = &ws_dials(&drain(&mut r))[..] else {
        panic!()
    };
    assert_eq!(url, "ws://r1:4002/");
    assert_eq!(complete(&mut r, t0 + S, *id), [Action::SendGo(*id)]);
    r.handle(t0 + S, *id, ConnEvent::GoSent);
    assert_eq!(drain(&mut r), [Action::Winner(*id)]);
}

#[test]
fn a_silent_tcp_relay_delays_the_websocket_one_group_only() {
    let t0 = Instant::now();
    let mut p = plan(&[], &[hint("r1", 2, 0.0)]);
    p.relay_websockets = vec![ws("ws://r1:4002/")];
    let mut r = Race::new(config(RaceRole::Follower, false), p, t0);
    let [tcp] = dials(&drain(&mut r))[..] else {
        panic!()
    };
    r.handle(t0, tcp, ConnEvent::Dialed);
    assert_eq!(drain(&mut r), [Action::Handshake(tcp)]);
    r.handle_timeout(t0 + 2 * S);
    assert_eq!(
        ws_dials(&drain(&mut r)).len(),
        1,
        "while the TCP relay still waits"
    );
}

#[test]
fn a_failed_websocket_relay_fails_the_race_with_its_reason() {
    let t0 = Instant::now();
    let mut p = plan(&[], &[]);
    p.relay_websockets = vec![ws("ws://r1:4002/")];
    let mut r = Race::new(config(RaceRole::Decider, false), p, t0);
    let [(id, _)] = &ws_dials(&drain(&mut r))[..] else {
        panic!("dialled at once")
    };
    r.handle(t0, *id, ConnEvent::Failed("HTTP 404".into()));
    let acts = drain(&mut r);
    let [Action::Fail(RaceError::NoConnection(why))] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(why, &["via relay ws://r1:4002/: HTTP 404".to_owned()]);
}

#[test]
fn the_plan_carries_both_sides_websocket_endpoints() {
    let peer = TransitMsg::new(vec![super::super::Hint::Relay(super::super::RelayHint {
        websocket: vec![ws("wss://theirs/")],
        ..Default::default()
    })]);
    let p = Plan::transit(&[], &peer, true, 50).with_websockets(&[ws("ws://ours/")], &peer);
    let urls: Vec<&str> = p.relay_websockets.iter().map(|w| w.url.as_str()).collect();
    assert_eq!(urls, ["ws://ours/", "wss://theirs/"]);
}
