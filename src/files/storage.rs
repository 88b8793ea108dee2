//! The storage seam: what the file layer needs from a place that keeps bytes.
//!
//! Implementations receive only normalised [`SitePath`]s, after the policy check; they must
//! never touch anything outside their own root, whatever the path or the links inside.
//! Errors carry a [`StorageErrorKind`] that the file layer maps to exactly one outcome.

use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite};

use crate::path::SitePath;

/// File or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// Attributes of a file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: EntryKind,
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub accessed: Option<SystemTime>,
}

impl Metadata {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub metadata: Metadata,
}

/// What went wrong in storage, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// The OS refused (including an attempt to leave the storage root).
    PermissionDenied,
    /// A name the filesystem cannot hold (too long, invalid).
    InvalidName,
    NoSpace,
    /// This storage cannot do that (see [`Capabilities`]): answered as "not supported",
    /// before anything was changed.
    Unsupported,
    Other,
}

/// A storage failure: its kind, and details for the log.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub detail: String,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, detail: impl Into<String>) -> Self {
        StorageError {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => StorageErrorKind::NotFound,
            K::AlreadyExists => StorageErrorKind::AlreadyExists,
            K::NotADirectory => StorageErrorKind::NotADirectory,
            K::IsADirectory => StorageErrorKind::IsADirectory,
            K::DirectoryNotEmpty => StorageErrorKind::DirectoryNotEmpty,
            K::PermissionDenied => StorageErrorKind::PermissionDenied,
            K::InvalidFilename | K::InvalidInput => StorageErrorKind::InvalidName,
            K::StorageFull | K::QuotaExceeded => StorageErrorKind::NoSpace,
            K::Unsupported => StorageErrorKind::Unsupported,
            _ => match err.raw_os_error() {
                Some(40) /* ELOOP */ | Some(18) /* EXDEV */ => StorageErrorKind::PermissionDenied,
                _ => StorageErrorKind::Other,
            },
        };
        StorageError {
            kind,
            detail: err.to_string(),
        }
    }
}

/// An open file to read from, at any offset.
#[async_trait::async_trait]
pub trait FileReader: AsyncRead + AsyncSeek + Send + Sync + Unpin {
    /// Up to `max` bytes from the current position (fewer only at the end of the file), in
    /// a buffer the caller keeps: the path of large downloads. The default reads through
    /// `AsyncRead`; a storage may do it with fewer copies.
    async fn read_chunk(&mut self, max: usize) -> std::io::Result<bytes::Bytes> {
        read_chunk_via_async_read(self, max).await
    }

    /// The optional fast path of a storage that keeps files on the local disk: the open
    /// file's descriptor and the position reading continues from, so that a caller may send
    /// the bytes with `sendfile(2)` (no copy through user space). `None` (the default) when
    /// the storage has no such file, or when buffered reads have run ahead of the position.
    fn local_source(&mut self) -> Option<LocalSource<'_>> {
        None
    }
}

/// A local file to send from: see [`FileReader::local_source`].
pub struct LocalSource<'a> {
    pub fd: std::os::fd::BorrowedFd<'a>,
    /// Where reading continues (a `REST` offset or range start, once seeked).
    pub pos: u64,
}

/// `FileReader::read_chunk` through `AsyncRead` (into uninitialised memory, no zeroing).
pub async fn read_chunk_via_async_read<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<bytes::Bytes> {
    use tokio::io::AsyncReadExt;
    let mut buf = bytes::BytesMut::with_capacity(max);
    while buf.len() < max {
        if reader.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// An open file to write to, at any offset.
pub trait FileWriter: AsyncWrite + AsyncSeek + Send + Unpin {}
impl<T: AsyncWrite + AsyncSeek + Send + Unpin> FileWriter for T {}

/// How an upload treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Write a new file (replacing any old one) under a temporary name, moved into place on
    /// commit: an interrupted upload never leaves a truncated file behind.
    Replace,
    /// Append to the file (created if missing), in place.
    Append,
    /// Write at offsets into the existing file (created if missing), in place, without
    /// truncating it: resumed uploads.
    Update,
}

/// Whether a write may replace or change a file that already exists at its path.
///
/// `Refuse` is what a principal that may only create gets (and what a caller asking for
/// "new file only" gets): the storage must then create atomically — an in-place file with
/// `O_CREAT|O_EXCL`, a staged one moved into place without replacing anything — so that a
/// file someone else creates meanwhile is never overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Allow,
    Refuse,
}

impl Overwrite {
    /// `Allow` when the caller may replace, `Refuse` otherwise.
    pub fn from_right(may_replace: bool) -> Overwrite {
        if may_replace {
            Overwrite::Allow
        } else {
            Overwrite::Refuse
        }
    }
}

/// An upload in progress.
#[async_trait::async_trait]
pub trait StagedWrite: Send {
    fn writer(&mut self) -> &mut dyn FileWriter;
    /// The file's length when it was opened: 0 for a `Replace` upload (a new file), the
    /// existing length for the in-place modes.
    fn len_at_start(&self) -> u64;
    /// Truncates or extends the file being written.
    async fn set_len(&mut self, len: u64) -> Result<(), StorageError>;
    /// Flushes and puts the file in place. Dropping without commit discards a `Replace`
    /// upload. With [`Overwrite::Refuse`], a file that appeared under the name meanwhile
    /// makes it fail with `AlreadyExists` and stay untouched.
    async fn commit(self: Box<Self>) -> Result<(), StorageError>;
    /// Flushes what was written and makes it durable where it is now (for a `Replace`
    /// upload: its staging file), before the caller moves on (SFTP `fsync@openssh.com`).
    async fn sync(&mut self) -> Result<(), StorageError>;
}

