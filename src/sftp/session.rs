//! One SFTP session: reads requests, answers them through the file layer, writes replies.
//!
//! russh-sftp's own server loop answers one request at a time (read → handle → reply), so a
//! client's 64 pipelined reads wait on each other. This loop keeps russh-sftp's packet types
//! but dispatches: requests on an open file go to that handle's worker (in order per
//! handle), metadata requests are answered here in arrival order, and one writer task sends
//! replies as they are ready.
//!
//! Memory stays bounded whatever the client does. Every request holds a [`Ticket`] from the
//! moment it is read until its reply has been handed to the channel: it counts against the
//! session's requests in flight, its bytes against the connection's request bytes until
//! the file layer has processed it, and the file data read for its reply against the
//! connection's reply bytes until written. A READ waits (in its handle's worker) for reply
//! bytes, so a client that does not read its replies stops being served; its next requests
//! pile up to the request count, then nothing more is read and russh stops reading its
//! socket. The reader itself never waits for the client's window (only for the file layer),
//! so a client that reads its replies can always get its window adjustments through.
//! Handles count against the connection's caps. When the connection is stopped
//! (revocation, shutdown), reading, handle workers and the writer stop at once and no reply
//! is sent after. Policy lives in `files`; this module only translates.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use russh_sftp::protocol::{
    Attrs, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::attrs::{Owner, attrs_of, entry, requested_times, requests_unkept, rights};
use super::conn::{Shared, Signal};
use super::handles::{self, CopyRange, Job, OpenFile, Queued, unkept_refused};
use super::status::{message_of, status_of};
use super::wire::{self, Reader};
use crate::config::SetstatMode;
use crate::files::{DirEntry, Files, FsError, Listing, Scope, WriteMode};
use crate::identity::Principal;
use crate::path::SitePath;

/// Requests read and not yet answered in one session. OpenSSH pipelines 64 by default (`-R`
/// raises it), paramiko's prefetch sends one READ per 32 KiB of the file at once: the reader
/// must go on reading them, because russh hands us incoming data and sends our replies from
/// one loop, so a reader that stops until replies leave stops the replies too. Memory is
/// bounded by the connection's request-byte budget (each request charged at least
/// [`REQUEST_COST`]); a session whose reader still waits past [`STALLED`] is ended.
const MAX_IN_FLIGHT: usize = 1 << 16;
/// What a queued request is charged at least, whatever its length (its share of memory).
const REQUEST_COST: u32 = 256;
/// How long the reader may wait for room for one more request before the session is ended.
const STALLED: std::time::Duration = std::time::Duration::from_secs(120);
/// Entries per `SSH_FXP_NAME` reply to `READDIR`.
const DIR_CHUNK: usize = 128;
/// Bytes of entries (names and long names, estimated) per `NAME` reply to `READDIR`.
const DIR_CHUNK_BYTES: usize = 16 * 1024;

/// Largest data length advertised in `limits@openssh.com` for reads and writes: OpenSSH's
/// client refuses messages over 256 KiB, so a reply must fit in that with its header.
const MAX_ADVERTISED_DATA: u32 = 256 * 1024 - 1024;

/// Limits and settings of one session (the connection-wide caps are in [`Shared`]).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_packet: u32,
    /// Open handles per connection (advertised in `limits@openssh.com`).
    pub max_handles: usize,
    /// What SETSTAT does with modes and owners.
    pub setstat_mode: SetstatMode,
}

impl SessionLimits {
    /// The `limits@openssh.com` figures: packet, read and write lengths, open handles.
    /// Every request a client sizes by them is accepted (see `read_packet`, the handle
    /// workers' `MAX_READ` and the in-flight caps, which charge one request at most the
    /// whole budget).
    fn advertised(&self) -> (u64, u64, u64, u64) {
        let write = self
            .max_packet
            .saturating_sub(1024)
            .min(MAX_ADVERTISED_DATA);
        let read = handles::MAX_READ.min(MAX_ADVERTISED_DATA);
        (
            u64::from(self.max_packet),
            u64::from(read),
            u64::from(write),
            self.max_handles as u64,
        )
    }
}

/// Extensions announced in the VERSION reply, with the versions OpenSSH's client checks.
const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
    ("home-directory", "1"),
    ("users-groups-by-id@openssh.com", "1"),
];

