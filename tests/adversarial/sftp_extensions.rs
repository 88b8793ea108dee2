//! Attacks on the SFTP extensions of issue 18: `copy-data` on one handle, past the end,
//! with a huge length, or against the principal's rights; `expand-path` with `..`, NUL and
//! over-long paths; `statvfs` on hidden paths; `fsync` on a closed handle; malformed
//! payloads. Each gets a clear status and touches nothing.

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use russh_sftp::protocol::{OpenFlags, Packet, StatusCode};

use crate::support::TestGateway;
use crate::support::sftp_client::{self, Sftp, code};

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

fn copy(from: &str, roff: u64, len: u64, to: &str, woff: u64) -> Vec<u8> {
    let mut out = string(from.as_bytes());
    out.extend(roff.to_be_bytes());
    out.extend(len.to_be_bytes());
    out.extend(string(to.as_bytes()));
    out.extend(woff.to_be_bytes());
    out
}

fn status_of(packet: Packet) -> StatusCode {
    match packet {
        Packet::Status(s) => s.status_code,
        other => panic!("expected a status, got {other:?}"),
    }
}

async fn as_key(gw: &TestGateway, owner: i64, set: PermissionSet) -> Sftp {
    let (id, secret) = gw
        .key(Some(owner), &format!("{set:?} key"), None, set)
        .await;
    sftp_client::login(gw.addr("sftp"), &format!("@api-{id}"), &secret)
        .await
        .expect("key login")
}

