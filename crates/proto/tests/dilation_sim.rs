//! Deterministic simulation of two sans-IO Dilation endpoints (`dilation::endpoint::Dilation`)
//! with no network: a simulated mailbox that delays, duplicates, reorders and (for a while)
//! loses `dilate-N` messages; simulated TCP links that drop (reset), freeze (a silently dead
//! path: nothing arrives, nobody is told) and refuse new dials for a while (a dead relay);
//! applications with several subchannels each way, a subchannel for a subprotocol nobody
//! listens for, late listeners, half-close in both directions and readers that stall. Time is
//! simulated; every seed must deliver every record in order, exactly once, within the memory
//! bounds of the endpoint's `Config`.
//!
//! Also here: focused cases against a hand-driven raw peer (an unknown L3 record, equal
//! dilation sides, a peer that floods a subchannel nobody reads).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::endpoint::{Action, Config, ConnectionId, Dilation, Error};
use wormhole_proto::dilation::frame::{FOLLOWER_PREFIX, FrameDecoder, LEADER_PREFIX, encode_frame};
use wormhole_proto::dilation::l3::Record;
use wormhole_proto::dilation::manager::L1Message;
use wormhole_proto::dilation::noise::{LeaderHandshake, NoiseTransport, dilation_psk, respond};

const MS: Duration = Duration::from_millis(1);
/// Largest piece handed to one `connection_data` call.
const CHUNK: usize = 4096;

fn sim_config(seed: u64) -> Config {
    Config {
        ping_interval: Duration::from_secs(1),
        leader_timeout: Duration::from_secs(2),
        follower_timeout: Duration::from_secs(4),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(2),
        stable_after: Duration::from_secs(3),
        recv_window: 8 * 1024,
        max_unacked_bytes: 16 * 1024,
        blocked_read_allowance: 32 * 1024,
        max_write_len: 4096,
        max_frame_len: 64 * 1024,
        open_hold: Duration::from_secs(5),
        rng_seed: seed,
        ..Config::default()
    }
}

fn ms(rng: &mut StdRng, lo: u64, hi: u64) -> Duration {
    MS * rng.gen_range(lo as u32..=hi as u32)
}

// ----- simulated links ----------------------------------------------------------------------

enum Item {
    Bytes(Vec<u8>),
    /// Orderly close after everything before it.
    Fin,
    /// Reset: the connection is gone.
    Rst,
}

struct Link {
    /// (node, connection id at that node), index = end.
    ends: [(usize, ConnectionId); 2],
    /// Items travelling towards end `i`.
    toward: [VecDeque<(Instant, Item)>; 2],
    /// End `i` stopped reading.
    paused: [bool; 2],
    /// End `i` is gone (closed, aborted or told).
    gone: [bool; 2],
    frozen: bool,
}

// ----- simulated applications ---------------------------------------------------------------

#[derive(Default)]
struct Writer {
    next: u32,
    total: u32,
    closed: bool,
}

#[derive(Default)]
struct Reader {
    next: u32,
    peer_closed: bool,
    unconsumed: usize,
}

struct App {
    /// Subchannels this side opened for "sim".
    opened: Vec<u32>,
    want_open: usize,
    /// A subchannel opened for "nobody" (refused by the peer after the hold).
    bogus: Option<u32>,
    want_bogus: bool,
    bogus_peer_closed: bool,
    listen_at: Instant,
    listening: bool,
    writers: BTreeMap<u32, Writer>,
    readers: BTreeMap<u32, Reader>,
    refused: Vec<u32>,
    stall_until: Instant,
}

struct Node {
    ep: Dilation,
    listening: Option<u64>,
    app: App,
    connected: u32,
    /// Our outbound `dilate-N` counter (the Boss's job in a real client).
    sent_phases: u64,
}

#[derive(Default, Debug)]
struct Stats {
    connections: u64,
    keepalive_aborts: u64,
    conn_failures: u64,
    refused: u64,
    would_block: u64,
    pauses: u64,
    mailbox_dups: u64,
    drops: u64,
    freezes: u64,
    blackouts: u64,
    records: u64,
    max_buffered: usize,
    max_unacked: usize,
}

/// Records per direction per subchannel, known to both ends.
fn total_for(seed: u64, writer_node: usize, scid: u32) -> u32 {
    let h = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(u64::from(scid) * 31 + writer_node as u64 * 7);
    ((h >> 17) % 25) as u32
}

fn record_bytes(rng: &mut StdRng, scid: u32, index: u32, max: usize) -> Vec<u8> {
    let len = if rng.gen_bool(0.1) {
        8
    } else {
        rng.gen_range(8..=max)
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&scid.to_be_bytes());
    v.extend_from_slice(&index.to_be_bytes());
    v.extend((8..len).map(|i| (i as u32 ^ index ^ scid) as u8));
    v
}

fn check_record(data: &[u8], scid: u32, index: u32) {
    assert!(data.len() >= 8, "short record on {scid}");
    assert_eq!(&data[..4], &scid.to_be_bytes(), "record for another subchannel");
    let got = u32::from_be_bytes(data[4..8].try_into().unwrap());
    assert_eq!(
        got, index,
        "subchannel {scid}: record {got} arrived, expected {index}"
    );
    for (i, b) in data.iter().enumerate().skip(8) {
        assert_eq!(*b, (i as u32 ^ index ^ scid) as u8, "corrupt record");
    }
}

