use std::os::unix::fs::symlink;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;
use crate::test_support::TempDir;

fn open(dir: &TempDir, symlinks: Symlinks) -> LocalStorage {
    LocalStorage::open(&dir.path().join("root"), &dir.path().join("staging"))
        .unwrap()
        .with_symlinks(symlinks)
}

fn p(s: &str) -> SitePath {
    SitePath::parse(s).unwrap()
}

fn on_disk(dir: &TempDir, rel: &str) -> String {
    std::fs::read_to_string(dir.path().join("root").join(rel)).unwrap()
}

#[test]
fn opening_leaves_the_staging_folder_to_its_claim() {
    // An admin command opens the storage beside a running server: what is staged there is
    // an upload in progress (leftovers are cleared by `files::staging::claim`).
    let dir = TempDir::new("local");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("upload-in-progress"), "half").unwrap();
    LocalStorage::open(&dir.path().join("root"), &staging).unwrap();
    assert!(staging.join("upload-in-progress").exists());
}

#[tokio::test]
async fn the_kernel_refuses_paths_that_leave_the_root_even_when_following_links() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::FollowInsideRoot);
    symlink("/", dir.path().join("root/slash")).unwrap();
    let err = storage.metadata(&p("/slash/etc/passwd")).await.unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::PermissionDenied, "{err}");
    let err = storage
        .open_read(&p("/slash/etc/hostname"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, StorageErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn no_path_component_may_be_a_symlink_even_one_that_stays_inside_the_root() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    std::fs::create_dir_all(dir.path().join("root/real/deep")).unwrap();
    std::fs::write(dir.path().join("root/real/deep/f.txt"), "data").unwrap();
    symlink("real", dir.path().join("root/alias")).unwrap();
    symlink("real/deep/f.txt", dir.path().join("root/file-link")).unwrap();
    for path in ["/alias/deep/f.txt", "/alias/deep", "/alias", "/file-link"] {
        let err = storage.metadata(&p(path)).await.unwrap_err();
        assert_eq!(
            err.kind,
            StorageErrorKind::PermissionDenied,
            "{path}: {err}"
        );
    }
    assert!(storage.open_read(&p("/alias/deep/f.txt")).await.is_err());
    assert!(storage.open_read(&p("/file-link")).await.is_err());
    assert!(storage.read_dir_chunks(&p("/alias")).await.is_err());
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        assert!(
            storage
                .begin_write(&p("/file-link"), mode, Overwrite::Allow)
                .await
                .is_err(),
            "{mode:?}"
        );
        assert!(
            storage
                .begin_write(&p("/alias/deep/new.txt"), mode, Overwrite::Allow)
                .await
                .is_err(),
            "{mode:?}"
        );
    }
    assert!(storage.set_len(&p("/file-link"), 0).await.is_err());
    assert!(storage.set_times(&p("/alias"), None, None).await.is_err());
    assert!(storage.create_dir(&p("/alias/new")).await.is_err());
    assert!(storage.remove_file(&p("/alias/deep/f.txt")).await.is_err());
    assert!(
        storage
            .rename(&p("/alias/deep/f.txt"), &p("/moved.txt"), Overwrite::Allow)
            .await
            .is_err()
    );
    assert_eq!(on_disk(&dir, "real/deep/f.txt"), "data");
    assert!(!dir.path().join("root/real/deep/new.txt").exists());
    assert!(!dir.path().join("root/moved.txt").exists());
}

#[tokio::test]
async fn listings_leave_symlinks_and_special_files_out() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    let root = dir.path().join("root");
    std::fs::write(root.join("plain.txt"), "x").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    symlink("plain.txt", root.join("link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let mut chunks = storage.read_dir_chunks(&p("/")).await.unwrap();
    let mut names = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        names.extend(chunk.into_iter().map(|e| e.name));
    }
    names.sort();
    assert_eq!(names, vec!["plain.txt", "sub"]);
}

/// `count` empty files named `f00000`… in `folder` under the storage root.
fn many_files(dir: &TempDir, folder: &str, count: usize) -> Vec<String> {
    let path = dir.path().join("root").join(folder);
    std::fs::create_dir_all(&path).unwrap();
    let names: Vec<String> = (0..count).map(|i| format!("f{i:05}")).collect();
    for name in &names {
        std::fs::write(path.join(name), "").unwrap();
    }
    names
}

#[tokio::test]
async fn a_listing_read_in_steps_returns_every_name_exactly_once_even_when_reads_are_cancelled() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    let expected = many_files(&dir, "big", 3000);
    let mut chunks = storage.read_dir_chunks(&p("/big")).await.unwrap();
    let (mut names, mut cancelled, mut largest) = (Vec::new(), 0, 0);
    loop {
        // Each read is first given up after one poll (its step then on the pool), then
        // asked for again.
        let first_poll = tokio::select! {
            biased;
            next = chunks.recv() => Some(next),
            () = std::future::ready(()) => None,
        };
        let next = match first_poll {
            Some(next) => next,
            None => {
                cancelled += 1;
                chunks.recv().await
            }
        };
        let Some(chunk) = next else { break };
        largest = largest.max(chunk.len());
        names.extend(chunk.into_iter().map(|e| e.name));
    }
    assert!(cancelled > 0, "some reads were cancelled");
    assert!(largest <= LIST_STEP, "chunks of {largest} entries");
    names.sort();
    assert_eq!(names, expected);
    assert!(chunks.recv().await.is_none(), "and it stays ended");
}

