//! SFTP as OpenSSH clients expect it (issue 18): the OpenSSH `sftp` client in batch mode
//! (`chmod`, `chown`, `df`, `cp`, `ln`, `ln -s`, `ls -l`, `put -a`/`get -a`) for a full, a
//! read-only and a write-only principal, checked against its output and the disk; and the
//! raw replies of each extension through russh-sftp's raw client.

mod support;

use std::path::Path;
use std::process::Command;

use filegate::identity::GrantLevel::{Full, ReadOnly};
use filegate::identity::PermissionSet;
use filegate::test_support::TempDir;
use russh_sftp::protocol::{OpenFlags, Packet, StatusCode};
use support::TestGateway;
use support::sftp_client::{self, Sftp, code};

/// Runs `script` with OpenSSH's `sftp -b` as `user`, in the local folder `local`; returns
/// whether the batch succeeded and what it printed.
async fn batch(
    gw: &TestGateway,
    user: &str,
    secret: &str,
    local: &Path,
    script: &str,
) -> (bool, String) {
    batch_with(gw, user, secret, local, script, &[]).await
}

/// [`batch`] with more `sftp` options (e.g. `-R 1024` outstanding requests).
async fn batch_with(
    gw: &TestGateway,
    user: &str,
    secret: &str,
    local: &Path,
    script: &str,
    options: &[&str],
) -> (bool, String) {
    let options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
    let addr = gw.addr("sftp");
    let script_path = local.join("batch.txt");
    std::fs::write(&script_path, script).unwrap();
    let (user, secret, local) = (user.to_owned(), secret.to_owned(), local.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = Command::new("sshpass")
            .arg("-e")
            .arg("sftp")
            .args([
                "-oBatchMode=no",
                "-oStrictHostKeyChecking=no",
                "-oUserKnownHostsFile=/dev/null",
                "-oLogLevel=ERROR",
                "-oPubkeyAuthentication=no",
            ])
            .args(&options)
            .arg("-P")
            .arg(addr.port().to_string())
            .arg("-b")
            .arg(&script_path)
            .arg(format!("{user}@{}", addr.ip()))
            .env("SSHPASS", secret)
            .current_dir(&local)
            .output()
            .expect("run sftp (is OpenSSH's sftp and sshpass installed?)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

/// The `ls -l` line of `name` in sftp's output.
fn ls_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.split_whitespace().last() == Some(name) && l.len() > 10 && !l.starts_with("sftp>")
        })
        .unwrap_or_else(|| panic!("no ls -l line for {name} in:\n{out}"))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_user_gets_honest_chmod_df_cp_links_listing_and_resume() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let local = TempDir::new("conf-full");
    let l = local.path();
    std::fs::write(l.join("f.txt"), b"hello conformance\n").unwrap();
    let big = pattern(3_000_000);
    std::fs::write(l.join("big.bin"), &big).unwrap();
    // Interrupted transfers to resume: half on the server, a third here.
    gw.write("alice/big.bin", &big[..1_500_000]).await;
    gw.write("alice/down.bin", &big).await;
    std::fs::write(l.join("down.bin"), &big[..1_000_000]).unwrap();

    let (ok, out) = batch(
        &gw,
        "alice",
        "alice-password",
        l,
        "put f.txt\n\
         chmod 0700 f.txt\n\
         chown 0 f.txt\n\
         chgrp 0 f.txt\n\
         df .\n\
         cp f.txt g.txt\n\
         -ln f.txt h.txt\n\
         -ln -s f.txt s.txt\n\
         put -a big.bin\n\
         get -a down.bin\n\
         ls -l\n",
    )
    .await;
    assert!(ok, "batch failed:\n{out}");
    let root = gw.root().join("alice");
    // chmod/chown are answered OK (sftp.setstat_mode = ignore) and change nothing.
    assert_eq!(
        std::fs::read(root.join("g.txt")).unwrap(),
        b"hello conformance\n"
    );
    assert!(
        out.contains("Size") && out.contains("Avail"),
        "df prints the storage's space:\n{out}"
    );
    assert!(
        !root.join("h.txt").exists() && !root.join("s.txt").exists(),
        "no link was made"
    );
    assert!(
        out.contains("hardlink@openssh.com"),
        "ln says hard links are not offered:\n{out}"
    );
    assert!(
        out.to_lowercase().contains("symlink"),
        "ln -s is refused:\n{out}"
    );
    assert_eq!(
        std::fs::read(root.join("big.bin")).unwrap(),
        big,
        "put -a resumed"
    );
    assert_eq!(
        std::fs::read(l.join("down.bin")).unwrap(),
        big,
        "get -a resumed"
    );
    // OpenSSH (8.9 and later) formats `ls -l` lines itself once the server names its ids
    // (users-groups-by-id): its link count is 0 there, since SFTP v3 carries none; our own
    // long names (READDIR) say 1, see `every_extension_answers_with_the_right_reply`.
    let line = ls_line(&out, "f.txt");
    assert!(
        line.starts_with("-rw-rw-rw- ") && line.contains(" alice    filegate "),
        "mode and names: {line}"
    );
    assert!(ls_line(&out, "g.txt").contains(" 18 "), "the copy's size");

    let audit = gw.audit().await;
    let ignored = audit
        .iter()
        .filter(|r| r.action == "update" && r.path.as_deref() == Some("/alice/f.txt"))
        .filter(|r| r.reason.as_deref() == Some("mode and owner changes are ignored"))
        .count();
    assert_eq!(ignored, 3, "chmod, chown and chgrp are each recorded");
    assert!(
        audit
            .iter()
            .any(|r| r.action == "statvfs" && r.result == "ok")
    );
    assert!(audit.iter().any(|r| r.action == "copy"
        && r.path.as_deref() == Some("/alice/f.txt")
        && r.destination.as_deref() == Some("/alice/g.txt")
        && r.bytes == Some(18)));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_user_sees_r_bits_and_is_refused_chmod_and_cp() {
    let gw = TestGateway::start().await;
    gw.user("rob", "rob-password", &[("/shared", ReadOnly)])
        .await;
    gw.write("shared/f.txt", b"read me\n").await;
    gw.mkdir("shared/sub").await;
    let local = TempDir::new("conf-ro");
    let l = local.path();
    let (ok, out) = batch(
        &gw,
        "rob",
        "rob-password",
        l,
        "-chmod 0777 f.txt\n\
         -chown 0 f.txt\n\
         -cp f.txt g.txt\n\
         df\n\
         get f.txt\n\
         ls -l\n",
    )
    .await;
    assert!(ok, "batch failed:\n{out}");
    assert!(
        out.contains("Permission denied"),
        "chmod and chown are refused:\n{out}"
    );
    assert!(!gw.root().join("shared/g.txt").exists(), "cp wrote nothing");
    assert_eq!(std::fs::read(l.join("f.txt")).unwrap(), b"read me\n");
    let f = ls_line(&out, "f.txt");
    assert!(
        f.starts_with("-r--r--r-- ") && f.contains(" rob      filegate "),
        "{f}"
    );
    assert!(ls_line(&out, "sub").starts_with("dr-xr-xr-x "));
    let audit = gw.audit().await;
    assert!(
        audit.iter().any(|r| r.action == "update"
            && r.result == "denied"
            && r.path.as_deref() == Some("/shared/f.txt")),
        "the refused chmod is audited"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_only_key_uploads_and_chmods_but_cannot_copy_out() {
    let gw = TestGateway::start().await;
    let owner = gw.user("wendy", "wendy-password", &[("/drop", Full)]).await;
    let (key_id, secret) = gw
        .key(Some(owner), "drop key", None, PermissionSet::WriteOnly)
        .await;
    gw.write("drop/old.txt", b"already here\n").await;
    let local = TempDir::new("conf-wo");
    let l = local.path();
    std::fs::write(l.join("new.txt"), b"dropped\n").unwrap();
    let (ok, out) = batch(
        &gw,
        &format!("@api-{key_id}"),
        &secret,
        l,
        "put new.txt\n\
         chmod 0600 new.txt\n\
         -cp old.txt copy.txt\n\
         -get old.txt\n\
         ls -l\n",
    )
    .await;
    assert!(ok, "batch failed:\n{out}");
    assert_eq!(
        std::fs::read(gw.root().join("drop/new.txt")).unwrap(),
        b"dropped\n"
    );
    assert!(
        !gw.root().join("drop/copy.txt").exists(),
        "no read rights: no copy"
    );
    assert!(!l.join("old.txt").exists(), "no download");
    let line = ls_line(&out, "new.txt");
    assert!(
        line.starts_with("--w--w--w- ") && line.contains(" wendy    filegate "),
        "{line}"
    );
    gw.stop().await;
}

/// Two SSH strings / u64s as an extension payload.
fn payload(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::S(s) => {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s);
            }
            Part::N(n) => out.extend_from_slice(&n.to_be_bytes()),
        }
    }
    out
}

