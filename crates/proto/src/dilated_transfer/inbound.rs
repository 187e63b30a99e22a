//! [`Inbound`]: the receiving side of one offer subchannel, as a checker. Feed it each record
//! the offering peer sends and our answer; it says what the record means (an offer, where a
//! file starts, data, a file's end) or why it breaks the protocol, so the driver only writes
//! what was promised.
//!
//! Owns: the order of records, the declared sizes (per file and per directory), the names'
//! shape (one safe segment each), resume offsets, and "nothing after the end". Must not: hash,
//! touch files, or choose destinations.

use super::msg::{DirectoryOffer, FileAck, FileOffer, MsgError, Record};
use super::versions::Features;
use super::{MAX_DEPTH, MAX_DIR_FILES, MAX_SEGMENT};

/// The offer that opened the subchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// One file.
    File(FileOffer),
    /// A directory tree.
    Directory(DirectoryOffer),
}

/// What one record means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent {
    /// The offer (names checked); answer it with [`Inbound::accept`] or [`Inbound::reject`].
    Offer(Offer),
    /// File `index` (0 for a single-file offer) starts: its declared length (`None` for a
    /// stream) and the offset of the first data byte (non-zero when resuming).
    FileStart {
        /// Index in the directory's `files` (0 for a file offer).
        index: usize,
        /// Declared length.
        bytes: Option<u64>,
        /// Where the data that follows starts.
        offset: u64,
    },
    /// Data of the current file (within its declared length).
    Data(bytes::Bytes),
    /// The current file ended; the sender's ack (its length is checked, its hashes are for the
    /// caller to compare). `last`: the offer is complete.
    FileEnd {
        /// Index of the file.
        index: usize,
        /// The sender's ack.
        ack: FileAck,
        /// Whether this was the offer's last file.
        last: bool,
    },
    /// A bundle (feature `bundle`, among a directory's files): feed each part, in order, to
    /// [`Inbound::handle_part`].
    Bundle(Vec<bytes::Bytes>),
}

