//! One SSH connection's life: what its channels share, and the task that runs it.
//!
//! A connection is admitted by the process-wide gate before anything is read, must finish
//! its key exchange within `limits.handshake_timeout` and sign in within
//! `limits.login_timeout` (else its socket is cut), and is ended as a whole: [`Shared::stop`]
//! stops every SFTP session, handle worker and reply writer of the connection at once, and
//! the connection task then says goodbye and cuts the socket even when russh's own loop is
//! stuck (a client that reads nothing, or never finishes a key exchange). Per-connection caps
//! (channels, handles, open folders, in-flight bytes) live here so that all channels of one
//! connection count together. Nothing here decides what a principal may do.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use super::Context;
use super::ssh;
use crate::serve::{Accepted, Tasks};
use crate::sessions::Bytes;

/// Time a client gets to leave after being told to (revocation, shutdown) before its socket
/// is cut.
const GOODBYE: Duration = Duration::from_secs(1);

/// A one-way flag that tasks can wait for.
#[derive(Clone)]
pub struct Signal(Arc<watch::Sender<bool>>);

impl Signal {
    fn new() -> Signal {
        Signal(Arc::new(watch::Sender::new(false)))
    }

    pub fn raise(&self) {
        self.0.send_replace(true);
    }

    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once raised.
    pub fn raised(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|raised| *raised).await;
        }
    }
}

/// How far the client got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Key exchange not finished (no authentication request seen yet).
    Handshake,
    /// Key exchange done, not signed in.
    Login,
    SignedIn,
}

/// What every channel of one connection shares.
pub struct Shared {
    /// Raised to end the connection: sessions, handle workers and writers stop.
    pub stop: Signal,
    /// Why it was ended (told to the client).
    stop_reason: OnceLock<&'static str>,
    /// Raised to close the socket at once, whatever russh is waiting for.
    cut: Signal,
    phase: watch::Sender<Phase>,
    /// Channels open (session channels, SFTP or not).
    pub channels: Arc<Semaphore>,
    /// File and folder handles open on all channels.
    pub handles: Arc<Semaphore>,
    /// Folder handles (a listing held for READDIR) open on all channels.
    pub folders: Arc<Semaphore>,
    /// Bytes of requests read and not yet processed (held until the file layer is done
    /// with them, which never waits for the client).
    pub request_bytes: Arc<Semaphore>,
    /// Bytes of file data read for replies not yet handed to the channel (held until the
    /// client's window lets them go).
    pub reply_bytes: Arc<Semaphore>,
    /// The size of each: no single request or reply is charged more.
    pub byte_limit: u32,
    /// Tracks every task of the connection (sessions, handle workers, writers), so that
    /// shutdown waits for them before the audit log closes.
    pub tasks: Tasks,
    /// Bytes moved by the connection's transfers (shown in the session registry).
    pub bytes: Arc<Bytes>,
}

impl Shared {
    pub fn new(config: &crate::config::SftpConfig, tasks: Tasks) -> Arc<Shared> {
        let byte_limit =
            u32::try_from(config.max_in_flight_bytes_per_connection).unwrap_or(u32::MAX);
        Arc::new(Shared {
            stop: Signal::new(),
            stop_reason: OnceLock::new(),
            cut: Signal::new(),
            phase: watch::Sender::new(Phase::Handshake),
            channels: Arc::new(Semaphore::new(config.max_channels_per_connection)),
            handles: Arc::new(Semaphore::new(config.max_handles_per_connection)),
            folders: Arc::new(Semaphore::new(config.max_open_folders_per_connection)),
            request_bytes: Arc::new(Semaphore::new(byte_limit as usize)),
            reply_bytes: Arc::new(Semaphore::new(byte_limit as usize)),
            byte_limit,
            tasks,
            bytes: Arc::default(),
        })
    }

    /// `bytes` (at most the whole budget) of `budget`, waiting until they are free.
    pub async fn charge(
        budget: &Arc<Semaphore>,
        bytes: u32,
        limit: u32,
    ) -> Option<OwnedSemaphorePermit> {
        budget
            .clone()
            .acquire_many_owned(bytes.min(limit))
            .await
            .ok()
    }

    /// Ends the connection: everything serving it stops now, and the client is told
    /// `reason` and disconnected.
    pub fn end(&self, reason: &'static str) {
        let _ = self.stop_reason.set(reason);
        self.stop.raise();
    }

    /// Records progress (never goes back).
    pub fn reached(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let moved = phase > *now;
            if moved {
                *now = phase;
            }
            moved
        });
    }
}

