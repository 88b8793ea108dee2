//! Users, their folder grants and their SSH public keys.

use super::{AccountError, Accounts, invalid};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::identity::{GrantLevel, Principal};
use crate::model::{GrantRecord, PublicKeyRecord, UserRecord, parse_net};
use crate::path::SitePath;
use crate::store::{NewUser, UserChanges};

/// Longest username.
pub const MAX_USERNAME: usize = 64;
/// Password length bounds (argon2 hashes anything; the bounds protect users and the server).
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

/// A new user.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    pub username: String,
    pub password: Option<String>,
    pub site_admin: bool,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Checks a username: 1–64 of `A-Z a-z 0-9 . _ - @ +`, not starting with `@`.
pub fn validate_username(username: &str) -> Result<(), AccountError> {
    if username.is_empty() || username.len() > MAX_USERNAME {
        return invalid(format!("username must be 1 to {MAX_USERNAME} characters"));
    }
    if username.starts_with('@') {
        return invalid("username may not start with @ (reserved for @api- key logins)");
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
    {
        return invalid("username may contain only letters, digits and . _ - @ +");
    }
    Ok(())
}

/// Checks a password's length.
pub fn validate_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return invalid(format!(
            "password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// Checks an `allowed_ips` list (comma-separated CIDRs or addresses) and normalises it.
pub fn normalize_allowed_ips(list: &str) -> Result<String, AccountError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match parse_net(item) {
            Ok(net) => out.push(net.to_string()),
            Err(_) => return invalid(format!("allowed_ips: {item:?} is not an address or CIDR")),
        }
    }
    Ok(out.join(","))
}

/// Checks an OpenSSH public key line and returns `type base64` (comment dropped).
pub fn normalize_public_key(line: &str) -> Result<String, AccountError> {
    const TYPES: [&str; 8] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-dss",
    ];
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return invalid("public key must look like \"ssh-ed25519 AAAA… [comment]\"");
    };
    if !TYPES.contains(&kind) {
        return invalid(format!("unsupported public key type {kind:?}"));
    }
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    if blob.len() < 16 || blob.len() > 16_384 || blob.len() % 4 != 0 || !blob.bytes().all(base64) {
        return invalid("public key data is not valid base64");
    }
    Ok(format!("{kind} {blob}"))
}

impl Accounts {
    /// Creates a user (hashing the password with argon2id).
    pub async fn create_user(
        &self,
        actor: &Principal,
        spec: UserSpec,
    ) -> Result<UserRecord, AccountError> {
        validate_username(&spec.username)?;
        let password_hash = match &spec.password {
            Some(password) => {
                validate_password(password)?;
                Some(self.passwords.hash(password).await?)
            }
            None => None,
        };
        let user = self
            .store
            .insert_user(&NewUser {
                username: spec.username.clone(),
                password_hash,
                site_admin: spec.site_admin,
                name: spec.name,
                email: spec.email,
            })
            .await?;
        self.audit.record(
            AuditEvent::by(actor, Action::UserCreate, Outcome::Ok).path(user.username.clone()),
        );
        Ok(user)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<UserRecord, AccountError> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// Applies changes to a user; a new password is validated and hashed here.
    pub async fn update_user(
        &self,
        actor: &Principal,
        user_id: i64,
        mut changes: UserChanges,
        new_password: Option<&str>,
    ) -> Result<UserRecord, AccountError> {
        if let Some(password) = new_password {
            validate_password(password)?;
            if self.store.ldap_link(user_id).await?.is_some() {
                return invalid(
                    "this user signs in with their LDAP directory password; change it there",
                );
            }
            changes.password_hash = Some(Some(self.passwords.hash(password).await?));
        }
        if let Some(ips) = &changes.allowed_ips {
            changes.allowed_ips = Some(normalize_allowed_ips(ips)?);
        }
        let user = self
            .store
            .update_user(user_id, &changes)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.audit.record(
            AuditEvent::by(actor, Action::UserUpdate, Outcome::Ok).path(user.username.clone()),
        );
        Ok(user)
    }

    pub async fn delete_user(&self, actor: &Principal, user_id: i64) -> Result<(), AccountError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if !self.store.delete_user(user_id).await? {
            return Err(AccountError::NotFound);
        }
        self.audit
            .record(AuditEvent::by(actor, Action::UserDelete, Outcome::Ok).path(user.username));
        Ok(())
    }

