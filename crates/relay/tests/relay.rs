//! Integration tests of the relay over real sockets: every handshake outcome, pairing rules, TCP ⇄
//! WebSocket pairing, close propagation, usage rows and `--log-fd` lines, and our limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wormhole_relay::RelayArgs;
use wormhole_relay::metrics::{Reason, RelayMetrics};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
}

struct Relay {
    tcp: SocketAddr,
    ws: SocketAddr,
    db: PathBuf,
    log: PathBuf,
    _log_file: std::fs::File,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    metrics: RelayMetrics,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(extra: &[&str]) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.sqlite");
    let log = dir.path().join("usage.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let fd = log_file.as_raw_fd().to_string();
    let mut argv = vec!["relay", "--usage-db", db.to_str().unwrap(), "--log-fd", &fd];
    argv.extend_from_slice(extra);
    let args = Cli::parse_from(argv).relay;
    let config = args.config().unwrap();
    let metrics = config.metrics.clone();
    let tcp = wormhole_relay::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let ws = wormhole_relay::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (tcp_addr, ws_addr) = (tcp.local_addr().unwrap(), ws.local_addr().unwrap());
    let task = tokio::spawn(async move {
        wormhole_relay::serve(config, tcp, Some(ws)).await.unwrap();
    });
    Relay {
        tcp: tcp_addr,
        ws: ws_addr,
        db,
        log,
        _log_file: log_file,
        _dir: dir,
        task,
        metrics,
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn token(n: u8) -> String {
    format!("{:02x}{}", n, &TOKEN[2..])
}

fn sided(tok: &str, side: &str) -> Vec<u8> {
    format!("please relay {tok} for side {side}\n").into_bytes()
}

const SIDE_A: &str = "aaaaaaaaaaaaaaaa";
const SIDE_B: &str = "bbbbbbbbbbbbbbbb";

async fn connect(r: &Relay, hello: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    s.write_all(hello).await.unwrap();
    s
}

async fn read_exact_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

/// Everything until EOF (bounded in time).
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .ok();
    out
}

/// Nothing arrives within `ms`.
async fn silent(s: &mut TcpStream, ms: u64) {
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(ms), s.read(&mut b)).await;
    assert!(r.is_err(), "expected silence, got {r:?}");
}

type Row = (String, i64, Option<f64>, f64, f64);

/// The usage rows, waiting (bounded) until there are `n`.
async fn rows(r: &Relay, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(&r.db).unwrap();
        let mut st = conn
            .prepare(
                "SELECT result, total_bytes, waiting_time, total_time, started FROM usage ORDER BY rowid",
            )
            .unwrap();
        let got: Vec<Row> = st
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            assert_eq!(got.len(), n, "usage rows: {got:?}");
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn moods(rows: &[Row]) -> Vec<&str> {
    let mut m: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    m.sort();
    m
}

async fn pair(r: &Relay, tok: &str) -> (TcpStream, TcpStream) {
    let mut a = connect(r, &sided(tok, SIDE_A)).await;
    silent(&mut a, 100).await;
    let mut b = connect(r, &sided(tok, SIDE_B)).await;
    assert_eq!(read_exact_n(&mut a, 3).await, b"ok\n");
    assert_eq!(read_exact_n(&mut b, 3).await, b"ok\n");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sided_pair_relays_both_ways_and_records_one_happy_row() {
    let r = relay(&[]).await;
    let (mut a, mut b) = pair(&r, &token(1)).await;
    a.write_all(b"hello from a").await.unwrap();
    assert_eq!(read_exact_n(&mut b, 12).await, b"hello from a");
    b.write_all(b"and b").await.unwrap();
    assert_eq!(read_exact_n(&mut a, 5).await, b"and b");
    drop(a);
    assert_eq!(
        read_to_end(&mut b).await,
        b"",
        "one side closing closes the other"
    );
    let rows = rows(&r, 1).await;
    assert_eq!(rows[0].0, "happy");
    assert_eq!(rows[0].1, 17, "both directions counted");
    assert!(
        rows[0].2.is_some_and(|w| w >= 0.09),
        "waiting_time {:?}",
        rows[0].2
    );
    // the log-fd line matches
    let log = std::fs::read_to_string(&r.log).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["mood"], "happy");
    assert_eq!(line["total_bytes"], 17);
    for k in ["started", "total_time", "waiting_time"] {
        assert!(line[k].is_f64(), "{k} in {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_closing_closes_sender_too() {
    let r = relay(&[]).await;
    let (mut a, b) = pair(&r, &token(2)).await;
    drop(b);
    assert_eq!(read_to_end(&mut a).await, b"");
    assert_eq!(moods(&rows(&r, 1).await), ["happy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer_both_directions_is_intact() {
    let r = relay(&[]).await;
    let (a, b) = pair(&r, &token(3)).await;
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let d1 = data.clone();
    // Keep the write halves: dropping one half-closes, and the relay does not half-close.
    let w1 = tokio::spawn(async move {
        aw.write_all(&d1).await.unwrap();
        aw
    });
    let d2 = data.clone();
    let w2 = tokio::spawn(async move {
        bw.write_all(&d2).await.unwrap();
        bw
    });
    let mut got_b = vec![0u8; data.len()];
    let mut got_a = vec![0u8; data.len()];
    let (x, y) = tokio::join!(br.read_exact(&mut got_b), ar.read_exact(&mut got_a));
    x.unwrap();
    y.unwrap();
    assert!(got_a == data && got_b == data);
    let _keep = (w1.await.unwrap(), w2.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_requests_pair_with_anyone() {
    let r = relay(&[]).await;
    let legacy = |t: &str| format!("please relay {t}\n").into_bytes();
    let mut a = connect(&r, &legacy(&token(4))).await;
    silent(&mut a, 50).await;
    let mut b = connect(&r, &legacy(&token(4))).await;
    assert_eq!(read_exact_n(&mut a, 3).await, b"ok\n");
    assert_eq!(read_exact_n(&mut b, 3).await, b"ok\n");
    let mut c = connect(&r, &sided(&token(5), SIDE_A)).await;
    silent(&mut c, 50).await;
    let mut d = connect(&r, &legacy(&token(5))).await;
    assert_eq!(read_exact_n(&mut c, 3).await, b"ok\n");
    assert_eq!(read_exact_n(&mut d, 3).await, b"ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_side_waits_and_spares_become_redundant() {
    let r = relay(&[]).await;
    let tok = token(6);
    let mut a1 = connect(&r, &sided(&tok, SIDE_A)).await;
    silent(&mut a1, 100).await;
    let mut a2 = connect(&r, &sided(&tok, SIDE_A)).await;
    silent(&mut a2, 100).await;
    let mut b = connect(&r, &sided(&tok, SIDE_B)).await;
    assert_eq!(read_exact_n(&mut b, 3).await, b"ok\n");
    // The oldest waiter pairs; the spare is closed without a word.
    assert_eq!(read_exact_n(&mut a1, 3).await, b"ok\n");
    assert_eq!(read_to_end(&mut a2).await, b"");
    assert_eq!(moods(&rows(&r, 1).await), ["redundant"]);
    drop(b);
    assert_eq!(read_to_end(&mut a1).await, b"");
    assert_eq!(moods(&rows(&r, 2).await), ["happy", "redundant"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_tokens_do_not_pair() {
    let r = relay(&[]).await;
    let mut a = connect(&r, &sided(&token(7), SIDE_A)).await;
    let mut b = connect(&r, &sided(&token(8), SIDE_B)).await;
    silent(&mut a, 150).await;
    silent(&mut b, 10).await;
    drop(a);
    drop(b);
    let rows = rows(&r, 2).await;
    assert_eq!(moods(&rows), ["lonely", "lonely"]);
    assert!(rows.iter().all(|r| r.2.is_none() && r.1 == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_get_bad_handshake_and_errory() {
    let r = relay(&[]).await;
    let crlf = format!("please relay {} for side {SIDE_A}\r\n", token(9)).into_bytes();
    for hello in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        crlf,
        b"please relay short\n".to_vec(),
    ] {
        let mut s = connect(&r, &hello).await;
        assert_eq!(read_to_end(&mut s).await, b"bad handshake\n");
    }
    assert_eq!(moods(&rows(&r, 3).await), ["errory"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_line_is_closed_silently_as_empty() {
    let r = relay(&[]).await;
    let mut s = connect(&r, &[b'x'; 1025]).await;
    assert_eq!(read_to_end(&mut s).await, b"");
    // exactly 1024 bytes then newline is a (bad) line, not too long
    let mut line = vec![b'x'; 1024];
    line.push(b'\n');
    let mut s = connect(&r, &line).await;
    assert_eq!(read_to_end(&mut s).await, b"bad handshake\n");
    assert_eq!(moods(&rows(&r, 2).await), ["empty", "errory"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_before_request_is_empty() {
    let r = relay(&[]).await;
    let mut s = connect(&r, b"please relay ").await;
    s.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut s).await, b"");
    assert_eq!(moods(&rows(&r, 1).await), ["empty"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_before_partner_is_impatient() {
    let r = relay(&[]).await;
    // pipelined after the request
    let mut hello = sided(&token(10), SIDE_A);
    hello.extend_from_slice(b"too soon");
    let mut s = connect(&r, &hello).await;
    assert_eq!(read_to_end(&mut s).await, b"impatient\n");
    // sent a little later while waiting
    let mut s = connect(&r, &sided(&token(11), SIDE_A)).await;
    silent(&mut s, 100).await;
    s.write_all(b"x").await.unwrap();
    assert_eq!(read_to_end(&mut s).await, b"impatient\n");
    let rows = rows(&r, 2).await;
    assert_eq!(moods(&rows), ["impatient", "impatient"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_data_is_relayed_when_partner_already_waits() {
    let r = relay(&[]).await;
    let tok = token(12);
    let mut a = connect(&r, &sided(&tok, SIDE_A)).await;
    silent(&mut a, 100).await;
    let mut hello = sided(&tok, SIDE_B);
    hello.extend_from_slice(b"early");
    let mut b = connect(&r, &hello).await;
    assert_eq!(read_exact_n(&mut b, 3).await, b"ok\n");
    assert_eq!(read_exact_n(&mut a, 8).await, b"ok\nearly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lonely_when_partner_never_comes() {
    let r = relay(&["--max-wait", "1"]).await;
    let mut s = connect(&r, &sided(&token(13), SIDE_A)).await;
    let t = Instant::now();
    assert_eq!(read_to_end(&mut s).await, b"");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed after the wait limit"
    );
    let rows = rows(&r, 1).await;
    assert_eq!(rows[0].0, "lonely");
    assert!(rows[0].3 >= 0.9, "total_time {}", rows[0].3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_closes_silent_connections() {
    let r = relay(&["--handshake-timeout", "1"]).await;
    let mut s = TcpStream::connect(r.tcp).await.unwrap();
    let t = Instant::now();
    assert_eq!(read_to_end(&mut s).await, b"");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(moods(&rows(&r, 1).await), ["empty"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_extra_connections_and_recovers() {
    let r = relay(&["--max-connections", "3", "--handshake-timeout", "30"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(r.tcp).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(r.tcp).await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "refused at once: {n:?}");
    assert!(
        r.metrics.rejected_count(Reason::Connections) >= 1,
        "refusal counted"
    );
    held.clear();
    // The relay frees the slots once it has seen the closes; until then it refuses new ones, so try
    // pairing until both sides are admitted (bounded wait).
    let (mut a, mut b) = pair_when_admitted(&r).await;
    a.write_all(b"x").await.unwrap();
    assert_eq!(read_exact_n(&mut b, 1).await, b"x");
}

/// Pair two connections, starting over (fresh connections and token, after 50 ms) while the relay
/// refuses either of them: a refused connection is closed without a byte, an admitted pair gets
/// `ok\n` on both sides. Gives up after 30 s.
async fn pair_when_admitted(r: &Relay) -> (TcpStream, TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 100u8;
    loop {
        if let Some(p) = try_pair(r, &token(attempt)).await {
            return p;
        }
        assert!(Instant::now() < deadline, "the relay still refuses after 30 s");
        attempt = attempt.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_pair(r: &Relay, tok: &str) -> Option<(TcpStream, TcpStream)> {
    async fn side(r: &Relay, hello: Vec<u8>) -> Option<TcpStream> {
        let mut s = TcpStream::connect(r.tcp).await.ok()?;
        s.write_all(&hello).await.ok()?;
        Some(s)
    }
    let mut a = side(r, sided(tok, SIDE_A)).await?;
    let mut b = side(r, sided(tok, SIDE_B)).await?;
    for s in [&mut a, &mut b] {
        let mut ok = [0u8; 3];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ok)).await;
        if !matches!(read, Ok(Ok(_))) || &ok != b"ok\n" {
            return None;
        }
    }
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_cap() {
    let r = relay(&["--max-connections-per-ip", "2"]).await;
    let _a = TcpStream::connect(r.tcp).await.unwrap();
    let _b = TcpStream::connect(r.tcp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(r.tcp).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(r.metrics.rejected_count(Reason::ConnectionsPerIp), 1);
    assert_eq!(r.metrics.rejected_count(Reason::Connections), 0);
}

/// The value of `counter` once it has not moved for a second (polled; gives up after 60 s).
async fn wait_until_still(counter: &std::sync::atomic::AtomicUsize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = counter.load(std::sync::atomic::Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(std::sync::atomic::Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(1) {
            return now;
        }
        assert!(Instant::now() < deadline, "still moving after 60 s: {now}");
    }
}

/// The cap counts the bytes the relay *read*; the chunk that crosses it is not forwarded. So the
/// writer goes in lock-step with the reader (each 10,000-byte step is read back in full before the
/// next is written): every relay read then holds at most one step, whatever the machine's load,
/// and exactly the 10 steps that fit in the 100,000-byte cap arrive, then the pair is closed on
/// both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_cap_closes_the_pair() {
    let r = relay(&["--max-bytes", "100000"]).await;
    let (mut a, mut b) = pair(&r, &token(15)).await;
    for step in 0..10u8 {
        let chunk = [step; 10_000];
        a.write_all(&chunk).await.unwrap();
        assert_eq!(read_exact_n(&mut b, chunk.len()).await, chunk, "step {step}");
    }
    // 100,000 bytes carried: at the cap, not over it. One more byte crosses it.
    let _ = a.write_all(&[10u8; 10_000]).await;
    assert_eq!(read_to_end(&mut b).await, b"", "nothing past the cap");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), a.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the writer's side is closed too: {closed:?}"
    );
    assert_eq!(
        r.metrics.rejected_count(Reason::Bytes),
        1,
        "counted before the close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_cap_closes_the_pair() {
    let r = relay(&["--max-time", "1"]).await;
    let (_a, mut b) = pair(&r, &token(16)).await;
    let t = Instant::now();
    assert_eq!(read_to_end(&mut b).await, b"");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        r.metrics.rejected_count(Reason::Time),
        1,
        "counted before the close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_stalls_only_its_own_pair() {
    let r = relay(&[]).await;
    let (a, _b_never_reads) = pair(&r, &token(17)).await;
    let (_ar, mut aw) = a.into_split();
    let pushed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p = pushed.clone();
    let pusher = tokio::spawn(async move {
        let chunk = vec![1u8; 64 * 1024];
        while aw.write_all(&chunk).await.is_ok() {
            p.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Stalled: no progress for a whole second (bounded wait; progress under load only delays it).
    let stalled_at = wait_until_still(&pushed).await;
    // Socket buffers on both sides plus one relay buffer, not the whole stream.
    assert!(stalled_at < 64 << 20, "backpressure: {stalled_at} bytes accepted");
    // Another pair is unaffected.
    let (mut c, mut d) = pair(&r, &token(18)).await;
    let data = vec![9u8; 1 << 20];
    c.write_all(&data).await.unwrap();
    assert_eq!(read_exact_n(&mut d, data.len()).await, data);
    // Still bounded after the other pair's megabyte (a pusher starved for a second by a loaded
    // machine may have moved a little since; what matters is that nothing unbounded was accepted).
    let now = pushed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(now < 64 << 20, "backpressure: {now} bytes accepted");
    pusher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_row_is_written_at_start() {
    let r = relay(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(&r.db).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM current WHERE connected = 0 AND waiting = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no current row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blur_usage_rounds_rows() {
    let r = relay(&["--blur-usage", "3600"]).await;
    let (mut a, mut b) = pair(&r, &token(19)).await;
    a.write_all(b"12345").await.unwrap();
    read_exact_n(&mut b, 5).await;
    drop(a);
    read_to_end(&mut b).await;
    let rows = rows(&r, 1).await;
    assert_eq!(rows[0].1, 10_000);
    assert_eq!(rows[0].4 % 3600.0, 0.0);
}

// ---- WebSocket ----

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws_connect(r: &Relay) -> Ws {
    let url = format!("ws://{}/", r.ws);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next binary payload, or `None` at close.
async fn ws_next(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Binary(b))) => return Some(b.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pairs_with_tcp() {
    let r = relay(&[]).await;
    let tok = token(20);
    let mut ws = ws_connect(&r).await;
    ws.send(Message::Binary(sided(&tok, SIDE_A).into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tcp = connect(&r, &sided(&tok, SIDE_B)).await;
    assert_eq!(read_exact_n(&mut tcp, 3).await, b"ok\n");
    assert_eq!(ws_next(&mut ws).await.unwrap(), b"ok\n");
    ws.send(Message::Binary(b"from ws".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_exact_n(&mut tcp, 7).await, b"from ws");
    tcp.write_all(b"from tcp").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 8 {
        got.extend(ws_next(&mut ws).await.unwrap());
    }
    assert_eq!(got, b"from tcp");
    ws.close(None).await.unwrap();
    assert_eq!(
        read_to_end(&mut tcp).await,
        b"",
        "websocket close closes the tcp side"
    );
    let rows = rows(&r, 1).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("happy", 15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_websockets_pair_and_tcp_close_closes_websocket() {
    let r = relay(&[]).await;
    let tok = token(21);
    let mut a = ws_connect(&r).await;
    // a trailing newline in the first message is fine; so is the legacy form
    a.send(Message::Binary(format!("please relay {tok}").into_bytes().into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut b = ws_connect(&r).await;
    b.send(Message::Binary(sided(&tok, SIDE_B).into())).await.unwrap();
    assert_eq!(ws_next(&mut a).await.unwrap(), b"ok\n");
    assert_eq!(ws_next(&mut b).await.unwrap(), b"ok\n");
    b.send(Message::Binary(vec![5u8; 100_000].into())).await.unwrap();
    let mut n = 0;
    while n < 100_000 {
        n += ws_next(&mut a).await.unwrap().len();
    }
    drop(b);
    assert_eq!(ws_next(&mut a).await, None);

    let tok = token(22);
    let mut w = ws_connect(&r).await;
    w.send(Message::Binary(sided(&tok, SIDE_A).into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut t = connect(&r, &sided(&tok, SIDE_B)).await;
    assert_eq!(read_exact_n(&mut t, 3).await, b"ok\n");
    assert_eq!(ws_next(&mut w).await.unwrap(), b"ok\n");
    drop(t);
    assert_eq!(ws_next(&mut w).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_bad_text_and_impatient() {
    let r = relay(&[]).await;
    let mut bad = ws_connect(&r).await;
    bad.send(Message::Binary(b"please relay nonsense".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut bad).await.unwrap(), b"bad handshake\n");
    assert_eq!(ws_next(&mut bad).await, None);

    let mut text = ws_connect(&r).await;
    text.send(Message::Text(
        String::from_utf8(sided(&token(23), SIDE_A)).unwrap().into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut text).await, None, "text frames are refused");

    let mut imp = ws_connect(&r).await;
    imp.send(Message::Binary(sided(&token(24), SIDE_A).into()))
        .await
        .unwrap();
    imp.send(Message::Binary(b"data".to_vec().into())).await.unwrap();
    assert_eq!(ws_next(&mut imp).await.unwrap(), b"impatient\n");
    assert_eq!(ws_next(&mut imp).await, None);
    assert_eq!(moods(&rows(&r, 3).await), ["empty", "errory", "impatient"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_from_one_address_does_not_starve_others() {
    let r = relay(&["--max-connections-per-ip", "100", "--max-connections", "1000"]).await;
    let mut flood = Vec::new();
    for i in 0..400 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(r.tcp).await.unwrap();
        if i % 2 == 0 {
            let _ = s.write_all(b"please relay 0123").await; // a partial request, never finished
        }
        flood.push(s);
    }
    // Legitimate clients from another address pair at once.
    let (mut a, mut b) = pair(&r, &token(30)).await;
    a.write_all(b"still here").await.unwrap();
    assert_eq!(read_exact_n(&mut b, 10).await, b"still here");
    // Only the first 100 of the flood are held; the rest were closed at once.
    let mut closed = 0;
    for s in flood.iter_mut().skip(100) {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_many_connections_leaves_the_relay_serving() {
    let r = relay(&[]).await;
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let mut junk = vec![0u8; 2000];
        for b in junk.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let addr = r.tcp;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(&junk).await;
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (mut a, mut b) = pair(&r, &token(31)).await;
    b.write_all(b"fine").await.unwrap();
    assert_eq!(read_exact_n(&mut a, 4).await, b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pings_while_waiting_are_not_impatience() {
    let r = relay(&[]).await;
    let tok = token(32);
    let mut w = ws_connect(&r).await;
    w.send(Message::Binary(sided(&tok, SIDE_A).into())).await.unwrap();
    w.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    // The pong comes back (answered by the WebSocket layer), and the connection keeps waiting.
    let pong = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(pong, Message::Pong(_)), "{pong:?}");
    let mut t = connect(&r, &sided(&tok, SIDE_B)).await;
    assert_eq!(read_exact_n(&mut t, 3).await, b"ok\n");
    assert_eq!(ws_next(&mut w).await.unwrap(), b"ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_from_tcp_to_websocket_and_back() {
    let r = relay(&[]).await;
    let tok = token(33);
    let mut w = ws_connect(&r).await;
    w.send(Message::Binary(sided(&tok, SIDE_A).into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = connect(&r, &sided(&tok, SIDE_B)).await;
    let (mut tr, mut tw) = t.into_split();
    let mut ok = [0u8; 3];
    tr.read_exact(&mut ok).await.unwrap();
    assert_eq!(ws_next(&mut w).await.unwrap(), b"ok\n");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = data.clone();
    let writer = tokio::spawn(async move {
        tw.write_all(&d).await.unwrap();
        tw
    });
    let mut got = Vec::new();
    while got.len() < data.len() {
        got.extend(ws_next(&mut w).await.expect("websocket side closed early"));
    }
    assert!(got == data, "tcp -> websocket stream intact");
    let _tw = writer.await.unwrap();
    // and back: large websocket messages arrive intact on the tcp side
    for chunk in data.chunks(700_000) {
        w.send(Message::Binary(chunk.to_vec().into())).await.unwrap();
    }
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), tr.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "websocket -> tcp stream intact");
}
