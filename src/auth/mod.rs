//! The one authenticator: every front-end turns credentials into a [`Principal`] here.
//!
//! Login names follow DESIGN §3 (`@api-<id>`, `@api-<name>`, or a username). Every cause of
//! failure — unknown login, wrong secret, expired or deleted key, disabled user, protocol
//! switched off, address not allowed — gives the client the same [`AuthError::Refused`] after
//! the same work (a dummy argon2 or digest check when there is nothing to check), and writes
//! the real reason to the audit log. Key secrets are compared as SHA-256 digests in constant
//! time; passwords with argon2id on the blocking pool, with a short-lived cache that any
//! change to the user defeats. Failures feed the lockout. This module never touches files.

mod cache;
mod directory;
pub mod ldap;
mod lockout;
mod login;
mod password;
pub mod totp;
mod two_factor;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use cache::PasswordCache;
pub use directory::{Directory, DirectoryError};
pub use lockout::{
    FailureState, LedgerError, Lockout, LockoutLedger, LockoutPolicy, LockoutWindow,
};
pub use login::{LoginName, MAX_LOGIN_CHARS, MalformedLogin};
pub use password::{PasswordError, Passwords};
pub use two_factor::{
    CODE_FAILURE_WINDOW, MAX_CODE_FAILURES, PendingCode, Require2fa, SecondFactor, SignIn,
    TwoFactor,
};

use crate::audit::{Action, AuditEvent, AuditSink, Outcome};
use crate::identity::{ClientInfo, KeyIdentity, Principal, Protocol, UserIdentity};
use crate::model::{KeyRecord, UserRecord, now};
use crate::path::SitePath;
use crate::secret;

/// What the client learns about a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong credentials, or credentials that may not be used: one answer for all causes.
    #[error("authentication failed")]
    Refused,
    /// Too many recent failures from this address (and login).
    #[error("too many failed attempts; try again later")]
    LockedOut,
    /// The store could not be asked; nobody is let in.
    #[error("authentication is temporarily unavailable")]
    Unavailable,
}

/// What a client presents besides its login name.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    Password(&'a str),
    /// An SSH public key in OpenSSH form (`ssh-ed25519 AAAA…`), already verified by the SSH
    /// layer to be held by the client.
    PublicKey(&'a str),
}

impl std::fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Password(_) => f.write_str("Password(<redacted>)"),
            Proof::PublicKey(k) => write!(f, "PublicKey({k})"),
        }
    }
}

/// Authenticator settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub lockout: LockoutPolicy,
    /// How long a verified password is remembered (zero: never).
    pub password_cache_ttl: Duration,
    /// argon2 computations at once (0: one per core).
    pub argon2_concurrency: usize,
}

/// Minimum seconds between two writes of a key's `last_use_at` (Files.com: 3 hours).
pub const KEY_TOUCH_INTERVAL: i64 = 3 * 3600;
/// Minimum seconds between two writes of a user's `last_login_at`.
const USER_TOUCH_INTERVAL: i64 = 60;

/// A refusal's cause, for the audit log only.
struct Denial(&'static str);

/// Where a username sign-in comes from (for the LDAP path, `ldap::login`).
struct UserLogin<'a> {
    name: &'a str,
    protocol: Protocol,
    client: &'a ClientInfo,
    /// WebDAV: the password comes with every request (the cache may answer).
    per_request: bool,
}

/// A user's second factor: their confirmed TOTP (if any), where the code is, and the code
/// when it came with the first factor.
struct SecondStep<'a> {
    totp: Option<crate::model::TotpRecord>,
    second: SecondFactor<'a>,
    code: Option<&'a str>,
}

/// A user's first factor, and where their second is.
struct FirstFactor<'a> {
    proof: Proof<'a>,
    second: SecondFactor<'a>,
}

type Checked = Result<Principal, Denial>;

