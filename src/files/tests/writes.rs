//! Creating versus changing: a principal that may only create (a `writeonly` drop box) adds
//! new files but never changes an existing one's bytes, by any entry point; `full` can.

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{Fixture, p, read_all, write_all, write_mode};
use crate::audit::{Action, Outcome};
use crate::files::{FsError, WriteMode};
use crate::identity::GrantLevel::{Full, WriteOnly};
use crate::identity::{PermissionSet, Principal};
use crate::test_support::principal;

fn drop_box_key() -> Principal {
    principal(
        &[("/", Full)],
        Some((Some("drop"), PermissionSet::WriteOnly)),
    )
}

#[tokio::test]
async fn a_writeonly_key_uploads_and_lists_but_never_reads_overwrites_or_deletes() {
    let fx = Fixture::new();
    fx.put("drop/existing.txt", "mine");
    let who = drop_box_key();
    write_all(&fx.files, &who, "/drop/new.txt", "data")
        .await
        .unwrap();
    assert_eq!(fx.content("drop/new.txt"), "data");
    assert_eq!(fx.files.list(&who, &p("/drop")).await.unwrap().len(), 2);
    assert!(matches!(
        read_all(&fx.files, &who, "/drop/new.txt").await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        write_all(&fx.files, &who, "/drop/existing.txt", "x").await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files.remove_file(&who, &p("/drop/new.txt")).await,
        Err(FsError::PermissionDenied)
    ));
    assert_eq!(fx.content("drop/existing.txt"), "mine");
}

#[tokio::test]
async fn a_writeonly_key_cannot_change_an_existing_file_in_any_write_mode() {
    let fx = Fixture::new();
    fx.put("drop/existing.txt", "mine");
    let who = drop_box_key();
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        let refused = fx
            .files
            .create(&who, &p("/drop/existing.txt"), mode)
            .await
            .err();
        assert!(
            matches!(refused, Some(FsError::PermissionDenied)),
            "{mode:?}: {refused:?}"
        );
        let denied = fx.audit.last().unwrap();
        assert_eq!(
            (denied.action, denied.outcome),
            (Action::Upload, Outcome::Denied),
            "{mode:?}"
        );
    }
    // SFTP `r+` (open without TRUNC, write at 0) arrives as `Update`, `APPE` as `Append`,
    // REST+STOR and ranged PUT as `Update`, `Replace` from STOR/PUT/TRUNC: none got a handle.
    assert_eq!(fx.content("drop/existing.txt"), "mine");
}

#[tokio::test]
async fn a_writeonly_key_cannot_truncate_or_extend_an_existing_file_by_path() {
    let fx = Fixture::new();
    fx.put("drop/existing.txt", "mine");
    let who = drop_box_key();
    for len in [0, 2, 100] {
        assert!(
            matches!(
                fx.files.set_len(&who, &p("/drop/existing.txt"), len).await,
                Err(FsError::PermissionDenied)
            ),
            "set_len {len}"
        );
    }
    let denied = fx.audit.last().unwrap();
    assert_eq!(
        (denied.action, denied.outcome),
        (Action::SetAttributes, Outcome::Denied)
    );
    // Its current length changes nothing and is accepted (clients send it after uploads).
    fx.files
        .set_len(&who, &p("/drop/existing.txt"), 4)
        .await
        .unwrap();
    assert_eq!(fx.content("drop/existing.txt"), "mine");
}

#[tokio::test]
async fn a_writeonly_key_creates_in_place_but_cannot_truncate_through_that_handle() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root().join("drop")).unwrap();
    let who = drop_box_key();
    for (mode, name) in [(WriteMode::Append, "a.log"), (WriteMode::Update, "u.bin")] {
        let path = format!("/drop/{name}");
        let mut upload = fx.files.create(&who, &p(&path), mode).await.unwrap();
        upload.write_all(b"new bytes").await.unwrap();
        upload.flush().await.unwrap();
        assert!(
            matches!(upload.set_len(3).await, Err(FsError::PermissionDenied)),
            "{mode:?}"
        );
        let denied = fx.audit.last().unwrap();
        assert_eq!(
            (denied.action, denied.outcome, denied.path.as_deref()),
            (Action::SetAttributes, Outcome::Denied, Some(path.as_str()))
        );
        upload.commit().await.unwrap();
        assert_eq!(fx.content(&format!("drop/{name}")), "new bytes");
    }
}

