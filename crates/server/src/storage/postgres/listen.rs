//! The node's notice connection: `LISTEN` on the channel every adding transaction `NOTIFY`s,
//! turned into [`Inbound`] notices for the engine.
//!
//! One connection of its own per node, outside the pool (a pooled connection would drop its
//! `LISTEN` when recycled). A notice's payload is the (stored form of the) mailbox id, or
//! [`RESYNC_PAYLOAD`] when the id is too long for a payload. Whenever the connection is (re)established the
//! engine is told [`Inbound::Resync`], so it re-reads every mailbox it has subscribers on:
//! whatever was committed while the connection was down is delivered then, and the
//! subscribers' counts keep anything from being delivered twice. While the connection is
//! down the node reports itself unready ([`StorageHealth`]) and refuses new clients.
//!
//! Owns: that connection and its reconnect loop. Must not: read or write tables.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::text::decode;
use crate::storage::{Inbound, InboundSink, StorageHealth};

/// The notification channel.
pub(super) const CHANNEL: &str = "wormhole_mailbox";
/// Payload meaning "re-read everything" (a mailbox id too long for a payload).
pub(super) const RESYNC_PAYLOAD: &str = "*";
/// Longest mailbox id sent as a payload (PostgreSQL allows just under 8000 bytes).
pub(super) const MAX_PAYLOAD: usize = 4000;

/// Listen until the runtime stops, reconnecting after every failure.
pub(super) async fn run(config: Config, sink: InboundSink, health: Arc<StorageHealth>) {
    let mut failures = 0u32;
    loop {
        match listen_once(&config, &sink, &health).await {
            Ok(()) => {
                tracing::error!("PostgreSQL notice connection closed, reconnecting");
                failures = 0;
            }
            Err(e) => {
                // One line per outage, not one per retry.
                if failures == 0 {
                    tracing::error!("PostgreSQL notice connection lost, reconnecting: {e}");
                }
                failures = failures.saturating_add(1);
            }
        }
        health.set_listening(false);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Connect, `LISTEN`, announce a resync, then forward notices until the connection ends.
async fn listen_once(
    config: &Config,
    sink: &InboundSink,
    health: &StorageHealth,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let listened = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(e) = listened {
        driver.abort();
        return Err(e);
    }
    tracing::info!("PostgreSQL notice connection up");
    health.set_listening(true);
    sink(Inbound::Resync);
    let mut result = Ok(());
    while let Some(m) = rx.recv().await {
        match m {
            Ok(p) if p == RESYNC_PAYLOAD => sink(Inbound::Resync),
            Ok(p) => sink(Inbound::Mailbox(decode(p))),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    driver.abort();
    drop(client);
    result
}
