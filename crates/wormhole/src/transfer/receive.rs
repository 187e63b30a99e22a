//! The receiving side of file-transfer v1 (docs/protocol.md §5.3) with the safe-receive rules:
//! base names only, no overwriting or following of existing entries unless the caller named the
//! path, a free-space check, data written to a temporary name and moved into place only when all
//! of it arrived authenticated, zips checked before extraction.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use wormhole_proto::transfer::{Answer, AppMsg, FinalAck, Offer, ZIP_MODE};
use wormhole_proto::transit::{Role, TransitMsg, TransitPurpose, transit_key_purpose};

use super::events::{ConnectionInfo, EventHandler, TransferEvent, emit};
use super::safety::{Destination, plan_destination, temp_sibling};
use super::{MessagePipe, TransferError, space, zip_in};
use crate::transit::{Progress, Transit, TransitConfig};

/// Settings for receiving.
#[derive(Clone)]
pub struct ReceiveOptions {
    /// Transit settings.
    pub transit: TransitConfig,
    /// Transit key purpose rule.
    pub purpose: TransitPurpose,
    /// Progress callback (bytes received, total).
    pub progress: Option<Progress>,
    /// Told when transit is connected (before the data flows) and, for a directory, when the
    /// received zip is being checked and extracted.
    pub events: Option<EventHandler>,
    /// `-o/--output-file`.
    pub output: Option<PathBuf>,
    /// Directory relative names are resolved against (the current directory).
    pub cwd: PathBuf,
    /// Accept file and directory offers at all (false: `--only-text`, refused with
    /// [`TransferError::FilesRefused`] before they are inspected).
    pub accept_files: bool,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            transit: TransitConfig::default(),
            purpose: TransitPurpose::default(),
            progress: None,
            events: None,
            output: None,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            accept_files: true,
        }
    }
}

/// What is offered, once checked, for the caller's accept decision.
#[derive(Debug, Clone)]
pub struct OfferInfo {
    /// True for a directory.
    pub is_directory: bool,
    /// The name as offered (untrusted: print it through [`super::escape_control`]).
    pub offered_name: String,
    /// Bytes that will come over transit (`filesize` or `zipsize`).
    pub transfer_size: u64,
    /// Uncompressed bytes (= `filesize` for a file).
    pub numbytes: u64,
    /// Files in a directory (1 for a file).
    pub numfiles: u64,
    /// Where it will go.
    pub destination: Destination,
}

/// What the sender offers, as the receiver's caller is asked about it.
#[derive(Debug, Clone, Copy)]
pub enum Offered<'a> {
    /// A text message (untrusted: print it through [`super::python_repr_text`]). Accepting it
    /// sends the `message_ack`; the caller shows the text before answering.
    Text(&'a str),
    /// A file or directory that passed the safe-receive checks.
    Files(&'a OfferInfo),
}

/// The caller's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Receive it.
    Accept,
    /// Send `transfer rejected`.
    Reject,
}

/// What was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message (print it through [`super::python_repr_text`] or [`super::escape_control`]).
    Text(String),
    /// A file, now at `path`.
    File {
        /// Final path.
        path: PathBuf,
        /// Bytes.
        bytes: u64,
        /// SHA-256 of the bytes.
        sha256: [u8; 32],
    },
    /// A directory, now at `path`.
    Directory {
        /// Final path.
        path: PathBuf,
        /// Regular files extracted.
        files: u64,
        /// Bytes extracted.
        bytes: u64,
    },
}

