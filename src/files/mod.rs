//! The policy-checked file layer: every front-end's only way to files.
//!
//! Each call takes the acting [`Principal`] and a normalised [`SitePath`], checks the policy
//! ([`policy::Scope`]), performs the operation on the [`Storage`], and writes one audit record
//! (denials included). Hidden paths answer `NotFound`, visible-but-forbidden ones
//! `PermissionDenied`. Downloads and uploads are streams that count their bytes and record
//! them when they end; uploads are atomic unless appending. No SQL and no protocol here.
//!
//! Writing distinguishes creating a new file (`WRITE`) from changing an existing one —
//! replacing, writing in place, appending, truncating — which needs `WRITE|DELETE`. A
//! principal that may only create gets storage calls that cannot replace
//! ([`Overwrite::Refuse`]): a file that appears between the check and the commit is never
//! overwritten. Files open for transfers count against one process-wide budget, and against
//! their owner's share of it (a user with all their keys and sessions, or a site-wide key).
//!
//! Writes never leave a hole: an upload writes at most at the current end of its file, and
//! setting a length never extends one, so a few bytes sent cannot become a huge sparse file
//! (which a copy or a backup would then write out for real).

mod budget;
mod capable;
pub mod denials;
mod error;
mod local;
mod mounts;
mod open;
pub mod policy;
pub mod props;
mod roots;
mod s3;
pub mod staging;
mod storage;
mod transfer;
mod zerocopy;

use std::sync::Arc;
use std::time::SystemTime;

pub use capable::Unkept;
pub use error::FsError;
pub use local::LocalStorage;
pub use local::Symlinks;
pub use mounts::{MountError, Mounts};
pub use open::{OpenStorageError, OpenedStorage, StorageRole, open_storage};
pub use policy::{Scope, Visibility};
pub use props::{DeadProp, PropChange, PropStore, PropStoreError};
pub use s3::S3Storage;
pub use storage::{
    Capabilities, DirEntry, EntryChunks, EntryKind, FileReader, FileWriter, LocalSource, Metadata,
    Overwrite, ReadEntries, SpaceInfo, StagedWrite, Storage, StorageError, StorageErrorKind,
    WriteMode,
};
pub use transfer::{Download, Upload};
pub use zerocopy::SendSocket;

use budget::{OpenFiles, OpenPermit};
use transfer::TruncateRight;

use crate::audit::{Action, AuditEvent, AuditSink, Outcome};
use crate::identity::{Access, Principal};
use crate::path::SitePath;

/// Bytes moved per step of a server-side copy between open files.
const COPY_BUFFER: usize = 256 * 1024;

/// The file layer. Cheap to share (`Arc`).
pub struct Files {
    storage: Arc<dyn Storage>,
    audit: Arc<dyn AuditSink>,
    /// Files open for transfers (download, upload, copy): all sessions together, and each
    /// owner's share.
    open_files: OpenFiles,
    /// Per-session limit on refusals recorded individually.
    denials: denials::Denials,
    /// Dead properties of entries (see [`props`]).
    props: props::Props,
}

/// Whether `who` may see `path` (no audit record: asked per listed entry).
fn sees(who: &Principal, path: &SitePath) -> bool {
    match Scope::of(who).visibility(path) {
        Visibility::Granted(access) => access.contains(Access::LIST),
        Visibility::Traverse => true,
        Visibility::Hidden => false,
    }
}

/// What happened to an entry whose dead properties must follow.
#[derive(Debug, Clone, Copy)]
enum PropsFollow<'a> {
    Remove {
        path: &'a SitePath,
        below: bool,
    },
    Rename {
        from: &'a SitePath,
        to: &'a SitePath,
        below: bool,
    },
    Copy {
        from: &'a SitePath,
        to: &'a SitePath,
    },
}

/// A folder being listed (see [`Files::list_chunks`]).
pub struct Listing {
    chunks: EntryChunks,
    scope: Scope,
    folder: SitePath,
}

impl Listing {
    /// The next entries the principal may see (possibly none, when all those read are
    /// hidden from them); `None` at the end. Cancelling it loses no entry.
    pub async fn next_chunk(&mut self) -> Option<Vec<DirEntry>> {
        let mut chunk = self.chunks.recv().await?;
        chunk.retain(|e| self.scope.shows_child(&self.folder, &e.name));
        Some(chunk)
    }
}

