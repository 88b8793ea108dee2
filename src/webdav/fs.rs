//! dav-server's `GuardedFileSystem` over the file layer: every WebDAV request is checked and
//! audited in `files::Files` with the caller's principal (the `C` of `GuardedFileSystem<C>`).
//! Dead properties live in the store, at most [`MAX_PROPS`] per resource of at most
//! [`MAX_PROP_BYTES`] each; a PROPPATCH that would go beyond is answered 507 and stores
//! nothing. dav-server's `LocalFs` is never used (it follows symlinks out of its root).

use std::collections::HashSet;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use bytes::{Buf, Bytes};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError as DavError, FsFuture, FsResult, FsStream,
    GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::status::dav_error;
use crate::files::{Download, EntryKind, Files, FsError, Metadata, Upload, WriteMode};
use crate::identity::{Access, Principal};
use crate::path::SitePath;
use crate::store::{PropRecord, Store};

/// The caller, as dav-server hands it back on every call.
pub type Caller = Arc<Principal>;

/// The WebDAV view of the file layer.
#[derive(Clone)]
pub struct FilesDav {
    pub files: Arc<Files>,
    pub store: Store,
    /// Which paths have dead properties, so that a PROPFIND over 10 000 entries does not
    /// ask the store 10 000 times (the store stays the durable truth).
    props: Arc<PropIndex>,
}

/// Paths with dead properties, as of the store's `dav_props` change counter. Another
/// replica's change moves the counter; it is read at most once per `RECHECK`.
struct PropIndex {
    /// The counter the paths were read at; held while the index is re-read.
    version: tokio::sync::Mutex<Option<i64>>,
    /// When the counter was last read.
    checked: Mutex<Option<Instant>>,
    paths: std::sync::RwLock<HashSet<String>>,
}

// Only reads and assignments happen under these locks (nothing that panics); a poisoned
// lock is taken back all the same, so that one panicking request cannot fail the others.
impl PropIndex {
    fn fresh(&self) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < RECHECK)
    }

    fn contains(&self, path: &str) -> bool {
        self.paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(path)
    }

    fn is_empty(&self) -> bool {
        self.paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// How stale a replica's index may be when another replica changes properties.
const RECHECK: Duration = Duration::from_secs(1);

impl FilesDav {
    pub fn new(files: Arc<Files>, store: Store) -> FilesDav {
        FilesDav {
            files,
            store,
            props: Arc::new(PropIndex {
                version: tokio::sync::Mutex::default(),
                checked: Mutex::default(),
                paths: std::sync::RwLock::default(),
            }),
        }
    }

    /// Re-reads the index if the store's counter moved (`force`: whatever the time since
    /// the last check; after this process's own changes).
    async fn refresh_index(&self, force: bool) {
        let mut version = self.props.version.lock().await;
        if !force && self.props.fresh() {
            return;
        }
        let Ok(current) = self.store.counter(Store::PROPS_COUNTER).await else {
            return; // keep the last index; values are always read from the store
        };
        *self
            .props
            .checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if *version == Some(current) {
            return;
        }
        if let Ok(paths) = self.store.prop_paths().await {
            *self
                .props
                .paths
                .write()
                .unwrap_or_else(PoisonError::into_inner) = paths.into_iter().collect();
            *version = Some(current);
        }
    }

    /// Whether `who` may see properties of `path` and it has some.
    fn may_have_props(&self, path: &DavPath, who: &Caller) -> bool {
        if self.props.is_empty() {
            return false; // the common case, asked once per listed entry
        }
        let Ok(path) = site(path) else { return false };
        self.props.contains(path.as_str()) && self.files.authorize(who, &path, Access::LIST).is_ok()
    }
}

pub(super) fn site(path: &DavPath) -> FsResult<SitePath> {
    SitePath::resolve_bytes(&SitePath::root(), path.as_bytes())
        .map_err(|e| dav_error(&FsError::InvalidPath(e)))
}

fn fail(err: FsError) -> DavError {
    dav_error(&err)
}

#[derive(Debug, Clone)]
struct Meta(Metadata);

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.0.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        self.0.modified.ok_or(DavError::GeneralFailure)
    }
    fn is_dir(&self) -> bool {
        self.0.is_dir()
    }
}

struct Entry {
    name: String,
    meta: Metadata,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(Meta(self.meta.clone()));
        futures_util::future::ready(Ok(meta)).boxed()
    }
}