/// Turns credentials into principals. Shared by every front-end (`Arc`).
pub struct Authenticator {
    directory: Arc<dyn Directory>,
    audit: Arc<dyn AuditSink>,
    passwords: Passwords,
    cache: PasswordCache,
    lockout: Arc<Lockout>,
    /// Last `last_use_at`/`last_login_at` write per key / user made by this process.
    touched: Mutex<HashMap<(bool, i64), i64>>,
    dummy_digest: String,
    /// When banned clients' refusals were last audited.
    ban_notes: BanNotes,
    /// Banned clients' refusals not audited (see [`Authenticator::refuse_banned`]).
    unrecorded_refusals: AtomicU64,
    /// Users from an LDAP directory, when configured (`ldap`).
    ldap: Option<Arc<ldap::Ldap>>,
    /// TOTP settings (none: no user is asked for a code).
    two_factor: Option<TwoFactor>,
}

impl Authenticator {
    pub fn new(
        directory: Arc<dyn Directory>,
        audit: Arc<dyn AuditSink>,
        settings: AuthSettings,
    ) -> Authenticator {
        Authenticator {
            directory,
            audit,
            passwords: Passwords::new(settings.argon2_concurrency),
            cache: PasswordCache::new(settings.password_cache_ttl, 100_000),
            lockout: Arc::new(Lockout::new(settings.lockout)),
            touched: Mutex::default(),
            dummy_digest: secret::digest_hex(&secret::new_key_secret()),
            ban_notes: BanNotes::new(),
            unrecorded_refusals: AtomicU64::new(0),
            ldap: None,
            two_factor: None,
        }
    }

    /// Signs in names no local user holds against an LDAP directory (see [`ldap`]).
    pub fn with_ldap(mut self, ldap: Arc<ldap::Ldap>) -> Authenticator {
        self.ldap = Some(ldap);
        self
    }

    /// Asks users with TOTP for their code, and applies the site's 2FA policy.
    pub fn with_two_factor(mut self, two_factor: TwoFactor) -> Authenticator {
        self.two_factor = Some(two_factor);
        self
    }

    /// Shares failed-login counters and bans with other replicas through `ledger`.
    pub fn with_lockout_ledger(mut self, ledger: Arc<dyn LockoutLedger>) -> Authenticator {
        self.lockout = Arc::new(Lockout::shared(self.lockout.policy().clone(), ledger));
        self
    }

    /// The failed-login counters (the gateway runs their sync with other replicas).
    pub fn lockout(&self) -> Arc<Lockout> {
        self.lockout.clone()
    }

    /// The password hasher (for account management, which shares its concurrency bound).
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Signs in with a login name (`@api-…` or a username) and a password or SSH key.
    ///
    /// Failures are counted under one canonical login per target (see [`counted_login`]):
    /// `@api-01`, `@API-1` and `@api-<its name>` are the same key, `Alice` and `alice` the
    /// same user.
    /// A user with TOTP gives their code where the protocol carries it
    /// ([`SecondFactor::of`]); use [`Authenticator::sign_in`] to say otherwise.
    pub async fn login(
        &self,
        login: &str,
        proof: Proof<'_>,
        protocol: Protocol,
        client: ClientInfo,
    ) -> Result<Principal, AuthError> {
        let second = SecondFactor::of(protocol);
        match self.sign_in(login, proof, second, protocol, client).await? {
            SignIn::Done(principal) => Ok(principal),
            // Only `SecondFactor::Later` defers the code.
            SignIn::CodeNeeded(_) => Err(AuthError::Refused),
        }
    }