struct World {
    seed: u64,
    rng: StdRng,
    now: Instant,
    config: Config,
    nodes: [Node; 2],
    mailbox: Vec<(Instant, usize, String, Vec<u8>)>,
    dials: Vec<(Instant, usize, usize, u64)>,
    links: Vec<Link>,
    by_end: HashMap<(usize, ConnectionId), (usize, usize)>,
    next_conn: u64,
    blackout_until: Instant,
    faults: VecDeque<Instant>,
    stats: Stats,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Instant::now();
        let psk = dilation_psk(b"shared key").unwrap();
        let config = sim_config(seed);
        let make = |rng: &mut StdRng, i: usize| {
            let side = format!("{:016x}", rng.r#gen::<u64>());
            let mut c = config.clone();
            c.rng_seed = seed * 2 + i as u64;
            Node {
                ep: Dilation::new(c, side, psk),
                listening: None,
                connected: 0,
                sent_phases: 0,
                app: App {
                    opened: Vec::new(),
                    want_open: rng.gen_range(1..=3),
                    bogus: None,
                    want_bogus: rng.gen_bool(0.5),
                    bogus_peer_closed: false,
                    listen_at: now + ms(rng, 0, 3000),
                    listening: false,
                    writers: BTreeMap::new(),
                    readers: BTreeMap::new(),
                    refused: Vec::new(),
                    stall_until: now,
                },
            }
        };
        let a = make(&mut rng, 0);
        let b = make(&mut rng, 1);
        let mut faults = VecDeque::new();
        let mut t = now;
        for _ in 0..rng.gen_range(0..=5) {
            t += ms(&mut rng, 200, 4000);
            faults.push_back(t);
        }
        World {
            seed,
            rng,
            now,
            config,
            nodes: [a, b],
            mailbox: Vec::new(),
            dials: Vec::new(),
            links: Vec::new(),
            by_end: HashMap::new(),
            next_conn: 1,
            blackout_until: now,
            faults,
            stats: Stats::default(),
        }
    }

    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].ep.poll_action() {
            self.act(i, a);
        }
        let ep = &self.nodes[i].ep;
        let c = &self.config;
        let buffered = ep.max_buffered();
        assert!(
            buffered <= c.recv_window.max(c.blocked_read_allowance) + CHUNK + c.max_write_len + 64,
            "seed {}: receive buffer {buffered} over its bound",
            self.seed
        );
        let unacked = ep.unacked_bytes();
        assert!(
            unacked <= c.max_unacked_bytes + c.max_write_len + 1024,
            "seed {}: unacked {unacked} over its bound",
            self.seed
        );
        assert!(ep.connection_count() <= c.max_connections);
        self.stats.max_buffered = self.stats.max_buffered.max(buffered);
        self.stats.max_unacked = self.stats.max_unacked.max(unacked);
    }

    fn end_of(&self, i: usize, conn: ConnectionId) -> Option<(usize, usize)> {
        self.by_end.get(&(i, conn)).copied()
    }

    fn send_toward(&mut self, link: usize, end: usize, item: Item) {
        let lat = ms(&mut self.rng, 1, 5);
        let l = &mut self.links[link];
        if l.frozen || l.gone[end] {
            return;
        }
        let at = l.toward[end]
            .back()
            .map_or(self.now, |(t, _)| *t)
            .max(self.now + lat);
        l.toward[end].push_back((at, item));
    }

    fn act(&mut self, i: usize, a: Action) {
        let now = self.now;
        match a {
            Action::SendMailbox { body } => {
                // The sim plays the Boss here: it owns the one dilate-N counter.
                let phase = format!("dilate-{}", self.nodes[i].sent_phases);
                self.nodes[i].sent_phases += 1;
                let copies = if self.rng.gen_bool(0.1) { 2 } else { 1 };
                self.stats.mailbox_dups += copies - 1;
                for _ in 0..copies {
                    let delay = if self.rng.gen_bool(0.05) {
                        ms(&mut self.rng, 500, 2000) // lost, replayed on a mailbox reconnect
                    } else {
                        ms(&mut self.rng, 1, 40)
                    };
                    self.mailbox
                        .push((now + delay, 1 - i, phase.clone(), body.clone()));
                }
            }
            Action::StartConnector { generation, .. } => {
                self.nodes[i].listening = Some(generation);
                let hint = json!({"type": "sim", "node": i, "gen": generation});
                self.nodes[i].ep.local_hints(vec![hint], now);
            }
            Action::StopConnector => self.nodes[i].listening = None,
            Action::Dial { hints } => {
                for h in hints {
                    let (Some(j), Some(g)) = (h["node"].as_u64(), h["gen"].as_u64()) else {
                        panic!("bad hint {h}");
                    };
                    let at = now + ms(&mut self.rng, 2, 10);
                    self.dials.push((at, i, j as usize, g));
                }
            }
            Action::Write { conn, bytes } => {
                if let Some((link, end)) = self.end_of(i, conn)
                    && !self.links[link].gone[end]
                {
                    self.send_toward(link, 1 - end, Item::Bytes(bytes));
                }
            }
            Action::Close { conn } | Action::Abort { conn } => {
                let abort = matches!(a, Action::Abort { .. });
                if let Some((link, end)) = self.end_of(i, conn) {
                    if abort {
                        // Discard what this end still had queued (it was never written).
                        let l = &mut self.links[link];
                        l.toward[1 - end].retain(|(t, _)| *t <= now);
                    }
                    if !self.links[link].gone[end] {
                        self.send_toward(link, 1 - end, if abort { Item::Rst } else { Item::Fin });
                    }
                    let l = &mut self.links[link];
                    l.gone[end] = true;
                    l.toward[end].clear();
                }
            }
            Action::PauseReading { conn } | Action::ResumeReading { conn } => {
                let pause = matches!(a, Action::PauseReading { .. });
                if pause {
                    self.stats.pauses += 1;
                }
                if let Some((link, end)) = self.end_of(i, conn) {
                    self.links[link].paused[end] = pause;
                }
            }
            Action::Connected { .. } => {
                self.nodes[i].connected += 1;
                self.stats.connections += 1;
            }
            Action::Accepted { scid, subprotocol } => {
                assert_eq!(subprotocol, "sim", "seed {}", self.seed);
                let app = &mut self.nodes[i].app;
                assert!(
                    app.readers.insert(scid, Reader::default()).is_none(),
                    "accepted twice"
                );
                let total = total_for(self.seed, i, scid);
                app.writers.insert(
                    scid,
                    Writer {
                        total,
                        ..Writer::default()
                    },
                );
            }
            Action::Data { scid, data } => {
                self.stats.records += 1;
                let app = &mut self.nodes[i].app;
                if app.bogus == Some(scid) {
                    panic!("seed {}: data on the refused subchannel", self.seed);
                }
                let r = app
                    .readers
                    .get_mut(&scid)
                    .expect("data for an unknown subchannel");
                assert!(!r.peer_closed, "data after CLOSE");
                check_record(&data, scid, r.next);
                r.next += 1;
                r.unconsumed += data.len();
            }
            Action::PeerClosed { scid } => {
                let app = &mut self.nodes[i].app;
                if app.bogus == Some(scid) {
                    app.bogus_peer_closed = true;
                    // Ours may already be closed (we wrote everything).
                    let _ = self.nodes[i].ep.close(scid, now);
                } else {
                    let r = app
                        .readers
                        .get_mut(&scid)
                        .expect("close for an unknown subchannel");
                    assert!(!r.peer_closed, "CLOSE twice");
                    r.peer_closed = true;
                }
            }
            Action::OpenRefused { scid, subprotocol } => {
                assert_eq!(subprotocol, "nobody", "seed {}", self.seed);
                self.stats.refused += 1;
                self.nodes[i].app.refused.push(scid);
            }
            Action::Writable => {}
            Action::Warning(Error::KeepaliveTimeout { .. }) => self.stats.keepalive_aborts += 1,
            Action::Warning(_) => self.stats.conn_failures += 1,
            Action::Failed(e) => panic!("seed {}: dilation failed: {e}", self.seed),
            _ => {}
        }
    }

    fn link_up(&mut self, dialer: usize, listener: usize, generation: u64) {
        if self.now < self.blackout_until || self.nodes[listener].listening != Some(generation) {
            return; // the dial fails
        }
        let ids = [ConnectionId(self.next_conn), ConnectionId(self.next_conn + 1)];
        self.next_conn += 2;
        let idx = self.links.len();
        self.links.push(Link {
            ends: [(dialer, ids[0]), (listener, ids[1])],
            toward: [VecDeque::new(), VecDeque::new()],
            paused: [false; 2],
            gone: [false; 2],
            frozen: false,
        });
        self.by_end.insert((dialer, ids[0]), (idx, 0));
        self.by_end.insert((listener, ids[1]), (idx, 1));
        for (end, node) in [dialer, listener].into_iter().enumerate() {
            self.nodes[node].ep.connection_new(ids[end], None, self.now);
            self.drain(node);
        }
    }

    fn fault(&mut self) {
        let Some(conn) = self.nodes[0].ep.connection_in_use() else {
            return;
        };
        let Some((link, _)) = self.end_of(0, conn) else {
            return;
        };
        match self.rng.gen_range(0..3) {
            0 => {
                self.stats.drops += 1;
                for end in 0..2 {
                    self.links[link].toward[end].clear();
                    self.send_toward(link, end, Item::Rst);
                }
            }
            1 => {
                self.stats.freezes += 1;
                let l = &mut self.links[link];
                l.frozen = true;
                l.toward = [VecDeque::new(), VecDeque::new()];
            }
            _ => {
                self.stats.blackouts += 1;
                self.blackout_until = self.now + ms(&mut self.rng, 500, 3000);
                for end in 0..2 {
                    self.links[link].toward[end].clear();
                    self.send_toward(link, end, Item::Rst);
                }
            }
        }
    }

    fn deliver_links(&mut self) {
        for link in 0..self.links.len() {
            for end in 0..2 {
                loop {
                    let l = &mut self.links[link];
                    if l.paused[end] || l.gone[end] {
                        break;
                    }
                    let due = l.toward[end].front().is_some_and(|(t, _)| *t <= self.now);
                    if !due {
                        break;
                    }
                    let (t, item) = l.toward[end].pop_front().unwrap();
                    let (node, conn) = l.ends[end];
                    match item {
                        Item::Bytes(mut b) => {
                            let n = self.rng.gen_range(1..=CHUNK).min(b.len());
                            let rest = b.split_off(n);
                            if !rest.is_empty() {
                                self.links[link].toward[end].push_front((t, Item::Bytes(rest)));
                            }
                            self.nodes[node].ep.connection_data(conn, &b, self.now);
                        }
                        Item::Fin | Item::Rst => {
                            self.links[link].gone[end] = true;
                            self.nodes[node].ep.connection_lost(conn, self.now);
                        }
                    }
                    self.drain(node);
                }
            }
        }
    }

    fn app_tick(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let app = &mut node.app;
        if !app.listening && now >= app.listen_at {
            app.listening = true;
            node.ep.listen("sim").unwrap();
        }
        while app.opened.len() < app.want_open {
            match node.ep.open("sim", now) {
                Ok(scid) => {
                    app.opened.push(scid);
                    app.readers.insert(scid, Reader::default());
                    let total = total_for(self.seed, i, scid);
                    app.writers.insert(
                        scid,
                        Writer {
                            total,
                            ..Writer::default()
                        },
                    );
                }
                Err(Error::NotYet) => break,
                Err(e) => panic!("open: {e}"),
            }
        }
        if app.want_bogus
            && app.bogus.is_none()
            && let Ok(scid) = node.ep.open("nobody", now)
        {
            app.bogus = Some(scid);
            node.ep.write(scid, b"lost".to_vec(), now).unwrap();
        }
        let scids: Vec<u32> = app.writers.keys().copied().collect();
        'writers: for scid in scids {
            for _ in 0..self.rng.gen_range(0..4) {
                let w = app.writers.get_mut(&scid).unwrap();
                if w.closed {
                    continue 'writers;
                }
                if w.next == w.total {
                    node.ep.close(scid, now).unwrap();
                    w.closed = true;
                    continue 'writers;
                }
                let data = record_bytes(&mut self.rng, scid, w.next, self.config.max_write_len);
                match node.ep.write(scid, data, now) {
                    Ok(()) => w.next += 1,
                    Err(Error::WouldBlock { .. }) => {
                        self.stats.would_block += 1;
                        break 'writers;
                    }
                    Err(e) => panic!("seed {}: write: {e}", self.seed),
                }
            }
        }
        if now >= app.stall_until {
            if self.rng.gen_bool(0.002) {
                app.stall_until = now + ms(&mut self.rng, 100, 3000);
            } else {
                for (scid, r) in &mut app.readers {
                    if r.unconsumed > 0 && self.rng.gen_bool(0.5) {
                        let n = self.rng.gen_range(1..=r.unconsumed);
                        r.unconsumed -= n;
                        node.ep.consumed(*scid, n, now);
                    }
                }
            }
        }
        self.drain(i);
    }

    fn app_busy(&self) -> bool {
        self.nodes.iter().any(|n| {
            let a = &n.app;
            !a.listening
                || a.opened.len() < a.want_open
                || (a.want_bogus && a.bogus.is_none())
                || a.writers.values().any(|w| !w.closed)
                || a.readers.values().any(|r| r.unconsumed > 0)
        })
    }

    fn done(&self) -> bool {
        (0..2).all(|i| {
            let me = &self.nodes[i];
            let peer = &self.nodes[1 - i];
            let readers_done = me.app.readers.iter().all(|(scid, r)| {
                r.peer_closed && r.unconsumed == 0 && r.next == total_for(self.seed, 1 - i, *scid)
            });
            let accepted_all = peer.app.opened.iter().all(|s| me.app.readers.contains_key(s));
            let bogus_done = peer.app.bogus.is_none_or(|s| me.app.refused.contains(&s))
                && (me.app.bogus.is_none() || me.app.bogus_peer_closed);
            !self.app_busy()
                && readers_done
                && accepted_all
                && bogus_done
                && me.ep.unacked_bytes() == 0
                && me.ep.connection_in_use().is_some()
        })
    }

    fn next_time(&self) -> Instant {
        let mut t: Vec<Instant> = Vec::new();
        t.extend(self.nodes.iter().filter_map(|n| n.ep.poll_timeout()));
        t.extend(self.mailbox.iter().map(|m| m.0));
        t.extend(self.dials.iter().map(|d| d.0));
        t.extend(self.faults.front().copied());
        for l in &self.links {
            for end in 0..2 {
                if !l.paused[end] && !l.gone[end] {
                    t.extend(l.toward[end].front().map(|x| x.0));
                }
            }
        }
        if self.app_busy() {
            t.push(self.now + 5 * MS);
        }
        t.push(self.now + Duration::from_secs(1));
        t.into_iter().min().unwrap().max(self.now)
    }

    fn step(&mut self) {
        self.now = self.next_time();
        let now = self.now;
        // Mailbox deliveries, in arrival order.
        self.mailbox.sort_by_key(|m| m.0);
        while self.mailbox.first().is_some_and(|m| m.0 <= now) {
            let (_, to, phase, body) = self.mailbox.remove(0);
            self.nodes[to].ep.mailbox_received(&phase, &body, now).unwrap();
            self.drain(to);
        }
        let due: Vec<_> = self.dials.iter().filter(|d| d.0 <= now).copied().collect();
        self.dials.retain(|d| d.0 > now);
        for (_, dialer, listener, g) in due {
            self.link_up(dialer, listener, g);
        }
        if self.faults.front().is_some_and(|t| *t <= now) {
            self.faults.pop_front();
            self.fault();
        }
        self.deliver_links();
        for i in 0..2 {
            if self.nodes[i].ep.poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[i].ep.handle_timeout(now);
                self.drain(i);
            }
            self.app_tick(i);
        }
    }
}

