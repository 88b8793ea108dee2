//! What the file layer does when the storage at a path cannot do something: it answers
//! `Unsupported` before starting, records why, and changes nothing. [`Reduced`] is real
//! local storage that reports fewer capabilities (as an object store would) and counts the
//! server-side copies it is asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{Fixture, p, write_mode};
use crate::audit::Outcome;
use crate::files::{
    Capabilities, EntryChunks, FileReader, FsError, LocalStorage, Metadata, Overwrite, StagedWrite,
    Storage, StorageError, Symlinks, Unkept, WriteMode,
};
use crate::identity::GrantLevel::Full;
use crate::path::SitePath;
use crate::test_support::{TempDir, principal};

struct Reduced {
    inner: LocalStorage,
    caps: Capabilities,
    copies: AtomicUsize,
}

impl Reduced {
    fn fixture(caps: Capabilities) -> (Fixture, Arc<Reduced>) {
        let dir = TempDir::new("caps");
        let storage = Arc::new(Reduced {
            inner: Fixture::storage(&dir, Symlinks::Refuse),
            caps,
            copies: AtomicUsize::new(0),
        });
        (Fixture::over(dir, storage.clone(), 64), storage)
    }
}

/// What an object store can do: create, read, list, copy, and little else.
const OBJECT_STORE: Capabilities = Capabilities {
    random_write: false,
    append: false,
    rename_dir: false,
    atomic_rename: false,
    server_copy: true,
    set_times: false,
    set_len: false,
};

#[async_trait::async_trait]
impl Storage for Reduced {
    fn capabilities(&self, _path: &SitePath) -> Capabilities {
        self.caps
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
        self.copies.fetch_add(1, Ordering::SeqCst);
        self.inner.copy(from, to, overwrite).await
    }
}

/// The last audit record is a failure that says the storage cannot do it.
fn recorded_unsupported(fx: &Fixture) {
    let last = fx.audit.last().unwrap();
    assert_eq!(last.outcome, Outcome::Failed);
    let reason = last.reason.unwrap_or_default();
    assert!(reason.contains("not supported"), "{reason}");
}

#[tokio::test]
async fn in_place_uploads_the_storage_cannot_do_are_refused_before_anything_changes() {
    for (mode, caps) in [
        (
            WriteMode::Append,
            Capabilities {
                append: false,
                ..Capabilities::ALL
            },
        ),
        (
            WriteMode::Update,
            Capabilities {
                random_write: false,
                ..Capabilities::ALL
            },
        ),
        (WriteMode::Append, OBJECT_STORE),
        (WriteMode::Update, OBJECT_STORE),
    ] {
        let (fx, _) = Reduced::fixture(caps);
        fx.put("f.txt", "original");
        let who = principal(&[("/", Full)], None);
        let result = fx.files.create(&who, &p("/f.txt"), mode).await;
        assert!(
            matches!(&result, Err(FsError::Unsupported(why)) if !why.is_empty()),
            "{mode:?}: {:?}",
            result.err()
        );
        recorded_unsupported(&fx);
        assert_eq!(fx.content("f.txt"), "original", "{mode:?}");
        assert!(fx.staging_is_empty());
    }
}

#[tokio::test]
async fn the_other_in_place_mode_and_replacing_uploads_still_work() {
    let append_only = Capabilities {
        random_write: false,
        ..Capabilities::ALL
    };
    let (fx, _) = Reduced::fixture(append_only);
    fx.put("f.txt", "abc");
    let who = principal(&[("/", Full)], None);
    write_mode(&fx.files, &who, "/f.txt", WriteMode::Append, "def")
        .await
        .unwrap();
    assert_eq!(fx.content("f.txt"), "abcdef");
    let (fx, _) = Reduced::fixture(OBJECT_STORE);
    fx.put("f.txt", "abc");
    write_mode(&fx.files, &who, "/f.txt", WriteMode::Replace, "new")
        .await
        .unwrap();
    assert_eq!(fx.content("f.txt"), "new");
}

#[tokio::test]
async fn appending_to_a_file_that_does_not_exist_yet_creates_it_on_any_storage() {
    for mode in [WriteMode::Append, WriteMode::Update] {
        let (fx, _) = Reduced::fixture(OBJECT_STORE);
        let who = principal(&[("/", Full)], None);
        write_mode(&fx.files, &who, "/new.txt", mode, "first")
            .await
            .unwrap();
        assert_eq!(fx.content("new.txt"), "first", "{mode:?}");
    }
}

