//! File-layer errors as dav-server result codes (each one HTTP status): one mapping, tested
//! row by row.

use dav_server::fs::FsError as DavError;

use crate::files::FsError;

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
