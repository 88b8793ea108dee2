//! Users from an LDAP directory or Active Directory.
//!
//! A sign-in of a name that no local user holds (or that an earlier LDAP sign-in created)
//! goes to the directory: the search account finds the user's entry with the configured
//! filter (the login name escaped per RFC 4515), the password is checked by binding as that
//! entry's DN, the user's groups are read, and the local row is created or refreshed through
//! the [`LdapAccounts`] seam (`source = ldap`, site admin from the admin group, grants replaced
//! by the group mapping; the revision moves only when something changed). Keys, audit and
//! grants then work as for any user. Local users stay local: the directory is never asked
//! about a name a local user holds. A directory that cannot be reached fails closed
//! ([`super::AuthError::Unavailable`]); local users and API keys do not depend on it.
//!
//! [`check`] runs on each replica: it re-reads LDAP users from the directory every
//! `check_interval` (oldest check first, at most `check_batch` per interval) and disables
//! those the directory no longer finds, which ends their sessions and stops their keys.

mod check;
mod client;
mod login;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use check::run_checks;
pub use client::LdapError;

use crate::auth::DirectoryError;
use crate::identity::GrantLevel;
use crate::model::UserRecord;
use crate::path::SitePath;

/// Resolved `[auth.ldap]` settings (see `config::LdapConfig`).
#[derive(Clone)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: String,
    pub base_dn: String,
    pub user_filter: String,
    pub username_attribute: String,
    pub group_base_dn: String,
    pub group_filter: String,
    pub admin_group: Option<String>,
    pub groups: Vec<GroupGrant>,
    pub timeout: Duration,
    pub check_interval: Duration,
    pub check_batch: u32,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("base_dn", &self.base_dn)
            .finish_non_exhaustive()
    }
}

/// Members of the group `dn` get `level` on `folder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGrant {
    pub dn: String,
    pub folder: SitePath,
    pub level: GrantLevel,
}

/// The link between a local user row and its directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapLink {
    pub user_id: i64,
    pub username: String,
    pub dn: String,
    /// The directory no longer found the user (the row was disabled because of it).
    pub gone: bool,
    pub checked_at: i64,
}

/// What the directory says a user is, as filegate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapProfile {
    pub username: String,
    pub dn: String,
    pub site_admin: bool,
    /// `(folder, level)`, sorted and without duplicates.
    pub grants: Vec<(String, String)>,
}

/// The result of writing a profile to the local rows.
#[derive(Debug, Clone)]
pub enum Synced {
    /// The row as it now is (created, refreshed, or unchanged).
    User(UserRecord),
    /// A local (non-LDAP) user holds the name: the directory user cannot sign in as them.
    LocalUserHoldsName,
}

/// The rows LDAP users are kept in; implemented by the store.
#[async_trait::async_trait]
pub trait LdapAccounts: Send + Sync {
    /// The directory link of a user row, if the row came from LDAP.
    async fn ldap_link(&self, user_id: i64) -> Result<Option<LdapLink>, DirectoryError>;
    /// Creates or refreshes the row of a directory user in one transaction: admin flag and
    /// grants as `profile` says, enabled again if only the directory check had disabled it
    /// (a local `disabled` set by an admin stays). Bumps the revision only on a change.
    async fn sync_ldap_user(
        &self,
        profile: &LdapProfile,
        at: i64,
    ) -> Result<Synced, DirectoryError>;
    /// LDAP users not yet gone whose last check is at or before `checked_before`, oldest
    /// first.
    async fn ldap_users_due(
        &self,
        checked_before: i64,
        limit: u32,
    ) -> Result<Vec<LdapLink>, DirectoryError>;
    /// Records that the directory no longer has the user: disables the row (bumping the
    /// revision, which ends sessions and stops keys).
    async fn ldap_user_gone(&self, user_id: i64, at: i64) -> Result<(), DirectoryError>;
}

/// The directory plus the rows its users live in.
pub struct Ldap {
    settings: LdapSettings,
    tls: Arc<rustls::ClientConfig>,
    accounts: Arc<dyn LdapAccounts>,
}

impl Ldap {
    /// Builds the TLS configuration once (CA file or system roots, ring, TLS 1.2+).
    pub fn new(settings: LdapSettings, accounts: Arc<dyn LdapAccounts>) -> Result<Ldap, LdapError> {
        let tls = client::tls_config(settings.ca_file.as_deref())?;
        Ok(Ldap {
            settings,
            tls,
            accounts,
        })
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    /// The profile of an entry: admin flag and grants from its groups.
    fn profile(&self, username: &str, dn: &str, groups: &[String]) -> LdapProfile {
        let member = |group: &str| {
            let group = normalise_dn(group);
            groups.iter().any(|g| normalise_dn(g) == group)
        };
        let site_admin = self.settings.admin_group.as_deref().is_some_and(&member);
        let mut grants: Vec<(String, String)> = self
            .settings
            .groups
            .iter()
            .filter(|g| member(&g.dn))
            .map(|g| (g.folder.as_str().to_owned(), g.level.as_str().to_owned()))
            .collect();
        grants.sort();
        grants.dedup();
        LdapProfile {
            username: username.to_owned(),
            dn: dn.to_owned(),
            site_admin,
            grants,
        }
    }
}

/// `template` with each `{name}` replaced by its value escaped for a filter (RFC 4515: `*`,
/// `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`).
pub fn fill_filter(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(name, &ldap3::ldap_escape(*value));
    }
    out
}

/// A DN compared loosely: lower case, no spaces around `,` and `=`.
fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_name_cannot_change_the_filter() {
        let f = fill_filter(
            "(&(objectClass=inetOrgPerson)(uid={username}))",
            &[("{username}", "*)(uid=*")],
        );
        assert_eq!(f, r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))");
        assert_eq!(
            fill_filter("(uid={username})", &[("{username}", "a\\b\0")]),
            r"(uid=a\5cb\00)"
        );
    }

    #[test]
    fn group_dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalise_dn("CN=Sales, OU=Groups ,DC=Example,DC=org"),
            "cn=sales,ou=groups,dc=example,dc=org"
        );
    }
}
