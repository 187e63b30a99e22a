//! A whole transfer-v2 session over one dilated wormhole.
//!
//! Each side opens a control subchannel to the other ([`SUBPROTOCOL_CONTROL`]) and closes it
//! once it has nothing more to offer: at once in `receive` mode, after its last offer
//! completed otherwise. Offers go one after another, one subchannel each
//! ([`SUBPROTOCOL_OFFER`]); the peer's offers are received meanwhile (in `connect` mode both
//! run at once). The session ends when our offers are done and the peer's control subchannel
//! is closed with none of its offers pending; then Dilation is closed.
//!
//! Owns: that order. Must not: touch the files of an offer (`incoming`, `outgoing` do).

use tokio::io::AsyncWriteExt;
use wormhole_proto::dilated_transfer::{Mode, PeerTransfer, SUBPROTOCOL_CONTROL, SUBPROTOCOL_OFFER};

use super::incoming::{self, Outcome as InOutcome};
use super::outgoing::{self, Outcome as OutOutcome};
use super::{Incoming, OfferItem, SessionEvent, SessionOptions, SessionReport, emit};
use crate::Wormhole;
use crate::dilation::{Dilated, DilationError};
use crate::transfer::TransferError;

/// How long the end of a session waits for the peer to end its own.
const END_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a session with a peer that speaks transfer-v2 (`peer`, from [`super::peer_transfer`]):
/// offers `offers` (if our mode and the peer's allow it) and answers the peer's offers with
/// `decide` (true: accept). The wormhole must have been opened with
/// [`super::wormhole_options`].
pub async fn run_session<D>(
    w: &Wormhole,
    peer: PeerTransfer,
    opts: SessionOptions,
    mut offers: Vec<OfferItem>,
    mut decide: D,
) -> Result<SessionReport, TransferError>
where
    D: AsyncFnMut(&Incoming) -> bool,
{
    let we_offer = opts.mode.may_offer_to(peer.mode);
    let they_offer = peer.mode.may_offer_to(opts.mode);
    if !we_offer && !they_offer {
        let both = if opts.mode == Mode::Receive {
            "receive"
        } else {
            "send"
        };
        return Err(TransferError::Unsupported(format!(
            "both sides want to {both} only: nothing would be transferred"
        )));
    }
    if !offers.is_empty() && !we_offer {
        return Err(TransferError::Unsupported(format!(
            "the peer is in {:?} mode and takes no offers",
            peer.mode.as_str()
        )));
    }
    let dilated = w.dilate(opts.dilation.clone()).await?;
    let result = session(&dilated, peer, &opts, &mut offers, &mut decide, they_offer).await;
    match result {
        Ok(report) => {
            dilated.close().await?;
            Ok(report)
        }
        Err(e) => {
            let _ = dilated.close().await;
            Err(e)
        }
    }
}

async fn session<D>(
    dilated: &Dilated,
    peer: PeerTransfer,
    opts: &SessionOptions,
    offers: &mut [OfferItem],
    decide: &mut D,
    they_offer: bool,
) -> Result<SessionReport, TransferError>
where
    D: AsyncFnMut(&Incoming) -> bool,
{
    let features = peer.features;
    let mut control_in = dilated.listen(SUBPROTOCOL_CONTROL).await?;
    let mut offer_in = if they_offer {
        Some(dilated.listen(SUBPROTOCOL_OFFER).await?)
    } else {
        None
    };
    let mut control_out = dilated.open(SUBPROTOCOL_CONTROL).await?;
    dilated.when_dilated().await?;
    emit(&opts.events, SessionEvent::Connected);

    let sending = async {
        let mut report = SessionReport::default();
        for item in offers.iter_mut() {
            let mut sub = dilated.open(SUBPROTOCOL_OFFER).await?;
            match outgoing::offer(&mut sub, item, features, &opts.events).await? {
                OutOutcome::Sent(n) => report.bytes_sent += n,
                OutOutcome::Rejected(reason) => {
                    emit(
                        &opts.events,
                        SessionEvent::Rejected {
                            name: item.name().to_owned(),
                            reason: reason.clone(),
                        },
                    );
                    report.rejected.push((item.name().to_owned(), reason));
                }
            }
        }
        control_out
            .shutdown()
            .await
            .map_err(|e| TransferError::Pipe(e.to_string()))?;
        Ok::<_, TransferError>(report)
    };

    let receiving = async {
        let mut report = SessionReport::default();
        let ctx = incoming::Ctx {
            features,
            cwd: &opts.cwd,
            output: opts.output.as_deref(),
            events: &opts.events,
        };
        let Some(mut peer_control) = control_in.accept().await else {
            return Err(TransferError::Dilation(DilationError::Ended));
        };
        loop {
            tokio::select! {
                biased;
                sub = async {
                    match offer_in.as_mut() {
                        Some(l) => l.accept().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let Some(sub) = sub else {
                        return Err(TransferError::Dilation(DilationError::Ended));
                    };
                    match incoming::receive(sub, &ctx, decide).await? {
                        InOutcome::Written(path, n) => {
                            report.bytes_received += n;
                            report.written.push(path);
                        }
                        InOutcome::Declined => report.declined += 1,
                        InOutcome::Refused(name, reason) => {
                            emit(&opts.events, SessionEvent::IncomingFailed {
                                name: name.clone(),
                                reason: reason.clone(),
                            });
                            report.failed.push((name, reason));
                        }
                    }
                }
                rec = peer_control.recv_record() => {
                    // Control messages (the spec's free text) are read and ignored; the
                    // CLOSE means the peer has nothing more to offer.
                    if rec?.is_none() {
                        break;
                    }
                }
            }
        }
        Ok::<_, TransferError>(report)
    };

    // The first failure on either side ends the session, and so does a peer gone for good.
    let (sent, received) = tokio::select! {
        r = async { tokio::try_join!(sending, receiving) } => r?,
        e = peer_gone(dilated, opts.peer_gone_after) => return Err(e),
    };
    // Our handle of the peer's control subchannel is gone (dropped with `receiving`: its CLOSE
    // is on the way). Wait for the peer to do the same with ours, that is, to end its session,
    // so that neither side closes Dilation while the other still has records to be
    // acknowledged (which would make it linger for nothing).
    let _ = tokio::time::timeout(END_WAIT, async {
        while let Ok(Some(_)) = control_out.recv_record().await {}
    })
    .await;
    Ok(SessionReport {
        bytes_sent: sent.bytes_sent,
        bytes_received: received.bytes_received,
        rejected: sent.rejected,
        written: received.written,
        failed: received.failed,
        declined: received.declined,
    })
}

/// Resolves once Dilation has been without a connection for `limit` (or ended).
async fn peer_gone(dilated: &Dilated, limit: Option<std::time::Duration>) -> TransferError {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    let mut st = dilated.watch_status();
    loop {
        let down = st
            .wait_for(|s| !s.connected || s.ended.is_some())
            .await
            .map(|s| s.ended.clone());
        match down {
            Err(_) | Ok(Some(_)) => return TransferError::Dilation(DilationError::Ended),
            Ok(None) => {}
        }
        let back = tokio::time::timeout(limit, st.wait_for(|s| s.connected || s.ended.is_some()))
            .await
            .map(|r| r.is_ok());
        if back.is_err() {
            return TransferError::PeerGone(limit);
        }
    }
}
