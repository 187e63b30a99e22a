//! The sending side of file-transfer v1 (docs/protocol.md §5.2): text offers, and file or directory
//! offers whose data goes over transit, ending with the receiver's sha256 ack.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use wormhole_proto::transfer::{Answer, AppMsg, DirectoryOffer, FinalAck, Offer, ZIP_MODE};
use wormhole_proto::transit::{Role, TransitMsg, TransitPurpose, transit_key_purpose};

use super::events::{ConnectionInfo, EventHandler, TransferEvent, emit};
use super::zip_out::{ZipPlan, ZipStream};
use super::{MessagePipe, TransferError};
use crate::transit::{ConnectionKind, Progress, Transit, TransitConfig};

/// Settings for sending.
#[derive(Clone, Default)]
pub struct SendOptions {
    /// Transit settings (relays, `--no-listen`…).
    pub transit: TransitConfig,
    /// Transit key purpose rule.
    pub purpose: TransitPurpose,
    /// Progress callback (bytes sent, total).
    pub progress: Option<Progress>,
    /// Told when transit is connected (before the data) and when the data is sent (before the
    /// receiver's confirmation).
    pub events: Option<EventHandler>,
}

/// A file or directory ready to offer.
#[derive(Debug, Clone)]
pub enum SendItem {
    /// One regular file.
    File {
        /// Source path.
        path: PathBuf,
        /// Name offered (base name).
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// A directory, sent as a streamed STORED zip.
    Directory {
        /// Name offered (base name).
        name: String,
        /// The scanned tree.
        plan: ZipPlan,
        /// Exact bytes of zip on the wire.
        zipsize: u64,
    },
}

pub(crate) fn offered_name(path: &Path) -> Result<String, TransferError> {
    let abs = std::path::absolute(path).map_err(TransferError::file(path))?;
    // Resolve `.`/`..` lexically so `wormhole send .` offers the directory's real name.
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                norm.pop();
            }
            std::path::Component::CurDir => {}
            other => norm.push(other),
        }
    }
    norm.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| TransferError::Unsendable {
            path: path.to_owned(),
            reason: "no usable name".into(),
        })
}

impl SendItem {
    /// Inspect `path` (following symlinks): a regular file, or a directory scanned for a zip.
    pub fn prepare(path: &Path, ignore_unsendable: bool) -> Result<SendItem, TransferError> {
        let meta = std::fs::metadata(path).map_err(TransferError::file(path))?;
        let name = offered_name(path)?;
        if meta.is_dir() {
            let plan = ZipPlan::scan(path, ignore_unsendable)?;
            let zipsize = plan.zipsize();
            Ok(SendItem::Directory { name, plan, zipsize })
        } else if meta.is_file() {
            File::open(path).map_err(TransferError::file(path))?;
            Ok(SendItem::File {
                path: path.to_owned(),
                name,
                size: meta.len(),
            })
        } else {
            Err(TransferError::Unsendable {
                path: path.to_owned(),
                reason: "not a regular file or directory".into(),
            })
        }
    }

    /// The offer to send.
    pub fn offer(&self) -> Offer {
        match self {
            SendItem::File { name, size, .. } => Offer::File {
                filename: name.clone(),
                filesize: *size,
            },
            SendItem::Directory { name, plan, zipsize } => Offer::Directory(DirectoryOffer {
                mode: ZIP_MODE.into(),
                dirname: name.clone(),
                zipsize: *zipsize,
                numbytes: plan.numbytes(),
                numfiles: plan.numfiles(),
            }),
        }
    }

    /// Bytes that go over transit.
    pub fn wire_size(&self) -> u64 {
        match self {
            SendItem::File { size, .. } => *size,
            SendItem::Directory { zipsize, .. } => *zipsize,
        }
    }

