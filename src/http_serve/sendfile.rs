//! Zero-copy responses on plain HTTP connections: bytes of a local file sent with
//! `sendfile(2)` by the connection's socket wrapper, while hyper believes it sends a body.
//!
//! hyper has no way to hand a file to the socket. On a connection whose IO says it writes
//! vectored (hyper's queue strategy), hyper keeps each body chunk as the `Bytes` it was
//! given and passes it to the IO as one of its slices, never copying it (hyper 1.x,
//! `proto/h1/io.rs`: `WriteBuf::buffer` pushes the chunk onto its list; only the flatten
//! strategy, chosen for IO that does not write vectored or by `pipeline_flush`, copies).
//! So a handler may put a *stand-in* into the body ([`SendfileQueue::stand_in`]): `n` bytes
//! of [`MARKER`], a zeroed static region nobody reads, registered with the file range they
//! stand for. When the socket wrapper ([`PlainTcp`]) is asked to write a slice that lies in
//! [`MARKER`], it sends the oldest unsent range with `sendfile` instead, and reports the
//! bytes the kernel took, as a write would (hyper then advances the stand-in by as much).
//!
//! The stand-in's own pointer says which part of which range it is: each range has an
//! offset of its own inside [`MARKER`], and the slice hyper passes must be exactly the unsent
//! rest of the oldest range queued; anything else (no range queued, another length or
//! offset) fails the connection with an error, so the zeros are never sent. A range lives
//! exactly as long as its stand-in: dropping the stand-in (sent, or discarded with its
//! response or connection) takes the range off the queue, and the last range of a download
//! dropped ends the download (its audit record, with the bytes `sendfile` sent).
//!
//! A stand-in dropped before its range was sent in full poisons the connection: every later
//! write on it fails. That is what happens when a response is discarded (the connection is
//! closing anyway), and it is the safety net should anything ever copy a stand-in instead of
//! passing it on (a hyper that flattened body chunks, a layer that transformed the body):
//! the copy is dropped before it could be written, so its zeros never reach the client.
//!
//! A file that shrinks while it is sent ends its range early: `sendfile` returns 0 and the
//! connection fails (the client sees a response shorter than its `Content-Length`), never
//! zeros in place of the missing bytes.
//!
//! Only plain connections have a queue (`serve_io` puts it into each request's extensions);
//! TLS connections never do, so nothing transformed can meet a stand-in.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::files::Download;
use crate::metrics::Metrics;

/// The longest range one stand-in may stand for.
pub const MAX_RANGE: usize = 4 << 20;
/// Distinct offsets of stand-ins inside [`MARKER`], [`SLOT`] bytes apart.
const SLOTS: usize = 1024;
const SLOT: usize = 4096;
const MARKER_LEN: usize = MAX_RANGE + SLOTS * SLOT;

/// The bytes stand-ins are made of: zeroed, never read (in `.bss`, never touched).
static MARKER: [u8; MARKER_LEN] = [0; MARKER_LEN];

/// Where `slice` starts inside [`MARKER`], if it is (part of) a stand-in.
fn marker_offset(slice: &[u8]) -> Option<usize> {
    let start = MARKER.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    (!slice.is_empty() && at >= start && at < start + MARKER_LEN).then(|| at - start)
}

/// A download shared by its WebDAV handle and the ranges queued from it; it ends (and is
/// audited) when the last of them is dropped.
pub type SharedDownload = Arc<Mutex<Download>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection's ranges waiting to be sent, oldest first.
#[derive(Clone)]
pub struct SendfileQueue {
    inner: Arc<Mutex<Queue>>,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct Queue {
    next_id: u64,
    ranges: VecDeque<Range>,
    /// A stand-in was dropped unsent: nothing more may be written (see the module doc).
    poisoned: bool,
}

struct Range {
    id: u64,
    /// Where the stand-in starts inside [`MARKER`].
    slot: usize,
    source: SharedDownload,
    offset: u64,
    len: usize,
    sent: usize,
}

impl SendfileQueue {
    pub(super) fn new(metrics: Option<Arc<Metrics>>) -> SendfileQueue {
        SendfileQueue {
            inner: Arc::default(),
            metrics,
        }
    }

