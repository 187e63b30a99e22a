//! An established transit connection (after the handshake and `go`): encrypted records one at a
//! time, for small messages such as the final ack. Bulk data goes through `bulk.rs`.
//!
//! The record sealer and opener are held by value and lent out by moving them (never copied), so
//! a nonce can be used only once. Any error poisons the connection: a sealer or opener that was
//! lent out and not handed back, or a stream left mid-record, makes every later operation fail
//! with [`TransitError::Poisoned`].

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wormhole_proto::transit::{RECORD_HEADER, RecordOpener, RecordSealer, Role, TransitKeys};

use super::TransitError;
use super::stream::TransitStream;

/// How the winning connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// We dialled one of the peer's direct hints.
    DirectOutbound,
    /// The peer dialled our listener.
    DirectInbound,
    /// Through a transit relay.
    Relay,
}

/// An established, encrypted transit connection.
pub struct TransitConnection {
    pub(crate) stream: TransitStream,
    /// Bytes already read from the socket but not yet consumed as records.
    pub(crate) pending: Vec<u8>,
    /// `None` while lent to a bulk stage, or for good after an error.
    sealer: Option<RecordSealer>,
    /// `None` while lent to a bulk stage, or for good after an error.
    opener: Option<RecordOpener>,
    /// Set by the first error; every later operation fails.
    poisoned: bool,
    pub(crate) max_record: usize,
    pub(crate) idle_timeout: Duration,
    kind: ConnectionKind,
    peer: String,
}

impl std::fmt::Debug for TransitConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitConnection")
            .field("kind", &self.kind)
            .field("peer", &self.peer)
            .finish()
    }
}

impl TransitConnection {
    pub(crate) fn new(
        stream: TransitStream,
        pending: Vec<u8>,
        role: Role,
        keys: &TransitKeys,
        max_record: usize,
        kind: ConnectionKind,
        peer: String,
    ) -> Self {
        let (enc, dec) = keys.record_keys(role);
        TransitConnection {
            stream,
            pending,
            sealer: Some(RecordSealer::new(enc)),
            opener: Some(RecordOpener::new(dec, max_record)),
            poisoned: false,
            max_record,
            idle_timeout: Duration::from_secs(120),
            kind,
            peer,
        }
    }

    /// How this connection was made.
    pub fn kind(&self) -> ConnectionKind {
        self.kind
    }

    /// The remote address (the relay's, for relayed connections).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Fail a transfer when the peer makes no progress for this long (default 120 s).
    pub fn set_idle_timeout(&mut self, t: Duration) {
        self.idle_timeout = t;
    }

    /// Whether an earlier error made this connection unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Pass `r` through; an error poisons the connection.
    pub(crate) fn settle<T>(&mut self, r: Result<T, TransitError>) -> Result<T, TransitError> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Lend the sealer out (to a bulk stage); [`Self::give_back_sealer`] returns it. Refused once
    /// poisoned.
    pub(crate) fn take_sealer(&mut self) -> Result<RecordSealer, TransitError> {
        match (self.poisoned, self.sealer.take()) {
            (false, Some(s)) => Ok(s),
            _ => Err(self.poison()),
        }
    }

    /// Lend the opener out (to a bulk stage). Refused once poisoned.
    pub(crate) fn take_opener(&mut self) -> Result<RecordOpener, TransitError> {
        match (self.poisoned, self.opener.take()) {
            (false, Some(o)) => Ok(o),
            _ => Err(self.poison()),
        }
    }

    pub(crate) fn give_back_sealer(&mut self, s: RecordSealer) {
        self.sealer = Some(s);
    }

    pub(crate) fn give_back_opener(&mut self, o: RecordOpener) {
        self.opener = Some(o);
    }

    fn poison(&mut self) -> TransitError {
        self.poisoned = true;
        TransitError::Poisoned
    }

    /// Encrypt and send one record.
    pub async fn send_record(&mut self, plaintext: &[u8]) -> Result<(), TransitError> {
        let r = self.send_record_inner(plaintext).await;
        self.settle(r)
    }

    async fn send_record_inner(&mut self, plaintext: &[u8]) -> Result<(), TransitError> {
        if self.poisoned {
            return Err(TransitError::Poisoned);
        }
        let sealer = self.sealer.as_mut().ok_or(TransitError::Poisoned)?;
        let rec = sealer.seal(plaintext)?;
        let t = self.idle_timeout;
        tokio::time::timeout(t, self.stream.write_all(&rec))
            .await
            .map_err(|_| TransitError::Stalled(t.as_secs()))??;
        Ok(())
    }

    async fn fill(&mut self, want: usize) -> Result<(), TransitError> {
        let t = self.idle_timeout;
        while self.pending.len() < want {
            let mut buf = vec![0u8; (want - self.pending.len()).min(1 << 20)];
            let n = tokio::time::timeout(t, self.stream.read(&mut buf))
                .await
                .map_err(|_| TransitError::Stalled(t.as_secs()))??;
            if n == 0 {
                return Err(TransitError::Closed("while waiting for a record".into()));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
        Ok(())
    }

    /// Receive and decrypt one record. Its length prefix is checked against the cap before any
    /// buffer is sized for it.
    pub async fn receive_record(&mut self) -> Result<Vec<u8>, TransitError> {
        let r = self.receive_record_inner().await;
        self.settle(r)
    }

    async fn receive_record_inner(&mut self) -> Result<Vec<u8>, TransitError> {
        if self.poisoned || self.opener.is_none() {
            return Err(TransitError::Poisoned);
        }
        self.fill(RECORD_HEADER).await?;
        let h = [self.pending[0], self.pending[1], self.pending[2], self.pending[3]];
        let opener = self.opener.as_mut().ok_or(TransitError::Poisoned)?;
        let body = opener.body_len(h)?;
        self.fill(RECORD_HEADER + body).await?;
        let mut rec: Vec<u8> = self.pending.drain(..RECORD_HEADER + body).collect();
        let opener = self.opener.as_mut().ok_or(TransitError::Poisoned)?;
        let pt = opener.open_record(&mut rec)?;
        Ok(pt.to_vec())
    }

    /// The record size cap in force.
    pub fn max_record(&self) -> usize {
        self.max_record
    }

    /// Close the connection.
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