/// Check an offer against the safe-receive rules: destination, free space, supported mode.
pub fn inspect_offer(offer: &Offer, opts: &ReceiveOptions) -> Result<OfferInfo, TransferError> {
    let (is_directory, name, size, numbytes, numfiles) = match offer {
        Offer::File { filename, filesize } => (false, filename, *filesize, *filesize, 1),
        Offer::Directory(d) => {
            if d.mode != ZIP_MODE {
                return Err(TransferError::UnknownDirectoryMode(d.mode.clone()));
            }
            (true, &d.dirname, d.zipsize, d.numbytes, d.numfiles)
        }
        Offer::Message(_) => return Err(TransferError::Unsupported("text is not a file offer".into())),
        Offer::Unknown(k) => return Err(TransferError::UnknownOffer(k.clone())),
    };
    let destination = plan_destination(name, opts.output.as_deref(), &opts.cwd)?;
    let dir = destination.path.parent().unwrap_or(Path::new(".")).to_owned();
    // A directory needs room for the zip and for what it expands to.
    let need = if is_directory {
        size.saturating_add(numbytes)
    } else {
        size
    };
    let free = space::available(&dir).map_err(TransferError::file(&dir))?;
    if need > free {
        return Err(TransferError::NoSpace {
            path: dir,
            need,
            free,
        });
    }
    Ok(OfferInfo {
        is_directory,
        offered_name: name.clone(),
        transfer_size: size,
        numbytes,
        numfiles,
        destination,
    })
}

/// Tell the sender we give up on its offer: `{"error": why}` (as Python's receiver does), so it
/// stops waiting and reports `why`. Best effort: a failure to send is ignored.
pub async fn reject<P: MessagePipe>(pipe: &P, why: &str) {
    let _ = pipe.send(AppMsg::Error(why.to_owned()).to_bytes()).await;
}

/// The reason sent to the sender when an offer fails [`inspect_offer`] (Python's wording).
fn refusal_reason(e: &TransferError) -> &'static str {
    match e {
        TransferError::UnknownDirectoryMode(_) => "unknown mode",
        TransferError::UnknownOffer(_) | TransferError::Unsupported(_) => "unknown offer type",
        _ => "transfer rejected",
    }
}

/// The whole receiver with a synchronous decision for file and directory offers; text is
/// always accepted. See [`receive_with`].
pub async fn receive<P: MessagePipe, F: FnMut(&OfferInfo) -> Decision>(
    pipe: &P,
    opts: ReceiveOptions,
    mut decide: F,
) -> Result<Received, TransferError> {
    receive_with(pipe, opts, async |offered: Offered<'_>| match offered {
        Offered::Text(_) => Decision::Accept,
        Offered::Files(info) => decide(info),
    })
    .await
}