/// One request's share of the in-flight bounds, given back when its reply has been written
/// to the channel (or dropped).
pub struct Ticket {
    _request: OwnedSemaphorePermit,
    request_bytes: Option<OwnedSemaphorePermit>,
    reply_bytes: Option<OwnedSemaphorePermit>,
}

impl Ticket {
    /// The file layer is done with the request: its bytes may be reused.
    pub fn processed(&mut self) {
        self.request_bytes = None;
    }

    /// The reply's data is charged to this ticket.
    pub fn carry(&mut self, reply_bytes: OwnedSemaphorePermit) {
        self.reply_bytes = Some(reply_bytes);
    }
}

/// Where replies go (the writer task). Nothing is sent once the connection is stopped.
#[derive(Clone)]
pub struct Replies {
    tx: mpsc::Sender<(Bytes, Ticket)>,
    stop: Signal,
}

impl Replies {
    pub async fn send(&self, packet: Packet, mut ticket: Ticket) {
        ticket.processed();
        if self.stop.is_raised() {
            return;
        }
        match Bytes::try_from(packet) {
            Ok(bytes) => {
                let _ = self.tx.send((bytes, ticket)).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot encode SFTP reply"),
        }
    }
}

impl Replies {
    /// An `SSH_FXP_DATA` reply carrying `data`, encoded straight into one buffer of its exact
    /// size (the generic encoder copies the data into a `Vec` first and grows its output).
    pub async fn send_data(&self, id: u32, data: &[u8], mut ticket: Ticket) {
        ticket.processed();
        if self.stop.is_raised() {
            return;
        }
        let Ok(len) = u32::try_from(data.len()) else {
            return;
        };
        let mut frame = bytes::BytesMut::with_capacity(13 + data.len());
        frame.extend_from_slice(&(9 + len).to_be_bytes()); // type, id, data length, data
        frame.extend_from_slice(&[SSH_FXP_DATA]);
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(data);
        let _ = self.tx.send((frame.freeze(), ticket)).await;
    }
}

/// The packet type of a data reply (draft-ietf-secsh-filexfer-02, section 3).
const SSH_FXP_DATA: u8 = 103;

/// A status reply.
pub fn status(id: u32, code: StatusCode, message: &str) -> Packet {
    Packet::Status(Status {
        id,
        status_code: code,
        error_message: message.to_owned(),
        language_tag: "en".to_owned(),
    })
}

/// The status reply for a file-layer error.
pub fn status_err(id: u32, err: &FsError) -> Packet {
    status(id, status_of(err), &message_of(err))
}

enum HandleEntry {
    File(mpsc::UnboundedSender<Queued>, SitePath),
    /// Locked (asynchronously) while a READDIR reads on; the handle table's lock is not.
    Dir(Arc<tokio::sync::Mutex<Folder>>),
}

/// An open folder: its listing, read as READDIRs ask for entries (an open folder nobody
/// reads holds one chunk at most, and no thread), the entries read but not yet sent, and
/// its slots in the connection's caps.
struct Folder {
    listing: Listing,
    path: SitePath,
    scope: Scope,
    owner: Owner,
    entries: VecDeque<DirEntry>,
    ended: bool,
    _handle: OwnedSemaphorePermit,
    _folder: OwnedSemaphorePermit,
}

impl Folder {
    /// Reads on until a full reply's worth of entries is at hand or the folder has ended.
    async fn fill(&mut self) {
        while !self.ended && self.entries.len() < DIR_CHUNK {
            match self.listing.next_chunk().await {
                Some(chunk) => self.entries.extend(chunk),
                None => self.ended = true,
            }
        }
    }

