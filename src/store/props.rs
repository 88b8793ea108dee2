//! WebDAV dead properties, by site path.

use super::{Store, StoreError, on_pool};

/// One stored property.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PropRecord {
    pub namespace: String,
    pub name: String,
    pub prefix: Option<String>,
    pub xml: Option<Vec<u8>>,
}

impl Store {
    /// Counter bumped by every change to properties: replicas holding an index of paths
    /// with properties reload it when this moves.
    pub const PROPS_COUNTER: &str = "dav_props";

    async fn props_changed(&self) -> Result<(), StoreError> {
        self.bump_counter(Self::PROPS_COUNTER).await
    }

    /// Every path that has at least one property.
    pub async fn prop_paths(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT DISTINCT path FROM dav_props")
            .fetch_all(pool).await)?,
        )
    }

    pub async fn props_of(&self, path: &str) -> Result<Vec<PropRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT namespace, name, prefix, xml FROM dav_props WHERE path = $1 ORDER BY namespace, name")
            .bind(path).fetch_all(pool).await)?)
    }

    pub async fn set_prop(&self, path: &str, p: &PropRecord) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO dav_props (path, namespace, name, prefix, xml) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (path, namespace, name) DO UPDATE SET prefix = excluded.prefix, xml = excluded.xml")
            .bind(path).bind(&p.namespace).bind(&p.name).bind(&p.prefix).bind(&p.xml)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        self.props_changed().await
    }

    pub async fn remove_prop(
        &self,
        path: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM dav_props WHERE path = $1 AND namespace = $2 AND name = $3")
            .bind(path).bind(namespace).bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        self.props_changed().await
    }

    /// Drops the properties of `path` and everything below it.
    pub async fn remove_props_under(&self, path: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM dav_props WHERE path = $1 OR substr(path, 1, length($1) + 1) = $1 || '/'")
            .bind(path).execute(pool).await.map(|r| r.rows_affected()))?;
        self.props_changed().await
    }

    /// Moves the properties of `from` (and below) to `to`.
    pub async fn move_props(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.remove_props_under(to).await?;
        on_pool!(self, pool => sqlx::query(
            "UPDATE dav_props SET path = $2 || substr(path, length($1) + 1) \
             WHERE path = $1 OR substr(path, 1, length($1) + 1) = $1 || '/'")
            .bind(from).bind(to).execute(pool).await.map(|r| r.rows_affected()))?;
        self.props_changed().await
    }

    /// Copies the properties of `from` alone to `to` (replacing those of `to`).
    pub async fn copy_props(&self, from: &str, to: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM dav_props WHERE path = $1")
            .bind(to).execute(pool).await.map(|r| r.rows_affected()))?;
        for p in self.props_of(from).await? {
            self.set_prop(to, &p).await?;
        }
        self.props_changed().await
    }
}
