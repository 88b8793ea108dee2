//! The second factor of a user's sign-in (TOTP), inside the one authenticator.
//!
//! Each front-end says where its protocol carries the code ([`SecondFactor`]): FTP at the
//! end of the password, the REST API and the console beside it, SFTP in a later
//! keyboard-interactive round ([`SignIn::CodeNeeded`] then [`Authenticator::finish_sign_in`]),
//! WebDAV nowhere (its clients resend the stored password for hours, so a user with TOTP
//! mounts with an API key). API keys are never asked for a code: they are the scripted way
//! in. A wrong, malformed, replayed or missing code is a failed login like a wrong password
//! (same refusal, counted by the lockout, its real reason in the audit log). Codes are
//! spent through the store (`Directory::use_totp_step`, `use_recovery_code`), so a code
//! used on one replica is refused on every other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::totp::{self, CodeInput, Sealer};
use super::{AuthError, Authenticator, Checked, Denial, DirectoryError, Proof};
use crate::identity::{ClientInfo, Principal, Protocol};
use crate::model::{TotpRecord, UserRecord, now};

/// Wrong codes one account may get, from all addresses together, per [`CODE_FAILURE_WINDOW`]
/// before its TOTP codes are refused unchecked for the rest of the window. The per-address
/// lockout alone would let an attacker holding the password guess from many addresses; a
/// million codes at 10 per 15 minutes take years. A recovery code still signs the user in.
pub const MAX_CODE_FAILURES: i64 = 10;
/// Seconds.
pub const CODE_FAILURE_WINDOW: i64 = 15 * 60;

/// Who must sign in with a second factor (`auth.require_2fa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require2fa {
    #[default]
    Off,
    /// Site admins.
    Admins,
    /// Every user.
    All,
}

impl Require2fa {
    /// Whether `user` falls under the policy.
    pub fn covers(self, user: &UserRecord) -> bool {
        match self {
            Require2fa::Off => false,
            Require2fa::Admins => user.site_admin,
            Require2fa::All => true,
        }
    }
}

/// Where a sign-in's second factor is (see the module comment).
#[derive(Clone, Copy)]
pub enum SecondFactor<'a> {
    /// The protocol has no place for a code (WebDAV).
    Unsupported,
    /// The last six digits of the password (FTP).
    AppendedToPassword,
    /// Beside the password (REST API `otp`, console); `None` when the client gave none.
    Given(Option<&'a str>),
    /// Asked for in a later round (SFTP keyboard-interactive).
    Later,
    /// The caller is already signed in with both factors and only re-checks the password
    /// (the console's password change).
    Reauthenticate,
}

impl std::fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecondFactor::Unsupported => "Unsupported",
            SecondFactor::AppendedToPassword => "AppendedToPassword",
            SecondFactor::Given(_) => "Given(<redacted>)",
            SecondFactor::Later => "Later",
            SecondFactor::Reauthenticate => "Reauthenticate",
        })
    }
}

impl SecondFactor<'_> {
    /// Where `protocol` carries a code when its front-end says nothing more.
    pub fn of(protocol: Protocol) -> SecondFactor<'static> {
        match protocol {
            Protocol::Ftp => SecondFactor::AppendedToPassword,
            Protocol::Api | Protocol::Web => SecondFactor::Given(None),
            _ => SecondFactor::Unsupported,
        }
    }
}

/// What a sign-in came to.
#[derive(Debug)]
pub enum SignIn {
    Done(Principal),
    /// The first factor was right; the code is asked for next ([`Authenticator::finish_sign_in`]).
    CodeNeeded(PendingCode),
}

/// A sign-in waiting for its code. Bound to the user's revision at the first step; expires.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub(super) user_id: i64,
    pub(super) revision: i64,
    pub(super) shown: String,
    pub(super) counted: String,
    pub(super) protocol: Protocol,
    pub(super) client: ClientInfo,
    pub(super) until: Instant,
}

impl PendingCode {
    /// How long a first factor waits for its code.
    pub const LIFETIME: Duration = Duration::from_secs(300);

    /// The login name as the client gave it.
    pub fn login(&self) -> &str {
        &self.shown
    }
}

/// The authenticator's TOTP settings.
#[derive(Debug, Clone)]
pub struct TwoFactor {
    pub sealer: Arc<Sealer>,
    pub policy: Require2fa,
}

/// What the second step decided, inside a user's sign-in.
pub(super) enum Step {
    Admit,
    Deny(Denial),
    AskLater,
}

/// Splits a code off the end of a password when the protocol carries it there and the user
/// has TOTP (`password123456` → `password`, `123456`).
pub(super) fn split_appended<'a>(
    proof: Proof<'a>,
    second: SecondFactor<'a>,
    has_totp: bool,
) -> (Proof<'a>, Option<&'a str>) {
    match (proof, second) {
        (Proof::Password(p), SecondFactor::AppendedToPassword) if has_totp => {
            match p.len().checked_sub(totp::DIGITS) {
                Some(at) if p.is_char_boundary(at) => (Proof::Password(&p[..at]), Some(&p[at..])),
                _ => (proof, None),
            }
        }
        (_, SecondFactor::Given(code)) => (proof, code),
        _ => (proof, None),
    }
}

