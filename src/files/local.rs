//! Local-folder storage: the only code in filegate that touches the disk for files.
//!
//! Built on `cap-std`, which resolves every path beneath an open directory handle
//! (`openat2(RESOLVE_BENEATH)` on Linux): `..`, absolute paths and symlinks leading out of
//! the root are refused by the kernel, not by string checks. Symlinks that stay inside the
//! root are followed, except absolute ones (cap-std refuses those too). Uploads in
//! `Replace` mode are written into a sibling temporary folder and renamed into place.
//! cap-std is synchronous: every call runs on the blocking pool.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use super::storage::{
    DirEntry, EntryChunks, EntryKind, FileReader, FileWriter, Metadata, StagedWrite, Storage,
    StorageError, StorageErrorKind, WriteMode,
};
use crate::path::SitePath;

/// Files under one folder of the local disk.
pub struct LocalStorage {
    root: Arc<Dir>,
    staging: Arc<Dir>,
}

impl LocalStorage {
    /// Opens (creating if needed) `root` for files and `staging` for uploads in progress.
    /// Both must be on the same filesystem so that completing an upload is a rename.
    pub fn open(root: &Path, staging: &Path) -> std::io::Result<LocalStorage> {
        std::fs::create_dir_all(root)?;
        std::fs::create_dir_all(staging)?;
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        let staging = Dir::open_ambient_dir(staging, ambient_authority())?;
        // Leftovers of uploads interrupted by a crash are never valid files: clear them.
        for entry in staging.entries()?.flatten() {
            let _ = staging.remove_file(entry.file_name());
        }
        Ok(LocalStorage {
            root: Arc::new(root),
            staging: Arc::new(staging),
        })
    }
}

fn rel(path: &SitePath) -> String {
    if path.is_root() {
        ".".to_owned()
    } else {
        path.relative().to_owned()
    }
}

fn convert(meta: &cap_std::fs::Metadata) -> Metadata {
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

/// A file open for reading. `AsyncRead`/`AsyncSeek` are tokio's; `read_chunk` reads with
/// one blocking call straight into the buffer it returns (tokio's `File` reads into a buffer
/// of its own and copies from it), which is what makes a large GET or download cheap.
struct LocalReader {
    /// `None` only while a `read_chunk` has the file on the blocking pool.
    file: Option<tokio::fs::File>,
    /// Set once `poll_read` was used: tokio may then hold read-ahead bytes, so `read_chunk`
    /// must go through it too.
    streamed: bool,
}

impl LocalReader {
    fn file(&mut self) -> io::Result<&mut tokio::fs::File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file lost by an interrupted read"))
    }
}

