//! Dead properties (WebDAV PROPPATCH values) as metadata of the files they belong to.
//!
//! `Files` owns them: reading needs LIST, changing needs WRITE, a change is one audit record,
//! and every rename, delete or copy of an entry — by any protocol — moves, drops or copies
//! its properties with it. They are kept through the [`PropStore`] seam (implemented by
//! `store`), so every replica sees the same ones. At most [`MAX_PROPS`] per entry, each at
//! most [`MAX_PROP_BYTES`]; a change that would go beyond stores nothing.
//!
//! [`Props`] also keeps an index of the paths that have properties, so that a listing of
//! 10 000 entries does not ask the store 10 000 times; it follows the store's change
//! counter (read at most once per [`RECHECK`]), and values are always read from the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Dead properties one entry may have.
pub const MAX_PROPS: usize = 64;
/// Largest dead property: its value, name, namespace and prefix together, in bytes.
pub const MAX_PROP_BYTES: usize = 4096;
/// How stale a replica's index of paths with properties may be.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One dead property (the namespace is empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    pub namespace: String,
    pub name: String,
    pub prefix: Option<String>,
    pub xml: Option<Vec<u8>>,
}

impl DeadProp {
    fn bytes(&self) -> usize {
        self.xml.as_ref().map_or(0, Vec::len)
            + self.name.len()
            + self.namespace.len()
            + self.prefix.as_ref().map_or(0, String::len)
    }
}

/// One change of a PROPPATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropChange {
    Set(DeadProp),
    Remove { namespace: String, name: String },
}

impl PropChange {
    fn key(&self) -> (&str, &str) {
        match self {
            PropChange::Set(p) => (&p.namespace, &p.name),
            PropChange::Remove { namespace, name } => (namespace, name),
        }
    }
}

/// The property store could not be used.
#[derive(Debug, thiserror::Error)]
#[error("property store: {0}")]
pub struct PropStoreError(pub String);

/// Where properties are kept, by normalised site path (implemented by `store`). Every
/// change moves the counter [`PropStore::version`] answers.
#[async_trait::async_trait]
pub trait PropStore: Send + Sync {
    /// A number that changes whenever any property changes (on any replica).
    async fn version(&self) -> Result<i64, PropStoreError>;
    /// Every path that has at least one property.
    async fn paths(&self) -> Result<Vec<String>, PropStoreError>;
    /// The properties of `path`, by namespace and name.
    async fn props_of(&self, path: &str) -> Result<Vec<DeadProp>, PropStoreError>;
    /// Applies `changes` to `path` in one transaction, unless the result would hold more
    /// than `max` properties: then nothing changes and the answer is `Ok(false)`.
    async fn apply(
        &self,
        path: &str,
        changes: &[PropChange],
        max: usize,
    ) -> Result<bool, PropStoreError>;
    /// Drops the properties of `path`, and with `below` those of every path under it.
    async fn remove(&self, path: &str, below: bool) -> Result<(), PropStoreError>;
    /// Moves the properties of `from` (and with `below`, of every path under it) to `to`,
    /// replacing those `to` had (and, with `below`, those under `to`).
    async fn rename(&self, from: &str, to: &str, below: bool) -> Result<(), PropStoreError>;
    /// Copies the properties of `from` alone to `to`, replacing those of `to`.
    async fn copy(&self, from: &str, to: &str) -> Result<(), PropStoreError>;
}

/// The properties of a `Files`: the store seam plus the index of paths that have some.
pub(super) struct Props {
    store: Option<Arc<dyn PropStore>>,
    /// The store's version the paths were read at; held while the index is re-read.
    version: tokio::sync::Mutex<Option<i64>>,
    /// When the version was last read.
    checked: Mutex<Option<Instant>>,
    paths: RwLock<HashSet<String>>,
}

// Only reads and assignments happen under these locks (nothing that panics); a poisoned
// lock is taken back all the same.
impl Props {
    pub(super) fn new(store: Option<Arc<dyn PropStore>>) -> Props {
        Props {
            store,
            version: tokio::sync::Mutex::default(),
            checked: Mutex::default(),
            paths: RwLock::default(),
        }
    }

    pub(super) fn store(&self) -> Option<&Arc<dyn PropStore>> {
        self.store.as_ref()
    }

    pub(super) fn fresh(&self) -> bool {
        self.store.is_none()
            || self
                .checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|t| t.elapsed() < RECHECK)
    }

    pub(super) fn indexed(&self, path: &str) -> bool {
        let paths = self.paths.read().unwrap_or_else(PoisonError::into_inner);
        !paths.is_empty() && paths.contains(path)
    }

    /// Re-reads the index if the store's version moved (`force`: whatever the time since
    /// the last check; after this replica's own changes).
    pub(super) async fn refresh(&self, force: bool) {
        let Some(store) = &self.store else { return };
        let mut version = self.version.lock().await;
        if !force && self.fresh() {
            return;
        }
        let Ok(current) = store.version().await else {
            return; // keep the last index; values are always read from the store
        };
        *self.checked.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if *version == Some(current) {
            return;
        }
        if let Ok(paths) = store.paths().await {
            *self.paths.write().unwrap_or_else(PoisonError::into_inner) =
                paths.into_iter().collect();
            *version = Some(current);
        }
    }
}

/// Whether `changes` fit the size cap of one property (the count is the store's to check,
/// in the same transaction as the change).
pub(super) fn within_size(changes: &[PropChange]) -> bool {
    changes.iter().all(|c| match c {
        PropChange::Set(p) => p.bytes() <= MAX_PROP_BYTES,
        PropChange::Remove { .. } => true,
    })
}

/// How many distinct properties `changes` set at most (a first check before the store).
pub(super) fn distinct_sets(changes: &[PropChange]) -> usize {
    let mut seen = HashSet::new();
    for c in changes {
        if matches!(c, PropChange::Set(_)) {
            seen.insert(c.key());
        }
    }
    seen.len()
}
