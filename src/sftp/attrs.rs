//! File attributes on the wire: type bits (clients need them to tell folders from files),
//! sizes, times, and an `ls -l` style long name.

use std::time::{SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::{File, FileAttributes};

use crate::files::Metadata;

fn unix_seconds(t: Option<SystemTime>) -> Option<u32> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// SFTP attributes for `meta`.
pub fn attrs_of(meta: &Metadata) -> FileAttributes {
    let mut attrs = FileAttributes {
        size: Some(meta.len),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(if meta.is_dir() { 0o755 } else { 0o644 }),
        atime: unix_seconds(meta.accessed.or(meta.modified)),
        mtime: unix_seconds(meta.modified),
        ..Default::default()
    };
    attrs.set_dir(meta.is_dir());
    attrs.set_regular(!meta.is_dir());
    attrs
}

/// A directory entry with its long name.
pub fn entry(name: &str, meta: &Metadata) -> File {
    File::new(name, attrs_of(meta))
}

/// Access and modification times requested in `attrs`, if any.
pub fn requested_times(attrs: &FileAttributes) -> Option<(Option<SystemTime>, Option<SystemTime>)> {
    let at = |s: Option<u32>| s.map(|s| UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s)));
    if attrs.atime.is_none() && attrs.mtime.is_none() {
        return None;
    }
    Some((at(attrs.atime), at(attrs.mtime)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::EntryKind;

    #[test]
    fn folders_and_files_carry_their_type_bits() {
        let dir = Metadata {
            kind: EntryKind::Dir,
            len: 0,
            modified: None,
            accessed: None,
        };
        let file = Metadata {
            kind: EntryKind::File,
            len: 5,
            modified: Some(UNIX_EPOCH),
            accessed: None,
        };
        assert!(attrs_of(&dir).is_dir());
        assert!(attrs_of(&file).is_regular());
        assert_eq!(attrs_of(&file).size, Some(5));
        assert!(entry("d", &dir).longname.starts_with('d'));
        assert!(entry("f", &file).longname.starts_with('-'));
    }
}
