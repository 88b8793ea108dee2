//! Zero-copy sends: bytes of a local file to a socket with `sendfile(2)`, never copied
//! through user space (the fast path of plain FTP downloads, and of plain HTTP GETs, whose
//! connection drives each call itself: [`send_once`]).
//!
//! The socket is non-blocking and waited on through tokio, so a client that stops reading
//! holds no thread: the send waits for writability, bounded by an idle timeout. A file that
//! shrinks meanwhile ends the send at its new end (`sendfile` returns 0), as a read would.
//! Reading the file itself is done by the kernel in the calling thread: on a page-cache miss
//! it waits for the disk there, like a read on the blocking pool would.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked of one `sendfile` call (the kernel sends what the socket buffer takes).
const PER_CALL: usize = 8 * 1024 * 1024;

/// A connection to send to: a duplicate of its descriptor, registered with the runtime.
/// Dropping it closes the duplicate only; the connection stays with its owner.
pub struct SendSocket(TcpStream);

impl SendSocket {
    /// Registers `fd`, a duplicate of a non-blocking TCP connection's descriptor.
    pub fn new(fd: OwnedFd) -> io::Result<SendSocket> {
        TcpStream::from_std(std::net::TcpStream::from(fd)).map(SendSocket)
    }
}

/// Sends `file` from `*offset` to its end, advancing `*offset` and calling `sent` with each
/// piece sent. Fails with `TimedOut` when the socket accepts nothing for `idle`.
pub(super) async fn send(
    socket: &SendSocket,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    idle: Duration,
    sent: &mut (dyn FnMut(u64) + Send),
) -> io::Result<()> {
    loop {
        match tokio::time::timeout(idle, socket.0.writable()).await {
            Ok(ready) => ready?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client accepted no data within the idle timeout",
                ));
            }
        }
        let result = socket.0.try_io(Interest::WRITABLE, || {
            send_once(socket.0.as_fd(), file, *offset, PER_CALL)
        });
        match result {
            Ok(0) => return Ok(()),
            Ok(n) => {
                *offset += n as u64;
                sent(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `sendfile` of up to `max` bytes of `file` from `offset` (the file's own position is
/// left alone) to the non-blocking `socket`: the bytes the socket took, 0 only when the file
/// ends at `offset`; `WouldBlock` when the socket takes nothing now.
pub(super) fn send_once(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    max: usize,
) -> io::Result<usize> {
    let mut offset = offset;
    rustix::fs::sendfile(socket, file, Some(&mut offset), max).map_err(io::Error::from)
}
