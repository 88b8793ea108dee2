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
