//! What we offer: a file, a directory tree (walked like the classic sender: symlinks
//! followed, loops refused), or a stream of unknown length.
//!
//! Owns: inspecting paths before the offer and remembering what was promised (size and
//! modification time of each file). Must not: do network I/O.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncRead;

use super::super::TransferError;
use super::super::send::offered_name;
use super::super::zip_out::ZipPlan;

/// One file as promised in an offer.
#[derive(Debug, Clone)]
pub struct PromisedFile {
    /// Where it is read from.
    pub source: PathBuf,
    /// Path segments below the directory (just the name for a file offer).
    pub segments: Vec<String>,
    /// Length at the offer.
    pub size: u64,
    /// Modification time at the offer (Unix seconds).
    pub mtime: i64,
}

/// A thing to offer.
pub enum OfferItem {
    /// One regular file.
    File(PromisedFile),
    /// A directory tree.
    Directory {
        /// Name offered.
        name: String,
        /// Its files, in the order sent.
        files: Vec<PromisedFile>,
        /// Its directories that hold no file (segments).
        empty_dirs: Vec<Vec<String>>,
    },
    /// Bytes of unknown length (standard input).
    Stream {
        /// Name offered.
        name: String,
        /// Where the bytes come from.
        reader: Box<dyn AsyncRead + Send + Unpin>,
    },
}

impl std::fmt::Debug for OfferItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format!("OfferItem({:?})", self.name()))
    }
}

impl OfferItem {
    /// Inspect `path` (following symlinks): a file or a directory tree. Unreadable entries of a
    /// directory are an error unless `ignore_unsendable`.
    pub fn prepare(path: &Path, ignore_unsendable: bool) -> Result<OfferItem, TransferError> {
        let meta = std::fs::metadata(path).map_err(TransferError::file(path))?;
        let name = offered_name(path)?;
        if meta.is_file() {
            std::fs::File::open(path).map_err(TransferError::file(path))?;
            return Ok(OfferItem::File(PromisedFile {
                source: path.to_owned(),
                segments: vec![name],
                size: meta.len(),
                mtime: meta.mtime(),
            }));
        }
        if !meta.is_dir() {
            return Err(TransferError::Unsendable {
                path: path.to_owned(),
                reason: "not a regular file or directory".into(),
            });
        }
        Ok(OfferItem::from_plan(
            name,
            &ZipPlan::scan(path, ignore_unsendable)?,
        ))
    }

    /// The directory `name` from a tree already scanned (as the classic sender scans it before
    /// it knows the peer's protocol: the tree is not walked twice).
    pub fn from_plan(name: String, plan: &ZipPlan) -> OfferItem {
        let mut files = Vec::new();
        let mut empty_dirs = Vec::new();
        for e in &plan.entries {
            let segments: Vec<String> = e
                .name
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            match &e.source {
                Some(source) => files.push(PromisedFile {
                    source: source.clone(),
                    segments,
                    size: e.size,
                    mtime: e.mtime,
                }),
                None => empty_dirs.push(segments),
            }
        }
        OfferItem::Directory {
            name,
            files,
            empty_dirs,
        }
    }

    /// A stream named `name`.
    pub fn stream(name: &str, reader: Box<dyn AsyncRead + Send + Unpin>) -> OfferItem {
        OfferItem::Stream {
            name: name.to_owned(),
            reader,
        }
    }

    /// The name offered.
    pub fn name(&self) -> &str {
        match self {
            OfferItem::File(f) => f.segments.last().map(String::as_str).unwrap_or(""),
            OfferItem::Directory { name, .. } | OfferItem::Stream { name, .. } => name,
        }
    }

    /// Declared bytes (0 for a stream).
    pub fn bytes(&self) -> u64 {
        match self {
            OfferItem::File(f) => f.size,
            OfferItem::Directory { files, .. } => files.iter().map(|f| f.size).sum(),
            OfferItem::Stream { .. } => 0,
        }
    }

    /// Files (1 for a file or stream).
    pub fn files(&self) -> u64 {
        match self {
            OfferItem::Directory { files, .. } => files.len() as u64,
            _ => 1,
        }
    }
}
