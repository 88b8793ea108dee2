//! The SFTP front-end over 127.0.0.1 with the russh client and russh-sftp's raw client.

mod support;

use std::sync::Arc;
use std::time::Duration;

use filegate::identity::GrantLevel::{Full, ReadOnly};
use filegate::identity::PermissionSet;
use russh::ChannelMsg;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use support::TestGateway;
use support::sftp_client::{self, Client, Sftp, code, open_sftp};
use tokio::io::AsyncWriteExt;

/// Signs in with a password; `None` when refused.
async fn login(gw: &TestGateway, user: &str, password: &str) -> Option<Sftp> {
    sftp_client::login(gw.addr("sftp"), user, password).await
}

async fn ssh(gw: &TestGateway) -> russh::client::Handle<Client> {
    sftp_client::connect(gw.addr("sftp")).await
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_user_signs_in_with_a_password_and_every_file_operation_works() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let s = login(&gw, "alice", "alice-password").await.expect("login");
    assert_eq!(
        s.raw.realpath(".").await.unwrap().files[0].filename,
        "/alice",
        "sessions start in the user's folder"
    );

    let data = pattern(1_000_000);
    assert_eq!(s.put("big.bin", &data).await, StatusCode::Ok);
    assert_eq!(
        std::fs::read(gw.root().join("alice/big.bin")).unwrap(),
        data
    );
    assert_eq!(s.get("/alice/big.bin").await.unwrap(), data);
    let attrs = s.raw.stat("big.bin").await.unwrap().attrs;
    assert_eq!(attrs.size, Some(1_000_000));
    assert!(attrs.is_regular());

    assert_eq!(
        code(s.raw.mkdir("sub", FileAttributes::default()).await),
        StatusCode::Ok
    );
    assert!(
        s.raw.stat("sub").await.unwrap().attrs.is_dir(),
        "folders carry the directory type bit"
    );
    assert_eq!(
        code(s.raw.rename("big.bin", "sub/moved.bin").await),
        StatusCode::Ok
    );
    assert_eq!(s.list("sub").await.unwrap(), vec!["moved.bin"]);
    s.put("other.bin", b"other").await;
    assert_eq!(
        code(s.raw.rename("other.bin", "sub/moved.bin").await),
        StatusCode::Failure,
        "plain rename never overwrites"
    );
    let mut payload = Vec::new();
    for p in ["/alice/other.bin", "/alice/sub/moved.bin"] {
        payload.extend_from_slice(&(p.len() as u32).to_be_bytes());
        payload.extend_from_slice(p.as_bytes());
    }
    s.raw
        .extended("posix-rename@openssh.com", payload)
        .await
        .unwrap();
    assert_eq!(s.get("sub/moved.bin").await.unwrap(), b"other");

    let times = FileAttributes {
        atime: Some(1_000_000_000),
        mtime: Some(1_000_000_000),
        ..Default::default()
    };
    assert_eq!(
        code(s.raw.setstat("sub/moved.bin", times).await),
        StatusCode::Ok
    );
    assert_eq!(
        s.raw.stat("sub/moved.bin").await.unwrap().attrs.mtime,
        Some(1_000_000_000)
    );
    let size = FileAttributes {
        size: Some(2),
        ..Default::default()
    };
    assert_eq!(
        code(s.raw.setstat("sub/moved.bin", size).await),
        StatusCode::Ok
    );
    assert_eq!(s.get("sub/moved.bin").await.unwrap(), b"ot");

    let append = s
        .raw
        .open(
            "sub/moved.bin",
            OpenFlags::WRITE | OpenFlags::APPEND,
            FileAttributes::default(),
        )
        .await
        .unwrap()
        .handle;
    s.raw.write(&append, 0, b"+tail".to_vec()).await.unwrap();
    s.raw.close(&append).await.unwrap();
    assert_eq!(s.get("sub/moved.bin").await.unwrap(), b"ot+tail");

    let h = s
        .raw
        .open("sub/moved.bin", OpenFlags::READ, FileAttributes::default())
        .await
        .unwrap()
        .handle;
    assert_eq!(s.raw.fstat(&h).await.unwrap().attrs.size, Some(7), "fstat");
    let when = FileAttributes {
        atime: Some(1_100_000_000),
        mtime: Some(1_100_000_000),
        ..Default::default()
    };
    assert_eq!(
        code(s.raw.fsetstat(&h, when).await),
        StatusCode::Ok,
        "fsetstat"
    );
    s.raw.close(&h).await.unwrap();
    assert_eq!(
        s.raw.lstat("sub/moved.bin").await.unwrap().attrs.mtime,
        Some(1_100_000_000),
        "lstat"
    );
    assert_eq!(
        code(s.raw.readlink("sub/moved.bin").await),
        StatusCode::OpUnsupported
    );

    assert_eq!(
        code(s.raw.rmdir("sub").await),
        StatusCode::Failure,
        "not empty"
    );
    assert_eq!(code(s.raw.remove("sub/moved.bin").await), StatusCode::Ok);
    assert_eq!(code(s.raw.rmdir("sub").await), StatusCode::Ok);
    assert_eq!(
        code(s.raw.symlink("/alice/x", "/etc/passwd").await),
        StatusCode::OpUnsupported
    );
    assert_eq!(code(s.raw.stat("missing").await), StatusCode::NoSuchFile);
    assert_eq!(s.list(".").await.unwrap(), Vec::<String>::new());

    let audit = gw.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.action == "create" && r.protocol == "sftp" && r.bytes == Some(1_000_000))
    );
    assert!(
        audit
            .iter()
            .any(|r| r.action == "read" && r.path.as_deref() == Some("/alice/big.bin"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_api_key_signs_in_by_id_and_by_name_and_acts_as_its_owner() {
    let gw = TestGateway::start().await;
    let bob = gw.user("bob", "bob-password", &[("/bob", Full)]).await;
    let (id, secret) = gw
        .key(Some(bob), "Deploy Bot", None, PermissionSet::FilesOnly)
        .await;
    for login_name in [format!("@api-{id}"), "@api-Deploy Bot".to_owned()] {
        let s = login(&gw, &login_name, &secret)
            .await
            .unwrap_or_else(|| panic!("{login_name} refused"));
        assert_eq!(
            s.put(&format!("/bob/{}.txt", login_name.len()), b"hi")
                .await,
            StatusCode::Ok
        );
    }
    assert!(
        login(&gw, &format!("@api-{id}"), &"0".repeat(64))
            .await
            .is_none(),
        "wrong secret"
    );
    let audit = gw.audit().await;
    let upload = audit.iter().find(|r| r.action == "create").unwrap();
    assert_eq!(
        (upload.user_id, upload.key_id),
        (Some(bob), Some(id)),
        "logged as the key's owner"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_user_signs_in_with_an_ssh_key_added_for_them() {
    let gw = TestGateway::start().await;
    let carol = gw
        .user("carol", "carol-password", &[("/carol", Full)])
        .await;
    let mut seed = [7u8; 32];
    seed[0] = 1;
    let key = russh::keys::PrivateKey::from(
        russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed),
    );
    let line = key.public_key().to_openssh().unwrap();
    gw.gateway
        .core
        .accounts
        .add_public_key(
            &filegate::identity::Principal::cli(),
            carol,
            "laptop",
            &line,
        )
        .await
        .unwrap();
    let mut handle = ssh(&gw).await;
    let auth = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
    assert!(
        handle
            .authenticate_publickey("carol", auth)
            .await
            .unwrap()
            .success()
    );
    let s = open_sftp(handle).await;
    assert_eq!(s.put("/carol/k.txt", b"key").await, StatusCode::Ok);

    let mut other = ssh(&gw).await;
    let stranger = russh::keys::PrivateKey::from(
        russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[9u8; 32]),
    );
    let auth = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(stranger), None);
    assert!(
        !other
            .authenticate_publickey("carol", auth)
            .await
            .unwrap()
            .success()
    );
    gw.stop().await;
}

#[tokio::test]
async fn keys_are_held_to_their_permission_set_and_path() {
    let gw = TestGateway::start().await;
    let dan = gw.user("dan", "dan-password", &[("/", Full)]).await;
    gw.put("team/drop/in.txt", b"inside");
    gw.put("team/private.txt", b"secret");
    let (ro, ro_secret) = gw
        .key(Some(dan), "reader", None, PermissionSet::ReadOnly)
        .await;
    let (wo, wo_secret) = gw
        .key(
            Some(dan),
            "dropper",
            Some("team/drop"),
            PermissionSet::WriteOnly,
        )
        .await;
    let (pr, pr_secret) = gw
        .key(
            Some(dan),
            "confined",
            Some("team/drop"),
            PermissionSet::Full,
        )
        .await;

    let reader = login(&gw, &format!("@api-{ro}"), &ro_secret).await.unwrap();
    assert_eq!(reader.get("/team/private.txt").await.unwrap(), b"secret");
    assert_eq!(
        reader.put("/team/new.txt", b"x").await,
        StatusCode::PermissionDenied
    );
    assert_eq!(
        code(reader.raw.remove("/team/private.txt").await),
        StatusCode::PermissionDenied
    );

    let writer = login(&gw, &format!("@api-{wo}"), &wo_secret).await.unwrap();
    assert_eq!(writer.put("up.txt", b"dropped").await, StatusCode::Ok);
    assert_eq!(
        writer.get("in.txt").await.unwrap_err(),
        StatusCode::PermissionDenied
    );
    assert_eq!(
        std::fs::read(gw.root().join("team/drop/up.txt")).unwrap(),
        b"dropped"
    );

    let confined = login(&gw, &format!("@api-{pr}"), &pr_secret).await.unwrap();
    assert_eq!(
        confined.raw.realpath(".").await.unwrap().files[0].filename,
        "/team/drop"
    );
    assert_eq!(
        confined.get("../private.txt").await.unwrap_err(),
        StatusCode::NoSuchFile
    );
    assert_eq!(
        confined.get("/team/private.txt").await.unwrap_err(),
        StatusCode::NoSuchFile
    );
    assert_eq!(
        confined.get("../../../../etc/passwd").await.unwrap_err(),
        StatusCode::NoSuchFile
    );
    assert_eq!(
        confined.put("/etc/evil", b"x").await,
        StatusCode::NoSuchFile
    );
    assert_eq!(
        confined.list("/team").await.unwrap(),
        vec!["drop"],
        "the way down only"
    );
    assert_eq!(
        code(confined.raw.rmdir("/team/drop").await),
        StatusCode::PermissionDenied,
        "its own root stays"
    );
    assert_eq!(confined.get("in.txt").await.unwrap(), b"inside");
    gw.stop().await;
}

#[tokio::test]
async fn expired_and_unknown_keys_and_disabled_protocols_are_refused() {
    let gw = TestGateway::start().await;
    let erin = gw.user("erin", "erin-password", &[("/erin", Full)]).await;
    let (id, secret) = gw
        .key_expiring(
            Some(erin),
            "old",
            None,
            PermissionSet::Full,
            Some(filegate::model::now() + 1),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        login(&gw, &format!("@api-{id}"), &secret).await.is_none(),
        "expired"
    );
    assert!(login(&gw, "@api-999", &secret).await.is_none());
    assert!(login(&gw, "nobody", "whatever-pw").await.is_none());
    let changes = filegate::store::UserChanges {
        sftp_permission: Some(false),
        ..Default::default()
    };
    gw.gateway
        .core
        .accounts
        .update_user(&filegate::identity::Principal::cli(), erin, changes, None)
        .await
        .unwrap();
    assert!(
        login(&gw, "erin", "erin-password").await.is_none(),
        "sftp switched off"
    );
    gw.stop().await;
}

#[tokio::test]
async fn revoking_a_key_ends_its_running_session_within_seconds() {
    let gw = TestGateway::start().await;
    let fay = gw.user("fay", "fay-password", &[("/fay", Full)]).await;
    let (id, secret) = gw.key(Some(fay), "live", None, PermissionSet::Full).await;
    let s = login(&gw, &format!("@api-{id}"), &secret).await.unwrap();
    assert_eq!(s.put("/fay/a.txt", b"a").await, StatusCode::Ok);
    gw.revoke(id).await;
    let started = std::time::Instant::now();
    while !s.ssh.is_closed() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "session still open 5 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(login(&gw, &format!("@api-{id}"), &secret).await.is_none());
    gw.stop().await;
}

#[tokio::test]
async fn shells_and_commands_get_a_clear_refusal_not_a_hang() {
    let gw = TestGateway::start().await;
    gw.user("gus", "gus-password", &[("/gus", Full)]).await;
    let mut handle = ssh(&gw).await;
    assert!(
        handle
            .authenticate_password("gus", "gus-password")
            .await
            .unwrap()
            .success()
    );
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.exec(true, "cat /etc/passwd").await.unwrap();
    let mut stderr = Vec::new();
    let mut exit = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, channel.wait()).await {
        match msg {
            ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    assert_eq!(exit, Some(1));
    assert!(String::from_utf8_lossy(&stderr).contains("SFTP only"));
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_client_sending_garbage_is_cut_off_without_harming_others() {
    let gw = TestGateway::start().await;
    gw.user("hal", "hal-password", &[("/hal", Full)]).await;
    let mut handle = ssh(&gw).await;
    assert!(
        handle
            .authenticate_password("hal", "hal-password")
            .await
            .unwrap()
            .success()
    );
    let channel = handle.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let mut stream = channel.into_stream();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    stream.write_all(&[0u8; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the SFTP channel is closed: {read:?}"
    );
    let good = login(&gw, "hal", "hal-password").await.unwrap();
    assert_eq!(good.put("/hal/ok.txt", b"fine").await, StatusCode::Ok);
    gw.stop().await;
}

#[tokio::test]
async fn bad_paths_are_refused_and_touch_nothing() {
    let gw = TestGateway::start().await;
    gw.user("ivy", "ivy-password", &[("/ivy", Full)]).await;
    let s = login(&gw, "ivy", "ivy-password").await.unwrap();
    let long = format!("/ivy/{}", "n".repeat(300));
    assert_eq!(s.put(&long, b"x").await, StatusCode::Failure);
    assert_eq!(s.put("/ivy/a\u{1}b", b"x").await, StatusCode::Failure);
    assert_eq!(
        s.put("/ivy/../../outside.txt", b"x").await,
        StatusCode::NoSuchFile
    );
    assert_eq!(
        code(s.raw.mkdir("/ivy/\u{7f}", FileAttributes::default()).await),
        StatusCode::Failure
    );
    assert_eq!(std::fs::read_dir(gw.root().join("ivy")).unwrap().count(), 0);
    assert!(!gw.root().join("outside.txt").exists());
    gw.stop().await;
}

#[tokio::test]
async fn a_readonly_grant_reads_but_cannot_write() {
    let gw = TestGateway::start().await;
    gw.user("jan", "jan-password", &[("/shared", ReadOnly)])
        .await;
    gw.put("shared/doc.txt", b"doc");
    let s = login(&gw, "jan", "jan-password").await.unwrap();
    assert_eq!(s.get("doc.txt").await.unwrap(), b"doc");
    assert_eq!(s.put("new.txt", b"x").await, StatusCode::PermissionDenied);
    assert_eq!(s.list("/").await.unwrap(), vec!["shared"]);
    gw.stop().await;
}
