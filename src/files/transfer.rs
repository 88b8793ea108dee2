//! Streams handed out by the file layer: a [`Download`] counts the bytes read and an
//! [`Upload`] the bytes written; each writes its audit record when it ends, and holds one
//! place in the open-file budget until it is dropped. An upload never writes past the end
//! of its file: seeking beyond it, or extending it with `set_len`, is refused, so that no
//! write leaves a (sparse) hole.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::budget::OpenPermit;
use super::error::FsError;
use super::storage::{FileReader, StagedWrite, WriteMode};
use crate::audit::{Action, AuditEvent, AuditSink, Outcome};
use crate::identity::Principal;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// An open file being downloaded. Reads and seeks like a file; audited on drop.
pub struct Download {
    reader: Box<dyn FileReader>,
    bytes: u64,
    event: Option<AuditEvent>,
    audit: Arc<dyn AuditSink>,
    _permit: OpenPermit,
}

impl Download {
    pub(super) fn new(
        reader: Box<dyn FileReader>,
        event: AuditEvent,
        audit: Arc<dyn AuditSink>,
        permit: OpenPermit,
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

    /// [`Download::read_chunk`] for a reader that reads ahead of what it hands out (SFTP): the
    /// bytes are not counted here but when the caller reports them sent ([`Download::sent`]),
    /// so the audit record says what the client received, not what was read ahead or read
    /// twice.
    pub async fn read_ahead(&mut self, max: usize) -> io::Result<bytes::Bytes> {
        self.reader.read_chunk(max).await
    }

    /// Counts bytes of [`Download::read_ahead`] handed to the client.
    pub fn sent(&mut self, n: u64) {
        self.bytes += n;
    }
}

impl Download {
    /// Sends the rest of the file to `socket` with `sendfile(2)` when the storage offers the
    /// local file (its fast path), counting the bytes for the audit record exactly as reads
    /// do and reporting each piece to `progress`. `Ok(None)` when it offers none: the caller
    /// then reads chunks. `idle` bounds each wait for the client to accept more.
    pub async fn send_to(
        &mut self,
        socket: &super::zerocopy::SendSocket,
        idle: std::time::Duration,
        mut progress: impl FnMut(u64) + Send,
    ) -> io::Result<Option<u64>> {
        let Some(source) = self.reader.local_source() else {
            return Ok(None);
        };
        let (fd, mut offset) = (source.fd, source.pos);
        let bytes = &mut self.bytes;
        let mut sent = 0u64;
        let result = super::zerocopy::send(socket, fd, &mut offset, idle, &mut |n| {
            *bytes += n;
            sent += n;
            progress(n);
        })
        .await;
        // Reads (if any) continue where the send stopped.
        rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(offset)).map_err(io::Error::from)?;
        result.map(|()| Some(sent))
    }
}

impl Download {
    /// Whether the storage offers this download's local file to send with `sendfile(2)`
    /// ([`Download::send_at`]).
    pub fn can_send_at(&mut self) -> bool {
        self.reader.local_source().is_some()
    }

