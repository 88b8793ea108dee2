//! File attributes on the wire: type bits (clients need them to tell folders from files),
//! permission bits that show what the principal may do with the entry, one owner and group
//! (named through `users-groups-by-id@openssh.com`), sizes, times, and an `ls -l` style
//! long name with a link count of 1.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::{File, FileAttributes};

use crate::files::{Metadata, Scope, Visibility};
use crate::identity::Access;
use crate::path::SitePath;

/// The uid every entry is shown with: the signed-in principal (named after them).
pub const OWNER_UID: u32 = 1000;
/// The gid every entry is shown with.
pub const GROUP_GID: u32 = 1000;
/// The name of [`GROUP_GID`].
pub const GROUP_NAME: &str = "filegate";

/// Who an entry is shown as belonging to: the principal, and the service's group.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user: String,
}

impl Owner {
    /// The user name for `uid`, if it is one we show.
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        (uid == OWNER_UID).then_some(self.user.as_str())
    }

    /// The group name for `gid`, if it is one we show.
    pub fn group_name(&self, gid: u32) -> Option<&'static str> {
        (gid == GROUP_GID).then_some(GROUP_NAME)
    }
}

fn unix_seconds(t: Option<SystemTime>) -> Option<u32> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// What the principal may do at `path`, as far as permission bits can show it.
pub fn rights(scope: &Scope, path: &SitePath) -> Access {
    match scope.visibility(path) {
        Visibility::Granted(access) => access,
        Visibility::Traverse => Access::LIST,
        Visibility::Hidden => Access::NONE,
    }
}

/// `rwx` bits (the same for user, group and other) for what `access` allows: read for
/// files that may be downloaded and folders that may be listed (with `x` to enter them),
/// write for entries that may be written.
fn mode_bits(is_dir: bool, access: Access) -> u32 {
    let mut bits = 0;
    if is_dir {
        if access.contains(Access::LIST) {
            bits |= 0o5;
        }
    } else if access.contains(Access::READ) {
        bits |= 0o4;
    }
    if access.contains(Access::WRITE) {
        bits |= 0o2;
    }
    bits * 0o111
}

/// SFTP attributes for `meta`, with permission bits for `access`.
pub fn attrs_of(meta: &Metadata, access: Access) -> FileAttributes {
    let mut attrs = FileAttributes {
        size: Some(meta.len),
        uid: Some(OWNER_UID),
        gid: Some(GROUP_GID),
        permissions: Some(mode_bits(meta.is_dir(), access)),
        atime: unix_seconds(meta.accessed.or(meta.modified)),
        mtime: unix_seconds(meta.modified),
        ..Default::default()
    };
    attrs.set_dir(meta.is_dir());
    attrs.set_regular(!meta.is_dir());
    attrs
}

/// A directory entry with its long name (`ls -l` style, as OpenSSH's server writes it).
pub fn entry(name: &str, meta: &Metadata, access: Access, owner: &Owner) -> File {
    let attrs = attrs_of(meta, access);
    let longname = long_name(name, meta, access, owner, SystemTime::now());
    File {
        filename: name.to_owned(),
        longname,
        attrs,
    }
}

fn long_name(
    name: &str,
    meta: &Metadata,
    access: Access,
    owner: &Owner,
    now: SystemTime,
) -> String {
    let bits = mode_bits(meta.is_dir(), access);
    let mut mode = String::with_capacity(10);
    mode.push(if meta.is_dir() { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let b = (bits >> shift) & 7;
        mode.push(if b & 4 != 0 { 'r' } else { '-' });
        mode.push(if b & 2 != 0 { 'w' } else { '-' });
        mode.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    let modified = meta.modified.unwrap_or(UNIX_EPOCH);
    let time = chrono::DateTime::<chrono::Utc>::from(modified);
    // Like ls: the time of day for the last six months, the year for older entries.
    let recent = now
        .duration_since(modified)
        .map_or(true, |age| age < Duration::from_secs(182 * 24 * 3600));
    let when = if recent {
        time.format("%b %e %H:%M")
    } else {
        time.format("%b %e  %Y")
    };
    format!(
        "{mode}    1 {:<8} {:<8} {:>8} {when} {name}",
        owner.user, GROUP_NAME, meta.len
    )
}

/// Access and modification times requested in `attrs`, if any.
pub fn requested_times(attrs: &FileAttributes) -> Option<(Option<SystemTime>, Option<SystemTime>)> {
    let at = |s: Option<u32>| s.map(|s| UNIX_EPOCH + std::time::Duration::from_secs(u64::from(s)));
    if attrs.atime.is_none() && attrs.mtime.is_none() {
        return None;
    }
    Some((at(attrs.atime), at(attrs.mtime)))
}

/// Whether `attrs` asks for a change filegate does not keep: a mode or an owner.
pub fn requests_unkept(attrs: &FileAttributes) -> bool {
    attrs.permissions.is_some() || attrs.uid.is_some() || attrs.gid.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::EntryKind;

    fn owner() -> Owner {
        Owner {
            user: "alice".into(),
        }
    }

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
        assert!(attrs_of(&dir, Access::ALL).is_dir());
        assert!(attrs_of(&file, Access::ALL).is_regular());
        assert_eq!(attrs_of(&file, Access::ALL).size, Some(5));
        assert!(
            entry("d", &dir, Access::ALL, &owner())
                .longname
                .starts_with('d')
        );
        assert!(
            entry("f", &file, Access::ALL, &owner())
                .longname
                .starts_with('-')
        );
    }

    #[test]
    fn permission_bits_show_the_principals_rights() {
        let file = Metadata {
            kind: EntryKind::File,
            len: 5,
            modified: Some(UNIX_EPOCH + Duration::from_secs(86_400 * 400)),
            accessed: None,
        };
        let dir = Metadata {
            kind: EntryKind::Dir,
            ..file.clone()
        };
        let read_only = Access::LIST | Access::READ;
        let write_only = Access::LIST | Access::WRITE;
        assert_eq!(
            attrs_of(&file, read_only).permissions.unwrap() & 0o777,
            0o444
        );
        assert_eq!(
            attrs_of(&file, write_only).permissions.unwrap() & 0o777,
            0o222
        );
        assert_eq!(
            attrs_of(&file, Access::ALL).permissions.unwrap() & 0o777,
            0o666
        );
        assert_eq!(
            attrs_of(&dir, read_only).permissions.unwrap() & 0o777,
            0o555
        );
        assert_eq!(
            attrs_of(&dir, Access::ALL).permissions.unwrap() & 0o777,
            0o777
        );
        let now = UNIX_EPOCH + Duration::from_secs(86_400 * 401);
        assert_eq!(
            long_name("f", &file, read_only, &owner(), now),
            "-r--r--r--    1 alice    filegate        5 Feb  5 00:00 f"
        );
        let later = UNIX_EPOCH + Duration::from_secs(86_400 * 800);
        assert_eq!(
            long_name("d", &dir, Access::ALL, &owner(), later),
            "drwxrwxrwx    1 alice    filegate        5 Feb  5  1971 d"
        );
    }

    #[test]
    fn only_the_shown_ids_have_names() {
        let o = owner();
        assert_eq!(o.user_name(OWNER_UID), Some("alice"));
        assert_eq!(o.user_name(0), None);
        assert_eq!(o.group_name(GROUP_GID), Some("filegate"));
        assert_eq!(o.group_name(0), None);
    }
}
