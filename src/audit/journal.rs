//! The local audit journal: audit records the store could not take (yet), kept on this
//! replica's disk until they are replayed into the store.
//!
//! A folder (`<data_dir>/audit-journal/`) of append-only segment files
//! `segment-<n>.jsonl`, numbered in the order they were opened. Each record is one line:
//! `<crc32 of the JSON, 8 hex digits> <JSON>\n`. [`Journal::append`] writes a whole batch in
//! one `write` and `fsync`s it before returning (and the folder, when it opened a new
//! segment), so a record that `append` reported as written survives `kill -9` and a power
//! cut. A segment is closed when it passes [`SEGMENT_BYTES`], when an append fails (so a torn
//! line is only ever at the end of a closed segment, never followed by good records glued
//! to it), and before each replay; each process writes its own segments, never the tail of
//! an old one. [`Journal::replay_oldest`] reads the oldest closed segment, hands its records
//! to the caller in batches, and deletes the file only when all of them were taken: a crash
//! between a store insert and the delete replays the segment again, and the store's
//! `event_key` uniqueness keeps exactly one row per event. A line whose checksum or JSON
//! does not hold (a torn tail after a crash, a damaged disk) is skipped with a warning and
//! counted; it never stops the replay. Memory is bounded by one segment.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::{Action, AuditEvent, Outcome};
use crate::identity::Protocol;

/// A segment is closed once it holds this many bytes (a batch may pass it once).
pub const SEGMENT_BYTES: u64 = 4 << 20;

const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl";

/// The journal of one replica (one per data folder).
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    /// Records and bytes waiting in the journal (for metrics).
    records: AtomicU64,
    bytes: AtomicU64,
    /// Lines skipped as torn or corrupt during replay.
    corrupt: AtomicU64,
}

struct State {
    /// The segment being appended to, if any.
    current: Option<Open>,
    next_seq: u64,
    /// Records and bytes of every segment on disk, by number.
    segments: BTreeMap<u64, Size>,
}

struct Open {
    seq: u64,
    file: File,
}

#[derive(Debug, Clone, Copy, Default)]
struct Size {
    records: u64,
    bytes: u64,
}

/// One journal line's payload. Enums are kept as their stored names.
#[derive(Serialize, Deserialize)]
struct Line {
    k: String,
    at: i64,
    sid: Option<String>,
    uid: Option<i64>,
    user: Option<String>,
    kid: Option<i64>,
    proto: String,
    act: String,
    path: Option<String>,
    dest: Option<String>,
    bytes: Option<i64>,
    res: String,
    why: Option<String>,
    ip: Option<String>,
}

/// Folders (inside a replica's journal folder) where admin commands keep what the store did
/// not take while they ran: never the serving process's folder, whose open segment another
/// process must not replay.
pub const ADMIN_PREFIX: &str = "admin-";

/// Moves the segments admin commands left in `dir/admin-*` folders into `dir` itself (after
/// its own, in their order) and removes those folders; the serving process calls this
/// before it opens `dir`, so they are replayed like its own. How many segments moved.
pub fn adopt_admin_segments(dir: &Path) -> io::Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut next = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| segment_number(&e.file_name().to_string_lossy()))
        .max()
        .map_or(1, |last| last + 1);
    let mut moved = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(ADMIN_PREFIX) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(entry.path())?
            .flatten()
            .filter_map(|e| segment_number(&e.file_name().to_string_lossy()).map(|n| (n, e.path())))
            .collect();
        segments.sort();
        for (_, path) in segments {
            fs::rename(&path, dir.join(format!("{PREFIX}{next:012}{SUFFIX}")))?;
            next += 1;
            moved += 1;
        }
        fs::remove_dir_all(entry.path())?;
    }
    if moved > 0 {
        File::open(dir)?.sync_all()?;
    }
    Ok(moved)
}

/// Whether `dir` holds no segment (an admin command's folder that can go).
pub fn holds_no_segment(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |entries| {
        !entries
            .flatten()
            .any(|e| segment_number(&e.file_name().to_string_lossy()).is_some())
    })
}

