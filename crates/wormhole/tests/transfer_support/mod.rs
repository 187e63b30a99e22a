//! Shared by the transfer and hostile-peer tests: an in-memory [`MessagePipe`] pair with a shared
//! key, and a scripted transit Sender that speaks the wire protocol by hand (handshake, `go`,
//! arbitrary record bytes) so tests can lie in ways our own library never would.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wormhole::transfer::{MemoryPipe, MessagePipe, memory_pair};
use wormhole_proto::transfer::AppMsg;
use wormhole_proto::transit::{
    RecordOpener, RecordSealer, Role, TransitKeys, TransitMsg, TransitPurpose, transit_key_purpose,
};

pub const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

pub fn require_netns() {
    assert!(
        std::env::var_os("WORMHOLE_TEST_NETNS").is_some(),
        "transfer tests open transit listeners and dial local addresses: run them inside scripts/netns-run"
    );
}

/// One end of an in-memory wormhole (the library's test pipe; [`Scripted`] adds what these tests do
/// with it).
pub type MemPipe = MemoryPipe;

/// The shared key both ends of [`MemPipe::pair`] derive from.
const KEY: [u8; 32] = [0x5a; 32];

/// What the transfer tests do with a [`MemPipe`] beyond [`MessagePipe`].
#[allow(async_fn_in_trait)]
pub trait Scripted: Sized {
    /// Two connected ends with the file-transfer AppID and a shared key.
    fn pair() -> (Arc<Self>, Arc<Self>);
    /// Send one application message to the other end.
    async fn send_msg(&self, m: &AppMsg);
    /// The next application message from the other end.
    async fn recv_msg(&self) -> AppMsg;
    /// The transit keys both ends derive.
    fn transit_keys(&self) -> TransitKeys;
}

impl Scripted for MemPipe {
    fn pair() -> (Arc<MemPipe>, Arc<MemPipe>) {
        let (a, b) = memory_pair(APPID, |purpose, len| {
            wormhole_proto::key::derive_key(&KEY, purpose.as_bytes(), len)
        });
        (Arc::new(a), Arc::new(b))
    }

    async fn send_msg(&self, m: &AppMsg) {
        self.push(m.to_bytes()).unwrap();
    }

    async fn recv_msg(&self) -> AppMsg {
        let b = self.recv().await.expect("peer hung up");
        AppMsg::parse(&b).unwrap()
    }

    fn transit_keys(&self) -> TransitKeys {
        let tk = self
            .derive_key(&transit_key_purpose(APPID, &TransitPurpose::Auto), 32)
            .unwrap();
        TransitKeys::new(&tk)
    }
}

/// A hand-driven transit connection (either role), dialled to the first reachable direct hint.
pub struct RawTransit {
    pub stream: TcpStream,
    pub sealer: RecordSealer,
    pub opener: RecordOpener,
}

impl RawTransit {
    pub async fn dial(peer: &TransitMsg, keys: &TransitKeys, role: Role) -> RawTransit {
        let mut last = None;
        for h in peer.direct_hints() {
            match TcpStream::connect((h.hostname.as_str(), h.port)).await {
                Ok(mut s) => {
                    s.write_all(keys.our_handshake(role)).await.unwrap();
                    let mut buf = vec![0u8; keys.peer_handshake(role).len()];
                    s.read_exact(&mut buf).await.unwrap();
                    assert_eq!(buf, keys.peer_handshake(role));
                    if role == Role::Sender {
                        s.write_all(b"go\n").await.unwrap();
                    } else {
                        let mut go = [0u8; 3];
                        s.read_exact(&mut go).await.unwrap();
                        assert_eq!(&go, b"go\n");
                    }
                    let (enc, dec) = keys.record_keys(role);
                    return RawTransit {
                        stream: s,
                        sealer: RecordSealer::new(enc),
                        opener: RecordOpener::new(dec, 1 << 20),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("no direct hint reachable: {last:?}");
    }

    pub async fn send_record(&mut self, pt: &[u8]) {
        let r = self.sealer.seal(pt).unwrap();
        let _ = self.stream.write_all(&r).await;
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn recv_record(&mut self) -> Vec<u8> {
        let mut h = [0u8; 4];
        self.stream.read_exact(&mut h).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
        self.stream.read_exact(&mut body).await.unwrap();
        self.opener.open_in_place(&mut body).unwrap().to_vec()
    }
}

/// Every path under `dir`, relative, sorted.
pub fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
