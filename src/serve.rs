//! The one accept loop and the one task supervisor, shared by every TCP/TLS listener (SFTP,
//! FTP control, WebDAV, API).
//!
//! [`serve`] owns what all listeners must do alike, in one place:
//!
//! - accept, backing off on errors that concern the whole process (EMFILE/ENFILE: out of
//!   descriptors; 1 ms doubling to 1 s, never spinning); per-connection errors (reset,
//!   aborted) are retried at once;
//! - admit each connection through the process-wide [`ConnectionGate`] (total and
//!   per-address caps) or refuse it (a protocol may say why first, e.g. FTP's `421`);
//! - run each admitted connection in its own task, inside one `tracing` span
//!   (`conn{protocol, client.ip, client.port}`), tracked by [`Tasks`].
//!
//! [`Tasks`] tracks every task a front-end starts for a connection (the connection itself,
//! SFTP sessions, handle workers, reply writers, watchers): [`Tasks::shutdown`] stops every
//! accept loop, tells every connection to end ([`Tasks::draining`]), waits up to a grace time
//! for them to finish, then drops (aborts) whatever is left and waits for that too. The
//! gateway closes the audit log only after this returns, so no task that can write an audit
//! record outlives it. Handshake and login deadlines are the front-ends' (each protocol knows
//! when its handshake ends) but all come from the gate's [`crate::limits::Limits`].
//!
//! This module decides nothing about identities and reads nothing from the store.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::limits::{ConnectionGate, ConnectionPermit, Refusal};

/// Every task of the running front-ends, and the two signals that end them.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    /// Cancelled when shutdown starts: accept loops stop, connections end gracefully.
    draining: CancellationToken,
    /// Cancelled when the grace time is over: tasks still running are dropped.
    abort: CancellationToken,
}

/// What [`Tasks::shutdown`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Tasks that were still running when the grace time ran out (and were aborted).
    pub aborted: usize,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `task` tracked: [`Tasks::shutdown`] waits for it, and drops it if it outlives
    /// the grace time.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                () = abort.cancelled() => {}
                () = task => {}
            }
        })
    }

    /// Cancelled once shutdown starts: every connection should end (gracefully) when it is.
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Tasks running now.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Stops accepting, signals every connection, waits up to `grace` for every tracked task,
    /// then aborts the rest and waits until they are gone. Idempotent.
    pub async fn shutdown(&self, grace: Duration) -> Drained {
        self.draining.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return Drained { aborted: 0 };
        }
        let aborted = self.tracker.len();
        tracing::warn!(
            aborted,
            ?grace,
            "grace time over; aborting connections still open"
        );
        self.abort.cancel();
        self.tracker.wait().await;
        Drained { aborted }
    }
}

/// One admitted connection, handed to the protocol's handler.
pub struct Accepted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    /// The connection's slot at the gate: keep it as long as the connection lives.
    pub permit: ConnectionPermit,
    /// To track the connection's own tasks and learn of shutdown.
    pub tasks: Tasks,
}

/// A protocol's per-connection entry point.
pub type Handler = Arc<dyn Fn(Accepted) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Called with a refused connection's socket before it is closed (e.g. to write FTP's `421`).
pub type OnRefused = fn(&TcpStream, Refusal);

/// How one listener serves.
pub struct Listen {
    /// For spans and logs: `"sftp"`, `"ftp"`, `"ftps"`, `"webdav"`, `"api"`.
    pub protocol: &'static str,
    pub listener: TcpListener,
    pub gate: Arc<ConnectionGate>,
    pub tasks: Tasks,
    pub on_refused: Option<OnRefused>,
}

/// A running accept loop.
pub struct Listening {
    pub addr: SocketAddr,
    /// Stops this listener's accept loop alone (connections keep going).
    stop: CancellationToken,
}

impl Listening {
    /// Stops accepting on this listener (its connections are the [`Tasks`]' to end).
    pub fn stop_accepting(&self) {
        self.stop.cancel();
    }
}

/// Starts accepting on `listen.listener`, handing every admitted connection to `handler` in a
/// tracked task. The loop ends when the tasks start draining.
pub fn serve(listen: Listen, handler: Handler) -> std::io::Result<Listening> {
    let addr = listen.listener.local_addr()?;
    let stop = listen.tasks.draining.child_token();
    let tasks = listen.tasks.clone();
    tasks.spawn(accept_loop(listen, handler, stop.clone()));
    Ok(Listening { addr, stop })
}

