//! API-key rows. Only the SHA-256 digest of a secret is ever written here.

use super::{Store, StoreError, on_pool};
use crate::model::KeyRecord;

const KEY_COLUMNS: &str = "id, name, description, user_id, secret_digest, path, permission_set, \
     platform, created_at, expires_at, last_use_at, created_by_user_id, revision";

/// The fields of a new key (validated by the account service before they get here).
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub user_id: Option<i64>,
    pub secret_digest: String,
    pub path: Option<String>,
    pub permission_set: String,
    pub platform: Option<String>,
    pub expires_at: Option<i64>,
    pub created_by_user_id: Option<i64>,
    pub created_at: i64,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub path: Option<Option<String>>,
    pub permission_set: Option<String>,
    pub expires_at: Option<Option<i64>>,
}

/// Which keys a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwnerFilter {
    All,
    User(i64),
    SiteWide,
}

fn key_query(filter: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM api_keys {filter}"))
}

impl Store {
    pub async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let id: i64 = on_pool!(self, pool => sqlx::query_scalar(
            "INSERT INTO api_keys (name, name_key, description, user_id, secret_digest, path, \
             permission_set, platform, created_at, expires_at, created_by_user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id")
            .bind(&key.name).bind(key.name.to_lowercase()).bind(&key.description)
            .bind(key.user_id).bind(&key.secret_digest).bind(&key.path)
            .bind(&key.permission_set).bind(&key.platform).bind(key.created_at)
            .bind(key.expires_at).bind(key.created_by_user_id)
            .fetch_one(pool).await)
        .map_err(|e| StoreError::from_write(e, "key name"))?;
        self.key_by_id(id)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    pub async fn key_by_id(&self, id: i64) -> Result<Option<KeyRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(key_query("WHERE id = $1"))
            .bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Looks a key up by name, case-insensitively.
    pub async fn key_by_name(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(key_query("WHERE name_key = $1"))
            .bind(name.to_lowercase()).fetch_optional(pool).await)?,
        )
    }

    /// Looks a key up by the digest of its secret (the REST API's `X-FilesAPI-Key`).
    pub async fn key_by_digest(&self, digest: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(key_query("WHERE secret_digest = $1"))
            .bind(digest).fetch_optional(pool).await)?,
        )
    }

    /// Keys with `id > after` matching `owner`, in id order.
    pub async fn list_keys(
        &self,
        owner: KeyOwnerFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = match owner {
            KeyOwnerFilter::All => on_pool!(self, pool => sqlx::query_as(
                key_query("WHERE id > $1 ORDER BY id LIMIT $2"))
                .bind(after).bind(limit).fetch_all(pool).await),
            KeyOwnerFilter::SiteWide => on_pool!(self, pool => sqlx::query_as(
                key_query("WHERE user_id IS NULL AND id > $1 ORDER BY id LIMIT $2"))
                .bind(after).bind(limit).fetch_all(pool).await),
            KeyOwnerFilter::User(user) => on_pool!(self, pool => sqlx::query_as(
                key_query("WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"))
                .bind(user).bind(after).bind(limit).fetch_all(pool).await),
        }?;
        Ok(rows)
    }

    /// Every key matching `owner`, in id order (read in batches).
    pub async fn all_keys(&self, owner: KeyOwnerFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<KeyRecord> = Vec::new();
        loop {
            let batch = self
                .list_keys(owner, keys.last().map(|k| k.id).unwrap_or(0), 5000)
                .await?;
            if batch.is_empty() {
                return Ok(keys);
            }
            keys.extend(batch);
        }
    }

    pub async fn count_keys_of(&self, user_id: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = $1")
            .bind(user_id).fetch_one(pool).await)?)
    }

    /// Applies `changes`; `None` if there is no such key. A change to what the key may do
    /// (permission set, path, expiry) bumps its revision, which ends sessions signed in
    /// with it before; a new name or description does not.
    pub async fn update_key(
        &self,
        id: i64,
        changes: &KeyChanges,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let Some(before) = self.key_by_id(id).await? else {
            return Ok(None);
        };
        let mut key = before.clone();
        if let Some(v) = &changes.name {
            key.name = v.clone();
        }
        if let Some(v) = &changes.description {
            key.description = v.clone();
        }
        if let Some(v) = &changes.path {
            key.path = v.clone();
        }
        if let Some(v) = &changes.permission_set {
            key.permission_set = v.clone();
        }
        if let Some(v) = changes.expires_at {
            key.expires_at = v;
        }
        let rights_changed = key.path != before.path
            || key.permission_set != before.permission_set
            || key.expires_at != before.expires_at;
        on_pool!(self, pool => sqlx::query(
            "UPDATE api_keys SET name = $1, name_key = $2, description = $3, path = $4, \
             permission_set = $5, expires_at = $6, revision = revision + $7 WHERE id = $8")
            .bind(&key.name).bind(key.name.to_lowercase()).bind(&key.description)
            .bind(&key.path).bind(&key.permission_set).bind(key.expires_at)
            .bind(i64::from(rights_changed)).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map_err(|e| StoreError::from_write(e, "key name"))?;
        self.key_by_id(id).await
    }

    /// Deletes a key. False if absent.
    pub async fn delete_key(&self, id: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Sets `last_use_at = at` unless it was set less than `min_interval` seconds before:
    /// one conditional UPDATE, so replicas never write it more often than that either.
    pub async fn touch_key(&self, id: i64, at: i64, min_interval: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE api_keys SET last_use_at = $1 WHERE id = $2 \
             AND (last_use_at IS NULL OR last_use_at <= $3)")
            .bind(at).bind(id).bind(at - min_interval).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }
}
