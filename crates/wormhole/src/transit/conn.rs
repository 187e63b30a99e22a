//! An established transit connection (after the handshake and `go`): encrypted records one at a
//! time, for small messages such as the final ack. Bulk data goes through `bulk.rs`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wormhole_proto::transit::{RECORD_HEADER, RecordOpener, RecordSealer, Role, TransitKeys};

use super::TransitError;

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
    pub(crate) stream: TcpStream,
    /// Bytes already read from the socket but not yet consumed as records.
    pub(crate) pending: Vec<u8>,
    pub(crate) sealer: RecordSealer,
    pub(crate) opener: RecordOpener,
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
        stream: TcpStream,
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
            sealer: RecordSealer::new(enc),
            opener: RecordOpener::new(dec, max_record),
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

    /// Encrypt and send one record.
    pub async fn send_record(&mut self, plaintext: &[u8]) -> Result<(), TransitError> {
        let rec = self.sealer.seal(plaintext)?;
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
        self.fill(RECORD_HEADER).await?;
        let h = [self.pending[0], self.pending[1], self.pending[2], self.pending[3]];
        let body = self.opener.body_len(h)?;
        self.fill(RECORD_HEADER + body).await?;
        let mut rec: Vec<u8> = self.pending.drain(..RECORD_HEADER + body).collect();
        let pt = self.opener.open_record(&mut rec)?;
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
