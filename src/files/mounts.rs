//! Mounts: folders of the site kept on a storage of their own (`[[storage.mounts]]`), seen
//! as one tree. [`Mounts`] is itself a [`Storage`]: each path goes to the backend of the
//! longest mounted prefix (by whole names: `/archive2` is not under `/archive`), rewritten
//! relative to the mount point, and to the root backend otherwise. Nested mounts are
//! supported (the deepest wins).
//!
//! Mount points and the folders above them are folders of the site whatever the backends
//! hold: they are listed (merged with what the backend below lists, without duplicates),
//! their metadata is a folder's, and they can be neither removed nor renamed. A file renamed
//! across mounts is streamed (read on one, written on the other, committed like any upload)
//! and then deleted; a folder cannot move across mounts. Copies inside one backend use its
//! own `copy`; across backends `copy` answers `Unsupported` and the file layer streams.
//! Policy, audit and grants stay above this seam: they see site paths only.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;

use super::storage::{
    Capabilities, DirEntry, EntryChunks, EntryKind, FileReader, Metadata, Overwrite, ReadEntries,
    SpaceInfo, StagedWrite, Storage, StorageError, StorageErrorKind, WriteMode,
};
use crate::path::SitePath;

/// Why a set of mounts cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("the site root / cannot be a mount point (use [storage] url)")]
    Root,
    #[error("{0} is mounted twice")]
    Duplicate(SitePath),
}

/// The root backend and the mounted ones, as one storage.
pub struct Mounts {
    root: Arc<dyn Storage>,
    /// Deepest first: the first that holds a path is its longest mounted prefix.
    mounts: Vec<Mount>,
    /// Every mount point and every folder above one (but `/`), with the names of the virtual
    /// folders directly inside it (`/` included as a key).
    virtual_children: BTreeMap<SitePath, BTreeSet<String>>,
    /// When these mounts were opened: the time shown for virtual folders no backend holds.
    opened: SystemTime,
}

struct Mount {
    at: SitePath,
    storage: Arc<dyn Storage>,
}

/// Where a path goes: which backend (0 = root, i + 1 = the i-th mount) and the path there.
struct Route<'a> {
    backend: usize,
    storage: &'a Arc<dyn Storage>,
    path: SitePath,
}

fn unsupported(detail: String) -> StorageError {
    StorageError::new(StorageErrorKind::Unsupported, detail)
}

impl Mounts {
    /// `root` for `/`, each of `mounts` at its site path (not `/`, each path once).
    pub fn new(
        root: Arc<dyn Storage>,
        mounts: Vec<(SitePath, Arc<dyn Storage>)>,
    ) -> Result<Mounts, MountError> {
        let mut seen = HashSet::new();
        let mut virtual_children: BTreeMap<SitePath, BTreeSet<String>> = BTreeMap::new();
        for (at, _) in &mounts {
            if at.is_root() {
                return Err(MountError::Root);
            }
            if !seen.insert(at.clone()) {
                return Err(MountError::Duplicate(at.clone()));
            }
            virtual_children.entry(at.clone()).or_default();
            let mut below = at.clone();
            while let Some(parent) = below.parent() {
                if let Some(name) = below.file_name() {
                    virtual_children
                        .entry(parent.clone())
                        .or_default()
                        .insert(name.to_owned());
                }
                below = parent;
            }
        }
        let mut mounts: Vec<Mount> = mounts
            .into_iter()
            .map(|(at, storage)| Mount { at, storage })
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.at.segments().count()));
        Ok(Mounts {
            root,
            mounts,
            virtual_children,
            opened: SystemTime::now(),
        })
    }

    fn route(&self, path: &SitePath) -> Route<'_> {
        for (i, mount) in self.mounts.iter().enumerate() {
            if let Some(inside) = path.relative_to(&mount.at) {
                return Route {
                    backend: i + 1,
                    storage: &mount.storage,
                    path: inside,
                };
            }
        }
        Route {
            backend: 0,
            storage: &self.root,
            path: path.clone(),
        }
    }

    /// A mount point or a folder above one (never `/`).
    fn is_virtual(&self, path: &SitePath) -> bool {
        !path.is_root() && self.virtual_children.contains_key(path)
    }

    fn virtual_dir(&self) -> Metadata {
        Metadata {
            kind: EntryKind::Dir,
            len: 0,
            modified: Some(self.opened),
            accessed: None,
        }
    }

    fn fixed(&self, path: &SitePath, what: &str) -> StorageError {
        unsupported(format!(
            "{path} is a mount point or holds one: it cannot be {what}"
        ))
    }

    /// Streams the file `from` (on one backend) to `to` (on another), committed as an
    /// upload: nothing appears at `to` unless all of it was copied.
    async fn stream_across(
        &self,
        from: &Route<'_>,
        to: &Route<'_>,
        overwrite: Overwrite,
    ) -> Result<u64, StorageError> {
        let mut reader = from.storage.open_read(&from.path).await?;
        let mut staged = to
            .storage
            .begin_write(&to.path, WriteMode::Replace, overwrite)
            .await?;
        let bytes = tokio::io::copy(&mut reader, staged.writer()).await?;
        staged.writer().flush().await?;
        staged.commit().await?;
        Ok(bytes)
    }
}