/// The whole receiver: wait for the offer (keeping the sender's first transit message), check a
/// file or directory offer, ask `ask` (which may prompt the user), then acknowledge text or
/// receive the data. Every refusal — ours, a failed check, `accept_files: false` — is told to
/// the sender with `{"error": …}` before this returns the error.
pub async fn receive_with<P, F>(pipe: &P, opts: ReceiveOptions, mut ask: F) -> Result<Received, TransferError>
where
    P: MessagePipe,
    F: AsyncFnMut(Offered<'_>) -> Decision,
{
    let mut peer_transit: Option<TransitMsg> = None;
    loop {
        match AppMsg::parse(&pipe.recv().await?)? {
            AppMsg::Error(e) => return Err(TransferError::Peer(e)),
            AppMsg::Transit(t) => {
                // Like Python, only the first transit message counts.
                if peer_transit.is_none() {
                    peer_transit = Some(t);
                }
            }
            AppMsg::Offer(Offer::Message(text)) => {
                if ask(Offered::Text(&text)).await == Decision::Reject {
                    reject(pipe, "transfer rejected").await;
                    return Err(TransferError::Rejected);
                }
                pipe.send(AppMsg::Answer(Answer::MessageAck("ok".into())).to_bytes())
                    .await?;
                return Ok(Received::Text(text));
            }
            AppMsg::Offer(offer) => {
                if !opts.accept_files && !matches!(offer, Offer::Unknown(_)) {
                    reject(pipe, "transfer rejected").await;
                    return Err(TransferError::FilesRefused);
                }
                let info = match inspect_offer(&offer, &opts) {
                    Ok(i) => i,
                    Err(e) => {
                        reject(pipe, refusal_reason(&e)).await;
                        return Err(e);
                    }
                };
                if ask(Offered::Files(&info)).await == Decision::Reject {
                    reject(pipe, "transfer rejected").await;
                    return Err(TransferError::Rejected);
                }
                return receive_offer(pipe, peer_transit, &info, opts).await;
            }
            // Python's receiver ignores messages it does not expect here.
            AppMsg::Answer(_) | AppMsg::Unknown => {}
        }
    }
}

/// Receive an offer the caller has inspected ([`inspect_offer`]) and accepted: send our transit
/// hints and `file_ack`, receive the data, ack its hash, move it into place.
pub async fn receive_offer<P: MessagePipe>(
    pipe: &P,
    peer_transit: Option<TransitMsg>,
    info: &OfferInfo,
    opts: ReceiveOptions,
) -> Result<Received, TransferError> {
    let Some(peer) = peer_transit else {
        reject(pipe, "transfer rejected").await;
        return Err(TransferError::Protocol(
            "file offer without a transit message first".into(),
        ));
    };
    let transit = Transit::new(Role::Receiver, opts.transit.clone())?;
    pipe.send(AppMsg::Transit(transit.message()).to_bytes()).await?;
    pipe.send(AppMsg::Answer(Answer::FileAck("ok".into())).to_bytes())
        .await?;
    let key = pipe.derive_key(&transit_key_purpose(pipe.appid(), &opts.purpose), 32)?;
    let mut conn = transit.connect(&key, &peer).await?;
    emit(
        opts.events.as_ref(),
        TransferEvent::Connected(ConnectionInfo::of(&conn)),
    );

    let dest = &info.destination.path;
    let tmp = temp_sibling(dest, if info.is_directory { "zip" } else { "part" });
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(TransferError::file(&tmp))?;
    let mut guard = RemoveOnDrop(Some(tmp.clone()));
    let (sha256, file) = conn
        .receive_into(file, info.transfer_size, opts.progress.clone())
        .await?;
    conn.send_record(&FinalAck::ok(&sha256).to_bytes()).await?;
    conn.close().await;

    if !info.is_directory {
        set_mode_from_umask(&file, &tmp)?;
        drop(file);
        place_file(&tmp, dest, info.destination.overwrite)?;
        guard.0 = None;
        return Ok(Received::File {
            path: dest.clone(),
            bytes: info.transfer_size,
            sha256,
        });
    }

    emit(opts.events.as_ref(), TransferEvent::Unpacking);
    let mut file: File = file;
    file.seek(SeekFrom::Start(0)).map_err(TransferError::file(&tmp))?;
    let dir_tmp = temp_sibling(dest, "dir");
    std::fs::create_dir(&dir_tmp).map_err(TransferError::file(&dir_tmp))?;
    let mut dir_guard = RemoveDirOnDrop(Some(dir_tmp.clone()));
    let (files, bytes) = zip_in::extract(
        std::io::BufReader::new(file),
        &dir_tmp,
        info.numfiles,
        info.numbytes,
    )?;
    drop(guard); // the zip is no longer needed
    match std::fs::symlink_metadata(dest) {
        Err(_) => {}
        Ok(m) if !m.is_dir() && info.destination.overwrite => {
            std::fs::remove_file(dest).map_err(TransferError::file(dest))?;
        }
        Ok(_) => return Err(TransferError::WouldOverwrite(dest.clone())),
    }
    std::fs::rename(&dir_tmp, dest).map_err(TransferError::file(dest))?;
    dir_guard.0 = None;
    Ok(Received::Directory {
        path: dest.clone(),
        files,
        bytes,
    })
}

/// The temporary file is created 0600 so partial data stays private; the finished file gets the
/// usual 0644.
fn set_mode_from_umask(file: &File, path: &Path) -> Result<(), TransferError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(TransferError::file(path))
}

/// Move the finished temporary file to `dest`: replacing what is there only when allowed,
/// otherwise refusing if anything appeared there meanwhile (hard link = atomic no-clobber).
fn place_file(tmp: &Path, dest: &Path, overwrite: bool) -> Result<(), TransferError> {
    if overwrite {
        return std::fs::rename(tmp, dest).map_err(TransferError::file(dest));
    }
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(TransferError::WouldOverwrite(dest.into()))
        }
        Err(_) => {
            // Filesystems without hard links: check, then rename.
            if std::fs::symlink_metadata(dest).is_ok() {
                return Err(TransferError::WouldOverwrite(dest.into()));
            }
            std::fs::rename(tmp, dest).map_err(TransferError::file(dest))
        }
    }
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