enum Part<'a> {
    S(&'a [u8]),
    N(u64),
}

fn reply_code(packet: &Packet) -> StatusCode {
    match packet {
        Packet::Status(s) => s.status_code,
        other => panic!("expected a status, got {other:?}"),
    }
}

async fn signed_in(gw: &TestGateway, user: &str, password: &str) -> Sftp {
    sftp_client::login(gw.addr("sftp"), user, password)
        .await
        .expect("login")
}

#[tokio::test]
async fn every_extension_answers_with_the_right_reply() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    gw.user("bob", "bob-password", &[("/bob", Full)]).await;
    gw.write("alice/src.bin", &pattern(100_000)).await;
    let s = signed_in(&gw, "alice", "alice-password").await;

    // The VERSION reply of a fresh session lists each extension with the revision
    // OpenSSH's client checks (hard links are not offered).
    let channel = s.ssh.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let fresh = russh_sftp::client::RawSftpSession::new(channel.into_stream());
    let v = fresh.init().await.expect("version");
    for (name, rev) in [
        ("posix-rename@openssh.com", "1"),
        ("limits@openssh.com", "1"),
        ("statvfs@openssh.com", "2"),
        ("fstatvfs@openssh.com", "2"),
        ("fsync@openssh.com", "1"),
        ("copy-data", "1"),
        ("expand-path@openssh.com", "1"),
        ("home-directory", "1"),
        ("users-groups-by-id@openssh.com", "1"),
    ] {
        assert_eq!(
            v.extensions.get(name).map(String::as_str),
            Some(rev),
            "{name}"
        );
    }
    assert!(!v.extensions.contains_key("hardlink@openssh.com"));
    drop(fresh);

    let limits = s.raw.limits().await.expect("limits");
    assert_eq!(limits.max_packet_len, 256 * 1024 + 1024);
    assert_eq!(limits.max_read_len, 255 * 1024);
    assert_eq!(limits.max_write_len, 255 * 1024);
    assert_eq!(limits.max_open_handles, 64);

    let vfs = s.raw.statvfs("/alice").await.expect("statvfs");
    assert!(vfs.blocks > 0 && vfs.fragment_size > 0);
    let hidden = s.raw.statvfs("/bob").await.unwrap_err();
    assert_eq!(
        sftp_client::code::<()>(Err(hidden)),
        StatusCode::NoSuchFile,
        "hidden like stat"
    );

    // home-directory and expand-path: the start folder; ~ expands there.
    let home = s
        .raw
        .extended("home-directory", payload(&[Part::S(b"")]))
        .await
        .unwrap();
    match home {
        Packet::Name(n) => assert_eq!(n.files[0].filename, "/alice"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.raw.expand_path("~/x/../y").await.unwrap().files[0].filename,
        "/alice/y"
    );
    assert_eq!(
        s.raw.expand_path("~alice").await.unwrap().files[0].filename,
        "/alice"
    );
    assert!(
        s.raw.expand_path("~bob/y").await.is_err(),
        "another user's ~ is unknown"
    );

    // users-groups-by-id names the ids attributes carry.
    let attrs = s.raw.stat("src.bin").await.unwrap().attrs;
    let (uid, gid) = (attrs.uid.unwrap(), attrs.gid.unwrap());
    let ids = payload(&[
        Part::S(&[uid.to_be_bytes(), 0u32.to_be_bytes()].concat()),
        Part::S(&gid.to_be_bytes()),
    ]);
    match s
        .raw
        .extended("users-groups-by-id@openssh.com", ids)
        .await
        .unwrap()
    {
        Packet::ExtendedReply(r) => {
            let mut expect = payload(&[Part::S(b"alice"), Part::S(b"")]);
            let groups = payload(&[Part::S(b"filegate")]);
            let mut whole = payload(&[Part::S(&expect)]);
            whole.extend(payload(&[Part::S(&groups)]));
            expect = whole;
            assert_eq!(r.data, expect);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(attrs.permissions.unwrap() & 0o777, 0o666);
    // READDIR long names: link count 1 and the names above.
    let dir = s.raw.opendir("/alice").await.unwrap().handle;
    let names = s.raw.readdir(dir.as_str()).await.unwrap().files;
    let src_entry = names
        .iter()
        .find(|f| f.filename == "src.bin")
        .expect("listed");
    assert!(
        src_entry
            .longname
            .starts_with("-rw-rw-rw-    1 alice    filegate   100000 "),
        "{}",
        src_entry.longname
    );
    assert_eq!(code(s.raw.close(dir.as_str()).await), StatusCode::Ok);

    // fsync and fstatvfs on an open upload; copy-data between two handles.
    let src = s
        .raw
        .open("src.bin", OpenFlags::READ, Default::default())
        .await
        .unwrap()
        .handle;
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
    assert_eq!(code(s.raw.fsync(dst.as_str()).await), StatusCode::Ok);
    let fvfs = s
        .raw
        .extended("fstatvfs@openssh.com", payload(&[Part::S(dst.as_bytes())]))
        .await
        .unwrap();
    assert!(
        matches!(fvfs, Packet::ExtendedReply(ref r) if r.data.len() == 88),
        "{fvfs:?}"
    );
    let copy = |from: &str, roff: u64, len: u64, to: &str, woff: u64| {
        payload(&[
            Part::S(from.as_bytes()),
            Part::N(roff),
            Part::N(len),
            Part::S(to.as_bytes()),
            Part::N(woff),
        ])
    };
    let r = s
        .raw
        .extended("copy-data", copy(&src, 10, 1000, &dst, 0))
        .await
        .unwrap();
    assert_eq!(reply_code(&r), StatusCode::Ok);
    // Length 0: to the end; written after the first 1000 bytes.
    let r = s
        .raw
        .extended("copy-data", copy(&src, 0, 0, &dst, 1000))
        .await
        .unwrap();
    assert_eq!(reply_code(&r), StatusCode::Ok);
    assert_eq!(code(s.raw.fsync(dst.as_str()).await), StatusCode::Ok);
    assert_eq!(code(s.raw.close(dst.as_str()).await), StatusCode::Ok);
    let mut expected = pattern(100_000)[10..1010].to_vec();
    expected.extend(pattern(100_000));
    assert_eq!(
        std::fs::read(gw.root().join("alice/dst.bin")).unwrap(),
        expected
    );
    // The source handle still reads from where it is asked after lending its file.
    let data = s.raw.read(src.as_str(), 5, 10).await.unwrap().data;
    assert_eq!(data, pattern(100_000)[5..15]);
    assert_eq!(code(s.raw.close(src.as_str()).await), StatusCode::Ok);

    // Hard links and symlinks are refused as unsupported.
    assert_eq!(
        code(s.raw.hardlink("src.bin", "h.bin").await),
        StatusCode::OpUnsupported
    );
    assert_eq!(
        code(s.raw.symlink("s.bin", "src.bin").await),
        StatusCode::OpUnsupported
    );

    let audit = gw.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.action == "fsync" && r.path.as_deref() == Some("/alice/dst.bin"))
    );
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.action == "copy" && r.destination.as_deref() == Some("/alice/dst.bin"))
            .count(),
        2
    );
    gw.stop().await;
}

