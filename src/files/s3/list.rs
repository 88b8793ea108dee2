//! A folder's listing as [`ReadEntries`]: OpenDAL pages through `ListObjectsV2` with the `/`
//! delimiter (up to 1000 keys a page), and each call hands over what has arrived.

use futures_util::{FutureExt, StreamExt};

use crate::files::storage::{DirEntry, EntryKind, Metadata, ReadEntries};

/// Entries handed over per call at most (a page may hold 1000).
const CHUNK: usize = 256;

pub(super) struct S3Entries {
    lister: opendal::Lister,
    /// The listed folder's key (`a/b/`, or `/` for the root): its own marker is left out.
    dir: String,
    done: bool,
}

impl S3Entries {
    pub(super) fn new(lister: opendal::Lister, dir: String) -> S3Entries {
        S3Entries {
            lister,
            dir,
            done: false,
        }
    }

    /// The entry as the site shows it; `None` for the folder's marker and for keys no
    /// site path can name (empty segments from `a//b`, `.` and `..`).
    fn entry(&self, entry: opendal::Entry) -> Option<DirEntry> {
        let path = entry.path();
        if path == self.dir || path.trim_start_matches('/') == self.dir {
            return None;
        }
        let name = entry.name().trim_end_matches('/');
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return None;
        }
        let meta = entry.metadata();
        let metadata = if meta.is_dir() {
            Metadata {
                kind: EntryKind::Dir,
                len: 0,
                modified: None,
                accessed: None,
            }
        } else {
            Metadata {
                kind: EntryKind::File,
                len: meta.content_length(),
                modified: meta.last_modified().map(std::time::SystemTime::from),
                accessed: None,
            }
        };
        Some(DirEntry {
            name: name.to_owned(),
            metadata,
        })
    }
}

#[async_trait::async_trait]
impl ReadEntries for S3Entries {
    async fn read_more(&mut self) -> Option<Vec<DirEntry>> {
        if self.done {
            return None;
        }
        // Cancel-safe: the lister keeps its page request between polls, and nothing is
        // awaited after the first entry is taken.
        let mut chunk = Vec::new();
        let mut next = self.lister.next().await;
        loop {
            match next {
                None => {
                    self.done = true;
                    break;
                }
                Some(Err(err)) => {
                    // The listing ends here; what was read is kept (the trait has no error).
                    tracing::warn!(error = %super::errors::detail("list", &self.dir, &err), "S3 listing cut short");
                    self.done = true;
                    break;
                }
                Some(Ok(entry)) => chunk.extend(self.entry(entry)),
            }
            if chunk.len() >= CHUNK {
                break;
            }
            match self.lister.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        if chunk.is_empty() && self.done {
            return None;
        }
        Some(chunk)
    }
}