struct RemoveDirOnDrop(Option<PathBuf>);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::transfer::{MemoryPipe, memory_pair};

    fn pair() -> (MemoryPipe, MemoryPipe) {
        memory_pair("example.com/receive-tests", |_, len| vec![7; len])
    }

    impl MemoryPipe {
        fn put(&self, m: &AppMsg) {
            self.push(m.to_bytes()).unwrap();
        }
        async fn take(&self) -> AppMsg {
            AppMsg::parse(&self.recv().await.unwrap()).unwrap()
        }
    }

    fn opts(dir: &Path) -> ReceiveOptions {
        ReceiveOptions {
            cwd: dir.to_owned(),
            ..ReceiveOptions::default()
        }
    }

    fn file_offer() -> AppMsg {
        AppMsg::Offer(Offer::File {
            filename: "x.bin".into(),
            filesize: 3,
        })
    }

    #[tokio::test]
    async fn text_is_shown_before_it_is_acknowledged() {
        let d = tempfile::tempdir().unwrap();
        let (peer, ours) = pair();
        peer.put(&AppMsg::Offer(Offer::Message("hello".into())));
        let mut asked = Vec::new();
        let got = receive_with(&ours, opts(d.path()), async |o: Offered<'_>| {
            if let Offered::Text(t) = o {
                asked.push(t.to_owned());
            }
            Decision::Accept
        })
        .await
        .unwrap();
        assert_eq!(got, Received::Text("hello".into()));
        assert_eq!(asked, ["hello"]);
        assert_eq!(peer.take().await, AppMsg::Answer(Answer::MessageAck("ok".into())));
    }

    #[tokio::test]
    async fn a_refused_offer_is_told_to_the_sender() {
        let d = tempfile::tempdir().unwrap();
        let (peer, ours) = pair();
        peer.put(&file_offer());
        let e = receive_with(&ours, opts(d.path()), async |_: Offered<'_>| Decision::Reject)
            .await
            .unwrap_err();
        assert!(matches!(e, TransferError::Rejected), "{e:?}");
        assert_eq!(peer.take().await, AppMsg::Error("transfer rejected".into()));
    }

    #[tokio::test]
    async fn text_only_refuses_files_before_inspecting_them() {
        let d = tempfile::tempdir().unwrap();
        let (peer, ours) = pair();
        // An answer from the sender is ignored, as Python does.
        peer.put(&AppMsg::Answer(Answer::FileAck("ok".into())));
        peer.put(&file_offer());
        let o = ReceiveOptions {
            accept_files: false,
            ..opts(d.path())
        };
        let e = receive_with(&ours, o, async |_: Offered<'_>| panic!("not asked"))
            .await
            .unwrap_err();
        assert!(matches!(e, TransferError::FilesRefused), "{e:?}");
        assert_eq!(peer.take().await, AppMsg::Error("transfer rejected".into()));
    }

    #[tokio::test]
    async fn unknown_modes_and_offers_are_typed_and_answered_like_python() {
        let d = tempfile::tempdir().unwrap();
        let (peer, ours) = pair();
        peer.put(&AppMsg::Offer(Offer::Directory(
            wormhole_proto::transfer::DirectoryOffer {
                mode: "tarball".into(),
                dirname: "d".into(),
                zipsize: 1,
                numbytes: 1,
                numfiles: 1,
            },
        )));
        let e = receive_with(&ours, opts(d.path()), async |_: Offered<'_>| Decision::Accept)
            .await
            .unwrap_err();
        assert!(
            matches!(e, TransferError::UnknownDirectoryMode(ref m) if m == "tarball"),
            "{e:?}"
        );
        assert_eq!(peer.take().await, AppMsg::Error("unknown mode".into()));

        peer.put(&AppMsg::Offer(Offer::Unknown("teleport".into())));
        let o = ReceiveOptions {
            accept_files: false,
            ..opts(d.path())
        };
        let e = receive_with(&ours, o, async |_: Offered<'_>| Decision::Accept)
            .await
            .unwrap_err();
        assert!(
            matches!(e, TransferError::UnknownOffer(ref k) if k == "teleport"),
            "{e:?}"
        );
        assert_eq!(peer.take().await, AppMsg::Error("unknown offer type".into()));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
