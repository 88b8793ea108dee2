//! Uploads in progress: bytes written at the end stream into an OpenDAL writer (multipart
//! upload, parts of `part_size_mib`, `uploads_in_flight` in flight) run by a task of its
//! own; commit completes the upload, dropping the upload (or a failure) aborts it, so an
//! interrupted upload never becomes a visible object.
//!
//! The write position is the caller's: writes at the end are sent; writes ahead of the end
//! (out-of-order SFTP writes) are parked in memory, bounded by [`PARK_LIMIT`], until the
//! gap before them fills; a write behind the end would change bytes already sent, and is
//! refused as unsupported.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncSeek, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use super::budget::Parts;
use super::errors::{storage_error, unsupported};
use crate::files::storage::{FileWriter, StagedWrite, StorageError, StorageErrorKind};

/// Bytes gathered before they are handed to the upload task.
const BATCH: usize = 1024 * 1024;
/// Bytes written ahead of the end that an upload may hold until the gap fills.
pub(super) const PARK_LIMIT: usize = 16 * 1024 * 1024;

enum Msg {
    Data(Bytes),
    Commit(oneshot::Sender<Result<(), StorageError>>),
}

/// Why the upload task stopped, for the writer's next call.
type Failure = Arc<Mutex<Option<(StorageErrorKind, String)>>>;

/// An upload to one object key.
pub(super) struct S3Upload {
    writer: S3Writer,
}

/// The upload's `AsyncWrite + AsyncSeek` side.
pub(super) struct S3Writer {
    key: String,
    tx: PollSender<Msg>,
    /// Written at the end, not yet handed to the task.
    buf: BytesMut,
    /// Bytes written contiguously from the start (sent or in `buf`).
    end: u64,
    /// Where the next write goes.
    pos: u64,
    /// Writes ahead of `end`, by offset.
    parked: BTreeMap<u64, Bytes>,
    parked_bytes: usize,
    failure: Failure,
}

impl S3Upload {
    /// Starts the task that feeds `writer` (nothing is sent before the first part fills);
    /// the task holds `parts` of the memory budget until the upload ends.
    pub(super) fn start(writer: opendal::Writer, key: String, parts: Parts) -> S3Upload {
        let (tx, rx) = mpsc::channel(1);
        let failure = Failure::default();
        tokio::spawn(run(writer, key.clone(), rx, failure.clone(), parts));
        S3Upload {
            writer: S3Writer {
                key,
                tx: PollSender::new(tx),
                buf: BytesMut::new(),
                end: 0,
                pos: 0,
                parked: BTreeMap::new(),
                parked_bytes: 0,
                failure,
            },
        }
    }
}

/// The upload task: writes what arrives; completes on `Commit`; aborts when the channel
/// closes without one (the upload was dropped) or a write fails. `parts` go back to the
/// budget before the commit is answered.
async fn run(
    mut writer: opendal::Writer,
    key: String,
    mut rx: mpsc::Receiver<Msg>,
    failure: Failure,
    parts: Parts,
) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Data(bytes) => {
                if let Err(err) = writer.write(bytes).await {
                    let err = storage_error("upload", &key, &err);
                    tracing::warn!(error = %err.detail, "S3 upload failed; aborting it");
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((err.kind, err.detail));
                    abort(&mut writer, &key).await;
                    return;
                }
            }
            Msg::Commit(reply) => {
                let result = writer
                    .close()
                    .await
                    .map(|_| ())
                    .map_err(|err| storage_error("complete upload", &key, &err));
                if result.is_err() {
                    abort(&mut writer, &key).await;
                }
                drop(parts);
                let _ = reply.send(result);
                return;
            }
        }
    }
    abort(&mut writer, &key).await;
}

async fn abort(writer: &mut opendal::Writer, key: &str) {
    if let Err(err) = writer.abort().await {
        // Left for the periodic clean-up of abandoned uploads.
        tracing::warn!(error = %super::errors::detail("abort upload", key, &err), "S3 upload not aborted");
    }
}