    /// [`Authenticator::login`] with the second factor's place given: a user with TOTP
    /// signing in with `SecondFactor::Later` gets [`SignIn::CodeNeeded`] once the first
    /// factor is right.
    pub async fn sign_in(
        &self,
        login: &str,
        proof: Proof<'_>,
        second: SecondFactor<'_>,
        protocol: Protocol,
        client: ClientInfo,
    ) -> Result<SignIn, AuthError> {
        let ip = client.ip;
        let per_request = protocol == Protocol::WebDav;
        let mut code_needed = None;
        let parsed = LoginName::parse(login);
        let mut counted = counted_login(login, &parsed);
        if self.lockout.is_banned(ip, &counted) {
            return Err(self.refuse_banned(login, &counted, protocol, &client));
        }
        let checked = match parsed {
            Err(MalformedLogin) => {
                self.burn(proof).await;
                Ok(Err(Denial("malformed login name")))
            }
            Ok(LoginName::KeyId(id)) => match self.directory.key_by_id(id).await {
                Ok(key) => self.check_key_login(key, proof, protocol, &client).await,
                Err(e) => Err(e),
            },
            Ok(LoginName::KeyName(name)) => match self.directory.key_by_name(&name).await {
                Ok(key) => {
                    if let Some(key) = &key {
                        counted = key_login(key.id);
                        if self.lockout.is_banned(ip, &counted) {
                            return Err(self.refuse_banned(login, &counted, protocol, &client));
                        }
                    }
                    self.check_key_login(key, proof, protocol, &client).await
                }
                Err(e) => Err(e),
            },
            Ok(LoginName::User(name)) => match self.directory.user_by_name(&name).await {
                Ok(user) => {
                    let first = FirstFactor { proof, second };
                    let at = UserLogin {
                        name: &name,
                        protocol,
                        client: &client,
                        per_request,
                    };
                    self.check_username(user, first, &mut code_needed, at).await
                }
                Err(e) => Err(e),
            },
        };
        if let (Some((user_id, revision)), Ok(Ok(_))) = (code_needed, &checked) {
            return Ok(SignIn::CodeNeeded(PendingCode {
                user_id,
                revision,
                shown: login.to_owned(),
                counted,
                protocol,
                client,
                until: Instant::now() + PendingCode::LIFETIME,
            }));
        }
        self.conclude(login, &counted, protocol, client, checked, per_request)
            .await
            .map(SignIn::Done)
    }

    /// Signs in to the REST API with a key secret alone (`X-FilesAPI-Key`).
    pub async fn api_key(
        &self,
        key_secret: &str,
        client: ClientInfo,
    ) -> Result<Principal, AuthError> {
        const LOGIN: &str = "@api-key-header";
        if self.lockout.is_banned(client.ip, LOGIN) {
            return Err(self.refuse_banned(LOGIN, LOGIN, Protocol::Api, &client));
        }
        let well_formed = !key_secret.is_empty()
            && key_secret.len() <= 256
            && key_secret.bytes().all(|b| b.is_ascii_alphanumeric());
        let checked = if !well_formed {
            Ok(Err(Denial("malformed key secret")))
        } else {
            match self
                .directory
                .key_by_digest(&secret::digest_hex(key_secret))
                .await
            {
                Ok(None) => Ok(Err(Denial("unknown key secret"))),
                Ok(Some(key)) => self.key_principal(&key, Protocol::Api, &client).await,
                Err(e) => Err(e),
            }
        };
        self.conclude(LOGIN, LOGIN, Protocol::Api, client, checked, true)
            .await
    }

    /// Builds the principal of a user whose identity was proven another way (a REST API
    /// session token), applying the same checks as a login.
    pub async fn user_principal(
        &self,
        user_id: i64,
        protocol: Protocol,
        client: ClientInfo,
    ) -> Result<Principal, AuthError> {
        let checked = match self.directory.user_by_id(user_id).await {
            Ok(Some(user)) => self.user_checks(&user, protocol, &client).await,
            Ok(None) => Ok(Err(Denial("unknown user"))),
            Err(e) => Err(e),
        };
        let label = format!("user:{user_id}");
        self.conclude(&label, &label, protocol, client, checked, true)
            .await
    }