    /// Queues `len` bytes of `source` from `offset` (1 ..= [`MAX_RANGE`]) and returns the
    /// stand-in to put into the response body in their place.
    pub fn stand_in(&self, source: &SharedDownload, offset: u64, len: usize) -> io::Result<Bytes> {
        if len == 0 || len > MAX_RANGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a sendfile range must hold 1 to MAX_RANGE bytes",
            ));
        }
        let mut queue = lock(&self.inner);
        let id = queue.next_id;
        queue.next_id += 1;
        let slot = (id as usize % SLOTS) * SLOT;
        queue.ranges.push_back(Range {
            id,
            slot,
            source: source.clone(),
            offset,
            len,
            sent: 0,
        });
        drop(queue);
        Ok(Bytes::from_owner(StandIn {
            queue: self.inner.clone(),
            id,
            slot,
            len,
        }))
    }

    /// The oldest range not yet sent in full, checked against the slice hyper asks to write.
    fn next(&self, slice: &[u8]) -> io::Result<(u64, SharedDownload, u64, usize)> {
        let queue = lock(&self.inner);
        let range = queue
            .ranges
            .iter()
            .find(|r| r.sent < r.len)
            .ok_or_else(|| mismatch("a stand-in with no file range queued"))?;
        let rest = range.len - range.sent;
        if marker_offset(slice) != Some(range.slot + range.sent) || slice.len() != rest {
            return Err(mismatch(
                "a stand-in that is not the rest of the oldest file range queued",
            ));
        }
        Ok((
            range.id,
            range.source.clone(),
            range.offset + range.sent as u64,
            rest,
        ))
    }

    fn advance(&self, id: u64, n: usize) {
        if let Some(range) = lock(&self.inner).ranges.iter_mut().find(|r| r.id == id) {
            range.sent += n;
        }
        if let Some(metrics) = &self.metrics {
            metrics
                .http_sendfile_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl SendfileQueue {
    /// Fails when a stand-in was dropped before its range was sent.
    fn check(&self) -> io::Result<()> {
        if lock(&self.inner).poisoned {
            return Err(mismatch(
                "a stand-in was dropped before its range was sent; the connection is closed rather than risk sending its placeholder bytes",
            ));
        }
        Ok(())
    }
}

fn mismatch(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sendfile: {what}"))
}

/// The owner of a stand-in's `Bytes`: [`MARKER`] bytes that take their range off the queue
/// when dropped.
struct StandIn {
    queue: Arc<Mutex<Queue>>,
    id: u64,
    slot: usize,
    len: usize,
}

impl AsRef<[u8]> for StandIn {
    fn as_ref(&self) -> &[u8] {
        &MARKER[self.slot..self.slot + self.len]
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let mut queue = lock(&self.queue);
        let range = queue
            .ranges
            .iter()
            .position(|r| r.id == self.id)
            .and_then(|i| queue.ranges.remove(i));
        if range.as_ref().is_some_and(|r| r.sent < r.len) {
            queue.poisoned = true;
        }
        drop(queue);
        // The download may end here (its audit record), outside the queue's lock.
        drop(range);
    }
}

/// A plain TCP connection that sends stand-ins' ranges with `sendfile` (see the module doc).
pub(super) struct PlainTcp {
    tcp: TcpStream,
    queue: SendfileQueue,
}

impl PlainTcp {
    pub(super) fn new(tcp: TcpStream, queue: SendfileQueue) -> PlainTcp {
        PlainTcp { tcp, queue }
    }

    fn poll_sendfile(&self, cx: &mut Context<'_>, slice: &[u8]) -> Poll<io::Result<usize>> {
        let (id, source, offset, rest) = self.queue.next(slice)?;
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let socket = self.tcp.as_fd();
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                lock(&source).send_at(socket, offset, rest)
            });
            match sent {
                Ok(Some(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "sendfile: the file ended before its range was sent (shrunk meanwhile)",
                    )));
                }
                Ok(Some(n)) => {
                    self.queue.advance(id, n);
                    return Poll::Ready(Ok(n));
                }
                Ok(None) => return Poll::Ready(Err(mismatch("the download has no local file"))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for PlainTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlainTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.queue.check()?;
        if marker_offset(buf).is_some() {
            return this.poll_sendfile(cx, buf);
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    /// Ordinary slices up to the first stand-in go out with one `writev`; a stand-in first
    /// in line goes out with `sendfile`.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.queue.check()?;
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        match bufs.iter().position(|b| marker_offset(b).is_some()) {
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
            Some(0) => this.poll_sendfile(cx, &bufs[0]),
            Some(end) => Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[..end]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::files::tests::{Fixture, p};
    use crate::identity::GrantLevel::Full;
    use crate::test_support::principal;

    /// A connected pair: the server side wrapped as a plain connection with `queue`.
    async fn pair(queue: &SendfileQueue) -> (PlainTcp, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (PlainTcp::new(server, queue.clone()), client)
    }

    #[tokio::test]
    async fn a_stand_in_passed_on_sends_the_file_and_one_copied_instead_stops_the_connection() {
        let fx = Fixture::new();
        fx.put("a.txt", "hello, sendfile");
        let who = principal(&[("/", Full)], None);
        let download = Arc::new(Mutex::new(
            fx.files.open_read(&who, &p("/a.txt")).await.unwrap(),
        ));

        // Passed on as hyper passes body chunks: the file's bytes arrive, not the stand-in's.
        let queue = SendfileQueue::new(None);
        let (mut server, mut client) = pair(&queue).await;
        let stand_in = queue.stand_in(&download, 7, 8).unwrap();
        server.write_all(b"head:").await.unwrap();
        let mut rest = stand_in.clone();
        while !rest.is_empty() {
            let n = server
                .write_vectored(&[io::IoSlice::new(&rest)])
                .await
                .unwrap();
            let _ = rest.split_to(n);
        }
        drop((stand_in, rest));
        server.write_all(b":tail").await.unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"head:sendfile:tail");

        // Copied (as a writer that flattened body chunks would) and the stand-in dropped
        // unsent: no later write goes out, so its placeholder bytes never reach the client.
        let queue = SendfileQueue::new(None);
        let (mut server, mut client) = pair(&queue).await;
        let stand_in = queue.stand_in(&download, 0, 5).unwrap();
        let copy = stand_in.to_vec();
        drop(stand_in);
        let err = server.write_all(&copy).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let err = server.write_all(b"anything").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "sent after the stand-in was lost: {got:?}");
    }
}