    /// Grants `level` on `path` (an absolute site path; `..` and the like are refused), and
    /// makes the folder if it is missing (see [`Accounts::with_folders`]).
    pub async fn grant(
        &self,
        actor: &Principal,
        user_id: i64,
        path: &str,
        level: GrantLevel,
    ) -> Result<GrantRecord, AccountError> {
        let normalized = match SitePath::parse(path) {
            Ok(p) if path.split('/').all(|s| s != ".." && s != ".") => p,
            Ok(_) => return invalid("grant path may not contain . or .. segments"),
            Err(e) => return invalid(format!("grant path: {e}")),
        };
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let grant = self
            .store
            .insert_grant(user_id, normalized.as_str(), level.as_str())
            .await?;
        self.ensure_folder(actor, &normalized).await;
        self.audit.record(
            AuditEvent::by(actor, Action::GrantCreate, Outcome::Ok)
                .path(normalized.as_str())
                .reason(format!("user {user_id}: {}", level.as_str())),
        );
        Ok(grant)
    }

    pub async fn revoke_grant(&self, actor: &Principal, grant_id: i64) -> Result<(), AccountError> {
        let grant = self
            .store
            .grant_by_id(grant_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.store.delete_grant(grant_id).await?;
        self.audit
            .record(AuditEvent::by(actor, Action::GrantDelete, Outcome::Ok).path(grant.path));
        Ok(())
    }

    /// Removes an SSH public key. `owner` limits it to that user's keys (`None`: any user's,
    /// for site admins); a key that does not exist or belongs to someone else is `NotFound`.
    pub async fn delete_public_key(
        &self,
        actor: &Principal,
        id: i64,
        owner: Option<i64>,
    ) -> Result<(), AccountError> {
        if !self.store.delete_public_key(id, owner).await? {
            return Err(AccountError::NotFound);
        }
        self.audit.record(
            AuditEvent::by(actor, Action::PublicKeyDelete, Outcome::Ok)
                .path(format!("public_key:{id}")),
        );
        Ok(())
    }

    /// Adds an SSH public key for SFTP logins.
    pub async fn add_public_key(
        &self,
        actor: &Principal,
        user_id: i64,
        title: &str,
        line: &str,
    ) -> Result<PublicKeyRecord, AccountError> {
        let key = normalize_public_key(line)?;
        // An SSH key never expires: a user's key that does may not add one (it would outlive
        // the key that made it).
        if let (false, Some(maker)) = (actor.site_admin, &actor.key) {
            self.outlives_no_key(maker.id, None).await?;
        }
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 255 || title.chars().any(char::is_control) {
            return invalid("public key title must be 1 to 255 printable characters");
        }
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let record = self.store.insert_public_key(user_id, title, &key).await?;
        self.audit.record(
            AuditEvent::by(actor, Action::PublicKeyCreate, Outcome::Ok).path(title.to_owned()),
        );
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain_and_never_start_with_at() {
        assert!(validate_username("alice.b-1_x@corp+ftp").is_ok());
        assert!(validate_username("@api-1").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("a b").is_err());
        assert!(validate_username("a/b").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn allowed_ips_accept_cidrs_and_addresses_only() {
        assert_eq!(
            normalize_allowed_ips(" 10.0.0.0/8, 127.0.0.1 ").unwrap(),
            "10.0.0.0/8,127.0.0.1/32"
        );
        assert_eq!(normalize_allowed_ips("").unwrap(), "");
        assert!(normalize_allowed_ips("10.0.0.0/33").is_err());
        assert!(normalize_allowed_ips("example.com").is_err());
    }

    #[test]
    fn public_keys_are_checked_and_lose_their_comment() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1 me@host";
        assert_eq!(
            normalize_public_key(line).unwrap(),
            line.rsplit_once(' ').unwrap().0
        );
        assert!(normalize_public_key("ssh-foo AAAA").is_err());
        assert!(normalize_public_key("ssh-ed25519 not*base64!").is_err());
        assert!(normalize_public_key("").is_err());
    }
}
