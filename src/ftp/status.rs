//! File-layer errors as FTP replies: one mapping, tested row by row.

use unftp_core::storage::{Error, ErrorKind};

use crate::files::FsError;

/// The libunftp error kind (and so the reply code) for a file-layer error.
pub fn kind_of(err: &FsError) -> ErrorKind {
    match err {
        FsError::NotFound => ErrorKind::PermanentFileNotAvailable,
        FsError::PermissionDenied => ErrorKind::PermissionDenied,
        FsError::AlreadyExists => ErrorKind::PermanentFileNotAvailable,
        FsError::NotADirectory => ErrorKind::PermanentDirectoryNotAvailable,
        FsError::IsADirectory => ErrorKind::PermanentFileNotAvailable,
        FsError::DirectoryNotEmpty => ErrorKind::PermanentDirectoryNotEmpty,
        FsError::InvalidPath(_) => ErrorKind::FileNameNotAllowedError,
        FsError::NoSpace => ErrorKind::InsufficientStorageSpaceError,
        FsError::TooManyOpenFiles => ErrorKind::TransientFileNotAvailable,
        FsError::LeavesHole => ErrorKind::PermanentFileNotAvailable,
        FsError::Unsupported(_) => ErrorKind::CommandNotImplemented,
        FsError::Failed(_) => ErrorKind::LocalError,
    }
}

/// The storage error handed to libunftp.
pub fn ftp_error(err: FsError) -> Error {
    Error::new(kind_of(&err), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathError;

    #[test]
    fn every_file_error_maps_to_one_ftp_reply() {
        let rows = [
            (FsError::NotFound, "550"),
            (FsError::PermissionDenied, "550 Permission denied"),
            (FsError::AlreadyExists, "550"),
            (FsError::NotADirectory, "550"),
            (FsError::IsADirectory, "550"),
            (FsError::DirectoryNotEmpty, "550 The directory is not empty"),
            (FsError::InvalidPath(PathError::NameTooLong), "553"),
            (FsError::NoSpace, "452"),
            (FsError::Unsupported("append".into()), "502"),
            (FsError::Failed("x".into()), "451"),
        ];
        for (err, reply) in rows {
            let shown = kind_of(&err).to_string();
            assert!(shown.starts_with(reply), "{err:?} -> {shown}");
        }
    }
}