impl Journal {
    /// Opens (creating) the journal folder and counts what waits in it from earlier runs.
    pub fn open(dir: &Path) -> io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Some(seq) = segment_number(&entry.file_name().to_string_lossy()) else {
                continue;
            };
            let data = fs::read(entry.path())?;
            let records = data
                .split(|b| *b == b'\n')
                .filter(|line| decode(line).is_some())
                .count() as u64;
            segments.insert(
                seq,
                Size {
                    records,
                    bytes: data.len() as u64,
                },
            );
        }
        let next_seq = segments.keys().next_back().map_or(1, |last| last + 1);
        let journal = Journal {
            dir: dir.to_path_buf(),
            records: AtomicU64::new(segments.values().map(|s| s.records).sum()),
            bytes: AtomicU64::new(segments.values().map(|s| s.bytes).sum()),
            corrupt: AtomicU64::new(0),
            state: Mutex::new(State {
                current: None,
                next_seq,
                segments,
            }),
        };
        Ok(journal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records waiting to be replayed.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Whether no segment waits for replay (not even one of only corrupt lines).
    pub fn is_empty(&self) -> bool {
        self.lock().segments.is_empty()
    }

    /// Bytes of journal on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Lines skipped as torn or corrupt so far.
    pub fn corrupt(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Appends `events` and makes them durable (`fsync`) before returning. On an error
    /// nothing is known to be durable; the segment is closed so the next append starts a
    /// fresh one.
    pub fn append(&self, events: &[AuditEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(events.len() * 256);
        for event in events {
            encode(event, &mut buf);
        }
        let mut state = self.lock();
        let created = state.current.is_none();
        if created {
            let seq = state.next_seq;
            state.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.segment_path(seq))?;
            state.current = Some(Open { seq, file });
            state.segments.insert(seq, Size::default());
        }
        let result = (|| {
            let open = state.current.as_mut().expect("opened above");
            open.file.write_all(&buf)?;
            open.file.sync_data()?;
            if created {
                // The new file's name must survive a power cut too.
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(open.seq)
        })();
        match result {
            Ok(seq) => {
                let size = state.segments.entry(seq).or_default();
                size.records += events.len() as u64;
                size.bytes += buf.len() as u64;
                let full = size.bytes >= SEGMENT_BYTES;
                self.records
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                if full {
                    state.current = None;
                }
                Ok(())
            }
            Err(err) => {
                // Whatever part was written is a torn line at the end of a closed segment:
                // skipped at replay.
                state.current = None;
                Err(err)
            }
        }
    }

    /// Replays the oldest segment (closing the one being written first, when it is the only
    /// one): its records go to `take` in batches of at most `batch`, and the file is deleted
    /// once every batch was taken. Returns how many records were handed over, or `None` when
    /// the journal is empty. An error from `take` leaves the segment for the next replay.
    pub async fn replay_oldest<F, Fut, E>(
        &self,
        batch: usize,
        mut take: F,
    ) -> Result<Option<u64>, E>
    where
        F: FnMut(Vec<AuditEvent>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let seq = {
            let mut state = self.lock();
            let Some(&oldest) = state.segments.keys().next() else {
                return Ok(None);
            };
            if state
                .current
                .as_ref()
                .is_some_and(|open| open.seq == oldest)
            {
                state.current = None;
            }
            oldest
        };
        let path = self.segment_path(seq);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.forget(seq);
                return Ok(Some(0));
            }
            Err(err) => {
                tracing::error!(segment = %path.display(), error = %err, "cannot read an audit journal segment; it stays for the next replay");
                return Ok(Some(0));
            }
        };
        let mut handed = 0u64;
        let mut pending = Vec::with_capacity(batch.max(1));
        let lines = data.split(|b| *b == b'\n').enumerate();
        let last = data.split(|b| *b == b'\n').count().saturating_sub(1);
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            match decode(line) {
                Some(event) => pending.push(event),
                None => {
                    self.corrupt.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        segment = %path.display(),
                        line = n + 1,
                        torn_tail = n == last,
                        "audit journal: skipped a torn or corrupt record"
                    );
                }
            }
            if pending.len() >= batch.max(1) {
                handed += pending.len() as u64;
                take(std::mem::take(&mut pending)).await?;
            }
        }
        if !pending.is_empty() {
            handed += pending.len() as u64;
            take(pending).await?;
        }
        if let Err(err) = fs::remove_file(&path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(segment = %path.display(), error = %err, "cannot delete a replayed audit journal segment; it will be replayed again (without duplicates)");
            return Ok(Some(handed));
        }
        self.forget(seq);
        Ok(Some(handed))
    }

    fn forget(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(size) = state.segments.remove(&seq) {
            self.records.fetch_sub(size.records, Ordering::Relaxed);
            self.bytes.fetch_sub(size.bytes, Ordering::Relaxed);
        }
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{seq:012}{SUFFIX}"))
    }
}

fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// Appends `event` as one line: checksum, space, JSON, newline.
fn encode(e: &AuditEvent, out: &mut Vec<u8>) {
    let line = Line {
        k: e.event_key.clone(),
        at: e.at_ms,
        sid: e.session_id.clone(),
        uid: e.user_id,
        user: e.username.clone(),
        kid: e.key_id,
        proto: e.protocol.as_str().into(),
        act: e.action.as_str().into(),
        path: e.path.clone(),
        dest: e.destination.clone(),
        bytes: e.bytes,
        res: e.outcome.as_str().into(),
        why: e.reason.clone(),
        ip: e.remote_addr.clone(),
    };
    // Serializing plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&line).unwrap_or_default();
    out.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// One line back into an event; `None` when it is torn or corrupt.
fn decode(line: &[u8]) -> Option<AuditEvent> {
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let sum = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    if crc32fast::hash(json) != sum {
        return None;
    }
    let l: Line = serde_json::from_slice(json).ok()?;
    Some(AuditEvent {
        event_key: l.k,
        at_ms: l.at,
        session_id: l.sid,
        user_id: l.uid,
        username: l.user,
        key_id: l.kid,
        protocol: Protocol::named(&l.proto)?,
        action: Action::named(&l.act)?,
        path: l.path,
        destination: l.dest,
        bytes: l.bytes,
        outcome: Outcome::named(&l.res)?,
        reason: l.why,
        remote_addr: l.ip,
    })
}

#[cfg(test)]
mod tests;
