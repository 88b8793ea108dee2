//! Reading an object: ranged GETs from the current position to the end, with read-ahead
//! when the bucket's memory budget gave parts (OpenDAL fetches the range in chunks of a
//! part, as many in flight as parts were given; without parts, one streamed GET). A seek inside what has arrived
//! moves within it; any other seek drops the stream, and the next read starts a new range.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use crate::files::storage::FileReader;

type Opening = Pin<Box<dyn Future<Output = opendal::Result<opendal::FuturesBytesStream>> + Send>>;

enum State {
    Idle,
    Opening(Opening),
    Streaming(Box<opendal::FuturesBytesStream>),
}

struct Inner {
    reader: opendal::Reader,
    key: String,
    len: u64,
    /// Where the next byte handed out comes from; `ready` starts there.
    pos: u64,
    ready: Bytes,
    state: State,
    /// The read-ahead's buffers, given back to the budget when the file is closed.
    _parts: Option<super::budget::Parts>,
}

/// An open object. (The state sits in a `Mutex` only to be `Sync`: every use goes through
/// `&mut self`, so it is never locked.)
pub(super) struct S3Reader(Mutex<Inner>);

impl S3Reader {
    pub(super) fn new(
        reader: opendal::Reader,
        key: String,
        len: u64,
        parts: Option<super::budget::Parts>,
    ) -> S3Reader {
        S3Reader(Mutex::new(Inner {
            reader,
            key,
            len,
            pos: 0,
            ready: Bytes::new(),
            state: State::Idle,
            _parts: parts,
        }))
    }

    fn inner(&mut self) -> &mut Inner {
        // A panic while the state was borrowed cannot leave it half changed in a way that
        // matters more than the panic itself: use it as it is.
        self.0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Ready when `ready` holds bytes, or at the end of the object (`ready` empty).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.ready.is_empty() || self.pos >= self.len {
                return Poll::Ready(Ok(()));
            }
            match &mut self.state {
                State::Idle => {
                    let reader = self.reader.clone();
                    let range = self.pos..self.len;
                    self.state =
                        State::Opening(Box::pin(
                            async move { reader.into_bytes_stream(range).await },
                        ));
                }
                State::Opening(opening) => match ready!(opening.as_mut().poll(cx)) {
                    Ok(stream) => self.state = State::Streaming(Box::new(stream)),
                    Err(err) => {
                        self.state = State::Idle;
                        return Poll::Ready(Err(io::Error::other(super::errors::detail(
                            "read", &self.key, &err,
                        ))));
                    }
                },
                State::Streaming(stream) => match ready!(stream.poll_next_unpin(cx)) {
                    Some(Ok(bytes)) => self.ready = bytes,
                    Some(Err(err)) => {
                        self.state = State::Idle;
                        return Poll::Ready(Err(err));
                    }
                    None => {
                        self.state = State::Idle;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("s3 read {:?}: the object ended early", self.key),
                        )));
                    }
                },
            }
        }
    }

    fn take(&mut self, max: usize) -> Bytes {
        let n = max.min(self.ready.len());
        self.pos += n as u64;
        self.ready.split_to(n)
    }
}

impl AsyncRead for S3Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = self.inner();
        ready!(inner.poll_fill(cx))?;
        let bytes = inner.take(buf.remaining());
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for S3Reader {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        let inner = self.inner();
        let target = match position {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => inner.pos.checked_add_signed(d),
            io::SeekFrom::End(d) => inner.len.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if target >= inner.pos && target - inner.pos <= inner.ready.len() as u64 {
            // Within what has arrived: no new request.
            let skip = (target - inner.pos) as usize;
            inner.take(skip);
        } else {
            inner.state = State::Idle;
            inner.ready = Bytes::new();
            inner.pos = target;
        }
        Ok(())
    }

    fn poll_complete(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.inner().pos))
    }
}

#[async_trait::async_trait]
impl FileReader for S3Reader {
    /// The bytes as they arrive, without a copy when one piece holds `max`.
    async fn read_chunk(&mut self, max: usize) -> io::Result<Bytes> {
        let inner = self.inner();
        std::future::poll_fn(|cx| inner.poll_fill(cx)).await?;
        if inner.ready.len() >= max || inner.ready.is_empty() {
            return Ok(inner.take(max));
        }
        let mut out = BytesMut::with_capacity(max);
        while out.len() < max {
            std::future::poll_fn(|cx| inner.poll_fill(cx)).await?;
            if inner.ready.is_empty() {
                break;
            }
            out.extend_from_slice(&inner.take(max - out.len()));
        }
        Ok(out.freeze())
    }
}