/// How an offering peer broke the protocol. Every variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The record did not decode.
    #[error(transparent)]
    Msg(#[from] MsgError),
    /// A record of a kind not allowed here.
    #[error("the peer sent a record of kind {kind} where {expected} was expected")]
    Unexpected {
        /// Its kind.
        kind: u8,
        /// What we waited for.
        expected: &'static str,
    },
    /// A record after the offer's last file ended.
    #[error("the peer sent a record of kind {kind} after the end of its offer")]
    AfterEnd {
        /// Its kind.
        kind: u8,
    },
    /// A name that is not one safe path segment.
    #[error("the peer offered an unsafe name {name:?}: {reason}")]
    BadName {
        /// The name (escaped by `{:?}`).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A directory offer with too many files (or directories).
    #[error("the peer's directory offer lists {count} entries, over our limit of {limit}")]
    TooManyFiles {
        /// Entries listed.
        count: usize,
        /// [`MAX_DIR_FILES`].
        limit: usize,
    },
    /// A path of too many segments.
    #[error("the peer's directory offer has a path of {depth} segments, over our limit of {limit}")]
    TooDeep {
        /// Its segments.
        depth: usize,
        /// [`MAX_DEPTH`].
        limit: usize,
    },
    /// A directory's files exceed the size it declared.
    #[error("the peer's files exceed the {declared} bytes its directory offer declared (at least {sent})")]
    ExceedsDeclared {
        /// The offer's `size`.
        declared: u64,
        /// What the files add up to so far.
        sent: u64,
    },
    /// A directory's files fall short of the size it declared.
    #[error("the peer's files add up to {sent} bytes, not the {declared} its directory offer declared")]
    ShortOfDeclared {
        /// The offer's `size`.
        declared: u64,
        /// What they add up to.
        sent: u64,
    },
    /// More data than the file's declared length.
    #[error("the peer sent more than the {declared} bytes declared for file {index}")]
    TooMuchData {
        /// The file.
        index: usize,
        /// Its declared length.
        declared: u64,
    },
    /// The ack came before all the data (or names another length).
    #[error("file {index}: the peer's ack says {acked} bytes, but {received} arrived of {declared}")]
    AckMismatch {
        /// The file.
        index: usize,
        /// The length in the ack.
        acked: u64,
        /// What arrived (counting a resumed prefix).
        received: u64,
        /// The declared length (or what arrived, for a stream).
        declared: u64,
    },
    /// A directory's file header names another file than its list.
    #[error("the peer sent file {got:?} where its offer listed {expected:?}")]
    HeaderMismatch {
        /// The listed name.
        expected: String,
        /// The header's name.
        got: String,
    },
    /// A resume offset other than 0 or our claim.
    #[error("the peer resumes at byte {offset}, but we hold {claim} bytes")]
    BadResumeOffset {
        /// The offset sent.
        offset: u64,
        /// What we claimed.
        claim: u64,
    },
    /// A feature the peer did not negotiate.
    #[error("the peer used the {0:?} extension, which was not negotiated")]
    NotNegotiated(&'static str),
    /// The subchannel closed before the offer was complete.
    #[error("the peer closed the offer before it was complete")]
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    WantOffer,
    Answering,
    WantDataStart {
        claim: u64,
    },
    WantHeader {
        index: usize,
    },
    InFile {
        index: usize,
        declared: Option<u64>,
        received: u64,
    },
    Finished,
    Rejected,
}

/// The checker of one offer subchannel (see the module docs).
#[derive(Debug, Clone)]
pub struct Inbound {
    features: Features,
    state: State,
    offer: Option<Offer>,
    dir_sent: u64,
}

/// Checks one path segment.
pub fn check_segment(name: &str) -> Result<(), InboundError> {
    let bad = |reason| {
        Err(InboundError::BadName {
            name: name.chars().take(300).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("a relative reference");
    }
    if name.len() > MAX_SEGMENT {
        return bad("longer than 255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    Ok(())
}

fn check_path(p: &[String]) -> Result<(), InboundError> {
    if p.is_empty() {
        return Err(InboundError::BadName {
            name: String::new(),
            reason: "an empty path",
        });
    }
    if p.len() > MAX_DEPTH {
        return Err(InboundError::TooDeep {
            depth: p.len(),
            limit: MAX_DEPTH,
        });
    }
    p.iter().try_for_each(|s| check_segment(s))
}

impl Inbound {
    /// A checker for a subchannel the peer just opened, with the features in use.
    pub fn new(features: Features) -> Inbound {
        Inbound {
            features,
            state: State::WantOffer,
            offer: None,
            dir_sent: 0,
        }
    }

    /// The offer, once it arrived.
    pub fn offer(&self) -> Option<&Offer> {
        self.offer.as_ref()
    }

    /// Whether the offer is complete (or was rejected): only the peer's CLOSE may follow.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished | State::Rejected)
    }

    /// We rejected the offer.
    pub fn reject(&mut self) {
        self.state = State::Rejected;
    }

    /// We accepted the offer, claiming `claim` bytes already held (a single-file offer with the
    /// `resume` feature). For a file offer without a claim, the file starts at once: that
    /// [`InboundEvent::FileStart`] is returned.
    pub fn accept(&mut self, claim: Option<u64>) -> Option<InboundEvent> {
        match &self.offer {
            Some(Offer::File(f)) => {
                let declared = (!f.stream).then_some(f.bytes);
                match claim.filter(|&c| c > 0 && self.features.resume && !f.stream) {
                    Some(claim) => {
                        self.state = State::WantDataStart { claim };
                        None
                    }
                    None => Some(self.start(0, declared, 0)),
                }
            }
            Some(Offer::Directory(d)) if d.files.is_empty() => {
                self.state = State::Finished;
                None
            }
            Some(Offer::Directory(_)) => {
                self.state = State::WantHeader { index: 0 };
                None
            }
            None => None,
        }
    }

    fn start(&mut self, index: usize, declared: Option<u64>, offset: u64) -> InboundEvent {
        self.state = State::InFile {
            index,
            declared,
            received: offset,
        };
        InboundEvent::FileStart {
            index,
            bytes: declared,
            offset,
        }
    }

    /// The peer's CLOSE of the subchannel: fine only once the offer is complete (or rejected).
    pub fn peer_closed(&self) -> Result<(), InboundError> {
        if self.is_finished() {
            Ok(())
        } else {
            Err(InboundError::Truncated)
        }
    }

    /// One record from the peer.
    pub fn handle(&mut self, bytes: &[u8]) -> Result<InboundEvent, InboundError> {
        self.handle_record(Record::decode(bytes)?)
    }

    /// [`Inbound::handle`] of a record in a shared buffer: its data is not copied.
    pub fn handle_bytes(&mut self, bytes: &bytes::Bytes) -> Result<InboundEvent, InboundError> {
        self.handle_record(Record::decode_bytes(bytes)?)
    }

    /// One part of a bundle ([`InboundEvent::Bundle`]): a record like any other, except that
    /// bundles do not nest.
    pub fn handle_part(&mut self, part: &bytes::Bytes) -> Result<InboundEvent, InboundError> {
        match Record::decode_bytes(part)? {
            Record::Bundle(_) => Err(InboundError::Unexpected {
                kind: super::msg::kind::BUNDLE,
                expected: "a file's record (bundles do not nest)",
            }),
            rec => self.handle_record(rec),
        }
    }

    fn handle_record(&mut self, rec: Record) -> Result<InboundEvent, InboundError> {
        let k = rec.kind();
        match (&self.state, rec) {
            (State::Finished | State::Rejected, _) => Err(InboundError::AfterEnd { kind: k }),
            (_, Record::Bundle(_)) if !self.features.bundle => Err(InboundError::NotNegotiated("bundle")),
            (State::WantHeader { .. } | State::InFile { .. }, Record::Bundle(parts))
                if matches!(self.offer, Some(Offer::Directory(_))) =>
            {
                Ok(InboundEvent::Bundle(parts))
            }
            (_, Record::Bundle(_)) => Err(InboundError::Unexpected {
                kind: k,
                expected: "no bundle outside a directory's files",
            }),
            (State::WantOffer, Record::FileOffer(f)) => {
                check_segment(&f.filename)?;
                if f.stream && !self.features.stream {
                    return Err(InboundError::NotNegotiated("stream"));
                }
                self.offer = Some(Offer::File(f.clone()));
                self.state = State::Answering;
                Ok(InboundEvent::Offer(Offer::File(f)))
            }
            (State::WantOffer, Record::DirectoryOffer(d)) => {
                check_segment(&d.base)?;
                let count = d.files.len() + d.directories.len();
                if count > MAX_DIR_FILES {
                    return Err(InboundError::TooManyFiles {
                        count,
                        limit: MAX_DIR_FILES,
                    });
                }
                if !d.directories.is_empty() && !self.features.empty_dirs {
                    return Err(InboundError::NotNegotiated("empty-dirs"));
                }
                d.files
                    .iter()
                    .chain(&d.directories)
                    .try_for_each(|p| check_path(p))?;
                self.offer = Some(Offer::Directory(d.clone()));
                self.state = State::Answering;
                Ok(InboundEvent::Offer(Offer::Directory(d)))
            }
            (State::WantOffer, _) => Err(InboundError::Unexpected {
                kind: k,
                expected: "an offer",
            }),
            (State::Answering, _) => Err(InboundError::Unexpected {
                kind: k,
                expected: "nothing before our answer",
            }),
            (State::WantDataStart { claim }, Record::DataStart(s)) => {
                let claim = *claim;
                if s.offset != 0 && s.offset != claim {
                    return Err(InboundError::BadResumeOffset {
                        offset: s.offset,
                        claim,
                    });
                }
                let declared = match &self.offer {
                    Some(Offer::File(f)) => f.bytes,
                    _ => 0,
                };
                if s.offset > declared {
                    return Err(InboundError::BadResumeOffset {
                        offset: s.offset,
                        claim: declared,
                    });
                }
                Ok(self.start(0, Some(declared), s.offset))
            }
            (State::WantDataStart { .. }, _) => Err(InboundError::Unexpected {
                kind: k,
                expected: "where the data starts (resume)",
            }),
            (State::WantHeader { index }, Record::FileOffer(h)) => {
                let index = *index;
                let Some(Offer::Directory(d)) = &self.offer else {
                    return Err(InboundError::Truncated);
                };
                let expected = d.files[index].last().cloned().unwrap_or_default();
                if h.filename != expected {
                    return Err(InboundError::HeaderMismatch {
                        expected,
                        got: h.filename,
                    });
                }
                if h.stream {
                    return Err(InboundError::Unexpected {
                        kind: k,
                        expected: "a file of known length in a directory",
                    });
                }
                let sent = self.dir_sent.saturating_add(h.bytes);
                if sent > d.size {
                    return Err(InboundError::ExceedsDeclared {
                        declared: d.size,
                        sent,
                    });
                }
                self.dir_sent = sent;
                Ok(self.start(index, Some(h.bytes), 0))
            }
            (State::WantHeader { .. }, _) => Err(InboundError::Unexpected {
                kind: k,
                expected: "the next file's header",
            }),
            (
                State::InFile {
                    index,
                    declared,
                    received,
                },
                Record::Data(d),
            ) => {
                let (index, declared) = (*index, *declared);
                let received = received.saturating_add(d.len() as u64);
                if let Some(limit) = declared
                    && received > limit
                {
                    return Err(InboundError::TooMuchData {
                        index,
                        declared: limit,
                    });
                }
                self.state = State::InFile {
                    index,
                    declared,
                    received,
                };
                Ok(InboundEvent::Data(d))
            }
            (
                State::InFile {
                    index,
                    declared,
                    received,
                },
                Record::FileAck(ack),
            ) => {
                let (index, received) = (*index, *received);
                let want = declared.unwrap_or(received);
                if received != want || ack.bytes != want {
                    return Err(InboundError::AckMismatch {
                        index,
                        acked: ack.bytes,
                        received,
                        declared: want,
                    });
                }
                let last = match &self.offer {
                    Some(Offer::Directory(d)) => index + 1 >= d.files.len(),
                    _ => true,
                };
                if last {
                    if let Some(Offer::Directory(d)) = &self.offer
                        && self.dir_sent != d.size
                    {
                        return Err(InboundError::ShortOfDeclared {
                            declared: d.size,
                            sent: self.dir_sent,
                        });
                    }
                    self.state = State::Finished;
                } else {
                    self.state = State::WantHeader { index: index + 1 };
                }
                Ok(InboundEvent::FileEnd { index, ack, last })
            }
            (State::InFile { .. }, _) => Err(InboundError::Unexpected {
                kind: k,
                expected: "file data or its ack",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::msg::{DataStart, Hash32};
    use super::*;

    fn file(name: &str, bytes: u64) -> Vec<u8> {
        Record::FileOffer(FileOffer {
            filename: name.into(),
            timestamp: 0,
            bytes,
            stream: false,
        })
        .encode()
    }
    fn ack(bytes: u64) -> Vec<u8> {
        Record::FileAck(FileAck {
            bytes,
            hash: Hash32::default(),
            sha256: None,
        })
        .encode()
    }
    fn data(n: usize) -> Vec<u8> {
        Record::Data(vec![7; n].into()).encode()
    }
    fn dir(size: u64, files: &[&[&str]]) -> Vec<u8> {
        Record::DirectoryOffer(DirectoryOffer {
            base: "d".into(),
            size,
            files: files
                .iter()
                .map(|p| p.iter().map(|s| s.to_string()).collect())
                .collect(),
            directories: vec![],
        })
        .encode()
    }

    #[test]
    fn single_file() {
        let mut i = Inbound::new(Features::all());
        assert!(matches!(i.handle(&file("a", 5)).unwrap(), InboundEvent::Offer(_)));
        assert!(i.handle(&data(1)).is_err(), "nothing before our answer");
        let mut i = Inbound::new(Features::all());
        i.handle(&file("a", 5)).unwrap();
        assert!(matches!(
            i.accept(None),
            Some(InboundEvent::FileStart { offset: 0, .. })
        ));
        i.handle(&data(3)).unwrap();
        assert!(matches!(i.handle(&ack(5)), Err(InboundError::AckMismatch { .. })));
        i.handle(&data(2)).unwrap();
        assert!(i.peer_closed().is_err());
        assert!(matches!(
            i.handle(&ack(5)).unwrap(),
            InboundEvent::FileEnd { last: true, .. }
        ));
        assert!(i.peer_closed().is_ok());
        assert_eq!(i.handle(&data(1)), Err(InboundError::AfterEnd { kind: 5 }));
    }

    #[test]
    fn too_much_data_and_bad_names() {
        let mut i = Inbound::new(Features::all());
        i.handle(&file("a", 2)).unwrap();
        i.accept(None);
        assert!(matches!(
            i.handle(&data(3)),
            Err(InboundError::TooMuchData { .. })
        ));
        for bad in ["..", ".", "", "a/b", "a\\b", "x\ny", "/etc"] {
            let mut i = Inbound::new(Features::all());
            assert!(
                matches!(i.handle(&file(bad, 1)), Err(InboundError::BadName { .. })),
                "{bad:?}"
            );
        }
        let mut i = Inbound::new(Features::all());
        assert!(matches!(
            i.handle(&dir(1, &[&["ok", "..", "x"]])),
            Err(InboundError::BadName { .. })
        ));
    }

    #[test]
    fn directory() {
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        assert_eq!(i.accept(None), None);
        assert!(i.handle(&file("b", 1)).is_err(), "order is the list's");
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        i.accept(None);
        i.handle(&file("a", 2)).unwrap();
        i.handle(&data(2)).unwrap();
        assert!(matches!(
            i.handle(&ack(2)).unwrap(),
            InboundEvent::FileEnd { last: false, .. }
        ));
        assert!(matches!(
            i.handle(&file("b", 4)),
            Err(InboundError::ExceedsDeclared { .. })
        ));
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(5, &[&["a"]])).unwrap();
        i.accept(None);
        i.handle(&file("a", 2)).unwrap();
        i.handle(&data(2)).unwrap();
        assert!(matches!(
            i.handle(&ack(2)),
            Err(InboundError::ShortOfDeclared { .. })
        ));
    }

    #[test]
    fn resume_offsets() {
        let start = |o| Record::DataStart(DataStart { offset: o }).encode();
        let mut i = Inbound::new(Features::all());
        i.handle(&file("a", 10)).unwrap();
        assert_eq!(i.accept(Some(4)), None);
        assert!(matches!(
            i.handle(&start(6)),
            Err(InboundError::BadResumeOffset { .. })
        ));
        let mut i = Inbound::new(Features::all());
        i.handle(&file("a", 10)).unwrap();
        i.accept(Some(4));
        assert!(matches!(
            i.handle(&start(4)).unwrap(),
            InboundEvent::FileStart { offset: 4, .. }
        ));
        i.handle(&data(6)).unwrap();
        assert!(i.handle(&ack(10)).is_ok());
        // Without the feature, a claim is ignored: the file starts at once.
        let mut i = Inbound::new(Features::default());
        i.handle(&file("a", 10)).unwrap();
        assert!(i.accept(Some(4)).is_some());
    }

    fn bundle(parts: &[Vec<u8>]) -> bytes::Bytes {
        Record::Bundle(parts.iter().map(|p| bytes::Bytes::from(p.clone())).collect())
            .encode()
            .into()
    }

    /// Feeds a bundle's parts; the events, or the first error.
    fn parts(i: &mut Inbound, b: InboundEvent) -> Result<Vec<InboundEvent>, InboundError> {
        let InboundEvent::Bundle(parts) = b else {
            panic!("not a bundle: {b:?}");
        };
        parts.iter().map(|p| i.handle_part(p)).collect()
    }

    #[test]
    fn bundles() {
        let b = bundle(&[file("a", 2), data(2), ack(2), file("b", 3), data(3), ack(3)]);
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        i.accept(None);
        let ev = i.handle_bytes(&b).unwrap();
        let ev = parts(&mut i, ev).unwrap();
        assert_eq!(ev.len(), 6);
        assert!(matches!(
            ev[5],
            InboundEvent::FileEnd {
                index: 1,
                last: true,
                ..
            }
        ));
        assert!(i.is_finished());
        // The same rules as for records sent one by one: here, a file over the declared size.
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(4, &[&["a"], &["s", "b"]])).unwrap();
        i.accept(None);
        let ev = i.handle_bytes(&b).unwrap();
        assert!(matches!(
            parts(&mut i, ev),
            Err(InboundError::ExceedsDeclared { .. })
        ));
        // Bundles do not nest.
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        i.accept(None);
        let ev = i.handle_bytes(&bundle(&[b.to_vec()])).unwrap();
        assert!(matches!(
            parts(&mut i, ev),
            Err(InboundError::Unexpected { kind: 8, .. })
        ));
        // Not before the offer was accepted, not in a single-file offer, not after the end.
        let mut i = Inbound::new(Features::all());
        assert!(matches!(
            i.handle_bytes(&b),
            Err(InboundError::Unexpected { kind: 8, .. })
        ));
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        assert!(matches!(
            i.handle_bytes(&b),
            Err(InboundError::Unexpected { kind: 8, .. })
        ));
        let mut i = Inbound::new(Features::all());
        i.handle(&file("a", 2)).unwrap();
        i.accept(None);
        assert!(matches!(
            i.handle_bytes(&b),
            Err(InboundError::Unexpected { kind: 8, .. })
        ));
        let mut i = Inbound::new(Features::all());
        i.handle(&dir(0, &[])).unwrap();
        i.accept(None);
        assert!(matches!(
            i.handle_bytes(&b),
            Err(InboundError::AfterEnd { kind: 8 })
        ));
        // Not without the feature.
        let mut i = Inbound::new(Features::default());
        i.handle(&dir(5, &[&["a"], &["s", "b"]])).unwrap();
        i.accept(None);
        assert_eq!(i.handle_bytes(&b), Err(InboundError::NotNegotiated("bundle")));
    }
}