impl S3Writer {
    /// The task's failure (or a generic one if it ended without saying why).
    fn failed(&self) -> StorageError {
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some((kind, detail)) => StorageError::new(*kind, detail.clone()),
            None => StorageError::new(
                StorageErrorKind::Other,
                format!("s3 upload {:?}: the upload stopped", self.key),
            ),
        }
    }

    fn failed_io(&self) -> io::Error {
        io::Error::other(self.failed().detail)
    }

    /// Hands `buf` to the task (waiting for room in the channel).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if ready!(self.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(self.failed_io()));
        }
        let data = self.buf.split().freeze();
        if self.tx.send_item(Msg::Data(data)).is_err() {
            return Poll::Ready(Err(self.failed_io()));
        }
        Poll::Ready(Ok(()))
    }

    /// Keeps a write ahead of the end until the bytes before it arrive.
    fn park(&mut self, data: &[u8]) -> io::Result<()> {
        if self.parked_bytes + data.len() > PARK_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "writes more than {} MiB ahead of the end are not supported on S3 storage",
                    PARK_LIMIT >> 20
                ),
            ));
        }
        let data = Bytes::copy_from_slice(data);
        self.parked_bytes += data.len();
        if let Some(old) = self.parked.insert(self.pos, data) {
            self.parked_bytes -= old.len();
        }
        Ok(())
    }

    /// Moves parked writes that now continue the end into `buf`.
    fn unpark(&mut self) {
        while let Some(entry) = self.parked.first_entry() {
            let offset = *entry.key();
            if offset > self.end {
                break;
            }
            let data = entry.remove();
            self.parked_bytes -= data.len();
            let stop = offset + data.len() as u64;
            if stop > self.end {
                self.buf
                    .extend_from_slice(&data[(self.end - offset) as usize..]);
                self.end = stop;
            }
        }
    }
}

impl AsyncWrite for S3Writer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos < this.end {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "writing at offset {} is not supported on S3 storage: the upload has \
                     sent {} bytes, and is written in order",
                    this.pos, this.end
                ),
            )));
        }
        if this.pos > this.end {
            this.park(data)?;
            this.pos += data.len() as u64;
            return Poll::Ready(Ok(data.len()));
        }
        if this.buf.len() >= BATCH {
            ready!(this.poll_send(cx))?;
        }
        this.buf.extend_from_slice(data);
        this.end += data.len() as u64;
        this.pos = this.end;
        this.unpark();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx)
    }
}

impl AsyncSeek for S3Writer {
    /// Any position is accepted here; a write behind the end is what fails.
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        let target = match position {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            io::SeekFrom::End(d) => self.end.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

#[async_trait::async_trait]
impl StagedWrite for S3Upload {
    fn writer(&mut self) -> &mut dyn FileWriter {
        &mut self.writer
    }

    fn len_at_start(&self) -> u64 {
        0
    }

    /// Only the length the upload already has (an SFTP client truncating a new file).
    async fn set_len(&mut self, len: u64) -> Result<(), StorageError> {
        if len == self.writer.end && self.writer.parked.is_empty() {
            return Ok(());
        }
        Err(unsupported("changing the length of an upload"))
    }

    /// Hands what was written to the upload. Parts become durable only at commit: an
    /// object store keeps no partial file.
    async fn sync(&mut self) -> Result<(), StorageError> {
        let writer = &mut self.writer;
        std::future::poll_fn(|cx| writer.poll_send(cx)).await?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let writer = &mut self.writer;
        std::future::poll_fn(|cx| writer.poll_send(cx)).await?;
        if let Some((&offset, _)) = writer.parked.first_key_value() {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                format!(
                    "s3 upload {:?}: bytes from offset {offset} were written, but never those \
                     from {} (the upload is aborted)",
                    writer.key, writer.end
                ),
            ));
        }
        let (reply, answer) = oneshot::channel();
        std::future::poll_fn(|cx| writer.tx.poll_reserve(cx))
            .await
            .map_err(|_| writer.failed())?;
        writer
            .tx
            .send_item(Msg::Commit(reply))
            .map_err(|_| writer.failed())?;
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(writer.failed()),
        }
    }
}