    fn reader(&self) -> Result<Box<dyn Read + Send>, TransferError> {
        match self {
            SendItem::File { path, size, .. } => {
                let f = File::open(path).map_err(TransferError::file(path))?;
                let now = f.metadata().map_err(TransferError::file(path))?.len();
                if now != *size {
                    return Err(TransferError::Unsendable {
                        path: path.clone(),
                        reason: format!("size changed from {size} to {now} bytes since the offer"),
                    });
                }
                Ok(Box::new(f))
            }
            SendItem::Directory { plan, .. } => Ok(Box::new(ZipStream::new(plan.clone()))),
        }
    }
}

/// What a finished send did.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Bytes sent over transit.
    pub bytes: u64,
    /// Their SHA-256 (confirmed by the receiver when it sent one).
    pub sha256: [u8; 32],
    /// How transit connected.
    pub connection: ConnectionKind,
    /// Remote address of the transit connection.
    pub peer: String,
}

/// Offer `text` and wait for the receiver's `message_ack`.
pub async fn send_text<P: MessagePipe>(pipe: &P, text: &str) -> Result<(), TransferError> {
    pipe.send(AppMsg::Offer(Offer::Message(text.to_owned())).to_bytes())
        .await?;
    loop {
        match AppMsg::parse(&pipe.recv().await?)? {
            AppMsg::Error(e) => return Err(TransferError::Peer(e)),
            AppMsg::Answer(Answer::MessageAck(ok)) if ok == "ok" => return Ok(()),
            AppMsg::Answer(a) => return Err(TransferError::TextNotAcknowledged(format!("{a:?}"))),
            AppMsg::Offer(_) => {
                return Err(TransferError::Protocol("peer sent an offer to the sender".into()));
            }
            AppMsg::Transit(_) | AppMsg::Unknown => {}
        }
    }
}

/// Offer a file or directory, wait for acceptance, stream it over transit and check the ack.
pub async fn send_item<P: MessagePipe>(
    pipe: &P,
    item: &SendItem,
    opts: SendOptions,
) -> Result<SendReport, TransferError> {
    let transit = Transit::new(Role::Sender, opts.transit.clone())?;
    pipe.send(AppMsg::Transit(transit.message()).to_bytes()).await?;
    let key = pipe.derive_key(&transit_key_purpose(pipe.appid(), &opts.purpose), 32)?;
    pipe.send(AppMsg::Offer(item.offer()).to_bytes()).await?;
    let mut peer = TransitMsg::default();
    loop {
        match AppMsg::parse(&pipe.recv().await?)? {
            AppMsg::Error(e) => return Err(TransferError::Peer(e)),
            AppMsg::Transit(t) => peer = t,
            AppMsg::Answer(Answer::FileAck(ok)) if ok == "ok" => break,
            AppMsg::Answer(a) => return Err(TransferError::Protocol(format!("unexpected answer {a:?}"))),
            AppMsg::Offer(_) => {
                return Err(TransferError::Protocol("peer sent an offer to the sender".into()));
            }
            AppMsg::Unknown => {}
        }
    }
    let reader = item.reader()?;
    let mut conn = transit.connect(&key, &peer).await?;
    emit(
        opts.events.as_ref(),
        TransferEvent::Connected(ConnectionInfo::of(&conn)),
    );
    let size = item.wire_size();
    let sha256 = conn.send_from(reader, size, opts.progress.clone()).await?;
    emit(opts.events.as_ref(), TransferEvent::DataSent);
    let ack = conn.receive_record().await?;
    let ack = FinalAck::parse(&ack)?;
    if ack.ack != "ok" {
        return Err(TransferError::BadAck(super::escape_control(&ack.ack)));
    }
    if let Some(got) = ack.sha256 {
        let sent = hex::encode(sha256);
        if got != sent {
            return Err(TransferError::HashMismatch { got, sent });
        }
    }
    let report = SendReport {
        bytes: size,
        sha256,
        connection: conn.kind(),
        peer: conn.peer().to_owned(),
    };
    conn.close().await;
    Ok(report)
}
