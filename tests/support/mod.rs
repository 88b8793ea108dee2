//! `TestGateway`: a whole filegate on 127.0.0.1 with free ports, a temporary data folder and
//! a SQLite store, plus helpers to create users, grants and keys, and to set up and check
//! files through the gateway's own storage seam ([`Stored`]).
//!
//! The storage is chosen by `FILEGATE_TEST_STORAGE`: `local` (the default: a folder under the
//! data folder) or `s3` (a fresh bucket on the test process's moto_server, see [`s3`]). Tests
//! about the local disk itself ask [`TestGateway::local_only`] and say loudly when skipped.

#![allow(dead_code)]

pub mod net;
pub mod s3;
pub mod serve_process;
pub mod sftp_client;
pub mod slapd;
pub mod stored;
pub mod tcp_proxy;

use std::net::SocketAddr;
use std::path::PathBuf;

use filegate::accounts::{KeyOwner, KeySpec, UserSpec};
use filegate::config::Config;
use filegate::gateway::{Core, Gateway};
use filegate::identity::{GrantLevel, PermissionSet, Principal};
use filegate::test_support::TempDir;
pub use s3::Backend;
pub use stored::Stored;

pub struct TestGateway {
    pub gateway: Gateway,
    pub dir: TempDir,
    /// The storage it serves (`FILEGATE_TEST_STORAGE`).
    pub backend: Backend,
    stored: Stored,
}

/// Installs rustls's ring provider for the process (once): reqwest is built with
/// Files staged under `dir` (an `uploads-in-progress` folder), in it and its subfolders,
/// but not the serving process's lock files; 0 when it does not exist.
pub fn staged_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                staged_files(&e.path())
            } else {
                usize::from(e.file_name() != filegate::files::staging::LOCK_FILE)
            }
        })
        .sum()
}

/// `rustls-no-provider` (the S3 backend's choice), so a test's `reqwest::Client` needs one.
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One storage for several in-process gateways (replicas): a folder, or a bucket on the
/// test process's moto_server under `FILEGATE_TEST_STORAGE=s3`.
pub struct SharedStorage {
    dir: TempDir,
    bucket: Option<String>,
}

impl SharedStorage {
    pub fn new() -> SharedStorage {
        let dir = TempDir::new("shared-files");
        let bucket = match Backend::from_env() {
            Backend::Local => None,
            Backend::S3 => Some(s3::require_moto().new_bucket("shared")),
        };
        SharedStorage { dir, bucket }
    }