    /// The next reply: at most DIR_CHUNK entries and about DIR_CHUNK_BYTES; the rest wait
    /// for the next READDIR.
    async fn next_reply(&mut self, id: u32) -> Packet {
        self.fill().await;
        if self.entries.is_empty() {
            return status(id, StatusCode::Eof, "end of folder");
        }
        let (mut n, mut bytes) = (0, 0);
        for e in self.entries.iter().take(DIR_CHUNK) {
            bytes += 2 * e.name.len() + 96;
            n += 1;
            if bytes >= DIR_CHUNK_BYTES {
                break;
            }
        }
        Packet::Name(Name {
            id,
            files: self
                .entries
                .drain(..n)
                .map(|e| {
                    let access = match self.path.join(&e.name) {
                        Ok(child) => rights(&self.scope, &child),
                        Err(_) => crate::identity::Access::NONE,
                    };
                    entry(&e.name, &e.metadata, access, &self.owner)
                })
                .collect(),
        })
    }
}

type HandleMap = Arc<Mutex<HashMap<String, HandleEntry>>>;

/// The handle table; only map operations happen under its lock, so a poisoned lock is
/// still consistent.
fn lock(handles: &HandleMap) -> MutexGuard<'_, HashMap<String, HandleEntry>> {
    handles.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Session {
    files: Arc<Files>,
    who: Arc<Principal>,
    home: SitePath,
    scope: Scope,
    owner: Owner,
    limits: SessionLimits,
    shared: Arc<Shared>,
    handles: HandleMap,
    next_handle: AtomicU64,
    replies: Replies,
    requests: Arc<Semaphore>,
}

/// Serves SFTP from `reader` to `writer` for `who` until the client goes away, misbehaves
/// or the connection is stopped.
pub async fn serve<R, W>(
    mut reader: R,
    writer: W,
    files: Arc<Files>,
    who: Arc<Principal>,
    limits: SessionLimits,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + 'static,
{
    let stop = shared.stop.clone();
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let writing = shared.tasks.spawn(write_replies(writer, rx, stop.clone()));
    files.ensure_roots(&who).await;
    let home = files.start_dir(&who);
    let scope = files.scope(&who);
    let owner = Owner {
        user: who.display_name(),
    };
    let session = Session {
        files,
        who,
        home,
        scope,
        owner,
        limits,
        shared,
        handles: Arc::default(),
        next_handle: AtomicU64::new(1),
        replies: Replies {
            tx,
            stop: stop.clone(),
        },
        requests: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    };
    let stopped = stop.raised();
    tokio::pin!(stopped);
    loop {
        let read = tokio::select! {
            () = &mut stopped => break,
            read = read_packet(&mut reader, limits.max_packet) => read,
        };
        let (packet, len) = match read {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(reason) => {
                tracing::info!(user = %session.who.display_name(), reason, "SFTP client sent a bad packet; disconnecting");
                break;
            }
        };
        // Waits while the session has too many requests in flight, or the connection too
        // many request bytes not yet processed.
        let ticket = tokio::select! {
            () = &mut stopped => break,
            ticket = tokio::time::timeout(STALLED, session.ticket(len.max(REQUEST_COST))) => ticket,
        };
        let Ok(ticket) = ticket else {
            tracing::info!(user = %session.who.display_name(), "SFTP client keeps more requests outstanding than the connection's budget and reads no replies; disconnecting");
            break;
        };
        let Some(ticket) = ticket else { break };
        tokio::select! {
            () = &mut stopped => break,
            () = session.dispatch(packet, ticket) => {}
        }
    }
    // Dropping the handles ends their workers; uploads never closed are discarded.
    lock(&session.handles).clear();
    drop(session);
    if stop.is_raised() {
        writing.abort();
    } else {
        let _ = writing.await;
    }
}

/// One packet and its length: `Ok(None)` at a clean end of stream, `Err` for garbage.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<(Packet, u32)>, &'static str> {
    let len = match reader.read_u32().await {
        Ok(len) => len,
        Err(_) => return Ok(None),
    };
    if len == 0 || len > max {
        return Err("packet length out of bounds");
    }
    let mut buf = vec![0u8; len as usize];
    if reader.read_exact(&mut buf).await.is_err() {
        return Ok(None);
    }
    let mut bytes = Bytes::from(buf);
    Packet::try_from(&mut bytes)
        .map(|packet| Some((packet, len)))
        .map_err(|_| "undecodable packet")
}

/// Writes replies in the order they are ready; each ticket is given back once its reply is
/// with the channel (which sends only what the client's window allows).
async fn write_replies<W: AsyncWrite>(
    writer: W,
    mut rx: mpsc::Receiver<(Bytes, Ticket)>,
    stop: Signal,
) {
    tokio::pin!(writer);
    let stopped = stop.raised();
    tokio::pin!(stopped);
    loop {
        let (bytes, ticket) = tokio::select! {
            () = &mut stopped => return,
            next = rx.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        let written = tokio::select! {
            () = &mut stopped => return,
            written = writer.write_all(&bytes) => written,
        };
        drop(ticket);
        if written.is_err() {
            return;
        }
        if rx.is_empty() && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}

impl Session {
    /// A ticket for a request of `bytes`; `None` once the session is closing.
    async fn ticket(&self, bytes: u32) -> Option<Ticket> {
        let request = self.requests.clone().acquire_owned().await.ok()?;
        let shared = &self.shared;
        let bytes = Shared::charge(&shared.request_bytes, bytes, shared.byte_limit).await?;
        Some(Ticket {
            _request: request,
            request_bytes: Some(bytes),
            reply_bytes: None,
        })
    }

    async fn dispatch(&self, packet: Packet, ticket: Ticket) {
        let id = packet.get_request_id();
        let job = match packet {
            Packet::Extended(e) if e.request == "fsync@openssh.com" => {
                match Reader::new(&e.data).string() {
                    Some(handle) => Some((handle, Job::Fsync { id })),
                    None => {
                        let reply = status(id, StatusCode::BadMessage, "malformed fsync request");
                        self.replies.send(reply, ticket).await;
                        return;
                    }
                }
            }
            Packet::Extended(e) if e.request == "copy-data" => match self.copy_job(id, &e.data) {
                Ok(job) => Some(job),
                Err(reply) => {
                    self.replies.send(reply, ticket).await;
                    return;
                }
            },
            Packet::Read(r) => Some((
                r.handle,
                Job::Read {
                    id,
                    offset: r.offset,
                    len: r.len,
                },
            )),
            Packet::Write(w) => Some((
                w.handle,
                Job::Write {
                    id,
                    offset: w.offset,
                    data: w.data,
                },
            )),
            Packet::Fstat(f) => Some((f.handle, Job::Stat { id })),
            Packet::FSetStat(f) => Some((f.handle, Job::SetStat { id, attrs: f.attrs })),
            Packet::Close(c) => Some((c.handle, Job::Close { id })),
            other => {
                let reply = self.answer(other).await;
                self.replies.send(reply, ticket).await;
                return;
            }
        };
        let Some((handle, job)) = job else { return };
        let target = match lock(&self.handles).get_mut(&handle) {
            Some(HandleEntry::File(tx, _)) => Ok(tx.clone()),
            Some(HandleEntry::Dir(_)) => Err(matches!(job, Job::Close { .. })),
            None => Err(false),
        };
        match target {
            Ok(tx) => {
                if let Err(mpsc::error::SendError((_, ticket))) = tx.send((job, ticket)) {
                    self.replies
                        .send(status(id, StatusCode::Failure, "handle is closed"), ticket)
                        .await;
                }
            }
            Err(true) => {
                lock(&self.handles).remove(&handle);
                self.replies
                    .send(status(id, StatusCode::Ok, "ok"), ticket)
                    .await;
            }
            Err(false) => {
                self.replies
                    .send(status(id, StatusCode::Failure, "invalid handle"), ticket)
                    .await
            }
        }
    }

    /// Requests not bound to an open file.
    async fn answer(&self, packet: Packet) -> Packet {
        let id = packet.get_request_id();
        match packet {
            Packet::Init(_) => {
                let mut version = Version::new();
                for (name, revision) in EXTENSIONS {
                    version
                        .extensions
                        .insert((*name).into(), (*revision).into());
                }
                Packet::Version(version)
            }
            Packet::RealPath(p) => match self.resolve(&p.path) {
                Ok(path) => one_name(id, &path),
                Err(err) => status_err(id, &err),
            },
            Packet::Stat(p) => self.stat(id, &p.path).await,
            Packet::Lstat(p) => self.stat(id, &p.path).await,
            Packet::Open(o) => self.open(id, &o.filename, o.pflags).await,
            Packet::OpenDir(o) => self.open_dir(id, &o.path).await,
            Packet::ReadDir(r) => self.read_dir(id, &r.handle).await,
            Packet::SetStat(s) => self.set_stat(id, &s.path, s.attrs).await,
            Packet::Remove(r) => {
                self.simple(id, &r.filename, |f, w, p| {
                    Box::pin(async move { f.remove_file(w, &p).await })
                })
                .await
            }
            Packet::MkDir(m) => {
                self.simple(id, &m.path, |f, w, p| {
                    Box::pin(async move { f.make_dir(w, &p).await })
                })
                .await
            }
            Packet::RmDir(r) => {
                self.simple(id, &r.path, |f, w, p| {
                    Box::pin(async move { f.remove_dir(w, &p).await })
                })
                .await
            }
            Packet::Rename(r) => self.rename(id, &r.oldpath, &r.newpath, false).await,
            Packet::ReadLink(_) | Packet::Symlink(_) => status(
                id,
                StatusCode::OpUnsupported,
                "links are not supported on this server: a link could lead out of a folder scope",
            ),
            Packet::Extended(e) => self.extension(id, &e.request, &e.data).await,
            _ => status(id, StatusCode::BadMessage, "unexpected packet"),
        }
    }

    fn resolve(&self, input: &str) -> Result<SitePath, FsError> {
        Ok(SitePath::resolve(&self.home, input)?)
    }

    /// Extension requests not bound to one open file's order.
    async fn extension(&self, id: u32, request: &str, data: &[u8]) -> Packet {
        let malformed = || status(id, StatusCode::BadMessage, "malformed extension request");
        match request {
            "posix-rename@openssh.com" => match two_strings(data) {
                Some((from, to)) => self.rename(id, &from, &to, true).await,
                None => malformed(),
            },
            "limits@openssh.com" => {
                let (packet, read, write, handles) = self.limits.advertised();
                let data = wire::Writer::default()
                    .u64(packet)
                    .u64(read)
                    .u64(write)
                    .u64(handles)
                    .into_inner();
                Packet::ExtendedReply(ExtendedReply { id, data })
            }
            "statvfs@openssh.com" => match Reader::new(data).string() {
                Some(input) => self.statvfs(id, self.resolve(&input)).await,
                None => malformed(),
            },
            "fstatvfs@openssh.com" => match Reader::new(data).string() {
                Some(handle) => {
                    // The folder holding the handle's file: a new upload is not under its
                    // name until closed, and the folder is on the same storage.
                    let path = match lock(&self.handles).get(&handle) {
                        Some(HandleEntry::File(_, path)) => {
                            Some(path.parent().unwrap_or_else(|| path.clone()))
                        }
                        Some(HandleEntry::Dir(_)) | None => None,
                    };
                    match path {
                        Some(path) => self.statvfs(id, Ok(path)).await,
                        None => status(id, StatusCode::Failure, "invalid handle"),
                    }
                }
                None => malformed(),
            },
            "home-directory" => match Reader::new(data).string() {
                Some(user) if user.is_empty() || user == self.owner.user => {
                    one_name(id, &self.home)
                }
                Some(_) => status(id, StatusCode::NoSuchFile, "no such user"),
                None => malformed(),
            },
            "expand-path@openssh.com" => match Reader::new(data).string() {
                Some(input) => match self.expand(&input) {
                    Ok(path) => one_name(id, &path),
                    Err(err) => status_err(id, &err),
                },
                None => malformed(),
            },
            "users-groups-by-id@openssh.com" => match wire::id_lists(data) {
                Some((uids, gids)) => {
                    let users = uids.iter().map(|&u| self.owner.user_name(u).unwrap_or(""));
                    let groups = gids.iter().map(|&g| self.owner.group_name(g).unwrap_or(""));
                    Packet::ExtendedReply(ExtendedReply {
                        id,
                        data: wire::names_reply(users, groups),
                    })
                }
                None => malformed(),
            },
            "hardlink@openssh.com" => status(
                id,
                StatusCode::OpUnsupported,
                "links are not supported on this server: a link could lead out of a folder scope",
            ),
            other => status(
                id,
                StatusCode::OpUnsupported,
                &format!("extension {:?} is not supported", truncate(other)),
            ),
        }
    }

    async fn statvfs(&self, id: u32, path: Result<SitePath, FsError>) -> Packet {
        let result = async { self.files.space(&self.who, &path?).await }.await;
        match result {
            Ok(space) => Packet::ExtendedReply(ExtendedReply {
                id,
                data: wire::statvfs_reply(&space),
            }),
            Err(err) => status_err(id, &err),
        }
    }

    /// `expand-path@openssh.com`: `~` and `~/…` (and `~name/…` for one's own name) start at
    /// the principal's start folder, like relative paths; then the path is normalised.
    fn expand(&self, input: &str) -> Result<SitePath, FsError> {
        let Some(rest) = input.strip_prefix('~') else {
            return self.resolve(input);
        };
        let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if !user.is_empty() && user != self.owner.user {
            return Err(FsError::NotFound);
        }
        self.resolve(if rest.is_empty() { "." } else { rest })
    }

    /// The job of a `copy-data` request, for its source handle's worker (which lends its
    /// file to the destination's), or the reply refusing it.
    // The refusal is the reply packet itself, sent at once.
    #[allow(clippy::result_large_err)]
    fn copy_job(&self, id: u32, data: &[u8]) -> Result<(String, Job), Packet> {
        let mut r = Reader::new(data);
        let parsed = (|| {
            let from = r.string()?;
            let read_offset = r.u64()?;
            let len = r.u64()?;
            let to = r.string()?;
            let write_offset = r.u64()?;
            Some((
                from,
                to,
                CopyRange {
                    read_offset,
                    len,
                    write_offset,
                },
            ))
        })();
        let Some((from, to, copy)) = parsed else {
            return Err(status(
                id,
                StatusCode::BadMessage,
                "malformed copy-data request",
            ));
        };
        if from == to {
            return Err(status(
                id,
                StatusCode::Failure,
                "copy-data needs two different handles",
            ));
        }
        let dest = match lock(&self.handles).get(&to) {
            Some(HandleEntry::File(tx, _)) => tx.clone(),
            _ => return Err(status(id, StatusCode::Failure, "invalid handle")),
        };
        Ok((from, Job::CopyTo { id, copy, dest }))
    }

    async fn stat(&self, id: u32, input: &str) -> Packet {
        let result = async {
            let path = self.resolve(input)?;
            let meta = self.files.stat(&self.who, &path).await?;
            Ok::<_, FsError>((meta, rights(&self.scope, &path)))
        }
        .await;
        match result {
            Ok((meta, access)) => Packet::Attrs(Attrs {
                id,
                attrs: attrs_of(&meta, access),
            }),
            Err(err) => status_err(id, &err),
        }
    }

    async fn simple<F>(&self, id: u32, input: &str, op: F) -> Packet
    where
        F: for<'a> FnOnce(
            &'a Files,
            &'a Principal,
            SitePath,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), FsError>> + Send + 'a>,
        >,
    {
        let result = match self.resolve(input) {
            Ok(path) => op(&self.files, &self.who, path).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => status(id, StatusCode::Ok, "ok"),
            Err(err) => status_err(id, &err),
        }
    }

    async fn rename(&self, id: u32, from: &str, to: &str, overwrite: bool) -> Packet {
        let result = async {
            let (from, to) = (self.resolve(from)?, self.resolve(to)?);
            self.files.rename(&self.who, &from, &to, overwrite).await
        }
        .await;
        match result {
            Ok(()) => status(id, StatusCode::Ok, "ok"),
            Err(err) => status_err(id, &err),
        }
    }

    async fn set_stat(&self, id: u32, input: &str, attrs: FileAttributes) -> Packet {
        let refused = self.limits.setstat_mode == SetstatMode::Refuse;
        let result = async {
            let path = self.resolve(input)?;
            if requests_unkept(&attrs) {
                // Missing and hidden entries answer as `stat` does, before anything else.
                self.files.stat(&self.who, &path).await?;
                self.files
                    .unkept_attributes(&self.who, &path, refused)
                    .await?;
                if refused {
                    return Ok(false);
                }
            }
            if let Some(size) = attrs.size {
                self.files.set_len(&self.who, &path, size).await?;
            }
            if let Some((accessed, modified)) = requested_times(&attrs) {
                let unkept = handles::unkept(self.limits.setstat_mode);
                self.files
                    .set_times(&self.who, &path, accessed, modified, unkept)
                    .await?;
            }
            Ok::<bool, FsError>(true)
        }
        .await;
        match result {
            Ok(true) => status(id, StatusCode::Ok, "ok"),
            Ok(false) => unkept_refused(id),
            Err(err) => status_err(id, &err),
        }
    }

    /// A slot for one more handle on this connection, if it has room.
    fn handle_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.shared.handles.clone().try_acquire_owned().ok()
    }

    fn register(&self, entry: HandleEntry) -> String {
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed).to_string();
        lock(&self.handles).insert(handle.clone(), entry);
        handle
    }

