//! Rows of LDAP users (`ldap_users`, one per user row that came from the directory) and the
//! store as the authenticator's [`LdapAccounts`].

use super::{Store, StoreError, on_pool};
use crate::auth::DirectoryError;
use crate::auth::ldap::{LdapAccounts, LdapLink, LdapProfile, Synced};

#[derive(sqlx::FromRow)]
struct LinkRow {
    user_id: i64,
    username: String,
    dn: String,
    gone: bool,
    checked_at: i64,
}

impl From<LinkRow> for LdapLink {
    fn from(r: LinkRow) -> Self {
        LdapLink {
            user_id: r.user_id,
            username: r.username,
            dn: r.dn,
            gone: r.gone,
            checked_at: r.checked_at,
        }
    }
}

const LINK_SELECT: &str = "SELECT l.user_id, u.username, l.dn, l.gone, l.checked_at \
     FROM ldap_users l JOIN users u ON u.id = l.user_id";

/// A user row by name: id, site admin, disabled, and its directory link's `gone` and `dn`
/// (`None` for a local user).
type FoundRow = (i64, bool, bool, Option<bool>, Option<String>);

/// What one sync attempt found.
enum Attempt {
    Done(i64),
    LocalUser,
}

impl Store {
    /// The directory link of a user, if the user came from LDAP.
    pub async fn ldap_link(&self, user_id: i64) -> Result<Option<LdapLink>, StoreError> {
        let q = sqlx::AssertSqlSafe(format!("{LINK_SELECT} WHERE l.user_id = $1"));
        let row: Option<LinkRow> = on_pool!(self, pool => sqlx::query_as(q)
            .bind(user_id).fetch_optional(pool).await)?;
        Ok(row.map(LdapLink::from))
    }

