//! The periodic directory check of LDAP users (one loop per replica).
//!
//! Every `check_interval` the loop takes the LDAP users whose last check (sign-in or check,
//! by any replica: the time is a store column) is at least one interval old, oldest first, at
//! most `check_batch` of them, and looks each up with the search account over one connection.
//! A user the filter no longer finds (deleted, or disabled if the filter excludes disabled
//! accounts) is disabled here; one still found gets admin flag and grants refreshed. Either
//! change bumps the user's revision, so the `changes` log carries it to every replica's
//! session watcher, which ends their sessions; their API keys are refused from then on
//! (owner disabled). The directory or store being down skips the round (logged).

use std::sync::Arc;

use super::client::close;
use super::{Ldap, LdapLink, Synced};
use crate::model::now;

/// Runs forever (the gateway aborts it at close).
pub async fn run_checks(ldap: Arc<Ldap>) {
    let interval = ldap.settings.check_interval;
    loop {
        tokio::time::sleep(interval).await;
        match ldap.check_round().await {
            Ok((checked, gone)) if checked > 0 => {
                tracing::info!(checked, gone, "LDAP directory check");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "LDAP directory check skipped"),
        }
    }
}

impl Ldap {
    /// One round: returns (users checked, users found gone).
    pub async fn check_round(&self) -> Result<(usize, usize), crate::auth::DirectoryError> {
        let at = now();
        let interval = i64::try_from(self.settings.check_interval.as_secs()).unwrap_or(i64::MAX);
        let due = self
            .accounts
            .ldap_users_due(at.saturating_sub(interval), self.settings.check_batch)
            .await?;
        if due.is_empty() {
            return Ok((0, 0));
        }
        let mut conn = self.connect().await?;
        let mut gone = 0;
        let mut result = Ok(());
        for link in &due {
            match self.check_one(&mut conn, link, at).await {
                Ok(true) => {}
                Ok(false) => gone += 1,
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        close(conn).await;
        result?;
        Ok((due.len(), gone))
    }

    /// True when the user is still in the directory.
    async fn check_one(
        &self,
        conn: &mut ldap3::Ldap,
        link: &LdapLink,
        at: i64,
    ) -> Result<bool, crate::auth::DirectoryError> {
        let entry = self.find(conn, &link.username).await?;
        let entry = entry.filter(|e| {
            e.names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&link.username))
        });
        let Some(entry) = entry else {
            tracing::info!(user = %link.username, "LDAP user no longer in the directory: disabled");
            self.accounts.ldap_user_gone(link.user_id, at).await?;
            return Ok(false);
        };
        let groups = self.groups(conn, &entry, &link.username).await?;
        let profile = self.profile(&link.username, &entry.dn, &groups);
        match self.accounts.sync_ldap_user(&profile, at).await? {
            Synced::User(_) => Ok(true),
            Synced::LocalUserHoldsName => Ok(true),
        }
    }
}