/// An open file: a download, or an upload that takes its real name on flush.
enum Open {
    Reading(Download, Metadata),
    Writing(Mutex<Option<Upload>>, u64),
}

struct DavHandle(Open);

impl std::fmt::Debug for DavHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DavHandle")
    }
}

impl DavHandle {
    fn upload(&mut self) -> FsResult<&mut Upload> {
        match &mut self.0 {
            Open::Writing(upload, _) => upload
                .get_mut()
                .map_err(|_| DavError::GeneralFailure)?
                .as_mut()
                .ok_or(DavError::GeneralFailure),
            Open::Reading(..) => Err(DavError::Forbidden),
        }
    }
}

impl DavFile for DavHandle {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = match &self.0 {
            Open::Reading(_, meta) => meta.clone(),
            Open::Writing(_, written) => Metadata {
                kind: EntryKind::File,
                len: *written,
                modified: Some(SystemTime::now()),
                accessed: None,
            },
        };
        let meta: Box<dyn DavMetaData> = Box::new(Meta(meta));
        futures_util::future::ready(Ok(meta)).boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                buf.advance(chunk.len());
                self.write_bytes(Bytes::from(chunk)).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            let n = buf.len() as u64;
            self.upload()?
                .write_all(&buf)
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            if let Open::Writing(_, written) = &mut self.0 {
                *written += n;
            }
            Ok(())
        }
        .boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let Open::Reading(download, _) = &mut self.0 else {
                return Err(DavError::Forbidden);
            };
            // A GET of a large file is this call, once per chunk.
            download
                .read_chunk(count)
                .await
                .map_err(|_| DavError::GeneralFailure)
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            match &mut self.0 {
                Open::Reading(download, _) => download
                    .seek(pos)
                    .await
                    .map_err(|_| DavError::GeneralFailure),
                Open::Writing(..) => self
                    .upload()?
                    .seek(pos)
                    .await
                    .map_err(|_| DavError::GeneralFailure),
            }
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            if let Open::Writing(upload, _) = &mut self.0 {
                let taken = upload
                    .get_mut()
                    .map_err(|_| DavError::GeneralFailure)?
                    .take();
                if let Some(mut upload) = taken {
                    upload.flush().await.map_err(|_| DavError::GeneralFailure)?;
                    upload.commit().await.map_err(fail)?;
                }
            }
            Ok(())
        }
        .boxed()
    }
}

/// Dead properties one resource may have.
pub const MAX_PROPS: usize = 64;
/// Largest dead property: its value, name, namespace and prefix together, in bytes.
pub const MAX_PROP_BYTES: usize = 4096;

fn prop_bytes(p: &DavProp) -> usize {
    p.xml.as_ref().map_or(0, Vec::len)
        + p.name.len()
        + p.namespace.as_ref().map_or(0, String::len)
        + p.prefix.as_ref().map_or(0, String::len)
}

fn prop_key(p: &DavProp) -> (String, String) {
    (p.namespace.clone().unwrap_or_default(), p.name.clone())
}