    /// Points `config` at this storage (call it from `TestGateway::start_with`'s `tune`).
    pub fn apply(&self, config: &mut Config) {
        match &self.bucket {
            None => {
                config.server.storage_dir = self.dir.path().to_owned();
                config.storage.url = None;
            }
            Some(bucket) => s3::require_moto().configure(config, bucket),
        }
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    /// Starts with a config adjusted by `tune` (after test defaults are applied).
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestGateway {
        Self::start_on(Backend::from_env(), tune).await
    }

    /// Starts on `backend`, whatever `FILEGATE_TEST_STORAGE` says (S3: a fresh bucket on
    /// the process's moto_server; panics when there is none, so callers check first).
    pub async fn start_on(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestGateway {
        crypto();
        let dir = TempDir::new("gw");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        for listen in [
            &mut config.sftp.listen,
            &mut config.ftp.listen,
            &mut config.webdav.listen,
            &mut config.api.listen,
        ] {
            *listen = "127.0.0.1:0".parse().unwrap();
        }
        config.auth.lockout.max_failures_per_login = 1000;
        config.auth.lockout.max_failures_per_address = 10_000;
        config.auth.lockout.delay_step_ms = 0;
        config.sftp.revocation_check_seconds = 1;
        config.ftp.revocation_check_seconds = 1;
        config.ftp.passive_ports = "40000-40999".parse().unwrap();
        if backend == Backend::S3 {
            let moto = s3::require_moto();
            moto.configure(&mut config, &moto.new_bucket("gw"));
        }
        tune(&mut config);
        config.fill_defaults();
        config.validate().expect("valid test config");
        let core = Core::open(config).await.expect("open core");
        let gateway = Gateway::start(core).await.expect("start gateway");
        let stored = Stored::open(&gateway.core.config, dir.path().join("test-handle")).await;
        TestGateway {
            gateway,
            dir,
            backend,
            stored,
        }
    }

    pub fn addr(&self, protocol: &str) -> SocketAddr {
        self.gateway
            .addr(protocol)
            .unwrap_or_else(|| panic!("{protocol} is not running"))
    }

    /// The local folder served as `/`: only for tests about the local disk itself, which
    /// check [`TestGateway::local_only`] first.
    pub fn root(&self) -> PathBuf {
        assert_eq!(
            self.backend,
            Backend::Local,
            "root(): this test reads the local disk; guard it with local_only()"
        );
        self.gateway.core.config.server.storage_dir.clone()
    }

    /// Whether the gateway serves a local folder; when not, says loudly that `test` is
    /// skipped and why (a test about the disk itself: symlinks, sendfile, permissions).
    pub fn local_only(&self, test: &str, why: &str) -> bool {
        if self.backend != Backend::Local {
            eprintln!("SKIPPED on {:?}: {test}: {why}", self.backend);
            return false;
        }
        true
    }

    pub fn on_s3(&self) -> bool {
        self.backend == Backend::S3
    }

    /// The storage the gateway serves, through its own seam.
    pub fn stored(&self) -> Stored {
        self.stored.clone()
    }

    /// Writes a file into storage (test setup), making its folders.
    pub async fn write(&self, rel: &str, content: &[u8]) {
        self.stored.write(rel, content).await;
    }

    /// A file's bytes in storage; `None` when there is none.
    pub async fn read(&self, rel: &str) -> Option<Vec<u8>> {
        self.stored.read(rel).await
    }

    /// A file's text in storage; `None` when there is none.
    pub async fn read_string(&self, rel: &str) -> Option<String> {
        self.stored.read_string(rel).await
    }

    /// Whether a file or folder exists in storage.
    pub async fn exists(&self, rel: &str) -> bool {
        self.stored.exists(rel).await
    }

    /// Makes a folder (and its parents) in storage.
    pub async fn mkdir(&self, rel: &str) {
        self.stored.mkdir(rel).await;
    }

    /// Creates a user with a password and grants; returns the user id.
    pub async fn user(&self, name: &str, password: &str, grants: &[(&str, GrantLevel)]) -> i64 {
        let accounts = &self.gateway.core.accounts;
        let spec = UserSpec {
            username: name.into(),
            password: Some(password.into()),
            ..Default::default()
        };
        let user = accounts.create_user(&Principal::cli(), spec).await.unwrap();
        for (path, level) in grants {
            accounts
                .grant(&Principal::cli(), user.id, path, *level)
                .await
                .unwrap();
            self.mkdir(path.trim_start_matches('/')).await;
        }
        user.id
    }

    /// Creates a site admin with a password; returns the user id.
    pub async fn admin(&self, name: &str, password: &str) -> i64 {
        let spec = UserSpec {
            username: name.into(),
            password: Some(password.into()),
            site_admin: true,
            ..Default::default()
        };
        self.gateway
            .core
            .accounts
            .create_user(&Principal::cli(), spec)
            .await
            .unwrap()
            .id
    }

    /// Creates a key; returns (id, secret).
    pub async fn key(
        &self,
        owner: Option<i64>,
        name: &str,
        path: Option<&str>,
        set: PermissionSet,
    ) -> (i64, String) {
        self.key_expiring(owner, name, path, set, None).await
    }

    pub async fn key_expiring(
        &self,
        owner: Option<i64>,
        name: &str,
        path: Option<&str>,
        set: PermissionSet,
        expires_at: Option<i64>,
    ) -> (i64, String) {
        let spec = KeySpec {
            owner: owner.map(KeyOwner::User).unwrap_or(KeyOwner::SiteWide),
            name: name.into(),
            description: None,
            path: path.map(str::to_owned),
            permission_set: set,
            expires_at,
            platform: None,
            created_by: None,
        };
        let created = self
            .gateway
            .core
            .accounts
            .create_key(&Principal::cli(), spec)
            .await
            .unwrap();
        (created.record.id, created.secret)
    }

    pub async fn revoke(&self, key_id: i64) {
        self.gateway
            .core
            .accounts
            .revoke_key(&Principal::cli(), key_id)
            .await
            .unwrap();
    }

    /// Audit records written so far (flushes first by waiting for the writer).
    pub async fn audit(&self) -> Vec<filegate::audit::AuditRecord> {
        for _ in 0..50 {
            if self.gateway.core.audit.backlog() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let query = filegate::store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        };
        self.gateway.core.store.read_audit(&query).await.unwrap()
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
    }
}
