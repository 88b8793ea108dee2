//! What the file layer refuses because the storage at a path cannot do it (see
//! [`Capabilities`]): the reasons clients and the audit log are given. `Files` asks here
//! before it starts an operation, after the policy check, so a refusal changes nothing and
//! front-ends only map `FsError::Unsupported` to their wire code.

use super::storage::{Capabilities, WriteMode};

/// What to do when a client sets attributes the storage cannot keep (file times on an
/// object store), as configured for the protocol (`sftp.setstat_mode`): ignore them and
/// answer success — the file is otherwise fine, and common clients (OpenSSH `sftp -p` and
/// `scp -p`, WinSCP, rclone) set times after every upload and report the whole transfer
/// as failed when that is refused — or refuse them as unsupported. Either way the audit
/// log says what happened, and nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unkept {
    Ignore,
    Refuse,
}

/// Why an upload in `mode` into an existing file cannot be done by a storage with `caps`;
/// `None` when it can. (A `Replace` upload writes a new file: every storage can.)
pub(super) fn upload_refusal(caps: &Capabilities, mode: WriteMode) -> Option<&'static str> {
    match mode {
        WriteMode::Append if !caps.append => {
            Some("appending to an existing file (this storage writes whole files)")
        }
        WriteMode::Update if !caps.random_write => Some(
            "writing into an existing file, as resumed uploads do (this storage writes whole files)",
        ),
        WriteMode::Replace | WriteMode::Append | WriteMode::Update => None,
    }
}

pub(super) const NO_SET_LEN: &str =
    "changing the length of a file (this storage writes whole files)";
pub(super) const NO_SET_TIMES: &str = "setting file times (this storage keeps its own)";
pub(super) const NO_RENAME_DIR: &str =
    "renaming a folder (this storage renames files only; move its files one by one)";
pub(super) const TIMES_IGNORED: &str = "file times are not kept by this storage: ignored";
