//! Users, their folder grants and their SSH public keys.

use super::{Store, StoreError, on_pool};
use crate::model::{GrantRecord, PublicKeyRecord, UserRecord, now};

const USER_COLUMNS: &str = "id, username, password_hash, site_admin, disabled, sftp_permission, \
     ftp_permission, dav_permission, restapi_permission, allowed_ips, name, email, revision, \
     created_at, last_login_at";

/// The fields of a new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub password_hash: Option<String>,
    pub site_admin: bool,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub password_hash: Option<Option<String>>,
    pub site_admin: Option<bool>,
    pub disabled: Option<bool>,
    pub sftp_permission: Option<bool>,
    pub ftp_permission: Option<bool>,
    pub dav_permission: Option<bool>,
    pub restapi_permission: Option<bool>,
    pub allowed_ips: Option<String>,
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
}

fn user_query(filter: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users {filter}"))
}

impl Store {
    pub async fn insert_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        let id: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO users (username, username_key, password_hash, site_admin, name, email, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(&user.username)
            .bind(user.username.to_lowercase())
            .bind(&user.password_hash)
            .bind(user.site_admin)
            .bind(&user.name)
            .bind(&user.email)
            .bind(now())
            .fetch_one(pool).await)
        .map_err(|e| StoreError::from_write(e, "username"))?;
        self.user_by_id(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(user_query("WHERE id = $1"))
            .bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Looks a user up by name, case-insensitively.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(user_query("WHERE username_key = $1"))
            .bind(username.to_lowercase()).fetch_optional(pool).await)?,
        )
    }

    /// Users with `id > after`, in id order.
    pub async fn list_users(&self, after: i64, limit: i64) -> Result<Vec<UserRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(user_query("WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// Every user, in id order (read in batches).
    pub async fn all_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let mut users: Vec<UserRecord> = Vec::new();
        loop {
            let batch = self
                .list_users(users.last().map(|u| u.id).unwrap_or(0), 5000)
                .await?;
            if batch.is_empty() {
                return Ok(users);
            }
            users.extend(batch);
        }
    }

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(pool).await)?,
        )
    }

    /// Applies `changes`. When they touch the user's rights or credentials (password, admin
    /// flag, disabled, protocol switches, allowed addresses) the revision is bumped, so that
    /// cached passwords and sessions signed in before no longer hold; a new password, or
    /// disabling the user, also ends their REST API sessions (in the same transaction).
    /// Name and e-mail are not rights: changing them alone leaves the revision. Returns the
    /// new row, or `None` if there is no such user.
    pub async fn update_user(
        &self,
        id: i64,
        changes: &UserChanges,
    ) -> Result<Option<UserRecord>, StoreError> {
        let Some(before) = self.user_by_id(id).await? else {
            return Ok(None);
        };
        let mut user = before.clone();
        if let Some(v) = &changes.password_hash {
            user.password_hash = v.clone();
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &changes.$field { user.$field = v.clone(); } )* };
        }
        set!(
            site_admin,
            disabled,
            sftp_permission,
            ftp_permission,
            dav_permission
        );
        set!(restapi_permission, allowed_ips, name, email);
        let credentials_changed = user.password_hash != before.password_hash;
        let rights_changed = credentials_changed
            || user.site_admin != before.site_admin
            || user.disabled != before.disabled
            || user.sftp_permission != before.sftp_permission
            || user.ftp_permission != before.ftp_permission
            || user.dav_permission != before.dav_permission
            || user.restapi_permission != before.restapi_permission
            || user.allowed_ips != before.allowed_ips;
        let end_sessions =
            credentials_changed || (user.disabled && !before.disabled) || !user.restapi_permission;
        let bump = i64::from(rights_changed);
        let updated = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE users SET password_hash = $1, site_admin = $2, disabled = $3, \
                 sftp_permission = $4, ftp_permission = $5, dav_permission = $6, \
                 restapi_permission = $7, allowed_ips = $8, name = $9, email = $10, \
                 revision = revision + $11 WHERE id = $12")
                .bind(&user.password_hash).bind(user.site_admin).bind(user.disabled)
                .bind(user.sftp_permission).bind(user.ftp_permission).bind(user.dav_permission)
                .bind(user.restapi_permission).bind(&user.allowed_ips).bind(&user.name)
                .bind(&user.email).bind(bump).bind(id)
                .execute(&mut *tx).await?.rows_affected();
            if updated > 0 && end_sessions {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            updated
        });
        if updated == 0 {
            return Ok(None);
        }
        self.user_by_id(id).await
    }

    /// Deletes a user with its grants, keys, SSH keys and sessions. False if absent.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    pub async fn touch_user_login(&self, id: i64, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(at).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn bump_revision(&self, user_id: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET revision = revision + 1 WHERE id = $1")
            .bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Adds a grant (idempotent for an identical grant) and bumps the user's revision.
    pub async fn insert_grant(
        &self,
        user_id: i64,
        path: &str,
        level: &str,
    ) -> Result<GrantRecord, StoreError> {
        let existing: Option<GrantRecord> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, path, level, created_at FROM grants \
             WHERE user_id = $1 AND path = $2 AND level = $3")
            .bind(user_id).bind(path).bind(level).fetch_optional(pool).await)?;
        if let Some(grant) = existing {
            return Ok(grant);
        }
        let grant: GrantRecord = on_pool!(self, pool => sqlx::query_as(
            "INSERT INTO grants (user_id, path, level, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, user_id, path, level, created_at")
            .bind(user_id).bind(path).bind(level).bind(now())
            .fetch_one(pool).await)
        .map_err(|e| StoreError::from_write(e, "grant"))?;
        self.bump_revision(user_id).await?;
        Ok(grant)
    }

    pub async fn grants_of(&self, user_id: i64) -> Result<Vec<GrantRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, path, level, created_at FROM grants WHERE user_id = $1 ORDER BY id")
            .bind(user_id).fetch_all(pool).await)?)
    }

    pub async fn grant_by_id(&self, id: i64) -> Result<Option<GrantRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, path, level, created_at FROM grants WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?)
    }

    /// Deletes a grant and bumps its user's revision. False if absent.
    pub async fn delete_grant(&self, id: i64) -> Result<bool, StoreError> {
        let Some(grant) = self.grant_by_id(id).await? else {
            return Ok(false);
        };
        on_pool!(self, pool => sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        self.bump_revision(grant.user_id).await?;
        Ok(true)
    }

    pub async fn insert_public_key(
        &self,
        user_id: i64,
        title: &str,
        public_key: &str,
    ) -> Result<PublicKeyRecord, StoreError> {
        let record = on_pool!(self, pool => sqlx::query_as(
            "INSERT INTO public_keys (user_id, title, public_key, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, user_id, title, public_key, created_at")
            .bind(user_id).bind(title).bind(public_key).bind(now())
            .fetch_one(pool).await)
        .map_err(|e| StoreError::from_write(e, "public key"))?;
        self.bump_revision(user_id).await?;
        Ok(record)
    }

    pub async fn public_keys_of(&self, user_id: i64) -> Result<Vec<PublicKeyRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, title, public_key, created_at FROM public_keys \
             WHERE user_id = $1 ORDER BY id")
            .bind(user_id).fetch_all(pool).await)?)
    }
}

impl Store {
    /// Deletes an SSH key (only `owner`'s when given). False if absent.
    pub async fn delete_public_key(&self, id: i64, owner: Option<i64>) -> Result<bool, StoreError> {
        let Some(user_id) = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT user_id FROM public_keys WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?
        else {
            return Ok(false);
        };
        if owner.is_some_and(|o| o != user_id) {
            return Ok(false);
        }
        on_pool!(self, pool => sqlx::query("DELETE FROM public_keys WHERE id = $1")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        self.bump_revision(user_id).await?;
        Ok(true)
    }
}
