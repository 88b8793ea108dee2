//! dav-server's `GuardedFileSystem` over the file layer: every WebDAV request is checked and
//! audited in `files::Files` with the caller's principal (the `C` of `GuardedFileSystem<C>`).
//! Dead properties are the file layer's (`Files::props`, `Files::patch_props`: checked,
//! audited, capped, and following renames and deletes by any protocol); a PROPPATCH beyond
//! the caps is answered 507 and stores nothing. dav-server's `LocalFs` is never used (it
//! follows symlinks out of its root).
//!
//! A GET on a plain connection ([`FilesDav::sending_with`]) of a file the storage keeps on
//! the local disk reads no bytes: each read hands dav-server a stand-in from the
//! connection's [`SendfileQueue`], and the connection sends the range with `sendfile(2)`
//! (`http_serve`'s `sendfile`). The download then ends, and is audited with the bytes sent,
//! when its last range has been sent or dropped. A file that ends before the length it had
//! when opened fails the response on either path, rather than dav-server padding it with
//! zeros.

use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
use crate::files::{
    DeadProp, Download, EntryKind, Files, FsError, Metadata, PropChange, Upload, WriteMode,
};
use crate::http_serve::{MAX_RANGE, SendfileQueue, SharedDownload};
use crate::identity::Principal;
use crate::path::SitePath;

/// The caller, as dav-server hands it back on every call.
pub type Caller = Arc<Principal>;

/// The WebDAV view of the file layer.
#[derive(Clone)]
pub struct FilesDav {
    pub files: Arc<Files>,
    /// The connection's sendfile queue, for one GET on a plain connection.
    sendfile: Option<SendfileQueue>,
}

impl FilesDav {
    pub fn new(files: Arc<Files>) -> FilesDav {
        FilesDav {
            files,
            sendfile: None,
        }
    }

    /// The view for one GET on a plain connection: local files are sent with `sendfile(2)`
    /// through `queue`.
    pub fn sending_with(files: Arc<Files>, queue: SendfileQueue) -> FilesDav {
        FilesDav {
            files,
            sendfile: Some(queue),
        }
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

/// An open file: a download (read, or sent with `sendfile`), or an upload that takes its
/// real name on flush.
enum Open {
    Reading(Download, Metadata),
    Sending(Sending),
    Writing(Mutex<Option<Upload>>, u64),
}

/// A download whose bytes the connection sends: reads hand out stand-ins for ranges.
struct Sending {
    download: SharedDownload,
    queue: SendfileQueue,
    meta: Metadata,
    /// Where the next range starts.
    pos: u64,
}

impl Sending {
    fn read(&mut self, count: usize) -> FsResult<Bytes> {
        let n = count.min(MAX_RANGE);
        if n == 0 {
            return Ok(Bytes::new());
        }
        let stand_in = self
            .queue
            .stand_in(&self.download, self.pos, n)
            .map_err(|_| DavError::GeneralFailure)?;
        self.pos += n as u64;
        Ok(stand_in)
    }

    fn seek(&mut self, pos: SeekFrom) -> FsResult<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.meta.len.checked_add_signed(d),
        };
        self.pos = target.ok_or(DavError::GeneralFailure)?;
        Ok(self.pos)
    }
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
            Open::Reading(..) | Open::Sending(..) => Err(DavError::Forbidden),
        }
    }
}

impl DavFile for DavHandle {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = match &self.0 {
            Open::Reading(_, meta) => meta.clone(),
            Open::Sending(sending) => sending.meta.clone(),
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
            let download = match &mut self.0 {
                Open::Reading(download, _) => download,
                Open::Sending(sending) => return sending.read(count),
                Open::Writing(..) => return Err(DavError::Forbidden),
            };
            // A GET of a large file is this call, once per chunk.
            let chunk = download
                .read_chunk(count)
                .await
                .map_err(|_| DavError::GeneralFailure)?;
            if chunk.is_empty() && count > 0 {
                // dav-server asks only for bytes within the length the file had when opened:
                // it shrank. Failing ends the response short (the client sees it cut)
                // where dav-server would send zeros in place of the missing bytes.
                return Err(DavError::GeneralFailure);
            }
            Ok(chunk)
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
                Open::Sending(sending) => sending.seek(pos),
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
                let mut download = self.files.open_read(who, &path).await.map_err(fail)?;
                match &self.sendfile {
                    Some(queue) if download.can_send_at() => DavHandle(Open::Sending(Sending {
                        download: Arc::new(Mutex::new(download)),
                        queue: queue.clone(),
                        meta,
                        pos: 0,
                    })),
                    _ => DavHandle(Open::Reading(download, meta)),
                }
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
            self.files.remove_dir(who, &path).await.map_err(fail)
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let path = site(path)?;
            self.files.remove_file(who, &path).await.map_err(fail)
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
            self.files.rename(who, &from, &to, true).await.map_err(fail)
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, who: &'a Caller) -> FsFuture<'a, ()> {
        async move {
            let (from, to) = (site(from)?, site(to)?);
            self.files.copy(who, &from, &to, true).await.map_err(fail)?;
            Ok(())
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
        who: &'a Caller,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        // Asked for every entry of a listing: answered at once while the file layer's index
        // is fresh (a large future per entry would cost more than the answer).
        let Ok(site) = site(path) else {
            return Box::pin(std::future::ready(false));
        };
        if let Some(answer) = self.files.may_have_props_now(who, &site) {
            return Box::pin(std::future::ready(answer));
        }
        async move { self.files.may_have_props(who, &site).await }.boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        who: &'a Caller,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let path = site(path)?;
            let changes: Vec<PropChange> = patch
                .iter()
                .map(|(set, prop)| {
                    let (namespace, name) = prop_key(prop);
                    if *set {
                        PropChange::Set(DeadProp {
                            namespace,
                            name,
                            prefix: prop.prefix.clone(),
                            xml: prop.xml.clone(),
                        })
                    } else {
                        PropChange::Remove { namespace, name }
                    }
                })
                .collect();
            self.files
                .patch_props(who, &path, &changes)
                .await
                .map_err(fail)?;
            Ok(patch
                .into_iter()
                .map(|(_, prop)| (StatusCode::OK, DavProp { xml: None, ..prop }))
                .collect())
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
            let props = self.files.props(who, &path).await.map_err(fail)?;
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
            let (namespace, name) = prop_key(&prop);
            let props = self.files.props(who, &path).await.map_err(fail)?;
            props
                .into_iter()
                .find(|p| p.namespace == namespace && p.name == name)
                .and_then(|p| p.xml)
                .ok_or(DavError::NotFound)
        }
        .boxed()
    }
}
