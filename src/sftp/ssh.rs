//! The SSH side of a connection: authentication through the one authenticator, and a
//! session channel that offers only the `sftp` subsystem.
//!
//! Every request russh lets us refuse is refused by default (password and public key are
//! the only methods; shells, commands, forwarding and agents get a clear "no"). After
//! login a watcher re-checks the principal every few seconds and disconnects the client
//! when its key is revoked or its user disabled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use tokio::sync::oneshot;

use super::session::{self, SessionLimits};
use super::{Context, LoginSlot};
use crate::auth::{AuthError, LoginName, Proof};
use crate::identity::{ClientInfo, Principal, Protocol};

/// Per-connection state.
pub struct Connection {
    ctx: Arc<Context>,
    peer: Option<SocketAddr>,
    state: State,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

enum State {
    Unauthenticated,
    Authenticated {
        principal: Arc<Principal>,
        _slot: LoginSlot,
        /// Dropped with the connection: stops the revocation watcher.
        watch: Option<oneshot::Sender<()>>,
    },
}

const ONLY_SFTP: &str =
    "filegate: this server offers SFTP only (no shell, commands or forwarding)\r\n";

impl Connection {
    pub fn new(ctx: Arc<Context>, peer: Option<SocketAddr>) -> Connection {
        Connection {
            ctx,
            peer,
            state: State::Unauthenticated,
            channels: HashMap::new(),
        }
    }

    fn client(&self) -> ClientInfo {
        ClientInfo::new(self.peer.map(|p| p.ip()))
    }

    async fn sign_in(&mut self, user: &str, proof: Proof<'_>) -> Auth {
        match self
            .ctx
            .auth
            .login(user, proof, Protocol::Sftp, self.client())
            .await
        {
            Ok(principal) => match self.ctx.claim_login_slot(&principal) {
                Some(slot) => {
                    self.state = State::Authenticated {
                        principal: Arc::new(principal),
                        _slot: slot,
                        watch: None,
                    };
                    Auth::Accept
                }
                None => {
                    tracing::info!(user = %principal.display_name(), "sftp session limit reached for this login");
                    Auth::reject()
                }
            },
            Err(AuthError::Refused | AuthError::LockedOut | AuthError::Unavailable) => {
                Auth::reject()
            }
        }
    }

    fn principal(&self) -> Option<Arc<Principal>> {
        match &self.state {
            State::Authenticated { principal, .. } => Some(principal.clone()),
            State::Unauthenticated => None,
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

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
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

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let State::Authenticated {
            principal, watch, ..
        } = &mut self.state
        {
            let (stop, stopped) = oneshot::channel();
            *watch = Some(stop);
            tokio::spawn(watch_revocation(
                self.ctx.clone(),
                principal.clone(),
                session.handle(),
                stopped,
            ));
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.principal().is_some() && self.channels.len() < 8 {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
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
        let Some(open) = self.channels.remove(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let files = self.ctx.files.clone();
        let limits = SessionLimits {
            max_packet: self.ctx.config.max_packet_bytes,
            max_handles: self.ctx.config.max_handles_per_session,
        };
        tokio::spawn(async move {
            let (mut read_half, write_half) = open.split();
            session::serve(
                read_half.make_reader(),
                write_half.make_writer(),
                files,
                principal,
                limits,
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

/// Disconnects the client once its principal may no longer act.
async fn watch_revocation(
    ctx: Arc<Context>,
    principal: Arc<Principal>,
    handle: russh::server::Handle,
    mut stopped: oneshot::Receiver<()>,
) {
    let every = Duration::from_secs(ctx.config.revocation_check_seconds);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(every) => {}
        }
        match ctx.auth.still_valid(&principal).await {
            Ok(true) | Err(_) => continue,
            Ok(false) => {
                tracing::info!(user = %principal.display_name(), key_id = principal.key.as_ref().map(|k| k.id), "ending SFTP session: access revoked");
                let _ = handle
                    .disconnect(
                        Disconnect::ByApplication,
                        "access revoked".into(),
                        "en".into(),
                    )
                    .await;
                return;
            }
        }
    }
}