fn run_seed(seed: u64) -> Stats {
    let mut w = World::new(seed);
    let start = w.now;
    for i in 0..2 {
        w.nodes[i].ep.peer_versions(&["ged".to_owned()], w.now);
        w.drain(i);
    }
    let mut steps = 0u64;
    while !w.done() {
        steps += 1;
        assert!(
            w.now < start + Duration::from_secs(300) && steps < 2_000_000,
            "seed {seed}: no progress after {:?}, {steps} steps: {:?} / {:?}",
            w.now - start,
            w.nodes[0].ep,
            w.nodes[1].ep
        );
        w.step();
    }
    let roles: Vec<_> = w.nodes.iter().map(|n| n.ep.role().unwrap()).collect();
    assert_ne!(roles[0], roles[1]);
    w.stats
}

#[test]
fn two_endpoints_through_faults_deliver_every_record_once_in_order() {
    let mut total = Stats::default();
    let seeds: u64 = std::env::var("DILATION_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 1..=seeds {
        let s = run_seed(seed);
        total.connections += s.connections;
        total.keepalive_aborts += s.keepalive_aborts;
        total.conn_failures += s.conn_failures;
        total.refused += s.refused;
        total.would_block += s.would_block;
        total.pauses += s.pauses;
        total.mailbox_dups += s.mailbox_dups;
        total.drops += s.drops;
        total.freezes += s.freezes;
        total.blackouts += s.blackouts;
        total.records += s.records;
        total.max_buffered = total.max_buffered.max(s.max_buffered);
        total.max_unacked = total.max_unacked.max(s.max_unacked);
    }
    println!("dilation sim, {seeds} seeds: {total:?}");
    if seeds < 200 {
        return;
    }
    // The simulation really exercised what it claims to.
    assert!(total.connections > 400, "{total:?}");
    assert!(total.keepalive_aborts > 10, "{total:?}");
    assert!(total.refused > 10, "{total:?}");
    assert!(total.would_block > 10, "{total:?}");
    assert!(total.pauses > 10, "{total:?}");
    assert!(
        total.drops > 10 && total.freezes > 10 && total.blackouts > 10,
        "{total:?}"
    );
}

