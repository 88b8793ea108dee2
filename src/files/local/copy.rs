//! Server-side copy on the local disk: the source opened beneath the root like any read,
//! its bytes copied by the kernel (`std::io::copy` between two files is `copy_file_range(2)`
//! on Linux: no bytes through this process) into a new file in the staging folder, which is
//! then moved into place like an upload's commit — without replacing anything when the
//! caller may not (`RENAME_NOREPLACE`), however recently a file appeared at the name.

use cap_std::fs::{Dir, OpenOptions};
use rustix::fs::{AtFlags, OFlags};

use super::beneath::{Beneath, open_regular};
use super::upload::move_into_place;
use crate::files::storage::{Overwrite, StorageError, StorageErrorKind};

/// A copy's file in the staging folder, removed unless it was moved into place.
struct Staged<'a> {
    staging: &'a Dir,
    name: String,
    placed: bool,
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.placed {
            let _ = self.staging.remove_file(&self.name);
        }
    }
}

/// Copies the regular file `from` to `to` (paths relative to `root`, resolved beneath it).
pub(super) fn copy_file(
    root: &Dir,
    staging: &Dir,
    beneath: Beneath,
    from: &str,
    to: &str,
    overwrite: Overwrite,
) -> Result<(), StorageError> {
    let mut source = open_regular(&beneath, root, from, OFlags::RDONLY, 0)?;
    let (dir, name) = beneath.parent(root, to)?;
    // Fail before copying the bytes; the move below re-checks atomically.
    if overwrite == Overwrite::Refuse
        && rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    {
        return Err(StorageError::new(StorageErrorKind::AlreadyExists, to));
    }
    let mut staged = Staged {
        staging,
        name: format!("copy-{}", crate::secret::random_hex(12)),
        placed: false,
    };
    let mut target = staging
        .open_with(
            &staged.name,
            OpenOptions::new().write(true).create_new(true),
        )?
        .into_std();
    std::io::copy(&mut source, &mut target)?;
    drop(target);
    move_into_place(staging, &staged.name, &dir, name, overwrite)?;
    staged.placed = true;
    Ok(())
}
