//! Staging folders: the local folders (`data_dir/uploads-in-progress`, one per backend) where
//! uploads in progress are written until they are committed.
//!
//! One serving process owns each. `serve` claims it: an exclusive lock (`flock`) on its
//! `.lock` file, held for as long as the process runs, then removes what a crash left there
//! (never a valid file). A second process serving with the same data folder finds the lock
//! taken and stops at start with one line. Admin commands (`filegate user …`, `key …`) run
//! beside a serving process and open the storage without claiming: they clear nothing,
//! since what is there is someone's upload in progress.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// The lock file's name; never an upload's.
pub const LOCK_FILE: &str = ".lock";

/// A claimed staging folder: the lock is held until this is dropped.
#[derive(Debug)]
pub struct StagingClaim {
    _lock: File,
}

/// Why a staging folder cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "its staging folder {dir} is in use by another filegate process serving with the same data folder (each replica needs a server.data_dir of its own)"
    )]
    Busy { dir: String },
    #[error("its staging folder {dir}: {source}")]
    Io { dir: String, source: io::Error },
}

/// Claims `dir` (made if missing) for this process and clears what a crash left in it.
pub fn claim(dir: &Path) -> Result<StagingClaim, ClaimError> {
    let io_error = |source| ClaimError::Io {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io_error)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(ClaimError::Busy {
                dir: dir.display().to_string(),
            });
        }
        Err(TryLockError::Error(err)) => return Err(io_error(err)),
    }
    for entry in std::fs::read_dir(dir).map_err(io_error)?.flatten() {
        if entry.file_name() != LOCK_FILE && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(StagingClaim { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn a_claim_clears_leftovers_but_not_folders_and_a_second_claim_is_refused_until_released() {
        let dir = TempDir::new("staging");
        let staging = dir.path().join("uploads-in-progress");
        std::fs::create_dir_all(staging.join("mount-0123")).unwrap();
        std::fs::write(staging.join("upload-left-by-a-crash"), b"half").unwrap();
        std::fs::write(staging.join("mount-0123/s3-upload-x"), b"half").unwrap();
        let first = claim(&staging).expect("first claim");
        let mut names: Vec<String> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".lock", "mount-0123"],
            "leftovers removed, folders kept"
        );
        assert!(
            staging.join("mount-0123/s3-upload-x").exists(),
            "a mount's folder is its own claim's"
        );
        // Uploads in progress of the owner survive a second claim, which is refused.
        std::fs::write(staging.join("upload-in-progress"), b"live").unwrap();
        let err = claim(&staging).unwrap_err();
        assert!(matches!(err, ClaimError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("server.data_dir"), "{err}");
        assert!(staging.join("upload-in-progress").exists());
        drop(first);
        let _again = claim(&staging).expect("claimed again once released");
        assert!(!staging.join("upload-in-progress").exists());
    }
}