// ----- focused cases against a hand-driven raw Follower ------------------------------------

const LEADER_SIDE: &str = "ffffffffffffff00";
const FOLLOWER_SIDE: &str = "0000000000000001";

/// The far end of one connection, driven by hand: a Follower that speaks raw Noise frames, so
/// it can send anything (records our endpoint would never produce, floods, silence).
struct RawFollower {
    noise: NoiseTransport,
    decoder: FrameDecoder,
    /// Records the endpoint sent us, in order.
    got: Vec<Record>,
    seqnum: u32,
}

impl RawFollower {
    fn take_writes(&mut self, ep: &mut Dilation, conn: ConnectionId) -> Vec<Action> {
        let mut other = Vec::new();
        while let Some(a) = ep.poll_action() {
            match a {
                Action::Write { conn: c, bytes } if c == conn => {
                    let mut frames = Vec::new();
                    self.decoder.feed(&bytes, &mut frames).unwrap();
                    for f in frames {
                        let plain = self.noise.decrypt(&f).unwrap();
                        self.got.push(Record::parse(&plain).unwrap());
                    }
                }
                a => other.push(a),
            }
        }
        other
    }

    fn frame(&mut self, plaintext: &[u8]) -> Vec<u8> {
        encode_frame(&self.noise.encrypt(plaintext).unwrap()).unwrap()
    }