impl GuardedFileSystem<Caller> for FilesDav {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        who: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let path = site(path)?;
            let handle = if options.write || options.append {
                let exists = self.files.stat(who, &path).await.is_ok();
                if options.create_new && exists {
                    return Err(DavError::Exists);
                }
                if !(exists || options.create || options.create_new) {
                    return Err(DavError::NotFound);
                }
                let mode = if options.append {
                    WriteMode::Append
                } else if options.truncate || !exists {
                    WriteMode::Replace
                } else {
                    WriteMode::Update
                };
                let upload = if options.create_new {
                    self.files.create_new(who, &path, mode).await
                } else {
                    self.files.create(who, &path, mode).await
                };
                let upload = upload.map_err(fail)?;
                DavHandle(Open::Writing(Mutex::new(Some(upload)), 0))
            } else {
                let meta = self.files.stat(who, &path).await.map_err(fail)?;
                let download = self.files.open_read(who, &path).await.map_err(fail)?;
                DavHandle(Open::Reading(download, meta))
            };
            Ok(Box::new(handle) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        who: &'a Caller,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let path = site(path)?;
            // Entries are formatted while the rest of the folder is still being read.
            let listing = self.files.list_chunks(who, &path).await.map_err(fail)?;
            let chunks = futures_util::stream::unfold(listing, |mut listing| async move {
                let chunk = listing.next_chunk().await?;
                Some((chunk, listing))
            });
            let entries = chunks.flat_map(|chunk| {
                futures_util::stream::iter(chunk.into_iter().map(|e| {
                    Ok(Box::new(Entry {
                        name: e.name,
                        meta: e.metadata,
                    }) as Box<dyn DavDirEntry>)
                }))
            });
            Ok(Box::pin(entries) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Caller,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let path = site(path)?;
            let meta = self.files.stat(who, &path).await.map_err(fail)?;
            Ok(Box::new(Meta(meta)) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let path = site(path)?;
            self.files.make_dir(who, &path).await.map_err(fail)
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let path = site(path)?;
            self.files.remove_dir(who, &path).await.map_err(fail)?;
            let _ = self.store.remove_props_under(path.as_str()).await;
            self.refresh_index(true).await;
            Ok(())
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let path = site(path)?;
            self.files.remove_file(who, &path).await.map_err(fail)?;
            let _ = self.store.remove_props_under(path.as_str()).await;
            self.refresh_index(true).await;
            Ok(())
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        who: &'a Caller,
    ) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (site(from)?, site(to)?);
            self.files
                .rename(who, &from, &to, true)
                .await
                .map_err(fail)?;
            self.store
                .move_props(from.as_str(), to.as_str())
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            self.refresh_index(true).await;
            Ok(())
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (site(from)?, site(to)?);
            self.files.copy(who, &from, &to, true).await.map_err(fail)?;
            self.store
                .copy_props(from.as_str(), to.as_str())
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            self.refresh_index(true).await;
            Ok(())
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Caller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        // Asked for every entry of a listing: answered at once while the index is fresh
        // (a large future per entry would cost more than the answer).
        if self.props.fresh() {
            return Box::pin(std::future::ready(self.may_have_props(path, who)));
        }
        async move {
            self.refresh_index(false).await;
            self.may_have_props(path, who)
        }
        .boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        who: &'a Caller,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let path = site(path)?;
            self.files
                .authorize(who, &path, Access::WRITE)
                .map_err(fail)?;
            // The caps, checked before anything is stored.
            if patch
                .iter()
                .any(|(set, prop)| *set && prop_bytes(prop) > MAX_PROP_BYTES)
            {
                return Err(DavError::InsufficientStorage);
            }
            let existing = self
                .store
                .props_of(path.as_str())
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            let mut names: HashSet<(String, String)> = existing
                .into_iter()
                .map(|p| (p.namespace, p.name))
                .collect();
            for (set, prop) in &patch {
                if *set {
                    names.insert(prop_key(prop));
                } else {
                    names.remove(&prop_key(prop));
                }
            }
            if names.len() > MAX_PROPS {
                return Err(DavError::InsufficientStorage);
            }
            let mut out = Vec::with_capacity(patch.len());
            for (set, prop) in patch {
                let (namespace, name) = prop_key(&prop);
                let saved = if set {
                    let record = PropRecord {
                        namespace,
                        name,
                        prefix: prop.prefix.clone(),
                        xml: prop.xml.clone(),
                    };
                    self.store.set_prop(path.as_str(), &record).await
                } else {
                    self.store
                        .remove_prop(path.as_str(), &namespace, &name)
                        .await
                };
                let status = if saved.is_ok() {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                out.push((status, DavProp { xml: None, ..prop }));
            }
            self.refresh_index(true).await;
            Ok(out)
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        who: &'a Caller,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let path = site(path)?;
            self.files
                .authorize(who, &path, Access::LIST)
                .map_err(fail)?;
            let props = self
                .store
                .props_of(path.as_str())
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            Ok(props
                .into_iter()
                .map(|p| DavProp {
                    name: p.name,
                    prefix: p.prefix,
                    namespace: (!p.namespace.is_empty()).then_some(p.namespace),
                    xml: if do_content { p.xml } else { None },
                })
                .collect())
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        who: &'a Caller,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let path = site(path)?;
            self.files
                .authorize(who, &path, Access::LIST)
                .map_err(fail)?;
            let (namespace, name) = prop_key(&prop);
            let props = self
                .store
                .props_of(path.as_str())
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            props
                .into_iter()
                .find(|p| p.namespace == namespace && p.name == name)
                .and_then(|p| p.xml)
                .ok_or(DavError::NotFound)
        }
        .boxed()
    }
}
