//! Mounts over two real local folders: the root disk and an "archive" disk mounted at
//! `/archive`, driven through the `Storage` seam and through `Files`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::files::{Files, FsError, LocalStorage};
use crate::identity::GrantLevel::Full;
use crate::identity::PermissionSet;
use crate::test_support::{MemorySink, TempDir, principal};

struct Disks {
    dir: TempDir,
    mounts: Arc<Mounts>,
}

fn p(s: &str) -> SitePath {
    SitePath::parse(s).unwrap()
}

fn local(dir: &TempDir, name: &str) -> Arc<dyn Storage> {
    Arc::new(
        LocalStorage::open(
            &dir.path().join(name),
            &dir.path().join(format!("staging-{name}")),
        )
        .unwrap(),
    )
}

impl Disks {
    /// The root disk at `/`, and one disk per mount point given.
    fn new(at: &[&str]) -> Disks {
        let dir = TempDir::new("mounts");
        let root = local(&dir, "root");
        let mounts = at
            .iter()
            .enumerate()
            .map(|(i, at)| (p(at), local(&dir, &format!("disk{i}"))))
            .collect();
        let mounts = Arc::new(Mounts::new(root, mounts).unwrap());
        Disks { dir, mounts }
    }

    /// A file on a disk (`root`, `disk0`, …), written directly.
    fn put(&self, disk: &str, rel: &str, content: &str) {
        let path = self.dir.path().join(disk).join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn read(&self, disk: &str, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join(disk).join(rel)).ok()
    }

    fn exists(&self, disk: &str, rel: &str) -> bool {
        self.dir.path().join(disk).join(rel).exists()
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let mut chunks = self.mounts.read_dir_chunks(&p(path)).await.unwrap();
        let mut names = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            names.extend(chunk.into_iter().map(|e| e.name));
        }
        names.sort();
        names
    }

    async fn write(&self, path: &str, content: &str) -> Result<(), StorageError> {
        let mut staged = self
            .mounts
            .begin_write(&p(path), WriteMode::Replace, Overwrite::Allow)
            .await?;
        staged.writer().write_all(content.as_bytes()).await?;
        staged.commit().await
    }

    async fn read_back(&self, path: &str) -> Result<String, StorageError> {
        let mut reader = self.mounts.open_read(&p(path)).await?;
        let mut out = String::new();
        reader.read_to_string(&mut out).await?;
        Ok(out)
    }
}

#[tokio::test]
async fn paths_go_to_the_longest_mounted_prefix_by_whole_names() {
    let disks = Disks::new(&["/archive"]);
    disks
        .write("/archive/a.txt", "on the archive")
        .await
        .unwrap();
    disks.write("/archive2/b.txt", "x").await.unwrap_err(); // no such folder on the root disk
    std::fs::create_dir_all(disks.dir.path().join("root/archive2")).unwrap();
    disks.write("/archive2/b.txt", "on the root").await.unwrap();
    assert_eq!(
        disks.read("disk0", "a.txt").as_deref(),
        Some("on the archive")
    );
    assert!(!disks.exists("root", "archive/a.txt"));
    assert_eq!(
        disks.read("root", "archive2/b.txt").as_deref(),
        Some("on the root")
    );
    assert!(!disks.exists("disk0", "2/b.txt") && !disks.exists("disk0", "archive2"));
    assert_eq!(
        disks.read_back("/archive/a.txt").await.unwrap(),
        "on the archive"
    );
}

#[tokio::test]
async fn a_folder_holding_mount_points_lists_them_once_as_folders() {
    let disks = Disks::new(&["/archive", "/deep/er/mnt"]);
    disks.put("root", "top.txt", "t");
    // Without a folder of that name on the root disk, and with one (shadowed).
    assert_eq!(disks.names("/").await, ["archive", "deep", "top.txt"]);
    disks.put("root", "archive/hidden-by-the-mount.txt", "h");
    disks.put("root", "deep/er/real.txt", "r");
    assert_eq!(disks.names("/").await, ["archive", "deep", "top.txt"]);
    assert_eq!(disks.names("/deep").await, ["er"]);
    assert_eq!(disks.names("/deep/er").await, ["mnt", "real.txt"]);
    disks.put("disk0", "in-archive.txt", "a");
    assert_eq!(disks.names("/archive").await, ["in-archive.txt"]);
    for path in ["/archive", "/deep", "/deep/er", "/deep/er/mnt"] {
        assert!(
            disks.mounts.metadata(&p(path)).await.unwrap().is_dir(),
            "{path}"
        );
    }
    let mut chunks = disks.mounts.read_dir_chunks(&p("/")).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        kinds.extend(chunk.into_iter().map(|e| (e.name, e.metadata.kind)));
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(kinds[0], ("archive".to_owned(), EntryKind::Dir));
}

