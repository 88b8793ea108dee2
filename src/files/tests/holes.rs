//! No write leaves a hole: an upload writes at most at the current end of its file and a
//! length is never extended, so a few bytes cannot become a huge sparse file.

use std::io::SeekFrom;

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{Fixture, p};
use crate::files::{FsError, WriteMode};
use crate::identity::GrantLevel::Full;
use crate::identity::PermissionSet;
use crate::test_support::principal;

const TIB: u64 = 1 << 40;

fn disk_len(fx: &Fixture, rel: &str) -> u64 {
    std::fs::metadata(fx.root().join(rel)).unwrap().len()
}

fn is_hole(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::InvalidInput && err.to_string().contains("hole")
}

#[tokio::test]
async fn a_seek_past_the_end_of_a_new_upload_is_refused_and_the_file_stays_small() {
    let fx = Fixture::new();
    let who = principal(&[("/", Full)], None);
    let mut upload = fx
        .files
        .create(&who, &p("/big.bin"), WriteMode::Replace)
        .await
        .unwrap();
    upload.write_all(b"abc").await.unwrap();
    for target in [SeekFrom::Start(TIB), SeekFrom::Start(4), SeekFrom::End(1)] {
        let err = upload.seek(target).await.unwrap_err();
        assert!(is_hole(&err), "{target:?}: {err}");
    }
    upload.write_all(b"d").await.unwrap();
    upload.commit().await.unwrap();
    assert_eq!(fx.content("big.bin"), "abcd");
}

#[tokio::test]
async fn a_seek_past_the_end_of_an_existing_file_is_refused_in_place_and_it_stays_small() {
    let fx = Fixture::new();
    fx.put("f.bin", "hello");
    // A writeonly key creating a new file in place, and a full principal changing one.
    let creator = principal(&[("/", Full)], Some((None, PermissionSet::WriteOnly)));
    let full = principal(&[("/", Full)], None);
    for (who, name) in [(&full, "f.bin"), (&creator, "new.bin")] {
        for mode in [WriteMode::Update, WriteMode::Append] {
            let path = format!("/{name}");
            let mut upload = fx.files.create(who, &p(&path), mode).await.unwrap();
            let err = upload.seek(SeekFrom::Start(TIB)).await.unwrap_err();
            assert!(is_hole(&err), "{name} {mode:?}: {err}");
            drop(upload);
            let _ = std::fs::remove_file(fx.root().join("new.bin"));
        }
    }
    let mut upload = fx
        .files
        .create(&full, &p("/f.bin"), WriteMode::Update)
        .await
        .unwrap();
    let err = upload.seek(SeekFrom::Start(6)).await.unwrap_err();
    assert!(is_hole(&err), "{err}");
    upload.write_all(b"J").await.unwrap();
    upload.commit().await.unwrap();
    assert_eq!(fx.content("f.bin"), "Jello");
    assert_eq!(disk_len(&fx, "f.bin"), 5);
}

#[tokio::test]
async fn sequential_writes_and_resuming_at_the_end_still_work() {
    let fx = Fixture::new();
    let who = principal(&[("/", Full)], None);
    // Writes in offset order (as SFTP clients send them), with seeks to where they are.
    let mut upload = fx
        .files
        .create(&who, &p("/seq.txt"), WriteMode::Replace)
        .await
        .unwrap();
    for (offset, chunk) in [(0u64, "hello"), (5, " "), (6, "world")] {
        upload.seek(SeekFrom::Start(offset)).await.unwrap();
        upload.write_all(chunk.as_bytes()).await.unwrap();
    }
    upload.commit().await.unwrap();
    assert_eq!(fx.content("seq.txt"), "hello world");

    // A resumed upload (FTP REST at the current size, a ranged PUT at the end).
    let mut resume = fx
        .files
        .create(&who, &p("/seq.txt"), WriteMode::Update)
        .await
        .unwrap();
    resume.seek(SeekFrom::Start(11)).await.unwrap();
    resume.write_all(b"!").await.unwrap();
    resume.seek(SeekFrom::End(0)).await.unwrap();
    resume.write_all(b"?").await.unwrap();
    resume.seek(SeekFrom::Current(-13)).await.unwrap();
    resume.write_all(b"H").await.unwrap();
    resume.commit().await.unwrap();
    assert_eq!(fx.content("seq.txt"), "Hello world!?");

    // Appending grows the file from its end.
    let mut append = fx
        .files
        .create(&who, &p("/seq.txt"), WriteMode::Append)
        .await
        .unwrap();
    append.write_all(b"ab").await.unwrap();
    append.seek(SeekFrom::End(0)).await.unwrap();
    append.write_all(b"c").await.unwrap();
    append.commit().await.unwrap();
    assert_eq!(fx.content("seq.txt"), "Hello world!?abc");
}

#[tokio::test]
async fn set_len_truncates_but_never_extends_a_file() {
    let fx = Fixture::new();
    fx.put("t.txt", "hello");
    let who = principal(&[("/", Full)], None);
    assert!(matches!(
        fx.files.set_len(&who, &p("/t.txt"), TIB).await,
        Err(FsError::LeavesHole)
    ));
    assert!(matches!(
        fx.files.set_len(&who, &p("/t.txt"), 6).await,
        Err(FsError::LeavesHole)
    ));
    assert_eq!(disk_len(&fx, "t.txt"), 5);
    fx.files.set_len(&who, &p("/t.txt"), 5).await.unwrap();
    fx.files.set_len(&who, &p("/t.txt"), 4).await.unwrap();
    assert_eq!(fx.content("t.txt"), "hell");

    // Through an upload's handle, in place and under a temporary name.
    for mode in [WriteMode::Update, WriteMode::Replace] {
        let mut upload = fx.files.create(&who, &p("/t.txt"), mode).await.unwrap();
        upload.write_all(b"ab").await.unwrap();
        upload.flush().await.unwrap();
        let end = if mode == WriteMode::Update { 4 } else { 2 };
        assert!(
            matches!(upload.set_len(TIB).await, Err(FsError::LeavesHole)),
            "{mode:?}"
        );
        assert!(
            matches!(upload.set_len(end + 1).await, Err(FsError::LeavesHole)),
            "{mode:?}"
        );
        upload.set_len(end).await.unwrap();
        upload.set_len(1).await.unwrap();
        // The position (2) is now past the end: writing there would leave a hole.
        let err = upload.write_all(b"x").await.unwrap_err();
        assert!(is_hole(&err), "{mode:?}: {err}");
        upload.seek(SeekFrom::End(0)).await.unwrap();
        upload.write_all(b"b").await.unwrap();
        upload.commit().await.unwrap();
        assert_eq!(fx.content("t.txt"), "ab", "{mode:?}");
    }
}