    /// Whether a signed-in principal may still act with the rights it was given: its key
    /// still exists, has not expired and has not changed (permission set, path, expiry: the
    /// key's revision); its user still exists, is enabled for the protocol and the address,
    /// and nothing about their rights or credentials changed since sign-in (admin flag,
    /// grants, password, SSH keys, switches: the user's revision). The SFTP and FTP
    /// revocation watchers call this every few seconds and end the session on `false`; a
    /// client signs in again to get its current rights. Costs at most two indexed reads.
    pub async fn still_valid(&self, principal: &Principal) -> Result<bool, AuthError> {
        let unavailable = |_| AuthError::Unavailable;
        if let Some(key) = &principal.key {
            let Some(row) = self
                .directory
                .key_by_id(key.id)
                .await
                .map_err(unavailable)?
            else {
                return Ok(false);
            };
            if row.revision != key.revision
                || row.is_expired(now())
                || row.user_id != principal.user.as_ref().map(|u| u.id)
            {
                return Ok(false);
            }
        }
        if let Some(user) = &principal.user {
            let Some(row) = self
                .directory
                .user_by_id(user.id)
                .await
                .map_err(unavailable)?
            else {
                return Ok(false);
            };
            if row.revision != user.revision
                || row.disabled
                || row.site_admin != principal.site_admin
                || !row.allows_protocol(principal.protocol)
                || !row.allows_ip(principal.client.ip)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The answer to a banned client. The first refusal per (address, login) and
    /// [`BAN_NOTE_INTERVAL`] is an audit record; the others are only counted
    /// ([`Authenticator::unrecorded_refusals`], shown in `/metrics`), so that a client
    /// hammering while banned cannot fill the audit log.
    fn refuse_banned(
        &self,
        shown: &str,
        counted: &str,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> AuthError {
        if self.ban_notes.first_in_interval(client.ip, counted) {
            self.audit_login(shown, protocol, client, Outcome::Denied, "locked out");
        } else {
            self.unrecorded_refusals.fetch_add(1, Ordering::Relaxed);
        }
        AuthError::LockedOut
    }

    /// Refusals of banned clients counted but not written to the audit log.
    pub fn unrecorded_refusals(&self) -> u64 {
        self.unrecorded_refusals.load(Ordering::Relaxed)
    }

    /// Ends a sign-in: `shown` is the login as the client gave it (for the audit log),
    /// `counted` the canonical login its failures count under.
    async fn conclude(
        &self,
        shown: &str,
        counted: &str,
        protocol: Protocol,
        client: ClientInfo,
        checked: Result<Checked, DirectoryError>,
        per_request: bool,
    ) -> Result<Principal, AuthError> {
        let ip = client.ip;
        // WebDAV and the REST API authenticate every request (`per_request`): a success there
        // is not a login record, since the request's own record carries the principal;
        // failures always are.
        match checked {
            Ok(Ok(principal)) => {
                self.lockout.succeeded(ip, counted).await;
                if per_request {
                    tracing::debug!(user = %principal.display_name(), protocol = %protocol, "request authenticated");
                } else {
                    self.audit
                        .record(AuditEvent::by(&principal, Action::Login, Outcome::Ok));
                    tracing::info!(user = %principal.display_name(), key_id = principal.key.as_ref().map(|k| k.id), protocol = %protocol, client.ip = ?ip, "login accepted");
                }
                self.touch(&principal).await;
                Ok(principal)
            }
            Ok(Err(Denial(reason))) => {
                let delay = self.lockout.failed(ip, counted).await;
                self.audit_login(shown, protocol, &client, Outcome::Denied, reason);
                tracing::info!(login = %counted, protocol = %protocol, client.ip = ?ip, reason, "login refused");
                tokio::time::sleep(delay).await;
                Err(AuthError::Refused)
            }
            Err(err) => {
                let reason = if err.0.starts_with("LDAP") {
                    "LDAP directory unavailable"
                } else {
                    "store unavailable"
                };
                self.audit_login(shown, protocol, &client, Outcome::Failed, reason);
                tracing::error!(error = %err, protocol = %protocol, "login failed closed: {reason}");
                Err(AuthError::Unavailable)
            }
        }
    }

    async fn check_key_login(
        &self,
        key: Option<KeyRecord>,
        proof: Proof<'_>,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> Result<Checked, DirectoryError> {
        let Proof::Password(presented) = proof else {
            return Ok(Err(Denial(
                "API keys sign in with their secret, not an SSH key",
            )));
        };
        let Some(key) = key else {
            secret::matches_digest(presented, &self.dummy_digest);
            return Ok(Err(Denial("unknown key")));
        };
        if !secret::matches_digest(presented, &key.secret_digest) {
            return Ok(Err(Denial("wrong key secret")));
        }
        self.key_principal(&key, protocol, client).await
    }

    /// The checks every key passes whichever way it was presented.
    async fn key_principal(
        &self,
        key: &KeyRecord,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> Result<Checked, DirectoryError> {
        if key.is_expired(now()) {
            return Ok(Err(Denial("key expired")));
        }
        let Some(permission_set) = key.permission_set() else {
            return Ok(Err(Denial("key has an unknown permission set")));
        };
        let path = match key.path.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match SitePath::from_key_path(p) {
                Ok(path) => Some(path),
                Err(_) => return Ok(Err(Denial("key has an invalid path"))),
            },
        };
        let key_identity = KeyIdentity {
            id: key.id,
            name: key.name.clone(),
            permission_set,
            path,
            revision: key.revision,
        };
        let mut principal = match key.user_id {
            None => Principal {
                user: None,
                key: None,
                site_admin: true,
                grants: Vec::new(),
                protocol,
                client: client.clone(),
            },
            Some(owner_id) => match self.directory.user_by_id(owner_id).await? {
                None => return Ok(Err(Denial("key owner no longer exists"))),
                Some(owner) => match self.user_checks(&owner, protocol, client).await? {
                    Ok(p) => p,
                    Err(Denial(reason)) => return Ok(Err(Denial(owner_reason(reason)))),
                },
            },
        };
        principal.key = Some(key_identity);
        Ok(Ok(principal))
    }

    /// Checks a user's first factor, then their second ([`two_factor`]); sets `code_needed`
    /// (user id, revision) when the first was right and the code comes later.
    async fn check_user_login(
        &self,
        user: Option<UserRecord>,
        first: FirstFactor<'_>,
        code_needed: &mut Option<(i64, i64)>,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> Result<Checked, DirectoryError> {
        let FirstFactor { proof, second } = first;
        let Some(user) = user else {
            self.burn(proof).await;
            return Ok(Err(Denial("unknown user")));
        };
        // A user who may not sign in here is refused after the work a wrong proof costs (a
        // real argon2 verification, never the cache, which it never fills either), so that
        // the answer's timing tells nothing about whether the proof was right.
        if let Err(denial) = refusal(&user, protocol, client) {
            self.spend_like_a_check(&user, proof).await?;
            return Ok(Err(denial));
        }
        let totp = self.confirmed_totp(user.id).await?;
        let (proof, code) = two_factor::split_appended(proof, second, totp.is_some());
        let proven = match proof {
            // A TOTP user's password is always checked in full: a cached answer would be
            // faster for the right password, telling an attacker who lacks the code that
            // the password they tried is the one (the code step answers the same either way).
            Proof::Password(password) => self.check_password(&user, password, totp.is_none()).await,
            Proof::PublicKey(presented) => self.holds_public_key(&user, presented).await?,
        };
        if !proven {
            return Ok(Err(Denial(match proof {
                Proof::Password(_) => "wrong password",
                Proof::PublicKey(_) => "unknown public key",
            })));
        }
        let second = SecondStep { totp, second, code };
        self.admit_user(&user, second, code_needed, protocol, client)
            .await
    }

    /// A user whose first factor is right: the checks every user passes, then the second
    /// factor (sets `code_needed` when the code comes in a later round).
    async fn admit_user(
        &self,
        user: &UserRecord,
        step: SecondStep<'_>,
        code_needed: &mut Option<(i64, i64)>,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> Result<Checked, DirectoryError> {
        let principal = match self.user_checks(user, protocol, client).await? {
            Ok(principal) => principal,
            Err(denial) => return Ok(Err(denial)),
        };
        match self
            .second_step(user, step.totp.as_ref(), step.second, step.code, protocol)
            .await?
        {
            two_factor::Step::Admit => Ok(Ok(principal)),
            two_factor::Step::Deny(denial) => Ok(Err(denial)),
            two_factor::Step::AskLater => {
                *code_needed = Some((user.id, user.revision));
                Ok(Ok(principal))
            }
        }
    }

    async fn holds_public_key(
        &self,
        user: &UserRecord,
        presented: &str,
    ) -> Result<bool, DirectoryError> {
        let keys = self.directory.public_keys_of(user.id).await?;
        let presented = canonical_public_key(presented);
        Ok(keys
            .iter()
            .any(|k| canonical_public_key(&k.public_key) == presented))
    }

    /// The work of checking `proof` for `user`, with the result thrown away and the cache
    /// neither read nor written.
    async fn spend_like_a_check(
        &self,
        user: &UserRecord,
        proof: Proof<'_>,
    ) -> Result<(), DirectoryError> {
        match proof {
            Proof::Password(password) => {
                let _ = self
                    .passwords
                    .verify(password, user.password_hash.as_deref())
                    .await;
            }
            Proof::PublicKey(presented) => {
                self.holds_public_key(user, presented).await?;
            }
        }
        Ok(())
    }

    /// Checks a user's password (through the password cache when `cached`).
    async fn check_password(&self, user: &UserRecord, password: &str, cached: bool) -> bool {
        if cached && self.cache.check(user.id, user.revision, password) {
            return true;
        }
        match self
            .passwords
            .verify(password, user.password_hash.as_deref())
            .await
        {
            Ok(true) => {
                if cached {
                    self.cache.remember(user.id, user.revision, password);
                }
                true
            }
            Ok(false) => {
                self.cache.forget(user.id);
                false
            }
            Err(err) => {
                tracing::error!(error = %err, "password verification could not run");
                false
            }
        }
    }

    /// Checks a user's own switches and builds their principal.
    async fn user_checks(
        &self,
        user: &UserRecord,
        protocol: Protocol,
        client: &ClientInfo,
    ) -> Result<Checked, DirectoryError> {
        if let Err(denial) = refusal(user, protocol, client) {
            return Ok(Err(denial));
        }
        let grants = self.directory.grants_of(user.id).await?;
        Ok(Ok(Principal {
            user: Some(UserIdentity {
                id: user.id,
                username: user.username.clone(),
                revision: user.revision,
            }),
            key: None,
            site_admin: user.site_admin,
            grants: grants.iter().filter_map(|g| g.to_grant()).collect(),
            protocol,
            client: client.clone(),
        }))
    }

    /// Spends the time a real check would, when there is nothing to check.
    async fn burn(&self, proof: Proof<'_>) {
        if let Proof::Password(password) = proof {
            let _ = self.passwords.verify(password, None).await;
        }
    }

    fn audit_login(
        &self,
        login: &str,
        protocol: Protocol,
        client: &ClientInfo,
        outcome: Outcome,
        reason: &str,
    ) {
        let mut anonymous = Principal::cli();
        anonymous.site_admin = false;
        anonymous.protocol = protocol;
        anonymous.client = client.clone();
        let shown: String = login
            .chars()
            .take(MAX_LOGIN_CHARS)
            .filter(|c| !c.is_control())
            .collect();
        self.audit.record(
            AuditEvent::by(&anonymous, Action::Login, outcome)
                .path(shown)
                .reason(reason),
        );
    }

    /// Writes `last_use_at` / `last_login_at`, at most once per interval per process (and
    /// per the store's conditional update across replicas).
    async fn touch(&self, principal: &Principal) {
        let at = now();
        let due = |key: (bool, i64), interval: i64| {
            let mut touched = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let last = touched.get(&key).copied().unwrap_or(i64::MIN);
            if at.saturating_sub(last) >= interval {
                touched.insert(key, at);
                true
            } else {
                false
            }
        };
        let result = if let Some(key) = &principal.key {
            if due((true, key.id), KEY_TOUCH_INTERVAL) {
                self.directory
                    .touch_key(key.id, at, KEY_TOUCH_INTERVAL)
                    .await
            } else {
                Ok(())
            }
        } else if let Some(user) = &principal.user {
            if due((false, user.id), USER_TOUCH_INTERVAL) {
                self.directory.touch_user_login(user.id, at).await
            } else {
                Ok(())
            }
        } else {
            Ok(())
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not record last use");
        }
    }
}

/// Why `user` may not sign in over `protocol` from `client`, if they may not.
fn refusal(user: &UserRecord, protocol: Protocol, client: &ClientInfo) -> Result<(), Denial> {
    if user.disabled {
        return Err(Denial("user disabled"));
    }
    if !user.allows_protocol(protocol) {
        return Err(Denial("protocol disabled for user"));
    }
    if !user.allows_ip(client.ip) {
        return Err(Denial("address not in allowed_ips"));
    }
    Ok(())
}

/// The login that failures of `raw` count under: `@api-<id>` for a key by id (leading zeros
/// and the prefix's case do not matter), `@api-<name>` lower-cased for a key by name (the
/// caller replaces it with `@api-<id>` once the name is found), a username lower-cased (as
/// the store looks it up), and anything malformed lower-cased and cut to the longest login.
pub fn counted_login(raw: &str, parsed: &Result<LoginName, MalformedLogin>) -> String {
    match parsed {
        Ok(LoginName::KeyId(id)) => key_login(*id),
        Ok(LoginName::KeyName(name)) => format!("@api-{}", name.to_lowercase()),
        Ok(LoginName::User(name)) => name.to_lowercase(),
        Err(MalformedLogin) => raw
            .chars()
            .take(MAX_LOGIN_CHARS)
            .collect::<String>()
            .to_lowercase(),
    }
}

fn key_login(id: i64) -> String {
    format!("@api-{id}")
}

/// How often a banned client's refusals are written to the audit log, per (address, login).
pub const BAN_NOTE_INTERVAL: Duration = Duration::from_secs(60);

/// When each banned (address, login) was last written to the audit log.
struct BanNotes {
    last: Mutex<HashMap<(Option<IpAddr>, String), Instant>>,
}

impl BanNotes {
    /// Most (address, login) pairs remembered; beyond, stale ones are swept, then all.
    const CAPACITY: usize = 10_000;

    fn new() -> BanNotes {
        BanNotes {
            last: Mutex::default(),
        }
    }

    /// True (and remembered) when no refusal of this pair was recorded in the interval.
    fn first_in_interval(&self, ip: Option<IpAddr>, login: &str) -> bool {
        let now = Instant::now();
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        let key = (ip, login.to_owned());
        if last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < BAN_NOTE_INTERVAL)
        {
            return false;
        }
        if last.len() >= Self::CAPACITY {
            last.retain(|_, at| now.duration_since(*at) < BAN_NOTE_INTERVAL);
            if last.len() >= Self::CAPACITY {
                last.clear();
            }
        }
        last.insert(key, now);
        true
    }
}

fn owner_reason(reason: &'static str) -> &'static str {
    match reason {
        "user disabled" => "key owner disabled",
        "protocol disabled for user" => "protocol disabled for key owner",
        "address not in allowed_ips" => "address not in key owner's allowed_ips",
        other => other,
    }
}

/// `type base64` of an OpenSSH public key line, without its comment.
pub fn canonical_public_key(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