impl Authenticator {
    /// The user's confirmed TOTP row, when second factors are configured.
    pub(super) async fn confirmed_totp(
        &self,
        user_id: i64,
    ) -> Result<Option<TotpRecord>, DirectoryError> {
        if self.two_factor.is_none() {
            return Ok(None);
        }
        Ok(self
            .directory
            .totp_of(user_id)
            .await?
            .filter(|t| t.confirmed))
    }

    /// The second step of a user whose first factor was right.
    pub(super) async fn second_step(
        &self,
        user: &UserRecord,
        totp: Option<&TotpRecord>,
        second: SecondFactor<'_>,
        code: Option<&str>,
        protocol: Protocol,
    ) -> Result<Step, DirectoryError> {
        let Some(totp) = totp else {
            let required = self
                .two_factor
                .as_ref()
                .is_some_and(|t| t.policy.covers(user));
            // The console stays open to such users, so that they can enrol.
            if required && protocol != Protocol::Web {
                return Ok(Step::Deny(Denial(
                    "two-factor sign-in required by auth.require_2fa: enrol first (console, My account)",
                )));
            }
            return Ok(Step::Admit);
        };
        match second {
            SecondFactor::Reauthenticate => Ok(Step::Admit),
            SecondFactor::Later => Ok(Step::AskLater),
            SecondFactor::Unsupported => Ok(Step::Deny(Denial(
                "user has two-factor sign-in: WebDAV takes an API key (@api-<key name> and its secret), not the password",
            ))),
            SecondFactor::AppendedToPassword | SecondFactor::Given(_) => match code {
                None | Some("") => Ok(Step::Deny(Denial("second-factor code missing"))),
                Some(code) => self.check_code(totp, code).await,
            },
        }
    }

    /// Checks and spends `raw` (a TOTP code or a recovery code) for `totp`'s user.
    pub(super) async fn check_code(
        &self,
        totp: &TotpRecord,
        raw: &str,
    ) -> Result<Step, DirectoryError> {
        let Some(two_factor) = &self.two_factor else {
            return Ok(Step::Deny(Denial("second factors are not configured")));
        };
        match totp::parse_code(raw) {
            CodeInput::Malformed => Ok(Step::Deny(Denial("malformed second-factor code"))),
            CodeInput::Totp(code) => {
                // Per account, whatever the address: past the limit the code is not even
                // checked until the window ends (a recovery code still works).
                if totp.code_failures >= MAX_CODE_FAILURES
                    && totp.code_failures_since > now() - CODE_FAILURE_WINDOW
                {
                    return Ok(Step::Deny(Denial(
                        "too many wrong second-factor codes for this account: codes are refused for a while",
                    )));
                }
                let secret = match two_factor.sealer.open(totp.user_id, &totp.secret_sealed) {
                    Ok(secret) => secret,
                    Err(err) => {
                        tracing::error!(error = %err, user_id = totp.user_id, "TOTP secret cannot be opened: is auth.totp_key the one it was sealed with?");
                        return Ok(Step::Deny(Denial("TOTP secret cannot be opened (key)")));
                    }
                };
                let Some(step) = totp::matching_step(&secret, code, now()) else {
                    self.directory
                        .totp_code_failed(totp.user_id, now(), CODE_FAILURE_WINDOW)
                        .await?;
                    return Ok(Step::Deny(Denial("wrong second-factor code")));
                };
                if self.directory.use_totp_step(totp.user_id, step).await? {
                    Ok(Step::Admit)
                } else {
                    Ok(Step::Deny(Denial(
                        "second-factor code already used (replay)",
                    )))
                }
            }
            CodeInput::Recovery(code) => {
                let digest = totp::recovery_digest(&code);
                if self
                    .directory
                    .use_recovery_code(totp.user_id, &digest)
                    .await?
                {
                    tracing::info!(user_id = totp.user_id, "recovery code used");
                    Ok(Step::Admit)
                } else {
                    self.directory
                        .totp_code_failed(totp.user_id, now(), CODE_FAILURE_WINDOW)
                        .await?;
                    Ok(Step::Deny(Denial("wrong or used recovery code")))
                }
            }
        }
    }

    /// Whether `principal` is a user whom `auth.require_2fa` covers and who has no TOTP
    /// yet (the console then lets them do nothing but enrol).
    pub async fn must_enrol(&self, principal: &Principal) -> Result<bool, AuthError> {
        let (Some(two_factor), Some(user)) = (&self.two_factor, &principal.user) else {
            return Ok(false);
        };
        let covered = match two_factor.policy {
            Require2fa::Off => false,
            Require2fa::Admins => principal.site_admin,
            Require2fa::All => true,
        };
        if !covered || principal.key.is_some() {
            return Ok(false);
        }
        let totp = self
            .confirmed_totp(user.id)
            .await
            .map_err(|_| AuthError::Unavailable)?;
        Ok(totp.is_none())
    }

