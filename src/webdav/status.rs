//! File-layer errors as dav-server result codes (each one HTTP status): one mapping, tested
//! row by row.

use axum::http::StatusCode;
use dav_server::fs::FsError as DavError;

use crate::files::FsError;

/// The HTTP status of a file-layer refusal answered before dav-server (LOCK's rights check).
pub fn http_status(err: &FsError) -> StatusCode {
    match err {
        FsError::NotFound | FsError::NotADirectory => StatusCode::NOT_FOUND,
        FsError::PermissionDenied
        | FsError::IsADirectory
        | FsError::DirectoryNotEmpty
        | FsError::InvalidPath(_)
        | FsError::LeavesHole => StatusCode::FORBIDDEN,
        FsError::AlreadyExists => StatusCode::CONFLICT,
        FsError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        FsError::TooManyOpenFiles => StatusCode::SERVICE_UNAVAILABLE,
        FsError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        FsError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn dav_error(err: &FsError) -> DavError {
    match err {
        FsError::NotFound => DavError::NotFound,
        FsError::PermissionDenied => DavError::Forbidden,
        FsError::AlreadyExists => DavError::Exists,
        FsError::NotADirectory => DavError::NotFound,
        FsError::IsADirectory => DavError::Forbidden,
        FsError::DirectoryNotEmpty => DavError::Forbidden,
        FsError::InvalidPath(_) => DavError::Forbidden,
        FsError::NoSpace => DavError::InsufficientStorage,
        FsError::TooManyOpenFiles => DavError::GeneralFailure,
        FsError::LeavesHole => DavError::Forbidden,
        FsError::Unsupported(_) => DavError::NotImplemented,
        FsError::Failed(_) => DavError::GeneralFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathError;

    #[test]
    fn every_file_error_maps_to_one_dav_result() {
        let rows = [
            (FsError::NotFound, DavError::NotFound),
            (FsError::PermissionDenied, DavError::Forbidden),
            (FsError::AlreadyExists, DavError::Exists),
            (FsError::NotADirectory, DavError::NotFound),
            (FsError::IsADirectory, DavError::Forbidden),
            (FsError::DirectoryNotEmpty, DavError::Forbidden),
            (FsError::InvalidPath(PathError::Nul), DavError::Forbidden),
            (FsError::NoSpace, DavError::InsufficientStorage),
            (FsError::Unsupported("x".into()), DavError::NotImplemented),
            (FsError::Failed("x".into()), DavError::GeneralFailure),
        ];
        for (err, want) in rows {
            assert_eq!(
                format!("{:?}", dav_error(&err)),
                format!("{want:?}"),
                "{err:?}"
            );
        }
    }
}