impl Files {
    /// The file layer over `storage`, with at most `max_open_files` files open for
    /// transfers at once (more are refused at once with [`FsError::TooManyOpenFiles`]), and
    /// at most an eighth of them (but 64 or more) for one user or site-wide key.
    pub fn new(
        storage: Arc<dyn Storage>,
        audit: Arc<dyn AuditSink>,
        max_open_files: usize,
    ) -> Files {
        Files {
            storage,
            audit,
            open_files: OpenFiles::new(max_open_files, OpenFiles::default_share(max_open_files)),
            denials: denials::Denials::default(),
            props: props::Props::new(None),
        }
    }

    /// Keeps dead properties in `store` (without one, entries have none and setting one
    /// fails).
    pub fn with_props(mut self, store: Arc<dyn PropStore>) -> Files {
        self.props = props::Props::new(Some(store));
        self
    }

    /// Sets the share of the open-file budget that one owner — a user with all their keys
    /// and sessions, or a site-wide key — may hold; 0 keeps the default.
    pub fn with_open_files_per_owner(mut self, per_owner: usize) -> Files {
        if per_owner > 0 {
            self.open_files = self.open_files.with_share(per_owner);
        }
        self
    }

    /// The folder a session of `principal` starts in.
    pub fn start_dir(&self, principal: &Principal) -> SitePath {
        Scope::of(principal).start_dir()
    }

