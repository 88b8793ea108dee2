//! Site paths: the one place where a client's path string becomes a path filegate trusts.
//!
//! A [`SitePath`] is absolute (`/` is the site root), has no `.`, `..` or empty segments, no
//! NUL or control characters, and respects the length limits below. Every front-end turns what
//! a client sent into a `SitePath` with [`SitePath::resolve`] before calling the file layer;
//! nothing else in filegate splits or joins path strings. `..` never climbs above `/`.
//! This module knows nothing about permissions or the disk.

use std::fmt;

/// Longest site path accepted, in bytes (the API-key `path` limit of Files.com is 5000).
pub const MAX_PATH_BYTES: usize = 5000;
/// Longest single name, in bytes (the limit of common Linux filesystems).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a control character")]
    ControlChar,
    #[error("path is not valid UTF-8")]
    InvalidUtf8,
    #[error("a name in the path is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path must not be empty")]
    Empty,
    #[error("path must neither start nor end with a slash")]
    EdgeSlash,
    #[error("path must not contain empty, '.' or '..' segments")]
    BadSegment,
}

/// A normalised absolute path inside the site: `/` or `/a/b` (never a trailing slash).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SitePath(String);

impl SitePath {
    /// The site root, `/`.
    pub fn root() -> Self {
        SitePath("/".to_owned())
    }

    /// Resolves what a client sent against its current folder: absolute inputs start at `/`,
    /// relative ones at `cwd`; `.` and empty segments are dropped, `..` pops (never above `/`).
    pub fn resolve(cwd: &SitePath, input: &str) -> Result<SitePath, PathError> {
        check_chars(input)?;
        let mut segments: Vec<&str> = if input.starts_with('/') {
            Vec::new()
        } else {
            cwd.segments().collect()
        };
        for segment in input.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                name => {
                    if name.len() > MAX_NAME_BYTES {
                        return Err(PathError::NameTooLong);
                    }
                    segments.push(name);
                }
            }
        }
        Self::from_segments(&segments)
    }

    /// Like [`SitePath::resolve`] for raw bytes from the wire: invalid UTF-8 is refused.
    pub fn resolve_bytes(cwd: &SitePath, input: &[u8]) -> Result<SitePath, PathError> {
        let text = std::str::from_utf8(input).map_err(|_| PathError::InvalidUtf8)?;
        Self::resolve(cwd, text)
    }

    /// Parses an absolute path from a trusted-format source (the store, the CLI).
    pub fn parse(input: &str) -> Result<SitePath, PathError> {
        Self::resolve(&SitePath::root(), input)
    }

    /// Validates an API key's `path` restriction as Files.com defines it: slash-delimited,
    /// neither starting nor ending with a slash, at most 5000 characters, and (filegate's
    /// rule) no empty, `.` or `..` segments. Returns the folder it confines the key to.
    pub fn from_key_path(input: &str) -> Result<SitePath, PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        if input.chars().count() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if input.starts_with('/') || input.ends_with('/') {
            return Err(PathError::EdgeSlash);
        }
        check_chars(input)?;
        let segments: Vec<&str> = input.split('/').collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(PathError::BadSegment);
        }
        if segments.iter().any(|s| s.len() > MAX_NAME_BYTES) {
            return Err(PathError::NameTooLong);
        }
        Self::from_segments(&segments)
    }

    fn from_segments(segments: &[&str]) -> Result<SitePath, PathError> {
        if segments.is_empty() {
            return Ok(SitePath::root());
        }
        let mut out = String::new();
        for segment in segments {
            out.push('/');
            out.push_str(segment);
        }
        if out.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        Ok(SitePath(out))
    }

    /// The path as clients see it: `/`, `/a/b`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path relative to the site root (`""` for the root, `a/b` otherwise): the form
    /// storage backends and API-key `path` fields use.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The names from the root down.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|s| !s.is_empty())
    }

    /// The last name, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The containing folder, or `None` for the root.
    pub fn parent(&self) -> Option<SitePath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            SitePath::root()
        } else {
            SitePath(self.0[..cut].to_owned())
        })
    }

    /// This path with one more name below it. The name must be a single valid segment.
    pub fn join(&self, name: &str) -> Result<SitePath, PathError> {
        check_chars(name)?;
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathError::BadSegment);
        }
        SitePath::resolve(self, name)
    }

    /// True when `self` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &SitePath) -> bool {
        if ancestor.is_root() || self.0 == ancestor.0 {
            return true;
        }
        self.0.starts_with(&ancestor.0) && self.0.as_bytes().get(ancestor.0.len()) == Some(&b'/')
    }

    /// `self` as seen from `ancestor`, by whole names: `/a/b/c` relative to `/a` is `/b/c`,
    /// `/a` relative to itself is `/`; `None` when `self` is not within `ancestor` (`/ab` is
    /// not within `/a`). How a mounted storage sees the path (`files::mounts`).
    pub fn relative_to(&self, ancestor: &SitePath) -> Option<SitePath> {
        if !self.is_within(ancestor) {
            return None;
        }
        if ancestor.is_root() {
            return Some(self.clone());
        }
        let rest = &self.0[ancestor.0.len()..];
        Some(if rest.is_empty() {
            SitePath::root()
        } else {
            SitePath(rest.to_owned())
        })
    }

    /// The child of `self` on the way down to `descendant` (which must lie strictly below).
    pub fn child_toward<'a>(&self, descendant: &'a SitePath) -> Option<&'a str> {
        if !descendant.is_within(self) || descendant == self {
            return None;
        }
        let depth = self.segments().count();
        descendant.segments().nth(depth)
    }

    /// The deepest folder containing every path given (the root when there are none).
    pub fn common_ancestor<'a>(paths: impl IntoIterator<Item = &'a SitePath>) -> SitePath {
        let mut iter = paths.into_iter();
        let Some(first) = iter.next() else {
            return SitePath::root();
        };
        let mut common: Vec<&str> = first.segments().collect();
        for path in iter {
            let shared = common
                .iter()
                .zip(path.segments())
                .take_while(|(a, b)| *a == b)
                .count();
            common.truncate(shared);
        }
        Self::from_segments(&common).unwrap_or_else(|_| SitePath::root())
    }
}

fn check_chars(input: &str) -> Result<(), PathError> {
    if input.len() > MAX_PATH_BYTES * 2 {
        // Far too long even before `..` could shorten it: refuse without more work.
        return Err(PathError::TooLong);
    }
    for c in input.chars() {
        if c == '\0' {
            return Err(PathError::Nul);
        }
        if c.is_control() {
            return Err(PathError::ControlChar);
        }
    }
    Ok(())
}

impl fmt::Display for SitePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SitePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests;