#[tokio::test]
async fn a_writeonly_upload_under_a_temporary_name_may_set_its_own_length() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root().join("drop")).unwrap();
    let who = drop_box_key();
    let mut upload = fx
        .files
        .create(&who, &p("/drop/new.bin"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"0123456789").await.unwrap();
    upload.flush().await.unwrap();
    upload.set_len(4).await.unwrap();
    upload.commit().await.unwrap();
    assert_eq!(fx.content("drop/new.bin"), "0123");
}

#[tokio::test]
async fn a_writeonly_grant_is_a_drop_box_like_a_writeonly_key() {
    let fx = Fixture::new();
    fx.put("inbox/existing.txt", "theirs");
    let who = principal(&[("/inbox", WriteOnly)], None);
    write_all(&fx.files, &who, "/inbox/mine.txt", "mine")
        .await
        .unwrap();
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        assert!(matches!(
            write_mode(&fx.files, &who, "/inbox/existing.txt", mode, "x").await,
            Err(FsError::PermissionDenied)
        ));
    }
    assert!(matches!(
        fx.files.set_len(&who, &p("/inbox/existing.txt"), 0).await,
        Err(FsError::PermissionDenied)
    ));
    assert_eq!(fx.content("inbox/existing.txt"), "theirs");
}

#[tokio::test]
async fn a_full_principal_overwrites_writes_in_place_appends_and_truncates() {
    let fx = Fixture::new();
    fx.put("team/f.txt", "hello world");
    let who = principal(&[("/team", Full)], None);
    write_all(&fx.files, &who, "/team/f.txt", "replaced")
        .await
        .unwrap();
    assert_eq!(fx.content("team/f.txt"), "replaced");

    let mut update = fx
        .files
        .create(&who, &p("/team/f.txt"), WriteMode::Update)
        .await
        .unwrap();
    update.seek(std::io::SeekFrom::Start(2)).await.unwrap();
    update.write_all(b"PL").await.unwrap();
    update.commit().await.unwrap();
    assert_eq!(fx.content("team/f.txt"), "rePLaced");

    write_mode(&fx.files, &who, "/team/f.txt", WriteMode::Append, "!")
        .await
        .unwrap();
    assert_eq!(fx.content("team/f.txt"), "rePLaced!");

    let mut handle = fx
        .files
        .create(&who, &p("/team/f.txt"), WriteMode::Update)
        .await
        .unwrap();
    handle.set_len(4).await.unwrap();
    handle.commit().await.unwrap();
    assert_eq!(fx.content("team/f.txt"), "rePL");

    fx.files.set_len(&who, &p("/team/f.txt"), 2).await.unwrap();
    assert_eq!(fx.content("team/f.txt"), "re");
}

#[tokio::test]
async fn an_exclusive_create_refuses_an_existing_file_even_with_full_rights() {
    let fx = Fixture::new();
    fx.put("team/f.txt", "kept");
    let who = principal(&[("/team", Full)], None);
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        assert!(matches!(
            fx.files.create_new(&who, &p("/team/f.txt"), mode).await,
            Err(FsError::AlreadyExists)
        ));
    }
    let mut upload = fx
        .files
        .create_new(&who, &p("/team/g.txt"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"new").await.unwrap();
    upload.commit().await.unwrap();
    assert_eq!(
        (fx.content("team/f.txt"), fx.content("team/g.txt")),
        ("kept".to_owned(), "new".to_owned())
    );
}

#[tokio::test]
async fn a_writeonly_key_cannot_copy_over_or_rename_onto_an_existing_file() {
    let fx = Fixture::new();
    fx.put("in/a.txt", "a");
    fx.put("drop/taken.txt", "theirs");
    let who = principal(&[("/in", Full), ("/drop", WriteOnly)], None);
    assert!(matches!(
        fx.files
            .copy(&who, &p("/in/a.txt"), &p("/drop/taken.txt"), true)
            .await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/in/a.txt"), &p("/drop/taken.txt"), true)
            .await,
        Err(FsError::PermissionDenied)
    ));
    assert_eq!(fx.content("drop/taken.txt"), "theirs");
    fx.files
        .copy(&who, &p("/in/a.txt"), &p("/drop/copy.txt"), true)
        .await
        .unwrap();
    fx.files
        .rename(&who, &p("/in/a.txt"), &p("/drop/moved.txt"), true)
        .await
        .unwrap();
    assert_eq!(fx.content("drop/moved.txt"), "a");
    assert_eq!(fx.content("drop/copy.txt"), "a");
}
