//! Talking to the directory: one short connection per sign-in or check (connect, TLS, bind
//! as the search account, search the user, read the groups, and for a sign-in bind as the
//! user), every step bounded by `timeout`.

use std::path::Path;
use std::sync::Arc;

use ldap3::{Ldap as Conn, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{Ldap, fill_filter};

/// The directory could not answer (unreachable, TLS failure, timeout, refused search account,
/// or an answer that makes no sense).
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("LDAP directory unavailable: {0}")]
    Unavailable(String),
    #[error("LDAP CA file: {0}")]
    Tls(String),
}

/// An entry found by the user filter.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: String,
    /// The values of the username attribute.
    pub names: Vec<String>,
    /// `memberOf` values, when the directory keeps them.
    pub member_of: Vec<String>,
}

/// LDAP result codes that mean "these credentials do not sign in" rather than "the
/// directory is broken": invalidCredentials, inappropriateAuthentication,
/// insufficientAccessRights, unwillingToPerform (AD answers 49 for disabled and expired
/// accounts too).
const CREDENTIALS_REFUSED: [u32; 4] = [49, 48, 50, 53];

pub(super) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, LdapError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| LdapError::Tls(format!("{}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| LdapError::Tls(format!("{}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(LdapError::Tls(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn unavailable(err: impl std::fmt::Display) -> LdapError {
    LdapError::Unavailable(err.to_string())
}

impl Ldap {
    /// A connection bound as the search account (anonymous when none is configured).
    pub(super) async fn connect(&self) -> Result<Conn, LdapError> {
        let s = &self.settings;
        let conn_settings = LdapConnSettings::new()
            .set_conn_timeout(s.timeout)
            .set_starttls(s.starttls)
            .set_config(self.tls.clone());
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, &s.url)
            .await
            .map_err(unavailable)?;
        // The connection's driver ends when `ldap` is dropped or unbinds.
        tokio::spawn(async move {
            if let Err(err) = conn.drive().await {
                tracing::debug!(error = %err, "LDAP connection ended");
            }
        });
        if !s.bind_dn.is_empty() {
            let result = ldap
                .with_timeout(s.timeout)
                .simple_bind(&s.bind_dn, &s.bind_password)
                .await
                .map_err(unavailable)?;
            if result.rc != 0 {
                return Err(LdapError::Unavailable(format!(
                    "the search account's bind was refused (code {})",
                    result.rc
                )));
            }
        }
        Ok(ldap)
    }

    /// The one entry the user filter finds for `username`; `None` when there is none or more
    /// than one (an ambiguous name signs in as nobody).
    pub(super) async fn find(
        &self,
        ldap: &mut Conn,
        username: &str,
    ) -> Result<Option<Entry>, LdapError> {
        let s = &self.settings;
        let filter = fill_filter(&s.user_filter, &[("{username}", username)]);
        let attrs = vec![s.username_attribute.as_str(), "memberOf"];
        let result = ldap
            .with_timeout(s.timeout)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&s.base_dn, Scope::Subtree, &filter, attrs)
            .await
            .map_err(unavailable)?;
        let (entries, status) = (result.0, result.1);
        match status.rc {
            0 => {}
            // noSuchObject (the base is empty or gone), sizeLimitExceeded (ambiguous).
            32 | 4 => return Ok(None),
            rc => {
                return Err(LdapError::Unavailable(format!(
                    "user search failed (code {rc}: {})",
                    status.text
                )));
            }
        }
        let mut found: Vec<SearchEntry> = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        if found.len() != 1 {
            return Ok(None);
        }
        let mut entry = found.remove(0);
        let pick = |attrs: &mut std::collections::HashMap<String, Vec<String>>, name: &str| {
            let key = attrs.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
            key.and_then(|k| attrs.remove(&k)).unwrap_or_default()
        };
        let names = pick(&mut entry.attrs, &s.username_attribute);
        let member_of = pick(&mut entry.attrs, "memberOf");
        Ok(Some(Entry {
            dn: entry.dn,
            names,
            member_of,
        }))
    }

    /// The DNs of the groups `entry` belongs to: its `memberOf` values plus the groups the
    /// group filter finds.
    pub(super) async fn groups(
        &self,
        ldap: &mut Conn,
        entry: &Entry,
        username: &str,
    ) -> Result<Vec<String>, LdapError> {
        let s = &self.settings;
        let mut groups = entry.member_of.clone();
        if s.groups.is_empty() && s.admin_group.is_none() {
            return Ok(groups);
        }
        let filter = fill_filter(
            &s.group_filter,
            &[("{dn}", &entry.dn), ("{username}", username)],
        );
        let result = ldap
            .with_timeout(s.timeout)
            .search(&s.group_base_dn, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .map_err(unavailable)?;
        match result.1.rc {
            0 | 32 => {}
            rc => {
                return Err(LdapError::Unavailable(format!(
                    "group search failed (code {rc}: {})",
                    result.1.text
                )));
            }
        }
        groups.extend(
            result
                .0
                .into_iter()
                .filter(|e| !e.is_ref() && !e.is_intermediate())
                .map(|e| SearchEntry::construct(e).dn),
        );
        Ok(groups)
    }

    /// Whether `password` binds as `dn`. The caller refuses empty passwords before this (an
    /// empty password is an unauthenticated bind, which directories accept as anonymous).
    pub(super) async fn bind_as(
        &self,
        ldap: &mut Conn,
        dn: &str,
        password: &str,
    ) -> Result<bool, LdapError> {
        if password.is_empty() {
            return Ok(false);
        }
        let result = ldap
            .with_timeout(self.settings.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(unavailable)?;
        match result.rc {
            0 => Ok(true),
            rc if CREDENTIALS_REFUSED.contains(&rc) => Ok(false),
            rc => Err(LdapError::Unavailable(format!(
                "user bind failed (code {rc})"
            ))),
        }
    }
}

/// Ends a connection politely (errors do not matter: it is dropped either way).
pub(super) async fn close(mut ldap: Conn) {
    let _ = ldap.unbind().await;
}