#[tokio::test]
async fn nested_mounts_route_to_the_deepest_one() {
    let disks = Disks::new(&["/a", "/a/b"]);
    disks.write("/a/x.txt", "outer").await.unwrap();
    disks.write("/a/b/y.txt", "inner").await.unwrap();
    assert_eq!(disks.read("disk0", "x.txt").as_deref(), Some("outer"));
    assert_eq!(disks.read("disk1", "y.txt").as_deref(), Some("inner"));
    assert_eq!(disks.names("/a").await, ["b", "x.txt"]);
}

#[tokio::test]
async fn mount_points_and_folders_above_them_cannot_be_removed_or_renamed() {
    let disks = Disks::new(&["/archive", "/deep/mnt"]);
    disks.put("disk0", "keep.txt", "k");
    for path in ["/archive", "/deep", "/deep/mnt"] {
        let removed = disks.mounts.remove_dir(&p(path)).await.unwrap_err();
        assert_eq!(removed.kind, StorageErrorKind::Unsupported, "{path}");
        assert!(removed.detail.contains("mount point"), "{}", removed.detail);
        let renamed = disks
            .mounts
            .rename(&p(path), &p("/elsewhere"), Overwrite::Allow)
            .await
            .unwrap_err();
        assert_eq!(renamed.kind, StorageErrorKind::Unsupported, "{path}");
        let made = disks.mounts.create_dir(&p(path)).await.unwrap_err();
        assert_eq!(made.kind, StorageErrorKind::AlreadyExists, "{path}");
    }
    std::fs::create_dir_all(disks.dir.path().join("root/elsewhere")).unwrap();
    let onto = disks
        .mounts
        .rename(&p("/elsewhere"), &p("/archive"), Overwrite::Allow)
        .await
        .unwrap_err();
    assert_eq!(onto.kind, StorageErrorKind::AlreadyExists);
    assert_eq!(disks.read("disk0", "keep.txt").as_deref(), Some("k"));
    assert!(disks.exists("root", "elsewhere"));
}

#[tokio::test]
async fn a_file_renamed_across_mounts_is_copied_then_deleted() {
    let disks = Disks::new(&["/archive"]);
    disks.put("root", "report.txt", "quarterly");
    disks
        .mounts
        .rename(
            &p("/report.txt"),
            &p("/archive/report.txt"),
            Overwrite::Refuse,
        )
        .await
        .unwrap();
    assert_eq!(
        disks.read("disk0", "report.txt").as_deref(),
        Some("quarterly")
    );
    assert!(!disks.exists("root", "report.txt"));
    // Back again, onto an existing file: refused without the right to replace, and then
    // neither side changes.
    disks.put("root", "report.txt", "newer");
    let refused = disks
        .mounts
        .rename(
            &p("/archive/report.txt"),
            &p("/report.txt"),
            Overwrite::Refuse,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, StorageErrorKind::AlreadyExists);
    assert_eq!(disks.read("root", "report.txt").as_deref(), Some("newer"));
    assert_eq!(
        disks.read("disk0", "report.txt").as_deref(),
        Some("quarterly")
    );
    disks
        .mounts
        .rename(
            &p("/archive/report.txt"),
            &p("/report.txt"),
            Overwrite::Allow,
        )
        .await
        .unwrap();
    assert_eq!(
        disks.read("root", "report.txt").as_deref(),
        Some("quarterly")
    );
    assert!(!disks.exists("disk0", "report.txt"));
}