    fn next_seqnum(&mut self) -> u32 {
        self.seqnum += 1;
        self.seqnum - 1
    }
}

fn phase(n: u64) -> String {
    format!("dilate-{n}")
}

/// Our endpoint as Leader, connected to a raw Follower on connection 1.
fn leader_with_raw_follower(config: Config) -> (Dilation, RawFollower, ConnectionId, Instant) {
    let t = Instant::now();
    let key = dilation_psk(b"k").unwrap();
    let mut ep = Dilation::new(config, LEADER_SIDE.into(), key);
    ep.peer_versions(&["ged".into()], t);
    let please = L1Message::Please {
        side: FOLLOWER_SIDE.into(),
        use_version: Some("ged".into()),
    };
    ep.mailbox_received(&phase(0), &please.to_bytes(), t).unwrap();
    let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::StartConnector {
            role: Role::Leader,
            generation: 1
        }
    )));
    let c = ConnectionId(1);
    ep.connection_new(c, None, t);
    let Some(Action::Write { bytes, .. }) = ep.poll_action() else {
        panic!("no prefix");
    };
    assert_eq!(bytes, LEADER_PREFIX);
    ep.connection_data(c, FOLLOWER_PREFIX, t);
    let Some(Action::Write { bytes, .. }) = ep.poll_action() else {
        panic!("no frame 1");
    };
    let (frame2, mut noise) = respond(&key, &bytes[4..]).unwrap();
    let mut wire = encode_frame(&frame2).unwrap();
    wire.extend(encode_frame(&noise.encrypt(&Record::Kcm.encode()).unwrap()).unwrap());
    let mut raw = RawFollower {
        noise,
        decoder: FrameDecoder::new(1 << 24),
        got: Vec::new(),
        seqnum: 0,
    };
    ep.connection_data(c, &wire, t);
    let other = raw.take_writes(&mut ep, c);
    assert!(
        other.iter().any(|a| matches!(a, Action::Connected { .. })),
        "{other:?}"
    );
    assert_eq!(raw.got, vec![Record::Kcm]);
    assert_eq!(ep.connection_in_use(), Some(c));
    (ep, raw, c, t)
}

fn mailbox_types(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::SendMailbox { body, .. } => {
                let v: Value = serde_json::from_slice(body).unwrap();
                Some(v["type"].as_str().unwrap().to_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn unknown_l3_record_aborts_the_connection_and_asks_to_reconnect() {
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(sim_config(1));
    let bad = raw.frame(&[0x07, 1, 2, 3]);
    ep.connection_data(c, &bad, t);
    let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
    assert!(
        acts.iter().any(|a| matches!(
            a,
            Action::Warning(Error::Connection {
                source: wormhole_proto::dilation::connection::ConnectionError::Record(
                    wormhole_proto::dilation::l3::RecordError::UnknownTag(7)
                ),
                ..
            })
        )),
        "{acts:?}"
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Abort { conn } if *conn == c))
    );
    assert_eq!(mailbox_types(&acts), vec!["reconnect"]);
    assert_eq!(ep.connection_in_use(), None);
}

#[test]
fn equal_dilation_sides_fail_with_a_typed_error() {
    let t = Instant::now();
    let mut ep = Dilation::new(sim_config(1), LEADER_SIDE.into(), [7; 32]);
    ep.peer_versions(&["ged".into()], t);
    let please = L1Message::Please {
        side: LEADER_SIDE.into(),
        use_version: Some("ged".into()),
    };
    ep.mailbox_received(&phase(0), &please.to_bytes(), t).unwrap();
    let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Failed(Error::EqualSides))),
        "{acts:?}"
    );
    assert!(ep.has_ended());
    assert!(matches!(ep.open("x", t), Err(Error::Ended)));
    assert_eq!(ep.poll_timeout(), None);

    // A peer without a common version fails too, with its own variant.
    let mut ep = Dilation::new(sim_config(1), LEADER_SIDE.into(), [7; 32]);
    ep.peer_versions(&["zzz".into()], t);
    let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Failed(Error::PeerCannotDilate)))
    );
    assert!(matches!(
        ep.mailbox_received("please-0", b"{}", t),
        Err(Error::BadPhase(_))
    ));
}

#[test]
fn keepalive_pings_then_aborts_a_silent_connection() {
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(sim_config(1));
    let s = Duration::from_secs(1);
    assert_eq!(ep.poll_timeout(), Some(t + s));
    ep.handle_timeout(t + s);
    raw.take_writes(&mut ep, c);
    assert!(matches!(raw.got.last(), Some(Record::Ping { .. })));
    // Traffic keeps it alive; silence for the whole timeout aborts it (not a graceful close).
    let pong = raw.frame(&Record::Pong { ping_id: [0; 4] }.encode());
    ep.connection_data(c, &pong, t + s);
    ep.handle_timeout(t + 2 * s);
    assert!(raw.take_writes(&mut ep, c).is_empty());
    assert_eq!(ep.connection_in_use(), Some(c));
    ep.handle_timeout(t + 3 * s);
    let acts = raw.take_writes(&mut ep, c);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Warning(Error::KeepaliveTimeout { .. })))
    );
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Abort { conn } if *conn == c))
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::Close { .. })));
    assert_eq!(mailbox_types(&acts), vec!["reconnect"]);
}

#[test]
fn leader_keeps_redialling_with_bounded_backoff() {
    let t = Instant::now();
    let cfg = sim_config(3);
    let mut ep = Dilation::new(cfg.clone(), LEADER_SIDE.into(), [7; 32]);
    ep.peer_versions(&["ged".into()], t);
    let please = L1Message::Please {
        side: FOLLOWER_SIDE.into(),
        use_version: Some("ged".into()),
    };
    ep.mailbox_received(&phase(0), &please.to_bytes(), t).unwrap();
    let hints = L1Message::ConnectionHints {
        hints: vec![json!({"type": "relay-v1", "hints": []})],
    };
    ep.mailbox_received(&phase(1), &hints.to_bytes(), t).unwrap();
    let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
    assert_eq!(
        acts.iter().filter(|a| matches!(a, Action::Dial { .. })).count(),
        1
    );
    // Nothing ever connects: it dials again and again, the gaps grow and stay bounded.
    let mut now = t;
    let mut gaps = Vec::new();
    for _ in 0..20 {
        let next = ep.poll_timeout().unwrap();
        gaps.push(next - now);
        now = next;
        ep.handle_timeout(now);
        let acts: Vec<Action> = std::iter::from_fn(|| ep.poll_action()).collect();
        assert!(acts.iter().any(|a| matches!(a, Action::Dial { .. })), "{acts:?}");
    }
    assert!(gaps.iter().all(|g| *g <= cfg.backoff_max));
    assert!(gaps[10] > gaps[0] * 4, "{gaps:?}");
}

