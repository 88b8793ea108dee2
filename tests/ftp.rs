//! The FTP front-end over 127.0.0.1 with a Rust FTP client (suppaftp, native-tls for FTPS).

mod support;

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use filegate::identity::GrantLevel::{Full, List, ReadOnly};
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
    let (stored, on_s3) = (gw.stored(), gw.on_s3());
    client(move || {
        let mut ftp = login(addr, "alice", "alice-password").unwrap();
        assert_eq!(
            ftp.pwd().unwrap(),
            "/alice",
            "the session starts in her folder"
        );
        ftp.cwd("/").unwrap();
        assert_eq!(ftp.pwd().unwrap(), "/");
        ftp.cwd("alice").unwrap();
        assert_eq!(ftp.pwd().unwrap(), "/alice");
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        ftp.put_file("big.bin", &mut Cursor::new(data.clone()))
            .unwrap();
        assert!(
            same(&stored.read_blocking("alice/big.bin").unwrap(), &data),
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
        let size = if on_s3 {
            // S3 cannot append: "not supported", and the file stays as it was.
            assert_eq!(
                code(ftp.append_file("big.bin", &mut Cursor::new(b"tail".to_vec()))),
                Some(502),
                "APPE on S3"
            );
            2_000_000
        } else {
            ftp.append_file("big.bin", &mut Cursor::new(b"tail".to_vec()))
                .unwrap();
            2_000_004
        };
        assert_eq!(ftp.size("big.bin").unwrap(), size);
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
                .contains(&format!("size={size}"))
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
    gw.write("team/drop/in.txt", b"inside").await;
    gw.write("team/private.txt", b"secret").await;
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
    assert_eq!(gw.read("team/drop/up.txt").await.unwrap(), b"dropped");
    gw.stop().await;
}

#[tokio::test]
async fn explicit_ftps_works_and_tls_can_be_required_before_login() {
    let gw =
        TestGateway::start_with(|c| c.ftp.require_tls = filegate::config::RequireTls::Always).await;
    gw.user("carol", "carol-password", &[("/carol", ReadOnly)])
        .await;
    gw.write("carol/doc.txt", b"over tls").await;
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
    assert_eq!(gw.stored().list("dan").await, Vec::<String>::new());
    assert!(!gw.exists("escape.txt").await);
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

// ---------------------------------------------------------------------------------------------
// Raw control-connection clients: for what an FTP library hides (when the ClientHello is sent,
// which address a data connection comes from, commands a library would not send).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A client TLS configuration trusting the gateway's self-signed FTPS certificate.
fn trust_gateway(gw: &TestGateway) -> Arc<rustls::ClientConfig> {
    let pem = gw.gateway.core.config.server.data_dir.join("ftps-cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// A control connection, plain or TLS, read a byte at a time so that nothing past a reply is
/// consumed (the server's TLS bytes follow `234` directly).
struct Ctl<S: Read + Write> {
    s: S,
}

impl<S: Read + Write> Ctl<S> {
    fn line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if self.s.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            line.push(byte[0]);
            if byte[0] == b'\n' {
                return Ok(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
        }
    }

    /// One reply (multi-line replies included): its code and last line.
    fn reply(&mut self) -> std::io::Result<(u32, String)> {
        loop {
            let line = self.line()?;
            let code = line.get(..3).and_then(|c| c.parse::<u32>().ok());
            if let (Some(code), Some(b' ')) = (code, line.as_bytes().get(3)) {
                return Ok((code, line));
            }
            if let (Some(code), 3) = (code, line.len()) {
                return Ok((code, line));
            }
        }
    }

    fn cmd(&mut self, line: &str) -> std::io::Result<(u32, String)> {
        self.s.write_all(format!("{line}\r\n").as_bytes())?;
        self.s.flush()?;
        self.reply()
    }

    fn code(&mut self, line: &str) -> u32 {
        self.cmd(line).map(|(c, _)| c).unwrap_or(0)
    }
}

type TlsCtl = Ctl<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>;

/// Connects from 127.0.0.1 and reads the greeting.
fn plain(addr: SocketAddr) -> Ctl<std::net::TcpStream> {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut ctl = Ctl { s };
    assert_eq!(ctl.reply().unwrap().0, 220);
    ctl
}

/// A blocking socket connected from `source` (e.g. 127.0.0.2: every 127/8 address is loopback).
async fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    let stream = socket.connect(addr).await?.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// `AUTH TLS` the way a quick client does it: the ClientHello goes out in the same write as
/// the command (`same_write`, so it lands in the server's read of the command line) or right
/// after `234` is read. Then one command over TLS.
fn upgrade(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    same_write: bool,
) -> Result<TlsCtl, String> {
    let s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut ctl = Ctl { s };
    let greeting = ctl.reply().map_err(|e| e.to_string())?;
    if greeting.0 != 220 {
        return Err(format!("greeting {greeting:?}"));
    }
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).map_err(|e| e.to_string())?;
    let mut first = b"AUTH TLS\r\n".to_vec();
    if same_write {
        first.extend_from_slice(&hello);
    }
    ctl.s.write_all(&first).map_err(|e| e.to_string())?;
    let reply = ctl.reply().map_err(|e| format!("AUTH TLS reply: {e}"))?;
    if reply.0 != 234 {
        return Err(format!("AUTH TLS answered {reply:?}"));
    }
    if !same_write {
        ctl.s.write_all(&hello).map_err(|e| e.to_string())?;
    }
    let mut tls = Ctl {
        s: rustls::StreamOwned::new(conn, ctl.s),
    };
    match tls.cmd("NOOP") {
        Ok((200, _)) => Ok(tls),
        other => Err(format!("NOOP over TLS: {other:?}")),
    }
}

#[tokio::test]
async fn a_thousand_auth_tls_upgrades_never_read_the_client_hello_as_a_command() {
    let gw = TestGateway::start().await;
    let addr = gw.addr("ftp");
    let config = trust_gateway(&gw);
    let (failures, elapsed) = client(move || {
        let started = Instant::now();
        let mut failures = Vec::new();
        for i in 0..1000 {
            if let Err(e) = upgrade(addr, &config, i % 2 == 0) {
                failures.push(format!("#{i}: {e}"));
                // A failed upgrade can cost a read timeout: stop early, the verdict is known.
                if failures.len() == 10 {
                    break;
                }
            }
        }
        (failures, started.elapsed())
    })
    .await;
    assert!(
        failures.is_empty(),
        "{} upgrades failed (stopping at 10), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    gw.stop().await;
}

/// The port in a `229 Entering Extended Passive Mode (|||port|)` or `227 … (h,h,h,h,p,p)` reply.
fn passive_port(reply: &str) -> u16 {
    let inner = &reply[reply.find('(').unwrap() + 1..reply.rfind(')').unwrap()];
    if let Some(port) = inner.strip_prefix("|||") {
        return port.trim_end_matches('|').parse().unwrap();
    }
    let n: Vec<u16> = inner.split(',').map(|p| p.parse().unwrap()).collect();
    n[4] * 256 + n[5]
}

fn signed_in_plain(addr: SocketAddr, user: &str, password: &str) -> Ctl<std::net::TcpStream> {
    let mut ctl = plain(addr);
    assert_eq!(ctl.code(&format!("USER {user}")), 331);
    assert_eq!(ctl.code(&format!("PASS {password}")), 230);
    assert_eq!(ctl.code("TYPE I"), 200);
    ctl
}

/// Reads until EOF, a reset or the read timeout; returns the bytes read and whether the stream
/// ended (EOF or reset) rather than timing out.
fn drain(s: &mut impl Read) -> (usize, bool) {
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (total, false);
            }
            Err(_) => return (total, true),
        }
    }
}

#[tokio::test]
async fn with_tls_required_prot_c_is_refused_and_no_data_command_runs_before_prot_p() {
    let gw =
        TestGateway::start_with(|c| c.ftp.require_tls = filegate::config::RequireTls::Always).await;
    gw.user("frank", "frank-password", &[("/frank", Full)])
        .await;
    gw.write("frank/secret.txt", b"never in clear").await;
    let addr = gw.addr("ftp");
    let config = trust_gateway(&gw);
    client(move || {
        let mut ctl = upgrade(addr, &config, false).unwrap();
        assert_eq!(ctl.code("USER frank"), 331);
        assert_eq!(ctl.code("PASS frank-password"), 230);
        assert_eq!(ctl.code("PBSZ 0"), 200);
        // The reproduction was PROT C, EPSV, RETR: the file went out in clear.
        assert_eq!(ctl.code("PROT C"), 536);
        for cmd in [
            "EPSV",
            "PASV",
            "RETR /frank/secret.txt",
            "LIST /frank",
            "NLST /frank",
            "MLSD /frank",
            "STOR /frank/new.txt",
            "APPE /frank/secret.txt",
            "STOU",
        ] {
            assert_eq!(ctl.code(cmd), 534, "{cmd} before PROT P");
        }
        assert_eq!(ctl.code("PROT P"), 200);
        assert_eq!(ctl.code("PROT C"), 536, "PROT P cannot be undone");
        let (code, reply) = ctl.cmd("EPSV").unwrap();
        assert_eq!(code, 229);
        let data = std::net::TcpStream::connect(("127.0.0.1", passive_port(&reply))).unwrap();
        data.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(ctl.code("RETR /frank/secret.txt"), 150);
        let conn = rustls::ClientConnection::new(
            config.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, data);
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got);
        assert_eq!(got, b"never in clear", "the data connection is TLS");
        assert_eq!(ctl.reply().unwrap().0, 226);
    })
    .await;
    assert!(!gw.exists("frank/new.txt").await);
    gw.stop().await;
}

#[tokio::test]
async fn a_passive_port_serves_only_the_control_connections_address() {
    let gw = TestGateway::start().await;
    gw.user("gina", "gina-password", &[("/gina", Full)]).await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    gw.write("gina/file.bin", &content).await;
    let addr = gw.addr("ftp");
    let (ctl, port) = client(move || {
        let mut ctl = signed_in_plain(addr, "gina", "gina-password");
        let (code, reply) = ctl.cmd("EPSV").unwrap();
        assert_eq!(code, 229);
        (ctl, passive_port(&reply))
    })
    .await;
    let data_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Another client reaches the announced port first.
    let mut thief = connect_from("127.0.0.2", data_addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut data = connect_from("127.0.0.1", data_addr).await.unwrap();
    let (stolen, got) = client(move || {
        let mut ctl = ctl;
        assert_eq!(ctl.code("RETR /gina/file.bin"), 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        assert_eq!(ctl.reply().unwrap().0, 226);
        let (stolen, ended) = drain(&mut thief);
        assert!(ended, "the other address's connection is closed");
        (stolen, got)
    })
    .await;
    assert_eq!(stolen, 0, "nothing reaches another address");
    assert!(same(&got, &content), "the client still gets its file");
    gw.stop().await;
}

#[tokio::test]
async fn passive_ports_cannot_be_hoarded_by_one_session_or_one_address() {
    let gw = TestGateway::start_with(|c| {
        c.ftp.passive_ports = "41000-41019".parse().unwrap();
        c.ftp.max_passive_per_address = 4;
    })
    .await;
    gw.user("hal", "hal-password", &[("/hal", List)]).await;
    gw.user("ida", "ida-password", &[("/ida", Full)]).await;
    gw.write("ida/a.txt", b"a").await;
    let addr = gw.addr("ftp");
    let hoarder = client(move || {
        // The reproduction: 80 PASVs from one list-only user held the whole range. Each new
        // one now replaces the last, so all succeed and one port is held.
        let mut one = signed_in_plain(addr, "hal", "hal-password");
        for i in 0..80 {
            assert_eq!(one.code("PASV"), 227, "PASV #{i}");
        }
        // More sessions from the same address: capped per address (4 with the one above).
        let mut more = Vec::new();
        let mut granted = 0;
        for _ in 0..6 {
            let mut s = signed_in_plain(addr, "hal", "hal-password");
            if s.code("EPSV") == 229 {
                granted += 1;
            }
            more.push(s);
        }
        assert_eq!(granted, 3, "one address holds at most its quota");
        (one, more)
    })
    .await;
    // Someone else still gets a passive port and lists.
    let innocent = connect_from("127.0.0.2", addr).await.unwrap();
    let (ctl, port) = client(move || {
        let mut ctl = Ctl { s: innocent };
        assert_eq!(ctl.reply().unwrap().0, 220);
        assert_eq!(ctl.code("USER ida"), 331);
        assert_eq!(ctl.code("PASS ida-password"), 230);
        let (code, reply) = ctl.cmd("EPSV").unwrap();
        assert_eq!(code, 229);
        (ctl, passive_port(&reply))
    })
    .await;
    let mut data = connect_from("127.0.0.2", ([127, 0, 0, 1], port).into())
        .await
        .unwrap();
    client(move || {
        let mut ctl = ctl;
        assert_eq!(ctl.code("NLST /ida"), 150);
        let mut listing = String::new();
        data.read_to_string(&mut listing).unwrap();
        assert!(listing.contains("a.txt"), "{listing}");
        assert_eq!(ctl.reply().unwrap().0, 226);
    })
    .await;
    drop(hoarder);
    gw.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_address_cap_get_421_while_another_address_gets_in() {
    let gw = TestGateway::start_with(|c| c.limits.max_connections_per_address = 5).await;
    gw.user("jo", "jo-password", &[("/jo", Full)]).await;
    let addr = gw.addr("ftp");
    let mut flood = Vec::new();
    for _ in 0..5 {
        flood.push(connect_from("127.0.0.1", addr).await.unwrap());
    }
    let over = connect_from("127.0.0.1", addr).await.unwrap();
    let innocent = connect_from("127.0.0.2", addr).await.unwrap();
    client(move || {
        for s in flood.iter_mut() {
            let mut ctl = Ctl { s };
            assert_eq!(ctl.reply().unwrap().0, 220);
        }
        let mut over = Ctl { s: over };
        assert_eq!(over.reply().unwrap().0, 421, "over the cap");
        let (_, ended) = drain(&mut over.s);
        assert!(ended, "and closed");
        let mut ok = Ctl { s: innocent };
        assert_eq!(ok.reply().unwrap().0, 220);
        assert_eq!(ok.code("USER jo"), 331);
        assert_eq!(ok.code("PASS jo-password"), 230);
        assert_eq!(ok.code("NOOP"), 200);
        drop(flood);
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_past_the_per_address_cap_is_refused_while_a_signed_in_session_transfers() {
    let gw = TestGateway::start_with(|c| c.limits.max_connections_per_address = 4).await;
    gw.user("flo", "flo-password", &[("/flo", Full)]).await;
    let addr = gw.addr("ftp");
    let stored = gw.stored();
    let mut session = client(move || login(addr, "flo", "flo-password").unwrap()).await;
    let mut flood = Vec::new();
    for _ in 0..30 {
        flood.push(connect_from("127.0.0.1", addr).await.unwrap());
    }
    client(move || {
        let mut admitted = 0;
        let mut refused = 0;
        for s in flood.iter_mut() {
            match (Ctl { s }).reply().unwrap().0 {
                220 => admitted += 1,
                421 => refused += 1,
                other => panic!("reply {other} to a flooding connection"),
            }
        }
        assert_eq!(admitted, 3, "the cap counts the signed-in session");
        assert_eq!(refused, 27);
        // The session started before the flood goes on: a 4 MB upload and download, while
        // the admitted flood connections stay open.
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(session.pwd().unwrap(), "/flo");
        session
            .put_file("during-flood.bin", &mut Cursor::new(data.clone()))
            .unwrap();
        assert!(same(
            &session
                .retr_as_buffer("during-flood.bin")
                .unwrap()
                .into_inner(),
            &data
        ));
        assert!(same(
            &stored.read_blocking("flo/during-flood.bin").unwrap(),
            &data
        ));
        session.quit().unwrap();
        drop(flood);
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn unauthenticated_connections_are_closed_after_the_login_timeout() {
    let gw = TestGateway::start_with(|c| c.limits.login_timeout_seconds = 2).await;
    let kim = gw.user("kim", "kim-password", &[("/kim", Full)]).await;
    // A key signs in quickly (no password hashing), well within the 2 s.
    let (id, secret) = gw.key(Some(kim), "k", None, PermissionSet::Full).await;
    let addr = gw.addr("ftp");
    let (idle, mut signed) = client(move || {
        let idle: Vec<_> = (0..100).map(|_| plain(addr)).collect();
        let signed = signed_in_plain(addr, &format!("@api-{id}"), &secret);
        (idle, signed)
    })
    .await;
    let localhost = "127.0.0.1".parse().unwrap();
    assert_eq!(gw.gateway.core.gate.open(localhost).1, 101);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let gate = gw.gateway.core.gate.clone();
    client(move || {
        for (i, mut ctl) in idle.into_iter().enumerate() {
            ctl.s
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let (_, ended) = drain(&mut ctl.s);
            assert!(ended, "idle connection #{i} is still open");
        }
        assert_eq!(signed.code("NOOP"), 200, "a signed-in session stays");
        assert_eq!(gate.open(localhost).1, 1, "their slots are given back");
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_the_handshake_timeout() {
    let gw = TestGateway::start_with(|c| {
        c.limits.handshake_timeout_seconds = 1;
        c.limits.login_timeout_seconds = 60;
    })
    .await;
    let addr = gw.addr("ftp");
    let elapsed = client(move || {
        let mut ctl = plain(addr);
        assert_eq!(ctl.code("AUTH TLS"), 234);
        let started = Instant::now();
        // No ClientHello follows.
        let (_, ended) = drain(&mut ctl.s);
        assert!(ended, "the connection is closed");
        started.elapsed()
    })
    .await;
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    gw.stop().await;
}

#[tokio::test]
async fn an_endless_command_line_ends_the_connection() {
    let gw = TestGateway::start().await;
    let addr = gw.addr("ftp");
    client(move || {
        let mut ctl = plain(addr);
        let junk = vec![b'A'; 64 * 1024];
        for _ in 0..16 {
            if ctl.s.write_all(&junk).is_err() {
                break;
            }
        }
        ctl.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (_, ended) = drain(&mut ctl.s);
        assert!(ended, "the server closes the connection");
        assert_eq!(plain(addr).code("NOOP"), 200, "and serves others");
    })
    .await;
    gw.stop().await;
}

/// Signs in with a key, starts downloading `path` (EPSV, RETR) and reads `first` bytes.
fn start_download(
    addr: SocketAddr,
    user: &str,
    password: &str,
    path: &str,
    first: usize,
) -> (Ctl<std::net::TcpStream>, std::net::TcpStream) {
    let mut ctl = signed_in_plain(addr, user, password);
    let (code, reply) = ctl.cmd("EPSV").unwrap();
    assert_eq!(code, 229);
    let mut data = std::net::TcpStream::connect(("127.0.0.1", passive_port(&reply))).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(ctl.code(&format!("RETR {path}")), 150);
    let mut buf = vec![0u8; first];
    data.read_exact(&mut buf).unwrap();
    (ctl, data)
}

const BIG: usize = 64 * 1024 * 1024;

#[tokio::test]
async fn revoking_a_key_stops_its_download_in_progress() {
    let gw = TestGateway::start_with(|c| c.ftp.revocation_check_seconds = 1).await;
    let lee = gw.user("lee", "lee-password", &[("/lee", Full)]).await;
    let (id, secret) = gw.key(Some(lee), "dl", None, PermissionSet::Full).await;
    gw.write("lee/big.bin", &vec![7u8; BIG]).await;
    let addr = gw.addr("ftp");
    let (ctl, mut data) = client(move || {
        start_download(
            addr,
            &format!("@api-{id}"),
            &secret,
            "/lee/big.bin",
            1 << 20,
        )
    })
    .await;
    gw.revoke(id).await;
    // The download is paused by the client (socket buffers full) while the revocation is seen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rest, ended) = client(move || drain(&mut data)).await;
    assert!(ended, "the data connection is closed");
    assert!(
        (1 << 20) + rest < BIG,
        "the transfer stopped: {} of {BIG} bytes arrived",
        (1 << 20) + rest
    );
    drop(ctl);
    gw.stop().await;
}

#[tokio::test]
async fn a_download_the_client_stops_reading_is_ended_by_the_idle_timeout() {
    let gw = TestGateway::start_with(|c| c.ftp.idle_timeout_seconds = 2).await;
    let max = gw.user("max", "max-password", &[("/max", Full)]).await;
    // A key signs in quickly (no password hashing), within the 2 s control idle timeout.
    let (id, secret) = gw.key(Some(max), "k", None, PermissionSet::Full).await;
    gw.write("max/big.bin", &vec![7u8; BIG]).await;
    let addr = gw.addr("ftp");
    let (ctl, mut data) = client(move || {
        start_download(
            addr,
            &format!("@api-{id}"),
            &secret,
            "/max/big.bin",
            1 << 20,
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rest, ended) = client(move || drain(&mut data)).await;
    assert!(ended, "the data connection is closed");
    assert!((1 << 20) + rest < BIG, "the stalled transfer was ended");
    drop(ctl);
    gw.stop().await;
}

#[tokio::test]
async fn one_session_cannot_run_transfers_without_end() {
    let gw = TestGateway::start().await;
    gw.user("ned", "ned-password", &[("/ned", Full)]).await;
    gw.write("ned/big.bin", &vec![7u8; BIG]).await;
    let addr = gw.addr("ftp");
    client(move || {
        let mut ctl = signed_in_plain(addr, "ned", "ned-password");
        let mut stalled = Vec::new();
        let mut refused = false;
        for _ in 0..6 {
            let (code, reply) = ctl.cmd("EPSV").unwrap();
            if code == 425 {
                refused = true;
                break;
            }
            assert_eq!(code, 229);
            let data = std::net::TcpStream::connect(("127.0.0.1", passive_port(&reply))).unwrap();
            assert_eq!(ctl.code("RETR /ned/big.bin"), 150);
            // Not read: the transfer stays running.
            std::thread::sleep(Duration::from_millis(200));
            stalled.push(data);
        }
        assert!(refused, "PASV is refused while transfers are running");
        assert!(
            stalled.len() <= 2,
            "{} transfers ran at once",
            stalled.len()
        );
    })
    .await;
    gw.stop().await;
}

/// Bytes whose position shows: a range sent from the wrong offset does not compare equal.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Downloads `path` from each offset, with `retr_as_buffer` after `REST` (none for 0); a
/// macro because the plain and TLS clients are different types.
macro_rules! download_from {
    ($ftp:expr, $path:expr, $offsets:expr) => {
        $offsets
            .iter()
            .map(|&offset| {
                if offset > 0 {
                    $ftp.resume_transfer(offset).unwrap();
                }
                $ftp.retr_as_buffer($path).unwrap().into_inner()
            })
            .collect::<Vec<Vec<u8>>>()
    };
}

#[tokio::test]
async fn plain_downloads_sent_with_sendfile_carry_the_exact_bytes_from_every_rest_offset_and_audit_them_as_tls_downloads_do()
 {
    let gw = TestGateway::start().await;
    gw.user("zed", "zed-password", &[("/zed", ReadOnly)]).await;
    let len = 3 * 1024 * 1024 + 12_345;
    let content = pattern(len);
    gw.write("zed/f.bin", &content).await;
    let offsets = [0, 1, (1 << 20) + 7, len - 1, len];
    let addr = gw.addr("ftp");
    let expected = content.clone();
    client(move || {
        // Plain data connections: the sendfile path.
        let mut ftp = login(addr, "zed", "zed-password").unwrap();
        for (got, &offset) in download_from!(ftp, "/zed/f.bin", offsets)
            .iter()
            .zip(&offsets)
        {
            assert!(same(got, &expected[offset..]), "plain, REST {offset}");
        }
        ftp.quit().unwrap();
        // TLS data connections: the buffered path, for the same audit figures.
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
        ftp.login("zed", "zed-password").unwrap();
        ftp.transfer_type(FileType::Binary).unwrap();
        for (got, &offset) in download_from!(ftp, "/zed/f.bin", offsets)
            .iter()
            .zip(&offsets)
        {
            assert!(same(got, &expected[offset..]), "TLS, REST {offset}");
        }
        ftp.quit().unwrap();
    })
    .await;
    let mut sent: Vec<i64> = gw
        .audit()
        .await
        .iter()
        .filter(|r| r.action == "read" && r.path.as_deref() == Some("/zed/f.bin"))
        .map(|r| {
            assert_eq!(r.result, "ok");
            r.bytes.unwrap()
        })
        .collect();
    sent.sort_unstable();
    let mut want: Vec<i64> = offsets
        .iter()
        .chain(&offsets)
        .map(|&o| (len - o) as i64)
        .collect();
    want.sort_unstable();
    assert_eq!(
        sent, want,
        "each download is audited with the bytes it sent"
    );
    gw.stop().await;
}