    /// Ends a sign-in that [`SignIn::CodeNeeded`] left waiting, with the code the client
    /// gave. A wrong code counts as a failed login.
    pub async fn finish_sign_in(
        &self,
        pending: &PendingCode,
        code: &str,
    ) -> Result<Principal, AuthError> {
        let client = pending.client.clone();
        if self.lockout.is_banned(client.ip, &pending.counted) {
            return Err(self.refuse_banned(
                &pending.shown,
                &pending.counted,
                pending.protocol,
                &client,
            ));
        }
        let checked = self.finish_checks(pending, code).await;
        self.conclude(
            &pending.shown,
            &pending.counted,
            pending.protocol,
            client,
            checked,
            false,
        )
        .await
    }

    /// A pending sign-in as a form token (the console's code page): sealed with the TOTP
    /// key, so it can be neither read nor forged, and any replica can resume it. Bound to
    /// the client's address; expires with the pending sign-in.
    pub fn pending_token(&self, pending: &PendingCode) -> Option<String> {
        let two_factor = self.two_factor.as_ref()?;
        let left = pending
            .until
            .saturating_duration_since(Instant::now())
            .as_secs();
        let expires = now() + i64::try_from(left).unwrap_or(0);
        let payload = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            pending.user_id,
            pending.revision,
            expires,
            pending.protocol,
            pending.counted,
            pending.shown
        );
        Some(
            two_factor
                .sealer
                .seal_for(&token_context(&pending.client), payload.as_bytes()),
        )
    }

    /// The pending sign-in a token from [`Authenticator::pending_token`] holds, if it is
    /// intact, unexpired and presented from the same address.
    pub fn pending_from_token(&self, token: &str, client: &ClientInfo) -> Option<PendingCode> {
        let two_factor = self.two_factor.as_ref()?;
        if token.len() > 4096 {
            return None;
        }
        let plain = two_factor
            .sealer
            .open_for(&token_context(client), token)
            .ok()?;
        let text = String::from_utf8(plain).ok()?;
        let mut parts = text.splitn(6, '\n');
        let user_id = parts.next()?.parse().ok()?;
        let revision = parts.next()?.parse().ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        let protocol = match parts.next()? {
            "web" => Protocol::Web,
            "restapi" => Protocol::Api,
            _ => return None,
        };
        let counted = parts.next()?.to_owned();
        let shown = parts.next()?.to_owned();
        let left = u64::try_from(expires - now()).ok().filter(|s| *s > 0)?;
        Some(PendingCode {
            user_id,
            revision,
            shown,
            counted,
            protocol,
            client: client.clone(),
            until: Instant::now() + Duration::from_secs(left),
        })
    }

    /// A code check for a signed-in user (the console's "turn off two-factor" asks for
    /// one): the same checks, spending and lockout as a sign-in's second step.
    pub fn pending_for(&self, principal: &Principal) -> Option<PendingCode> {
        let user = principal.user.as_ref()?;
        Some(PendingCode {
            user_id: user.id,
            revision: user.revision,
            shown: user.username.clone(),
            counted: user.username.to_lowercase(),
            protocol: principal.protocol,
            client: principal.client.clone(),
            until: Instant::now() + PendingCode::LIFETIME,
        })
    }

    async fn finish_checks(
        &self,
        pending: &PendingCode,
        code: &str,
    ) -> Result<Checked, DirectoryError> {
        if Instant::now() > pending.until {
            return Ok(Err(Denial("second-factor code came too late")));
        }
        let Some(user) = self.directory.user_by_id(pending.user_id).await? else {
            return Ok(Err(Denial("unknown user")));
        };
        if user.revision != pending.revision {
            return Ok(Err(Denial("user changed during sign-in")));
        }
        let Some(totp) = self.confirmed_totp(user.id).await? else {
            return Ok(Err(Denial("second factor removed during sign-in")));
        };
        match self.check_code(&totp, code).await? {
            Step::Admit => {
                self.user_checks(&user, pending.protocol, &pending.client)
                    .await
            }
            Step::Deny(denial) => Ok(Err(denial)),
            Step::AskLater => Ok(Err(Denial("second-factor code missing"))),
        }
    }
}

fn token_context(client: &ClientInfo) -> String {
    format!("filegate-pending-sign-in:{:?}", client.ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_passwords_lose_their_last_six_characters_only_for_totp_users() {
        let (proof, code) = split_appended(
            Proof::Password("pw123456"),
            SecondFactor::AppendedToPassword,
            true,
        );
        assert!(matches!(proof, Proof::Password("pw")));
        assert_eq!(code, Some("123456"));
        let (proof, code) = split_appended(
            Proof::Password("pw123456"),
            SecondFactor::AppendedToPassword,
            false,
        );
        assert!(matches!(proof, Proof::Password("pw123456")));
        assert_eq!(code, None);
        let (_, code) = split_appended(
            Proof::Password("12"),
            SecondFactor::AppendedToPassword,
            true,
        );
        assert_eq!(code, None);
        // A multi-byte character across the cut is not split (and so fails as a password).
        let (_, code) = split_appended(
            Proof::Password("aéaaaaa"),
            SecondFactor::AppendedToPassword,
            true,
        );
        assert_eq!(code, None);
    }
}
