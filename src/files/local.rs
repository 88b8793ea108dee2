//! Local-folder storage: the only code in filegate that touches the disk for files.
//!
//! Every path is resolved by the kernel beneath the open root folder ([`beneath`]:
//! `openat2(RESOLVE_BENEATH)`), never by string checks: `..`, absolute paths and links
//! leading out of the root fail. By default no symlink is followed at all, in any component
//! (`RESOLVE_NO_SYMLINKS`, final components `O_NOFOLLOW`), and listings leave symlinks out;
//! `server.follow_symlinks = true` follows those that stay beneath the root. Writes that may
//! not replace (a principal that may only create) are atomic: in-place files are created
//! with `O_CREAT|O_EXCL`, staged ones moved into place with `RENAME_NOREPLACE`, renames
//! likewise. Uploads in `Replace` mode, and copies (made by the kernel, `copy`), are written
//! into a sibling temporary folder and renamed into place. The calls are synchronous: every one runs on the blocking pool.

mod beneath;
mod copy;
mod reader;
mod upload;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use rustix::fs::{AtFlags, OFlags};
use rustix::io::Errno;

pub use beneath::Symlinks;
use beneath::{Beneath, open_regular};
use reader::LocalReader;
use upload::{LocalStaged, LocalUpload, move_into_place};

use super::storage::{
    Capabilities, DirEntry, EntryChunks, EntryKind, FileReader, Metadata, Overwrite, ReadEntries,
    SpaceInfo, StagedWrite, Storage, StorageError, StorageErrorKind, WriteMode,
};
use crate::path::SitePath;

/// Files under one folder of the local disk.
pub struct LocalStorage {
    root: Arc<Dir>,
    staging: Arc<Dir>,
    beneath: Beneath,
}

impl LocalStorage {
    /// Opens (creating if needed) `root` for files and `staging` for uploads in progress.
    /// Both must be on the same filesystem so that completing an upload is a rename.
    /// Symlinks are not followed (see [`LocalStorage::with_symlinks`]).
    pub fn open(root: &Path, staging: &Path) -> std::io::Result<LocalStorage> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(root)?;
        std::fs::create_dir_all(staging)?;
        if std::fs::metadata(root)?.dev() != std::fs::metadata(staging)?.dev() {
            return Err(io::Error::other(format!(
                "its staging folder {} is on another filesystem: uploads are moved into place by renaming, which cannot cross filesystems (put data_dir on the storage's filesystem)",
                staging.display()
            )));
        }
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        let staging = Dir::open_ambient_dir(staging, ambient_authority())?;
        let beneath = Beneath {
            symlinks: Symlinks::Refuse,
        };
        beneath.probe(&root)?;
        // Leftovers of uploads interrupted by a crash are cleared by the serving process's
        // claim on the folder (`files::staging`), not here: an admin command opens the
        // storage beside a running server.
        Ok(LocalStorage {
            root: Arc::new(root),
            staging: Arc::new(staging),
            beneath,
        })
    }

    /// Whether symlinks inside the root are followed (`server.follow_symlinks`).
    pub fn with_symlinks(mut self, symlinks: Symlinks) -> LocalStorage {
        self.beneath.symlinks = symlinks;
        self
    }
}

fn rel(path: &SitePath) -> String {
    if path.is_root() {
        ".".to_owned()
    } else {
        path.relative().to_owned()
    }
}

fn convert(meta: &std::fs::Metadata) -> Metadata {
    Metadata {
        kind: if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        len: if meta.is_dir() { 0 } else { meta.len() },
        modified: meta.modified().ok(),
        accessed: meta.accessed().ok(),
    }
}

fn convert_cap(meta: &cap_std::fs::Metadata) -> Metadata {
    Metadata {
        kind: if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        len: if meta.is_dir() { 0 } else { meta.len() },
        modified: meta.modified().ok().map(|t| t.into_std()),
        accessed: meta.accessed().ok().map(|t| t.into_std()),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::new(StorageErrorKind::Other, e.to_string()))?
}

/// One listed entry: one fstatat on the open folder. Symlinks are left out unless they are
/// followed (then stat'ed through the root, so a link out of it is left out too), and so are
/// special files and names that are not UTF-8 (no client could name them).
fn entry_of(listing: &Listing, entry: std::io::Result<cap_std::fs::DirEntry>) -> Option<DirEntry> {
    let entry = entry.ok()?;
    let name = entry.file_name().into_string().ok()?;
    let kind = entry.file_type().ok()?;
    let metadata = if kind.is_symlink() {
        if listing.beneath.symlinks == Symlinks::Refuse {
            return None;
        }
        let target = if listing.folder == "." {
            name.clone()
        } else {
            format!("{}/{name}", listing.folder)
        };
        let meta = listing.beneath.metadata(&*listing.root, &target).ok()?;
        if !(meta.is_file() || meta.is_dir()) {
            return None;
        }
        convert(&meta)
    } else if kind.is_file() || kind.is_dir() {
        convert_cap(&entry.metadata().ok()?)
    } else {
        return None;
    };
    Some(DirEntry { metadata, name })
}

