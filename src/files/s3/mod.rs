//! S3-compatible object storage (`[storage] url = "s3://BUCKET/PREFIX"`), through OpenDAL.
//!
//! A site path `/a/b.txt` is the object `PREFIX/a/b.txt`. Folders are prefixes: an empty
//! folder is a marker object `PREFIX/a/` (what `create_dir` writes), and a prefix with
//! objects under it is a folder whether it has a marker or not. What an object store cannot
//! do is refused before anything changes ([`StorageErrorKind::Unsupported`]): appending,
//! writing in place or behind the end of an upload, setting times or lengths, and renaming a
//! folder that holds something (unless `storage.s3.rename_folders`, which copies each
//! object: not atomic). A file rename is a server-side copy then a delete.
//!
//! Uploads ([`upload`]) stream as multipart uploads completed on commit and aborted when
//! dropped; `Overwrite::Refuse` is `If-None-Match: *` on the final request, so a file that
//! appeared meanwhile is never replaced. Requests are retried with backoff on throttling,
//! 5xx answers and timeouts (OpenDAL's `RetryLayer` over its `TimeoutLayer`).

mod abandoned;
mod budget;
mod errors;
mod list;
mod reader;
mod spill;
#[cfg(test)]
mod tests;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};

use super::storage::{
    Capabilities, EntryChunks, EntryKind, FileReader, Metadata, Overwrite, StagedWrite, Storage,
    StorageError, StorageErrorKind, WriteMode,
};
use crate::config::S3Config;
use crate::path::SitePath;
use errors::{error, storage_error, unsupported};

/// Files in one bucket, under one prefix.
pub struct S3Storage {
    op: Operator,
    /// Aborts multipart uploads left behind (`None`: `abandoned_upload_hours = 0`).
    sweeper: Option<Arc<abandoned::Sweeper>>,
    bucket: String,
    part_size: usize,
    uploads_in_flight: usize,
    reads_in_flight: usize,
    /// Part buffers shared by every transfer of this bucket (`transfer_memory_mib`).
    budget: Arc<budget::PartBudget>,
    /// Where uploads are staged once the budget is spent (`None`: they wait for parts).
    staging: Option<PathBuf>,
    rename_folders: bool,
}

/// What is wrong with the configured bucket, on one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct S3OpenError(String);

impl S3Storage {
    /// Connects to `bucket` (objects under `prefix`) and checks that it can be listed with
    /// the configured credentials, so that a missing bucket or a wrong key fails at start.
    pub async fn open(
        bucket: &str,
        prefix: &str,
        config: &S3Config,
    ) -> Result<S3Storage, S3OpenError> {
        let region = match config.region.trim() {
            "" => "us-east-1",
            region => region,
        };
        let client = http_client().map_err(S3OpenError)?;
        let sweeper = abandoned::Sweeper::new(client.clone(), bucket, prefix, config, region);
        let storage = S3Storage {
            op: operator(bucket, prefix, config, region, client)?,
            sweeper: sweeper.map(Arc::new),
            bucket: bucket.to_owned(),
            part_size: config.part_size_mib as usize * 1024 * 1024,
            uploads_in_flight: config.uploads_in_flight,
            reads_in_flight: config.reads_in_flight,
            budget: Arc::new(budget::PartBudget::new(
                (config.transfer_memory_mib / config.part_size_mib).max(2) as u32,
            )),
            staging: None,
            rename_folders: config.rename_folders,
        };
        let mut probe = storage
            .op
            .lister_with("/")
            .limit(1)
            .await
            .map_err(|e| open_error(bucket, &e))?;
        if let Some(Err(e)) = probe.next().await {
            return Err(open_error(bucket, &e));
        }
        Ok(storage)
    }

    /// Stages uploads in `dir` (a private folder on the local disk, made if missing) once the
    /// memory budget is spent. (What a crash left there is cleared by the serving process's
    /// claim on the folder, `files::staging`.)
    pub fn with_staging(mut self, dir: &Path) -> std::io::Result<S3Storage> {
        std::fs::create_dir_all(dir)?;
        self.staging = Some(dir.to_owned());
        Ok(self)
    }

