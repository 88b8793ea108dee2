//! Who is acting, and what they may do: plain data shared by every layer.
//!
//! A [`Principal`] is what the authenticator hands a front-end after a successful login and
//! what the file layer receives on every call. It carries the user (if any), the API key (if
//! any), the folder grants and the key's restrictions; it decides nothing by itself. The
//! permission arithmetic lives in `files::policy`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::path::SitePath;

crate::named_enum! {
    /// The interface a request came through; `as_str` is the name used in audit records and the
    /// API's `interface` field.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Protocol {
        Sftp => "sftp",
        Ftp => "ftp",
        WebDav => "webdav",
        Api => "restapi",
        /// The web console (`web`).
        Web => "web",
        /// The `filegate` command line, acting on the store directly.
        Cli => "cli",
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    /// An id shared by every audit record of one connection or session.
    pub session_id: String,
}

impl ClientInfo {
    pub fn new(ip: Option<IpAddr>) -> Self {
        ClientInfo {
            ip,
            session_id: crate::secret::random_hex(8),
        }
    }
}

/// Folder grant levels (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantLevel {
    Full,
    ReadOnly,
    WriteOnly,
    List,
}

impl GrantLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantLevel::Full => "full",
            GrantLevel::ReadOnly => "readonly",
            GrantLevel::WriteOnly => "writeonly",
            GrantLevel::List => "list",
        }
    }

    /// The operations this level allows.
    pub fn access(self) -> Access {
        match self {
            GrantLevel::Full => Access::ALL,
            GrantLevel::ReadOnly => Access::LIST | Access::READ,
            GrantLevel::WriteOnly => Access::LIST | Access::WRITE | Access::MKDIR,
            GrantLevel::List => Access::LIST,
        }
    }
}

impl FromStr for GrantLevel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(GrantLevel::Full),
            "readonly" => Ok(GrantLevel::ReadOnly),
            "writeonly" => Ok(GrantLevel::WriteOnly),
            "list" => Ok(GrantLevel::List),
            _ => Err(UnknownName(s.chars().take(64).collect())),
        }
    }
}

/// API-key permission sets: Files.com's three and filegate's two file-only additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionSet {
    /// Everything the owner may do, the REST API included.
    Full,
    /// File operations and reading its own key; no key or user management.
    DesktopApp,
    /// File operations only.
    FilesOnly,
    /// Download-only file access.
    ReadOnly,
    /// Upload-only (drop box) file access.
    WriteOnly,
}

impl PermissionSet {
    pub const ALL: [PermissionSet; 5] = [
        PermissionSet::Full,
        PermissionSet::DesktopApp,
        PermissionSet::FilesOnly,
        PermissionSet::ReadOnly,
        PermissionSet::WriteOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionSet::Full => "full",
            PermissionSet::DesktopApp => "desktop_app",
            PermissionSet::FilesOnly => "files_only",
            PermissionSet::ReadOnly => "readonly",
            PermissionSet::WriteOnly => "writeonly",
        }
    }

    /// The file operations a key with this set may ever perform (before grants).
    pub fn file_mask(self) -> Access {
        match self {
            PermissionSet::Full | PermissionSet::DesktopApp | PermissionSet::FilesOnly => {
                Access::ALL
            }
            PermissionSet::ReadOnly => GrantLevel::ReadOnly.access(),
            PermissionSet::WriteOnly => GrantLevel::WriteOnly.access(),
        }
    }

    /// How a set ranks for "never widen": a key may only be given a set at or below its
    /// creator's. `full` > `desktop_app` > `files_only` > `readonly` | `writeonly`.
    pub fn includes(self, other: PermissionSet) -> bool {
        use PermissionSet::*;
        matches!(
            (self, other),
            (Full, _)
                | (DesktopApp, DesktopApp | FilesOnly | ReadOnly | WriteOnly)
                | (FilesOnly, FilesOnly | ReadOnly | WriteOnly)
                | (ReadOnly, ReadOnly)
                | (WriteOnly, WriteOnly)
        )
    }
}

impl FromStr for PermissionSet {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionSet::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| UnknownName(s.chars().take(64).collect()))
    }
}

/// A name that is not one of the known values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownName(pub String);

/// A set of file operations, as bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    pub const NONE: Access = Access(0);
    /// See folder contents and file attributes.
    pub const LIST: Access = Access(1);
    /// Download file contents.
    pub const READ: Access = Access(2);
    /// Create, append to or change files (and their times).
    pub const WRITE: Access = Access(4);
    /// Delete files and folders (and overwrite existing files).
    pub const DELETE: Access = Access(8);
    /// Create folders.
    pub const MKDIR: Access = Access(16);
    pub const ALL: Access = Access(31);

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersect(self, other: Access) -> Access {
        Access(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, rhs: Access) -> Access {
        Access(self.0 | rhs.0)
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Access::LIST, "list"),
            (Access::READ, "read"),
            (Access::WRITE, "write"),
            (Access::DELETE, "delete"),
            (Access::MKDIR, "mkdir"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Access({})", set.join("|"))
    }
}

/// A folder grant held by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: SitePath,
    pub level: GrantLevel,
}

/// The user part of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    pub id: i64,
    pub username: String,
    /// The user row's revision when the principal was made: any later change to the user's
    /// rights or credentials bumps it, and the session is then no longer valid.
    pub revision: i64,
}

/// The API-key part of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub id: i64,
    pub name: String,
    pub permission_set: PermissionSet,
    /// The folder the key is confined to, if any.
    pub path: Option<SitePath>,
    /// The key row's revision when the principal was made (see [`UserIdentity::revision`]).
    pub revision: i64,
}

/// An authenticated actor.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user acting, or the owner of the key; `None` for a site-wide key.
    pub user: Option<UserIdentity>,
    /// The key used to sign in, if any.
    pub key: Option<KeyIdentity>,
    /// Site admins (and site-wide keys) hold `full` on `/`.
    pub site_admin: bool,
    /// The user's folder grants (ignored for site admins).
    pub grants: Vec<Grant>,
    pub protocol: Protocol,
    pub client: ClientInfo,
}

impl Principal {
    /// The name to show in logs: the username, or `key:<id>` for a site-wide key.
    pub fn display_name(&self) -> String {
        match (&self.user, &self.key) {
            (Some(user), _) => user.username.clone(),
            (None, Some(key)) => format!("key:{}", key.id),
            (None, None) => "system".to_owned(),
        }
    }

    /// The principal that the CLI acts as: a site admin with no user or key.
    pub fn cli() -> Principal {
        Principal {
            user: None,
            key: None,
            site_admin: true,
            grants: Vec::new(),
            protocol: Protocol::Cli,
            client: ClientInfo::new(None),
        }
    }
}