    /// Ids of the users that came from LDAP (for `user list`'s source column).
    pub async fn ldap_user_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT user_id FROM ldap_users ORDER BY user_id")
            .fetch_all(pool).await)?)
    }

    /// See [`LdapAccounts::sync_ldap_user`]. A concurrent first sign-in of the same user (a
    /// unique-name clash on insert) is retried once, and then finds the row.
    pub async fn sync_ldap_user(
        &self,
        profile: &LdapProfile,
        at: i64,
    ) -> Result<Synced, StoreError> {
        let mut attempt = self.sync_once(profile, at).await;
        if matches!(attempt, Err(StoreError::Conflict(_))) {
            attempt = self.sync_once(profile, at).await;
        }
        match attempt? {
            Attempt::LocalUser => Ok(Synced::LocalUserHoldsName),
            Attempt::Done(id) => match self.user_by_id(id).await? {
                Some(user) => Ok(Synced::User(user)),
                None => Err(StoreError::Database(sqlx::Error::RowNotFound)),
            },
        }
    }

    async fn sync_once(&self, p: &LdapProfile, at: i64) -> Result<Attempt, StoreError> {
        let key = p.username.to_lowercase();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let found: Option<FoundRow> = sqlx::query_as(
                "SELECT u.id, u.site_admin, u.disabled, l.gone, l.dn FROM users u \
                 LEFT JOIN ldap_users l ON l.user_id = u.id WHERE u.username_key = $1")
                .bind(&key).fetch_optional(&mut *tx).await?;
            let id = match found {
                Some((_, _, _, None, _)) => return Ok(Attempt::LocalUser),
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO users (username, username_key, password_hash, site_admin, \
                         created_at) VALUES ($1, $2, NULL, $3, $4) RETURNING id")
                        .bind(&p.username).bind(&key).bind(p.site_admin).bind(at)
                        .fetch_one(&mut *tx).await
                        .map_err(|e| StoreError::from_write(e, "username"))?;
                    sqlx::query("INSERT INTO ldap_users (user_id, dn, gone, checked_at) \
                                 VALUES ($1, $2, FALSE, $3)")
                        .bind(id).bind(&p.dn).bind(at).execute(&mut *tx).await?;
                    for (path, level) in &p.grants {
                        sqlx::query("INSERT INTO grants (user_id, path, level, created_at) \
                                     VALUES ($1, $2, $3, $4)")
                            .bind(id).bind(path).bind(level).bind(at).execute(&mut *tx).await?;
                    }
                    id
                }
                Some((id, site_admin, disabled, Some(gone), dn)) => {
                    // The row's person left the directory (`gone`), or another entry now
                    // holds the name: whoever signs in now is not the one who made the row's
                    // credentials. Their API keys, SSH keys, second factor and sessions go
                    // (the `changes` triggers end what is running); grants follow below.
                    let same_entry = dn.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(&p.dn));
                    if gone || !same_entry {
                        for purge in [
                            "DELETE FROM api_keys WHERE user_id = $1",
                            "DELETE FROM public_keys WHERE user_id = $1",
                            "DELETE FROM user_totp WHERE user_id = $1",
                            "DELETE FROM totp_recovery_codes WHERE user_id = $1",
                            "DELETE FROM sessions WHERE user_id = $1",
                            "DELETE FROM web_sessions WHERE user_id = $1",
                            "UPDATE users SET revision = revision + 1 WHERE id = $1",
                        ] {
                            sqlx::query(purge).bind(id).execute(&mut *tx).await?;
                        }
                    }
                    let mut current: Vec<(String, String)> = sqlx::query_as(
                        "SELECT path, level FROM grants WHERE user_id = $1")
                        .bind(id).fetch_all(&mut *tx).await?;
                    current.sort();
                    current.dedup();
                    // Only the directory's own `gone` is lifted; an admin's disable stays.
                    let enable = gone && disabled;
                    let grants_changed = current != p.grants;
                    if grants_changed {
                        sqlx::query("DELETE FROM grants WHERE user_id = $1")
                            .bind(id).execute(&mut *tx).await?;
                        for (path, level) in &p.grants {
                            sqlx::query("INSERT INTO grants (user_id, path, level, created_at) \
                                         VALUES ($1, $2, $3, $4)")
                                .bind(id).bind(path).bind(level).bind(at)
                                .execute(&mut *tx).await?;
                        }
                    }
                    if grants_changed || enable || site_admin != p.site_admin {
                        sqlx::query("UPDATE users SET site_admin = $1, disabled = $2, \
                                     revision = revision + 1 WHERE id = $3")
                            .bind(p.site_admin).bind(disabled && !enable).bind(id)
                            .execute(&mut *tx).await?;
                    }
                    sqlx::query("UPDATE ldap_users SET dn = $1, gone = FALSE, checked_at = $2 \
                                 WHERE user_id = $3")
                        .bind(&p.dn).bind(at).bind(id).execute(&mut *tx).await?;
                    id
                }
            };
            tx.commit().await?;
            Ok(Attempt::Done(id))
        })
    }

    /// LDAP users not gone, checked at or before `checked_before`, oldest first.
    pub async fn ldap_users_due(
        &self,
        checked_before: i64,
        limit: u32,
    ) -> Result<Vec<LdapLink>, StoreError> {
        let q = sqlx::AssertSqlSafe(format!(
            "{LINK_SELECT} WHERE l.gone = FALSE AND l.checked_at <= $1 \
             ORDER BY l.checked_at, l.user_id LIMIT $2"
        ));
        let rows: Vec<LinkRow> = on_pool!(self, pool => sqlx::query_as(q)
            .bind(checked_before).bind(i64::from(limit)).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(LdapLink::from).collect())
    }

    /// Disables an LDAP user the directory no longer has (bumping the revision) and marks
    /// the row gone, in one transaction.
    pub async fn ldap_user_gone(&self, user_id: i64, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET disabled = TRUE, revision = revision + 1 \
                         WHERE id = $1 AND disabled = FALSE")
                .bind(user_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id).execute(&mut *tx).await?;
            sqlx::query("UPDATE ldap_users SET gone = TRUE, checked_at = $1 WHERE user_id = $2")
                .bind(at).bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }
}

