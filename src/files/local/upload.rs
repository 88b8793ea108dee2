//! Local uploads in progress: the open file, its temporary name in the staging folder
//! (`Replace`), and the commit that moves it into place — without replacing anything when
//! the writer may only create.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use super::beneath::Beneath;
use super::{blocking, os};
use crate::files::storage::{FileWriter, Overwrite, StagedWrite, StorageError};

/// Renames `from_name` in `from_dir` to `to_name` in `to_dir`. With `Overwrite::Refuse`,
/// atomically refuses when the destination exists (`RENAME_NOREPLACE`; on a filesystem
/// without it, a hard link, which fails when the name is taken, then removing the old name).
pub(super) fn move_into_place(
    from_dir: impl AsFd,
    from_name: &str,
    to_dir: impl AsFd,
    to_name: &str,
    overwrite: Overwrite,
) -> io::Result<()> {
    let (from_dir, to_dir) = (from_dir.as_fd(), to_dir.as_fd());
    let flags = match overwrite {
        Overwrite::Allow => RenameFlags::empty(),
        Overwrite::Refuse => RenameFlags::NOREPLACE,
    };
    match rustix::fs::renameat_with(from_dir, from_name, to_dir, to_name, flags) {
        Err(Errno::INVAL) if overwrite == Overwrite::Refuse => {
            let stat =
                rustix::fs::statat(from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW).map_err(os)?;
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                != rustix::fs::FileType::RegularFile
            {
                return Err(os(Errno::INVAL));
            }
            rustix::fs::linkat(from_dir, from_name, to_dir, to_name, AtFlags::empty())
                .map_err(os)?;
            rustix::fs::unlinkat(from_dir, from_name, AtFlags::empty()).map_err(os)
        }
        result => result.map_err(os),
    }
}

/// The parts of an upload that must be cleaned up if it is abandoned.
pub(super) struct LocalStaged {
    pub(super) file: std::fs::File,
    /// The temporary name in the staging folder (`Replace` mode only).
    pub(super) temp: Option<String>,
    pub(super) target: String,
    pub(super) overwrite: Overwrite,
    pub(super) root: Arc<Dir>,
    pub(super) staging: Arc<Dir>,
    pub(super) beneath: Beneath,
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = self.staging.remove_file(&temp);
        }
    }
}

pub(super) struct LocalUpload {
    pub(super) writer: tokio::fs::File,
    /// The file's length when it was opened.
    pub(super) len_at_start: u64,
    pub(super) staged: Option<LocalStaged>,
}

#[async_trait::async_trait]
impl StagedWrite for LocalUpload {
    fn writer(&mut self) -> &mut dyn FileWriter {
        &mut self.writer
    }

    fn len_at_start(&self) -> u64 {
        self.len_at_start
    }

    async fn set_len(&mut self, len: u64) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        Ok(self.writer.set_len(len).await?)
    }

    async fn sync(&mut self) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        Ok(self.writer.sync_all().await?)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        let Some(mut staged) = self.staged.take() else {
            return Ok(());
        };
        blocking(move || {
            let Some(temp) = staged.temp.take() else {
                return Ok(());
            };
            // The folder is looked up again: the name is placed where the path leads now.
            let moved = staged
                .beneath
                .parent(&*staged.root, &staged.target)
                .and_then(|(dir, name)| {
                    move_into_place(&*staged.staging, &temp, &dir, name, staged.overwrite)
                });
            if let Err(err) = moved {
                let _ = staged.staging.remove_file(&temp);
                return Err(err.into());
            }
            Ok(())
        })
        .await
    }
}
