//! Symlinks inside the storage are not followed (any component, any direction) unless the
//! configuration says so, and even then never out of the root.

use std::os::unix::fs::symlink;

use super::{Fixture, names, p, read_all, write_all, write_mode};
use crate::files::{FsError, Symlinks, WriteMode};
use crate::identity::GrantLevel::Full;
use crate::test_support::principal;

/// Alice's folder holds links into Bob's folder (relative, absolute) and out of the root.
fn alice_and_bob(symlinks: Symlinks) -> Fixture {
    let fx = Fixture::with(symlinks, 64);
    fx.put("alice/own.txt", "alice");
    fx.put("bob/secret.txt", "bob's secret");
    let alice = fx.root().join("alice");
    symlink("../bob", alice.join("bob-dir")).unwrap();
    symlink("../bob/secret.txt", alice.join("bob-file")).unwrap();
    symlink(fx.root().join("bob"), alice.join("bob-abs")).unwrap();
    symlink("/etc", alice.join("etc")).unwrap();
    symlink("../../..", alice.join("up")).unwrap();
    symlink("own.txt", alice.join("own-link")).unwrap();
    fx
}

const LINKS: [&str; 6] = ["bob-dir", "bob-file", "bob-abs", "etc", "up", "own-link"];

#[tokio::test]
async fn a_symlink_to_another_users_folder_is_not_followed_to_read_list_or_stat() {
    let fx = alice_and_bob(Symlinks::Refuse);
    let alice = principal(&[("/alice", Full)], None);
    for path in [
        "/alice/bob-dir/secret.txt",
        "/alice/bob-file",
        "/alice/bob-abs/secret.txt",
        "/alice/etc/passwd",
        "/alice/up/etc/passwd",
        "/alice/own-link",
    ] {
        assert!(
            matches!(
                read_all(&fx.files, &alice, path).await,
                Err(FsError::NotFound)
            ),
            "read {path}"
        );
        assert!(
            matches!(
                fx.files.stat(&alice, &p(path)).await,
                Err(FsError::NotFound)
            ),
            "stat {path}"
        );
    }
    for link in LINKS {
        let path = format!("/alice/{link}");
        assert!(
            matches!(
                fx.files.stat(&alice, &p(&path)).await,
                Err(FsError::NotFound)
            ),
            "stat {path}"
        );
    }
    for dir in [
        "/alice/bob-dir",
        "/alice/bob-abs",
        "/alice/etc",
        "/alice/up",
    ] {
        assert!(
            matches!(fx.files.list(&alice, &p(dir)).await, Err(FsError::NotFound)),
            "list {dir}"
        );
    }
    assert_eq!(
        names(&fx.files, &alice, "/alice").await,
        vec!["own.txt"],
        "listings leave symlinks out"
    );
}

#[tokio::test]
async fn a_symlink_to_another_users_folder_is_not_followed_to_write_truncate_or_touch() {
    let fx = alice_and_bob(Symlinks::Refuse);
    let alice = principal(&[("/alice", Full)], None);
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        for path in [
            "/alice/bob-file",
            "/alice/bob-dir/secret.txt",
            "/alice/bob-dir/new.txt",
            "/alice/bob-abs/new.txt",
            "/alice/up/new.txt",
        ] {
            assert!(
                write_mode(&fx.files, &alice, path, mode, "pwned")
                    .await
                    .is_err(),
                "{mode:?} {path}"
            );
        }
    }
    assert!(
        fx.files
            .set_len(&alice, &p("/alice/bob-file"), 0)
            .await
            .is_err()
    );
    assert!(
        fx.files
            .set_times(
                &alice,
                &p("/alice/bob-dir"),
                None,
                Some(std::time::UNIX_EPOCH),
                crate::files::Unkept::Refuse,
            )
            .await
            .is_err()
    );
    assert!(
        fx.files
            .make_dir(&alice, &p("/alice/bob-dir/sub"))
            .await
            .is_err()
    );
    assert!(
        fx.files
            .remove_file(&alice, &p("/alice/bob-dir/secret.txt"))
            .await
            .is_err()
    );
    assert!(
        fx.files
            .rename(
                &alice,
                &p("/alice/bob-dir/secret.txt"),
                &p("/alice/stolen.txt"),
                false
            )
            .await
            .is_err()
    );
    assert!(
        fx.files
            .copy(
                &alice,
                &p("/alice/bob-file"),
                &p("/alice/copied.txt"),
                false
            )
            .await
            .is_err()
    );
    assert_eq!(fx.content("bob/secret.txt"), "bob's secret");
    let bob: Vec<_> = std::fs::read_dir(fx.root().join("bob"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(bob, vec!["secret.txt"]);
    assert!(!fx.root().join("alice/stolen.txt").exists());
    assert!(!fx.root().join("alice/copied.txt").exists());
}

#[tokio::test]
async fn a_symlink_is_not_followed_even_when_the_principal_may_see_both_ends() {
    let fx = alice_and_bob(Symlinks::Refuse);
    let admin = principal(&[("/", Full)], None);
    assert!(matches!(
        read_all(&fx.files, &admin, "/alice/bob-dir/secret.txt").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(
        read_all(&fx.files, &admin, "/bob/secret.txt")
            .await
            .unwrap(),
        "bob's secret"
    );
    assert!(
        write_all(&fx.files, &admin, "/alice/own-link", "x")
            .await
            .is_err()
    );
    assert_eq!(fx.content("alice/own.txt"), "alice");
}

#[tokio::test]
async fn when_configured_symlinks_inside_the_root_are_followed_but_never_out_of_it() {
    let fx = alice_and_bob(Symlinks::FollowInsideRoot);
    let alice = principal(&[("/alice", Full)], None);
    assert_eq!(
        read_all(&fx.files, &alice, "/alice/own-link")
            .await
            .unwrap(),
        "alice"
    );
    assert_eq!(
        read_all(&fx.files, &alice, "/alice/bob-dir/secret.txt")
            .await
            .unwrap(),
        "bob's secret",
        "following is what the setting means"
    );
    assert!(
        read_all(&fx.files, &alice, "/alice/etc/passwd")
            .await
            .is_err()
    );
    assert!(
        read_all(&fx.files, &alice, "/alice/up/etc/passwd")
            .await
            .is_err()
    );
    assert!(
        read_all(&fx.files, &alice, "/alice/bob-abs/secret.txt")
            .await
            .is_err(),
        "absolute links are refused even inside the root"
    );
    assert!(fx.files.list(&alice, &p("/alice/etc")).await.is_err());
    assert!(
        write_all(&fx.files, &alice, "/alice/up/evil.txt", "x")
            .await
            .is_err()
    );
    assert_eq!(
        names(&fx.files, &alice, "/alice").await,
        vec!["bob-dir", "bob-file", "own-link", "own.txt"],
        "links leading out (or absolute) are left out of listings"
    );
}
