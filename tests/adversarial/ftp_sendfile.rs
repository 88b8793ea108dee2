//! Plain FTP downloads are sent with `sendfile(2)` (issue 14). A client that stops reading
//! in the middle must not pin a thread or keep its place in the open-file budget, and a file
//! truncated while it is being sent must end the transfer, not hang it.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use suppaftp::{FtpStream, Status};

use crate::clients::{blocking, epsv_port, ftp_login, shared};
use crate::support::TestGateway;

const BIG: usize = 64 * 1024 * 1024;

/// Starts `RETR path` on a plain data connection and reads its first `first` bytes.
fn start_retr(ftp: &mut FtpStream, addr: SocketAddr, path: &str, first: usize) -> TcpStream {
    let epsv = ftp
        .custom_command("EPSV", &[Status::ExtendedPassiveMode])
        .expect("EPSV");
    let port = epsv_port(&epsv.body).expect("a port in the EPSV answer");
    let mut data =
        TcpStream::connect_timeout(&SocketAddr::new(addr.ip(), port), Duration::from_secs(5))
            .expect("data connection");
    data.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    ftp.custom_command(
        format!("RETR {path}"),
        &[Status::AboutToSend, Status::AlreadyOpen],
    )
    .expect("RETR starts");
    let mut buf = vec![0u8; first];
    data.read_exact(&mut buf).expect("the first bytes arrive");
    data
}

/// Reads to the end; returns the bytes read and whether the stream ended (rather than the
/// read timing out).
fn drain(data: &mut TcpStream) -> (usize, bool) {
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match data.read(&mut buf) {
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
async fn a_client_that_stops_reading_a_sendfile_download_pins_no_thread_and_gives_back_its_open_file_place()
 {
    let _shared = shared().await;
    let gw = TestGateway::start_with(|c| {
        c.ftp.idle_timeout_seconds = 3;
        c.limits.max_open_files_per_user = 1;
    })
    .await;
    let sid = gw.user("sid", "sid-password", &[("/sid", Full)]).await;
    gw.user("amy", "amy-password", &[("/amy", Full)]).await;
    // Keys sign in without password hashing, well within the 3 s control idle timeout.
    let (id, secret) = gw.key(Some(sid), "k", None, PermissionSet::Full).await;
    gw.write("sid/big.bin", &vec![7u8; BIG]).await;
    gw.write("sid/small.bin", b"small file").await;
    gw.write("amy/doc.bin", &vec![9u8; 4 * 1024 * 1024]).await;
    let addr = gw.addr("ftp");
    let login = format!("@api-{id}");
    let outcome = blocking(move || {
        let mut stalled_ctl = ftp_login(addr, &login, &secret).unwrap();
        let mut stalled = start_retr(&mut stalled_ctl, addr, "/sid/big.bin", 1 << 20);
        // While sid's download waits for its client, others are served in full.
        for _ in 0..4 {
            let mut amy = ftp_login(addr, "amy", "amy-password").unwrap();
            let got = amy.retr_as_buffer("/amy/doc.bin").unwrap().into_inner();
            assert_eq!(
                got.len(),
                4 * 1024 * 1024,
                "another user's download completes"
            );
        }
        // After the idle timeout the stalled transfer is ended...
        std::thread::sleep(Duration::from_secs(6));
        let (rest, ended) = drain(&mut stalled);
        assert!(ended, "the stalled data connection is closed");
        assert!(
            (1 << 20) + rest < BIG,
            "the stalled transfer did not finish"
        );
        drop(stalled_ctl);
        // ...and its place in sid's budget (one open file) is free again.
        let mut again = ftp_login(addr, &login, &secret).unwrap();
        again
            .retr_as_buffer("/sid/small.bin")
            .map(|c| c.into_inner())
    })
    .await;
    gw.stop().await;
    assert_eq!(
        outcome.expect("a new download after the stalled one ended"),
        b"small file"
    );
}

/// A plain control connection, read line by line.
struct Ctl(std::io::BufReader<TcpStream>);

impl Ctl {
    fn connect(addr: SocketAddr) -> Ctl {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut ctl = Ctl(std::io::BufReader::new(s));
        assert_eq!(ctl.reply(), 220);
        ctl
    }

    /// The code of the next (possibly multi-line) reply; 0 when there is none.
    fn reply(&mut self) -> u32 {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap_or(0) == 0 {
                return 0;
            }
            if line.as_bytes().get(3) == Some(&b' ') {
                return line[..3].parse().unwrap_or(0);
            }
        }
    }

    fn cmd(&mut self, line: &str) -> u32 {
        use std::io::Write;
        let _ = self.0.get_mut().write_all(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

#[tokio::test]
async fn a_file_truncated_while_sendfile_sends_it_ends_the_transfer_and_the_session_carries_on() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    gw.user("tia", "tia-password", &[("/tia", Full)]).await;
    gw.write("tia/big.bin", &vec![5u8; BIG]).await;
    let path = gw.root().join("tia/big.bin");
    let addr = gw.addr("ftp");
    let (rest, ended, after, noop) = blocking(move || {
        let mut ctl = Ctl::connect(addr);
        assert_eq!(ctl.cmd("USER tia"), 331);
        assert_eq!(ctl.cmd("PASS tia-password"), 230);
        assert_eq!(ctl.cmd("TYPE I"), 200);
        use std::io::Write;
        ctl.0.get_mut().write_all(b"EPSV\r\n").unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut ctl.0, &mut line).unwrap();
        let port = epsv_port(line.as_bytes()).expect("a port in the EPSV answer");
        let mut data =
            TcpStream::connect_timeout(&SocketAddr::new(addr.ip(), port), Duration::from_secs(5))
                .unwrap();
        data.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        assert_eq!(ctl.cmd("RETR /tia/big.bin"), 150);
        let mut first = vec![0u8; 1 << 20];
        data.read_exact(&mut first).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2 << 20)
            .unwrap();
        let (rest, ended) = drain(&mut data);
        drop(data);
        // The transfer's reply, then the session answers as usual.
        let after = ctl.reply();
        let noop = ctl.cmd("NOOP");
        (rest, ended, after, noop)
    })
    .await;
    gw.stop().await;
    assert!(
        ended,
        "the data connection ends (no hang) after the truncation"
    );
    assert!(
        (1 << 20) + rest < BIG,
        "no more than the file's bytes were sent"
    );
    assert!(after >= 200, "the transfer gets a reply ({after})");
    assert_eq!(noop, 200, "the control connection still answers");
}