/// What listing a folder needs besides its directory stream.
struct Listing {
    root: Arc<Dir>,
    folder: String,
    beneath: Beneath,
}

/// Raw entries read per step on the blocking pool (fewer are kept when some are left out).
const LIST_STEP: usize = 256;

/// An open directory stream and what its entries are read with.
type OpenListing = Box<(cap_std::fs::ReadDir, Listing)>;

/// A folder being listed, one step at a time: each `read_more` moves the stream onto the
/// blocking pool for one short step of at most [`LIST_STEP`] entries and back. Between
/// steps no thread is held, however long the caller pauses.
struct LocalEntries {
    state: Reading,
}

enum Reading {
    Paused(OpenListing),
    /// A step in progress; a cancelled `read_more` leaves it here for the next one.
    Step(tokio::task::JoinHandle<(Vec<DirEntry>, Option<OpenListing>)>),
    Ended,
}

/// One step: the next entries of the stream, and the stream unless it ended.
fn list_step(mut open: OpenListing) -> (Vec<DirEntry>, Option<OpenListing>) {
    let (entries, listing) = &mut *open;
    let mut chunk = Vec::new();
    for _ in 0..LIST_STEP {
        match entries.next() {
            Some(entry) => chunk.extend(entry_of(listing, entry)),
            None => return (chunk, None),
        }
    }
    (chunk, Some(open))
}

#[async_trait::async_trait]
impl ReadEntries for LocalEntries {
    async fn read_more(&mut self) -> Option<Vec<DirEntry>> {
        self.state = match std::mem::replace(&mut self.state, Reading::Ended) {
            Reading::Paused(open) => {
                Reading::Step(tokio::task::spawn_blocking(move || list_step(open)))
            }
            other => other,
        };
        let Reading::Step(step) = &mut self.state else {
            return None;
        };
        let done = step.await;
        self.state = Reading::Ended;
        // A step that panicked ends the listing (its entries are lost, as unreadable ones).
        let (chunk, rest) = done.ok()?;
        if let Some(open) = rest {
            self.state = Reading::Paused(open);
        }
        Some(chunk)
    }
}

/// The `io::Error` of a rustix call.
fn os(err: Errno) -> io::Error {
    io::Error::from(err)
}

