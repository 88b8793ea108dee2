//! Classes 7 and 8: FTP data connections. `require_tls = "always"` means no file crosses the
//! network in clear, whatever the passive command; a passive port serves only the client
//! that asked for it; one client cannot hold the whole passive range.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use filegate::identity::GrantLevel::{Full, List};
use suppaftp::native_tls::TlsConnector;
use suppaftp::{NativeTlsConnector, NativeTlsFtpStream, Status};

use crate::clients::{blocking, epsv_port, ftp_login, ftp_login_from, shared};
use crate::support::TestGateway;
use crate::support::net::{OTHER_CLIENT, std_tcp_from};

const SECRET: &[u8] = b"top secret payload 0123456789";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything readable from `stream` within `limit`.
fn drain(mut stream: TcpStream, limit: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(limit)).ok();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[tokio::test]
async fn require_tls_always_sends_no_file_in_clear_after_prot_c_and_epsv() {
    let _shared = shared().await;
    let gw =
        TestGateway::start_with(|c| c.ftp.require_tls = filegate::config::RequireTls::Always).await;
    gw.user("carol", "carol-password", &[("/carol", Full)])
        .await;
    gw.write("carol/doc.txt", SECRET).await;
    let addr = gw.addr("ftp");
    let leaked = blocking(move || {
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
        let _ = ftp.custom_command("TYPE I", &[Status::CommandOk]);
        // Ask for a clear data channel, then use EPSV rather than PASV.
        let _ = ftp.custom_command("PROT C", &[Status::CommandOk]);
        let Ok(epsv) = ftp.custom_command("EPSV", &[Status::ExtendedPassiveMode]) else {
            return Vec::new();
        };
        let Some(port) = epsv_port(&epsv.body) else {
            return Vec::new();
        };
        let Ok(data) = TcpStream::connect(SocketAddr::new(addr.ip(), port)) else {
            return Vec::new();
        };
        if ftp
            .custom_command(
                "RETR /carol/doc.txt",
                &[Status::AboutToSend, Status::AlreadyOpen],
            )
            .is_err()
        {
            return Vec::new();
        }
        drain(data, Duration::from_secs(3))
    })
    .await;
    gw.stop().await;
    assert!(
        !contains(&leaked, SECRET),
        "the file crossed the data channel in clear under require_tls = always"
    );
}

#[tokio::test]
async fn a_passive_data_connection_from_another_address_neither_gets_the_file_nor_the_port() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    gw.user("carol", "carol-password", &[("/carol", Full)])
        .await;
    gw.write("carol/doc.txt", SECRET).await;
    let addr = gw.addr("ftp");
    let (stolen, delivered) = blocking(move || {
        let mut ftp = ftp_login(addr, "carol", "carol-password").unwrap();
        let epsv = ftp
            .custom_command("EPSV", &[Status::ExtendedPassiveMode])
            .expect("EPSV");
        let port = epsv_port(&epsv.body).expect("a port in the EPSV answer");
        let data_addr = SocketAddr::new(addr.ip(), port);
        // The thief, from 127.0.0.2, connects to the announced port first.
        let thief = std_tcp_from(data_addr, OTHER_CLIENT);
        std::thread::sleep(Duration::from_millis(300));
        // Then the client that asked for the port.
        let own = TcpStream::connect_timeout(&data_addr, Duration::from_secs(5));
        let retr = ftp.custom_command(
            "RETR /carol/doc.txt",
            &[Status::AboutToSend, Status::AlreadyOpen],
        );
        let stolen = match thief {
            Ok(thief) => drain(thief, Duration::from_secs(3)),
            Err(_) => Vec::new(),
        };
        let delivered = match (own, retr) {
            (Ok(own), Ok(_)) => drain(own, Duration::from_secs(3)),
            _ => Vec::new(),
        };
        (stolen, delivered)
    })
    .await;
    gw.stop().await;
    assert!(
        !contains(&stolen, SECRET),
        "a data connection from 127.0.0.2 received the file asked for by 127.0.0.1"
    );
    assert!(
        contains(&delivered, SECRET),
        "after a connection from 127.0.0.2 to its passive port, the client that asked for it \
         did not get its file ({} bytes)",
        delivered.len()
    );
}

#[tokio::test]
async fn one_list_only_user_cannot_hold_the_whole_passive_port_range() {
    let _shared = shared().await;
    let gw =
        TestGateway::start_with(|c| c.ftp.passive_ports = "41000-41019".parse().unwrap()).await;
    gw.user("hog", "hog-password", &[("/", List)]).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    let addr = gw.addr("ftp");
    let outcome = blocking(move || {
        // The hog asks for passive ports on several sessions and never connects.
        let mut hogs = Vec::new();
        let mut granted = 0;
        for _ in 0..4 {
            let Ok(mut ftp) = ftp_login(addr, "hog", "hog-password") else {
                continue;
            };
            for _ in 0..20 {
                if ftp.custom_command("PASV", &[Status::PassiveMode]).is_ok() {
                    granted += 1;
                }
            }
            hogs.push(ftp);
        }
        // The innocent client, from another address, still gets a data connection.
        let mut ftp = ftp_login_from(addr, OTHER_CLIENT, "bea", "bea-password")?;
        let listing = ftp.list(Some("/bea")).map_err(|e| format!("LIST: {e}"));
        drop(hogs);
        listing.map(|_| granted)
    })
    .await;
    gw.stop().await;
    assert!(
        outcome.is_ok(),
        "a second client got no passive port while one user asked for 80: {outcome:?}"
    );
}

/// Found by the red team: a name holding `\r\n` (put on the disk or in the bucket by someone
/// else) came out of LIST as is, so it could forge listing lines. Names no client path can
/// name are left out of every listing.
#[tokio::test]
async fn a_name_with_control_characters_cannot_forge_listing_lines() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    let forged = "evil\r\n-rw-r--r-- 1 ftp ftp 999 Jan 01 2020 FAKE.txt";
    // Made behind the gateway's back, as another program on the disk would.
    std::fs::write(gw.root().join("bea").join(forged), b"x").unwrap();
    gw.write("bea/plain.txt", b"plain").await;
    let addr = gw.addr("ftp");
    let names = blocking(move || {
        let mut ftp = ftp_login(addr, "bea", "bea-password").map_err(|e| format!("login: {e}"))?;
        let list = ftp.list(Some("/bea")).map_err(|e| format!("LIST: {e}"))?;
        let nlst = ftp.nlst(Some("/bea")).map_err(|e| format!("NLST: {e}"))?;
        Ok::<_, String>((list, nlst))
    })
    .await;
    gw.stop().await;
    let (list, nlst) = names.expect("listings");
    assert!(list.iter().any(|l| l.ends_with("plain.txt")), "{list:?}");
    assert!(!list.iter().any(|l| l.contains("FAKE")), "forged: {list:?}");
    assert_eq!(nlst.len(), 1, "{nlst:?}");
}