/// A socket that fails every read and write once its connection is cut, so that russh's
/// session task ends wherever it is waiting.
struct CutStream {
    inner: TcpStream,
    read_cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    write_cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    cut: bool,
}

impl CutStream {
    fn new(inner: TcpStream, cut: &Signal) -> CutStream {
        CutStream {
            inner,
            read_cut: Box::pin(cut.raised()),
            write_cut: Box::pin(cut.raised()),
            cut: false,
        }
    }

    fn is_cut(
        cut: &mut bool,
        signal: &mut Pin<Box<dyn Future<Output = ()> + Send>>,
        cx: &mut TaskContext<'_>,
    ) -> bool {
        if !*cut && signal.as_mut().poll(cx).is_ready() {
            *cut = true;
        }
        *cut
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection ended by the server",
    )
}

impl AsyncRead for CutStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if Self::is_cut(&mut this.cut, &mut this.read_cut, cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if Self::is_cut(&mut this.cut, &mut this.write_cut, cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if Self::is_cut(&mut this.cut, &mut this.write_cut, cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Runs one admitted connection until it ends; `_permit` (its slot at the gate) is held
/// until then.
pub async fn serve(ctx: Arc<Context>, ssh: Arc<russh::server::Config>, accepted: Accepted) {
    let Accepted {
        socket,
        peer,
        permit: _permit,
        tasks,
    } = accepted;
    let shutdown = tasks.draining();
    let limits = *ctx.gate.limits();
    let started = Instant::now();
    let handshake_deadline = started + limits.handshake_timeout;
    let login_deadline = started + limits.login_timeout;
    let shared = Shared::new(&ctx.config, tasks);
    let stream = CutStream::new(socket, &shared.cut);
    let handler = ssh::Connection::new(ctx, Some(peer), shared.clone());
    // run_stream exchanges version lines before it returns.
    let running = match timeout_at(
        handshake_deadline.min(login_deadline),
        russh::server::run_stream(ssh, stream, handler),
    )
    .await
    {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            tracing::debug!(client.ip = %peer.ip(), error = %e, "ssh handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(client.ip = %peer.ip(), "sftp connection closed: no SSH version line in time");
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let mut phase = shared.phase.subscribe();
    let stop = shared.stop.raised();
    tokio::pin!(stop);
    let reason = loop {
        let deadline = match *phase.borrow_and_update() {
            Phase::Handshake => Some(handshake_deadline.min(login_deadline)),
            Phase::Login => Some(login_deadline),
            Phase::SignedIn => None,
        };
        tokio::select! {
            _ = &mut running => {
                shared.stop.raise();
                return;
            }
            _ = phase.changed() => continue,
            () = sleep_until(deadline.unwrap_or(login_deadline)), if deadline.is_some() => {
                tracing::info!(client.ip = %peer.ip(), "sftp connection closed: not signed in in time");
                shared.stop.raise();
                shared.cut.raise();
                let _ = timeout(GOODBYE, &mut running).await;
                return;
            }
            () = shutdown.cancelled() => break "server shutting down",
            () = &mut stop => break shared.stop_reason.get().copied().unwrap_or("session ended"),
        }
    };
    // Stop serving at once, then say goodbye; cut the socket if the client (or russh, stuck
    // writing to a client that reads nothing) does not let the connection end in time.
    shared.stop.raise();
    let goodbye = handle.disconnect(russh::Disconnect::ByApplication, reason.into(), "en".into());
    let _ = timeout(GOODBYE, goodbye).await;
    if timeout(GOODBYE, &mut running).await.is_err() {
        tracing::debug!(client.ip = %peer.ip(), "sftp connection cut: it did not end after the goodbye");
        shared.cut.raise();
        let _ = timeout(GOODBYE, &mut running).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_raised_signal_wakes_its_waiters_and_stays_raised() {
        let signal = Signal::new();
        let waiting = tokio::spawn(signal.raised());
        assert!(!signal.is_raised());
        signal.raise();
        timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken")
            .expect("joined");
        assert!(signal.is_raised());
        timeout(Duration::from_secs(1), signal.raised())
            .await
            .expect("already raised");
    }

    #[tokio::test]
    async fn a_cut_stream_fails_a_pending_read() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let cut = Signal::new();
        let mut stream = CutStream::new(server, &cut);
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            stream.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        cut.raise();
        let result = timeout(Duration::from_secs(1), reading)
            .await
            .expect("the read ends")
            .expect("joined");
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        drop(client);
    }
}
