//! Errors of the file layer, as kinds that each front-end maps to one wire code.

use crate::path::PathError;

use super::storage::{StorageError, StorageErrorKind};

/// Why a file operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Absent, or hidden from this principal (existence must not leak).
    #[error("no such file or folder")]
    NotFound,
    /// Visible, but this operation is not allowed here.
    #[error("permission denied")]
    PermissionDenied,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a folder")]
    NotADirectory,
    #[error("is a folder")]
    IsADirectory,
    #[error("folder is not empty")]
    DirectoryNotEmpty,
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("no space left")]
    NoSpace,
    /// The server's budget of files open for transfers is spent: try again later.
    #[error("too many files open on the server, try again later")]
    TooManyOpenFiles,
    /// A write or length change that would leave a gap of never-written bytes (a sparse
    /// hole): a file grows only by writing at its end.
    #[error("writes may not leave a hole: a file grows only by writing at its end")]
    LeavesHole,
    /// The storage behind this path cannot do this (an object store cannot append or
    /// write at random offsets, for one); nothing was changed.
    #[error("not supported by this storage: {0}")]
    Unsupported(String),
    /// Anything else; the detail goes to the log, not to clients.
    #[error("operation failed")]
    Failed(String),
}

impl From<StorageError> for FsError {
    fn from(err: StorageError) -> Self {
        match err.kind {
            StorageErrorKind::NotFound => FsError::NotFound,
            StorageErrorKind::AlreadyExists => FsError::AlreadyExists,
            StorageErrorKind::NotADirectory => FsError::NotADirectory,
            StorageErrorKind::IsADirectory => FsError::IsADirectory,
            StorageErrorKind::DirectoryNotEmpty => FsError::DirectoryNotEmpty,
            // The OS refusing (a link out of the root, for one) looks like nothing there.
            StorageErrorKind::PermissionDenied => FsError::NotFound,
            StorageErrorKind::InvalidName => FsError::InvalidPath(PathError::NameTooLong),
            StorageErrorKind::NoSpace => FsError::NoSpace,
            StorageErrorKind::Unsupported => FsError::Unsupported(err.detail),
            StorageErrorKind::Other => FsError::Failed(err.detail),
        }
    }
}

impl From<std::io::Error> for FsError {
    fn from(err: std::io::Error) -> Self {
        StorageError::from(err).into()
    }
}

impl FsError {
    /// A short reason for the audit log.
    pub fn reason(&self) -> String {
        match self {
            FsError::Failed(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}
