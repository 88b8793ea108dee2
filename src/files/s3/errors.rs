//! OpenDAL errors as [`StorageError`]s: one kind each, and a one-line detail for the log and
//! the audit record (the service's message, never a credential: OpenDAL marks the signing
//! headers sensitive and its errors carry no request headers).

use opendal::ErrorKind as K;

use crate::files::storage::{StorageError, StorageErrorKind};

/// The storage error for an OpenDAL failure of `op` on `key`.
pub(super) fn storage_error(op: &str, key: &str, err: &opendal::Error) -> StorageError {
    let kind = match err.kind() {
        K::NotFound => StorageErrorKind::NotFound,
        // `if_not_exists` (`If-None-Match: *`) refused: something is already there.
        K::AlreadyExists | K::ConditionNotMatch => StorageErrorKind::AlreadyExists,
        K::IsADirectory => StorageErrorKind::IsADirectory,
        K::NotADirectory => StorageErrorKind::NotADirectory,
        K::Unsupported => StorageErrorKind::Unsupported,
        // Wrong credentials or a bucket policy: said as such in the log, and nothing there
        // for the client (the file layer answers "not found").
        K::PermissionDenied => StorageErrorKind::PermissionDenied,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, detail(op, key, err))
}

/// `s3 <op> <key>: <kind>: <service message>` on one line, at most ~400 bytes (the message
/// names the S3 error code, as `NoSuchBucket` or `SlowDown`; the request's headers and
/// context are left out).
pub(super) fn detail(op: &str, key: &str, err: &opendal::Error) -> String {
    let message = err
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut line = format!("s3 {op} {key:?}: {}: {message}", err.kind());
    if line.len() > 400 {
        let mut cut = 400;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// The S3 error code of a service's answer (`NoSuchBucket`, `SignatureDoesNotMatch`…), read
/// from OpenDAL's message (`S3Error { code: "…", … }`); `None` when it names none. Only
/// letters and digits are kept, so nothing else of the answer can leak into a log line.
pub(super) fn s3_code(err: &opendal::Error) -> Option<String> {
    let rest = err.message().split_once("code: \"")?.1;
    let code: String = rest
        .chars()
        .take_while(|c| *c != '"')
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    (!code.is_empty()).then_some(code)
}

/// An error of the kind given, with an explanation.
pub(super) fn error(kind: StorageErrorKind, detail: impl Into<String>) -> StorageError {
    StorageError::new(kind, detail)
}

/// The "cannot do that on S3" answer.
pub(super) fn unsupported(what: &str) -> StorageError {
    StorageError::new(
        StorageErrorKind::Unsupported,
        format!("{what} is not supported on S3 storage"),
    )
}

/// A failure of the local disk under an upload staged there (see [`super::spill`]).
pub(super) fn local_error(what: &str, err: std::io::Error) -> StorageError {
    let detail = format!("{what}: {err}");
    let mut error = StorageError::from(err);
    error.detail = detail;
    error
}