/// Accept errors that concern one connection only (retry at once).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// The first wait after an accept error.
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// The longest wait between accepts while errors go on.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The next wait after an accept error: 1 ms, doubling up to 1 s.
fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX)
}

async fn accept_loop(listen: Listen, handler: Handler, stop: CancellationToken) {
    let Listen {
        protocol,
        listener,
        gate,
        tasks,
        on_refused,
    } = listen;
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff = Duration::ZERO;
                let permit = match gate.admit(peer.ip()) {
                    Ok(permit) => permit,
                    Err(refusal) => {
                        tracing::info!(protocol, client.ip = %peer.ip(), %refusal, "connection refused");
                        if let Some(on_refused) = on_refused {
                            on_refused(&socket, refusal);
                        }
                        continue; // dropping the socket closes it
                    }
                };
                let _ = socket.set_nodelay(true);
                let span = tracing::info_span!("conn", protocol, client.ip = %peer.ip(), client.port = peer.port());
                let connection = handler(Accepted {
                    socket,
                    peer,
                    permit,
                    tasks: tasks.clone(),
                });
                tasks.spawn(connection.instrument(span));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Typically EMFILE/ENFILE: wait for descriptors to come back.
                backoff = next_backoff(backoff);
                tracing::warn!(protocol, error = %e, ?backoff, "accept failed; backing off");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    tracing::debug!(protocol, "stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_starts_at_a_millisecond_and_doubles_up_to_a_second() {
        let mut waits = Vec::new();
        let mut b = Duration::ZERO;
        for _ in 0..13 {
            b = next_backoff(b);
            waits.push(b.as_millis());
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000]
        );
    }

    #[tokio::test]
    async fn shutdown_waits_for_a_task_that_ends_within_the_grace_time() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let draining = tasks.draining();
        tasks.spawn(async move {
            draining.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send("finished");
        });
        let drained = tasks.shutdown(Duration::from_secs(30)).await;
        assert_eq!(drained, Drained { aborted: 0 });
        assert_eq!(rx.await.unwrap(), "finished");
    }

    #[tokio::test]
    async fn shutdown_aborts_a_task_that_outlives_the_grace_time() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        let drained = tasks.shutdown(Duration::from_millis(10)).await;
        assert_eq!(drained, Drained { aborted: 1 });
        assert!(tasks.is_empty());
        // The task was dropped, and its sender with it.
        assert!(rx.await.is_err());
    }

    #[tokio::test]
    async fn a_connection_over_the_per_address_cap_is_refused_and_told_why() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let gate = ConnectionGate::new(crate::limits::Limits {
            max_connections: 10,
            max_connections_per_address: 1,
            handshake_timeout: Duration::from_secs(1),
            login_timeout: Duration::from_secs(1),
            transfer_idle_timeout: Duration::from_secs(1),
            max_open_files: 10,
            max_open_files_per_user: 10,
        });
        let tasks = Tasks::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handler: Handler = Arc::new(|mut a: Accepted| {
            Box::pin(async move {
                let _permit = a.permit;
                let _ = a.socket.write_all(b"hello\n").await;
                a.tasks.draining().cancelled().await;
            })
        });
        fn refused(socket: &TcpStream, refusal: Refusal) {
            let _ = socket.try_write(format!("no: {refusal}\n").as_bytes());
        }
        let listening = serve(
            Listen {
                protocol: "test",
                listener,
                gate: gate.clone(),
                tasks: tasks.clone(),
                on_refused: Some(refused),
            },
            handler,
        )
        .unwrap();
        let mut first = TcpStream::connect(listening.addr).await.unwrap();
        let mut buf = [0u8; 6];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello\n");
        let mut second = TcpStream::connect(listening.addr).await.unwrap();
        let mut answer = String::new();
        second.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "no: too many connections from this address\n");
        let drained = tasks.shutdown(Duration::from_secs(5)).await;
        assert_eq!(drained.aborted, 0);
        assert_eq!(gate.open("127.0.0.1".parse().unwrap()), (0, 0));
    }
}
