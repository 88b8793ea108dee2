//! The store's behaviour, run against SQLite always and PostgreSQL when
//! `FILEGATE_TEST_POSTGRES_URL` is set (each test in a database of its own).

use super::*;
use crate::audit::{Action, AuditEvent, Outcome};
use crate::identity::Principal;
use crate::test_support::TestDb;

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in TestDb::all().await {
        test(db.store.clone()).await;
        db.drop().await;
    }
}

fn new_key(name: &str, user_id: Option<i64>, digest: &str) -> NewKey {
    NewKey {
        name: name.into(),
        description: None,
        user_id,
        secret_digest: digest.into(),
        path: None,
        permission_set: "full".into(),
        platform: None,
        expires_at: None,
        created_by_user_id: None,
        created_at: 1,
    }
}

#[tokio::test]
async fn usernames_are_unique_whatever_their_case() {
    each_backend(|store| async move {
        let alice = store
            .insert_user(&NewUser {
                username: "Alice".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            store.user_by_name("ALICE").await.unwrap().unwrap().id,
            alice.id
        );
        let clash = store
            .insert_user(&NewUser {
                username: "alice".into(),
                ..Default::default()
            })
            .await;
        assert!(
            matches!(clash, Err(StoreError::Conflict("username"))),
            "{clash:?}"
        );
        assert!(
            alice.sftp_permission
                && alice.ftp_permission
                && alice.dav_permission
                && alice.restapi_permission
        );
        assert!(!alice.disabled && !alice.site_admin);
    })
    .await;
}

#[tokio::test]
async fn every_change_to_rights_bumps_the_revision() {
    each_backend(|store| async move {
        let u = store
            .insert_user(&NewUser {
                username: "bob".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let changed = store
            .update_user(
                u.id,
                &UserChanges {
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(changed.disabled);
        assert!(changed.revision > u.revision);
        store.insert_grant(u.id, "/a", "full").await.unwrap();
        let after_grant = store.user_by_id(u.id).await.unwrap().unwrap();
        assert!(after_grant.revision > changed.revision);
        let cosmetic = store
            .update_user(
                u.id,
                &UserChanges {
                    name: Some(Some("Bob".into())),
                    email: Some(Some("bob@example.com".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            cosmetic.revision, after_grant.revision,
            "a name or e-mail is not a right"
        );
        for changes in [
            UserChanges {
                password_hash: Some(Some("$argon2id$new".into())),
                ..Default::default()
            },
            UserChanges {
                site_admin: Some(true),
                ..Default::default()
            },
            UserChanges {
                ftp_permission: Some(false),
                ..Default::default()
            },
            UserChanges {
                allowed_ips: Some("10.0.0.0/8".into()),
                ..Default::default()
            },
        ] {
            let before = store.user_by_id(u.id).await.unwrap().unwrap();
            let after = store.update_user(u.id, &changes).await.unwrap().unwrap();
            assert!(after.revision > before.revision, "{changes:?}");
        }
        assert!(
            store
                .update_user(9999, &UserChanges::default())
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn grants_are_idempotent_and_deleted_with_their_user() {
    each_backend(|store| async move {
        let u = store
            .insert_user(&NewUser {
                username: "carol".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let g1 = store.insert_grant(u.id, "/a", "readonly").await.unwrap();
        let g2 = store.insert_grant(u.id, "/a", "readonly").await.unwrap();
        assert_eq!(g1.id, g2.id);
        store.insert_grant(u.id, "/a", "writeonly").await.unwrap();
        assert_eq!(store.grants_of(u.id).await.unwrap().len(), 2);
        assert!(store.delete_grant(g1.id).await.unwrap());
        assert!(!store.delete_grant(g1.id).await.unwrap());
        assert!(store.delete_user(u.id).await.unwrap());
        assert!(store.grants_of(u.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn keys_are_found_by_id_name_and_digest_and_names_are_unique() {
    each_backend(|store| async move {
        let u = store
            .insert_user(&NewUser {
                username: "dave".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let k = store
            .insert_key(&new_key("Deploy Key", Some(u.id), "d1"))
            .await
            .unwrap();
        assert_eq!(
            store.key_by_name("deploy key").await.unwrap().unwrap().id,
            k.id
        );
        assert_eq!(store.key_by_digest("d1").await.unwrap().unwrap().id, k.id);
        assert_eq!(
            store.key_by_id(k.id).await.unwrap().unwrap().user_id,
            Some(u.id)
        );
        let clash = store.insert_key(&new_key("DEPLOY KEY", None, "d2")).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        let site = store
            .insert_key(&new_key("site", None, "d3"))
            .await
            .unwrap();
        assert_eq!(
            store
                .list_keys(KeyOwnerFilter::SiteWide, 0, 10)
                .await
                .unwrap(),
            vec![site.clone()]
        );
        assert_eq!(
            store
                .list_keys(KeyOwnerFilter::User(u.id), 0, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .list_keys(KeyOwnerFilter::All, k.id, 10)
                .await
                .unwrap(),
            vec![site]
        );
        assert_eq!(store.count_keys_of(u.id).await.unwrap(), 1);
        let renamed = store
            .update_key(
                k.id,
                &KeyChanges {
                    name: Some("Other".into()),
                    expires_at: Some(Some(50)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.expires_at),
            ("Other", Some(50))
        );
        assert!(store.key_by_name("deploy key").await.unwrap().is_none());
        assert!(store.delete_key(k.id).await.unwrap());
        assert!(store.key_by_digest("d1").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn last_use_is_written_at_most_once_per_interval() {
    each_backend(|store| async move {
        let k = store
            .insert_key(&new_key("touch", None, "t1"))
            .await
            .unwrap();
        assert!(store.touch_key(k.id, 100_000, 10_800).await.unwrap());
        assert!(!store.touch_key(k.id, 100_100, 10_800).await.unwrap());
        assert_eq!(
            store.key_by_id(k.id).await.unwrap().unwrap().last_use_at,
            Some(100_000)
        );
        assert!(store.touch_key(k.id, 110_800, 10_800).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn audit_batches_are_stored_and_read_back_newest_first() {
    each_backend(|store| async move {
        let events: Vec<AuditEvent> = (0..5)
            .map(|n| {
                AuditEvent::by(&Principal::cli(), Action::Upload, Outcome::Ok)
                    .path(format!("/f{n}"))
                    .bytes(n)
            })
            .collect();
        store.append_audit("node-a", &events).await.unwrap();
        let rows = store
            .read_audit(&AuditQuery {
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path.as_deref(), Some("/f4"));
        assert_eq!(rows[0].node, "node-a");
        assert_eq!(rows[0].protocol, "cli");
        assert_eq!(rows[0].action, "create");
        let older = store
            .read_audit(&AuditQuery {
                limit: 10,
                before: Some(rows[2].id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(older.len(), 2);
        assert_eq!(store.count_audit().await.unwrap(), 5);
        let logins = store
            .read_audit(&AuditQuery {
                limit: 10,
                logins_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(logins.is_empty());
    })
    .await;
}

#[tokio::test]
async fn sessions_are_found_by_digest_and_purged_when_expired() {
    each_backend(|store| async move {
        let u = store
            .insert_user(&NewUser {
                username: "erin".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        store.insert_session("s1", u.id, 10, 20).await.unwrap();
        store.insert_session("s2", u.id, 10, 200).await.unwrap();
        assert_eq!(
            store
                .session_by_digest("s1")
                .await
                .unwrap()
                .unwrap()
                .user_id,
            u.id
        );
        assert_eq!(store.purge_sessions(100).await.unwrap(), 1);
        assert!(store.session_by_digest("s1").await.unwrap().is_none());
        assert!(store.delete_session("s2").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn migrations_run_twice_without_harm() {
    each_backend(|store| async move {
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unsupported_url_is_a_clear_error() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
}

#[tokio::test]
async fn failed_logins_are_counted_in_one_row_and_a_ban_outlives_a_clear() {
    use crate::auth::{LockoutLedger, LockoutWindow};
    each_backend(|store| async move {
        let window = LockoutWindow {
            window_ms: 60_000,
            max_failures: 3,
            ban_ms: 30_000,
        };
        let at = 1_000_000;
        for n in 1..=2 {
            let s = store
                .record_failure("p:10.0.0.1 alice", at + n, &window)
                .await
                .unwrap();
            assert_eq!((s.failures, s.banned_until_ms), (n as u32, None));
        }
        let banned = store
            .record_failure("p:10.0.0.1 alice", at + 3, &window)
            .await
            .unwrap();
        assert_eq!(
            (banned.failures, banned.banned_until_ms),
            (3, Some(at + 3 + 30_000))
        );
        assert_eq!(banned.window_start_ms, at + 1);

        // A success elsewhere does not lift the running ban; after it ends, it clears.
        store
            .clear_failures("p:10.0.0.1 alice", at + 10)
            .await
            .unwrap();
        let seen = store.changed_since(at).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1.banned_until_ms, Some(at + 3 + 30_000));
        store
            .clear_failures("p:10.0.0.1 alice", at + 40_000)
            .await
            .unwrap();
        assert!(store.changed_since(0).await.unwrap().is_empty());

        // A window that has passed starts again at one failure.
        store
            .record_failure("a:10.0.0.1", at, &window)
            .await
            .unwrap();
        let later = store
            .record_failure("a:10.0.0.1", at + 61_000, &window)
            .await
            .unwrap();
        assert_eq!((later.failures, later.window_start_ms), (1, at + 61_000));
        store.forget_before(at + 200_000).await.unwrap();
        assert!(store.changed_since(0).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_shared_secret_is_made_once_and_counters_count() {
    each_backend(|store| async move {
        let first = store.shared_secret("api_cursor_key").await.unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(store.shared_secret("api_cursor_key").await.unwrap(), first);
        assert_eq!(store.counter("dav_props").await.unwrap(), 0);
        store.bump_counter("dav_props").await.unwrap();
        store.bump_counter("dav_props").await.unwrap();
        assert_eq!(store.counter("dav_props").await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_batch_written_twice_is_stored_once() {
    each_backend(|store| async move {
        let batch: Vec<AuditEvent> = (0..3)
            .map(|n| AuditEvent::by(&Principal::cli(), Action::List, Outcome::Ok).bytes(n))
            .collect();
        store.append_audit("node", &batch).await.unwrap();
        store.append_audit("node", &batch).await.unwrap(); // the acknowledgement was lost
        assert_eq!(store.count_audit().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_key_change_bumps_its_revision_only_when_its_rights_change() {
    each_backend(|store| async move {
        let key = store.insert_key(&new_key("k", None, "d1")).await.unwrap();
        assert_eq!(key.revision, 1);
        let renamed = store
            .update_key(
                key.id,
                &KeyChanges {
                    name: Some("k2".into()),
                    description: Some(Some("about".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renamed.revision, key.revision);
        let mut revision = renamed.revision;
        for changes in [
            KeyChanges {
                permission_set: Some("readonly".into()),
                ..Default::default()
            },
            KeyChanges {
                path: Some(Some("a/b".into())),
                ..Default::default()
            },
            KeyChanges {
                expires_at: Some(Some(4_000_000_000)),
                ..Default::default()
            },
        ] {
            let after = store.update_key(key.id, &changes).await.unwrap().unwrap();
            assert!(after.revision > revision, "{changes:?}");
            revision = after.revision;
        }
        let same = store
            .update_key(
                key.id,
                &KeyChanges {
                    permission_set: Some("readonly".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(same.revision, revision, "setting what is already there");
    })
    .await;
}

#[tokio::test]
async fn a_new_password_or_disabling_ends_the_users_api_sessions() {
    each_backend(|store| async move {
        let u = store
            .insert_user(&NewUser {
                username: "dora".into(),
                password_hash: Some("$argon2id$old".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let far = 4_000_000_000;
        let changes = [
            (
                UserChanges {
                    name: Some(Some("Dora".into())),
                    ..Default::default()
                },
                false,
            ),
            (
                UserChanges {
                    password_hash: Some(Some("$argon2id$new".into())),
                    ..Default::default()
                },
                true,
            ),
            (
                UserChanges {
                    disabled: Some(true),
                    ..Default::default()
                },
                true,
            ),
        ];
        for (n, (change, ends)) in changes.into_iter().enumerate() {
            let digest = format!("session-{n}");
            store.insert_session(&digest, u.id, 1, far).await.unwrap();
            store.update_user(u.id, &change).await.unwrap().unwrap();
            let left = store.session_by_digest(&digest).await.unwrap();
            assert_eq!(left.is_none(), ends, "{change:?}");
        }
    })
    .await;
}
