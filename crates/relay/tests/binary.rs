//! The `wormhole-relay` binary end to end: flags, the startup lines that announce the bound ports,
//! pairing over both listeners, and the usage database it writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn addr_after(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

#[test]
fn binary_announces_ports_relays_and_records_usage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.sqlite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormhole-relay"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--websocket",
            "127.0.0.1:0",
            "--usage-db",
        ])
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _guard = Guard(child);
    let mut lines = BufReader::new(stderr).lines();
    let tcp = addr_after(&lines.next().unwrap().unwrap(), "transit relay listening on").unwrap();
    let ws = addr_after(
        &lines.next().unwrap().unwrap(),
        "transit relay websocket listening on",
    )
    .unwrap();
    assert_ne!(tcp.port(), 0);
    assert_ne!(ws.port(), 0);

    let token = "f".repeat(64);
    let mut a = TcpStream::connect(tcp).unwrap();
    a.write_all(format!("please relay {token} for side 1111111111111111\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut b = TcpStream::connect(tcp).unwrap();
    b.write_all(format!("please relay {token} for side 2222222222222222\n").as_bytes())
        .unwrap();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ok = [0u8; 3];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"ok\n");
    }
    a.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    drop(a);
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT result, total_bytes FROM usage")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.contains(&("happy".to_owned(), 4)) {
            break;
        }
        assert!(Instant::now() < deadline, "no happy row: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_reports_a_taken_port_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_wormhole-relay"))
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on") && err.contains(&addr), "{err}");
}