#[test]
fn flooding_peer_is_bounded_by_pausing_the_connection() {
    let cfg = sim_config(1);
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg.clone());
    ep.listen("p").unwrap();
    // The peer opens a subchannel and sends 4 MiB without waiting for anything.
    let mut wire = Vec::new();
    let scid = 2;
    let seq = raw.next_seqnum();
    wire.extend(
        raw.frame(
            &Record::Open {
                scid,
                seqnum: seq,
                subprotocol: "p".into(),
            }
            .encode(),
        ),
    );
    let record = 4000;
    let n = 1024;
    for i in 0..n {
        let seqnum = raw.next_seqnum();
        let data = vec![(i % 251) as u8; record];
        wire.extend(
            raw.frame(
                &Record::Data {
                    scid,
                    seqnum,
                    data: data.into(),
                }
                .encode(),
            ),
        );
    }
    let mut fed = 0;
    let mut received = 0usize;
    let mut paused = false;
    let mut rounds = 0;
    while received < n * record {
        rounds += 1;
        assert!(rounds < 100_000);
        if !paused && fed < wire.len() {
            let end = (fed + CHUNK).min(wire.len());
            ep.connection_data(c, &wire[fed..end], t);
            fed = end;
        }
        for a in raw.take_writes(&mut ep, c) {
            match a {
                Action::PauseReading { .. } => paused = true,
                Action::ResumeReading { .. } => paused = false,
                Action::Data { data, .. } => received += data.len(),
                _ => {}
            }
        }
        assert!(ep.buffered(scid) <= cfg.recv_window + CHUNK + record + 64);
        assert_eq!(paused, ep.is_reading_paused());
        // The reader is slow: it consumes only once the connection is paused.
        if paused {
            let b = ep.buffered(scid);
            ep.consumed(scid, b, t);
        }
    }
    assert_eq!(fed, wire.len());
    // Every record was ACKed (the last ACK once its delay passed).
    let due = ep.poll_timeout().unwrap();
    assert!(due <= t + cfg.ack_delay, "the ACK is due within its delay");
    ep.handle_timeout(due);
    raw.take_writes(&mut ep, c);
    assert!(raw.got.contains(&Record::Ack {
        resp_seqnum: n as u32
    }));
    // One ACK stood for many records (the clock stood still: only the count sent them).
    let acks = raw.got.iter().filter(|r| matches!(r, Record::Ack { .. })).count();
    assert!(acks <= n / cfg.ack_every + 2, "{acks} ACKs for {n} records");
}

#[test]
fn opens_nobody_listens_for_are_held_bounded_then_closed() {
    let cfg = Config {
        // No keepalive expiry within the hold.
        ping_interval: Duration::from_secs(30),
        leader_timeout: Duration::from_secs(60),
        ..sim_config(1)
    };
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg.clone());
    let mut wire = Vec::new();
    for k in 0..100u32 {
        let seqnum = raw.next_seqnum();
        wire.extend(
            raw.frame(
                &Record::Open {
                    scid: 2 + 2 * k,
                    seqnum,
                    subprotocol: "nobody".into(),
                }
                .encode(),
            ),
        );
    }
    ep.connection_data(c, &wire, t);
    let acts = raw.take_writes(&mut ep, c);
    let refused_now = acts
        .iter()
        .filter(|a| matches!(a, Action::OpenRefused { .. }))
        .count();
    assert_eq!(ep.pending_opens(), cfg.max_pending_opens);
    assert_eq!(refused_now, 100 - cfg.max_pending_opens);
    assert_eq!(ep.poll_timeout(), Some(t + cfg.open_hold), "the hold deadline");
    ep.handle_timeout(t + cfg.open_hold);
    let acts = raw.take_writes(&mut ep, c);
    let refused_later = acts
        .iter()
        .filter(|a| matches!(a, Action::OpenRefused { .. }))
        .count();
    assert_eq!(refused_later, cfg.max_pending_opens);
    assert_eq!(ep.pending_opens(), 0);
    let closes = raw
        .got
        .iter()
        .filter(|r| matches!(r, Record::Close { .. }))
        .count();
    assert_eq!(closes, 100);
}

/// An application that writes back what it reads (an echo, a forwarder) while the peer keeps
/// sending: our writes wait for ACKs that sit behind the peer's data. Reading must go on past
/// the full receive window (within the allowance) so the ACK is seen, instead of both sides
/// waiting for each other forever.
#[test]
fn blocked_writer_reads_on_past_a_full_window_to_find_the_acks() {
    let cfg = sim_config(1);
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg.clone());
    let scid = ep.open("p", t).unwrap();
    // Our side fills its unacked queue.
    let mut n = 0u32;
    while ep.write(scid, vec![7; 1000], t).is_ok() {
        n += 1;
    }
    raw.take_writes(&mut ep, c);
    // The peer sends more than a window of data on the same subchannel (nobody consumes),
    // and only then the ACK of everything we wrote.
    let mut wire = Vec::new();
    let record = 1000;
    let count = 2 * cfg.recv_window / record;
    for _ in 0..count {
        let seqnum = raw.next_seqnum();
        let data = vec![1; record];
        wire.extend(
            raw.frame(
                &Record::Data {
                    scid,
                    seqnum,
                    data: data.into(),
                }
                .encode(),
            ),
        );
    }
    wire.extend(raw.frame(&Record::Ack { resp_seqnum: n }.encode()));
    let mut paused = false;
    let mut writable = false;
    let mut fed = 0;
    while fed < wire.len() && !paused {
        let end = (fed + CHUNK).min(wire.len());
        ep.connection_data(c, &wire[fed..end], t);
        fed = end;
        for a in raw.take_writes(&mut ep, c) {
            match a {
                Action::PauseReading { .. } => paused = true,
                Action::ResumeReading { .. } => paused = false,
                Action::Writable => writable = true,
                _ => {}
            }
        }
        assert!(ep.buffered(scid) <= cfg.blocked_read_allowance + CHUNK + record + 64);
    }
    assert!(writable, "the ACK behind the peer's data was read");
    assert_eq!(ep.unacked_bytes(), 0);
    // Once writes flow again the full window pauses reading as usual.
    assert!(ep.is_reading_paused());
    // Reading what is buffered resumes it.
    ep.consumed(scid, ep.buffered(scid), t);
    assert!(!ep.is_reading_paused());
}

