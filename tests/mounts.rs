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
    gw.write("secret.txt", b"root only").await;
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

/// Found by the red team: WebDAV DELETE of a folder removes what it holds one by one, so a
/// refusal of the mount point itself came after everything inside was gone. Now DELETE, MOVE
/// and COPY/MOVE onto an existing destination naming a mount point (or a folder above one)
/// are refused before anything is removed.
#[tokio::test]
async fn webdav_cannot_empty_a_mount_point_by_deleting_or_overwriting_it() {
    let archive = TempDir::new("archive-disk");
    std::fs::create_dir(archive.path().join("alice")).unwrap();
    std::fs::write(archive.path().join("alice").join("keep.txt"), b"keep").unwrap();
    std::fs::write(archive.path().join("top.txt"), b"top").unwrap();
    let gw = gateway_with_archive(&archive).await;
    gw.admin("root", "root-password-1").await;
    gw.mkdir("elsewhere").await;
    let base = format!("http://{}", gw.addr("webdav"));
    let http = reqwest::Client::new();
    let send = |method: &str, path: &str, headers: &[(&str, String)]| {
        let mut req = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{path}"),
            )
            .basic_auth("root", Some("root-password-1"));
        for (name, value) in headers {
            req = req.header(*name, value.clone());
        }
        req.send()
    };
    let intact = || {
        assert_eq!(
            std::fs::read(archive.path().join("alice").join("keep.txt")).unwrap(),
            b"keep"
        );
        assert_eq!(
            std::fs::read(archive.path().join("top.txt")).unwrap(),
            b"top"
        );
    };
    let status = send("DELETE", "/archive/", &[]).await.unwrap().status();
    assert_eq!(status.as_u16(), 501, "DELETE of the mount point");
    intact();
    let status = send(
        "COPY",
        "/elsewhere/",
        &[
            ("Destination", format!("{base}/archive/")),
            ("Overwrite", "T".into()),
        ],
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status.as_u16(), 501, "COPY onto the mount point");
    intact();
    let status = send(
        "MOVE",
        "/elsewhere/",
        &[("Destination", format!("{base}/archive"))],
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status.as_u16(), 501, "MOVE onto the mount point");
    intact();
    let status = send(
        "MOVE",
        "/archive/",
        &[("Destination", format!("{base}/moved/"))],
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status.as_u16(), 501, "MOVE of the mount point");
    intact();
    // What is inside a mount is removed as anywhere else.
    let status = send("DELETE", "/archive/alice/", &[])
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "DELETE inside the mount: {status}");
    assert!(!archive.path().join("alice").exists());
    gw.stop().await;
}

/// Found by the red team: the overlap check compared URLs as written, so a mount written with
/// `..` or through a symlink could serve another storage's files (or the data folder's
/// database and keys) under a second set of grants. The gateway now refuses to start.
#[tokio::test]
async fn a_mount_that_resolves_into_another_storage_or_the_data_folder_is_refused() {
    let outside = TempDir::new("mount-alias");
    let data = TempDir::new("mount-data");
    let files = data.path().join("files");
    std::fs::create_dir_all(files.join("alice")).unwrap();
    let link = outside.path().join("alias");
    std::os::unix::fs::symlink(files.join("alice"), &link).unwrap();
    for (what, url) in [
        ("a symlink into the root storage", link.clone()),
        ("the data folder itself", data.path().to_owned()),
        (
            "the data folder's journal",
            data.path().join("audit-journal"),
        ),
    ] {
        let mut config = filegate::config::Config::default();
        config.server.data_dir = data.path().to_owned();
        for listen in [
            &mut config.sftp.listen,
            &mut config.ftp.listen,
            &mut config.webdav.listen,
            &mut config.api.listen,
        ] {
            *listen = "127.0.0.1:0".parse().unwrap();
        }
        config.storage.mounts = vec![MountConfig {
            path: SitePath::parse("/pub").unwrap(),
            url: StorageUrl::File(url),
        }];
        config.fill_defaults();
        // Refused by the config check (URLs as written) or at start (as resolved).
        let err = match config.validate() {
            Err(e) => e.to_string(),
            Ok(()) => filegate::gateway::Core::open(config)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        assert!(
            err.contains("data folder")
                || err.contains("one holds the other")
                || err.contains("overlap"),
            "{what}: {err:?}"
        );
    }
    assert!(
        "file:///srv/x/../files".parse::<StorageUrl>().is_err(),
        "'..' in a file URL"
    );
}
