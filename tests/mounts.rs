//! `[[storage.mounts]]` end to end: a gateway whose `/archive` is another folder of the
//! disk, signed into over SFTP by a user and by a key confined to `/archive`.

mod support;

use filegate::config::{MountConfig, StorageUrl};
use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use filegate::path::SitePath;
use filegate::test_support::TempDir;
use russh_sftp::protocol::{FileAttributes, StatusCode};
use support::TestGateway;
use support::sftp_client::{Sftp, code, login};

async fn gateway_with_archive(archive: &TempDir) -> TestGateway {
    let disk = archive.path().to_owned();
    TestGateway::start_with(move |config| {
        config.storage.mounts = vec![MountConfig {
            path: SitePath::parse("/archive").unwrap(),
            url: StorageUrl::File(disk),
        }];
    })
    .await
}

async fn sign_in(gw: &TestGateway, user: &str, password: &str) -> Sftp {
    login(gw.addr("sftp"), user, password)
        .await
        .expect("sign-in accepted")
}

#[tokio::test]
async fn a_mounted_folder_is_one_tree_with_the_root_over_sftp() {
    let archive = TempDir::new("archive-disk");
    std::fs::write(archive.path().join("old.txt"), b"from the archive disk").unwrap();
    let gw = gateway_with_archive(&archive).await;
    gw.user("alice", "alice-password-1", &[("/", Full)]).await;
    let alice = sign_in(&gw, "alice", "alice-password-1").await;

    // Listed at the root although the root disk has no such folder; its files are the disk's.
    assert!(!gw.root().join("archive").exists());
    assert!(
        alice
            .list("/")
            .await
            .unwrap()
            .contains(&"archive".to_owned())
    );
    let archived = alice.list("/archive").await.unwrap();
    assert!(archived.contains(&"old.txt".to_owned()), "{archived:?}");
    assert_eq!(
        alice.get("/archive/old.txt").await.unwrap(),
        b"from the archive disk"
    );

    // Uploads land on the mounted disk; a name that merely starts like it does not.
    assert_eq!(alice.put("/archive/new.txt", b"new").await, StatusCode::Ok);
    assert_eq!(
        std::fs::read(archive.path().join("new.txt")).unwrap(),
        b"new"
    );
    assert_eq!(
        code(
            alice
                .raw
                .mkdir("/archive2", FileAttributes::default())
                .await
        ),
        StatusCode::Ok
    );
    assert_eq!(alice.put("/archive2/f.txt", b"root").await, StatusCode::Ok);
    assert_eq!(
        std::fs::read(gw.root().join("archive2/f.txt")).unwrap(),
        b"root"
    );
    assert!(!archive.path().join("2").exists() && !archive.path().join("f.txt").exists());

    // A file moves across the boundary (copied, then deleted); the mount point stays.
    assert_eq!(
        code(alice.raw.rename("/archive/new.txt", "/moved.txt").await),
        StatusCode::Ok
    );
    assert_eq!(std::fs::read(gw.root().join("moved.txt")).unwrap(), b"new");
    assert!(!archive.path().join("new.txt").exists());
    assert_eq!(
        code(alice.raw.rmdir("/archive").await),
        StatusCode::OpUnsupported
    );
    assert_eq!(
        code(alice.raw.rename("/archive", "/elsewhere").await),
        StatusCode::OpUnsupported
    );
    assert!(archive.path().join("old.txt").exists());

    // Audit records name site paths, whatever disk holds them.
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| r.action == "create"
        && r.result == "ok"
        && r.path.as_deref() == Some("/archive/new.txt")));
    assert!(audit.iter().any(|r| r.action == "move"
        && r.path.as_deref() == Some("/archive/new.txt")
        && r.destination.as_deref() == Some("/moved.txt")));
    gw.stop().await;
}

#[tokio::test]
async fn a_key_limited_to_the_mounted_folder_is_confined_to_it() {
    let archive = TempDir::new("archive-disk");
    std::fs::write(archive.path().join("old.txt"), b"archived").unwrap();
    let gw = gateway_with_archive(&archive).await;
    let alice = gw.user("alice", "alice-password-1", &[("/", Full)]).await;
    gw.put("secret.txt", b"root only");
    let (id, secret) = gw
        .key(
            Some(alice),
            "archiver",
            Some("archive"),
            PermissionSet::Full,
        )
        .await;
    let key = sign_in(&gw, &format!("@api-{id}"), &secret).await;

    assert_eq!(key.list("/").await.unwrap(), ["archive"]);
    assert_eq!(key.get("/archive/old.txt").await.unwrap(), b"archived");
    assert_eq!(key.put("/archive/mine.txt", b"k").await, StatusCode::Ok);
    assert_eq!(
        std::fs::read(archive.path().join("mine.txt")).unwrap(),
        b"k"
    );
    // Out of the mount, by a plain path, by `..`, by a look-alike name: nothing is there.
    assert_eq!(key.get("/secret.txt").await, Err(StatusCode::NoSuchFile));
    assert_eq!(
        key.get("/archive/../secret.txt").await,
        Err(StatusCode::NoSuchFile)
    );
    for to in ["/old.txt", "/archive/../old.txt", "/archive2/old.txt"] {
        assert_eq!(
            code(key.raw.rename("/archive/old.txt", to).await),
            StatusCode::NoSuchFile,
            "{to}"
        );
    }
    assert_eq!(
        key.put("/archive2/x.txt", b"x").await,
        StatusCode::NoSuchFile
    );
    // Its root (the mount point) is not its to remove.
    assert_eq!(
        code(key.raw.rmdir("/archive").await),
        StatusCode::PermissionDenied
    );
    assert_eq!(
        std::fs::read(archive.path().join("old.txt")).unwrap(),
        b"archived"
    );
    assert!(!gw.root().join("old.txt").exists());
    assert_eq!(
        std::fs::read(gw.root().join("secret.txt")).unwrap(),
        b"root only"
    );
    gw.stop().await;
}
