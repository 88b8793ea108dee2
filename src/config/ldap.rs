//! `[auth.ldap]`: users from an LDAP directory or Active Directory, parsed and checked once.
//!
//! Off unless `url` is set. Plain `ldap://` must use StartTLS unless the host is a loopback
//! address (`ldaps://` is TLS from the first byte). Filters are templates: `{username}` (and
//! `{dn}` in the group filter) are replaced by the value escaped with RFC 4515 rules, so a
//! login name such as `*` or `)(uid=*` matches nothing. The search password may come from the
//! environment (`FILEGATE_LDAP_BIND_PASSWORD`) and is never printed (`Debug` redacts it).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::ldap::{GroupGrant, LdapSettings};
use crate::identity::GrantLevel;
use crate::path::SitePath;

/// A secret setting: shown as `<redacted>` by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

/// The directory and how its entries become filegate users.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldaps://host:636` or `ldap://host:389`; empty turns LDAP off.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS (required unless the host is loopback).
    pub starttls: bool,
    /// PEM file of the CAs that sign the directory's certificate (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// The account that searches for users (empty: anonymous search).
    pub bind_dn: String,
    /// Its password (`FILEGATE_LDAP_BIND_PASSWORD` overrides; never logged).
    pub bind_password: Redacted,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// Finds one enabled user; `{username}` is the escaped login name.
    pub user_filter: String,
    /// The attribute holding the login name.
    pub username_attribute: String,
    /// Where groups are searched (default: `base_dn`).
    pub group_base_dn: String,
    /// Finds the groups of a user; `{dn}` and `{username}` are escaped.
    pub group_filter: String,
    /// Members of this group are site admins.
    pub admin_group: Option<String>,
    /// Group → folder grant mapping.
    pub groups: Vec<LdapGroupConfig>,
    /// Seconds for connecting and for each request.
    pub timeout_seconds: u64,
    /// Seconds between directory checks of each LDAP user (disabled/removed there → disabled
    /// here, which ends their sessions and stops their keys).
    pub check_interval_seconds: u64,
    /// Most users checked per interval by one replica.
    pub check_batch: u32,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: String::new(),
            starttls: false,
            ca_file: None,
            bind_dn: String::new(),
            bind_password: Redacted::default(),
            base_dn: String::new(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={username}))".into(),
            username_attribute: "uid".into(),
            group_base_dn: String::new(),
            group_filter: "(|(member={dn})(uniqueMember={dn})(memberUid={username}))".into(),
            admin_group: None,
            groups: Vec::new(),
            timeout_seconds: 5,
            check_interval_seconds: 60,
            check_batch: 500,
        }
    }
}

/// `[[auth.ldap.groups]]`: members of `dn` get `level` on `folder`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapGroupConfig {
    pub dn: String,
    pub folder: String,
    pub level: String,
}

impl LdapConfig {
    /// Whether LDAP is configured at all.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let url = self.url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("auth.ldap.url must look like ldaps://host or ldap://host")?;
        let host = host_of(rest);
        if host.is_empty() {
            return Err("auth.ldap.url has no host".into());
        }
        match scheme.to_ascii_lowercase().as_str() {
            "ldaps" => {
                if self.starttls {
                    return Err("auth.ldap.starttls is for ldap:// URLs (ldaps:// is TLS)".into());
                }
            }
            "ldap" => {
                if !self.starttls && !is_loopback(host) {
                    return Err(format!(
                        "auth.ldap.url: plain ldap:// to {host} would send passwords in clear; \
                         use ldaps:// or starttls = true (only loopback may go without TLS)"
                    ));
                }
            }
            _ => return Err("auth.ldap.url must start with ldaps:// or ldap://".into()),
        }
        if self.base_dn.trim().is_empty() {
            return Err("auth.ldap.base_dn must be set".into());
        }
        check_filter("auth.ldap.user_filter", &self.user_filter, &["{username}"])?;
        check_filter(
            "auth.ldap.group_filter",
            &self.group_filter,
            &["{dn}", "{username}"],
        )?;
        let attr = self.username_attribute.trim();
        if attr.is_empty() || !attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("auth.ldap.username_attribute must be an attribute name".into());
        }
        if self.bind_dn.is_empty() != self.bind_password.0.is_empty() {
            return Err(
                "auth.ldap.bind_dn and bind_password go together (both set, or both empty)".into(),
            );
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 300 {
            return Err("auth.ldap.timeout_seconds must be between 1 and 300".into());
        }
        if self.check_interval_seconds == 0 || self.check_batch == 0 {
            return Err(
                "auth.ldap.check_interval_seconds and check_batch must be at least 1".into(),
            );
        }
        if let Some(ca) = &self.ca_file
            && !ca.is_file()
        {
            return Err(format!("auth.ldap.ca_file {} is not a file", ca.display()));
        }
        if self
            .admin_group
            .as_deref()
            .is_some_and(|g| g.trim().is_empty())
        {
            return Err("auth.ldap.admin_group must not be empty".into());
        }
        for (i, group) in self.groups.iter().enumerate() {
            group_grant(group).map_err(|m| format!("auth.ldap.groups[{i}]: {m}"))?;
        }
        Ok(())
    }

    /// The authenticator's LDAP settings (`None` when LDAP is off). Call after `validate`.
    pub fn settings(&self) -> Option<LdapSettings> {
        if !self.enabled() {
            return None;
        }
        let base_dn = self.base_dn.trim().to_owned();
        let group_base_dn = match self.group_base_dn.trim() {
            "" => base_dn.clone(),
            other => other.to_owned(),
        };
        Some(LdapSettings {
            url: self.url.trim().to_owned(),
            starttls: self.starttls,
            ca_file: self.ca_file.clone(),
            bind_dn: self.bind_dn.clone(),
            bind_password: self.bind_password.0.clone(),
            base_dn,
            user_filter: self.user_filter.clone(),
            username_attribute: self.username_attribute.trim().to_owned(),
            group_base_dn,
            group_filter: self.group_filter.clone(),
            admin_group: self.admin_group.clone(),
            groups: self
                .groups
                .iter()
                .filter_map(|g| group_grant(g).ok())
                .collect(),
            timeout: Duration::from_secs(self.timeout_seconds),
            check_interval: Duration::from_secs(self.check_interval_seconds),
            check_batch: self.check_batch,
        })
    }
}