#[test]
fn listings_left_unread_hold_no_thread_so_other_file_work_goes_on() {
    // One blocking thread for everything: a listing that parked it while its reader paused
    // would stop every other file operation.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = TempDir::new("local");
        let storage = open(&dir, Symlinks::Refuse);
        many_files(&dir, "big", 3000);
        std::fs::write(dir.path().join("root/small.txt"), "small").unwrap();
        let work = async {
            let mut paused = Vec::new();
            for _ in 0..4 {
                let mut chunks = storage.read_dir_chunks(&p("/big")).await.unwrap();
                assert!(chunks.recv().await.is_some());
                paused.push(chunks);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let meta = storage.metadata(&p("/small.txt")).await.unwrap();
            assert_eq!(meta.len, 5);
            let mut reader = storage.open_read(&p("/small.txt")).await.unwrap();
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut text)
                .await
                .unwrap();
            assert_eq!(text, "small");
            // And the paused listings carry on where they stopped.
            for mut chunks in paused {
                let mut rest = 0;
                while let Some(chunk) = chunks.recv().await {
                    rest += chunk.len();
                }
                assert_eq!(rest, 3000 - LIST_STEP);
            }
        };
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("file operations went on while listings were paused");
    });
}

#[tokio::test]
async fn a_fifo_in_storage_is_refused_at_once_instead_of_blocking_a_reader_or_writer() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("root/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let within = std::time::Duration::from_secs(5);
    let read = tokio::time::timeout(within, storage.open_read(&p("/pipe")))
        .await
        .expect("open_read returned");
    assert!(read.is_err());
    let write = tokio::time::timeout(
        within,
        storage.begin_write(&p("/pipe"), WriteMode::Update, Overwrite::Allow),
    )
    .await
    .expect("begin_write returned");
    assert!(write.is_err());
}

#[tokio::test]
async fn in_place_writes_that_may_not_replace_create_exclusively() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    std::fs::write(dir.path().join("root/taken.txt"), "theirs").unwrap();
    for mode in [WriteMode::Update, WriteMode::Append, WriteMode::Replace] {
        let err = storage
            .begin_write(&p("/taken.txt"), mode, Overwrite::Refuse)
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, StorageErrorKind::AlreadyExists, "{mode:?}");
    }
    assert_eq!(on_disk(&dir, "taken.txt"), "theirs");
    let mut fresh = storage
        .begin_write(&p("/fresh.txt"), WriteMode::Update, Overwrite::Refuse)
        .await
        .unwrap();
    fresh.writer().write_all(b"mine").await.unwrap();
    fresh.commit().await.unwrap();
    assert_eq!(on_disk(&dir, "fresh.txt"), "mine");
}

#[tokio::test]
async fn a_staged_upload_that_may_not_replace_fails_at_commit_if_the_name_was_taken() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    let mut refused = storage
        .begin_write(&p("/f.txt"), WriteMode::Replace, Overwrite::Refuse)
        .await
        .unwrap();
    let mut allowed = storage
        .begin_write(&p("/g.txt"), WriteMode::Replace, Overwrite::Allow)
        .await
        .unwrap();
    refused.writer().write_all(b"mine").await.unwrap();
    allowed.writer().write_all(b"mine").await.unwrap();
    std::fs::write(dir.path().join("root/f.txt"), "theirs").unwrap();
    std::fs::write(dir.path().join("root/g.txt"), "theirs").unwrap();
    let err = refused.commit().await.err().unwrap();
    assert_eq!(err.kind, StorageErrorKind::AlreadyExists, "{err}");
    allowed.commit().await.unwrap();
    assert_eq!(on_disk(&dir, "f.txt"), "theirs");
    assert_eq!(on_disk(&dir, "g.txt"), "mine");
    assert!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn a_rename_that_may_not_replace_refuses_an_existing_destination_atomically() {
    let dir = TempDir::new("local");
    let storage = open(&dir, Symlinks::Refuse);
    std::fs::write(dir.path().join("root/a.txt"), "a").unwrap();
    std::fs::write(dir.path().join("root/b.txt"), "b").unwrap();
    std::fs::create_dir(dir.path().join("root/empty")).unwrap();
    std::fs::create_dir(dir.path().join("root/dir")).unwrap();
    let err = storage
        .rename(&p("/a.txt"), &p("/b.txt"), Overwrite::Refuse)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::AlreadyExists);
    let err = storage
        .rename(&p("/dir"), &p("/empty"), Overwrite::Refuse)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::AlreadyExists);
    assert_eq!(on_disk(&dir, "b.txt"), "b");
    storage
        .rename(&p("/a.txt"), &p("/b.txt"), Overwrite::Allow)
        .await
        .unwrap();
    assert_eq!(on_disk(&dir, "b.txt"), "a");
    storage
        .rename(&p("/b.txt"), &p("/dir/c.txt"), Overwrite::Refuse)
        .await
        .unwrap();
    assert_eq!(on_disk(&dir, "dir/c.txt"), "a");
}
