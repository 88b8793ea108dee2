//! Streams handed out by the file layer: a [`Download`] counts the bytes read and an
//! [`Upload`] the bytes written; each writes its audit record when it ends, and holds one
//! permit of the process-wide open-file budget until it is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::error::FsError;
use super::storage::{FileReader, StagedWrite};
use crate::audit::{Action, AuditEvent, AuditSink, Outcome};
use crate::identity::Principal;

/// An open file being downloaded. Reads and seeks like a file; audited on drop.
pub struct Download {
    reader: Box<dyn FileReader>,
    bytes: u64,
    event: Option<AuditEvent>,
    audit: Arc<dyn AuditSink>,
    _permit: OwnedSemaphorePermit,
}

impl Download {
    pub(super) fn new(
        reader: Box<dyn FileReader>,
        event: AuditEvent,
        audit: Arc<dyn AuditSink>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Download {
            reader,
            bytes: 0,
            event: Some(event),
            audit,
            _permit: permit,
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Up to `max` bytes (fewer only at the end), with as few copies as the storage can.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<bytes::Bytes> {
        let chunk = self.reader.read_chunk(max).await?;
        self.bytes += chunk.len() as u64;
        Ok(chunk)
    }
}

impl AsyncRead for Download {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.reader).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            self.bytes += (buf.filled().len() - before) as u64;
        }
        poll
    }
}

impl AsyncSeek for Download {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.reader).start_seek(position)
    }
    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.reader).poll_complete(cx)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(mut event) = self.event.take() {
            event.at_ms = chrono::Utc::now().timestamp_millis();
            self.audit.record(event.bytes(self.bytes));
        }
    }
}

/// A file being uploaded. Writes and seeks like a file; nothing appears under the real name
/// until [`Upload::commit`] (in `Replace` mode). Dropped without commit, it is discarded and
/// audited as failed.
pub struct Upload {
    staged: Option<Box<dyn StagedWrite>>,
    bytes: u64,
    event: Option<AuditEvent>,
    audit: Arc<dyn AuditSink>,
    /// Who writes, and whether they may truncate through this handle.
    truncate: TruncateRight,
    _permit: OwnedSemaphorePermit,
}

/// Whether [`Upload::set_len`] is allowed: truncating or extending changes the file's bytes,
/// which needs the rights to change an existing file — unless the upload is written under a
/// temporary name (`Replace`), where the only bytes are its own.
pub(super) enum TruncateRight {
    Allowed,
    Refused { who: Principal, path: String },
}

impl Upload {
    pub(super) fn new(
        staged: Box<dyn StagedWrite>,
        event: AuditEvent,
        audit: Arc<dyn AuditSink>,
        truncate: TruncateRight,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Upload {
            staged: Some(staged),
            bytes: 0,
            event: Some(event),
            audit,
            truncate,
            _permit: permit,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Truncates or extends the file being uploaded (pending writes must be flushed first).
    /// Refused (and audited) for an in-place upload by a principal that may only create.
    pub async fn set_len(&mut self, len: u64) -> Result<(), FsError> {
        if let TruncateRight::Refused { who, path } = &self.truncate {
            tracing::info!(user = %who.display_name(), key_id = who.key.as_ref().map(|k| k.id), protocol = %who.protocol, op = Action::SetAttributes.as_str(), path = %path, "truncation through a handle denied");
            let err = FsError::PermissionDenied;
            self.audit.record(
                AuditEvent::by(who, Action::SetAttributes, Outcome::Denied)
                    .path(path.as_str())
                    .reason(err.reason()),
            );
            return Err(err);
        }
        match self.staged.as_mut() {
            Some(staged) => Ok(staged.set_len(len).await?),
            None => Err(FsError::Failed("upload already finished".into())),
        }
    }

    /// Completes the upload: the file takes its real name.
    pub async fn commit(mut self) -> Result<u64, FsError> {
        let staged = self
            .staged
            .take()
            .ok_or_else(|| FsError::Failed("upload already finished".into()))?;
        let result = staged.commit().await.map_err(FsError::from);
        if let Some(mut event) = self.event.take() {
            event.at_ms = chrono::Utc::now().timestamp_millis();
            event = event.bytes(self.bytes);
            if let Err(err) = &result {
                event.outcome = Outcome::Failed;
                event = event.reason(err.reason());
            }
            self.audit.record(event);
        }
        result.map(|()| self.bytes)
    }

    fn writer(&mut self) -> io::Result<Pin<&mut (dyn super::FileWriter + '_)>> {
        match self.staged.as_mut() {
            Some(staged) => Ok(Pin::new(staged.writer())),
            None => Err(io::Error::other("upload already finished")),
        }
    }
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = match self.writer() {
            Ok(w) => w.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Poll::Ready(Ok(n)) = poll {
            self.bytes += n as u64;
        }
        poll
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.writer() {
            Ok(w) => w.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.writer() {
            Ok(w) => w.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncSeek for Upload {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        self.writer()?.start_seek(position)
    }
    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.writer() {
            Ok(w) => w.poll_complete(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut event) = self.event.take() {
            event.at_ms = chrono::Utc::now().timestamp_millis();
            event.outcome = Outcome::Failed;
            self.audit.record(
                event
                    .bytes(self.bytes)
                    .reason("upload abandoned before completion"),
            );
        }
    }
}
