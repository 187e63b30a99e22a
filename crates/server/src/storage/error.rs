//! [`StorageError`]: what went wrong in a backend, in terms the engine and the operator can act
//! on, whichever backend it was.
//!
//! Owns: the variants (open, load, commit, version). Must not: name a database library; the
//! backend's own error travels as a boxed `source` and is only ever printed, never matched.

/// A backend's own error, kept as the `source` of a [`StorageError`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The store could not be opened or set up (bad path or URL, permissions, a file that is
    /// not a database of ours). Check the storage flags.
    #[error("cannot open {what}: {source}")]
    Open {
        /// What was being opened, e.g. `channel database "relay.sqlite"`.
        what: String,
        /// The backend's error.
        source: BackendError,
    },
    /// The committed state could not be read at start-up (I/O error, damaged data).
    #[error("cannot read the stored state: {source}")]
    Load {
        /// The backend's error.
        source: BackendError,
    },
    /// A batch could not be made durable (disk full, I/O error, a write the store cannot
    /// apply). Nothing of the batch is stored.
    #[error("cannot commit a batch of {writes} writes: {source}")]
    Commit {
        /// Number of writes in the batch.
        writes: usize,
        /// The backend's error.
        source: BackendError,
    },
    /// The store does not answer a readiness query (`/ready`): the database is down, or its
    /// file is gone. The server keeps running; commits will fail the same way.
    #[error("storage is not reachable: {source}")]
    Unreachable {
        /// The backend's error.
        source: BackendError,
    },
    /// The store has a schema version this server does not understand.
    /// Use a fresh database, or the server version that wrote it.
    #[error("unsupported {db} database version {version} (expected {expected})")]
    Version {
        /// Which database (`channel` or `usage`).
        db: &'static str,
        /// The version found.
        version: i64,
        /// The version we support.
        expected: i64,
    },
}

impl StorageError {
    /// [`StorageError::Open`] of `what`, caused by `source`.
    pub fn open(what: impl Into<String>, source: impl Into<BackendError>) -> Self {
        StorageError::Open {
            what: what.into(),
            source: source.into(),
        }
    }

    /// [`StorageError::Load`] caused by `source`.
    pub fn load(source: impl Into<BackendError>) -> Self {
        StorageError::Load {
            source: source.into(),
        }
    }

    /// [`StorageError::Unreachable`] caused by `source`.
    pub fn unreachable(source: impl Into<BackendError>) -> Self {
        StorageError::Unreachable {
            source: source.into(),
        }
    }

    /// [`StorageError::Commit`] of a batch of `writes` writes, caused by `source`.
    pub fn commit(writes: usize, source: impl Into<BackendError>) -> Self {
        StorageError::Commit {
            writes,
            source: source.into(),
        }
    }
}
