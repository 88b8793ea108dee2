//! Enrolling and removing a user's TOTP second factor: the secret is made here, sealed
//! (`auth::totp::Sealer`) before the store sees it, shown once as an `otpauth://` URI, and
//! becomes active only once a first code proves the user's device has it (or at once from
//! the CLI, where an administrator hands the URI over). Ten recovery codes are made at
//! activation, shown once, stored as digests. Every change is audited (`user_update`).

use std::sync::Arc;

use super::{AccountError, Accounts, invalid};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::totp::{self, CodeInput, Sealer};
use crate::identity::Principal;
use crate::model::now;

/// A started enrolment, to show the user (once).
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// `otpauth://totp/…`, for a QR code or to paste into an authenticator app.
    pub uri: String,
    /// The secret in base32, for apps that take it typed.
    pub secret_base32: String,
}

/// The user's second-factor state, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    Off,
    /// Enrolment started, waiting for the first code.
    Pending,
    On,
}

impl Accounts {
    /// Gives the service the key TOTP secrets are sealed with.
    pub fn with_totp(mut self, sealer: Arc<Sealer>) -> Accounts {
        self.totp = Some(sealer);
        self
    }

    fn sealer(&self) -> Result<&Sealer, AccountError> {
        self.totp
            .as_deref()
            .ok_or_else(|| AccountError::Invalid("two-factor sign-in is not configured".into()))
    }

    pub async fn totp_state(&self, user_id: i64) -> Result<TotpState, AccountError> {
        Ok(match self.store.totp_of(user_id).await? {
            None => TotpState::Off,
            Some(row) if row.confirmed => TotpState::On,
            Some(_) => TotpState::Pending,
        })
    }

    /// Starts an enrolment (a new secret, inactive until [`Accounts::totp_confirm`]).
    /// Refused while the user has an active one: disable it first.
    pub async fn totp_begin(
        &self,
        actor: &Principal,
        user_id: i64,
    ) -> Result<TotpEnrolment, AccountError> {
        let sealer = self.sealer()?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let secret = totp::new_secret();
        match self
            .store
            .begin_totp(user.id, &sealer.seal(user.id, &secret))
            .await
        {
            Ok(()) => {}
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(AccountError::Conflict(
                    "two-factor sign-in is already on for this user; disable it first".into(),
                ));
            }
            Err(other) => return Err(other.into()),
        }
        self.audit.record(
            AuditEvent::by(actor, Action::UserUpdate, Outcome::Ok)
                .path(user.username.clone())
                .reason("two-factor enrolment started"),
        );
        Ok(TotpEnrolment {
            uri: totp::otpauth_uri(&user.username, &secret),
            secret_base32: totp::base32(&secret),
        })
    }

    /// Activates a started enrolment with its first code; returns the recovery codes (to
    /// show once).
    pub async fn totp_confirm(
        &self,
        actor: &Principal,
        user_id: i64,
        code: &str,
    ) -> Result<Vec<String>, AccountError> {
        let sealer = self.sealer()?;
        let Some(row) = self.store.totp_of(user_id).await?.filter(|r| !r.confirmed) else {
            return invalid("no two-factor enrolment is waiting for a code");
        };
        let CodeInput::Totp(code) = totp::parse_code(code) else {
            return invalid("the code is six digits");
        };
        let secret = sealer
            .open(user_id, &row.secret_sealed)
            .map_err(|e| AccountError::Invalid(e.to_string()))?;
        let Some(step) = totp::matching_step(&secret, code, now()) else {
            return invalid(
                "that code does not match; check the device's clock and try the next one",
            );
        };
        self.activate(actor, user_id, step).await
    }

    /// Enrols and activates at once (the CLI: an administrator hands the URI over).
    pub async fn totp_enroll_now(
        &self,
        actor: &Principal,
        user_id: i64,
    ) -> Result<(TotpEnrolment, Vec<String>), AccountError> {
        let enrolment = self.totp_begin(actor, user_id).await?;
        let codes = self.activate(actor, user_id, 0).await?;
        Ok((enrolment, codes))
    }

    async fn activate(
        &self,
        actor: &Principal,
        user_id: i64,
        step: i64,
    ) -> Result<Vec<String>, AccountError> {
        let codes = totp::new_recovery_codes();
        let digests: Vec<String> = codes
            .iter()
            .map(|c| totp::recovery_digest(&c.replace('-', "")))
            .collect();
        if !self.store.confirm_totp(user_id, step, &digests).await? {
            return invalid("no two-factor enrolment is waiting for a code");
        }
        let user = self.store.user_by_id(user_id).await?;
        self.audit.record(
            AuditEvent::by(actor, Action::UserUpdate, Outcome::Ok)
                .path(user.map(|u| u.username).unwrap_or_default())
                .reason("two-factor sign-in enabled"),
        );
        Ok(codes)
    }

    /// Removes the user's second factor (and recovery codes). `NotFound` when none.
    pub async fn totp_disable(&self, actor: &Principal, user_id: i64) -> Result<(), AccountError> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if !self.store.delete_totp(user_id).await? {
            return Err(AccountError::NotFound);
        }
        self.audit.record(
            AuditEvent::by(actor, Action::UserUpdate, Outcome::Ok)
                .path(user.username)
                .reason("two-factor sign-in disabled"),
        );
        Ok(())
    }
}
