//! Uploads staged in a local file: what an upload becomes when the bucket's memory budget
//! is spent ([`super::budget`]). The client writes into a file of the storage's staging
//! folder (any offset, any order, `set_len`: what a local disk allows); commit sends the
//! file as one multipart upload, with the same
//! no-replace condition as a streamed upload; dropping the upload removes the file. Nothing
//! is visible in the bucket before the commit completes.
//!
//! The send takes two parts (shared, or the lane kept for sends: see [`super::budget`]),
//! so it never waits for uploads whose clients stalled while holding the shared budget.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::budget::PartBudget;
use super::errors::{local_error, storage_error};
use crate::files::storage::{FileWriter, StagedWrite, StorageError, StorageErrorKind};

/// Bytes read from the staged file per write to the multipart upload.
const READ: usize = 1024 * 1024;

/// Where the object goes once the staged file is complete.
pub(super) struct Target {
    pub op: opendal::Operator,
    pub key: String,
    pub part_size: usize,
    pub if_not_exists: bool,
    pub budget: Arc<PartBudget>,
}

/// An upload staged in a local file.
pub(super) struct SpilledUpload {
    file: tokio::fs::File,
    /// Removed when the upload ends, whichever way.
    path: PathBuf,
    target: Target,
}

impl SpilledUpload {
    pub(super) async fn create(dir: &Path, target: Target) -> Result<SpilledUpload, StorageError> {
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|e| {
            StorageError::new(StorageErrorKind::Other, format!("no random name: {e}"))
        })?;
        let path = dir.join(format!("s3-upload-{}", hex::encode(name)));
        let mut options = tokio::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        let open = || options.open(&path);
        let file = match open().await {
            // The staging folder was removed while serving: made again, not left broken.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tokio::fs::create_dir_all(dir).await.ok();
                open().await
            }
            other => other,
        }
        .map_err(|e| {
            // Said as the local failure it is (a "not found" here is not the client's path).
            let mut err = local_error(&format!("staging an S3 upload in {}", dir.display()), e);
            if err.kind == StorageErrorKind::NotFound {
                err.kind = StorageErrorKind::Other;
            }
            err
        })?;
        tracing::debug!(key = %target.key, "S3 memory budget spent: upload staged in a local file");
        Ok(SpilledUpload { file, path, target })
    }

    /// Sends the staged file as the object.
    async fn send(&mut self) -> Result<(), StorageError> {
        let t = &self.target;
        let what = format!("reading the staged upload of {:?}", t.key);
        let local = |e: io::Error| local_error(&what, e);
        self.file.flush().await.map_err(local)?;
        self.file
            .seek(io::SeekFrom::Start(0))
            .await
            .map_err(local)?;
        let _parts = t.budget.take_for_send().await;
        let mut writer =
            t.op.writer_with(&t.key)
                .chunk(t.part_size)
                .concurrent(1)
                .if_not_exists(t.if_not_exists)
                .await
                .map_err(|e| storage_error("write", &t.key, &e))?;
        let sent = async {
            loop {
                let mut buf = BytesMut::with_capacity(READ);
                while buf.len() < READ {
                    if self.file.read_buf(&mut buf).await.map_err(local)? == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                writer
                    .write(buf.freeze())
                    .await
                    .map_err(|e| storage_error("upload", &t.key, &e))?;
            }
            writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| storage_error("complete upload", &t.key, &e))
        }
        .await;
        if sent.is_err()
            && let Err(err) = writer.abort().await
        {
            tracing::warn!(error = %super::errors::detail("abort upload", &t.key, &err), "S3 upload not aborted");
        }
        sent
    }
}

impl Drop for SpilledUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[async_trait::async_trait]
impl StagedWrite for SpilledUpload {
    fn writer(&mut self) -> &mut dyn FileWriter {
        &mut self.file
    }

    fn len_at_start(&self) -> u64 {
        0
    }

    async fn set_len(&mut self, len: u64) -> Result<(), StorageError> {
        self.file
            .set_len(len)
            .await
            .map_err(|e| local_error("staged upload", e))
    }