fn group_grant(group: &LdapGroupConfig) -> Result<GroupGrant, String> {
    if group.dn.trim().is_empty() {
        return Err("dn must be set".into());
    }
    let folder =
        SitePath::parse(&group.folder).map_err(|e| format!("folder {:?}: {e}", group.folder))?;
    let level = GrantLevel::from_str(&group.level)
        .map_err(|_| "level must be full, readonly, writeonly or list".to_owned())?;
    Ok(GroupGrant {
        dn: group.dn.trim().to_owned(),
        folder,
        level,
    })
}

/// A filter must be one parenthesised expression and use only the named placeholders.
fn check_filter(key: &str, filter: &str, allowed: &[&str]) -> Result<(), String> {
    let f = filter.trim();
    if !f.starts_with('(') || !f.ends_with(')') {
        return Err(format!("{key} must be a filter in parentheses"));
    }
    let mut depth = 0i32;
    for c in f.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!("{key} has unbalanced parentheses"));
        }
    }
    if depth != 0 {
        return Err(format!("{key} has unbalanced parentheses"));
    }
    let mut rest = f;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("{key} has an unclosed {{"));
        };
        let name = &rest[start..start + len + 1];
        if !allowed.contains(&name) {
            return Err(format!("{key}: unknown placeholder {name}"));
        }
        rest = &rest[start + len + 1..];
    }
    if !f.contains(allowed[0]) {
        return Err(format!("{key} must use {}", allowed[0]));
    }
    Ok(())
}

/// The host of `host:port/…` (IPv6 in brackets).
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: &str, starttls: bool) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls,
            base_dn: "dc=example,dc=org".into(),
            ..LdapConfig::default()
        }
    }

    #[test]
    fn plain_ldap_is_refused_unless_loopback_or_starttls() {
        assert!(with("ldap://127.0.0.1:3890", false).validate().is_ok());
        assert!(with("ldap://[::1]:3890", false).validate().is_ok());
        assert!(with("ldap://localhost", false).validate().is_ok());
        let err = with("ldap://dc1.corp.example:389", false)
            .validate()
            .unwrap_err();
        assert!(err.contains("clear"), "{err}");
        assert!(with("ldap://dc1.corp.example:389", true).validate().is_ok());
        assert!(with("ldaps://dc1.corp.example", false).validate().is_ok());
        assert!(with("ldaps://dc1.corp.example", true).validate().is_err());
        assert!(with("http://x", false).validate().is_err());
    }

    #[test]
    fn filters_must_be_balanced_and_use_known_placeholders() {
        let mut c = with("ldap://127.0.0.1", false);
        c.user_filter = "(uid={user})".into();
        assert!(c.validate().unwrap_err().contains("placeholder"));
        c.user_filter = "(&(uid={username})".into();
        assert!(c.validate().unwrap_err().contains("unbalanced"));
        c.user_filter = "(objectClass=person)".into();
        assert!(c.validate().unwrap_err().contains("{username}"));
        c.user_filter = "(uid={username})".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn group_mappings_are_checked_and_the_password_never_printed() {
        let mut c = with("ldap://127.0.0.1", false);
        c.bind_dn = "cn=svc,dc=example,dc=org".into();
        c.bind_password = Redacted("hunter2".into());
        c.groups = vec![LdapGroupConfig {
            dn: "cn=sales,dc=example,dc=org".into(),
            folder: "/sales".into(),
            level: "everything".into(),
        }];
        assert!(c.validate().unwrap_err().contains("groups[0]"));
        c.groups[0].level = "full".into();
        assert!(c.validate().is_ok());
        assert!(!format!("{c:?}").contains("hunter2"));
        let s = c.settings().unwrap();
        assert_eq!(s.groups[0].folder.as_str(), "/sales");
        assert_eq!(s.group_base_dn, "dc=example,dc=org");
        c.bind_password = Redacted(String::new());
        assert!(c.validate().is_err(), "a bind DN without its password");
    }
}
