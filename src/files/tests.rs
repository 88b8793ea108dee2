//! The file layer over real local storage in a temporary folder.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::*;
use crate::audit::{Action, Outcome};
use crate::identity::GrantLevel::{Full, List, ReadOnly};
use crate::identity::PermissionSet;
use crate::test_support::{MemorySink, TempDir, principal};

mod budget;
mod capabilities;
mod denials;
mod holes;
mod races;
mod symlinks;
mod writes;

pub(crate) struct Fixture {
    pub files: Files,
    pub audit: Arc<MemorySink>,
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(Symlinks::Refuse, 64)
    }

    /// Over local storage following `symlinks`, with an open-file budget.
    pub fn with(symlinks: Symlinks, max_open_files: usize) -> Fixture {
        let dir = TempDir::new("files");
        let storage = Arc::new(Fixture::storage(&dir, symlinks));
        Fixture::over(dir, storage, max_open_files)
    }

    pub fn storage(dir: &TempDir, symlinks: Symlinks) -> LocalStorage {
        LocalStorage::open(&dir.path().join("root"), &dir.path().join("staging"))
            .unwrap()
            .with_symlinks(symlinks)
    }

    /// Over any storage whose root is `<dir>/root`.
    pub fn over(dir: TempDir, storage: Arc<dyn Storage>, max_open_files: usize) -> Fixture {
        let audit = Arc::new(MemorySink::default());
        Fixture {
            files: Files::new(storage, audit.clone(), max_open_files),
            audit,
            dir,
        }
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    pub fn put(&self, rel: &str, content: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// The content of a file on disk (not through the file layer).
    pub fn content(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }

    pub fn staging_is_empty(&self) -> bool {
        std::fs::read_dir(self.dir.path().join("staging"))
            .unwrap()
            .next()
            .is_none()
    }
}

pub(crate) fn p(s: &str) -> SitePath {
    SitePath::parse(s).unwrap()
}

pub(super) async fn read_all(
    files: &Files,
    who: &Principal,
    path: &str,
) -> Result<String, FsError> {
    let mut download = files.open_read(who, &p(path)).await?;
    let mut out = String::new();
    download.read_to_string(&mut out).await.unwrap();
    Ok(out)
}

pub(super) async fn write_all(
    files: &Files,
    who: &Principal,
    path: &str,
    content: &str,
) -> Result<u64, FsError> {
    write_mode(files, who, path, WriteMode::Replace, content).await
}

/// Opens an upload in `mode`, writes `content` at its start (at the end for `Append`) and
/// commits it.
pub(super) async fn write_mode(
    files: &Files,
    who: &Principal,
    path: &str,
    mode: WriteMode,
    content: &str,
) -> Result<u64, FsError> {
    let mut upload = files.create(who, &p(path), mode).await?;
    upload.write_all(content.as_bytes()).await.unwrap();
    upload.commit().await
}

pub(super) async fn names(files: &Files, who: &Principal, path: &str) -> Vec<String> {
    files
        .list(who, &p(path))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[tokio::test]
async fn a_full_grant_lists_reads_writes_renames_and_deletes_with_an_audit_record_each() {
    let fx = Fixture::new();
    fx.put("team/a.txt", "alpha");
    let who = principal(&[("/team", Full)], None);
    let names: Vec<String> = fx
        .files
        .list(&who, &p("/team"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["a.txt"]);
    assert_eq!(
        read_all(&fx.files, &who, "/team/a.txt").await.unwrap(),
        "alpha"
    );
    let download = fx.audit.last().unwrap();
    assert_eq!(
        (download.action, download.outcome, download.bytes),
        (Action::Download, Outcome::Ok, Some(5))
    );
    assert_eq!(download.user_id, Some(1));
    assert_eq!(
        write_all(&fx.files, &who, "/team/b.txt", "bravo!")
            .await
            .unwrap(),
        6
    );
    assert_eq!(fx.audit.last().unwrap().bytes, Some(6));
    fx.files.make_dir(&who, &p("/team/sub")).await.unwrap();
    fx.files
        .rename(&who, &p("/team/b.txt"), &p("/team/sub/c.txt"), false)
        .await
        .unwrap();
    let rename = fx.audit.last().unwrap();
    assert_eq!(rename.destination.as_deref(), Some("/team/sub/c.txt"));
    assert_eq!(
        std::fs::read_to_string(fx.root().join("team/sub/c.txt")).unwrap(),
        "bravo!"
    );
    fx.files
        .remove_file(&who, &p("/team/sub/c.txt"))
        .await
        .unwrap();
    fx.files.remove_dir(&who, &p("/team/sub")).await.unwrap();
    assert!(!fx.root().join("team/sub").exists());
    assert_eq!(fx.audit.last().unwrap().action, Action::Rmdir);
}

#[tokio::test]
async fn paths_outside_every_grant_look_absent_and_forbidden_operations_are_denied() {
    let fx = Fixture::new();
    fx.put("team/a.txt", "alpha");
    fx.put("secret/s.txt", "s");
    let who = principal(&[("/team", ReadOnly)], None);
    assert!(matches!(
        read_all(&fx.files, &who, "/secret/s.txt").await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        fx.files.stat(&who, &p("/secret")).await,
        Err(FsError::NotFound)
    ));
    let denied = fx.audit.last().unwrap();
    assert_eq!(
        (denied.outcome, denied.path.as_deref()),
        (Outcome::Denied, Some("/secret"))
    );
    assert!(matches!(
        write_all(&fx.files, &who, "/team/new.txt", "x").await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files.remove_file(&who, &p("/team/a.txt")).await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files.make_dir(&who, &p("/team/d")).await,
        Err(FsError::PermissionDenied)
    ));
    assert!(fx.root().join("team/a.txt").exists());
    assert!(!fx.root().join("team/new.txt").exists());
}

#[tokio::test]
async fn folders_above_a_grant_list_only_the_way_down() {
    let fx = Fixture::new();
    fx.put("a/b/file", "1");
    fx.put("a/other/file", "2");
    fx.put("top.txt", "3");
    let who = principal(&[("/a/b", List)], None);
    let root: Vec<String> = fx
        .files
        .list(&who, &SitePath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(root, vec!["a"]);
    let a: Vec<String> = fx
        .files
        .list(&who, &p("/a"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(a, vec!["b"]);
    assert!(matches!(
        read_all(&fx.files, &who, "/a/b/file").await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files.make_dir(&who, &p("/a/new")).await,
        Err(FsError::NotFound)
    ));
    assert_eq!(fx.files.start_dir(&who), p("/a/b"));
}

#[tokio::test]
async fn a_path_restricted_key_cannot_escape_with_dot_dot_or_absolute_paths() {
    let fx = Fixture::new();
    fx.put("team/drop/in.txt", "in");
    fx.put("team/private.txt", "p");
    let who = principal(
        &[("/", Full)],
        Some((Some("team/drop"), PermissionSet::Full)),
    );
    let cwd = fx.files.start_dir(&who);
    assert_eq!(cwd, p("/team/drop"));
    let escaped = SitePath::resolve(&cwd, "../private.txt").unwrap();
    assert!(matches!(
        fx.files.open_read(&who, &escaped).await,
        Err(FsError::NotFound)
    ));
    let climbed = SitePath::resolve(&cwd, "../../../../etc/passwd").unwrap();
    assert_eq!(climbed, p("/etc/passwd"));
    assert!(matches!(
        fx.files.open_read(&who, &climbed).await,
        Err(FsError::NotFound)
    ));
    assert_eq!(
        read_all(&fx.files, &who, "/team/drop/in.txt")
            .await
            .unwrap(),
        "in"
    );
}

#[tokio::test]
async fn an_upload_appears_only_when_committed_and_an_abandoned_one_leaves_nothing() {
    let fx = Fixture::new();
    fx.put("team/keep.txt", "original");
    let who = principal(&[("/team", Full)], None);
    let mut upload = fx
        .files
        .create(&who, &p("/team/new.bin"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"partial").await.unwrap();
    upload.flush().await.unwrap();
    assert!(
        !fx.root().join("team/new.bin").exists(),
        "no file under the real name before commit"
    );
    drop(upload);
    assert!(!fx.root().join("team/new.bin").exists());
    assert!(fx.staging_is_empty());
    let abandoned = fx.audit.last().unwrap();
    assert_eq!(
        (abandoned.action, abandoned.outcome),
        (Action::Upload, Outcome::Failed)
    );

    let mut replace = fx
        .files
        .create(&who, &p("/team/keep.txt"), WriteMode::Replace)
        .await
        .unwrap();
    replace.write_all(b"tru").await.unwrap();
    drop(replace);
    assert_eq!(
        std::fs::read_to_string(fx.root().join("team/keep.txt")).unwrap(),
        "original"
    );
}

#[tokio::test]
async fn a_readonly_key_reads_but_never_writes_even_for_a_full_owner() {
    let fx = Fixture::new();
    fx.put("f.txt", "content");
    let who = principal(&[("/", Full)], Some((None, PermissionSet::ReadOnly)));
    assert_eq!(
        read_all(&fx.files, &who, "/f.txt").await.unwrap(),
        "content"
    );
    assert!(matches!(
        write_all(&fx.files, &who, "/g.txt", "x").await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/f.txt"), &p("/h.txt"), true)
            .await,
        Err(FsError::PermissionDenied)
    ));
}

#[tokio::test]
async fn rename_needs_delete_at_the_source_and_write_at_the_destination() {
    let fx = Fixture::new();
    fx.put("in/a.txt", "a");
    fx.put("in/b.txt", "b");
    fx.put("ro/r.txt", "r");
    let who = principal(&[("/in", Full), ("/ro", ReadOnly)], None);
    assert!(matches!(
        fx.files
            .rename(&who, &p("/in/a.txt"), &p("/ro/a.txt"), false)
            .await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/ro/r.txt"), &p("/in/r.txt"), false)
            .await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/in/a.txt"), &p("/in/b.txt"), false)
            .await,
        Err(FsError::AlreadyExists)
    ));
    fx.files
        .rename(&who, &p("/in/a.txt"), &p("/in/b.txt"), true)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.root().join("in/b.txt")).unwrap(),
        "a"
    );
    assert!(matches!(
        fx.files.rename(&who, &p("/in"), &p("/in/x/y"), false).await,
        Err(FsError::PermissionDenied)
    ));
}

#[tokio::test]
async fn the_root_of_a_grant_or_key_path_cannot_be_deleted_or_moved() {
    let fx = Fixture::new();
    fx.put("team/f", "1");
    std::fs::create_dir_all(fx.root().join("empty")).unwrap();
    let who = principal(&[("/team", Full), ("/empty", Full)], None);
    assert!(matches!(
        fx.files.remove_dir(&who, &p("/empty")).await,
        Err(FsError::PermissionDenied)
    ));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/team"), &p("/empty/team"), false)
            .await,
        Err(FsError::PermissionDenied)
    ));
    assert!(fx.root().join("empty").is_dir());
}

#[tokio::test]
async fn storage_errors_map_to_their_own_kinds() {
    let fx = Fixture::new();
    fx.put("d/f.txt", "x");
    let who = principal(&[("/", Full)], None);
    assert!(matches!(
        fx.files.make_dir(&who, &p("/d")).await,
        Err(FsError::AlreadyExists)
    ));
    assert!(matches!(
        fx.files.remove_dir(&who, &p("/d")).await,
        Err(FsError::DirectoryNotEmpty)
    ));
    assert!(matches!(
        fx.files.open_read(&who, &p("/d")).await,
        Err(FsError::IsADirectory)
    ));
    assert!(matches!(
        fx.files.remove_file(&who, &p("/d")).await,
        Err(FsError::IsADirectory)
    ));
    assert!(matches!(
        fx.files.open_read(&who, &p("/nope")).await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        write_all(&fx.files, &who, "/missing/dir/f", "x").await,
        Err(FsError::NotFound | FsError::NotADirectory)
    ));
    assert!(matches!(
        fx.files.list(&who, &p("/d/f.txt")).await,
        Err(FsError::NotADirectory)
    ));
    let failed = fx.audit.last().unwrap();
    assert_eq!(failed.outcome, Outcome::Failed);
}

#[tokio::test]
async fn downloads_seek_and_count_only_the_bytes_sent() {
    let fx = Fixture::new();
    fx.put("big.bin", "0123456789");
    let who = principal(&[("/", Full)], None);
    let mut download = fx.files.open_read(&who, &p("/big.bin")).await.unwrap();
    download.seek(std::io::SeekFrom::Start(6)).await.unwrap();
    let mut rest = String::new();
    download.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "6789");
    drop(download);
    assert_eq!(fx.audit.last().unwrap().bytes, Some(4));
}

#[tokio::test]
async fn times_and_length_can_be_set_with_write_rights() {
    let fx = Fixture::new();
    fx.put("t.txt", "hello world");
    let who = principal(&[("/", Full)], None);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fx.files
        .set_times(&who, &p("/t.txt"), None, Some(when), Unkept::Refuse)
        .await
        .unwrap();
    assert_eq!(
        fx.files.stat(&who, &p("/t.txt")).await.unwrap().modified,
        Some(when)
    );
    fx.files.set_len(&who, &p("/t.txt"), 5).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.root().join("t.txt")).unwrap(),
        "hello"
    );
}