#[tokio::test]
async fn copy_data_abuse_is_refused_or_bounded_and_touches_nothing_else() {
    let gw = TestGateway::start().await;
    let owner = gw.user("mal", "mal-password", &[("/mal", Full)]).await;
    gw.user("victim", "victim-password", &[("/victim", Full)])
        .await;
    let content = b"0123456789".repeat(1000);
    gw.write("mal/src.bin", &content).await;
    gw.write("victim/secret.txt", b"secret").await;
    let s = sftp_client::login(gw.addr("sftp"), "mal", "mal-password")
        .await
        .unwrap();

    let src = s
        .raw
        .open("src.bin", OpenFlags::READ, Default::default())
        .await
        .unwrap()
        .handle;
    // From a read handle to itself.
    let r = s
        .raw
        .extended("copy-data", copy(&src, 0, 0, &src, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Failure);
    // Into a handle open for reading.
    let src2 = s
        .raw
        .open("src.bin", OpenFlags::READ, Default::default())
        .await
        .unwrap()
        .handle;
    let r = s
        .raw
        .extended("copy-data", copy(&src, 0, 0, &src2, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::PermissionDenied);
    // Unknown handles and malformed payloads.
    let r = s
        .raw
        .extended("copy-data", copy("nope", 0, 0, &src, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Failure);
    let r = s
        .raw
        .extended("copy-data", string(src.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::BadMessage);

    let dst = s
        .raw
        .open(
            "dst.bin",
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            Default::default(),
        )
        .await
        .unwrap()
        .handle;
    // Beyond the source's end: nothing to copy.
    let r = s
        .raw
        .extended("copy-data", copy(&src, 1 << 40, 10, &dst, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Ok);
    // A write offset past the destination's end would leave a hole: refused.
    let r = s
        .raw
        .extended("copy-data", copy(&src, 0, 10, &dst, 1 << 30))
        .await
        .unwrap();
    assert_ne!(status_of(r), StatusCode::Ok);
    // A huge length stops at the source's end.
    let r = s
        .raw
        .extended("copy-data", copy(&src, 0, u64::MAX, &dst, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Ok);
    assert_eq!(code(s.raw.close(dst.as_str()).await), StatusCode::Ok);
    assert_eq!(gw.read("mal/dst.bin").await.unwrap(), content);
    assert_eq!(code(s.raw.close(src.as_str()).await), StatusCode::Ok);
    assert_eq!(code(s.raw.close(src2.as_str()).await), StatusCode::Ok);

    // fsync on a closed handle.
    assert_eq!(code(s.raw.fsync(dst.as_str()).await), StatusCode::Failure);
    let r = s
        .raw
        .extended("fsync@openssh.com", vec![0, 0])
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::BadMessage);

    // A read-only key cannot open a destination, so cannot copy into a new file; a
    // write-only key cannot open a source, so cannot copy out.
    let ro = as_key(&gw, owner, PermissionSet::ReadOnly).await;
    assert_eq!(
        code(
            ro.raw
                .open(
                    "new.bin",
                    OpenFlags::WRITE | OpenFlags::CREATE,
                    Default::default()
                )
                .await
        ),
        StatusCode::PermissionDenied
    );
    let wo = as_key(&gw, owner, PermissionSet::WriteOnly).await;
    assert_eq!(
        code(
            wo.raw
                .open("src.bin", OpenFlags::READ, Default::default())
                .await
        ),
        StatusCode::PermissionDenied
    );
    let out = wo
        .raw
        .open(
            "out.bin",
            OpenFlags::WRITE | OpenFlags::CREATE,
            Default::default(),
        )
        .await
        .unwrap()
        .handle;
    // Its only handle is a write handle: as a source it is refused.
    let r = wo
        .raw
        .extended("copy-data", copy(&out, 0, 0, &out, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Failure);
    let out2 = wo
        .raw
        .open(
            "out2.bin",
            OpenFlags::WRITE | OpenFlags::CREATE,
            Default::default(),
        )
        .await
        .unwrap()
        .handle;
    let r = wo
        .raw
        .extended("copy-data", copy(&out, 0, 0, &out2, 0))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::PermissionDenied);
    assert!(!gw.exists("mal/new.bin").await);
    assert_eq!(gw.read("victim/secret.txt").await.unwrap(), b"secret");
    gw.stop().await;
}

#[tokio::test]
async fn expand_path_and_statvfs_leak_nothing() {
    let gw = TestGateway::start().await;
    gw.user("mal", "mal-password", &[("/mal", Full)]).await;
    gw.user("victim", "victim-password", &[("/victim", Full)])
        .await;
    let s = sftp_client::login(gw.addr("sftp"), "mal", "mal-password")
        .await
        .unwrap();

    // `..` is normalised like any path (it names a path; reaching it is still checked).
    assert_eq!(
        s.raw.expand_path("~/../../..").await.unwrap().files[0].filename,
        "/"
    );
    let nul = s
        .raw
        .extended("expand-path@openssh.com", string(b"~/a\0b"))
        .await
        .unwrap();
    assert_eq!(status_of(nul), StatusCode::Failure);
    let long = format!("~/{}", "a".repeat(70_000));
    let long = s
        .raw
        .extended("expand-path@openssh.com", string(long.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status_of(long), StatusCode::Failure);
    let other = s
        .raw
        .extended("expand-path@openssh.com", string(b"~victim"))
        .await
        .unwrap();
    assert_eq!(status_of(other), StatusCode::NoSuchFile);
    let home = s
        .raw
        .extended("home-directory", string(b"victim"))
        .await
        .unwrap();
    assert_eq!(status_of(home), StatusCode::NoSuchFile);

    // statvfs: hidden paths are NotFound, exactly like stat; invalid ones fail cleanly.
    for hidden in ["/victim", "/victim/secret.txt", "/nowhere"] {
        let stat = code(s.raw.stat(hidden).await);
        let vfs = code(s.raw.statvfs(hidden).await);
        assert_eq!(stat, StatusCode::NoSuchFile, "{hidden}");
        assert_eq!(vfs, stat, "{hidden}");
    }
    let r = s
        .raw
        .extended("statvfs@openssh.com", string(b"/mal/\0"))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Failure);
    let r = s
        .raw
        .extended("statvfs@openssh.com", vec![0, 0, 0, 9, b'/'])
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::BadMessage);
    let r = s
        .raw
        .extended("fstatvfs@openssh.com", string(b"no-such-handle"))
        .await
        .unwrap();
    assert_eq!(status_of(r), StatusCode::Failure);
    gw.stop().await;
}