impl LocalStorage {
    fn parts(&self, path: &SitePath) -> (Arc<Dir>, Beneath, String) {
        (self.root.clone(), self.beneath, rel(path))
    }
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    fn capabilities(&self, _path: &SitePath) -> Capabilities {
        Capabilities::ALL
    }

    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || Ok(convert(&beneath.metadata(&*root, &p)?))).await
    }

    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError> {
        let (root, beneath, p) = self.parts(path);
        let open = blocking(move || {
            let fd = beneath.open(&*root, &p, OFlags::RDONLY | OFlags::DIRECTORY, 0)?;
            // The stream has a descriptor of its own (the folder's is closed here): one
            // descriptor per listing in progress.
            let entries = Dir::from_std_file(std::fs::File::from(fd)).entries()?;
            let listing = Listing {
                root,
                folder: p,
                beneath,
            };
            Ok(Box::new((entries, listing)))
        })
        .await?;
        Ok(EntryChunks::new(LocalEntries {
            state: Reading::Paused(open),
        }))
    }

    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError> {
        let (root, beneath, p) = self.parts(path);
        let file =
            blocking(move || Ok(open_regular(&beneath, &*root, &p, OFlags::RDONLY, 0)?)).await?;
        Ok(Box::new(LocalReader {
            file: Some(tokio::fs::File::from_std(file)),
            streamed: false,
        }))
    }

    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
        overwrite: Overwrite,
    ) -> Result<Box<dyn StagedWrite>, StorageError> {
        let (root, beneath, p) = self.parts(path);
        let staging = self.staging.clone();
        let (staged, len_at_start) = blocking(move || {
            match beneath.metadata(&*root, &p) {
                Ok(meta) if meta.is_dir() => {
                    return Err(StorageError::new(StorageErrorKind::IsADirectory, p));
                }
                // Fail before the bytes are sent; the commit re-checks atomically. (In-place
                // modes rely on O_EXCL alone.)
                Ok(_) if overwrite == Overwrite::Refuse && mode == WriteMode::Replace => {
                    return Err(StorageError::new(StorageErrorKind::AlreadyExists, p));
                }
                Ok(_) => {}
                // The folder it goes into must exist (and be reachable beneath the root).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    beneath.parent(&*root, &p)?;
                }
                Err(e) => return Err(e.into()),
            }
            let file = match mode {
                WriteMode::Replace => {
                    let temp = format!("upload-{}", crate::secret::random_hex(12));
                    let file = staging
                        .open_with(&temp, OpenOptions::new().write(true).create_new(true))?;
                    let staged = LocalStaged {
                        file: file.into_std(),
                        temp: Some(temp),
                        target: p,
                        overwrite,
                        root,
                        staging,
                        beneath,
                    };
                    return Ok((staged, 0)); // a new, empty file
                }
                WriteMode::Append | WriteMode::Update => {
                    let mut flags = OFlags::WRONLY | OFlags::CREATE;
                    if overwrite == Overwrite::Refuse {
                        flags |= OFlags::EXCL; // never opens a file someone else made
                    }
                    if mode == WriteMode::Append {
                        flags |= OFlags::APPEND;
                    }
                    open_regular(&beneath, &*root, &p, flags, 0o666)?
                }
            };
            let len = file.metadata()?.len();
            let staged = LocalStaged {
                file,
                temp: None,
                target: p,
                overwrite,
                root,
                staging,
                beneath,
            };
            Ok((staged, len))
        })
        .await?;
        Ok(Box::new(LocalUpload {
            writer: tokio::fs::File::from_std(staged.file.try_clone()?),
            len_at_start,
            staged: Some(staged),
        }))
    }

    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            let (parent, name) = beneath.parent(&*root, &p)?;
            rustix::fs::mkdirat(&parent, name, rustix::fs::Mode::from_raw_mode(0o777))
                .map_err(os)?;
            Ok(())
        })
        .await
    }

    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            let (parent, name) = beneath.parent(&*root, &p)?;
            let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(os)?;
            let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
            if kind == rustix::fs::FileType::Directory {
                return Err(StorageError::new(StorageErrorKind::IsADirectory, p));
            }
            if kind == rustix::fs::FileType::Symlink && beneath.symlinks == Symlinks::Refuse {
                return Err(StorageError::new(StorageErrorKind::NotFound, p));
            }
            rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(os)?;
            Ok(())
        })
        .await
    }

    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            let (parent, name) = beneath.parent(&*root, &p)?;
            rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(os)?;
            Ok(())
        })
        .await
    }

    async fn rename(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        let (root, beneath, f) = self.parts(from);
        let t = rel(to);
        blocking(move || {
            let (from_dir, from_name) = beneath.parent(&*root, &f)?;
            let (to_dir, to_name) = beneath.parent(&*root, &t)?;
            if beneath.symlinks == Symlinks::Refuse {
                let stat = rustix::fs::statat(&from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(os)?;
                if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                    == rustix::fs::FileType::Symlink
                {
                    return Err(StorageError::new(StorageErrorKind::NotFound, f));
                }
            }
            move_into_place(&from_dir, from_name, &to_dir, to_name, overwrite)?;
            Ok(())
        })
        .await
    }

    async fn set_times(
        &self,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            // Files and folders alike open read-only; a special file is never opened.
            let fd = beneath.open(&*root, &p, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
            let file = std::fs::File::from(fd);
            let meta = file.metadata()?;
            if !(meta.is_file() || meta.is_dir()) {
                return Err(StorageError::new(StorageErrorKind::PermissionDenied, p));
            }
            let mut times = std::fs::FileTimes::new();
            if let Some(t) = accessed {
                times = times.set_accessed(t);
            }
            if let Some(t) = modified {
                times = times.set_modified(t);
            }
            Ok(file.set_times(times)?)
        })
        .await
    }

    async fn set_len(&self, path: &SitePath, len: u64) -> Result<(), StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            let file = open_regular(&beneath, &*root, &p, OFlags::WRONLY, 0)?;
            Ok(file.set_len(len)?)
        })
        .await
    }

    async fn copy(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        let (root, beneath, f) = self.parts(from);
        let t = rel(to);
        let staging = self.staging.clone();
        blocking(move || copy::copy_file(&root, &staging, beneath, &f, &t, overwrite)).await
    }

    async fn space(&self, path: &SitePath) -> Result<SpaceInfo, StorageError> {
        let (root, beneath, p) = self.parts(path);
        blocking(move || {
            // Resolved beneath the root like every other path, then asked through its
            // descriptor (a path string would be resolved by the kernel from `/`).
            let fd = beneath.open(&*root, &p, OFlags::PATH, 0)?;
            let vfs = rustix::fs::fstatvfs(&fd).map_err(os)?;
            Ok(SpaceInfo {
                block_size: vfs.f_bsize,
                fragment_size: vfs.f_frsize,
                blocks: vfs.f_blocks,
                blocks_free: vfs.f_bfree,
                blocks_available: vfs.f_bavail,
                files: vfs.f_files,
                files_free: vfs.f_ffree,
                files_available: vfs.f_favail,
                fs_id: vfs.f_fsid,
                read_only: vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
                name_max: vfs.f_namemax,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests;