    async fn open(&self, id: u32, input: &str, flags: OpenFlags) -> Packet {
        let Some(slot) = self.handle_slot() else {
            return too_many_handles(id);
        };
        let path = match self.resolve(input) {
            Ok(path) => path,
            Err(err) => return status_err(id, &err),
        };
        let opened = if flags.contains(OpenFlags::WRITE) || flags.contains(OpenFlags::APPEND) {
            self.open_for_writing(&path, flags)
                .await
                .map(OpenFile::Writing)
        } else {
            self.files
                .open_read(&self.who, &path)
                .await
                .map(OpenFile::Reading)
        };
        let file = match opened {
            Ok(file) => file,
            Err(err) => return status_err(id, &err),
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed).to_string();
        let handles = self.handles.clone();
        let name = handle.clone();
        let tx = handles::spawn(
            handles::Worker {
                files: self.files.clone(),
                who: self.who.clone(),
                path: path.clone(),
                replies: self.replies.clone(),
                setstat_mode: self.limits.setstat_mode,
                shared: self.shared.clone(),
                _slot: slot,
            },
            file,
            move || {
                lock(&handles).remove(&name);
            },
        );
        lock(&self.handles).insert(handle.clone(), HandleEntry::File(tx, path));
        Packet::Handle(Handle { id, handle })
    }