    /// One non-blocking `sendfile(2)` of up to `max` bytes of the file from `offset` to
    /// `socket`, for a connection that drives its own writes (plain HTTP): the bytes sent,
    /// counted for the audit record as reads are. The file's position is left alone.
    /// `Ok(None)` when the storage offers no local file; `Ok(Some(0))` when the file ends at
    /// `offset` (it shrank); `WouldBlock` when the socket takes nothing now.
    pub fn send_at(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        offset: u64,
        max: usize,
    ) -> io::Result<Option<usize>> {
        let Some(source) = self.reader.local_source() else {
            return Ok(None);
        };
        let n = super::zerocopy::send_once(socket, source.fd, offset, max)?;
        self.bytes += n as u64;
        Ok(Some(n))
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
    /// The position the next write goes to (ignored when appending: that goes to `end`).
    pos: u64,
    /// The file's current end: its length when opened (0 for `Replace`), grown by writes.
    end: u64,
    append: bool,
    _permit: OpenPermit,
}

/// Whether [`Upload::set_len`] is allowed: truncating changes the file's bytes,
/// which needs the rights to change an existing file — unless the upload is written under a
/// temporary name (`Replace`), where the only bytes are its own.
/// `who` is boxed: this is a field of every [`Upload`], and a `Principal` inline made each
/// upload (and the SFTP and WebDAV handles holding one) over 200 bytes larger.
pub(super) enum TruncateRight {
    Allowed,
    Refused {
        who: Box<Principal>,
        path: String,
    },
    /// The storage cannot change an existing file's length (an in-place upload on a storage
    /// without `set_len`).
    Unsupported {
        who: Box<Principal>,
        path: String,
    },
}

impl Upload {
    pub(super) fn new(
        staged: Box<dyn StagedWrite>,
        event: AuditEvent,
        audit: Arc<dyn AuditSink>,
        truncate: TruncateRight,
        mode: WriteMode,
        permit: OpenPermit,
    ) -> Self {
        let end = staged.len_at_start();
        Upload {
            staged: Some(staged),
            bytes: 0,
            event: Some(event),
            audit,
            truncate,
            pos: 0,
            end,
            append: mode == WriteMode::Append,
            _permit: permit,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Truncates the file being uploaded (pending writes must be flushed first). Refused (and
    /// audited) for an in-place upload by a principal that may only create; extending the
    /// file is refused with [`FsError::LeavesHole`].
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
        if let TruncateRight::Unsupported { who, path } = &self.truncate {
            let err = FsError::Unsupported(super::capable::NO_SET_LEN.into());
            self.audit.record(
                AuditEvent::by(who, Action::SetAttributes, Outcome::Failed)
                    .path(path.as_str())
                    .reason(err.reason()),
            );
            return Err(err);
        }
        if len > self.end {
            tracing::info!(
                len,
                end = self.end,
                "refused to extend an upload by setting its length"
            );
            return Err(FsError::LeavesHole);
        }
        match self.staged.as_mut() {
            Some(staged) => {
                staged.set_len(len).await?;
                self.end = len;
                Ok(())
            }
            None => Err(FsError::Failed("upload already finished".into())),
        }
    }

    /// Makes what was written so far durable (pending writes must be flushed first): for a
    /// `Replace` upload that is its staging file, which commit then moves into place.
    pub(super) async fn sync(&mut self) -> Result<(), FsError> {
        match self.staged.as_mut() {
            Some(staged) => Ok(staged.sync().await?),
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
                self.audit.record(event);
            } else {
                // The client hears of the upload only once its record is durable.
                super::durable(&*self.audit, event).await?;
            }
        }
        result.map(|()| self.bytes)
    }

    /// Where a seek to `position` lands, refused when that is past the end (a write there
    /// would leave a hole).
    fn seek_target(&self, position: io::SeekFrom) -> io::Result<u64> {
        let target = match position {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            io::SeekFrom::End(d) => self.end.checked_add_signed(d),
        };
        match target {
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
            Some(target) if target > self.end => Err(hole()),
            Some(target) => Ok(target),
        }
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
        // (After a truncation the position may be past the new end.)
        if !self.append && self.pos > self.end {
            return Poll::Ready(Err(hole()));
        }
        let poll = match self.writer() {
            Ok(w) => w.poll_write(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Poll::Ready(Ok(n)) = poll {
            let n = n as u64;
            self.bytes += n;
            if self.append {
                self.end += n;
                self.pos = self.end;
            } else {
                self.pos += n;
                self.end = self.end.max(self.pos);
            }
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
    /// Refused with `InvalidInput` ("writes may not leave a hole") past the current end.
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        let target = self.seek_target(position)?;
        self.writer()?.start_seek(io::SeekFrom::Start(target))?;
        self.pos = target;
        Ok(())
    }
    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.writer() {
            Ok(w) => w.poll_complete(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

fn hole() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "writes may not leave a hole: a file grows only by writing at its end",
    )
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