/// A listing of a folder holding virtual folders: those first, then the backend's entries
/// without the names they shadow.
struct Merged {
    first: Option<Vec<DirEntry>>,
    shadowed: HashSet<String>,
    rest: Option<EntryChunks>,
}

#[async_trait::async_trait]
impl ReadEntries for Merged {
    async fn read_more(&mut self) -> Option<Vec<DirEntry>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        let mut chunk = self.rest.as_mut()?.recv().await?;
        chunk.retain(|e| !self.shadowed.contains(&e.name));
        Some(chunk)
    }
}

#[async_trait::async_trait]
impl Storage for Mounts {
    fn is_fixed(&self, path: &SitePath) -> bool {
        self.is_virtual(path)
    }

    fn capabilities(&self, path: &SitePath) -> Capabilities {
        let route = self.route(path);
        route.storage.capabilities(&route.path)
    }

    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError> {
        let route = self.route(path);
        let found = route.storage.metadata(&route.path).await;
        if self.is_virtual(path) {
            // A folder, whatever (if anything) the backend holds there.
            return Ok(match found {
                Ok(meta) if meta.is_dir() => meta,
                _ => self.virtual_dir(),
            });
        }
        found
    }

    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError> {
        let route = self.route(path);
        let listed = route.storage.read_dir_chunks(&route.path).await;
        let Some(names) = self.virtual_children.get(path).filter(|n| !n.is_empty()) else {
            return listed;
        };
        let rest = match listed {
            Ok(chunks) => Some(chunks),
            // A folder only mounts make (the backend has none there): their names alone.
            Err(_) if self.is_virtual(path) => None,
            Err(e) => return Err(e),
        };
        let mut first = Vec::with_capacity(names.len());
        for name in names {
            let child = path
                .join(name)
                .map_err(|e| StorageError::new(StorageErrorKind::InvalidName, e.to_string()))?;
            first.push(DirEntry {
                name: name.clone(),
                metadata: self.metadata(&child).await?,
            });
        }
        Ok(EntryChunks::new(Merged {
            first: Some(first),
            shadowed: names.iter().cloned().collect(),
            rest,
        }))
    }

    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError> {
        if self.is_virtual(path) {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                path.as_str(),
            ));
        }
        let route = self.route(path);
        route.storage.open_read(&route.path).await
    }

    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
        overwrite: Overwrite,
    ) -> Result<Box<dyn StagedWrite>, StorageError> {
        if self.is_virtual(path) {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                path.as_str(),
            ));
        }
        let route = self.route(path);
        route
            .storage
            .begin_write(&route.path, mode, overwrite)
            .await
    }

    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        if self.is_virtual(path) {
            return Err(StorageError::new(
                StorageErrorKind::AlreadyExists,
                path.as_str(),
            ));
        }
        let route = self.route(path);
        route.storage.create_dir(&route.path).await
    }

    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError> {
        if self.is_virtual(path) {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                path.as_str(),
            ));
        }
        let route = self.route(path);
        route.storage.remove_file(&route.path).await
    }

    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        if self.is_virtual(path) {
            return Err(self.fixed(path, "removed"));
        }
        let route = self.route(path);
        route.storage.remove_dir(&route.path).await
    }

    async fn rename(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        if self.is_virtual(from) {
            return Err(self.fixed(from, "renamed"));
        }
        if self.is_virtual(to) {
            return Err(StorageError::new(
                StorageErrorKind::AlreadyExists,
                to.as_str(),
            ));
        }
        let (source, target) = (self.route(from), self.route(to));
        if source.backend == target.backend {
            return source
                .storage
                .rename(&source.path, &target.path, overwrite)
                .await;
        }
        if source.storage.metadata(&source.path).await?.is_dir() {
            return Err(unsupported(format!(
                "{from} is a folder on another mount than {to}: folders cannot move between mounts"
            )));
        }
        self.stream_across(&source, &target, overwrite).await?;
        source.storage.remove_file(&source.path).await.map_err(|e| {
            tracing::warn!(from = %from, to = %to, error = %e, "moved across mounts, but the source could not be removed");
            StorageError::new(
                e.kind,
                format!("copied to {to}, but {from} could not be removed: {}", e.detail),
            )
        })
    }

    async fn set_times(
        &self,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        let route = self.route(path);
        route
            .storage
            .set_times(&route.path, accessed, modified)
            .await
    }

    async fn set_len(&self, path: &SitePath, len: u64) -> Result<(), StorageError> {
        let route = self.route(path);
        route.storage.set_len(&route.path, len).await
    }

    async fn copy(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        if self.is_virtual(from) {
            return Err(StorageError::new(
                StorageErrorKind::IsADirectory,
                from.as_str(),
            ));
        }
        if self.is_virtual(to) {
            return Err(StorageError::new(
                StorageErrorKind::AlreadyExists,
                to.as_str(),
            ));
        }
        let (source, target) = (self.route(from), self.route(to));
        if source.backend != target.backend {
            return Err(unsupported(format!(
                "{from} and {to} are on different mounts: the bytes must be streamed"
            )));
        }
        source
            .storage
            .copy(&source.path, &target.path, overwrite)
            .await
    }

    async fn space(&self, path: &SitePath) -> Result<SpaceInfo, StorageError> {
        let route = self.route(path);
        route.storage.space(&route.path).await
    }
}

#[cfg(test)]
mod tests;