    async fn open_for_writing(
        &self,
        path: &SitePath,
        flags: OpenFlags,
    ) -> Result<crate::files::Upload, FsError> {
        let exists = self.files.stat(&self.who, path).await.is_ok();
        if flags.contains(OpenFlags::EXCLUDE) && exists {
            return Err(FsError::AlreadyExists);
        }
        if !exists && !flags.contains(OpenFlags::CREATE) {
            return Err(FsError::NotFound);
        }
        let mode = if flags.contains(OpenFlags::APPEND) {
            WriteMode::Append
        } else if flags.contains(OpenFlags::TRUNCATE) || !exists {
            WriteMode::Replace
        } else {
            WriteMode::Update
        };
        if flags.contains(OpenFlags::EXCLUDE) {
            return self.files.create_new(&self.who, path, mode).await;
        }
        self.files.create(&self.who, path, mode).await
    }

    async fn open_dir(&self, id: u32, input: &str) -> Packet {
        let Some(handle_slot) = self.handle_slot() else {
            return too_many_handles(id);
        };
        let Ok(folder_slot) = self.shared.folders.clone().try_acquire_owned() else {
            return status(id, StatusCode::Failure, "too many open folders");
        };
        let result = async {
            let path = self.resolve(input)?;
            let listing = self.files.list_chunks(&self.who, &path).await?;
            Ok::<_, FsError>((listing, path))
        }
        .await;
        match result {
            Ok((listing, path)) => {
                let folder = Folder {
                    listing,
                    path,
                    scope: self.scope.clone(),
                    owner: self.owner.clone(),
                    entries: VecDeque::new(),
                    ended: false,
                    _handle: handle_slot,
                    _folder: folder_slot,
                };
                let handle = self.register(HandleEntry::Dir(Arc::new(folder.into())));
                Packet::Handle(Handle { id, handle })
            }
            Err(err) => status_err(id, &err),
        }
    }

