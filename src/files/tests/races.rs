//! A file that appears between the file layer's checks and the storage call is never
//! replaced where replacing was not allowed: uploads, renames and copies (streamed or made
//! by the storage) commit atomically.
//! [`Meanwhile`] is real local storage that lets "someone else" create a file at the moment
//! the layer has checked and is about to act.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;

use super::{Fixture, p, write_all};
use crate::files::{
    EntryChunks, FileReader, FsError, LocalStorage, Metadata, Overwrite, StagedWrite, Storage,
    StorageError, Symlinks, WriteMode,
};
use crate::identity::GrantLevel::{Full, WriteOnly};
use crate::identity::PermissionSet;
use crate::path::SitePath;
use crate::test_support::{TempDir, principal};

/// Local storage that, once armed, writes `theirs` at a disk path just before the next
/// `begin_write` or `rename` runs: the other principal winning the race.
struct Meanwhile {
    inner: LocalStorage,
    armed: Mutex<Option<PathBuf>>,
}

impl Meanwhile {
    fn fixture() -> (Fixture, Arc<Meanwhile>) {
        let dir = TempDir::new("race");
        let storage = Arc::new(Meanwhile {
            inner: Fixture::storage(&dir, Symlinks::Refuse),
            armed: Mutex::new(None),
        });
        (Fixture::over(dir, storage.clone(), 64), storage)
    }

    fn arm(&self, disk_path: PathBuf) {
        *self.armed.lock().unwrap() = Some(disk_path);
    }

    fn fire(&self) {
        if let Some(path) = self.armed.lock().unwrap().take() {
            std::fs::write(path, "theirs").unwrap();
        }
    }
}

#[async_trait::async_trait]
impl Storage for Meanwhile {
    fn capabilities(&self, path: &SitePath) -> crate::files::Capabilities {
        self.inner.capabilities(path)
    }
    async fn metadata(&self, path: &SitePath) -> Result<Metadata, StorageError> {
        self.inner.metadata(path).await
    }
    async fn read_dir_chunks(&self, path: &SitePath) -> Result<EntryChunks, StorageError> {
        self.inner.read_dir_chunks(path).await
    }
    async fn open_read(&self, path: &SitePath) -> Result<Box<dyn FileReader>, StorageError> {
        self.inner.open_read(path).await
    }
    async fn begin_write(
        &self,
        path: &SitePath,
        mode: WriteMode,
        overwrite: Overwrite,
    ) -> Result<Box<dyn StagedWrite>, StorageError> {
        self.fire();
        self.inner.begin_write(path, mode, overwrite).await
    }
    async fn create_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        self.inner.create_dir(path).await
    }
    async fn remove_file(&self, path: &SitePath) -> Result<(), StorageError> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, path: &SitePath) -> Result<(), StorageError> {
        self.inner.remove_dir(path).await
    }
    async fn rename(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        self.fire();
        self.inner.rename(from, to, overwrite).await
    }
    async fn set_times(
        &self,
        path: &SitePath,
        accessed: Option<SystemTime>,
        modified: Option<SystemTime>,
    ) -> Result<(), StorageError> {
        self.inner.set_times(path, accessed, modified).await
    }
    async fn set_len(&self, path: &SitePath, len: u64) -> Result<(), StorageError> {
        self.inner.set_len(path, len).await
    }
    async fn copy(
        &self,
        from: &SitePath,
        to: &SitePath,
        overwrite: Overwrite,
    ) -> Result<(), StorageError> {
        self.fire();
        self.inner.copy(from, to, overwrite).await
    }
}

#[tokio::test]
async fn a_create_only_upload_committed_after_someone_else_created_the_name_fails_and_leaves_their_file()
 {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root().join("drop")).unwrap();
    let key = principal(
        &[("/", Full)],
        Some((Some("drop"), PermissionSet::WriteOnly)),
    );
    let owner = principal(&[("/", Full)], None);
    let mut upload = fx
        .files
        .create(&key, &p("/drop/report.pdf"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"key's bytes").await.unwrap();
    write_all(&fx.files, &owner, "/drop/report.pdf", "owner's bytes")
        .await
        .unwrap();
    assert!(matches!(upload.commit().await, Err(FsError::AlreadyExists)));
    assert_eq!(fx.content("drop/report.pdf"), "owner's bytes");
    assert!(fx.staging_is_empty(), "the refused upload leaves nothing");
}