#[tokio::test]
async fn a_folder_cannot_move_across_mounts_and_stays_whole() {
    let disks = Disks::new(&["/archive"]);
    disks.put("root", "projects/a.txt", "a");
    let err = disks
        .mounts
        .rename(&p("/projects"), &p("/archive/projects"), Overwrite::Refuse)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::Unsupported);
    assert_eq!(disks.read("root", "projects/a.txt").as_deref(), Some("a"));
    assert!(!disks.exists("disk0", "projects"));
}

#[tokio::test]
async fn copies_inside_one_mount_use_its_backend_and_across_mounts_are_left_to_the_caller() {
    let disks = Disks::new(&["/archive"]);
    disks.put("disk0", "a.txt", "abc");
    disks
        .mounts
        .copy(
            &p("/archive/a.txt"),
            &p("/archive/b.txt"),
            Overwrite::Refuse,
        )
        .await
        .unwrap();
    assert_eq!(disks.read("disk0", "b.txt").as_deref(), Some("abc"));
    let across = disks
        .mounts
        .copy(&p("/archive/a.txt"), &p("/a.txt"), Overwrite::Refuse)
        .await
        .unwrap_err();
    assert_eq!(across.kind, StorageErrorKind::Unsupported);
    assert!(!disks.exists("root", "a.txt"));
}

#[tokio::test]
async fn paths_with_dot_dot_never_cross_a_mount_boundary() {
    // `..` is resolved by `SitePath` before any storage sees it: what climbs out of the
    // mount lands on the root disk, never outside either root.
    let disks = Disks::new(&["/archive"]);
    disks.put("root", "secret.txt", "root's");
    let climbed = SitePath::resolve(&p("/archive"), "../secret.txt").unwrap();
    assert_eq!(climbed, p("/secret.txt"));
    let mut out = String::new();
    disks
        .mounts
        .open_read(&climbed)
        .await
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "root's");
    // Nothing above the archive disk's own root can be named through the mount.
    let escaped = SitePath::resolve(&p("/archive"), "../../../etc/passwd").unwrap();
    assert_eq!(escaped, p("/etc/passwd"));
    assert!(disks.mounts.open_read(&escaped).await.is_err());
}

#[tokio::test]
async fn files_over_mounts_keep_one_tree_for_policy_and_audit() {
    let disks = Disks::new(&["/archive"]);
    disks.put("disk0", "old.txt", "old");
    disks.put("root", "mine.txt", "mine");
    let audit = Arc::new(MemorySink::default());
    let files = Files::new(disks.mounts.clone(), audit.clone(), 64);
    let key = principal(&[("/", Full)], Some((Some("archive"), PermissionSet::Full)));
    let names: Vec<String> = files
        .list(&key, &p("/archive"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["old.txt"]);
    let root: Vec<String> = files
        .list(&key, &p("/"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(root, ["archive"], "only the way to its folder");
    // A key on /archive cannot move a file out of it, nor read beside it.
    assert!(matches!(
        files
            .rename(&key, &p("/archive/old.txt"), &p("/old.txt"), false)
            .await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        files.open_read(&key, &p("/mine.txt")).await,
        Err(FsError::NotFound)
    ));
    assert_eq!(disks.read("disk0", "old.txt").as_deref(), Some("old"));
    // The mount point is the key's root: not removable by it, and not by the owner either.
    assert!(matches!(
        files.remove_dir(&key, &p("/archive")).await,
        Err(FsError::PermissionDenied)
    ));
    let owner = principal(&[("/", Full)], None);
    assert!(matches!(
        files.remove_dir(&owner, &p("/archive")).await,
        Err(FsError::Unsupported(_))
    ));
    // Copies across mounts are streamed by the file layer, audited with their bytes.
    let copied = files
        .copy(&owner, &p("/archive/old.txt"), &p("/copy.txt"), false)
        .await
        .unwrap();
    assert_eq!(copied, 3);
    assert_eq!(disks.read("root", "copy.txt").as_deref(), Some("old"));
    let record = audit.last().unwrap();
    assert_eq!(
        (
            record.path.as_deref(),
            record.destination.as_deref(),
            record.bytes
        ),
        (Some("/archive/old.txt"), Some("/copy.txt"), Some(3))
    );
}
