//! Dead properties by site path: the store side of `files::PropStore`. The rules (who may,
//! how many, when they follow a file) are the file layer's; this is SQL only.
//!
//! Every change bumps the `dav_props` change counter inside its own transaction: that row
//! lock serialises property writers across replicas (so a count checked in a transaction
//! stays true until its commit) and tells replicas their index of paths is stale.

use super::{Store, StoreError, on_pool};
use crate::files::{DeadProp, PropChange, PropStore, PropStoreError};

/// `(namespace, name, prefix, xml)` of a row.
type PropRow = (String, String, Option<String>, Option<Vec<u8>>);

/// Paths under `$1` (not `$1` itself).
const UNDER: &str = "substr(path, 1, length($1) + 1) = $1 || '/'";

const BUMP: &str = "INSERT INTO change_counters (name, value) VALUES ('dav_props', 1) \
     ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1";

impl Store {
    /// Counter bumped by every change to properties.
    pub const PROPS_COUNTER: &str = "dav_props";

    async fn prop_paths(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT DISTINCT path FROM dav_props")
            .fetch_all(pool).await)?,
        )
    }

    /// The properties of `path`, by namespace and name.
    pub async fn props_of(&self, path: &str) -> Result<Vec<DeadProp>, StoreError> {
        let rows: Vec<PropRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT namespace, name, prefix, xml FROM dav_props WHERE path = $1 ORDER BY namespace, name")
            .bind(path).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name, prefix, xml)| DeadProp {
                namespace,
                name,
                prefix,
                xml,
            })
            .collect())
    }

    async fn apply_props(
        &self,
        path: &str,
        changes: &[PropChange],
        max: usize,
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            for change in changes {
                match change {
                    PropChange::Set(p) => sqlx::query(
                        "INSERT INTO dav_props (path, namespace, name, prefix, xml) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (path, namespace, name) DO UPDATE SET prefix = excluded.prefix, xml = excluded.xml")
                        .bind(path).bind(&p.namespace).bind(&p.name).bind(&p.prefix).bind(&p.xml)
                        .execute(&mut *tx).await?,
                    PropChange::Remove { namespace, name } => sqlx::query(
                        "DELETE FROM dav_props WHERE path = $1 AND namespace = $2 AND name = $3")
                        .bind(path).bind(namespace).bind(name)
                        .execute(&mut *tx).await?,
                };
            }
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dav_props WHERE path = $1")
                .bind(path).fetch_one(&mut *tx).await?;
            if usize::try_from(count).unwrap_or(usize::MAX) > max {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    async fn remove_props(&self, path: &str, below: bool) -> Result<(), StoreError> {
        let sql = if below {
            format!("DELETE FROM dav_props WHERE path = $1 OR {UNDER}")
        } else {
            "DELETE FROM dav_props WHERE path = $1".to_owned()
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(path).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn rename_props(&self, from: &str, to: &str, below: bool) -> Result<(), StoreError> {
        let (clear, shift) = if below {
            (
                format!("DELETE FROM dav_props WHERE path = $1 OR {UNDER}"),
                format!(
                    "UPDATE dav_props SET path = $2 || substr(path, length($1) + 1) \
                     WHERE path = $1 OR {UNDER}"
                ),
            )
        } else {
            (
                "DELETE FROM dav_props WHERE path = $1".to_owned(),
                "UPDATE dav_props SET path = $2 WHERE path = $1".to_owned(),
            )
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(clear.as_str())).bind(to).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(shift.as_str())).bind(from).bind(to).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn copy_props(&self, from: &str, to: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM dav_props WHERE path = $1")
                .bind(to).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO dav_props (path, namespace, name, prefix, xml) \
                 SELECT $2, namespace, name, prefix, xml FROM dav_props WHERE path = $1")
                .bind(from).bind(to).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}

fn seam(err: StoreError) -> PropStoreError {
    PropStoreError(err.to_string())
}

#[async_trait::async_trait]
impl PropStore for Store {
    async fn version(&self) -> Result<i64, PropStoreError> {
        self.counter(Self::PROPS_COUNTER).await.map_err(seam)
    }

    async fn paths(&self) -> Result<Vec<String>, PropStoreError> {
        self.prop_paths().await.map_err(seam)
    }

    async fn props_of(&self, path: &str) -> Result<Vec<DeadProp>, PropStoreError> {
        Store::props_of(self, path).await.map_err(seam)
    }

    async fn apply(
        &self,
        path: &str,
        changes: &[PropChange],
        max: usize,
    ) -> Result<bool, PropStoreError> {
        self.apply_props(path, changes, max).await.map_err(seam)
    }

    async fn remove(&self, path: &str, below: bool) -> Result<(), PropStoreError> {
        self.remove_props(path, below).await.map_err(seam)
    }

    async fn rename(&self, from: &str, to: &str, below: bool) -> Result<(), PropStoreError> {
        self.rename_props(from, to, below).await.map_err(seam)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), PropStoreError> {
        self.copy_props(from, to).await.map_err(seam)
    }
}
