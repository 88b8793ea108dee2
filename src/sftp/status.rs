//! File-layer errors as SFTP status codes: one mapping, tested row by row.

use russh_sftp::protocol::StatusCode;

use crate::files::FsError;

/// The SFTP status code for a file-layer error.
pub fn status_of(err: &FsError) -> StatusCode {
    match err {
        FsError::NotFound => StatusCode::NoSuchFile,
        FsError::PermissionDenied => StatusCode::PermissionDenied,
        FsError::AlreadyExists => StatusCode::Failure,
        FsError::NotADirectory => StatusCode::NoSuchFile,
        FsError::IsADirectory => StatusCode::Failure,
        FsError::DirectoryNotEmpty => StatusCode::Failure,
        FsError::InvalidPath(_) => StatusCode::Failure,
        FsError::NoSpace => StatusCode::Failure,
        FsError::TooManyOpenFiles => StatusCode::Failure,
        FsError::LeavesHole => StatusCode::Failure,
        FsError::Unsupported(_) => StatusCode::OpUnsupported,
        FsError::Failed(_) => StatusCode::Failure,
    }
}

/// The message sent with it: short, and never internal details.
pub fn message_of(err: &FsError) -> String {
    match err {
        FsError::Failed(_) => "operation failed".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathError;

    #[test]
    fn every_file_error_maps_to_its_sftp_status() {
        let rows = [
            (
                FsError::NotFound,
                StatusCode::NoSuchFile,
                "no such file or folder",
            ),
            (
                FsError::PermissionDenied,
                StatusCode::PermissionDenied,
                "permission denied",
            ),
            (
                FsError::AlreadyExists,
                StatusCode::Failure,
                "already exists",
            ),
            (
                FsError::NotADirectory,
                StatusCode::NoSuchFile,
                "not a folder",
            ),
            (FsError::IsADirectory, StatusCode::Failure, "is a folder"),
            (
                FsError::DirectoryNotEmpty,
                StatusCode::Failure,
                "folder is not empty",
            ),
            (
                FsError::InvalidPath(PathError::Nul),
                StatusCode::Failure,
                "invalid path: path contains a NUL byte",
            ),
            (FsError::NoSpace, StatusCode::Failure, "no space left"),
            (
                FsError::Failed("disk on fire at /srv/x".into()),
                StatusCode::Failure,
                "operation failed",
            ),
        ];
        for (err, code, message) in rows {
            assert_eq!(status_of(&err), code, "{err:?}");
            assert_eq!(message_of(&err), message, "{err:?}");
        }
    }
}