    /// Aborts abandoned multipart uploads now and then daily, in the background (see
    /// [`abandoned`]); nothing when `abandoned_upload_hours = 0`.
    pub fn sweep_abandoned_uploads(&self) {
        if let Some(sweeper) = &self.sweeper {
            abandoned::spawn(sweeper.clone(), self.bucket.clone());
        }
    }

    /// One sweep of abandoned multipart uploads; how many were aborted.
    pub async fn sweep_abandoned_uploads_now(&self) -> Result<usize, String> {
        match &self.sweeper {
            Some(sweeper) => sweeper.sweep().await,
            None => Ok(0),
        }
    }

    /// What is under a folder key, up to `limit` entries (the folder's own marker left out).
    async fn children(&self, dir: &str, limit: usize) -> Result<Vec<opendal::Entry>, StorageError> {
        let mut lister = self
            .op
            .lister_with(dir)
            .limit(limit + 1)
            .await
            .map_err(|e| storage_error("list", dir, &e))?;
        let mut found = Vec::new();
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| storage_error("list", dir, &e))?;
            if entry.path() != dir && entry.path().trim_start_matches('/') != dir {
                found.push(entry);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Whether the folder exists: the root, a marker, or anything under the prefix.
    async fn dir_exists(&self, path: &SitePath) -> Result<bool, StorageError> {
        if path.is_root() {
            return Ok(true);
        }
        let dir = dir_key(path);
        let mut lister = self
            .op
            .lister_with(&dir)
            .limit(1)
            .await
            .map_err(|e| storage_error("list", &dir, &e))?;
        match lister.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(storage_error("list", &dir, &e)),
        }
    }