impl tokio::io::AsyncRead for LocalReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.streamed = true;
        match self.file() {
            Ok(file) => std::pin::Pin::new(file).poll_read(cx, buf),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

impl tokio::io::AsyncSeek for LocalReader {
    fn start_seek(mut self: std::pin::Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        std::pin::Pin::new(self.file()?).start_seek(position)
    }
    fn poll_complete(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<u64>> {
        match self.file() {
            Ok(file) => std::pin::Pin::new(file).poll_complete(cx),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

#[async_trait::async_trait]
impl FileReader for LocalReader {
    async fn read_chunk(&mut self, max: usize) -> io::Result<bytes::Bytes> {
        if self.streamed {
            return super::storage::read_chunk_via_async_read(self, max).await;
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("file lost"))?;
        // Fails only while tokio still has an operation of its own in flight.
        let std_file = match file.try_into_std() {
            Ok(f) => f,
            Err(file) => {
                self.file = Some(file);
                return super::storage::read_chunk_via_async_read(self, max).await;
            }
        };
        let (std_file, read) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = Vec::with_capacity(max);
            let read = (&std_file)
                .take(max as u64)
                .read_to_end(&mut buf)
                .map(|_| buf);
            (std_file, read)
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(tokio::fs::File::from_std(std_file));
        Ok(bytes::Bytes::from(read?))
    }
}

/// One listed entry: one fstatat on the open folder for plain entries; links followed only
/// while they stay inside the root (links out, dangling links and names that are not
/// UTF-8, which no client could name, are left out).
fn entry_of(dir: &Dir, entry: std::io::Result<cap_std::fs::DirEntry>) -> Option<DirEntry> {
    let entry = entry.ok()?;
    let name = entry.file_name().into_string().ok()?;
    let meta = match entry.file_type() {
        Ok(kind) if !kind.is_symlink() => entry.metadata(),
        _ => dir.metadata(&name),
    };
    Some(DirEntry {
        metadata: convert(&meta.ok()?),
        name,
    })
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || Ok(convert(&root.metadata(&p)?))).await
    }

    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError> {
        const CHUNK: usize = 256;
        let (root, p) = (self.root.clone(), rel(path));
        let (dir, entries) = blocking(move || {
            let dir = root.open_dir(&p)?;
            let entries = dir.entries()?;
            Ok((dir, entries))
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for entry in entries {
                chunk.extend(entry_of(&dir, entry));
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.blocking_send(full).is_err() {
                        return; // the reader went away
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.blocking_send(chunk);
            }
        });
        Ok(rx)
    }

    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        let file = blocking(move || {
            let file = root.open(&p)?;
            if file.metadata()?.is_dir() {
                return Err(StorageError::new(StorageErrorKind::IsADirectory, p));
            }
            Ok(file.into_std())
        })
        .await?;
        Ok(Box::new(LocalReader {
            file: Some(tokio::fs::File::from_std(file)),
            streamed: false,
        }))
    }

    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
    ) -> Result<Box<dyn StagedWrite>, StorageError> {
        let (root, staging, p) = (self.root.clone(), self.staging.clone(), rel(path));
        let staged = blocking(move || {
            match root.metadata(&p) {
                Ok(meta) if meta.is_dir() => {
                    return Err(StorageError::new(StorageErrorKind::IsADirectory, p));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // The folder it goes into must exist (and be inside the root).
                    let parent = Path::new(&p)
                        .parent()
                        .map(|d| d.to_string_lossy().into_owned());
                    let parent = parent
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| ".".into());
                    if !root.metadata(&parent)?.is_dir() {
                        return Err(StorageError::new(StorageErrorKind::NotADirectory, parent));
                    }
                }
                Err(e) => return Err(e.into()),
            }
            match mode {
                WriteMode::Replace => {
                    let temp = format!("upload-{}", crate::secret::random_hex(12));
                    let file = staging
                        .open_with(&temp, OpenOptions::new().write(true).create_new(true))?;
                    Ok(LocalStaged {
                        file: file.into_std(),
                        temp: Some(temp),
                        target: p,
                        root,
                        staging,
                    })
                }
                WriteMode::Append | WriteMode::Update => {
                    let mut options = OpenOptions::new();
                    options.write(true).create(true);
                    if mode == WriteMode::Append {
                        options.append(true);
                    }
                    let file = root.open_with(&p, &options)?;
                    Ok(LocalStaged {
                        file: file.into_std(),
                        temp: None,
                        target: p,
                        root,
                        staging,
                    })
                }
            }
        })
        .await?;
        Ok(Box::new(LocalUpload {
            writer: tokio::fs::File::from_std(staged.file.try_clone()?),
            staged: Some(staged),
        }))
    }

    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || Ok(root.create_dir(&p)?)).await
    }

    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || {
            if root.symlink_metadata(&p)?.is_dir() {
                return Err(StorageError::new(StorageErrorKind::IsADirectory, p));
            }
            Ok(root.remove_file(&p)?)
        })
        .await
    }

    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || Ok(root.remove_dir(&p)?)).await
    }

    async fn rename(&self, from: &SitePath, to: &SitePath) -> Result<(), StorageError> {
        let (root, f, t) = (self.root.clone(), rel(from), rel(to));
        blocking(move || Ok(root.rename(&f, &root, &t)?)).await
    }

    async fn set_times(
        &self,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || {
            let file = if root.metadata(&p)?.is_dir() {
                root.open_dir(&p)?.into_std_file()
            } else {
                root.open(&p)?.into_std()
            };
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
        let (root, p) = (self.root.clone(), rel(path));
        blocking(move || {
            let file = root.open_with(&p, OpenOptions::new().write(true))?;
            Ok(file.set_len(len)?)
        })
        .await
    }
}

/// The parts of an upload that must be cleaned up if it is abandoned.
struct LocalStaged {
    file: std::fs::File,
    /// The temporary name in the staging folder (`Replace` mode only).
    temp: Option<String>,
    target: String,
    root: Arc<Dir>,
    staging: Arc<Dir>,
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = self.staging.remove_file(&temp);
        }
    }
}

struct LocalUpload {
    writer: tokio::fs::File,
    staged: Option<LocalStaged>,
}

#[async_trait::async_trait]
impl StagedWrite for LocalUpload {
    fn writer(&mut self) -> &mut dyn FileWriter {
        &mut self.writer
    }

    async fn set_len(&mut self, len: u64) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        Ok(self.writer.set_len(len).await?)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        let Some(mut staged) = self.staged.take() else {
            return Ok(());
        };
        blocking(move || {
            if let Some(temp) = staged.temp.take() {
                let moved = staged.staging.rename(&temp, &staged.root, &staged.target);
                if let Err(err) = moved {
                    let _ = staged.staging.remove_file(&temp);
                    return Err(err.into());
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