/// What a storage reads a folder with: the next few entries at each call.
#[async_trait::async_trait]
pub trait ReadEntries: Send {
    /// The next entries read, possibly none (when all those read were left out); `None` at
    /// the end. Nothing may run between calls: a caller that pauses holds no thread.
    /// Cancelling a call must lose no entry (the next call picks up the same read).
    async fn read_more(&mut self) -> Option<Vec<DirEntry>>;
}

/// A folder's entries in chunks, as they are read (in no particular order). Each chunk is
/// read when asked for, so a listing the caller leaves unread holds one open folder and
/// no thread, and its memory stays at one chunk.
pub struct EntryChunks {
    source: Box<dyn ReadEntries>,
}

impl EntryChunks {
    pub fn new(source: impl ReadEntries + 'static) -> EntryChunks {
        EntryChunks {
            source: Box::new(source),
        }
    }

    /// The next entries (never an empty chunk); `None` at the end. Names no client path can
    /// name are left out, whatever the backend holds: empty, `.`/`..`, with a `/`, or with a
    /// control character (a `\r\n` in a name would forge lines of an FTP listing).
    pub async fn recv(&mut self) -> Option<Vec<DirEntry>> {
        loop {
            let mut chunk = self.source.read_more().await?;
            chunk.retain(|entry| listable(&entry.name));
            if !chunk.is_empty() {
                return Some(chunk);
            }
        }
    }
}

/// Whether a folder entry's name can be shown to clients (see [`EntryChunks::recv`]).
pub fn listable(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod listable_tests {
    use super::listable;

    #[test]
    fn names_no_client_path_can_name_are_not_listed() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "evil\r\n-rw-r--r-- FAKE",
            "ctl\u{1}",
            "del\u{7f}",
            "nl\u{85}",
        ] {
            assert!(!listable(bad), "{bad:?}");
        }
        for good in ["a", "...", "é t+%.txt", ".hidden"] {
            assert!(listable(good), "{good:?}");
        }
    }
}

/// Space on the storage holding a path, as `statvfs(3)` reports it (counts in fragments
/// of `fragment_size` bytes; inodes as files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceInfo {
    pub block_size: u64,
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub files_available: u64,
    pub fs_id: u64,
    pub read_only: bool,
    pub name_max: u64,
}

/// What a storage can do beyond creating, reading, listing, renaming files and removing
/// things. The file layer checks these before it starts, so that an operation a backend
/// cannot do is answered "not supported" (SFTP `SSH_FX_OP_UNSUPPORTED`, FTP 502, HTTP 501)
/// instead of failing half way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Writes at any offset of an upload (in-place updates, resumed uploads, out-of-order
    /// SFTP writes beyond what the backend buffers).
    pub random_write: bool,
    /// Appending to an existing file in place.
    pub append: bool,
    /// Renaming a folder with what it holds.
    pub rename_dir: bool,
    /// Renaming a file as one atomic step (rather than copy then delete).
    pub atomic_rename: bool,
    /// Copying a file inside the storage without streaming it through this process.
    pub server_copy: bool,
    /// Setting a file's access/modification times.
    pub set_times: bool,
    /// Truncating or extending an existing file.
    pub set_len: bool,
}

impl Capabilities {
    /// A POSIX filesystem: everything.
    pub const ALL: Capabilities = Capabilities {
        random_write: true,
        append: true,
        rename_dir: true,
        atomic_rename: true,
        server_copy: true,
        set_times: true,
        set_len: true,
    };
}

/// A place that keeps files.
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Whether `path` is fixed by the configuration: a mount point or a folder above one
    /// (never removed, renamed or replaced, and nothing below it may be removed as part of
    /// removing it). `false` for a single backend (the default).
    fn is_fixed(&self, path: &SitePath) -> bool {
        let _ = path;
        false
    }
    /// What this storage can do at `path` (see [`Capabilities`]; a storage made of mounts
    /// answers for the backend that holds `path`).
    fn capabilities(&self, path: &SitePath) -> Capabilities;
    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError>;
    /// A folder's entries in chunks, each read when the caller asks for it: bounded memory,
    /// and no thread held while the caller pauses. Failing to open the folder is an error
    /// at once; an entry that cannot be read is left out.
    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError>;
    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError>;
    /// Starts writing `path`. With [`Overwrite::Refuse`], an existing file is never changed:
    /// in-place modes create the file exclusively, `Replace` commits without replacing.
    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
        overwrite: Overwrite,
    ) -> Result<Box<dyn StagedWrite>, StorageError>;
    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError>;
    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError>;
    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError>;
    /// Moves `from` to `to`; with [`Overwrite::Refuse`] atomically refuses (`AlreadyExists`)
    /// when something exists at `to`, however recently it appeared.
    async fn rename(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError>;
    async fn set_times(
        &self,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> Result<(), StorageError>;
    async fn set_len(&self, path: &SitePath, len: u64) -> Result<(), StorageError>;
    /// Copies the file `from` to `to` inside the storage (no bytes through this process
    /// where the backend can avoid it); with [`Overwrite::Refuse`] refuses (`AlreadyExists`)
    /// when something exists at `to`. Storages without `server_copy` answer `Unsupported`
    /// (the default) and the caller streams the bytes itself.
    async fn copy(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        let _ = (from, to, overwrite);
        Err(StorageError::new(
            StorageErrorKind::Unsupported,
            "this storage cannot copy files itself",
        ))
    }
    /// The space of the storage that holds `path` (which must exist). A storage without
    /// such a notion says so (the default); one with quotas may answer with the quota.
    async fn space(&self, path: &SitePath) -> Result<SpaceInfo, StorageError> {
        let _ = path;
        Err(StorageError::new(
            StorageErrorKind::Other,
            "this storage does not report its space",
        ))
    }
}