#[tokio::test]
async fn a_create_only_upload_never_overwrites_a_file_that_appears_before_it_opens_in_any_mode() {
    for mode in [WriteMode::Replace, WriteMode::Update, WriteMode::Append] {
        let (fx, storage) = Meanwhile::fixture();
        std::fs::create_dir_all(fx.root().join("drop")).unwrap();
        let key = principal(&[("/drop", WriteOnly)], None);
        storage.arm(fx.root().join("drop/f.txt"));
        let result = async {
            let mut upload = fx.files.create(&key, &p("/drop/f.txt"), mode).await?;
            upload.write_all(b"key").await?;
            upload.commit().await
        }
        .await;
        assert!(
            matches!(result, Err(FsError::AlreadyExists)),
            "{mode:?}: {result:?}"
        );
        assert_eq!(fx.content("drop/f.txt"), "theirs", "{mode:?}");
        assert!(fx.staging_is_empty());
    }
}

#[tokio::test]
async fn an_exclusive_create_never_overwrites_a_file_that_appears_meanwhile_even_with_full_rights()
{
    for mode in [WriteMode::Replace, WriteMode::Update] {
        let (fx, storage) = Meanwhile::fixture();
        let who = principal(&[("/", Full)], None);
        storage.arm(fx.root().join("f.txt"));
        let result = async {
            let mut upload = fx.files.create_new(&who, &p("/f.txt"), mode).await?;
            upload.write_all(b"mine").await?;
            upload.commit().await
        }
        .await;
        assert!(matches!(result, Err(FsError::AlreadyExists)), "{mode:?}");
        assert_eq!(fx.content("f.txt"), "theirs");
    }
}

#[tokio::test]
async fn rename_without_overwrite_never_replaces_a_file_that_appears_meanwhile() {
    let (fx, storage) = Meanwhile::fixture();
    fx.put("a.txt", "mine");
    let who = principal(&[("/", Full)], None);
    storage.arm(fx.root().join("b.txt"));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/a.txt"), &p("/b.txt"), false)
            .await,
        Err(FsError::AlreadyExists)
    ));
    assert_eq!(
        (fx.content("a.txt"), fx.content("b.txt")),
        ("mine".to_owned(), "theirs".to_owned())
    );
}

#[tokio::test]
async fn rename_into_a_drop_box_never_replaces_a_file_that_appears_meanwhile() {
    let (fx, storage) = Meanwhile::fixture();
    fx.put("in/a.txt", "mine");
    std::fs::create_dir_all(fx.root().join("drop")).unwrap();
    let who = principal(&[("/in", Full), ("/drop", WriteOnly)], None);
    storage.arm(fx.root().join("drop/a.txt"));
    assert!(matches!(
        fx.files
            .rename(&who, &p("/in/a.txt"), &p("/drop/a.txt"), true)
            .await,
        Err(FsError::AlreadyExists)
    ));
    assert_eq!(fx.content("drop/a.txt"), "theirs");
    assert_eq!(fx.content("in/a.txt"), "mine");
}

#[tokio::test]
async fn copy_without_the_right_to_replace_never_replaces_a_file_that_appears_meanwhile() {
    let cases = [
        // (grants, overwrite requested)
        (vec![("/", Full)], false),
        (vec![("/in", Full), ("/drop", WriteOnly)], true),
    ];
    for (grants, overwrite) in cases {
        let (fx, storage) = Meanwhile::fixture();
        fx.put("in/a.txt", "mine");
        std::fs::create_dir_all(fx.root().join("drop")).unwrap();
        let who = principal(&grants, None);
        storage.arm(fx.root().join("drop/a.txt"));
        assert!(matches!(
            fx.files
                .copy(&who, &p("/in/a.txt"), &p("/drop/a.txt"), overwrite)
                .await,
            Err(FsError::AlreadyExists)
        ));
        assert_eq!(fx.content("drop/a.txt"), "theirs");
        assert!(fx.staging_is_empty());
    }
}

#[tokio::test]
async fn rename_and_copy_with_the_right_to_replace_still_replace() {
    let (fx, storage) = Meanwhile::fixture();
    fx.put("a.txt", "a");
    fx.put("c.txt", "c");
    let who = principal(&[("/", Full)], None);
    storage.arm(fx.root().join("b.txt"));
    fx.files
        .rename(&who, &p("/a.txt"), &p("/b.txt"), true)
        .await
        .unwrap();
    assert_eq!(fx.content("b.txt"), "a");
    fx.files
        .copy(&who, &p("/c.txt"), &p("/b.txt"), true)
        .await
        .unwrap();
    assert_eq!(fx.content("b.txt"), "c");
}
