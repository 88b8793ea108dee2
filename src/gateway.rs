//! The one place that wires concrete types together: store, audit log, authenticator, file
//! layer, account service, and (as they are built) the protocol listeners.
//!
//! [`Core::open`] builds everything from a validated [`Config`] without binding a port;
//! [`Gateway::start`] binds the listeners that exist and returns their addresses, so tests
//! can ask for port 0 and learn what they got. [`Gateway::stop`] drains every front-end
//! (grace time, then abort), stops the session registry, then flushes the audit log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::accounts::{AccountError, Accounts, UserSpec};
use crate::api::{ApiBindError, ApiServer, ApiState};
use crate::audit::{AuditLog, AuditSettings, AuditSink};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::files::{Files, StorageRole, open_storage};
use crate::ftp::{FtpError, FtpServer};
use crate::identity::Principal;
use crate::metrics::{MeteredSink, Metrics};
use crate::serve::Tasks;
use crate::sessions::Registry;
use crate::sftp::{SftpError, SftpServer};
use crate::store::{Store, StoreError};
use crate::webdav::{WebDavError, WebDavServer};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot create data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    AuditJournal(#[from] crate::audit::JournalOpenError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] crate::files::OpenStorageError),
    #[error(transparent)]
    TotpKey(#[from] crate::auth::totp::TotpKeyError),
    #[error("cannot create the first admin: {0}")]
    Bootstrap(#[from] AccountError),
    #[error(transparent)]
    Sftp(#[from] SftpError),
    #[error(transparent)]
    Ftp(#[from] FtpError),
    #[error(transparent)]
    WebDav(#[from] WebDavError),
    #[error(transparent)]
    Api(#[from] ApiBindError),
    #[error("cannot set up LDAP: {0}")]
    Ldap(#[from] crate::auth::ldap::LdapError),
    #[error("webhooks: {0}")]
    Webhooks(String),
}

/// The shared services every front-end uses.
pub struct Core {
    pub config: Config,
    pub store: Store,
    pub audit: Arc<AuditLog>,
    pub auth: Arc<Authenticator>,
    pub files: Arc<Files>,
    pub accounts: Accounts,
    /// Every layer's audit sink (counts metrics, then queues for the audit log).
    pub sink: Arc<dyn AuditSink>,
    pub metrics: Arc<Metrics>,
    /// Connection caps shared by every listener.
    pub gate: Arc<crate::limits::ConnectionGate>,
    /// Live sessions of every protocol on this replica (listing, ending, revocation).
    pub sessions: Arc<Registry>,
    /// Brings in failed-login counters and bans from other replicas (see `sync_lockout`).
    lockout_sync: tokio::task::JoinHandle<()>,
    /// The periodic directory check of LDAP users, when LDAP is configured.
    ldap_check: Option<tokio::task::JoinHandle<()>>,
    /// The staging folders this process claimed (serving; none for an admin command).
    _staging: Vec<crate::files::staging::StagingClaim>,
    /// An admin command's own journal folder (see `open_as`).
    admin_journal: Option<std::path::PathBuf>,
}

impl Core {
    /// Creates the data folder, opens (and migrates) the store and the storage, and starts
    /// the audit writer, to serve: the storage's staging folders are claimed (a second
    /// process serving with the same data folder is refused) and cleared of what a crash
    /// left. Binds nothing.
    pub async fn open(config: Config) -> Result<Core, GatewayError> {
        Core::open_as(config, StorageRole::Serve).await
    }

    /// As [`Core::open`], for an admin command that may run beside a serving process: no
    /// staging folder is claimed or cleared, no background sweep of the storage starts.
    pub async fn open_admin(config: Config) -> Result<Core, GatewayError> {
        Core::open_as(config, StorageRole::Admin).await
    }

    async fn open_as(config: Config, role: StorageRole) -> Result<Core, GatewayError> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| GatewayError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let store = Store::connect(&config.server.database_url).await?;
        let opened = open_storage(&config, role).await?;
        // The journal folder is the serving process's: it replays and deletes segments
        // there, its own open one included. An admin command beside it journals into a
        // folder of its own (removed at close when empty; else adopted by the next start).
        let journal_root = data_dir.join("audit-journal");
        let journal_dir = match role {
            StorageRole::Serve => {
                match crate::audit::journal::adopt_admin_segments(&journal_root) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        segments = n,
                        "adopted audit journal segments left by admin commands"
                    ),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot adopt the audit journal segments of admin commands; they stay where they are")
                    }
                }
                journal_root
            }
            StorageRole::Admin => journal_root.join(format!(
                "{}{}-{}",
                crate::audit::journal::ADMIN_PREFIX,
                std::process::id(),
                crate::secret::random_hex(4)
            )),
        };
        let audit = AuditLog::start(
            Arc::new(store.clone()),
            AuditSettings {
                node: config.server.node_name.clone(),
                queue: config.audit.queue,
                batch: config.audit.batch,
                // Each replica has its own data folder, so its own journal.
                journal_dir: journal_dir.clone(),
                store_timeout: config.audit.store_timeout(),
                durable_wait: config.audit.durable_wait(),
            },
        )?;
        let metrics = Arc::new(Metrics::default());
        let sink: Arc<dyn AuditSink> = Arc::new(MeteredSink {
            metrics: metrics.clone(),
            log: audit.clone(),
        });
        let sealer = Arc::new(crate::auth::totp::Sealer::configured_or_file(
            &config.auth.totp_key,
            &config.auth.totp_key_file,
        )?);
        let mut auth = Authenticator::new(
            Arc::new(store.clone()),
            sink.clone(),
            config.auth_settings(),
        )
        .with_lockout_ledger(Arc::new(store.clone()))
        .with_two_factor(crate::auth::TwoFactor {
            sealer: sealer.clone(),
            policy: config.auth.require_2fa,
        });
        let mut ldap_check = None;
        if let Some(settings) = config.auth.ldap.settings() {
            let ldap = Arc::new(crate::auth::ldap::Ldap::new(
                settings,
                Arc::new(store.clone()),
            )?);
            ldap_check = Some(tokio::spawn(crate::auth::ldap::run_checks(ldap.clone())));
            auth = auth.with_ldap(ldap);
        }
        let auth = Arc::new(auth);
        let lockout_sync = tokio::spawn(sync_lockout(auth.lockout()));
        let limits = crate::limits::Limits::from_config(&config.limits);
        let files = Arc::new(
            Files::new(opened.storage, sink.clone(), limits.max_open_files)
                .with_open_files_per_owner(limits.max_open_files_per_user)
                .with_props(Arc::new(store.clone())),
        );
        let accounts = Accounts::new(store.clone(), auth.passwords().clone(), sink.clone())
            .with_folders(files.clone())
            .with_totp(sealer);
        let gate = crate::limits::ConnectionGate::new(limits);
        let sessions = Registry::new(
            store.clone(),
            auth.clone(),
            &config.server.node_name,
            Duration::from_secs(config.server.session_heartbeat_seconds.max(1)),
        );
        Ok(Core {
            sessions,
            gate,
            config,
            store,
            audit,
            auth,
            files,
            accounts,
            sink,
            metrics,
            lockout_sync,
            ldap_check,
            _staging: opened.claims,
            admin_journal: (role == StorageRole::Admin).then_some(journal_dir),
        })
    }

    /// On a store without users, creates `admin` with a random password and returns it
    /// (to be shown once). Returns `None` when users exist.
    pub async fn bootstrap_admin(&self) -> Result<Option<(String, String)>, GatewayError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let password = crate::secret::random_hex(12);
        let spec = UserSpec {
            username: "admin".into(),
            password: Some(password.clone()),
            site_admin: true,
            ..Default::default()
        };
        let admin = self.accounts.create_user(&Principal::cli(), spec).await?;
        self.accounts
            .grant(
                &Principal::cli(),
                admin.id,
                "/",
                crate::identity::GrantLevel::Full,
            )
            .await?;
        Ok(Some(("admin".into(), password)))
    }

    /// Closes the audit log (within `audit.shutdown_grace_ms`; what the store does not take
    /// stays in the local journal) and the store.
    pub async fn close(&self) {
        self.lockout_sync.abort();
        if let Some(check) = &self.ldap_check {
            check.abort();
        }
        self.audit
            .shutdown(self.config.audit.shutdown_grace())
            .await;
        self.store.close().await;
        if let Some(dir) = &self.admin_journal {
            if crate::audit::journal::holds_no_segment(dir) {
                let _ = std::fs::remove_dir_all(dir);
            } else {
                tracing::warn!(journal = %dir.display(), "audit records the store did not take are kept here; the next start of serve writes them");
            }
        }
    }
}

/// How often a replica reads the failed-login counters other replicas changed: a ban made
/// on one replica holds on all of them within this.
const LOCKOUT_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often stale counters are dropped from the store.
const LOCKOUT_SWEEP_EVERY: u32 = 300;

async fn sync_lockout(lockout: Arc<crate::auth::Lockout>) {
    let mut failing = false;
    for round in 1u32.. {
        tokio::time::sleep(LOCKOUT_SYNC_EVERY).await;
        let result = match round % LOCKOUT_SWEEP_EVERY {
            0 => lockout.forget_stale().await,
            _ => lockout.sync().await,
        };
        match (result, failing) {
            (Err(err), false) => {
                tracing::warn!(error = %err, "cannot read failed-login counters of other replicas; counting locally until the store is back");
                failing = true;
            }
            (Ok(()), true) => {
                tracing::info!("failed-login counters are shared again");
                failing = false;
            }
            _ => {}
        }
    }
}

/// A running server.
pub struct Gateway {
    pub core: Arc<Core>,
    /// `(protocol, bound address)` of every listener started.
    pub listening: Vec<(&'static str, SocketAddr)>,
    /// Every accept loop and connection task of every front-end.
    tasks: Tasks,
    /// The session registry's heartbeat and revocation watcher, stopped after the front-ends.
    registry_stop: CancellationToken,
    registry_task: tokio::task::JoinHandle<()>,
    /// The webhook delivery worker (when `webhooks.enabled`), stopped with the registry.
    webhooks: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// How this replica sends webhooks (the worker's, and the API's test call).
    webhook_sender: Option<Arc<crate::webhooks::send::Sender>>,
}

impl Gateway {
    /// Starts every enabled front-end that filegate has, each on the one serve loop with the
    /// same [`Tasks`]. If one cannot start (e.g. its port is taken), those already started are
    /// stopped, the core is closed and the error returned. Front-ends not built yet are not
    /// started (and never faked).
    pub async fn start(core: Core) -> Result<Gateway, GatewayError> {
        let core = Arc::new(core);
        let tasks = Tasks::new();
        let registry_stop = CancellationToken::new();
        let registry_task = tokio::spawn(core.sessions.clone().run(registry_stop.clone()));
        let mut gateway = Gateway {
            core,
            listening: Vec::new(),
            tasks,
            registry_stop,
            registry_task,
            webhooks: None,
            webhook_sender: None,
        };
        let started = match gateway.start_webhooks() {
            Ok(()) => gateway.start_front_ends().await,
            Err(err) => Err(err),
        };
        match started {
            Ok(()) => Ok(gateway),
            Err(err) => {
                tracing::error!(error = %err, "a front-end could not start; stopping the others");
                gateway.stop().await;
                Err(err)
            }
        }
    }

    /// Starts this replica's webhook delivery worker.
    fn start_webhooks(&mut self) -> Result<(), GatewayError> {
        let config = &self.core.config.webhooks;
        if !config.enabled {
            return Ok(());
        }
        let ca_file = (!config.ca_file.as_os_str().is_empty()).then_some(config.ca_file.as_path());
        let sender = crate::webhooks::send::Sender::new(
            crate::webhooks::guard::Allow(config.allow_private.clone()),
            config.timeout(),
            ca_file,
        )
        .map_err(GatewayError::Webhooks)?;
        self.webhook_sender = Some(Arc::new(sender.clone()));
        let worker = crate::webhooks::worker::Worker::new(
            self.core.store.clone(),
            &self.core.config.server.node_name,
            sender,
            config.clone(),
            self.core.metrics.clone(),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        self.webhooks = Some((stop, task));
        Ok(())
    }

    async fn start_front_ends(&mut self) -> Result<(), GatewayError> {
        let core = self.core.clone();
        let tasks = &self.tasks;
        if core.config.sftp.enabled {
            let server = SftpServer::start(
                core.config.sftp.clone(),
                core.auth.clone(),
                core.files.clone(),
                core.metrics.clone(),
                core.gate.clone(),
                core.sessions.clone(),
                tasks.clone(),
            )
            .await?;
            self.listening.push(("sftp", server.addr));
        }
        if core.config.ftp.enabled {
            let server = FtpServer::start(
                core.config.ftp.clone(),
                &core.config.server.data_dir,
                core.auth.clone(),
                core.files.clone(),
                core.gate.clone(),
                core.sessions.clone(),
                tasks.clone(),
            )
            .await?;
            self.listening.push(("ftp", server.addr));
            if let Some(addr) = server.implicit_addr {
                self.listening.push(("ftps-implicit", addr));
            }
        }
        if core.config.webdav.enabled {
            let server = WebDavServer::start(
                core.config.webdav.clone(),
                core.auth.clone(),
                core.files.clone(),
                Arc::new(core.store.clone()),
                core.gate.clone(),
                tasks.clone(),
                core.metrics.clone(),
            )
            .await?;
            self.listening.push(("webdav", server.addr));
        }
        if core.config.api.enabled {
            let cursor_key = core.store.shared_secret("api_cursor_key").await?;
            let mut state = ApiState::new(
                core.auth.clone(),
                core.accounts.clone(),
                core.store.clone(),
                core.sink.clone(),
                core.audit.clone(),
                core.metrics.clone(),
                &cursor_key,
            )
            .with_sessions(core.sessions.clone());
            if let Some(sender) = &self.webhook_sender {
                state = state.with_webhooks(sender.clone());
            }
            let state = Arc::new(state);
            let web = core.config.api.console.then(|| {
                Arc::new(crate::web::WebState {
                    auth: core.auth.clone(),
                    accounts: core.accounts.clone(),
                    store: core.store.clone(),
                    files: core.files.clone(),
                    cursors: Arc::new(crate::api::Cursors::new(cursor_key.as_bytes())),
                    https: !core.config.api.tls_cert.as_os_str().is_empty(),
                    max_upload: core.config.api.max_upload_bytes,
                })
            });
            let server = ApiServer::start(
                &core.config.api,
                state,
                web,
                core.gate.clone(),
                tasks.clone(),
            )
            .await?;
            self.listening.push(("api", server.addr));
        }
        for (name, enabled, _) in core.config.listeners() {
            if enabled && !matches!(name, "sftp" | "api" | "ftp" | "webdav") {
                tracing::warn!(
                    protocol = name,
                    "{name} front-end is not built yet; not started"
                );
            }
        }
        Ok(())
    }

    /// The bound address of `protocol`, if it is running.
    pub fn addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.listening
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    /// Stops every front-end at once (no new connections; every connection told to end),
    /// waits up to `server.shutdown_grace_seconds` for their tasks, aborts what is left, then
    /// stops the session registry and, last, flushes the audit log and closes the store: no
    /// task that can write an audit record outlives the audit log.
    pub async fn stop(self) {
        let grace = Duration::from_secs(self.core.config.server.shutdown_grace_seconds);
        let drained = self.tasks.shutdown(grace).await;
        tracing::info!(aborted = drained.aborted, "front-ends stopped");
        self.registry_stop.cancel();
        let _ = self.registry_task.await;
        if let Some((stop, task)) = self.webhooks {
            stop.cancel();
            let _ = task.await;
        }
        self.core.close().await;
    }
}
