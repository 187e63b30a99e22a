//! Two complete sans-IO Dilation stacks (manager + per-connection machine + L4) wired to each
//! other in memory: `please` exchange and role choice, a connection generation with KCMs,
//! subchannel traffic, a connection lost mid-stream with records in flight, the
//! `reconnect` / `reconnecting` exchange, a new generation that re-sends what was not
//! acknowledged, and exactly-once, in-order delivery at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;

use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::connection::{ConnEvent, Connection};
use wormhole_proto::dilation::frame::DEFAULT_MAX_FRAME_LEN;
use wormhole_proto::dilation::l3::Record;
use wormhole_proto::dilation::l4::{Action as L4Action, Delivery, Reliability};
use wormhole_proto::dilation::manager::{Action, Manager, State};
use wormhole_proto::dilation::noise::dilation_psk;

struct Side {
    manager: Manager,
    l4: Option<Reliability>,
    conn: Option<Connection>,
    /// Mailbox messages this side sent, as (phase, body).
    outbox: VecDeque<Vec<u8>>,
    starts: Vec<(Role, u64)>,
    delivered: Vec<Delivery>,
    abandon: bool,
}

impl Side {
    fn new(side: &str) -> Side {
        Side {
            manager: Manager::new(side.into()),
            l4: None,
            conn: None,
            outbox: VecDeque::new(),
            starts: Vec::new(),
            delivered: Vec::new(),
            abandon: false,
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { message } => self.outbox.push_back(message.to_bytes()),
                Action::StartConnecting { role, generation } => {
                    self.starts.push((role, generation));
                    self.l4.get_or_insert_with(|| Reliability::new(role));
                }
                Action::AbandonConnection => self.abandon = true,
                Action::Failed(e) => panic!("dilation failed: {e}"),
                _ => {}
            }
        }
    }

    fn role(&self) -> Role {
        self.manager.role().unwrap()
    }
}

