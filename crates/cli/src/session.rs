//! The part of a wormhole the CLI flows use, as a trait: code, key, verifier, messages, close.
//!
//! The flows in `send`/`receive` are written against [`Session`], so the real `wormhole::Wormhole`
//! (see `real.rs`) and the in-memory pair used by this crate's unit tests are interchangeable. The
//! trait carries no protocol logic of its own.

use std::future::Future;
use std::time::Duration;

use wormhole_proto::machine::{Mood, Welcome};

/// One end of a wormhole, as the CLI sees it. Errors are `anyhow` chains whose root is a
/// `wormhole_proto::machine::WormholeError` where the library reports one.
pub trait Session {
    /// The server's welcome.
    fn welcome(&mut self) -> impl Future<Output = anyhow::Result<Welcome>>;
    /// Ask the server for a nameplate and make a code of `words` words.
    fn allocate_code(&mut self, words: usize) -> impl Future<Output = anyhow::Result<()>>;
    /// Use this code.
    fn set_code(&mut self, code: &str) -> impl Future<Output = anyhow::Result<()>>;
    /// The code, once known.
    fn code(&mut self) -> impl Future<Output = anyhow::Result<String>>;
    /// Wait until the shared key is computed (the peer's `pake` arrived).
    fn unverified_key(&mut self) -> impl Future<Output = anyhow::Result<()>>;
    /// Wait until the peer's key is confirmed; the verifier.
    fn verifier(&mut self) -> impl Future<Output = anyhow::Result<[u8; 32]>>;
    /// Queue one application message for the peer.
    fn send(&mut self, message: Vec<u8>) -> impl Future<Output = anyhow::Result<()>>;
    /// The next application message from the peer.
    fn receive(&mut self) -> impl Future<Output = anyhow::Result<Vec<u8>>>;
    /// Close, and say how it ended.
    fn close(&mut self) -> impl Future<Output = anyhow::Result<Mood>>;
}

/// Await `fut`; if it takes longer than `after`, print `notice` on stderr once and keep waiting
/// (Python's "Waiting for sender..." and "Key established, waiting for confirmation...").
pub async fn with_notice<F: Future>(fut: F, after: Duration, notice: &str) -> F::Output {
    tokio::pin!(fut);
    tokio::select! {
        r = &mut fut => return r,
        () = tokio::time::sleep(after) => eprintln!("{notice}"),
    }
    fut.await
}

/// Print the welcome's message of the day and version warning like Python's `handle_welcome`.
pub fn show_welcome(welcome: &Welcome, relay_url: &str, own_version: &str) {
    if let Some(motd) = &welcome.motd {
        let lines: Vec<&str> = motd.lines().collect();
        eprintln!("Server (at {relay_url}) says:\n {}", lines.join("\n "));
    }
    if welcome.version_mismatch(own_version)
        && let Some(current) = &welcome.current_cli_version
    {
        eprintln!("Warning: errors may occur unless both sides are running the same version");
        eprintln!("Server claims {current} is current, but ours is {own_version}");
    }
}

#[cfg(test)]
pub mod fake {
    //! An in-memory pair of sessions for unit tests of the flows.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::sync::mpsc;

    /// One end of a fake wormhole.
    pub struct FakeSession {
        pub tx: mpsc::UnboundedSender<Vec<u8>>,
        pub rx: mpsc::UnboundedReceiver<Vec<u8>>,
        pub code: Option<String>,
        /// Make the key confirmation fail (a wrong code).
        pub wrong_code: bool,
        pub sent: Vec<Vec<u8>>,
        pub closed: bool,
    }

    /// Two connected ends.
    pub fn pair() -> (FakeSession, FakeSession) {
        let (atx, arx) = mpsc::unbounded_channel();
        let (btx, brx) = mpsc::unbounded_channel();
        let mk = |tx, rx| FakeSession {
            tx,
            rx,
            code: None,
            wrong_code: false,
            sent: Vec::new(),
            closed: false,
        };
        (mk(atx, brx), mk(btx, arx))
    }

    impl Session for FakeSession {
        async fn welcome(&mut self) -> anyhow::Result<Welcome> {
            Ok(Welcome::from_value(serde_json::json!({})))
        }
        async fn allocate_code(&mut self, words: usize) -> anyhow::Result<()> {
            self.code = Some(format!("7-{}", vec!["word"; words].join("-")));
            Ok(())
        }
        async fn set_code(&mut self, code: &str) -> anyhow::Result<()> {
            self.code = Some(code.to_owned());
            Ok(())
        }
        async fn code(&mut self) -> anyhow::Result<String> {
            Ok(self.code.clone().unwrap())
        }
        async fn unverified_key(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn verifier(&mut self) -> anyhow::Result<[u8; 32]> {
            if self.wrong_code {
                return Err(wormhole_proto::machine::WormholeError::WrongPassword.into());
            }
            Ok([0xab; 32])
        }
        async fn send(&mut self, message: Vec<u8>) -> anyhow::Result<()> {
            self.sent.push(message.clone());
            let _ = self.tx.send(message);
            Ok(())
        }
        async fn receive(&mut self) -> anyhow::Result<Vec<u8>> {
            self.rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("peer went away"))
        }
        async fn close(&mut self) -> anyhow::Result<Mood> {
            self.closed = true;
            Ok(Mood::Happy)
        }
    }
}
