//! The SSH side of a connection: authentication through the one authenticator, and a
//! session channel that offers only the `sftp` subsystem.
//!
//! Every request russh lets us refuse is refused by default (password and public key are
//! the only first methods; keyboard-interactive only asks a TOTP user's code after a
//! partial success; shells, commands, forwarding and agents get a clear "no"). Channels
//! are capped per connection (`sftp.max_channels_per_connection`): more are refused. After
//! login the connection is registered in the session registry (`crate::sessions`), whose
//! one watcher per replica ends it (every session, handle and pending reply of it) when its
//! key, user or grants no longer allow it, or when an administrator ends it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::OwnedSemaphorePermit;

use super::conn::{Phase, Shared};
use super::session::{self, SessionLimits};
use super::{Context, LoginSlot};
use crate::auth::{AuthError, LoginName, PendingCode, Proof, SecondFactor, SignIn};
use crate::identity::{ClientInfo, Principal, Protocol};
use crate::sessions::Registration;

/// Per-connection state.
pub struct Connection {
    ctx: Arc<Context>,
    peer: Option<SocketAddr>,
    state: State,
    /// Open session channels not yet serving SFTP, each with its slot of the channel cap
    /// (an SFTP session takes its slot along and gives it back when it ends).
    channels: HashMap<ChannelId, (Channel<Msg>, OwnedSemaphorePermit)>,
    /// Channel opens refused for the cap (logged once per connection, not per attempt).
    refused_channels: u64,
    shared: Arc<Shared>,
}

enum State {
    Unauthenticated,
    /// The first factor was right; keyboard-interactive asks for the TOTP code.
    AwaitingCode(PendingCode),
    Authenticated {
        principal: Arc<Principal>,
        _slot: LoginSlot,
        /// In the session registry while signed in (listing, ending, revocation).
        _registration: Registration,
    },
}

const ONLY_SFTP: &str =
    "filegate: this server offers SFTP only (no shell, commands or forwarding)\r\n";

impl Connection {
    pub fn new(ctx: Arc<Context>, peer: Option<SocketAddr>, shared: Arc<Shared>) -> Connection {
        Connection {
            ctx,
            peer,
            state: State::Unauthenticated,
            channels: HashMap::new(),
            refused_channels: 0,
            shared,
        }
    }

    fn client(&self) -> ClientInfo {
        ClientInfo::new(self.peer.map(|p| p.ip()))
    }