    /// Makes the staged file durable on the local disk (the object exists only at commit).
    async fn sync(&mut self) -> Result<(), StorageError> {
        self.file.flush().await.ok();
        self.file
            .sync_data()
            .await
            .map_err(|e| local_error("staged upload", e))
    }

    /// Sends in a task of its own: a caller that goes away mid-send (its client
    /// disconnected while the close was being answered) would otherwise drop the OpenDAL
    /// writer half way and leave a multipart upload and its parts in the bucket. The send
    /// completes (or, failing, is aborted) whatever the caller does.
    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        tokio::spawn(async move { self.send().await })
            .await
            .unwrap_or_else(|join| {
                Err(StorageError::new(
                    StorageErrorKind::Other,
                    format!("sending a staged upload: {join}"),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    //! On a real moto_server, with a budget of two parts: the second transfer finds it spent.

    use tokio::io::{AsyncSeekExt, AsyncWriteExt};

    use super::super::S3Storage;
    use super::super::tests::{config_for, get, p, pattern};
    use crate::config::S3Config;
    use crate::files::storage::{Overwrite, Storage, StorageErrorKind, WriteMode};
    use crate::test_support::{S3Provider, S3Server, TempDir};

    const MIB: usize = 1024 * 1024;

    /// A bucket with a budget of two 8 MiB parts, staging in a fresh folder.
    async fn tight_storage(moto: &S3Server, staging: &TempDir) -> (S3Storage, String) {
        let bucket = format!("filegate-{}", crate::secret::random_hex(6));
        moto.create_bucket(&bucket);
        let config = S3Config {
            transfer_memory_mib: 16,
            ..config_for(moto)
        };
        let storage = S3Storage::open(&bucket, "site", &config)
            .await
            .expect("open the S3 storage")
            .with_staging(staging.path())
            .expect("staging folder");
        (storage, bucket)
    }

    fn staged_files(staging: &TempDir) -> usize {
        std::fs::read_dir(staging.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != crate::files::staging::LOCK_FILE)
            .count()
    }

    #[tokio::test]
    async fn a_staged_upload_whose_commit_is_dropped_mid_send_completes_and_leaves_no_multipart_upload()
     {
        let Some(moto) = S3Server::start(S3Provider::Moto) else {
            return;
        };
        let staging = TempDir::new("s3-staging");
        let (storage, bucket) = tight_storage(&moto, &staging).await;
        // The budget's two parts held by a streaming upload: the next one is staged.
        let _holding = storage
            .begin_write(&p("/holding.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("first upload");
        let mut staged = storage
            .begin_write(&p("/staged.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("staged upload");
        assert_eq!(staged_files(&staging), 1);
        let data = pattern(40 * MIB + 5);
        staged.writer().write_all(&data).await.unwrap();
        staged.writer().flush().await.unwrap();
        // The caller gives up at once (a client gone during its close): the commit's future
        // is dropped while the multipart upload is being sent.
        let dropped =
            tokio::time::timeout(std::time::Duration::from_millis(5), staged.commit()).await;
        assert!(dropped.is_err(), "the send takes longer than 5 ms");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while staged_files(&staging) > 0 {
            assert!(std::time::Instant::now() < deadline, "the send never ended");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            get(&storage, "/staged.bin").await,
            data,
            "the upload completed"
        );
        assert!(
            moto.multipart_uploads(&bucket).is_empty(),
            "no multipart upload is left behind"
        );
    }

    #[tokio::test]
    async fn a_spent_budget_stages_the_upload_locally_in_any_order_and_sends_it_on_commit() {
        let Some(moto) = S3Server::start(S3Provider::Moto) else {
            return;
        };
        let staging = TempDir::new("s3-staging");
        std::fs::write(staging.path().join("s3-upload-left-by-a-crash"), b"old").unwrap();
        let _claim = crate::files::staging::claim(staging.path()).expect("claim");
        let (storage, bucket) = tight_storage(&moto, &staging).await;
        assert_eq!(
            staged_files(&staging),
            0,
            "leftovers are cleared by the claim"
        );
        let data = pattern(20 * MIB + 123);
        let mut before = storage
            .begin_write(&p("/before.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("upload");
        before.writer().write_all(&data).await.unwrap();
        before.writer().flush().await.unwrap();
        before.commit().await.expect("commit");

        // The first upload streams with both parts of the budget.
        let mut first = storage
            .begin_write(&p("/first.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("first upload");
        assert_eq!(staged_files(&staging), 0, "the first upload streams");
        // The second finds the budget spent: it is staged in a local file.
        let mut second = storage
            .begin_write(&p("/second.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("second upload");
        assert_eq!(staged_files(&staging), 1, "the second upload is staged");
        // A download meanwhile reads without read-ahead, and reads right.
        assert_eq!(get(&storage, "/before.bin").await, data);
        let (head, tail) = data.split_at(9 * MIB);
        // Out of order, and a write behind the end: what a staged file allows.
        let w = second.writer();
        w.seek(std::io::SeekFrom::Start(head.len() as u64))
            .await
            .unwrap();
        w.write_all(tail).await.unwrap();
        w.seek(std::io::SeekFrom::Start(0)).await.unwrap();
        w.write_all(&[0xAA; 4096]).await.unwrap();
        w.seek(std::io::SeekFrom::Start(0)).await.unwrap();
        w.write_all(head).await.unwrap();
        w.flush().await.unwrap();
        second.sync().await.expect("sync a staged upload");
        assert_eq!(
            storage
                .metadata(&p("/second.bin"))
                .await
                .map_err(|e| e.kind)
                .err(),
            Some(StorageErrorKind::NotFound),
            "nothing is visible before the commit"
        );
        first.writer().write_all(&data[..3 * MIB]).await.unwrap();
        first.writer().flush().await.unwrap();
        first.commit().await.expect("commit the streamed upload");
        second.commit().await.expect("commit the staged upload");
        assert_eq!(staged_files(&staging), 0, "the staged file is removed");
        assert_eq!(get(&storage, "/second.bin").await, data);
        assert_eq!(get(&storage, "/first.bin").await, data[..3 * MIB]);
        assert!(moto.multipart_uploads(&bucket).is_empty());
    }

    #[tokio::test]
    async fn a_staged_upload_dropped_or_refused_leaves_nothing() {
        let Some(moto) = S3Server::start(S3Provider::Moto) else {
            return;
        };
        let staging = TempDir::new("s3-staging");
        let (storage, bucket) = tight_storage(&moto, &staging).await;
        let _streaming = storage
            .begin_write(
                &p("/holds-the-budget"),
                WriteMode::Replace,
                Overwrite::Allow,
            )
            .await
            .expect("first upload");

        // Dropped: no object, no staged file, no multipart upload.
        let mut dropped = storage
            .begin_write(&p("/dropped.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("staged upload");
        dropped.writer().write_all(&pattern(MIB)).await.unwrap();
        drop(dropped);
        assert_eq!(staged_files(&staging), 0);
        assert!(storage.metadata(&p("/dropped.bin")).await.is_err());

        // No-replace: a file that appeared meanwhile is kept, the staged upload refused.
        let mut refused = storage
            .begin_write(&p("/taken.bin"), WriteMode::Replace, Overwrite::Refuse)
            .await
            .expect("staged upload");
        refused.writer().write_all(b"late").await.unwrap();
        refused.writer().flush().await.unwrap();
        let mut other = storage
            .begin_write(&p("/taken.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("another staged upload");
        other.writer().write_all(b"first").await.unwrap();
        other.writer().flush().await.unwrap();
        other.commit().await.expect("the other upload");
        assert_eq!(
            refused.commit().await.map_err(|e| e.kind).err(),
            Some(StorageErrorKind::AlreadyExists)
        );
        assert_eq!(get(&storage, "/taken.bin").await, b"first");
        assert_eq!(staged_files(&staging), 0);
        assert!(moto.multipart_uploads(&bucket).is_empty());

        // The staging folder removed while serving is made again at the next upload.
        std::fs::remove_dir(staging.path()).unwrap();
        let mut again = storage
            .begin_write(&p("/again.bin"), WriteMode::Replace, Overwrite::Allow)
            .await
            .expect("staged upload after the folder was removed");
        again.writer().write_all(b"again").await.unwrap();
        again.writer().flush().await.unwrap();
        again.commit().await.expect("commit");
        assert_eq!(get(&storage, "/again.bin").await, b"again");
    }
}
