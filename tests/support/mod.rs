//! `TestGateway`: a whole filegate on 127.0.0.1 with free ports, a temporary data folder and
//! a SQLite store, plus helpers to create users, grants and keys.

#![allow(dead_code)]

pub mod net;
pub mod serve_process;
pub mod sftp_client;
pub mod slapd;
pub mod tcp_proxy;

use std::net::SocketAddr;
use std::path::PathBuf;

use filegate::accounts::{KeyOwner, KeySpec, UserSpec};
use filegate::config::Config;
use filegate::gateway::{Core, Gateway};
use filegate::identity::{GrantLevel, PermissionSet, Principal};
use filegate::test_support::TempDir;

pub struct TestGateway {
    pub gateway: Gateway,
    pub dir: TempDir,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    /// Starts with a config adjusted by `tune` (after test defaults are applied).
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestGateway {
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
        tune(&mut config);
        config.fill_defaults();
        config.validate().expect("valid test config");
        let core = Core::open(config).await.expect("open core");
        let gateway = Gateway::start(core).await.expect("start gateway");
        TestGateway { gateway, dir }
    }

    pub fn addr(&self, protocol: &str) -> SocketAddr {
        self.gateway
            .addr(protocol)
            .unwrap_or_else(|| panic!("{protocol} is not running"))
    }

    /// The storage folder served as `/`.
    pub fn root(&self) -> PathBuf {
        self.gateway.core.config.server.storage_dir.clone()
    }

    /// Writes a file into storage directly (test setup).
    pub fn put(&self, rel: &str, content: &[u8]) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.root().join(rel)).unwrap();
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
            self.mkdir(path.trim_start_matches('/'));
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
