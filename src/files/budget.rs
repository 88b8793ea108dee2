//! The budget of files open for transfers: one process-wide total, and a share of it per
//! owner — a user (all of that user's keys and sessions together) or a site-wide key — so
//! that one owner can never hold every open file and lock the others out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::identity::Principal;

/// Whose share an open file counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    User(i64),
    SiteKey(i64),
    /// Neither a user nor a key (the CLI).
    System,
}

impl Owner {
    fn of(who: &Principal) -> Owner {
        match (&who.user, &who.key) {
            (Some(user), _) => Owner::User(user.id),
            (None, Some(key)) => Owner::SiteKey(key.id),
            (None, None) => Owner::System,
        }
    }
}

/// Counts of open files: the total (a semaphore) and per owner.
pub(super) struct OpenFiles {
    total: Arc<Semaphore>,
    per_owner: usize,
    owners: Arc<Mutex<HashMap<Owner, usize>>>,
}

impl OpenFiles {
    /// At most `total` files open at once, and at most `per_owner` of them for one owner.
    pub(super) fn new(total: usize, per_owner: usize) -> OpenFiles {
        OpenFiles {
            total: Arc::new(Semaphore::new(total.clamp(1, Semaphore::MAX_PERMITS))),
            per_owner: per_owner.max(1),
            owners: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The default share of one owner: an eighth of the total, but at least 64.
    pub(super) fn default_share(total: usize) -> usize {
        (total / 8).max(64)
    }

    pub(super) fn with_share(self, per_owner: usize) -> OpenFiles {
        OpenFiles {
            per_owner: per_owner.max(1),
            ..self
        }
    }

    /// One open file for `who`, or `None` when their share or the total is spent.
    pub(super) fn try_open(&self, who: &Principal) -> Option<OpenPermit> {
        let owner = Owner::of(who);
        let share = {
            // Only arithmetic under the lock; a poisoned lock still holds consistent counts.
            let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            let open = owners.entry(owner).or_insert(0);
            if *open >= self.per_owner {
                return None; // (`per_owner` is at least 1: the entry is not left at 0)
            }
            *open += 1;
            ShareSlot {
                owners: self.owners.clone(),
                owner,
            }
        };
        // Dropping `share` on failure gives the owner's slot back.
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some(OpenPermit {
            _total: total,
            _share: share,
        })
    }
}

/// One open file's place in the budget; given back when dropped (with its download or
/// upload).
pub(super) struct OpenPermit {
    _total: OwnedSemaphorePermit,
    _share: ShareSlot,
}

struct ShareSlot {
    owners: Arc<Mutex<HashMap<Owner, usize>>>,
    owner: Owner,
}

impl Drop for ShareSlot {
    fn drop(&mut self) {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = owners.get_mut(&self.owner) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                owners.remove(&self.owner);
            }
        }
    }
}
