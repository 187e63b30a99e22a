//! The one seam between the transfer flows and a wormhole: send and receive whole application
//! messages and derive keys. [`crate::Wormhole`] implements it; [`MemoryPipe`] is the in-memory one tests use.

use std::future::Future;

use wormhole_proto::machine::WormholeError;

use crate::Wormhole;

/// Why the message pipe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The wormhole failed; the typed error says how (a wrong code, the peer or the server gone,
    /// the mailbox connection lost, the key not known yet). See [`WormholeError`] for what to do.
    #[error(transparent)]
    Wormhole(#[from] WormholeError),
    /// Another implementation of [`MessagePipe`] failed; the text says why.
    #[error("{0}")]
    Other(String),
}

/// What the transfer flows need from a wormhole.
pub trait MessagePipe: Send + Sync {
    /// Queue one application message for the peer.
    fn send(&self, msg: Vec<u8>) -> impl Future<Output = Result<(), PipeError>> + Send;
    /// The next application message from the peer.
    fn recv(&self) -> impl Future<Output = Result<Vec<u8>, PipeError>> + Send;
    /// HKDF of the shared key for `purpose`, `len` bytes (available once the key is known).
    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError>;
    /// The AppID of this wormhole.
    fn appid(&self) -> &str;
}

impl MessagePipe for Wormhole {
    async fn send(&self, msg: Vec<u8>) -> Result<(), PipeError> {
        Ok(self.send_message(msg).await?)
    }

    async fn recv(&self) -> Result<Vec<u8>, PipeError> {
        Ok(self.get_message().await?)
    }

    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError> {
        Ok(Wormhole::derive_key(self, purpose, len)?)
    }

    fn appid(&self) -> &str {
        Wormhole::appid(self)
    }
}

/// One end of an in-memory message pipe: what one end sends, the other receives, in order. For
/// tests of the transfer flows (here and in the crates that use them); not a wormhole.
#[doc(hidden)]
pub struct MemoryPipe {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    rx: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>,
    appid: String,
    derive: fn(&str, usize) -> Vec<u8>,
}

/// Two connected [`MemoryPipe`] ends that report `appid` and derive keys with `derive`
/// (`derive(purpose, len)`). A closed peer shows as [`PipeError::Other`].
#[doc(hidden)]
pub fn memory_pair(appid: &str, derive: fn(&str, usize) -> Vec<u8>) -> (MemoryPipe, MemoryPipe) {
    let (atx, arx) = tokio::sync::mpsc::unbounded_channel();
    let (btx, brx) = tokio::sync::mpsc::unbounded_channel();
    let end = |tx, rx| MemoryPipe {
        tx,
        rx: tokio::sync::Mutex::new(rx),
        appid: appid.to_owned(),
        derive,
    };
    (end(atx, brx), end(btx, arx))
}

impl MemoryPipe {
    /// Queue `msg` for the other end without awaiting (what [`MessagePipe::send`] does).
    pub fn push(&self, msg: Vec<u8>) -> Result<(), PipeError> {
        self.tx.send(msg).map_err(|_| PipeError::Other("closed".into()))
    }
}

impl MessagePipe for MemoryPipe {
    async fn send(&self, msg: Vec<u8>) -> Result<(), PipeError> {
        self.push(msg)
    }

    async fn recv(&self) -> Result<Vec<u8>, PipeError> {
        self.rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| PipeError::Other("closed".into()))
    }

    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError> {
        Ok((self.derive)(purpose, len))
    }

    fn appid(&self) -> &str {
        &self.appid
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::time::timeout;
    use wormhole_server::{MailboxArgs, MailboxServer, bind};

    use super::*;
    use crate::WormholeOptions;
    use crate::transfer::{Decision, ReceiveOptions, TransferError, receive, send_text};

    const T: Duration = Duration::from_secs(20);

    async fn server() -> String {
        let mut args = MailboxArgs::defaults();
        args.listen = "127.0.0.1:0".into();
        args.channel_db = ":memory:".into();
        let srv = MailboxServer::start(&args).unwrap();
        let listener = bind(&args.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(srv.serve(listener));
        format!("ws://{addr}/v1")
    }

    fn open(url: &str) -> Wormhole {
        Wormhole::create("example.com/pipe-errors", url, WormholeOptions::default())
    }

    #[tokio::test]
    async fn a_wrong_code_reaches_the_transfer_caller_typed() {
        let url = server().await;
        let (a, b) = (open(&url), open(&url));
        a.set_code("5-purple-sausages").await.unwrap();
        b.set_code("5-purple-pancakes").await.unwrap();
        let (sent, got) = tokio::join!(
            timeout(T, send_text(&a, "hi")),
            timeout(T, receive(&b, ReceiveOptions::default(), |_| Decision::Reject)),
        );
        let sent = sent.unwrap().unwrap_err();
        let got = got.unwrap().unwrap_err();
        for e in [&sent, &got] {
            assert!(
                matches!(e, TransferError::Wormhole(WormholeError::WrongPassword)),
                "{e:?}"
            );
            assert_eq!(e.wormhole_error(), Some(&WormholeError::WrongPassword));
        }
    }

    #[tokio::test]
    async fn a_closed_wormhole_and_a_missing_key_stay_typed() {
        let url = server().await;
        let a = open(&url);
        assert_eq!(
            MessagePipe::derive_key(&a, "p", 32),
            Err(PipeError::Wormhole(WormholeError::NoKey))
        );
        a.allocate_code(2).await.unwrap();
        let _ = timeout(T, a.close()).await.unwrap();
        let e = timeout(T, send_text(&a, "late")).await.unwrap().unwrap_err();
        assert!(
            matches!(e, TransferError::Wormhole(WormholeError::Closed)),
            "{e:?}"
        );
    }
}