    async fn read_dir(&self, id: u32, handle: &str) -> Packet {
        let folder = match lock(&self.handles).get(handle) {
            Some(HandleEntry::Dir(folder)) => folder.clone(),
            _ => return status(id, StatusCode::Failure, "invalid handle"),
        };
        let mut folder = folder.lock().await;
        folder.next_reply(id).await
    }
}

/// A NAME reply with one path (REALPATH, `expand-path@openssh.com`, `home-directory`).
fn one_name(id: u32, path: &SitePath) -> Packet {
    Packet::Name(Name {
        id,
        files: vec![File::dummy(path.as_str())],
    })
}

fn too_many_handles(id: u32) -> Packet {
    status(id, StatusCode::Failure, "too many open handles")
}

/// Decodes two SSH strings (u32 length + bytes) from an extension's payload.
fn two_strings(data: &[u8]) -> Option<(String, String)> {
    fn one(data: &[u8]) -> Option<(String, &[u8])> {
        let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let text = std::str::from_utf8(data.get(4..4 + len)?).ok()?;
        Some((text.to_owned(), &data[4 + len..]))
    }
    let (a, rest) = one(data)?;
    let (b, _) = one(rest)?;
    Some((a, b))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_payloads_decode_two_strings_or_nothing() {
        let mut data = Vec::new();
        for s in ["/a", "/b c"] {
            data.extend_from_slice(&(s.len() as u32).to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        assert_eq!(two_strings(&data), Some(("/a".into(), "/b c".into())));
        assert_eq!(two_strings(&data[..5]), None);
        assert_eq!(two_strings(&[0, 0, 0, 200, 1]), None);
    }
}
