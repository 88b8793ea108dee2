//! The permission arithmetic: user grants ∩ key path ∩ permission set (DESIGN §2, §4).
//!
//! A [`Scope`] is computed from a principal: a list of *roots* (folders with the access
//! granted there) and a mask from the key's permission set. Access on a path is the union of
//! the roots covering it, masked. A folder above some root, not itself covered, may be
//! *traversed*: listed, showing only the way down to the roots. Anything else is hidden.

use crate::identity::{Access, GrantLevel, Principal};
use crate::path::SitePath;

/// What a principal may do at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Inside one or more roots: these operations.
    Granted(Access),
    /// Above a root: a listable folder showing only the way down.
    Traverse,
    /// Neither: the path must look absent.
    Hidden,
}

/// The folders a principal can reach and what it may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    roots: Vec<(SitePath, Access)>,
}

impl Scope {
    /// The scope of `principal`.
    pub fn of(principal: &Principal) -> Scope {
        let grants: Vec<(SitePath, Access)> = if principal.site_admin {
            vec![(SitePath::root(), GrantLevel::Full.access())]
        } else {
            principal
                .grants
                .iter()
                .map(|g| (g.path.clone(), g.level.access()))
                .collect()
        };
        let (key_path, mask) = match &principal.key {
            Some(key) => (key.path.clone(), key.permission_set.file_mask()),
            None => (None, Access::ALL),
        };
        let mut roots = Vec::new();
        for (path, access) in grants {
            let access = access.intersect(mask);
            if access.is_empty() {
                continue;
            }
            let root = match &key_path {
                None => path,
                Some(limit) if path.is_within(limit) => path,
                Some(limit) if limit.is_within(&path) => limit.clone(),
                Some(_) => continue,
            };
            roots.push((root, access));
        }
        Scope { roots }
    }

    /// What may be done at `path`.
    pub fn visibility(&self, path: &SitePath) -> Visibility {
        let mut access = Access::NONE;
        let mut covered = false;
        let mut above = false;
        for (root, granted) in &self.roots {
            if path.is_within(root) {
                covered = true;
                access = access | *granted;
            } else if root.is_within(path) {
                above = true;
            }
        }
        match (covered, above) {
            (true, _) => Visibility::Granted(access),
            (false, true) => Visibility::Traverse,
            // The root is always an (maybe empty) folder, so clients have somewhere to stand.
            (false, false) if path.is_root() => Visibility::Traverse,
            (false, false) => Visibility::Hidden,
        }
    }

    /// True when `need` is granted at `path` (a question, not a check: nothing is audited).
    pub fn allows(&self, path: &SitePath, need: Access) -> bool {
        matches!(self.visibility(path), Visibility::Granted(access) if access.contains(need))
    }

    /// Whether the entry `name` of folder `dir` may appear in a listing of `dir`.
    pub fn shows_child(&self, dir: &SitePath, name: &str) -> bool {
        match self.visibility(dir) {
            Visibility::Granted(_) => true,
            Visibility::Hidden => false,
            Visibility::Traverse => self
                .roots
                .iter()
                .any(|(root, _)| dir.child_toward(root) == Some(name)),
        }
    }

    /// True when `path` is one of the roots itself: such a folder may be used but not
    /// deleted or renamed, since the grant or key path naming it would then dangle.
    pub fn is_root(&self, path: &SitePath) -> bool {
        path.is_root() || self.roots.iter().any(|(root, _)| root == path)
    }

    /// The folders this scope is made of.
    pub fn roots(&self) -> impl Iterator<Item = &SitePath> {
        self.roots.iter().map(|(root, _)| root)
    }

    /// The folder a session starts in: the deepest folder containing every root.
    pub fn start_dir(&self) -> SitePath {
        SitePath::common_ancestor(self.roots.iter().map(|(root, _)| root))
    }

    /// True when nothing at all is reachable.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

#[cfg(test)]
mod tests;
