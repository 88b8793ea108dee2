//! The authenticator against a real store (SQLite, and PostgreSQL when configured).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::accounts::{Accounts, KeyOwner, KeySpec, UserSpec};
use crate::audit::{Action, Outcome};
use crate::identity::{GrantLevel, PermissionSet};
use crate::store::{Store, UserChanges};
use crate::test_support::{MemorySink, TestDb};

const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
const OTHER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));

struct Fixture {
    auth: Authenticator,
    accounts: Accounts,
    store: Store,
    audit: Arc<MemorySink>,
    alice: i64,
}

fn settings(max_failures: u32) -> AuthSettings {
    AuthSettings {
        lockout: LockoutPolicy {
            enabled: true,
            max_failures_per_login: max_failures,
            max_failures_per_address: 1000,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(60),
            delay_step: Duration::ZERO,
            max_delay: Duration::ZERO,
        },
        password_cache_ttl: Duration::from_secs(60),
        argon2_concurrency: 2,
    }
}

async fn fixture(store: Store, max_failures: u32) -> Fixture {
    let audit = Arc::new(MemorySink::default());
    let auth = Authenticator::new(
        Arc::new(store.clone()),
        audit.clone(),
        settings(max_failures),
    );
    let accounts = Accounts::new(store.clone(), auth.passwords().clone(), audit.clone());
    let cli = Principal::cli();
    let alice = accounts
        .create_user(
            &cli,
            UserSpec {
                username: "alice".into(),
                password: Some("alice-password".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    accounts
        .grant(&cli, alice.id, "/team", GrantLevel::Full)
        .await
        .unwrap();
    Fixture {
        auth,
        accounts,
        store,
        audit,
        alice: alice.id,
    }
}

impl Fixture {
    async fn key(
        &self,
        name: &str,
        owner: KeyOwner,
        set: PermissionSet,
        expires_at: Option<i64>,
    ) -> (i64, String) {
        let spec = KeySpec {
            owner,
            name: name.into(),
            description: None,
            path: None,
            permission_set: set,
            expires_at,
            platform: None,
            created_by: None,
        };
        let created = self
            .accounts
            .create_key(&Principal::cli(), spec)
            .await
            .unwrap();
        (created.record.id, created.secret)
    }

    async fn login(&self, login: &str, password: &str) -> Result<Principal, AuthError> {
        self.auth
            .login(
                login,
                Proof::Password(password),
                Protocol::Sftp,
                ClientInfo::new(HOME),
            )
            .await
    }

    fn last_reason(&self) -> String {
        let event = self
            .audit
            .events()
            .into_iter()
            .rev()
            .find(|e| e.action == Action::Login)
            .unwrap();
        event.reason.unwrap_or_default()
    }
}

async fn each_backend<F, Fut>(max_failures: u32, test: F)
where
    F: Fn(Fixture) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in TestDb::all().await {
        test(fixture(db.store.clone(), max_failures).await).await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_user_signs_in_with_the_right_password_and_gets_their_grants() {
    each_backend(100, |fx| async move {
        let p = fx.login("alice", "alice-password").await.unwrap();
        assert_eq!(p.user.as_ref().unwrap().id, fx.alice);
        assert!(p.key.is_none() && !p.site_admin);
        assert_eq!(p.grants.len(), 1);
        assert_eq!(
            fx.login("ALICE", "alice-password")
                .await
                .unwrap()
                .user
                .unwrap()
                .username,
            "alice"
        );
        let ok = fx
            .audit
            .events()
            .into_iter()
            .rfind(|e| e.action == Action::Login)
            .unwrap();
        assert_eq!((ok.outcome, ok.user_id), (Outcome::Ok, Some(fx.alice)));
    })
    .await;
}

#[tokio::test]
async fn every_failure_gives_the_same_refusal_and_logs_its_own_reason() {
    each_backend(100, |fx| async move {
        let (key_id, secret) = fx
            .key("ci", KeyOwner::User(fx.alice), PermissionSet::Full, None)
            .await;
        let cases: Vec<(String, String, &str)> = vec![
            ("alice".into(), "wrong-password".into(), "wrong password"),
            ("nobody".into(), "whatever-pw".into(), "unknown user"),
            (format!("@api-{key_id}"), "0".repeat(64), "wrong key secret"),
            ("@api-999999".into(), secret.clone(), "unknown key"),
            ("@api-no-such-name".into(), secret.clone(), "unknown key"),
            ("@weird".into(), "x".into(), "malformed login name"),
            ("".into(), "x".into(), "malformed login name"),
        ];
        for (login, password, reason) in cases {
            assert_eq!(
                fx.login(&login, &password).await.unwrap_err(),
                AuthError::Refused,
                "{login}"
            );
            assert_eq!(fx.last_reason(), reason, "{login}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_key_signs_in_by_id_and_by_name_as_its_owner() {
    each_backend(100, |fx| async move {
        let (id, secret) = fx
            .key(
                "Deploy Bot",
                KeyOwner::User(fx.alice),
                PermissionSet::FilesOnly,
                None,
            )
            .await;
        for login in [
            format!("@api-{id}"),
            "@api-Deploy Bot".into(),
            "@API-deploy bot".into(),
        ] {
            let p = fx.login(&login, &secret).await.unwrap();
            assert_eq!(p.user.as_ref().unwrap().id, fx.alice, "{login}");
            let key = p.key.unwrap();
            assert_eq!((key.id, key.permission_set), (id, PermissionSet::FilesOnly));
        }
        let record = fx.store.key_by_id(id).await.unwrap().unwrap();
        assert!(record.last_use_at.is_some());
        let ok = fx
            .audit
            .events()
            .into_iter()
            .rfind(|e| e.action == Action::Login)
            .unwrap();
        assert_eq!(
            (ok.user_id, ok.key_id),
            (Some(fx.alice), Some(id)),
            "logged as the key's owner"
        );
    })
    .await;
}

#[tokio::test]
async fn a_site_wide_key_is_an_admin_without_a_user() {
    each_backend(100, |fx| async move {
        let (id, secret) = fx
            .key("site", KeyOwner::SiteWide, PermissionSet::Full, None)
            .await;
        let p = fx.login(&format!("@api-{id}"), &secret).await.unwrap();
        assert!(p.site_admin && p.user.is_none());
        let via_header = fx
            .auth
            .api_key(&secret, ClientInfo::new(HOME))
            .await
            .unwrap();
        assert_eq!(via_header.key.unwrap().id, id);
        assert_eq!(
            fx.auth
                .api_key("not-hex!", ClientInfo::new(HOME))
                .await
                .unwrap_err(),
            AuthError::Refused
        );
    })
    .await;
}

#[tokio::test]
async fn expired_deleted_and_disabled_owner_keys_are_refused() {
    each_backend(100, |fx| async move {
        let (id, secret) = fx
            .key(
                "soon",
                KeyOwner::User(fx.alice),
                PermissionSet::Full,
                Some(crate::model::now() + 2),
            )
            .await;
        assert!(fx.login(&format!("@api-{id}"), &secret).await.is_ok());
        fx.store
            .update_key(
                id,
                &crate::store::KeyChanges {
                    expires_at: Some(Some(1)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            fx.login(&format!("@api-{id}"), &secret).await.unwrap_err(),
            AuthError::Refused
        );
        assert_eq!(fx.last_reason(), "key expired");

        let (id, secret) = fx
            .key("gone", KeyOwner::User(fx.alice), PermissionSet::Full, None)
            .await;
        let session = fx.login(&format!("@api-{id}"), &secret).await.unwrap();
        assert!(fx.auth.still_valid(&session).await.unwrap());
        fx.accounts.revoke_key(&Principal::cli(), id).await.unwrap();
        assert_eq!(
            fx.login(&format!("@api-{id}"), &secret).await.unwrap_err(),
            AuthError::Refused
        );
        assert!(!fx.auth.still_valid(&session).await.unwrap());

        let (id, secret) = fx
            .key(
                "owner-off",
                KeyOwner::User(fx.alice),
                PermissionSet::Full,
                None,
            )
            .await;
        let changes = UserChanges {
            disabled: Some(true),
            ..Default::default()
        };
        fx.accounts
            .update_user(&Principal::cli(), fx.alice, changes, None)
            .await
            .unwrap();
        assert_eq!(
            fx.login(&format!("@api-{id}"), &secret).await.unwrap_err(),
            AuthError::Refused
        );
        assert_eq!(fx.last_reason(), "key owner disabled");
        assert_eq!(
            fx.login("alice", "alice-password").await.unwrap_err(),
            AuthError::Refused
        );
        assert_eq!(fx.last_reason(), "user disabled");
    })
    .await;
}

#[tokio::test]
async fn a_cached_password_is_defeated_at_once_by_a_password_change() {
    each_backend(100, |fx| async move {
        fx.login("alice", "alice-password").await.unwrap();
        fx.login("alice", "alice-password").await.unwrap();
        fx.accounts
            .update_user(
                &Principal::cli(),
                fx.alice,
                UserChanges::default(),
                Some("new-password-1"),
            )
            .await
            .unwrap();
        assert_eq!(
            fx.login("alice", "alice-password").await.unwrap_err(),
            AuthError::Refused
        );
        fx.login("alice", "new-password-1").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn protocol_switches_and_allowed_ips_apply_to_users_and_their_keys() {
    each_backend(100, |fx| async move {
        let (id, secret) = fx
            .key("k", KeyOwner::User(fx.alice), PermissionSet::Full, None)
            .await;
        let changes = UserChanges {
            sftp_permission: Some(false),
            ..Default::default()
        };
        fx.accounts
            .update_user(&Principal::cli(), fx.alice, changes, None)
            .await
            .unwrap();
        assert_eq!(
            fx.login("alice", "alice-password").await.unwrap_err(),
            AuthError::Refused
        );
        assert_eq!(
            fx.login(&format!("@api-{id}"), &secret).await.unwrap_err(),
            AuthError::Refused
        );
        assert_eq!(fx.last_reason(), "protocol disabled for key owner");
        let ftp = fx
            .auth
            .login(
                "alice",
                Proof::Password("alice-password"),
                Protocol::Ftp,
                ClientInfo::new(HOME),
            )
            .await;
        assert!(ftp.is_ok());
        let changes = UserChanges {
            allowed_ips: Some("10.0.0.0/8".into()),
            ..Default::default()
        };
        fx.accounts
            .update_user(&Principal::cli(), fx.alice, changes, None)
            .await
            .unwrap();
        let from_home = fx
            .auth
            .login(
                "alice",
                Proof::Password("alice-password"),
                Protocol::Ftp,
                ClientInfo::new(HOME),
            )
            .await;
        assert_eq!(from_home.unwrap_err(), AuthError::Refused);
        let from_10 = fx
            .auth
            .login(
                "alice",
                Proof::Password("alice-password"),
                Protocol::Ftp,
                ClientInfo::new(OTHER),
            )
            .await;
        assert!(from_10.is_ok());
    })
    .await;
}

#[tokio::test]
async fn ssh_public_keys_sign_users_in_but_never_api_keys() {
    each_backend(100, |fx| async move {
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1";
        fx.accounts
            .add_public_key(
                &Principal::cli(),
                fx.alice,
                "laptop",
                &format!("{line} me@host"),
            )
            .await
            .unwrap();
        let client = || ClientInfo::new(HOME);
        assert!(
            fx.auth
                .login("alice", Proof::PublicKey(line), Protocol::Sftp, client())
                .await
                .is_ok()
        );
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOther";
        assert!(
            fx.auth
                .login("alice", Proof::PublicKey(other), Protocol::Sftp, client())
                .await
                .is_err()
        );
        let (id, _) = fx
            .key("k", KeyOwner::User(fx.alice), PermissionSet::Full, None)
            .await;
        let by_key = fx
            .auth
            .login(
                &format!("@api-{id}"),
                Proof::PublicKey(line),
                Protocol::Sftp,
                client(),
            )
            .await;
        assert_eq!(by_key.unwrap_err(), AuthError::Refused);
    })
    .await;
}

#[tokio::test]
async fn repeated_failures_lock_out_that_login_from_that_address_only() {
    each_backend(3, |fx| async move {
        for _ in 0..3 {
            assert_eq!(
                fx.login("alice", "bad-password").await.unwrap_err(),
                AuthError::Refused
            );
        }
        assert_eq!(
            fx.login("alice", "alice-password").await.unwrap_err(),
            AuthError::LockedOut
        );
        assert_eq!(fx.last_reason(), "locked out");
        let elsewhere = fx
            .auth
            .login(
                "alice",
                Proof::Password("alice-password"),
                Protocol::Sftp,
                ClientInfo::new(OTHER),
            )
            .await;
        assert!(elsewhere.is_ok(), "another address is not blocked");
    })
    .await;
}

#[tokio::test]
async fn a_closed_store_fails_closed() {
    let db = TestDb::sqlite().await;
    let fx = fixture(db.store.clone(), 100).await;
    fx.store.close().await;
    assert_eq!(
        fx.login("alice", "alice-password").await.unwrap_err(),
        AuthError::Unavailable
    );
}

async fn set_key(fx: &Fixture, id: i64, changes: crate::accounts::KeyUpdate) {
    fx.accounts
        .update_key(&Principal::cli(), id, changes)
        .await
        .unwrap();
}

async fn set_user(fx: &Fixture, changes: UserChanges, password: Option<&str>) {
    fx.accounts
        .update_user(&Principal::cli(), fx.alice, changes, password)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_live_key_session_ends_when_the_key_is_narrowed_but_not_when_it_is_renamed() {
    use crate::accounts::KeyUpdate;
    each_backend(100, |fx| async move {
        let (id, secret) = fx
            .key("k", KeyOwner::User(fx.alice), PermissionSet::Full, None)
            .await;
        let login = format!("@api-{id}");
        let session = fx.login(&login, &secret).await.unwrap();
        set_key(
            &fx,
            id,
            KeyUpdate {
                name: Some("renamed".into()),
                description: Some(Some("cosmetic".into())),
                ..Default::default()
            },
        )
        .await;
        assert!(fx.auth.still_valid(&session).await.unwrap(), "a new name");
        let narrowings = [
            KeyUpdate {
                permission_set: Some(PermissionSet::ReadOnly),
                ..Default::default()
            },
            KeyUpdate {
                path: Some(Some("team/sub".into())),
                ..Default::default()
            },
            KeyUpdate {
                expires_at: Some(Some(crate::model::now() + 3600)),
                ..Default::default()
            },
        ];
        for change in narrowings {
            let session = fx.login(&login, &secret).await.unwrap();
            assert!(fx.auth.still_valid(&session).await.unwrap());
            set_key(&fx, id, change.clone()).await;
            assert!(
                !fx.auth.still_valid(&session).await.unwrap(),
                "{change:?} ends a session signed in before"
            );
            let again = fx.login(&login, &secret).await.unwrap();
            assert!(fx.auth.still_valid(&again).await.unwrap(), "{change:?}");
        }
        let session = fx.login(&login, &secret).await.unwrap();
        fx.accounts
            .grant(&Principal::cli(), fx.alice, "/more", GrantLevel::ReadOnly)
            .await
            .unwrap();
        assert!(
            !fx.auth.still_valid(&session).await.unwrap(),
            "a change to the owner's grants reaches their key's sessions"
        );
    })
    .await;
}

#[tokio::test]
async fn a_live_user_session_ends_when_rights_or_credentials_change() {
    each_backend(100, |fx| async move {
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1";
        let ssh_key = fx
            .accounts
            .add_public_key(&Principal::cli(), fx.alice, "laptop", line)
            .await
            .unwrap();
        let by_password = || fx.login("alice", "alice-password");
        let by_ssh_key = || {
            fx.auth.login(
                "alice",
                Proof::PublicKey(line),
                Protocol::Sftp,
                ClientInfo::new(HOME),
            )
        };

        // Cosmetic changes leave sessions alone.
        let session = by_password().await.unwrap();
        let cosmetic = UserChanges {
            name: Some(Some("Alice A.".into())),
            email: Some(Some("alice@example.com".into())),
            ..Default::default()
        };
        set_user(&fx, cosmetic, None).await;
        assert!(fx.auth.still_valid(&session).await.unwrap());

        // A removed grant.
        let session = by_password().await.unwrap();
        let grant = fx.store.grants_of(fx.alice).await.unwrap()[0].id;
        fx.accounts
            .revoke_grant(&Principal::cli(), grant)
            .await
            .unwrap();
        assert!(!fx.auth.still_valid(&session).await.unwrap(), "grant gone");

        // Promoted, then demoted.
        let promote = UserChanges {
            site_admin: Some(true),
            ..Default::default()
        };
        set_user(&fx, promote, None).await;
        let admin_session = by_ssh_key().await.unwrap();
        assert!(admin_session.site_admin);
        let demote = UserChanges {
            site_admin: Some(false),
            ..Default::default()
        };
        set_user(&fx, demote, None).await;
        assert!(
            !fx.auth.still_valid(&admin_session).await.unwrap(),
            "demoted"
        );

        // A protocol switched off.
        let session = by_password().await.unwrap();
        let no_sftp = UserChanges {
            sftp_permission: Some(false),
            ..Default::default()
        };
        set_user(&fx, no_sftp, None).await;
        assert!(!fx.auth.still_valid(&session).await.unwrap(), "sftp off");
        let sftp_on = UserChanges {
            sftp_permission: Some(true),
            ..Default::default()
        };
        set_user(&fx, sftp_on, None).await;

        // A new password ends password and SSH-key sessions alike.
        let by_pw = by_password().await.unwrap();
        let by_key = by_ssh_key().await.unwrap();
        set_user(&fx, UserChanges::default(), Some("new-password-1")).await;
        assert!(
            !fx.auth.still_valid(&by_pw).await.unwrap(),
            "password login"
        );
        assert!(
            !fx.auth.still_valid(&by_key).await.unwrap(),
            "ssh-key login"
        );

        // A removed SSH key.
        let by_key = by_ssh_key().await.unwrap();
        assert!(fx.auth.still_valid(&by_key).await.unwrap());
        fx.store.delete_public_key(ssh_key.id, None).await.unwrap();
        assert!(!fx.auth.still_valid(&by_key).await.unwrap(), "ssh key gone");

        // Disabled, and deleted.
        let session = fx.login("alice", "new-password-1").await.unwrap();
        let off = UserChanges {
            disabled: Some(true),
            ..Default::default()
        };
        set_user(&fx, off, None).await;
        assert!(!fx.auth.still_valid(&session).await.unwrap(), "disabled");
        fx.accounts
            .delete_user(&Principal::cli(), fx.alice)
            .await
            .unwrap();
        assert!(!fx.auth.still_valid(&session).await.unwrap(), "deleted");
    })
    .await;
}

#[tokio::test]
async fn a_refused_user_costs_an_argon2_check_and_never_touches_the_password_cache() {
    each_backend(100, |fx| async move {
        // Only 127.0.0.1 may sign in as alice; the cache holds her password from there.
        let home_only = UserChanges {
            allowed_ips: Some("127.0.0.1".into()),
            ..Default::default()
        };
        set_user(&fx, home_only, None).await;
        fx.login("alice", "alice-password").await.unwrap();
        assert!(fx.auth.cache.holds(fx.alice));
        let before = fx.auth.passwords().verifications();
        fx.login("alice", "alice-password").await.unwrap();
        assert_eq!(
            fx.auth.passwords().verifications(),
            before,
            "an allowed user is answered from the cache"
        );
        // From another address the right password is refused after a real verification,
        // not a cache hit.
        let refused = fx
            .auth
            .login(
                "alice",
                Proof::Password("alice-password"),
                Protocol::Sftp,
                ClientInfo::new(OTHER),
            )
            .await;
        assert_eq!(refused.unwrap_err(), AuthError::Refused);
        assert_eq!(fx.last_reason(), "address not in allowed_ips");
        assert_eq!(fx.auth.passwords().verifications(), before + 1);

        // A disabled user: the right password runs argon2 and is never cached.
        let off = UserChanges {
            disabled: Some(true),
            ..Default::default()
        };
        set_user(&fx, off, None).await;
        fx.auth.cache.forget(fx.alice);
        for _ in 0..2 {
            let before = fx.auth.passwords().verifications();
            assert_eq!(
                fx.login("alice", "alice-password").await.unwrap_err(),
                AuthError::Refused
            );
            assert_eq!(fx.last_reason(), "user disabled");
            assert_eq!(fx.auth.passwords().verifications(), before + 1);
            assert!(
                !fx.auth.cache.holds(fx.alice),
                "a refused user is not cached"
            );
        }
        // A wrong password costs the same one verification.
        let before = fx.auth.passwords().verifications();
        fx.login("alice", "wrong-password").await.unwrap_err();
        assert_eq!(fx.auth.passwords().verifications(), before + 1);
    })
    .await;
}

#[tokio::test]
async fn failures_count_under_one_login_whatever_spelling_names_the_key_or_user() {
    each_backend(3, |fx| async move {
        let (id, secret) = fx
            .key(
                "Build Key",
                KeyOwner::User(fx.alice),
                PermissionSet::Full,
                None,
            )
            .await;
        for spelling in [
            format!("@api-0{id}"),
            format!("@API-{id}"),
            "@api-build key".into(),
        ] {
            assert_eq!(
                fx.login(&spelling, "wrong").await.unwrap_err(),
                AuthError::Refused
            );
        }
        for spelling in [
            format!("@api-{id}"),
            format!("@api-00{id}"),
            "@api-Build Key".into(),
        ] {
            assert_eq!(
                fx.login(&spelling, &secret).await.unwrap_err(),
                AuthError::LockedOut,
                "{spelling} is the same key"
            );
        }
        for spelling in ["Alice", "ALICE", "alice"] {
            assert_eq!(
                fx.login(spelling, "wrong").await.unwrap_err(),
                AuthError::Refused
            );
        }
        assert_eq!(
            fx.login("aLiCe", "alice-password").await.unwrap_err(),
            AuthError::LockedOut
        );
    })
    .await;
}

#[tokio::test]
async fn a_banned_client_is_audited_once_a_minute_and_counted_otherwise() {
    each_backend(2, |fx| async move {
        for _ in 0..2 {
            fx.login("alice", "wrong").await.unwrap_err();
        }
        let audited_before = fx.audit.events().len();
        let unrecorded_before = fx.auth.unrecorded_refusals();
        for _ in 0..50 {
            assert_eq!(
                fx.login("alice", "alice-password").await.unwrap_err(),
                AuthError::LockedOut
            );
        }
        let lockouts: Vec<_> = fx.audit.events()[audited_before..]
            .iter()
            .filter(|e| e.reason.as_deref() == Some("locked out"))
            .cloned()
            .collect();
        assert_eq!(lockouts.len(), 1, "one record for the ban's refusals");
        assert_eq!(fx.audit.events().len(), audited_before + 1);
        assert_eq!(fx.auth.unrecorded_refusals(), unrecorded_before + 49);
        // The same login spelled otherwise, over another protocol, is the same banned pair.
        fx.auth
            .login(
                "ALICE",
                Proof::Password("x"),
                Protocol::Ftp,
                ClientInfo::new(HOME),
            )
            .await
            .unwrap_err();
        assert_eq!(fx.audit.events().len(), audited_before + 1, "same pair");
    })
    .await;
}