    /// The object of a file, if there is one.
    async fn file(&self, path: &SitePath) -> Result<Option<Metadata>, StorageError> {
        if path.is_root() {
            return Ok(None);
        }
        let key = file_key(path);
        match self.op.stat(&key).await {
            Ok(meta) if meta.is_file() => Ok(Some(Metadata {
                kind: EntryKind::File,
                len: meta.content_length(),
                modified: meta.last_modified().map(SystemTime::from),
                accessed: None,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage_error("stat", &key, &e)),
        }
    }

    /// Fails unless the folder that would hold `path` exists (as on a disk).
    async fn parent_must_exist(&self, path: &SitePath) -> Result<(), StorageError> {
        let Some(parent) = path.parent() else {
            return Err(error(
                StorageErrorKind::PermissionDenied,
                "the root has no parent",
            ));
        };
        if self.dir_exists(&parent).await? {
            return Ok(());
        }
        if self.file(&parent).await?.is_some() {
            return Err(error(
                StorageErrorKind::NotADirectory,
                format!("{} is a file", parent.as_str()),
            ));
        }
        Err(error(
            StorageErrorKind::NotFound,
            format!("no folder {}", parent.as_str()),
        ))
    }

    /// Fails with `AlreadyExists` when a file or folder is at `path`.
    async fn must_be_free(&self, path: &SitePath) -> Result<(), StorageError> {
        if path.is_root() || self.file(path).await?.is_some() || self.dir_exists(path).await? {
            return Err(error(
                StorageErrorKind::AlreadyExists,
                format!("{} exists", path.as_str()),
            ));
        }
        Ok(())
    }

    /// Keeps the folder holding `path` after what was in it went away: a folder that existed
    /// only through its objects gets a marker once it is empty, as a disk keeps an empty one.
    async fn keep_parent(&self, path: &SitePath) -> Result<(), StorageError> {
        let Some(parent) = path.parent().filter(|p| !p.is_root()) else {
            return Ok(());
        };
        if !self.dir_exists(&parent).await? {
            let dir = dir_key(&parent);
            self.op
                .create_dir(&dir)
                .await
                .map_err(|e| storage_error("create marker", &dir, &e))?;
        }
        Ok(())
    }

    /// Server-side copy of one object.
    async fn copy_object(&self, from: &str, to: &str, refuse: bool) -> Result<(), StorageError> {
        self.op
            .copy_with(from, to)
            .if_not_exists(refuse)
            .await
            .map(|_| ())
            .map_err(|e| storage_error("copy", from, &e))
    }

    async fn rename_dir(&self, from: &SitePath, to: &SitePath) -> Result<(), StorageError> {
        if to.is_within(from) {
            return Err(error(
                StorageErrorKind::InvalidName,
                "a folder cannot be moved into itself",
            ));
        }
        self.parent_must_exist(to).await?;
        self.must_be_free(to).await?;
        let (from_dir, to_dir) = (dir_key(from), dir_key(to));
        let holds_something = !self.children(&from_dir, 1).await?.is_empty();
        if holds_something && !self.rename_folders {
            return Err(error(
                StorageErrorKind::Unsupported,
                format!(
                    "renaming the folder {} that holds files is not supported on S3 storage \
                     (storage.s3.rename_folders = true copies each object)",
                    from.as_str()
                ),
            ));
        }
        // Every object under the folder (its marker too), copied, then the originals deleted.
        let mut lister = self
            .op
            .lister_with(&from_dir)
            .recursive(true)
            .await
            .map_err(|e| storage_error("list", &from_dir, &e))?;
        let mut moved = Vec::new();
        while let Some(entry) = lister.next().await {
            let entry = entry.map_err(|e| storage_error("list", &from_dir, &e))?;
            let key = entry.path().to_owned();
            let Some(rest) = key.strip_prefix(&from_dir) else {
                continue;
            };
            let target = format!("{to_dir}{rest}");
            if key.ends_with('/') {
                self.op
                    .create_dir(&target)
                    .await
                    .map_err(|e| storage_error("create marker", &target, &e))?;
            } else {
                self.copy_object(&key, &target, false).await?;
            }
            moved.push(key);
        }
        if !moved.contains(&from_dir) {
            // An implicit folder: give the new one a marker, so it stays when emptied.
            self.op
                .create_dir(&to_dir)
                .await
                .map_err(|e| storage_error("create marker", &to_dir, &e))?;
        }
        for key in moved {
            self.op
                .delete(&key)
                .await
                .map_err(|e| storage_error("delete", &key, &e))?;
        }
        self.keep_parent(from).await
    }
}

/// The one line for a failed check of the bucket at start. Refused credentials say which
/// settings to fix and the provider's code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`,
/// `AccessDenied`), never a key; anything else is the service's message.
fn open_error(bucket: &str, err: &opendal::Error) -> S3OpenError {
    if err.kind() != opendal::ErrorKind::PermissionDenied {
        return S3OpenError(errors::detail("list", "/", err));
    }
    let code = errors::s3_code(err).unwrap_or_else(|| "AccessDenied".to_owned());
    S3OpenError(format!(
        "access denied by the S3 endpoint to bucket {bucket:?} ({code}): check \
         storage.s3.access_key_id and storage.s3.secret_access_key (or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY) and the bucket's policy"
    ))
}

/// The OpenDAL operator for the bucket: path or virtual-host style, static or ambient
/// credentials, our own rustls (ring) HTTP client, timeouts and retries with backoff.
fn operator(
    bucket: &str,
    prefix: &str,
    config: &S3Config,
    region: &str,
    client: reqwest::Client,
) -> Result<Operator, S3OpenError> {
    let mut builder = opendal::services::S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .region(region);
    if !config.endpoint.trim().is_empty() {
        builder = builder.endpoint(config.endpoint.trim());
    }
    if !config.path_style {
        builder = builder.enable_virtual_host_style();
    }
    if !config.access_key_id.trim().is_empty() {
        // Only what the config (or AWS_* variables, already merged into it) says: no
        // ~/.aws files or instance metadata.
        builder = builder
            .access_key_id(config.access_key_id.trim())
            .secret_access_key(config.secret_access_key.0.trim())
            .disable_config_load();
    }
    let op =
        Operator::new(builder).map_err(|e| S3OpenError(errors::detail("configure", bucket, &e)))?;
    let context = op
        .context()
        .with_http_transport(opendal::HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        ));
    Ok(op
        .with_context(context)
        .layer(
            TimeoutLayer::new()
                .with_timeout(Duration::from_secs(60))
                .with_io_timeout(Duration::from_secs(30)),
        )
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(5)
                // One debug line per retry (OpenDAL's default is a warning of ~15 lines with
                // a backtrace each): the operation's final failure is what its caller
                // reports, once.
                .with_notify(|event: opendal::layers::RetryEvent<'_>| {
                    tracing::debug!(
                        operation = ?event.op,
                        attempt = event.attempt,
                        retry_after_ms = event.retry_after.as_millis() as u64,
                        error = %event.err,
                        "retrying an S3 request"
                    );
                }),
        ))
}