#[tokio::test]
async fn times_the_storage_cannot_keep_are_ignored_or_refused_as_configured_and_recorded() {
    let (fx, _) = Reduced::fixture(OBJECT_STORE);
    fx.put("t.txt", "x");
    let who = principal(&[("/", Full)], None);
    let before = fx.files.stat(&who, &p("/t.txt")).await.unwrap().modified;
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    fx.files
        .set_times(&who, &p("/t.txt"), None, Some(when), Unkept::Ignore)
        .await
        .unwrap();
    let last = fx.audit.last().unwrap();
    assert_eq!(last.outcome, Outcome::Ok);
    assert!(last.reason.unwrap_or_default().contains("ignored"));
    let result = fx
        .files
        .set_times(&who, &p("/t.txt"), None, Some(when), Unkept::Refuse)
        .await;
    assert!(matches!(result, Err(FsError::Unsupported(_))), "{result:?}");
    recorded_unsupported(&fx);
    assert_eq!(
        fx.files.stat(&who, &p("/t.txt")).await.unwrap().modified,
        before
    );
    // What is hidden stays hidden: the policy answers before the storage's abilities.
    let other = principal(&[("/other", Full)], None);
    assert!(matches!(
        fx.files
            .set_times(&other, &p("/t.txt"), None, Some(when), Unkept::Ignore)
            .await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        fx.files.times_kept(&who, &p("/t.txt"), Unkept::Ignore),
        Ok(false)
    ));
}

#[tokio::test]
async fn truncating_where_the_storage_cannot_is_refused_unless_nothing_would_change() {
    let (fx, _) = Reduced::fixture(OBJECT_STORE);
    fx.put("t.txt", "hello world");
    let who = principal(&[("/", Full)], None);
    let result = fx.files.set_len(&who, &p("/t.txt"), 5).await;
    assert!(matches!(result, Err(FsError::Unsupported(_))), "{result:?}");
    recorded_unsupported(&fx);
    assert_eq!(fx.content("t.txt"), "hello world");
    fx.files.set_len(&who, &p("/t.txt"), 11).await.unwrap();
    assert_eq!(fx.content("t.txt"), "hello world");
}

#[tokio::test]
async fn folders_are_not_renamed_where_the_storage_cannot_but_files_are() {
    let (fx, _) = Reduced::fixture(OBJECT_STORE);
    fx.put("dir/a.txt", "a");
    fx.put("b.txt", "b");
    let who = principal(&[("/", Full)], None);
    let result = fx.files.rename(&who, &p("/dir"), &p("/moved"), false).await;
    assert!(matches!(result, Err(FsError::Unsupported(_))), "{result:?}");
    recorded_unsupported(&fx);
    assert_eq!(fx.content("dir/a.txt"), "a");
    assert!(!fx.root().join("moved").exists());
    fx.files
        .rename(&who, &p("/b.txt"), &p("/c.txt"), false)
        .await
        .unwrap();
    assert_eq!(fx.content("c.txt"), "b");
}

#[tokio::test]
async fn copies_use_the_storage_copy_where_it_has_one_and_stream_otherwise() {
    for (caps, server_copies) in [
        (Capabilities::ALL, 1),
        (
            Capabilities {
                server_copy: false,
                ..Capabilities::ALL
            },
            0,
        ),
    ] {
        let (fx, storage) = Reduced::fixture(caps);
        fx.put("a.txt", "twelve bytes");
        let who = principal(&[("/", Full)], None);
        let copied = fx
            .files
            .copy(&who, &p("/a.txt"), &p("/b.txt"), false)
            .await
            .unwrap();
        assert_eq!(copied, 12);
        assert_eq!(fx.content("b.txt"), "twelve bytes");
        assert_eq!(storage.copies.load(Ordering::SeqCst), server_copies);
        let last = fx.audit.last().unwrap();
        assert_eq!(
            (last.outcome, last.bytes, last.destination.as_deref()),
            (Outcome::Ok, Some(12), Some("/b.txt"))
        );
        // Without the right to replace, an existing destination is left alone.
        fx.put("c.txt", "theirs");
        assert!(matches!(
            fx.files.copy(&who, &p("/a.txt"), &p("/c.txt"), false).await,
            Err(FsError::AlreadyExists)
        ));
        assert_eq!(fx.content("c.txt"), "theirs");
        assert!(fx.staging_is_empty());
    }
}
