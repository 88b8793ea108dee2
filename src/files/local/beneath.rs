//! Path resolution beneath the storage root, done by the kernel.
//!
//! Every lookup is one `openat2(2)` on the root's descriptor with `RESOLVE_BENEATH` (no `..`
//! or absolute path or link may leave the root) and, unless symlinks are followed by
//! configuration, `RESOLVE_NO_SYMLINKS`: a symlink in *any* component of the path makes the
//! lookup fail with `ELOOP`, so no link — relative, absolute, inside or outside the root —
//! can lead one user's folder into another's. Operations on a name (create a folder,
//! remove, rename, link) resolve the parent folder this way and then act on the last
//! component with the `*at` calls, which never follow it. No string checks, no
//! check-then-open: what is opened is what was resolved.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Whether symlinks inside the storage are followed (while they stay beneath the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// A symlink anywhere in a path makes it unreachable; listings leave symlinks out.
    Refuse,
    /// Symlinks are followed while they stay beneath the root (absolute ones never are).
    FollowInsideRoot,
}

impl Symlinks {
    /// From the `server.follow_symlinks` setting.
    pub fn following(follow: bool) -> Symlinks {
        if follow {
            Symlinks::FollowInsideRoot
        } else {
            Symlinks::Refuse
        }
    }
}

/// Resolves paths beneath one open root folder.
#[derive(Debug, Clone, Copy)]
pub struct Beneath {
    pub symlinks: Symlinks,
}

/// `rel` split into its parent folder (`.` for the root) and its last component.
pub fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (".", rel),
    }
}

impl Beneath {
    /// Opens `rel` beneath `root` with `flags` (`O_CLOEXEC` always). When symlinks are
    /// refused, a final link fails with `ELOOP` through `RESOLVE_NO_SYMLINKS`; files opened
    /// for data also get `O_NOFOLLOW` (not `O_PATH`/`O_DIRECTORY` lookups: with those the
    /// kernel would answer a final link with an `O_PATH` descriptor of the link itself, or
    /// `ENOTDIR`, instead of `ELOOP`).
    pub fn open(
        &self,
        root: impl AsFd,
        rel: &str,
        flags: OFlags,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let mut flags = flags | OFlags::CLOEXEC;
        let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        if self.symlinks == Symlinks::Refuse {
            resolve |= ResolveFlags::NO_SYMLINKS;
            if !flags.intersects(OFlags::PATH | OFlags::DIRECTORY) {
                flags |= OFlags::NOFOLLOW;
            }
        }
        let mode = Mode::from_raw_mode(mode);
        let mut attempts = 0;
        loop {
            match rustix::fs::openat2(root.as_fd(), rel, flags, mode, resolve) {
                // A concurrent rename made the kernel unsure the lookup stayed beneath.
                Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
                result => return result.map_err(io::Error::from),
            }
        }
    }

    /// A descriptor for the folder `rel` itself (no read rights needed: `O_PATH`), usable
    /// as the directory of `*at` calls.
    pub fn folder(&self, root: impl AsFd, rel: &str) -> io::Result<OwnedFd> {
        self.open(root, rel, OFlags::PATH | OFlags::DIRECTORY, 0)
    }

    /// The parent folder of `rel` (opened as by [`Beneath::folder`]) and its last name.
    pub fn parent<'a>(&self, root: impl AsFd, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
        let (parent, name) = split(rel);
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        Ok((self.folder(root, parent)?, name))
    }

    /// Attributes of `rel` (of the link's target when following, never of a link when not).
    pub fn metadata(&self, root: impl AsFd, rel: &str) -> io::Result<std::fs::Metadata> {
        let fd = self.open(root, rel, OFlags::PATH, 0)?;
        std::fs::File::from(fd).metadata()
    }

    /// Probes that the kernel resolves beneath a root (Linux 5.6+, `openat2` not filtered).
    pub fn probe(&self, root: impl AsFd) -> io::Result<()> {
        self.folder(root, ".").map(drop).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("openat2(RESOLVE_BENEATH) is unavailable ({e}); Linux 5.6+ is required"),
            )
        })
    }
}

/// Opens a regular file for reading or writing without blocking on special files (a FIFO
/// would wait forever for a writer), refusing anything that is not a regular file.
pub fn open_regular(
    beneath: &Beneath,
    root: impl AsFd,
    rel: &str,
    flags: OFlags,
    mode: u32,
) -> io::Result<std::fs::File> {
    let fd = beneath.open(root, rel, flags | OFlags::NONBLOCK, mode)?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    if !meta.is_file() {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    // Keep O_APPEND if asked for; drop O_NONBLOCK.
    rustix::fs::fcntl_setfl(&file, flags & OFlags::APPEND)?;
    Ok(file)
}
