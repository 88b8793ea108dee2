//! A plain GET sent with `sendfile(2)` against clients and other users who misbehave, over
//! real sockets: a client that closes mid-GET frees its connection slot and its place in the
//! open-file budget, and is audited with the bytes sent; a file truncated while it is being
//! sent ends the response (connection closed, no zeros, no hang); a file replaced while it
//! is being sent is sent whole as it was when the GET opened it; over HTTPS (the buffered
//! path) a truncated file ends the response the same way, where dav-server used to pad it
//! with zeros. (A client that stops reading is cut at the transfer idle timeout:
//! `stall.rs`, which runs the same path.)

use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sendfile::{authorization, pattern, read_records, response_head, sendfile_bytes};
use super::{Dav, curl};
use crate::support::TestGateway;

const MIB: usize = 1 << 20;
const BIG: usize = 64 * MIB;
const BOUND: Duration = Duration::from_secs(20);

async fn gateway(tune: impl FnOnce(&mut filegate::config::Config)) -> Option<TestGateway> {
    let gw = TestGateway::start_with(tune).await;
    if !gw.local_only("webdav sendfile abuse", "sendfile serves local files only") {
        gw.stop().await;
        return None;
    }
    gw.user("sam", "sam-password", &[("/sam", Full)]).await;
    Some(gw)
}

/// Starts a GET of `path` and reads its head and the first `first` body bytes.
async fn get_started(gw: &TestGateway, path: &str, first: usize) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{}\r\n", authorization());
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = vec![0u8; first];
    tokio::time::timeout(BOUND, stream.read_exact(&mut body))
        .await
        .expect("the first bytes in time")
        .unwrap();
    (stream, body)
}

/// Reads until the server closes (a reset counts as closed), appending to `body`.
async fn drain_into(stream: &mut TcpStream, body: &mut Vec<u8>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection neither closed nor sent within {BOUND:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => body.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_closing_mid_get_frees_its_slot_and_open_file_and_is_audited_with_the_bytes_sent()
{
    let Some(gw) = gateway(|c| {
        c.limits.max_connections_per_address = 1;
        c.limits.max_open_files_per_user = 1;
    })
    .await
    else {
        return;
    };
    gw.write("sam/big.bin", &pattern(BIG)).await;
    gw.write("sam/small.bin", b"small").await;
    let (stream, body) = get_started(&gw, "/sam/big.bin", MIB).await;
    assert!(body == pattern(MIB), "the first bytes are the file's");
    drop(stream);
    let since = Instant::now();
    let ip = "127.0.0.1".parse().unwrap();
    while gw.gateway.core.gate.open(ip).1 != 0 {
        assert!(
            since.elapsed() < BOUND,
            "the closed client still holds its slot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sendfile_bytes(&gw) as i64;
    // The only connection slot and the only open-file place are free again.
    let dav = Dav::new(&gw, "sam", "sam-password");
    let reply = dav.call("GET", "/sam/small.bin", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "small")
    );
    let records = read_records(&gw, "/sam/big.bin", 1).await;
    assert_eq!(
        records,
        vec![sent],
        "audited with exactly the bytes sendfile sent"
    );
    assert!(sent >= MIB as i64 && sent < BIG as i64, "sent {sent}");
    gw.stop().await;
}

#[tokio::test]
async fn a_file_truncated_while_it_is_sent_ends_the_response_without_zeros_or_a_hang() {
    let Some(gw) = gateway(|_| {}).await else {
        return;
    };
    let content = pattern(BIG);
    gw.write("sam/big.bin", &content).await;
    let (mut stream, mut body) = get_started(&gw, "/sam/big.bin", MIB).await;
    let file = gw.root().join("sam/big.bin");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(2 * MIB as u64)
        .unwrap();
    drain_into(&mut stream, &mut body).await;
    assert!(
        body.len() < BIG,
        "the response ended early: {} bytes",
        body.len()
    );
    assert!(
        body == content[..body.len()],
        "every byte received is the file's (no zeros for the missing end)"
    );
    // Sent and received agree: the connection closed cleanly after the last byte sent.
    let records = read_records(&gw, "/sam/big.bin", 1).await;
    assert_eq!(records, vec![body.len() as i64]);
    assert_eq!(sendfile_bytes(&gw), body.len() as u64);
    // The server goes on serving, the shorter file whole.
    let dav = Dav::new(&gw, "sam", "sam-password");
    let response = dav
        .http
        .get(format!("{}/sam/big.bin", dav.base))
        .basic_auth("sam", Some("sam-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap() == content[..2 * MIB]);
    gw.stop().await;
}

#[tokio::test]
async fn a_file_replaced_by_another_user_while_it_is_sent_is_sent_whole_as_it_was_opened() {
    let Some(gw) = gateway(|_| {}).await else {
        return;
    };
    gw.user("ann", "ann-password", &[("/sam", Full)]).await;
    let old = pattern(BIG);
    gw.write("sam/big.bin", &old).await;
    let (mut stream, mut body) = get_started(&gw, "/sam/big.bin", MIB).await;
    let ann = Dav::new(&gw, "ann", "ann-password");
    let reply = ann
        .call("PUT", "/sam/big.bin", &[], "the new content")
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    // This connection is kept alive: read exactly the rest of the old file.
    let mut rest = vec![0u8; BIG - MIB];
    tokio::time::timeout(BOUND, stream.read_exact(&mut rest))
        .await
        .expect("the whole old file in time")
        .unwrap();
    body.extend_from_slice(&rest);
    assert!(body == old, "the old content, whole and exact");
    let reply = ann.call("GET", "/sam/big.bin", &[], "").await;
    assert_eq!(reply.body, "the new content");
    gw.stop().await;
}

#[tokio::test]
async fn a_file_truncated_while_it_is_sent_over_https_ends_the_response_without_zeros() {
    let dir = filegate::test_support::TempDir::new("davtls-truncate");
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let Some(gw) = gateway(move |c| {
        c.webdav.tls_cert = cert;
        c.webdav.tls_key = key;
    })
    .await
    else {
        return;
    };
    let content = pattern(BIG);
    gw.write("sam/big.bin", &content).await;
    let url = format!("https://{}/sam/big.bin", gw.addr("webdav"));
    let out = dir.path().join("out.bin");
    let target = out.to_str().unwrap().to_owned();
    // 8 MB/s: the download takes seconds, and is well under way when the file shrinks.
    let download = tokio::task::spawn_blocking(move || {
        let args = ["-k", "-u", "sam:sam-password", "--limit-rate", "8M"];
        curl(&[&args[..], &["-o", &target, &url]].concat())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keep = 16 * MIB;
    std::fs::OpenOptions::new()
        .write(true)
        .open(gw.root().join("sam/big.bin"))
        .unwrap()
        .set_len(keep as u64)
        .unwrap();
    let (_, code) = tokio::time::timeout(Duration::from_secs(60), download)
        .await
        .expect("curl ended")
        .unwrap();
    let body = std::fs::read(&out).unwrap();
    assert_eq!(code, "200", "the response had started");
    assert!(
        body.len() < BIG,
        "the response ended short: {} bytes",
        body.len()
    );
    assert!(
        body == content[..body.len()],
        "every byte received is the file's (no zeros for the missing end)"
    );
    assert_eq!(sendfile_bytes(&gw), 0, "TLS: the buffered path");
    gw.stop().await;
}
