//! What a connection's watchdog ([`super`]) knows about its requests and its socket: requests
//! in progress, when the last one ended, when a byte last moved on the socket, and whether a
//! request in progress is waiting for the peer (its body is awaited, or its response is
//! being sent and the socket takes it no faster) rather than for the server (a handler at
//! work, a slow storage read).
//!
//! Plain bookkeeping: atomics written by the socket wrapper ([`Metered`]) and the body
//! wrappers ([`WatchedBody`], [`TrackedBody`]), read by the watchdog. It decides nothing.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// One connection's activity.
pub(super) struct Activity {
    opened: Instant,
    /// Requests whose heads were read.
    started: AtomicU64,
    /// Requests in progress (until their response body is sent or dropped).
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `opened`.
    last_done_ms: AtomicU64,
    /// When a byte was last read from or written to the socket, in milliseconds since
    /// `opened`.
    last_io_ms: AtomicU64,
    /// Request bodies awaited and responses being sent that wait for the peer.
    waiting: AtomicUsize,
    /// When one of them last started waiting, in milliseconds since `opened`.
    waiting_since_ms: AtomicU64,
    /// Woken when a handler panicked: the connection must close.
    pub(super) close: Notify,
    /// Woken when a request starts or ends (the watchdog recomputes its deadline).
    pub(super) changed: Notify,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            last_io_ms: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            waiting_since_ms: AtomicU64::new(0),
            close: Notify::new(),
            changed: Notify::new(),
        })
    }

    pub(super) fn opened(&self) -> Instant {
        self.opened
    }

    /// Whether a request head was ever read on this connection.
    pub(super) fn any_request(&self) -> bool {
        self.started.load(Ordering::Relaxed) > 0
    }

    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Since when the connection has had no request in progress (`None`: one is).
    pub(super) fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.at(&self.last_done_ms))
    }

    /// Since when a request in progress has been waiting for the peer with no byte moving
    /// on the socket (`None`: nothing waits for the peer).
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(
            self.at(&self.last_io_ms)
                .max(self.at(&self.waiting_since_ms)),
        )
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.opened + Duration::from_millis(ms.load(Ordering::Relaxed))
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn moved(&self) {
        self.last_io_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    fn wait_for_peer(&self) {
        self.waiting_since_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    fn stop_waiting(&self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request in progress; ends when dropped (with its response body).
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.now_ms();
        self.0.last_done_ms.fetch_max(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// Whether one body waits for the peer, counted in [`Activity::waiting`] while it does.
struct Waiting {
    activity: Arc<Activity>,
    waiting: bool,
}

impl Waiting {
    fn new(activity: Arc<Activity>, waiting: bool) -> Waiting {
        if waiting {
            activity.wait_for_peer();
        }
        Waiting { activity, waiting }
    }

    fn set(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.activity.wait_for_peer();
            } else {
                self.activity.stop_waiting();
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// A request body: waits for the peer from a poll that finds no data until data (or its
/// end) arrives.
pub(super) struct WatchedBody {
    inner: Incoming,
    waiting: Waiting,
}

impl WatchedBody {
    pub(super) fn new(inner: Incoming, activity: Arc<Activity>) -> WatchedBody {
        WatchedBody {
            inner,
            waiting: Waiting::new(activity, false),
        }
    }
}

impl hyper::body::Body for WatchedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        this.waiting.set(poll.is_pending());
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in progress until it is sent, and
/// waits for the peer while it is being sent, except while its own source has nothing
/// ready (the server is then the slow side).
pub(super) struct TrackedBody {
    inner: Body,
    waiting: Waiting,
    _in_flight: InFlight,
}

impl TrackedBody {
    pub(super) fn new(inner: Body, in_flight: InFlight) -> TrackedBody {
        let waiting = Waiting::new(in_flight.0.clone(), true);
        TrackedBody {
            inner,
            waiting,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        this.waiting.set(!poll.is_pending());
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting each read or write that moved at least one byte.
pub(super) struct Metered<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Metered<I> {
    pub(super) fn new(inner: I, activity: Arc<Activity>) -> Metered<I> {
        Metered { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Metered<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.moved();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> Metered<I> {
    fn noted(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Metered<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.noted(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.noted(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
