//! The authenticator's username sign-in when LDAP is configured.
//!
//! Local users (rows without a directory link) are checked as before and the directory is
//! never asked about them. A name no local row holds, or a row an LDAP sign-in created, is
//! checked against the directory: search, bind as the entry, groups, then the local row is
//! created or refreshed and the principal built from it as for any user. WebDAV, which sends
//! the password on every request, may use the password cache (keyed hash + the row's
//! revision, as for local users); real sign-ins (SFTP, FTP, API sessions, console) always ask
//! the directory, so a user disabled or removed there is refused at their next sign-in.

use super::client::close;
use super::{Ldap, LdapError};
use crate::accounts::validate_username;
use crate::auth::two_factor;
use crate::auth::{
    Authenticator, Checked, Denial, DirectoryError, FirstFactor, Proof, SecondStep, UserLogin,
};
use crate::model::{UserRecord, now};

impl From<LdapError> for DirectoryError {
    fn from(err: LdapError) -> Self {
        DirectoryError(err.to_string())
    }
}

impl Authenticator {
    /// A sign-in with a username (`user` is the local row of that name, if any).
    pub(in crate::auth) async fn check_username(
        &self,
        user: Option<UserRecord>,
        first: FirstFactor<'_>,
        code_needed: &mut Option<(i64, i64)>,
        at: UserLogin<'_>,
    ) -> Result<Checked, DirectoryError> {
        let UserLogin {
            name,
            protocol,
            client,
            per_request,
        } = at;
        let Some(ldap) = &self.ldap else {
            return self
                .check_user_login(user, first, code_needed, protocol, client)
                .await;
        };
        let link = match &user {
            None => None,
            Some(row) => match ldap.accounts.ldap_link(row.id).await? {
                // Local users stay local.
                None => {
                    return self
                        .check_user_login(user, first, code_needed, protocol, client)
                        .await;
                }
                link => link,
            },
        };
        let FirstFactor { proof, second } = first;
        if !matches!(proof, Proof::Password(_)) {
            // SSH keys added to an LDAP user's row work as for local users (second factor
            // included); an unknown name is refused the same way.
            let first = FirstFactor { proof, second };
            return self
                .check_user_login(user, first, code_needed, protocol, client)
                .await;
        }
        // A directory user's TOTP lives on their local row, as a local user's does.
        let totp = match &user {
            Some(row) => self.confirmed_totp(row.id).await?,
            None => None,
        };
        let (proof, code) = two_factor::split_appended(proof, second, totp.is_some());
        let Proof::Password(password) = proof else {
            return Ok(Err(Denial("unknown user")));
        };
        let step = SecondStep { totp, second, code };
        if let (Some(row), Some(link)) = (&user, &link)
            && per_request
            && !link.gone
            && self.cache.check(row.id, row.revision, password)
        {
            return self
                .admit_user(row, step, code_needed, protocol, client)
                .await;
        }
        let outcome = self
            .ldap_sign_in(ldap, name, password, link.as_ref())
            .await?;
        let row = match outcome {
            Ok(row) => row,
            Err(denial) => {
                if let Some(row) = &user {
                    self.cache.forget(row.id);
                }
                self.burn(proof).await;
                return Ok(Err(denial));
            }
        };
        let checked = self
            .admit_user(&row, step, code_needed, protocol, client)
            .await?;
        if checked.is_ok() {
            self.cache.remember(row.id, row.revision, password);
        }
        Ok(checked)
    }

    /// Asks the directory and writes the local row. `Ok(Err)` is a refusal.
    async fn ldap_sign_in(
        &self,
        ldap: &Ldap,
        name: &str,
        password: &str,
        link: Option<&super::LdapLink>,
    ) -> Result<Result<UserRecord, Denial>, DirectoryError> {
        if password.is_empty() {
            return Ok(Err(Denial("empty password")));
        }
        // Only names a local user could have are sent to the directory (the filter escapes
        // them all the same).
        if validate_username(name).is_err() {
            return Ok(Err(Denial("unknown user")));
        }
        let mut conn = ldap.connect().await?;
        let asked = async {
            let Some(entry) = ldap.find(&mut conn, name).await? else {
                return Ok::<_, LdapError>(Err(Denial("not found in the LDAP directory")));
            };
            let Some(username) = entry
                .names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name))
                .cloned()
            else {
                return Ok(Err(Denial(
                    "LDAP entry's username attribute does not match the login",
                )));
            };
            let groups = ldap.groups(&mut conn, &entry, &username).await?;
            if !ldap.bind_as(&mut conn, &entry.dn, password).await? {
                return Ok(Err(Denial("wrong password (LDAP bind refused)")));
            }
            Ok(Ok(ldap.profile(&username, &entry.dn, &groups)))
        }
        .await;
        close(conn).await;
        let profile = match asked? {
            Ok(profile) => profile,
            Err(denial) => {
                if let Some(link) = link.filter(|l| !l.gone)
                    && denial.0 == "not found in the LDAP directory"
                {
                    ldap.accounts.ldap_user_gone(link.user_id, now()).await?;
                }
                return Ok(Err(denial));
            }
        };
        match ldap.accounts.sync_ldap_user(&profile, now()).await? {
            super::Synced::User(row) => Ok(Ok(row)),
            super::Synced::LocalUserHoldsName => {
                Ok(Err(Denial("a local user holds this LDAP user's name")))
            }
        }
    }
}