    async fn sign_in(&mut self, user: &str, proof: Proof<'_>) -> Auth {
        self.shared.reached(Phase::Login);
        let signed = self
            .ctx
            .auth
            .sign_in(
                user,
                proof,
                SecondFactor::Later,
                Protocol::Sftp,
                self.client(),
            )
            .await;
        match signed {
            Ok(SignIn::Done(principal)) => self.admit(principal),
            Ok(SignIn::CodeNeeded(pending)) => {
                // Partial success: the client goes on with keyboard-interactive, which asks
                // for the code (OpenSSH prompts "Verification code:").
                self.state = State::AwaitingCode(pending);
                Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(
                        &[MethodKind::KeyboardInteractive][..],
                    )),
                    partial_success: true,
                }
            }
            Err(AuthError::Refused | AuthError::LockedOut | AuthError::Unavailable) => {
                Auth::reject()
            }
        }
    }

    /// The second round of a user with TOTP: the code from keyboard-interactive.
    async fn finish_sign_in(&mut self, code: &str) -> Auth {
        let State::AwaitingCode(pending) = &self.state else {
            return Auth::reject();
        };
        match self.ctx.auth.finish_sign_in(pending, code).await {
            Ok(principal) => self.admit(principal),
            Err(AuthError::Refused) => Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
                partial_success: false,
            },
            Err(AuthError::LockedOut | AuthError::Unavailable) => {
                self.state = State::Unauthenticated;
                Auth::reject()
            }
        }
    }

    fn admit(&mut self, principal: Principal) -> Auth {
        let Some(slot) = self.ctx.claim_login_slot(&principal) else {
            tracing::info!(user = %principal.display_name(), "sftp session limit reached for this login");
            return Auth::reject();
        };
        let principal = Arc::new(principal);
        let shared = self.shared.clone();
        let registration = self.ctx.registry.register(
            principal.clone(),
            self.peer.map(|p| p.ip()),
            self.shared.bytes.clone(),
            Box::new(move |reason| shared.end(reason)),
        );
        self.state = State::Authenticated {
            principal,
            _slot: slot,
            _registration: registration,
        };
        Auth::Accept
    }

    fn principal(&self) -> Option<Arc<Principal>> {
        match &self.state {
            State::Authenticated { principal, .. } => Some(principal.clone()),
            State::Unauthenticated | State::AwaitingCode(_) => None,
        }
    }

    async fn refuse(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        // Accept the request so the client shows our message, then end with status 1.
        session.channel_success(channel)?;
        session.extended_data(channel, 1, bytes::Bytes::from_static(ONLY_SFTP.as_bytes()))?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        self.channels.remove(&channel);
        Ok(())
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.shared.reached(Phase::Login);
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::Password);
        methods.push(MethodKind::PublicKey);
        Ok(Auth::Reject {
            proceed_with_methods: Some(methods),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.sign_in(user, Proof::Password(password)).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.shared.reached(Phase::Login);
        let awaiting = matches!(&self.state, State::AwaitingCode(p) if p.login() == user);
        if !awaiting {
            return Ok(Auth::reject());
        }
        let Some(mut response) = response else {
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed("Two-factor sign-in"),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Verification code: "), false)]),
            });
        };
        let answer = response.next().unwrap_or_default();
        let code = std::str::from_utf8(&answer).unwrap_or("");
        Ok(self.finish_sign_in(code).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.shared.reached(Phase::Login);
        // API keys sign in with their secret only; let such clients move on to a password.
        Ok(match LoginName::parse(user) {
            Ok(LoginName::User(_)) => Auth::Accept,
            _ => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Ok(line) = key.public_key.to_openssh() else {
            return Ok(Auth::reject());
        };
        Ok(self.sign_in(user, Proof::PublicKey(&line)).await)
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let State::Authenticated { .. } = &self.state {
            self.shared.reached(Phase::SignedIn);
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(principal) = self.principal() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match self.shared.channels.clone().try_acquire_owned() {
            Ok(slot) => {
                self.channels.insert(channel.id(), (channel, slot));
                reply.accept().await;
            }
            Err(_) => {
                self.refused_channels += 1;
                if self.refused_channels == 1 {
                    tracing::info!(user = %principal.display_name(), client.ip = ?self.peer.map(|p| p.ip()), "sftp channel refused: too many on this connection");
                }
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
            }
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(principal), true) = (self.principal(), name == "sftp") else {
            return self.refuse(channel, session).await;
        };
        let Some((open, slot)) = self.channels.remove(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let files = self.ctx.files.clone();
        let limits = SessionLimits {
            max_packet: self.ctx.config.max_packet_bytes,
            max_handles: self.ctx.config.max_handles_per_connection,
            setstat_mode: self.ctx.config.setstat_mode,
        };
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let _slot = slot;
            let (mut read_half, write_half) = open.split();
            session::serve(
                read_half.make_reader(),
                write_half.make_writer(),
                files,
                principal,
                limits,
                shared,
            )
            .await;
            // scp (SFTP mode) treats a channel closed without an exit status as a failure.
            tracing::debug!("sftp session ended; closing its channel");
            let _ = write_half.exit_status(0).await;
            let _ = write_half.eof().await;
            let _ = write_half.close().await;
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, session).await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, session).await
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels serving SFTP are closed by their session task (with an exit status).
        if self.channels.remove(&channel).is_some() {
            session.close(channel)?;
        }
        Ok(())
    }
}