/// An HTTP client with rustls on ring, trusting the system's roots and webpki-roots.
fn http_client() -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("S3 TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("S3 HTTP client: {e}"))
}

/// The object key of a file, relative to the prefix.
fn file_key(path: &SitePath) -> String {
    path.relative().to_owned()
}

/// The key of a folder (its marker, and the prefix of what it holds): `a/b/`; the root is
/// `/` in OpenDAL's terms.
fn dir_key(path: &SitePath) -> String {
    if path.is_root() {
        "/".to_owned()
    } else {
        format!("{}/", path.relative())
    }
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    fn capabilities(&self, _path: &SitePath) -> Capabilities {
        Capabilities {
            random_write: false,
            append: false,
            rename_dir: self.rename_folders,
            atomic_rename: false,
            server_copy: true,
            set_times: false,
            set_len: false,
        }
    }

    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError> {
        if let Some(meta) = self.file(path).await? {
            return Ok(meta);
        }
        if self.dir_exists(path).await? {
            return Ok(Metadata {
                kind: EntryKind::Dir,
                len: 0,
                modified: None,
                accessed: None,
            });
        }
        Err(error(
            StorageErrorKind::NotFound,
            format!("nothing at {}", path.as_str()),
        ))
    }

    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError> {
        if !self.dir_exists(path).await? {
            return Err(match self.file(path).await? {
                Some(_) => error(
                    StorageErrorKind::NotADirectory,
                    format!("{} is a file", path.as_str()),
                ),
                None => error(
                    StorageErrorKind::NotFound,
                    format!("no folder {}", path.as_str()),
                ),
            });
        }
        let dir = dir_key(path);
        let lister = self
            .op
            .lister_with(&dir)
            .await
            .map_err(|e| storage_error("list", &dir, &e))?;
        Ok(EntryChunks::new(list::S3Entries::new(lister, dir)))
    }

    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError> {
        let Some(meta) = self.file(path).await? else {
            return Err(if self.dir_exists(path).await? {
                error(
                    StorageErrorKind::IsADirectory,
                    format!("{} is a folder", path.as_str()),
                )
            } else {
                error(
                    StorageErrorKind::NotFound,
                    format!("no file {}", path.as_str()),
                )
            });
        };
        let key = file_key(path);
        // Read-ahead in parts of the budget while there are some; else one streamed GET.
        let parts = self.budget.try_take(self.reads_in_flight as u32, 1);
        let reader = match &parts {
            Some(parts) => {
                self.op
                    .reader_with(&key)
                    .chunk(self.part_size)
                    .concurrent(parts.count())
                    .await
            }
            None => self.op.reader_with(&key).await,
        }
        .map_err(|e| storage_error("read", &key, &e))?;
        Ok(Box::new(reader::S3Reader::new(
            reader, key, meta.len, parts,
        )))
    }

    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
        overwrite: Overwrite,
    ) -> Result<Box<dyn StagedWrite>, StorageError> {
        match mode {
            WriteMode::Replace => {}
            WriteMode::Append => return Err(unsupported("appending to a file")),
            WriteMode::Update => return Err(unsupported("writing into an existing file")),
        }
        if path.is_root() {
            return Err(error(
                StorageErrorKind::IsADirectory,
                "the root is a folder",
            ));
        }
        self.parent_must_exist(path).await?;
        if self.dir_exists(path).await? {
            return Err(error(
                StorageErrorKind::IsADirectory,
                format!("{} is a folder", path.as_str()),
            ));
        }
        if overwrite == Overwrite::Refuse && self.file(path).await?.is_some() {
            // Early answer; the commit's `If-None-Match: *` closes the race.
            return Err(error(
                StorageErrorKind::AlreadyExists,
                format!("{} exists", path.as_str()),
            ));
        }
        let key = file_key(path);
        let if_not_exists = overwrite == Overwrite::Refuse;
        // Streamed with parts of the budget (one filling, the rest in flight) while there
        // are some; else staged in a local file and sent at commit.
        let parts = match self.budget.try_take(self.uploads_in_flight as u32 + 1, 2) {
            Some(parts) => parts,
            None => match &self.staging {
                Some(dir) => {
                    let target = spill::Target {
                        op: self.op.clone(),
                        key,
                        part_size: self.part_size,
                        if_not_exists,
                        budget: self.budget.clone(),
                    };
                    return Ok(Box::new(spill::SpilledUpload::create(dir, target).await?));
                }
                None => self.budget.take(2).await,
            },
        };
        let writer = self
            .op
            .writer_with(&key)
            .chunk(self.part_size)
            .concurrent(parts.count() - 1)
            .if_not_exists(if_not_exists)
            .await
            .map_err(|e| storage_error("write", &key, &e))?;
        Ok(Box::new(upload::S3Upload::start(writer, key, parts)))
    }

    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        self.parent_must_exist(path).await?;
        self.must_be_free(path).await?;
        let dir = dir_key(path);
        self.op
            .create_dir(&dir)
            .await
            .map_err(|e| storage_error("create marker", &dir, &e))
    }

    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError> {
        if self.file(path).await?.is_none() {
            return Err(if self.dir_exists(path).await? {
                error(
                    StorageErrorKind::IsADirectory,
                    format!("{} is a folder", path.as_str()),
                )
            } else {
                error(
                    StorageErrorKind::NotFound,
                    format!("no file {}", path.as_str()),
                )
            });
        }
        let key = file_key(path);
        self.op
            .delete(&key)
            .await
            .map_err(|e| storage_error("delete", &key, &e))?;
        self.keep_parent(path).await
    }

    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(error(StorageErrorKind::PermissionDenied, "the root stays"));
        }
        if !self.dir_exists(path).await? {
            return Err(match self.file(path).await? {
                Some(_) => error(
                    StorageErrorKind::NotADirectory,
                    format!("{} is a file", path.as_str()),
                ),
                None => error(
                    StorageErrorKind::NotFound,
                    format!("no folder {}", path.as_str()),
                ),
            });
        }
        let dir = dir_key(path);
        if !self.children(&dir, 1).await?.is_empty() {
            return Err(error(
                StorageErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.as_str()),
            ));
        }
        self.op
            .delete(&dir)
            .await
            .map_err(|e| storage_error("delete marker", &dir, &e))?;
        self.keep_parent(path).await
    }

    async fn rename(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(error(
                StorageErrorKind::PermissionDenied,
                "the root cannot move",
            ));
        }
        if from == to {
            return self.metadata(from).await.map(|_| ());
        }
        if self.file(from).await?.is_none() {
            if self.dir_exists(from).await? {
                return self.rename_dir(from, to).await;
            }
            return Err(error(
                StorageErrorKind::NotFound,
                format!("nothing at {}", from.as_str()),
            ));
        }
        self.copy(from, to, overwrite).await?;
        let key = file_key(from);
        self.op
            .delete(&key)
            .await
            .map_err(|e| storage_error("delete", &key, &e))?;
        self.keep_parent(from).await
    }

    async fn set_times(
        &self,
        _path: &SitePath,
        _accessed: Option<SystemTime>,
        _modified: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        Err(unsupported("setting a file's times"))
    }

    async fn set_len(&self, _path: &SitePath, _len: u64) -> Result<(), StorageError> {
        Err(unsupported("changing a file's length"))
    }

    async fn copy(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        if self.file(from).await?.is_none() {
            return Err(if self.dir_exists(from).await? {
                error(
                    StorageErrorKind::IsADirectory,
                    format!("{} is a folder", from.as_str()),
                )
            } else {
                error(
                    StorageErrorKind::NotFound,
                    format!("no file {}", from.as_str()),
                )
            });
        }
        if to.is_root() {
            return Err(error(
                StorageErrorKind::IsADirectory,
                "the root is a folder",
            ));
        }
        self.parent_must_exist(to).await?;
        if self.dir_exists(to).await? {
            return Err(error(
                StorageErrorKind::IsADirectory,
                format!("{} is a folder", to.as_str()),
            ));
        }
        let refuse = overwrite == Overwrite::Refuse;
        if refuse && self.file(to).await?.is_some() {
            // Checked first: S3 honours `If-None-Match: *` on a copy, some compatible
            // servers (moto) ignore it, so between this check and the copy a file that
            // appears at `to` may be replaced there.
            return Err(error(
                StorageErrorKind::AlreadyExists,
                format!("{} exists", to.as_str()),
            ));
        }
        self.copy_object(&file_key(from), &file_key(to), refuse)
            .await
    }
}
