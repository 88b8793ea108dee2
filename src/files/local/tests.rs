use super::*;
use crate::test_support::TempDir;

#[test]
fn leftovers_of_interrupted_uploads_are_cleared_at_open() {
    let dir = TempDir::new("local");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("upload-stale"), "half").unwrap();
    LocalStorage::open(&dir.path().join("root"), &staging).unwrap();
    assert!(std::fs::read_dir(&staging).unwrap().next().is_none());
}

#[tokio::test]
async fn the_kernel_refuses_paths_that_leave_the_root() {
    let dir = TempDir::new("local");
    let storage =
        LocalStorage::open(&dir.path().join("root"), &dir.path().join("staging")).unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("root/slash")).unwrap();
    let err = storage
        .metadata(&SitePath::parse("/slash/etc/passwd").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind, StorageErrorKind::PermissionDenied, "{err}");
    let err = storage
        .open_read(&SitePath::parse("/slash/etc/hostname").unwrap())
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, StorageErrorKind::PermissionDenied, "{err}");
}