/// The allowance is a bound, not a hole: a peer that never ACKs cannot make a blocked writer
/// buffer more than it.
#[test]
fn blocked_read_allowance_is_a_hard_bound() {
    let cfg = sim_config(1);
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg.clone());
    let scid = ep.open("p", t).unwrap();
    while ep.write(scid, vec![7; 1000], t).is_ok() {}
    raw.take_writes(&mut ep, c);
    let record = 1000;
    let mut paused = false;
    let mut sent = 0;
    while !paused {
        let seqnum = raw.next_seqnum();
        let wire = raw.frame(
            &Record::Data {
                scid,
                seqnum,
                data: vec![1; record].into(),
            }
            .encode(),
        );
        ep.connection_data(c, &wire, t);
        sent += record;
        assert!(sent <= 2 * cfg.blocked_read_allowance, "never paused");
        paused = raw
            .take_writes(&mut ep, c)
            .iter()
            .any(|a| matches!(a, Action::PauseReading { .. }));
    }
    let b = ep.buffered(scid);
    assert!(
        b >= cfg.blocked_read_allowance && b <= cfg.blocked_read_allowance + record + 64,
        "{b}"
    );
}

#[test]
fn writes_block_at_the_unacked_bound_and_resume_on_ack() {
    let cfg = sim_config(1);
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg.clone());
    let scid = ep.open("p", t).unwrap();
    assert_eq!(scid, 1);
    let mut n = 0;
    loop {
        match ep.write(scid, vec![0; 1000], t) {
            Ok(()) => n += 1,
            Err(Error::WouldBlock { limit, .. }) => {
                assert_eq!(limit, cfg.max_unacked_bytes);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(matches!(
        ep.write(scid, vec![0; cfg.max_write_len + 1], t),
        Err(Error::RecordTooLarge { .. })
    ));
    raw.take_writes(&mut ep, c);
    let datas = raw
        .got
        .iter()
        .filter(|r| matches!(r, Record::Data { .. }))
        .count();
    assert_eq!(datas, n, "one write, one DATA record");
    let ack = raw.frame(
        &Record::Ack {
            resp_seqnum: n as u32,
        }
        .encode(),
    );
    ep.connection_data(c, &ack, t);
    let acts = raw.take_writes(&mut ep, c);
    assert!(acts.iter().any(|a| matches!(a, Action::Writable)));
    assert_eq!(ep.unacked_bytes(), 0);
    ep.write(scid, vec![1; 10], t).unwrap();
}

#[test]
fn stop_closes_the_connection_gracefully() {
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(sim_config(1));
    let scid = ep.open("p", t).unwrap();
    ep.write(scid, b"last words".to_vec(), t).unwrap();
    ep.stop(t);
    let acts = raw.take_writes(&mut ep, c);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Close { conn } if *conn == c)),
        "{acts:?}"
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::Abort { .. })));
    assert!(acts.iter().any(|a| matches!(a, Action::Stopped)));
    assert!(matches!(raw.got.last(), Some(Record::Data { .. })));
    assert!(matches!(ep.write(scid, vec![1], t), Err(Error::Ended)));
}

#[test]
fn peer_opens_beyond_the_subchannel_limit_are_refused() {
    let cfg = Config {
        max_subchannels: 3,
        ..sim_config(1)
    };
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg);
    ep.listen("p").unwrap();
    let mut wire = Vec::new();
    for k in 0..5u32 {
        let seqnum = raw.next_seqnum();
        let open = Record::Open {
            scid: 2 + 2 * k,
            seqnum,
            subprotocol: "p".into(),
        };
        wire.extend(raw.frame(&open.encode()));
    }
    ep.connection_data(c, &wire, t);
    let acts = raw.take_writes(&mut ep, c);
    let accepted = acts
        .iter()
        .filter(|a| matches!(a, Action::Accepted { .. }))
        .count();
    let refused = acts
        .iter()
        .filter(|a| matches!(a, Action::OpenRefused { .. }))
        .count();
    assert_eq!((accepted, refused), (3, 2));
    let closes: Vec<u32> = raw
        .got
        .iter()
        .filter_map(|r| match r {
            Record::Close { scid, .. } => Some(*scid),
            _ => None,
        })
        .collect();
    assert_eq!(closes, vec![8, 10]);
}

/// Our endpoint as Follower, connected to a raw Leader (same helper type, roles swapped).
fn follower_with_raw_leader(config: Config) -> (Dilation, RawFollower, ConnectionId, Instant) {
    let t = Instant::now();
    let key = dilation_psk(b"k").unwrap();
    let mut ep = Dilation::new(config, FOLLOWER_SIDE.into(), key);
    ep.peer_versions(&["ged".into()], t);
    let please = L1Message::Please {
        side: LEADER_SIDE.into(),
        use_version: Some("ged".into()),
    };
    ep.mailbox_received(&phase(0), &please.to_bytes(), t).unwrap();
    while ep.poll_action().is_some() {}
    let c = ConnectionId(1);
    ep.connection_new(c, None, t);
    let Some(Action::Write { bytes, .. }) = ep.poll_action() else {
        panic!("no prefix");
    };
    assert_eq!(bytes, FOLLOWER_PREFIX);
    let (hs, frame1) = LeaderHandshake::start(&key).unwrap();
    let mut wire = LEADER_PREFIX.to_vec();
    wire.extend(encode_frame(&frame1).unwrap());
    ep.connection_data(c, &wire, t);
    let Some(Action::Write { bytes, .. }) = ep.poll_action() else {
        panic!("no frame 2");
    };
    let mut frames = Vec::new();
    FrameDecoder::new(1 << 20).feed(&bytes, &mut frames).unwrap();
    let mut noise = hs.finish(&frames[0]).unwrap();
    assert_eq!(noise.decrypt(&frames[1]).unwrap(), Record::Kcm.encode());
    let mut raw = RawFollower {
        noise,
        decoder: FrameDecoder::new(1 << 24),
        got: Vec::new(),
        seqnum: 0,
    };
    let kcm = raw.frame(&Record::Kcm.encode());
    ep.connection_data(c, &kcm, t);
    let other = raw.take_writes(&mut ep, c);
    assert!(other.iter().any(|a| matches!(
        a,
        Action::Connected {
            role: Role::Follower,
            ..
        }
    )));
    (ep, raw, c, t)
}

