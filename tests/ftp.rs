//! The FTP front-end over 127.0.0.1 with a Rust FTP client (suppaftp, native-tls for FTPS).

mod support;

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use filegate::identity::GrantLevel::{Full, ReadOnly};
use filegate::identity::PermissionSet;
use suppaftp::native_tls::TlsConnector;
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, NativeTlsConnector, NativeTlsFtpStream, Status};
use support::TestGateway;

/// Runs blocking FTP client code off the async workers.
async fn client<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn login(addr: SocketAddr, user: &str, password: &str) -> FtpResult<FtpStream> {
    let mut ftp = FtpStream::connect(addr)?;
    ftp.login(user, password)?;
    ftp.transfer_type(FileType::Binary)?;
    Ok(ftp)
}

/// Compares byte buffers without printing megabytes on failure.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a == b
}

type FtpResult<T> = Result<T, FtpError>;

fn code(result: FtpResult<impl Sized>) -> Option<u32> {
    match result {
        Ok(_) => None,
        Err(FtpError::UnexpectedResponse(r)) => Some(r.status.code()),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn a_user_signs_in_and_every_common_command_works() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let addr = gw.addr("ftp");
    let root = gw.root();
    client(move || {
        let mut ftp = login(addr, "alice", "alice-password").unwrap();
        assert_eq!(ftp.pwd().unwrap(), "/");
        ftp.cwd("alice").unwrap();
        assert_eq!(ftp.pwd().unwrap(), "/alice");
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        ftp.put_file("big.bin", &mut Cursor::new(data.clone()))
            .unwrap();
        assert!(
            same(&std::fs::read(root.join("alice/big.bin")).unwrap(), &data),
            "stored bytes differ"
        );
        assert!(
            same(&ftp.retr_as_buffer("big.bin").unwrap().into_inner(), &data),
            "downloaded bytes differ"
        );
        assert_eq!(ftp.size("big.bin").unwrap(), 2_000_000);
        assert!(ftp.mdtm("big.bin").is_ok());
        ftp.resume_transfer(1_999_990).unwrap();
        assert!(
            same(
                &ftp.retr_as_buffer("big.bin").unwrap().into_inner(),
                &data[1_999_990..]
            ),
            "REST offsets"
        );
        ftp.append_file("big.bin", &mut Cursor::new(b"tail".to_vec()))
            .unwrap();
        assert_eq!(ftp.size("big.bin").unwrap(), 2_000_004);
        ftp.mkdir("sub").unwrap();
        ftp.rename("big.bin", "sub/moved.bin").unwrap();
        assert!(
            ftp.nlst(Some("sub"))
                .unwrap()
                .iter()
                .any(|n| n.ends_with("moved.bin"))
        );
        assert!(ftp.list(Some("sub")).unwrap()[0].contains("moved.bin"));
        assert!(ftp.mlsd(Some("sub")).unwrap()[0].contains("moved.bin"));
        // libunftp 0.24 resolves MLST arguments against / rather than the current folder.
        assert!(
            ftp.mlst(Some("/alice/sub/moved.bin"))
                .unwrap()
                .contains("size=2000004")
        );
        assert!(
            ftp.feat()
                .unwrap()
                .keys()
                .any(|k| k.eq_ignore_ascii_case("UTF8"))
        );
        ftp.cwd("sub").unwrap();
        ftp.cdup().unwrap();
        assert_eq!(ftp.pwd().unwrap(), "/alice");
        assert_eq!(code(ftp.rmdir("sub")), Some(550), "not empty");
        ftp.rm("sub/moved.bin").unwrap();
        ftp.rmdir("sub").unwrap();
        assert!(ftp.list(None).unwrap().is_empty());
        ftp.quit().unwrap();
    })
    .await;
    let audit = gw.audit().await;
    assert!(
        audit
            .iter()
            .any(|r| r.protocol == "ftp" && r.action == "create" && r.bytes == Some(2_000_000))
    );
    gw.stop().await;
}

#[tokio::test]
async fn api_keys_sign_in_by_id_and_name_and_are_held_to_their_rights() {
    let gw = TestGateway::start().await;
    let bob = gw.user("bob", "bob-password", &[("/", Full)]).await;
    gw.put("team/drop/in.txt", b"inside");
    gw.put("team/private.txt", b"secret");
    let (ro, ro_secret) = gw
        .key(Some(bob), "reader", None, PermissionSet::ReadOnly)
        .await;
    let (_, wo_secret) = gw
        .key(
            Some(bob),
            "drop box",
            Some("team/drop"),
            PermissionSet::WriteOnly,
        )
        .await;
    let addr = gw.addr("ftp");
    client(move || {
        let mut reader = login(addr, &format!("@api-{ro}"), &ro_secret).unwrap();
        assert_eq!(
            reader
                .retr_as_buffer("/team/private.txt")
                .unwrap()
                .into_inner(),
            b"secret"
        );
        assert_eq!(
            code(reader.put_file("/team/new.txt", &mut Cursor::new(b"x".to_vec()))),
            Some(550)
        );
        assert_eq!(code(reader.rm("/team/private.txt")), Some(550));

        let mut writer = login(addr, "@api-drop box", &wo_secret).unwrap();
        writer
            .put_file("/team/drop/up.txt", &mut Cursor::new(b"dropped".to_vec()))
            .unwrap();
        assert_eq!(
            code(writer.retr_as_buffer("/team/drop/in.txt")),
            Some(550),
            "writeonly cannot read"
        );
        assert_eq!(
            code(writer.retr_as_buffer("/team/private.txt")),
            Some(550),
            "outside the key path"
        );
        assert_eq!(
            code(writer.retr_as_buffer("/team/drop/../private.txt")),
            Some(550),
            "no escape with .."
        );
        assert_eq!(code(writer.cwd("/etc")), Some(550));
        assert!(
            login(addr, &format!("@api-{ro}"), &"0".repeat(64)).is_err(),
            "wrong secret"
        );
        assert!(login(addr, "nobody", "nothing-here").is_err());
    })
    .await;
    assert_eq!(
        std::fs::read(gw.root().join("team/drop/up.txt")).unwrap(),
        b"dropped"
    );
    gw.stop().await;
}

#[tokio::test]
async fn explicit_ftps_works_and_tls_can_be_required_before_login() {
    let gw = TestGateway::start_with(|c| c.ftp.require_tls = "always".into()).await;
    gw.user("carol", "carol-password", &[("/carol", ReadOnly)])
        .await;
    gw.put("carol/doc.txt", b"over tls");
    let addr = gw.addr("ftp");
    client(move || {
        let mut plain = FtpStream::connect(addr).unwrap();
        assert!(
            plain.login("carol", "carol-password").is_err(),
            "plain USER/PASS refused"
        );
        let tls = NativeTlsConnector::from(
            TlsConnector::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
        );
        let mut ftp = NativeTlsFtpStream::connect(addr)
            .unwrap()
            .into_secure(tls, "localhost")
            .unwrap();
        ftp.login("carol", "carol-password").unwrap();
        assert_eq!(
            ftp.retr_as_buffer("/carol/doc.txt").unwrap().into_inner(),
            b"over tls"
        );
        ftp.quit().unwrap();
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_touches_nothing() {
    let gw = TestGateway::start().await;
    gw.user("dan", "dan-password", &[("/dan", Full)]).await;
    let addr = gw.addr("ftp");
    let root = gw.root();
    client(move || {
        let mut ftp = login(addr, "dan", "dan-password").unwrap();
        let long = format!("/dan/{}", "n".repeat(300));
        assert!(code(ftp.put_file(&long, &mut Cursor::new(b"x".to_vec()))).is_some());
        assert!(code(ftp.mkdir("/dan/a\u{1}b")).is_some());
        assert_eq!(
            code(ftp.put_file("/dan/../../escape.txt", &mut Cursor::new(b"x".to_vec()))),
            Some(550)
        );
        assert!(
            ftp.custom_command("MKD /dan/a\0b", &[Status::PathCreated])
                .is_err(),
            "NUL in a path"
        );
        assert!(
            ftp.custom_command(
                format!("MKD /dan/{}", "x".repeat(5000)),
                &[Status::PathCreated]
            )
            .is_err(),
            "over-long path"
        );
        let unknown = ftp.custom_command("XYZZY", &[Status::CommandOk]);
        assert!(unknown.is_err(), "unknown commands are refused");
        ftp.noop().unwrap();
        ftp.quit().unwrap();
    })
    .await;
    assert_eq!(std::fs::read_dir(root.join("dan")).unwrap().count(), 0);
    assert!(!root.join("escape.txt").exists());
    gw.stop().await;
}

#[tokio::test]
async fn revoking_a_key_ends_its_ftp_session_within_seconds() {
    let gw = TestGateway::start_with(|c| c.ftp.revocation_check_seconds = 1).await;
    let erin = gw.user("erin", "erin-password", &[("/erin", Full)]).await;
    let (id, secret) = gw.key(Some(erin), "live", None, PermissionSet::Full).await;
    let addr = gw.addr("ftp");
    let mut ftp = client(move || login(addr, &format!("@api-{id}"), &secret).unwrap()).await;
    gw.revoke(id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = client(move || ftp.noop()).await;
    assert!(
        after.is_err(),
        "the control connection is closed after revocation"
    );
    gw.stop().await;
}
