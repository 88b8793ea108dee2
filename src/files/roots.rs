//! Scope roots that exist: a folder a grant or key path names is made on first use when it
//! is missing from storage (deleted by hand, storage wiped, or granted before grants made
//! their folders), so a principal always finds its roots.
//!
//! Front-ends call [`Files::ensure_roots`] when a principal starts using files (SFTP and FTP
//! at session start, WebDAV on each request). Creating is preferred over showing a virtual
//! folder: every protocol then sees one real folder with real attributes, and no operation
//! needs a special case. Each folder made is audited (`mkdir` by the principal, reason
//! "scope root made on first use"); a root that exists costs one `stat` and no record.

use crate::audit::{Action, AuditEvent, Outcome};
use crate::identity::Principal;
use crate::path::SitePath;

use super::{Files, Scope, StorageErrorKind};

/// The audit reason of a folder made by [`Files::ensure_roots`].
pub const MADE_ON_FIRST_USE: &str = "scope root made on first use";

impl Files {
    /// Makes each of `who`'s scope roots (and missing parents) that is missing from storage.
    /// Best effort: a failure is logged, and the operation that follows reports it.
    pub async fn ensure_roots(&self, who: &Principal) {
        for root in Scope::of(who).roots() {
            if root.is_root() {
                continue;
            }
            match self.storage.metadata(root).await {
                Ok(_) => continue,
                Err(e) if e.kind == StorageErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = root.as_str(), error = %e, "cannot check a scope root");
                    continue;
                }
            }
            self.make_missing(who, root).await;
        }
    }

    async fn make_missing(&self, who: &Principal, root: &SitePath) {
        let mut at = SitePath::root();
        for segment in root.segments() {
            at = match at.join(segment) {
                Ok(next) => next,
                Err(_) => return,
            };
            match self.storage.metadata(&at).await {
                Ok(_) => continue,
                Err(e) if e.kind == StorageErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = at.as_str(), error = %e, "cannot make a scope root");
                    return;
                }
            }
            match self.storage.create_dir(&at).await {
                Ok(()) => {
                    tracing::info!(path = at.as_str(), "made a missing scope root on first use");
                    self.audit.record(
                        AuditEvent::by(who, Action::Mkdir, Outcome::Ok)
                            .path(at.as_str())
                            .reason(MADE_ON_FIRST_USE),
                    );
                }
                Err(e) if e.kind == StorageErrorKind::AlreadyExists => {}
                Err(e) => {
                    tracing::warn!(path = at.as_str(), error = %e, "cannot make a scope root");
                    return;
                }
            }
        }
    }
}
