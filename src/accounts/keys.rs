//! API keys: the rules of the seeds (names, paths, permission sets, expiry, one-time secret).

use super::{AccountError, Accounts, invalid};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::identity::{PermissionSet, Principal};
use crate::model::{KeyRecord, now};
use crate::path::SitePath;
use crate::secret;
use crate::store::{KeyChanges, NewKey};

/// Longest key name.
pub const MAX_KEY_NAME: usize = 255;

/// Whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// A site-wide key: a site admin with no user.
    SiteWide,
    User(i64),
}

/// A new key.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub owner: KeyOwner,
    pub name: String,
    pub description: Option<String>,
    /// Files.com form (`shared/docs`); `None` or empty for no restriction.
    pub path: Option<String>,
    pub permission_set: PermissionSet,
    /// Unix seconds; must be in the future.
    pub expires_at: Option<i64>,
    pub platform: Option<String>,
    /// The user creating it (for "keys an admin made for you").
    pub created_by: Option<i64>,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub path: Option<Option<String>>,
    pub permission_set: Option<PermissionSet>,
    pub expires_at: Option<Option<i64>>,
}

/// A key just made: the row, and its secret (shown this once, never stored).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub secret: String,
}

/// Checks a key name: 1–255 printable characters, trimmed, not all digits (so that
/// `@api-<id>` and `@api-<name>` never collide).
pub fn validate_key_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME {
        return invalid(format!("name must be 1 to {MAX_KEY_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return invalid("name may not contain control characters");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("name may not be all digits (it would read as a key id in @api- logins)");
    }
    Ok(name.to_owned())
}

/// Checks a key path restriction; returns it in Files.com form, or `None` for none.
pub fn validate_key_path(path: Option<&str>) -> Result<Option<String>, AccountError> {
    match path {
        None | Some("") => Ok(None),
        Some(p) => match SitePath::from_key_path(p) {
            Ok(site) => Ok(Some(site.relative().to_owned())),
            Err(e) => invalid(format!("path: {e}")),
        },
    }
}

fn widening<T>(message: impl Into<String>) -> Result<T, AccountError> {
    Err(AccountError::Widening(message.into()))
}

/// Whether `path` (Files.com form) is `within` or below it.
fn path_within(path: &str, within: &str) -> bool {
    path == within
        || path
            .strip_prefix(within)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The most a change made by `actor` to key `key_id` may leave the key with, or `None` when
/// the actor may change it freely: a site admin changing another key. Anyone else — a user
/// on their own keys, or any key on itself — may only narrow, and never beyond the
/// permission set they act with.
pub fn narrowing_ceiling(actor: &Principal, key_id: i64) -> Option<PermissionSet> {
    let itself = actor.key.as_ref().is_some_and(|k| k.id == key_id);
    if actor.site_admin && !itself {
        return None;
    }
    Some(
        actor
            .key
            .as_ref()
            .map_or(PermissionSet::Full, |k| k.permission_set),
    )
}

/// Refuses `changes` (already validated) unless they only narrow `current`: a permission
/// set at or below the key's current one and `ceiling`; a path at or below the current one
/// (never removed when set); an expiry never removed nor moved later when set.
pub fn check_narrowing(
    current: &KeyRecord,
    changes: &KeyChanges,
    ceiling: PermissionSet,
) -> Result<(), AccountError> {
    if let Some(wanted) = &changes.permission_set {
        let wanted: PermissionSet = wanted
            .parse()
            .map_err(|_| AccountError::Invalid("unknown permission_set".into()))?;
        let narrower = current
            .permission_set()
            .is_some_and(|now| now.includes(wanted))
            && ceiling.includes(wanted);
        if !narrower {
            return widening(format!(
                "only a site admin may widen an API key: permission_set may not go above the \
                 key's current one ({}) or your own ({})",
                current.permission_set,
                ceiling.as_str()
            ));
        }
    }
    if let Some(wanted) = &changes.path
        && let Some(now) = current.path.as_deref().filter(|p| !p.is_empty())
    {
        match wanted.as_deref() {
            None => {
                return widening(
                    "only a site admin may widen an API key: its path restriction cannot be \
                     removed",
                );
            }
            Some(p) if !path_within(p, now) => {
                return widening(format!(
                    "only a site admin may widen an API key: path must stay within {now:?}"
                ));
            }
            Some(_) => {}
        }
    }
    if let (Some(wanted), Some(now)) = (changes.expires_at, current.expires_at) {
        match wanted {
            None => {
                return widening(
                    "only a site admin may widen an API key: its expiry cannot be removed",
                );
            }
            Some(at) if at > now => {
                return widening(
                    "only a site admin may widen an API key: its expiry cannot move later",
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn validate_expiry(expires_at: Option<i64>) -> Result<(), AccountError> {
    match expires_at {
        Some(at) if at <= now() => invalid("expires_at must be in the future"),
        _ => Ok(()),
    }
}

fn validate_text(field: &str, value: Option<&str>, max: usize) -> Result<(), AccountError> {
    match value {
        Some(v) if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') => {
            invalid(format!(
                "{field} must be at most {max} printable characters"
            ))
        }
        _ => Ok(()),
    }
}

/// API keys a user may make for themself (site admins are not limited).
pub const MAX_KEYS_PER_USER: i64 = 100;

impl Accounts {
    /// Creates a key and returns its secret (64 hex characters from the OS random source).
    /// Whoever asks, a key never gets more than its creator acts with: a key-wielding actor
    /// gives at most its own permission set and stays within its own path, and only site
    /// admins make keys for others or site-wide keys.
    pub async fn create_key(
        &self,
        actor: &Principal,
        spec: KeySpec,
    ) -> Result<CreatedKey, AccountError> {
        let name = validate_key_name(&spec.name)?;
        let path = validate_key_path(spec.path.as_deref())?;
        let for_themself = matches!(
            (spec.owner, &actor.user),
            (KeyOwner::User(owner), Some(user)) if owner == user.id
        );
        if !actor.site_admin && !for_themself {
            return widening("only a site admin may make keys for others or site-wide keys");
        }
        if let Some(key) = &actor.key {
            if !key.permission_set.includes(spec.permission_set) {
                return widening(format!(
                    "a key may not make a key with more than its own permission set ({})",
                    key.permission_set.as_str()
                ));
            }
            if let Some(own) = &key.path
                && !path
                    .as_deref()
                    .is_some_and(|p| path_within(p, own.relative()))
            {
                return widening(format!(
                    "a path-restricted key may only make keys within {:?}",
                    own.relative()
                ));
            }
            if !actor.site_admin {
                self.outlives_no_key(key.id, spec.expires_at).await?;
            }
        }
        validate_expiry(spec.expires_at)?;
        validate_text("description", spec.description.as_deref(), 1024)?;
        validate_text("platform", spec.platform.as_deref(), 64)?;
        let user_id = match spec.owner {
            KeyOwner::SiteWide => None,
            KeyOwner::User(id) => {
                self.store
                    .user_by_id(id)
                    .await?
                    .ok_or(AccountError::NotFound)?;
                // Every key is a login of its own (with its own session quota): a user may
                // not mint them without end. Site admins may still make more.
                if !actor.site_admin && self.store.count_keys_of(id).await? >= MAX_KEYS_PER_USER {
                    return invalid(format!(
                        "a user may hold at most {MAX_KEYS_PER_USER} API keys; delete one first"
                    ));
                }
                Some(id)
            }
        };
        let secret = secret::new_key_secret();
        let record = self
            .store
            .insert_key(&NewKey {
                name,
                description: spec.description,
                user_id,
                secret_digest: secret::digest_hex(&secret),
                path,
                permission_set: spec.permission_set.as_str().to_owned(),
                platform: spec.platform,
                expires_at: spec.expires_at,
                created_by_user_id: spec.created_by,
                created_at: now(),
            })
            .await?;
        self.audit.record(
            AuditEvent::by(actor, Action::KeyCreate, Outcome::Ok)
                .path(format!("api_key:{}", record.id)),
        );
        if let Some(folder) = record
            .path
            .as_deref()
            .and_then(|p| SitePath::from_key_path(p).ok())
        {
            self.ensure_folder(actor, &folder).await;
        }
        Ok(CreatedKey { record, secret })
    }

    /// Refuses a credential expiring at `expires_at` (`None`: never) made by key `maker`
    /// when it would outlive that key: an expiring key cannot extend itself by proxy.
    pub(super) async fn outlives_no_key(
        &self,
        maker: i64,
        expires_at: Option<i64>,
    ) -> Result<(), AccountError> {
        let Some(limit) = self
            .store
            .key_by_id(maker)
            .await?
            .ok_or(AccountError::NotFound)?
            .expires_at
        else {
            return Ok(());
        };
        match expires_at {
            Some(at) if at <= limit => Ok(()),
            _ => widening(
                "a key that expires may only make credentials that expire no later than itself",
            ),
        }
    }

    /// Changes a key's name, description, path, permission set or expiry. Unless `actor` is
    /// a site admin changing another key, the change may only narrow the key
    /// ([`narrowing_ceiling`], [`check_narrowing`]).
    pub async fn update_key(
        &self,
        actor: &Principal,
        id: i64,
        update: KeyUpdate,
    ) -> Result<KeyRecord, AccountError> {
        let mut changes = KeyChanges::default();
        if let Some(name) = &update.name {
            changes.name = Some(validate_key_name(name)?);
        }
        if let Some(path) = &update.path {
            changes.path = Some(validate_key_path(path.as_deref())?);
        }
        if let Some(expires_at) = update.expires_at {
            validate_expiry(expires_at)?;
            changes.expires_at = Some(expires_at);
        }
        if let Some(description) = &update.description {
            validate_text("description", description.as_deref(), 1024)?;
            changes.description = Some(description.clone());
        }
        changes.permission_set = update.permission_set.map(|s| s.as_str().to_owned());
        let current = self
            .store
            .key_by_id(id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if let Some(ceiling) = narrowing_ceiling(actor, id) {
            check_narrowing(&current, &changes, ceiling)?;
        }
        let record = self
            .store
            .update_key(id, &changes)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.audit.record(
            AuditEvent::by(actor, Action::KeyUpdate, Outcome::Ok).path(format!("api_key:{id}")),
        );
        if let Some(Some(folder)) = &changes.path
            && let Ok(folder) = SitePath::from_key_path(folder)
        {
            self.ensure_folder(actor, &folder).await;
        }
        Ok(record)
    }

    /// Deletes a key: logins with it are refused from the next attempt on.
    pub async fn revoke_key(&self, actor: &Principal, id: i64) -> Result<(), AccountError> {
        if !self.store.delete_key(id).await? {
            return Err(AccountError::NotFound);
        }
        self.audit.record(
            AuditEvent::by(actor, Action::KeyDelete, Outcome::Ok).path(format!("api_key:{id}")),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_may_not_be_all_digits_or_blank() {
        assert_eq!(
            validate_key_name("  My Main API Key ").unwrap(),
            "My Main API Key"
        );
        assert!(validate_key_name("123").is_err());
        assert!(validate_key_name("12a").is_ok());
        assert!(validate_key_name("   ").is_err());
        assert!(validate_key_name("a\u{7}b").is_err());
        assert!(validate_key_name(&"k".repeat(256)).is_err());
    }

    #[test]
    fn key_paths_are_validated_and_kept_in_files_com_form() {
        assert_eq!(
            validate_key_path(Some("shared/docs")).unwrap(),
            Some("shared/docs".into())
        );
        assert_eq!(validate_key_path(Some("")).unwrap(), None);
        assert_eq!(validate_key_path(None).unwrap(), None);
        for bad in ["/shared", "shared/", "a/../b", "a//b", "./a", "a\0b"] {
            assert!(validate_key_path(Some(bad)).is_err(), "{bad}");
        }
    }
}