#[tokio::test]
async fn setstat_mode_refuse_answers_op_unsupported_and_changes_nothing() {
    let gw = TestGateway::start_with(|c| {
        c.sftp.setstat_mode = filegate::config::SetstatMode::Refuse;
    })
    .await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    gw.user("rob", "rob-password", &[("/alice", ReadOnly)])
        .await;
    gw.write("alice/f.txt", b"x").await;
    let s = signed_in(&gw, "alice", "alice-password").await;
    let before = std::fs::metadata(gw.root().join("alice/f.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let attrs = russh_sftp::protocol::FileAttributes {
        permissions: Some(0o700),
        mtime: Some(1),
        atime: Some(1),
        ..Default::default()
    };
    assert_eq!(
        code(s.raw.setstat("f.txt", attrs.clone()).await),
        StatusCode::OpUnsupported
    );
    let after = std::fs::metadata(gw.root().join("alice/f.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "nothing applied when refused");
    // Times alone are still applied.
    let times = russh_sftp::protocol::FileAttributes {
        mtime: Some(1_000_000),
        atime: Some(1_000_000),
        ..Default::default()
    };
    assert_eq!(code(s.raw.setstat("f.txt", times).await), StatusCode::Ok);
    // A principal without write rights gets PERMISSION_DENIED, not OP_UNSUPPORTED.
    let r = signed_in(&gw, "rob", "rob-password").await;
    assert_eq!(
        code(r.raw.setstat("/alice/f.txt", attrs).await),
        StatusCode::PermissionDenied
    );
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| r.action == "update"
        && r.result == "failed"
        && r.reason.as_deref() == Some("mode and owner changes are refused")));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipelined_openssh_download_is_audited_with_exactly_the_bytes_sent() {
    // OpenSSH pipelines 64 reads; the server reads ahead of them. The audit record counts
    // what the client received, never what was read ahead or read twice.
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let local = TempDir::new("conf-audit-bytes");
    let big = pattern(20_000_003);
    gw.write("alice/big.bin", &big).await;
    let (ok, out) = batch(
        &gw,
        "alice",
        "alice-password",
        local.path(),
        "get big.bin\nget big.bin again.bin\n",
    )
    .await;
    assert!(ok, "batch failed:\n{out}");
    assert_eq!(std::fs::read(local.path().join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(local.path().join("again.bin")).unwrap(), big);
    let mut reads = Vec::new();
    for _ in 0..200 {
        reads = gw
            .audit()
            .await
            .into_iter()
            .filter(|r| r.action == "read" && r.path.as_deref() == Some("/alice/big.bin"))
            .collect::<Vec<_>>();
        if reads.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reads.len(), 2, "{reads:?}");
    for r in &reads {
        assert_eq!(r.bytes, Some(big.len() as i64), "{r:?}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_with_a_thousand_outstanding_reads_completes() {
    // `sftp -R 1024` (and paramiko's prefetch, one READ per 32 KiB of the file at once) keep
    // far more requests outstanding than replies fit in the connection's budget: the server
    // must keep reading them while replies leave (it used to stop reading, which in russh
    // also stopped the replies: the connection hung for good).
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let local = TempDir::new("conf-outstanding");
    let big = pattern(40_000_000);
    gw.write("alice/big.bin", &big).await;
    let run = batch_with(
        &gw,
        "alice",
        "alice-password",
        local.path(),
        "get big.bin\nput big.bin up.bin\n",
        &["-R", "1024", "-B", "32768"],
    );
    let (ok, out) = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("the transfer hung");
    assert!(ok, "batch failed:\n{out}");
    assert_eq!(std::fs::read(local.path().join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(gw.root().join("alice/up.bin")).unwrap(), big);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_pipelined_past_a_close_are_each_answered() {
    // rclone's parallel downloads send READs on a handle after its CLOSE: each must get a
    // reply ("handle is closed" at worst). They used to be dropped with the handle's queue,
    // and the client waited for them until the connection timed out (5 minutes).
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let data = pattern(4 * 1024 * 1024);
    gw.write("alice/big.bin", &data).await;
    let s = signed_in(&gw, "alice", "alice-password").await;
    for round in 0..5 {
        for write in [false, true] {
            let (name, flags) = if write {
                (
                    "/alice/up.bin",
                    OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                )
            } else {
                ("/alice/big.bin", OpenFlags::READ)
            };
            let handle = s
                .raw
                .open(name, flags, Default::default())
                .await
                .expect("open")
                .handle;
            let request = |i: u64| {
                let (raw, handle) = (&s.raw, handle.clone());
                async move {
                    if write {
                        raw.write(handle, i * 32768, vec![7u8; 32768])
                            .await
                            .map(|_| ())
                    } else {
                        raw.read(handle, i * 32768, 32768).await.map(|_| ())
                    }
                }
            };
            let before: Vec<_> = (0..64).map(request).collect();
            let close = s.raw.close(handle.clone());
            let after: Vec<_> = (64..128).map(request).collect();
            let all = async {
                let (before, close, after) = tokio::join!(
                    futures_util::future::join_all(before),
                    close,
                    futures_util::future::join_all(after)
                );
                (before, close, after)
            };
            let (before, close, after) =
                tokio::time::timeout(std::time::Duration::from_secs(30), all)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: a request was never answered"));
            assert!(
                before.iter().all(Result::is_ok),
                "round {round}: {before:?}"
            );
            close.expect("close");
            for reply in after {
                // Answered before the close was processed (ok) or refused: never lost.
                if let Err(err) = reply {
                    assert_eq!(code::<()>(Err(err)), StatusCode::Failure);
                }
            }
        }
    }
    gw.stop().await;
}