#[test]
fn a_paused_follower_pings_and_is_not_aborted_for_its_own_silence() {
    let cfg = sim_config(1);
    let (mut ep, mut raw, c, t) = follower_with_raw_leader(cfg.clone());
    ep.listen("p").unwrap();
    let open = Record::Open {
        scid: 1,
        seqnum: raw.next_seqnum(),
        subprotocol: "p".into(),
    };
    let mut wire = raw.frame(&open.encode());
    for _ in 0..3 {
        let seqnum = raw.next_seqnum();
        let data = vec![9; cfg.recv_window / 2];
        wire.extend(
            raw.frame(
                &Record::Data {
                    scid: 1,
                    seqnum,
                    data: data.into(),
                }
                .encode(),
            ),
        );
    }
    ep.connection_data(c, &wire, t);
    let acts = raw.take_writes(&mut ep, c);
    assert!(acts.iter().any(|a| matches!(a, Action::PauseReading { .. })));
    // Not pinging while reading normally; pinging once paused.
    let pings = |raw: &RawFollower| {
        raw.got
            .iter()
            .filter(|r| matches!(r, Record::Ping { .. }))
            .count()
    };
    assert_eq!(pings(&raw), 0);
    // First the delayed ACK of what arrived...
    let mut now = ep.poll_timeout().unwrap();
    assert_eq!(now, t + cfg.ack_delay);
    ep.handle_timeout(now);
    raw.take_writes(&mut ep, c);
    assert!(
        raw.got
            .iter()
            .any(|r| matches!(r, Record::Ack { resp_seqnum: 3 }))
    );
    // ...then, while paused, the PINGs.
    for _ in 0..10 {
        now = ep.poll_timeout().unwrap();
        ep.handle_timeout(now);
        raw.take_writes(&mut ep, c);
    }
    assert!(now >= t + cfg.follower_timeout * 2);
    assert_eq!(pings(&raw), 10);
    assert_eq!(
        ep.connection_in_use(),
        Some(c),
        "paused: our own silence is not the peer's fault"
    );
    ep.consumed(1, ep.buffered(1), now);
    let acts = raw.take_writes(&mut ep, c);
    assert!(acts.iter().any(|a| matches!(a, Action::ResumeReading { .. })));
    ep.handle_timeout(now + cfg.follower_timeout / 2);
    assert_eq!(ep.connection_in_use(), Some(c));
    ep.handle_timeout(now + cfg.follower_timeout);
    assert_eq!(ep.connection_in_use(), None, "silent after resuming: aborted");
}

#[test]
fn an_application_ping_is_answered_and_keepalive_pongs_are_not_reported() {
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(sim_config(1));
    ep.ping(*b"app1", t).unwrap();
    raw.take_writes(&mut ep, c);
    assert_eq!(raw.got.last(), Some(&Record::Ping { ping_id: *b"app1" }));
    // A PONG to some other PING (a keepalive's) is not the application's.
    let other = raw.frame(&Record::Pong { ping_id: *b"keep" }.encode());
    ep.connection_data(c, &other, t);
    assert!(
        !raw.take_writes(&mut ep, c)
            .iter()
            .any(|a| matches!(a, Action::Pong { .. }))
    );
    let pong = raw.frame(&Record::Pong { ping_id: *b"app1" }.encode());
    ep.connection_data(c, &pong, t);
    let acts = raw.take_writes(&mut ep, c);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Pong { ping_id } if ping_id == b"app1"))
    );
    // Answered once: a repeated PONG is not reported again.
    let again = raw.frame(&Record::Pong { ping_id: *b"app1" }.encode());
    ep.connection_data(c, &again, t);
    assert!(
        !raw.take_writes(&mut ep, c)
            .iter()
            .any(|a| matches!(a, Action::Pong { .. }))
    );
}

#[test]
fn a_ping_without_a_connection_is_a_typed_error() {
    let mut ep = Dilation::new(sim_config(1), LEADER_SIDE.into(), [7; 32]);
    assert!(matches!(
        ep.ping(*b"none", Instant::now()),
        Err(Error::NotYet | Error::NotConnected)
    ));
}

#[test]
fn small_writes_share_a_buffer_and_large_ones_keep_their_own() {
    let cfg = Config {
        max_write_len: 64 << 10,
        max_unacked_bytes: 4 << 20,
        ..sim_config(1)
    };
    let (mut ep, mut raw, c, t) = leader_with_raw_follower(cfg);
    let scid = ep.open("p", t).unwrap();
    raw.take_writes(&mut ep, c);
    let buffers = |ep: &mut Dilation| {
        let mut lens = Vec::new();
        while let Some(a) = ep.poll_action() {
            if let Action::Write { conn, bytes } = a
                && conn == c
            {
                lens.push(bytes.len());
            }
        }
        lens
    };
    for _ in 0..3 {
        ep.write(scid, vec![1; 100], t).unwrap();
    }
    assert_eq!(buffers(&mut ep).len(), 1, "three small records, one buffer");
    for _ in 0..3 {
        ep.write(scid, vec![2; 60 << 10], t).unwrap();
    }
    let lens = buffers(&mut ep);
    assert_eq!(
        lens.len(),
        3,
        "each large record is its own buffer (not copied): {lens:?}"
    );
    assert!(lens.iter().all(|&n| n > 60 << 10));
}