/// Delivers every pending mailbox message both ways (in order, as the Boss does).
fn mailbox(a: &mut Side, b: &mut Side) {
    loop {
        let mut moved = false;
        if let Some(body) = a.outbox.pop_front() {
            let acts = b.manager.received(&body);
            b.apply(acts);
            moved = true;
        }
        if let Some(body) = b.outbox.pop_front() {
            let acts = a.manager.received(&body);
            a.apply(acts);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// Opens a connection between the sides and runs it until both have exchanged KCMs; the
/// Leader's L4 re-sends its queue right after its KCM, the Follower's after receiving it.
/// Returns the bytes still to deliver (a = leader's outbound, b = follower's outbound).
fn connect(l: &mut Side, f: &mut Side, psk: [u8; 32]) -> (Vec<u8>, Vec<u8>) {
    let (lc, mut to_f) = Connection::new(Role::Leader, psk, None, DEFAULT_MAX_FRAME_LEN);
    let (fc, mut to_l) = Connection::new(Role::Follower, psk, None, DEFAULT_MAX_FRAME_LEN);
    l.conn = Some(lc);
    f.conn = Some(fc);
    for _ in 0..10 {
        let o = f
            .conn
            .as_mut()
            .unwrap()
            .receive(&std::mem::take(&mut to_f))
            .unwrap();
        to_l.extend(o.send);
        for e in o.events {
            match e {
                ConnEvent::KcmReceived => {
                    let acts = f.manager.connection_made();
                    f.apply(acts);
                    for r in f.l4.as_mut().unwrap().connection_made() {
                        to_l.extend(f.conn.as_mut().unwrap().send_record(&r).unwrap());
                    }
                }
                // The Leader's re-sent records may share a read with its KCM.
                ConnEvent::Record(r) => to_l.extend(on_record(f, r)),
            }
        }
        let o = l
            .conn
            .as_mut()
            .unwrap()
            .receive(&std::mem::take(&mut to_l))
            .unwrap();
        to_f.extend(o.send);
        for e in o.events {
            let r = match e {
                ConnEvent::KcmReceived => None,
                ConnEvent::Record(r) => Some(r),
            };
            if let Some(r) = r {
                to_f.extend(on_record(l, r));
                continue;
            }
            let conn = l.conn.as_mut().unwrap();
            to_f.extend(conn.send_record(&Record::Kcm).unwrap());
            let acts = l.manager.connection_made();
            l.apply(acts);
            for r in l.l4.as_mut().unwrap().connection_made() {
                to_f.extend(l.conn.as_mut().unwrap().send_record(&r).unwrap());
            }
        }
        if l.manager.state() == State::Connected && f.manager.state() == State::Connected {
            break;
        }
    }
    assert_eq!(l.manager.state(), State::Connected);
    assert_eq!(f.manager.state(), State::Connected);
    (to_f, to_l)
}

/// Passes one decrypted record to `side`'s L4; returns bytes to send back.
fn on_record(side: &mut Side, r: Record) -> Vec<u8> {
    let mut back = Vec::new();
    for a in side.l4.as_mut().unwrap().receive(r) {
        match a {
            L4Action::Send(r) => back.extend(side.conn.as_mut().unwrap().send_record(&r).unwrap()),
            L4Action::Deliver(d) => side.delivered.push(d),
            _ => {}
        }
    }
    back
}

/// Feeds `bytes` to `side`'s connection and L4; returns bytes to send back.
fn deliver(side: &mut Side, bytes: &[u8]) -> Vec<u8> {
    let mut back = Vec::new();
    let o = side.conn.as_mut().unwrap().receive(bytes).unwrap();
    for e in o.events {
        let ConnEvent::Record(r) = e else {
            panic!("second KCM")
        };
        back.extend(on_record(side, r));
    }
    back
}

/// Delivers bytes both ways until nothing more is produced.
fn pump(l: &mut Side, f: &mut Side, mut to_f: Vec<u8>, mut to_l: Vec<u8>) {
    while !to_f.is_empty() || !to_l.is_empty() {
        to_l.extend(deliver(f, &std::mem::take(&mut to_f)));
        to_f.extend(deliver(l, &std::mem::take(&mut to_l)));
    }
}

/// Sends on `side`'s L4, writing to its connection if it has one.
fn send(side: &mut Side, f: impl FnOnce(&mut Reliability) -> Option<Record>) -> Vec<u8> {
    let rec = f(side.l4.as_mut().unwrap());
    match (rec, side.conn.as_mut()) {
        (Some(r), Some(c)) => c.send_record(&r).unwrap(),
        _ => Vec::new(),
    }
}

/// Drops both ends of the connection.
fn lose(l: &mut Side, f: &mut Side) {
    l.conn = None;
    f.conn = None;
    l.l4.as_mut().unwrap().connection_lost();
    f.l4.as_mut().unwrap().connection_lost();
}

#[test]
fn two_stacks_survive_a_lost_connection() {
    let key = b"wormhole shared key, 32 bytes!!!";
    let psk = dilation_psk(key).unwrap();
    let mut l = Side::new("f0f0f0f0f0f0f0f0");
    let mut f = Side::new("0f0f0f0f0f0f0f0f");
    let ged = vec!["ged".to_string()];
    let acts = l.manager.got_peer_versions(&ged);
    l.apply(acts);
    let acts = f.manager.got_peer_versions(&ged);
    f.apply(acts);
    mailbox(&mut l, &mut f);
    assert_eq!(l.role(), Role::Leader);
    assert_eq!(f.role(), Role::Follower);
    assert_eq!(l.starts, vec![(Role::Leader, 1)]);
    assert_eq!(f.starts, vec![(Role::Follower, 1)]);

    // Generation 1.
    let (mut to_f, to_l) = connect(&mut l, &mut f, psk);
    let scid = l.l4.as_mut().unwrap().allocate_scid().unwrap();
    assert_eq!(scid, 1);
    to_f.extend(send(&mut l, |r| r.send_open(scid, "chat").unwrap()));
    for i in 0..5u8 {
        to_f.extend(send(&mut l, |r| r.send_data(scid, vec![i]).unwrap()));
    }
    // The Follower receives everything, but its ACKs are lost with the connection.
    let acks = deliver(&mut f, &std::mem::take(&mut to_f));
    assert!(!acks.is_empty());
    drop(to_l);
    // More data written while the connection is already dead.
    lose(&mut l, &mut f);
    for i in 5..8u8 {
        assert!(send(&mut l, |r| r.send_data(scid, vec![i]).unwrap()).is_empty());
    }
    assert_eq!(l.l4.as_ref().unwrap().unacked().len(), 9);

    // Reconnection through the mailbox.
    let acts = l.manager.connection_lost();
    l.apply(acts);
    let acts = f.manager.connection_lost();
    f.apply(acts);
    assert_eq!(l.manager.state(), State::Flushing);
    assert_eq!(f.manager.state(), State::Lonely);
    mailbox(&mut l, &mut f);
    assert_eq!(l.starts.last(), Some(&(Role::Leader, 2)));
    assert_eq!(f.starts.last(), Some(&(Role::Follower, 2)));
    assert!(l.outbox.is_empty() && f.outbox.is_empty());

    // Generation 2: the Leader re-sends all 9 records; the Follower drops the 6 it has.
    let (to_f, to_l) = connect(&mut l, &mut f, psk);
    pump(&mut l, &mut f, to_f, to_l);
    assert_eq!(l.l4.as_ref().unwrap().unacked().len(), 0);

    let mut want = vec![Delivery::Open {
        scid,
        subprotocol: "chat".into(),
    }];
    want.extend((0..8u8).map(|i| Delivery::Data {
        scid,
        data: vec![i].into(),
    }));
    assert_eq!(f.delivered, want);

    // The Follower answers on its own even subchannel over the new connection.
    let fscid = f.l4.as_mut().unwrap().allocate_scid().unwrap();
    assert_eq!(fscid, 2);
    let mut wire = send(&mut f, |r| r.send_open(fscid, "reply").unwrap());
    wire.extend(send(&mut f, |r| r.send_close(fscid).unwrap()));
    pump(&mut l, &mut f, Vec::new(), wire);
    assert_eq!(f.l4.as_ref().unwrap().unacked().len(), 0);
    assert_eq!(
        l.delivered,
        vec![
            Delivery::Open {
                scid: 2,
                subprotocol: "reply".into()
            },
            Delivery::Close { scid: 2 }
        ]
    );
}
