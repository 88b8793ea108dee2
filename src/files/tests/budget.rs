//! The process-wide budget of files open for transfers.

use super::{Fixture, p};
use crate::audit::{Action, Outcome};
use crate::files::{FsError, Symlinks, WriteMode};
use crate::identity::GrantLevel::Full;
use crate::test_support::principal;

#[tokio::test]
async fn the_open_file_budget_refuses_the_next_transfer_at_once_and_frees_on_drop() {
    let fx = Fixture::with(Symlinks::Refuse, 3);
    fx.put("a.txt", "a");
    let who = principal(&[("/", Full)], None);
    let first = fx.files.open_read(&who, &p("/a.txt")).await.unwrap();
    let _second = fx.files.open_read(&who, &p("/a.txt")).await.unwrap();
    let upload = fx
        .files
        .create(&who, &p("/b.txt"), WriteMode::Replace)
        .await
        .unwrap();
    assert!(matches!(
        fx.files.open_read(&who, &p("/a.txt")).await,
        Err(FsError::TooManyOpenFiles)
    ));
    let refused = fx.audit.last().unwrap();
    assert_eq!(
        (refused.action, refused.outcome),
        (Action::Download, Outcome::Failed)
    );
    assert!(matches!(
        fx.files
            .create(&who, &p("/c.txt"), WriteMode::Replace)
            .await,
        Err(FsError::TooManyOpenFiles)
    ));
    assert!(matches!(
        fx.files.copy(&who, &p("/a.txt"), &p("/d.txt"), false).await,
        Err(FsError::TooManyOpenFiles)
    ));
    drop(first);
    let third = fx.files.open_read(&who, &p("/a.txt")).await.unwrap();
    drop(third);
    upload.commit().await.unwrap();
    fx.files
        .create(&who, &p("/c.txt"), WriteMode::Replace)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_or_failed_open_does_not_spend_the_budget() {
    let fx = Fixture::with(Symlinks::Refuse, 1);
    fx.put("a.txt", "a");
    let who = principal(&[("/", Full)], None);
    for _ in 0..3 {
        assert!(matches!(
            fx.files.open_read(&who, &p("/missing")).await,
            Err(FsError::NotFound)
        ));
        assert!(matches!(
            fx.files.open_read(&who, &p("/secret/x")).await,
            Err(FsError::NotFound)
        ));
    }
    fx.files.open_read(&who, &p("/a.txt")).await.unwrap();
}

fn user(id: i64, key: Option<i64>) -> crate::identity::Principal {
    let mut who = principal(
        &[("/", Full)],
        key.map(|_| (None, crate::identity::PermissionSet::Full)),
    );
    if let Some(user) = who.user.as_mut() {
        user.id = id;
        user.username = format!("user{id}");
    }
    if let (Some(k), Some(id)) = (who.key.as_mut(), key) {
        k.id = id;
    }
    who
}

#[tokio::test]
async fn one_user_at_their_share_is_refused_while_another_user_still_opens_files() {
    let fx = Fixture::with(Symlinks::Refuse, 10);
    let files = crate::files::Files::new(
        std::sync::Arc::new(Fixture::storage(&fx.dir, Symlinks::Refuse)),
        fx.audit.clone(),
        10,
    )
    .with_open_files_per_owner(3);
    fx.put("a.txt", "a");
    // One user through two of their keys and a password session: one share.
    let (by_key, by_other_key, by_password) = (user(1, Some(7)), user(1, Some(8)), user(1, None));
    let first = files.open_read(&by_key, &p("/a.txt")).await.unwrap();
    let _second = files.open_read(&by_other_key, &p("/a.txt")).await.unwrap();
    let _upload = files
        .create(&by_password, &p("/b.txt"), WriteMode::Replace)
        .await
        .unwrap();
    for who in [&by_key, &by_other_key, &by_password] {
        assert!(matches!(
            files.open_read(who, &p("/a.txt")).await,
            Err(FsError::TooManyOpenFiles)
        ));
    }
    assert!(matches!(
        files.copy(&by_key, &p("/a.txt"), &p("/c.txt"), false).await,
        Err(FsError::TooManyOpenFiles)
    ));
    // Another user, and a site-wide key, still open files.
    let other = user(2, None);
    let _theirs = files.open_read(&other, &p("/a.txt")).await.unwrap();
    let mut site_key = user(0, Some(9));
    site_key.user = None;
    site_key.site_admin = true;
    let _site = files.open_read(&site_key, &p("/a.txt")).await.unwrap();
    // Dropping a download gives its place in the share back.
    drop(first);
    files.open_read(&by_password, &p("/a.txt")).await.unwrap();
}

#[test]
fn the_default_share_is_an_eighth_of_the_budget_but_at_least_64() {
    use crate::files::budget::OpenFiles;
    assert_eq!(OpenFiles::default_share(100), 64);
    assert_eq!(OpenFiles::default_share(4096), 512);
}