#[async_trait::async_trait]
impl LdapAccounts for Store {
    async fn ldap_link(&self, user_id: i64) -> Result<Option<LdapLink>, DirectoryError> {
        Ok(Store::ldap_link(self, user_id).await?)
    }
    async fn sync_ldap_user(
        &self,
        profile: &LdapProfile,
        at: i64,
    ) -> Result<Synced, DirectoryError> {
        Ok(Store::sync_ldap_user(self, profile, at).await?)
    }
    async fn ldap_users_due(
        &self,
        checked_before: i64,
        limit: u32,
    ) -> Result<Vec<LdapLink>, DirectoryError> {
        Ok(Store::ldap_users_due(self, checked_before, limit).await?)
    }
    async fn ldap_user_gone(&self, user_id: i64, at: i64) -> Result<(), DirectoryError> {
        Ok(Store::ldap_user_gone(self, user_id, at).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UserRecord, now};
    use crate::store::NewUser;
    use crate::test_support::TempDir;

    fn profile(name: &str, admin: bool, grants: &[(&str, &str)]) -> LdapProfile {
        LdapProfile {
            username: name.into(),
            dn: format!("uid={name},ou=people,dc=example,dc=org"),
            site_admin: admin,
            grants: grants
                .iter()
                .map(|(p, l)| (p.to_string(), l.to_string()))
                .collect(),
        }
    }

    async fn user(s: &Store, p: &LdapProfile) -> UserRecord {
        match s.sync_ldap_user(p, now()).await.unwrap() {
            Synced::User(u) => u,
            Synced::LocalUserHoldsName => panic!("local user"),
        }
    }

    #[tokio::test]
    async fn a_directory_user_is_created_refreshed_and_disabled_when_gone() {
        let dir = TempDir::new("ldap-store");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let s = Store::connect(&url).await.unwrap();
        let first = user(&s, &profile("dora", false, &[("/sales", "full")])).await;
        assert!(first.password_hash.is_none());
        assert_eq!(s.grants_of(first.id).await.unwrap()[0].path, "/sales");
        let same = user(&s, &profile("dora", false, &[("/sales", "full")])).await;
        assert_eq!(same.revision, first.revision, "no change, no bump");
        let moved = user(&s, &profile("dora", true, &[("/eng", "readonly")])).await;
        assert!(moved.revision > first.revision && moved.site_admin);
        let grants = s.grants_of(first.id).await.unwrap();
        assert_eq!((grants.len(), grants[0].path.as_str()), (1, "/eng"));
        s.ldap_user_gone(first.id, now()).await.unwrap();
        let gone = s.user_by_id(first.id).await.unwrap().unwrap();
        assert!(gone.disabled && gone.revision > moved.revision);
        assert!(s.ldap_users_due(now() + 10, 10).await.unwrap().is_empty());
        let back = user(&s, &profile("dora", true, &[("/eng", "readonly")])).await;
        assert!(
            !back.disabled,
            "a successful sign-in lifts the directory's disable"
        );
        assert_eq!(s.ldap_users_due(now() + 10, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_local_user_is_never_taken_over_and_an_admins_disable_stays() {
        let dir = TempDir::new("ldap-store");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let s = Store::connect(&url).await.unwrap();
        let local = s
            .insert_user(&NewUser {
                username: "Eve".into(),
                ..NewUser::default()
            })
            .await
            .unwrap();
        assert!(matches!(
            s.sync_ldap_user(&profile("eve", true, &[]), now())
                .await
                .unwrap(),
            Synced::LocalUserHoldsName
        ));
        assert!(s.ldap_link(local.id).await.unwrap().is_none());
        let carl = user(&s, &profile("carl", false, &[])).await;
        s.update_user(
            carl.id,
            &crate::store::UserChanges {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let again = user(&s, &profile("carl", false, &[])).await;
        assert!(
            again.disabled,
            "the directory does not lift an admin's disable"
        );
    }
}