    /// Lists a folder, sorted by name, showing only what the principal may see.
    pub async fn list(&self, who: &Principal, path: &SitePath) -> Result<Vec<DirEntry>, FsError> {
        let mut listing = self.list_chunks(who, path).await?;
        let mut entries = Vec::new();
        while let Some(chunk) = listing.next_chunk().await {
            entries.extend(chunk);
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name)); // names are unique
        Ok(entries)
    }

    /// Lists a folder in chunks as it is read (unsorted), showing only what the principal
    /// may see: for listings where the first entries should be sent while the rest are
    /// read (WebDAV PROPFIND), or read at the client's pace (SFTP READDIR). Each chunk is
    /// read when asked for: an unread listing holds one chunk and no thread. Audited like
    /// `list` when the folder is opened.
    pub async fn list_chunks(&self, who: &Principal, path: &SitePath) -> Result<Listing, FsError> {
        let scope = self.check(who, Action::List, path, Access::LIST)?;
        let result = match self.storage.read_dir_chunks(path).await {
            Ok(chunks) => Ok(Listing {
                chunks,
                scope,
                folder: path.clone(),
            }),
            Err(e) => Err(FsError::from(e)),
        };
        self.done(who, Action::List, path, None, &result);
        result
    }

    /// Attributes of a file or folder (not audited when it succeeds: clients stat a lot).
    pub async fn stat(&self, who: &Principal, path: &SitePath) -> Result<Metadata, FsError> {
        self.check(who, Action::Stat, path, Access::LIST)?;
        Ok(self.storage.metadata(path).await?)
    }

    /// Opens a file for download; the record (with bytes sent) is written when it is dropped.
    pub async fn open_read(&self, who: &Principal, path: &SitePath) -> Result<Download, FsError> {
        self.check(who, Action::Download, path, Access::READ)?;
        let permit = self.open_permit(who, Action::Download, path)?;
        match self.storage.open_read(path).await {
            Ok(reader) => {
                let event = AuditEvent::by(who, Action::Download, Outcome::Ok).path(path.as_str());
                Ok(Download::new(reader, event, self.audit.clone(), permit))
            }
            Err(e) => {
                let result = Err(FsError::from(e));
                self.done(who, Action::Download, path, None, &result);
                result
            }
        }
    }

    /// Starts an upload. A new file needs `WRITE`; changing an existing one in any mode
    /// (replace, write in place, append) needs `WRITE|DELETE`. Without `DELETE`, the upload
    /// can only create: committing fails with `AlreadyExists` if the file appeared meanwhile.
    pub async fn create(
        &self,
        who: &Principal,
        path: &SitePath,
        mode: WriteMode,
    ) -> Result<Upload, FsError> {
        self.begin_upload(who, path, mode, false).await
    }

    /// Starts an upload that must create the file (exclusive create, as SFTP `EXCL` or a
    /// WebDAV `create_new`): an existing file, or one that appears before the commit, makes
    /// it fail with `AlreadyExists`, whatever the principal's rights.
    pub async fn create_new(
        &self,
        who: &Principal,
        path: &SitePath,
        mode: WriteMode,
    ) -> Result<Upload, FsError> {
        self.begin_upload(who, path, mode, true).await
    }

    async fn begin_upload(
        &self,
        who: &Principal,
        path: &SitePath,
        mode: WriteMode,
        exclusive: bool,
    ) -> Result<Upload, FsError> {
        let scope = self.check(who, Action::Upload, path, Access::WRITE)?;
        if path.is_root() {
            return self.refuse(who, Action::Upload, path, FsError::IsADirectory);
        }
        let may_change = !exclusive && scope.allows(path, Access::WRITE | Access::DELETE);
        let existing = self.storage.metadata(path).await;
        match &existing {
            Ok(meta) if meta.is_dir() => {
                return self.refuse(who, Action::Upload, path, FsError::IsADirectory);
            }
            Ok(_) if exclusive => {
                return self.refuse(who, Action::Upload, path, FsError::AlreadyExists);
            }
            Ok(_) if !may_change => {
                self.require(&scope, who, Action::Upload, path, Access::DELETE)?;
            }
            // A missing folder or an unreachable path is reported by `begin_write`.
            Ok(_) | Err(_) => {}
        }
        let caps = self.storage.capabilities(path);
        let mut mode = mode;
        let mut overwrite = Overwrite::from_right(may_change);
        if let Some(why) = capable::upload_refusal(&caps, mode) {
            if existing.is_ok() {
                return self.refuse(who, Action::Upload, path, FsError::Unsupported(why.into()));
            }
            // Nothing there yet: appending to it or writing into it starts a new file, which
            // such a storage writes whole — committed like a replacing upload, and never over
            // a file that appears meanwhile (that one would have been appended to).
            mode = WriteMode::Replace;
            overwrite = Overwrite::Refuse;
        }
        // Truncating through the handle: the policy first, then what the storage can do.
        let truncate = if !(may_change || mode == WriteMode::Replace) {
            TruncateRight::Refused {
                who: Box::new(who.clone()),
                path: path.as_str().to_owned(),
            }
        } else if mode != WriteMode::Replace && !caps.set_len {
            TruncateRight::Unsupported {
                who: Box::new(who.clone()),
                path: path.as_str().to_owned(),
            }
        } else {
            TruncateRight::Allowed
        };
        let permit = self.open_permit(who, Action::Upload, path)?;
        match self.storage.begin_write(path, mode, overwrite).await {
            Ok(staged) => {
                let event = AuditEvent::by(who, Action::Upload, Outcome::Ok).path(path.as_str());
                Ok(Upload::new(
                    staged,
                    event,
                    self.audit.clone(),
                    truncate,
                    mode,
                    permit,
                ))
            }
            Err(e) => {
                let result = Err(FsError::from(e));
                self.done(who, Action::Upload, path, None, &result);
                result
            }
        }
    }

    pub async fn remove_file(&self, who: &Principal, path: &SitePath) -> Result<(), FsError> {
        self.check_destructive(who, Action::Delete, path)?;
        let result = self.storage.remove_file(path).await.map_err(FsError::from);
        if result.is_ok() {
            self.props_follow(PropsFollow::Remove { path, below: false })
                .await;
        }
        self.done_durable(who, Action::Delete, path, None, result)
            .await
    }

    pub async fn make_dir(&self, who: &Principal, path: &SitePath) -> Result<(), FsError> {
        self.check(who, Action::Mkdir, path, Access::MKDIR)?;
        let result = self.storage.create_dir(path).await.map_err(FsError::from);
        self.done_durable(who, Action::Mkdir, path, None, result)
            .await
    }

    pub async fn remove_dir(&self, who: &Principal, path: &SitePath) -> Result<(), FsError> {
        self.check_destructive(who, Action::Rmdir, path)?;
        let result = self.storage.remove_dir(path).await.map_err(FsError::from);
        if result.is_ok() {
            self.props_follow(PropsFollow::Remove { path, below: true })
                .await;
        }
        self.done_durable(who, Action::Rmdir, path, None, result)
            .await
    }

    /// Moves `from` to `to`: delete rights at the source, write rights (and mkdir for a
    /// folder) at the destination, delete rights there too when `overwrite` replaces a file.
    /// Without `overwrite` (or without delete rights there), an existing destination is
    /// refused, atomically: one that appears meanwhile is not replaced either.
    pub async fn rename(
        &self,
        who: &Principal,
        from: &SitePath,
        to: &SitePath,
        overwrite: bool,
    ) -> Result<(), FsError> {
        self.check_destructive(who, Action::Rename, from)?;
        let scope = self.check(who, Action::Rename, to, Access::WRITE)?;
        if to.is_within(from) && to != from {
            return self.refuse(
                who,
                Action::Rename,
                from,
                FsError::InvalidPath(crate::path::PathError::BadSegment),
            );
        }
        let source = match self.storage.metadata(from).await {
            Ok(meta) => meta,
            Err(e) => return self.refuse(who, Action::Rename, from, e.into()),
        };
        if source.is_dir() {
            self.require(&scope, who, Action::Rename, to, Access::MKDIR)?;
        }
        if let Ok(target) = self.storage.metadata(to).await {
            if !overwrite || target.is_dir() || source.is_dir() {
                return self.refuse(who, Action::Rename, to, FsError::AlreadyExists);
            }
            self.require(&scope, who, Action::Rename, to, Access::DELETE)?;
        }
        if source.is_dir()
            && !(self.storage.capabilities(from).rename_dir
                && self.storage.capabilities(to).rename_dir)
        {
            let err = FsError::Unsupported(capable::NO_RENAME_DIR.into());
            return self.refuse(who, Action::Rename, from, err);
        }
        let may_replace = overwrite && !source.is_dir() && scope.allows(to, Access::DELETE);
        let result = self
            .storage
            .rename(from, to, Overwrite::from_right(may_replace))
            .await
            .map_err(FsError::from);
        if result.is_ok() {
            self.props_follow(PropsFollow::Rename {
                from,
                to,
                below: source.is_dir(),
            })
            .await;
        }
        self.done_durable(who, Action::Rename, from, Some(to), result)
            .await
    }

    /// Copies a file: read rights at the source, write rights at the destination (and delete
    /// rights there when `overwrite` replaces a file; without them, or without `overwrite`,
    /// a file that appears at the destination meanwhile is not replaced). Folders are not
    /// copied here.
    pub async fn copy(
        &self,
        who: &Principal,
        from: &SitePath,
        to: &SitePath,
        overwrite: bool,
    ) -> Result<u64, FsError> {
        let scope = self.check(who, Action::Copy, from, Access::READ)?;
        self.require(&scope, who, Action::Copy, to, Access::WRITE)?;
        let source = match self.storage.metadata(from).await {
            Ok(meta) if meta.is_dir() => {
                return self.refuse(who, Action::Copy, from, FsError::IsADirectory);
            }
            Ok(meta) => meta,
            Err(e) => return self.refuse(who, Action::Copy, from, e.into()),
        };
        if let Ok(target) = self.storage.metadata(to).await {
            if !overwrite || target.is_dir() {
                return self.refuse(who, Action::Copy, to, FsError::AlreadyExists);
            }
            self.require(&scope, who, Action::Copy, to, Access::DELETE)?;
        }
        let overwrite = Overwrite::from_right(overwrite && scope.allows(to, Access::DELETE));
        let _permit = self.open_permit(who, Action::Copy, from)?;
        let result = self
            .copy_bytes(from, to, source.len, overwrite)
            .await
            .map_err(FsError::from);
        if result.is_ok() {
            self.props_follow(PropsFollow::Copy { from, to }).await;
        }
        let mut event = AuditEvent::by(
            who,
            Action::Copy,
            if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
        )
        .path(from.as_str())
        .destination(to.as_str());
        match &result {
            Ok(bytes) => event = event.bytes(*bytes),
            Err(err) => event = event.reason(err.reason()),
        }
        self.record_outcome(event, result).await
    }

    /// The bytes of the file `from` into a new file at `to`: by the storage itself where it
    /// can copy (both ends on one backend with `server_copy`), else streamed through this
    /// process and committed like an upload. The bytes copied (`len`, the source's length
    /// when checked, for a copy the storage made).
    async fn copy_bytes(
        &self,
        from: &SitePath,
        to: &SitePath,
        len: u64,
        overwrite: Overwrite,
    ) -> Result<u64, StorageError> {
        use tokio::io::AsyncWriteExt;
        if self.storage.capabilities(from).server_copy && self.storage.capabilities(to).server_copy
        {
            match self.storage.copy(from, to, overwrite).await {
                Ok(()) => return Ok(len),
                // Not between these two (different mounts): streamed below.
                Err(e) if e.kind == StorageErrorKind::Unsupported => {}
                Err(e) => return Err(e),
            }
        }
        let mut reader = self.storage.open_read(from).await?;
        let mut staged = self
            .storage
            .begin_write(to, WriteMode::Replace, overwrite)
            .await?;
        let bytes = tokio::io::copy(&mut reader, staged.writer()).await?;
        staged.writer().flush().await?;
        staged.commit().await?;
        Ok(bytes)
    }

    /// Checks that `who` may perform `need` at `path` (for state a front-end keeps about
    /// files, such as WebDAV locks). Refusals are audited like any other.
    pub fn authorize(&self, who: &Principal, path: &SitePath, need: Access) -> Result<(), FsError> {
        self.check(who, Action::SetAttributes, path, need)
            .map(|_| ())
    }

    /// The dead properties of `path` (needs LIST; not audited when it succeeds, as `stat`).
    pub async fn props(&self, who: &Principal, path: &SitePath) -> Result<Vec<DeadProp>, FsError> {
        self.check(who, Action::Stat, path, Access::LIST)?;
        let Some(store) = self.props.store() else {
            return Ok(Vec::new());
        };
        store.props_of(path.as_str()).await.map_err(|e| {
            tracing::warn!(path = %path, error = %e, "cannot read dead properties");
            FsError::Failed(e.to_string())
        })
    }

    /// Whether `path` may have dead properties `who` can see, from the index alone while
    /// it is fresh (`None`: stale, ask [`Files::may_have_props`]). For listings, asked once
    /// per entry.
    pub fn may_have_props_now(&self, who: &Principal, path: &SitePath) -> Option<bool> {
        if !self.props.fresh() {
            return None;
        }
        Some(self.props.indexed(path.as_str()) && sees(who, path))
    }

    /// [`Files::may_have_props_now`] after bringing the index up to date.
    pub async fn may_have_props(&self, who: &Principal, path: &SitePath) -> bool {
        self.props.refresh(false).await;
        self.props.indexed(path.as_str()) && sees(who, path)
    }

    /// Sets and removes dead properties of `path` (a WebDAV PROPPATCH): needs WRITE, is
    /// all or nothing, and is one audit record. More than [`props::MAX_PROPS`] properties
    /// on the entry, or one larger than [`props::MAX_PROP_BYTES`], is `NoSpace` and
    /// changes nothing.
    pub async fn patch_props(
        &self,
        who: &Principal,
        path: &SitePath,
        changes: &[PropChange],
    ) -> Result<(), FsError> {
        let action = Action::SetAttributes;
        self.check(who, action, path, Access::WRITE)?;
        if !props::within_size(changes) || props::distinct_sets(changes) > props::MAX_PROPS {
            return self.refuse(who, action, path, FsError::NoSpace);
        }
        if let Err(e) = self.storage.metadata(path).await {
            return self.refuse(who, action, path, e.into());
        }
        let Some(store) = self.props.store() else {
            let err = FsError::Failed("no property store".into());
            return self.refuse(who, action, path, err);
        };
        let result = match store.apply(path.as_str(), changes, props::MAX_PROPS).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(FsError::NoSpace),
            Err(e) => Err(FsError::Failed(e.to_string())),
        };
        self.props.refresh(true).await;
        self.done(who, action, path, None, &result);
        result
    }

    /// Makes properties follow a rename, delete or copy that succeeded. The file operation
    /// is done whatever happens here; a failure is logged.
    async fn props_follow(&self, change: PropsFollow<'_>) {
        let Some(store) = self.props.store() else {
            return;
        };
        let result = match change {
            PropsFollow::Remove { path, below } => store.remove(path.as_str(), below).await,
            PropsFollow::Rename { from, to, below } => {
                store.rename(from.as_str(), to.as_str(), below).await
            }
            PropsFollow::Copy { from, to } => store.copy(from.as_str(), to.as_str()).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?change, "dead properties did not follow a file operation");
        }
        self.props.refresh(true).await;
    }

    /// Sets access and modification times. Where the storage cannot keep times, `unkept`
    /// says whether that is ignored (success, recorded as ignored; the entry must exist) or
    /// refused (`Unsupported`); nothing changes either way.
    pub async fn set_times(
        &self,
        who: &Principal,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
        unkept: Unkept,
    ) -> Result<(), FsError> {
        self.check(who, Action::SetAttributes, path, Access::WRITE)?;
        if !self.storage.capabilities(path).set_times {
            if let Err(e) = self.storage.metadata(path).await {
                return self.refuse(who, Action::SetAttributes, path, e.into());
            }
            return self.unkept_times(who, path, unkept);
        }
        let result = self
            .storage
            .set_times(path, accessed, modified)
            .await
            .map_err(FsError::from);
        self.done_durable(who, Action::SetAttributes, path, None, result)
            .await
    }

    /// Whether times set on `path` (by a client that sets them on an upload in progress)
    /// will be kept: checks write rights (hidden → `NotFound`) and the storage; where it
    /// cannot keep them, `Ok(false)` when ignored or `Unsupported` when refused, as
    /// `unkept` says — both recorded. The times themselves are set later by `set_times`.
    pub fn times_kept(
        &self,
        who: &Principal,
        path: &SitePath,
        unkept: Unkept,
    ) -> Result<bool, FsError> {
        self.check(who, Action::SetAttributes, path, Access::WRITE)?;
        if self.storage.capabilities(path).set_times {
            return Ok(true);
        }
        self.unkept_times(who, path, unkept).map(|()| false)
    }

    /// Times the storage at `path` cannot keep: ignored or refused as `unkept` says, and
    /// recorded either way.
    fn unkept_times(
        &self,
        who: &Principal,
        path: &SitePath,
        unkept: Unkept,
    ) -> Result<(), FsError> {
        match unkept {
            Unkept::Ignore => {
                self.audit.record(
                    AuditEvent::by(who, Action::SetAttributes, Outcome::Ok)
                        .path(path.as_str())
                        .reason(capable::TIMES_IGNORED.to_owned()),
                );
                Ok(())
            }
            Unkept::Refuse => {
                let err = FsError::Unsupported(capable::NO_SET_TIMES.into());
                self.refuse(who, Action::SetAttributes, path, err)
            }
        }
    }

    /// Truncates an existing file: that changes its bytes, so it needs `WRITE|DELETE` (a
    /// length it already has is a no-op, allowed with `WRITE`). A file is never extended
    /// this way ([`FsError::LeavesHole`]): it grows only by writing at its end.
    pub async fn set_len(&self, who: &Principal, path: &SitePath, len: u64) -> Result<(), FsError> {
        let scope = self.check(who, Action::SetAttributes, path, Access::WRITE)?;
        let current = match self.storage.metadata(path).await {
            Ok(meta) => meta,
            Err(e) => return self.refuse(who, Action::SetAttributes, path, e.into()),
        };
        if current.is_dir() {
            return self.refuse(who, Action::SetAttributes, path, FsError::IsADirectory);
        }
        if !scope.allows(path, Access::DELETE) {
            if len == current.len {
                return Ok(()); // nothing to change, and nothing touched
            }
            self.require(&scope, who, Action::SetAttributes, path, Access::DELETE)?;
        }
        if len > current.len {
            tracing::info!(user = %who.display_name(), key_id = who.key.as_ref().map(|k| k.id), protocol = %who.protocol, path = %path, len, current = current.len, "refused to extend a file by setting its length");
            return self.refuse(who, Action::SetAttributes, path, FsError::LeavesHole);
        }
        if !self.storage.capabilities(path).set_len {
            if len == current.len {
                return Ok(()); // nothing to change
            }
            let err = FsError::Unsupported(capable::NO_SET_LEN.into());
            return self.refuse(who, Action::SetAttributes, path, err);
        }
        let result = self.storage.set_len(path, len).await.map_err(FsError::from);
        self.done_durable(who, Action::SetAttributes, path, None, result)
            .await
    }

    /// The scope of `who`: what a front-end shows as the entries' permission bits (a
    /// question, nothing is decided or audited with it).
    pub fn scope(&self, who: &Principal) -> Scope {
        Scope::of(who)
    }

    /// The space of the storage holding `path` (SFTP `statvfs@openssh.com`): visible to
    /// whoever may list there; hidden paths are `NotFound` like `stat`. Audited.
    pub async fn space(&self, who: &Principal, path: &SitePath) -> Result<SpaceInfo, FsError> {
        self.check(who, Action::Statvfs, path, Access::LIST)?;
        let result = self.storage.space(path).await.map_err(FsError::from);
        self.done(who, Action::Statvfs, path, None, &result);
        result
    }

    /// Makes an upload in progress durable before it is closed (flushes it to the storage;
    /// a staged upload's staging file). Audited.
    pub async fn sync(
        &self,
        who: &Principal,
        path: &SitePath,
        upload: &mut Upload,
    ) -> Result<(), FsError> {
        self.check(who, Action::Fsync, path, Access::WRITE)?;
        let result = upload.sync().await;
        self.done(who, Action::Fsync, path, None, &result);
        result
    }

    /// A change of mode or owner, which this server does not keep (files belong to the
    /// service, not to Unix accounts). It needs write rights on the entry (hidden →
    /// `NotFound`, else `PermissionDenied`) and the entry must exist; then it is recorded:
    /// as done-but-ignored (`refused == false`, the answer clients such as WinSCP need after
    /// every upload) or as refused. Either way nothing changes on disk.
    pub async fn unkept_attributes(
        &self,
        who: &Principal,
        path: &SitePath,
        refused: bool,
    ) -> Result<(), FsError> {
        self.check(who, Action::SetAttributes, path, Access::WRITE)?;
        if let Err(e) = self.storage.metadata(path).await {
            return self.refuse(who, Action::SetAttributes, path, e.into());
        }
        let (outcome, reason) = if refused {
            (Outcome::Failed, "mode and owner changes are refused")
        } else {
            (Outcome::Ok, "mode and owner changes are ignored")
        };
        self.audit.record(
            AuditEvent::by(who, Action::SetAttributes, outcome)
                .path(path.as_str())
                .reason(reason.to_owned()),
        );
        Ok(())
    }

    /// Copies `len` bytes (0: up to the end) from `reader` at `read_offset` into `writer`
    /// at `write_offset`, between two open transfers (SFTP `copy-data`): the reader was
    /// opened with read rights on `from`, the writer with the rights to write `to`; both are
    /// checked again here. Bytes go through a bounded buffer; the copy stops at the end of
    /// the source. Audited as a copy with the bytes copied.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_range<R, W>(
        &self,
        who: &Principal,
        from: &SitePath,
        reader: &mut R,
        read_offset: u64,
        len: u64,
        to: &SitePath,
        writer: &mut W,
        write_offset: u64,
    ) -> Result<u64, FsError>
    where
        R: tokio::io::AsyncRead + tokio::io::AsyncSeek + Unpin,
        W: tokio::io::AsyncWrite + tokio::io::AsyncSeek + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let scope = self.check(who, Action::Copy, from, Access::READ)?;
        self.require(&scope, who, Action::Copy, to, Access::WRITE)?;
        let mut copied = 0u64;
        let result = async {
            reader.seek(std::io::SeekFrom::Start(read_offset)).await?;
            writer.seek(std::io::SeekFrom::Start(write_offset)).await?;
            let mut buf = vec![0u8; COPY_BUFFER];
            loop {
                let want = if len == 0 {
                    COPY_BUFFER
                } else {
                    usize::try_from(len - copied).map_or(COPY_BUFFER, |left| left.min(COPY_BUFFER))
                };
                if want == 0 {
                    break;
                }
                let n = reader.read(&mut buf[..want]).await?;
                if n == 0 {
                    break;
                }
                writer.write_all(&buf[..n]).await?;
                copied += n as u64;
            }
            writer.flush().await
        }
        .await
        .map_err(FsError::from);
        let mut event = AuditEvent::by(
            who,
            Action::Copy,
            if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
        )
        .path(from.as_str())
        .destination(to.as_str())
        .bytes(copied);
        if let Err(err) = &result {
            event = event.reason(err.reason());
        }
        self.audit.record(event);
        result.map(|()| copied)
    }

    /// The policy check: hidden → `NotFound`, visible without `need` → `PermissionDenied`;
    /// both are audited. Returns the scope for further checks.
    fn check(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        need: Access,
    ) -> Result<Scope, FsError> {
        let scope = Scope::of(who);
        self.require(&scope, who, action, path, need)?;
        Ok(scope)
    }

    fn require(
        &self,
        scope: &Scope,
        who: &Principal,
        action: Action,
        path: &SitePath,
        need: Access,
    ) -> Result<(), FsError> {
        let refusal = match scope.visibility(path) {
            Visibility::Granted(access) if access.contains(need) => None,
            Visibility::Traverse if need == Access::LIST => None,
            Visibility::Granted(_) | Visibility::Traverse => Some(FsError::PermissionDenied),
            Visibility::Hidden => Some(FsError::NotFound),
        };
        match refusal {
            None => Ok(()),
            Some(err) => self.deny(who, action, path, err, "file access denied"),
        }
    }

    /// One place in the open-file budget, or a refusal (audited as failed) when the total or
    /// the principal's owner's share is spent.
    fn open_permit(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
    ) -> Result<OpenPermit, FsError> {
        match self.open_files.try_open(who) {
            Some(permit) => Ok(permit),
            None => {
                tracing::warn!(user = %who.display_name(), key_id = who.key.as_ref().map(|k| k.id), protocol = %who.protocol, op = action.as_str(), path = %path, "open-file budget or this owner's share of it spent");
                self.refuse(who, action, path, FsError::TooManyOpenFiles)
            }
        }
    }

    /// Delete-like operations: need delete rights and may not remove a scope root.
    fn check_destructive(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
    ) -> Result<(), FsError> {
        let scope = self.check(who, action, path, Access::DELETE)?;
        if scope.is_root(path) {
            return self.deny(
                who,
                action,
                path,
                FsError::PermissionDenied,
                "refused to remove a scope root",
            );
        }
        self.check_not_fixed(who, action, path)
    }

    /// Refuses (`Unsupported`, recorded) to remove, rename or replace a mount point or a
    /// folder above one. Front-ends whose one request removes a whole tree (WebDAV DELETE, and
    /// COPY/MOVE onto an existing destination, which delete it first) ask this before they
    /// start, so that nothing below is removed before the refusal.
    pub fn check_not_fixed(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
    ) -> Result<(), FsError> {
        if self.storage.is_fixed(path) {
            return self.refuse(
                who,
                action,
                path,
                FsError::Unsupported(format!(
                    "{path} is a mount point or holds one: it cannot be removed, renamed or replaced"
                )),
            );
        }
        Ok(())
    }

    /// A policy refusal: audited as `denied` and logged (`what`), at most
    /// [`denials::RECORDED_PER_WINDOW`] a window per session; further ones are counted and
    /// summed up in one record (see [`denials`]).
    fn deny<T>(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        err: FsError,
        what: &'static str,
    ) -> Result<T, FsError> {
        let event = AuditEvent::by(who, action, Outcome::Denied)
            .path(path.as_str())
            .reason(err.reason());
        let verdict = self.denials.admit(&event);
        for summary in verdict.summaries {
            self.audit.record(summary);
        }
        if verdict.record {
            tracing::info!(user = %who.display_name(), key_id = who.key.as_ref().map(|k| k.id), protocol = %who.protocol, op = action.as_str(), path = event.path.as_deref().unwrap_or(""), session = %who.client.session_id, "{what}");
            self.audit.record(event);
        }
        Err(err)
    }

    /// An operation that cannot proceed for a reason other than policy: audited as `failed`.
    fn refuse<T>(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        err: FsError,
    ) -> Result<T, FsError> {
        let result = Err(err);
        self.done(who, action, path, None, &result);
        result
    }

    /// Writes the audit record of a finished change and returns its result; a change that
    /// succeeded is answered only once its record is durable (see
    /// [`AuditSink::record_durable`]), else it is reported as failed.
    async fn done_durable<T>(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        destination: Option<&SitePath>,
        result: Result<T, FsError>,
    ) -> Result<T, FsError> {
        let event = self.outcome_event(who, action, path, destination, &result);
        self.record_outcome(event, result).await
    }

    /// Records `event`, the record of `result`: durably when the change succeeded.
    async fn record_outcome<T>(
        &self,
        event: AuditEvent,
        result: Result<T, FsError>,
    ) -> Result<T, FsError> {
        if result.is_err() {
            self.audit.record(event);
            return result;
        }
        durable(&*self.audit, event).await?;
        result
    }

    /// Writes the audit record of a finished operation.
    fn done<T>(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        destination: Option<&SitePath>,
        result: &Result<T, FsError>,
    ) {
        let event = self.outcome_event(who, action, path, destination, result);
        self.audit.record(event);
    }

    /// The audit record of a finished operation.
    fn outcome_event<T>(
        &self,
        who: &Principal,
        action: Action,
        path: &SitePath,
        destination: Option<&SitePath>,
        result: &Result<T, FsError>,
    ) -> AuditEvent {
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        let mut event = AuditEvent::by(who, action, outcome).path(path.as_str());
        if let Some(to) = destination {
            event = event.destination(to.as_str());
        }
        if let Err(err) = result {
            if let FsError::Failed(detail) = err {
                tracing::warn!(op = action.as_str(), path = &*crate::audit::capped(path.as_str()), error = %detail, "storage failure");
            }
            event = event.reason(err.reason());
        }
        event
    }
}

/// Records `event` and waits until it is durable; when it is not, the operation it records
/// is reported as failed (its client must not be told it succeeded).
pub(crate) async fn durable(audit: &dyn AuditSink, event: AuditEvent) -> Result<(), FsError> {
    let op = event.action.as_str();
    audit.record_durable(event).await.map_err(|err| {
        tracing::error!(op, error = %err, "operation reported as failed: its audit record is not durable");
        FsError::Failed(format!("audit record not durable: {err}"))
    })
}

#[cfg(test)]
pub(crate) mod tests;
