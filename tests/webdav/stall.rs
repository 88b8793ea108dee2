//! The transfer idle timeout (`limits.transfer_idle_timeout_seconds`) over real sockets: a
//! PUT whose client stops sending its body and a GET whose client stops reading are cut
//! after about the timeout, the upload discarded (no file, no partial, no staging file or
//! open multipart upload, a failed audit record) and the connection's slot freed; a client
//! that trickles its body slowly but steadily is never cut. Local or S3 storage
//! (`FILEGATE_TEST_STORAGE`); on local storage the GET is sent with `sendfile(2)`.

use std::time::{Duration, Instant};

use base64::Engine;
use filegate::identity::GrantLevel::Full;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Dav;
use crate::support::{TestGateway, s3};

/// The transfer idle timeout the tests configure.
const T: Duration = Duration::from_secs(2);
/// The longest a cut may take: generous for a loaded machine.
const BOUND: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

async fn gateway(per_address: usize) -> TestGateway {
    let gw = TestGateway::start_with(|c| {
        c.limits.transfer_idle_timeout_seconds = T.as_secs();
        c.limits.max_connections_per_address = per_address;
    })
    .await;
    gw.user("sam", "sam-password", &[("/sam", Full)]).await;
    gw
}

fn authorization() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode("sam:sam-password");
    format!("Authorization: Basic {token}\r\n")
}

/// Opens a connection and sends a PUT head declaring `length` body bytes, then `sent` of them.
async fn put_started(gw: &TestGateway, path: &str, length: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\n{}Content-Length: {length}\r\n\r\n",
        authorization()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'h'; sent]).await.unwrap();
    stream
}

/// How long after `since` the gate counts no connection from 127.0.0.1 (panics past `BOUND`).
async fn slots_freed(gw: &TestGateway, since: Instant) -> Duration {
    let ip = "127.0.0.1".parse().unwrap();
    while gw.gateway.core.gate.open(ip).1 != 0 {
        assert!(
            since.elapsed() < BOUND,
            "a stalled connection still holds its slot after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

/// Reads until the server closes; the bytes read (a reset counts as closed).
async fn drain(stream: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection neither closed nor sent within {BOUND:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
        }
    }
}

/// The S3 bucket the gateway serves, when it serves one.
fn bucket(gw: &TestGateway) -> Option<String> {
    let url = gw.gateway.core.config.storage.url.as_ref()?.to_string();
    let rest = url.strip_prefix("s3://")?;
    Some(rest.split('/').next().unwrap_or(rest).to_owned())
}

async fn open_multipart_uploads(bucket: &str) -> Vec<String> {
    let bucket = bucket.to_owned();
    tokio::task::spawn_blocking(move || s3::require_moto().open_multipart_uploads(&bucket))
        .await
        .unwrap()
}

/// Staged uploads in progress: files in the local backend's staging folder, or open
/// multipart uploads in the bucket.
async fn uploads_in_progress(gw: &TestGateway) -> usize {
    match bucket(gw) {
        Some(bucket) => open_multipart_uploads(&bucket).await.len(),
        None => {
            let staging = gw
                .gateway
                .core
                .config
                .server
                .data_dir
                .join("uploads-in-progress");
            crate::support::staged_files(&staging)
        }
    }
}

#[tokio::test]
async fn a_put_that_stalls_halfway_is_cut_after_the_transfer_idle_timeout_and_leaves_nothing() {
    // One connection per address: the stalled PUT holds the only slot until it is cut.
    let gw = gateway(1).await;
    // Well past an S3 part (8 MiB; the writer buffers a few), so a multipart upload is open
    // when the client stalls.
    let mut stalled = put_started(&gw, "/sam/half.bin", 48 * MIB, 24 * MIB).await;
    let since = Instant::now();
    let mut seen_in_progress = false;
    let ip = "127.0.0.1".parse().unwrap();
    while !seen_in_progress && gw.gateway.core.gate.open(ip).1 != 0 {
        seen_in_progress = uploads_in_progress(&gw).await > 0;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_in_progress,
        "the upload was under way when the client stalled"
    );
    let freed = slots_freed(&gw, since).await;
    assert!(
        freed >= T / 2,
        "cut after {freed:?}, before the timeout ({T:?})"
    );
    assert_eq!(
        drain(&mut stalled).await,
        0,
        "no answer, just a closed connection"
    );

    assert!(!gw.exists("sam/half.bin").await);
    assert_eq!(gw.stored().list("sam").await, Vec::<String>::new());
    let deadline = Instant::now() + BOUND;
    while uploads_in_progress(&gw).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the staged upload was not discarded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + BOUND;
    loop {
        let audit = gw.audit().await;
        if audit.iter().any(|r| {
            r.action == "create"
                && r.path.as_deref() == Some("/sam/half.bin")
                && r.result == "failed"
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed upload audited: {audit:?}"
        );
    }

    // The slot is free and the name can be uploaded again.
    let dav = Dav::new(&gw, "sam", "sam-password");
    assert_eq!(
        dav.status("PUT", "/sam/half.bin", &[], "whole").await,
        StatusCode::CREATED
    );
    assert_eq!(
        gw.read("sam/half.bin").await.as_deref(),
        Some(&b"whole"[..])
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_client_trickling_its_body_slowly_but_steadily_is_not_cut() {
    let gw = gateway(4).await;
    const BODY: &[u8] = b"steady";
    let mut stream = put_started(&gw, "/sam/slow.txt", BODY.len(), 0).await;
    let started = Instant::now();
    // One byte a second, three times as long as the timeout.
    for byte in BODY {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stream.write_all(&[*byte]).await.unwrap();
    }
    assert!(started.elapsed() > T * 2);
    let mut reply = [0u8; 12];
    tokio::time::timeout(BOUND, stream.read_exact(&mut reply))
        .await
        .expect("an answer in time")
        .expect("the connection stayed open");
    assert_eq!(
        &reply,
        b"HTTP/1.1 201",
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(gw.read("sam/slow.txt").await.as_deref(), Some(BODY));
    gw.stop().await;
}

#[tokio::test]
async fn a_get_whose_client_reads_nothing_is_cut_after_the_transfer_idle_timeout() {
    let gw = gateway(4).await;
    // Larger than the socket buffers on both sides, so the server's writes block.
    const SIZE: usize = 32 * MIB;
    gw.write("sam/big.bin", &vec![5u8; SIZE]).await;
    let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    let head = format!(
        "GET /sam/big.bin HTTP/1.1\r\nHost: x\r\n{}\r\n",
        authorization()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The response has started (a few bytes read), then this client reads nothing more.
    let mut status = [0u8; 12];
    tokio::time::timeout(BOUND, stream.read_exact(&mut status))
        .await
        .expect("a response in time")
        .unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    let since = Instant::now();
    let freed = slots_freed(&gw, since).await;
    assert!(
        freed >= T / 2,
        "cut after {freed:?}, before the timeout ({T:?})"
    );
    let received = drain(&mut stream).await;
    assert!(
        received > 0 && received < SIZE,
        "received {received} of {SIZE}"
    );
    if !gw.on_s3() {
        // On local storage this GET is the sendfile path (the stall is the kernel's socket).
        assert!(
            super::sendfile::sendfile_bytes(&gw) > 0,
            "sent with sendfile"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_not_served() {
    // On HTTP/2 the stall rule would be per connection (pings and other streams move
    // bytes), so a stalled stream could hold an upload open forever: only HTTP/1.1 is
    // served. The h2c preface gets no HTTP/2 SETTINGS frame back.
    let gw = gateway(8).await;
    let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut reply)).await;
    assert!(
        read.is_ok(),
        "the connection was neither answered nor closed"
    );
    // An HTTP/2 server's first frame is SETTINGS: length (3 bytes), type 4.
    let settings = reply.len() >= 4 && reply[3] == 4 && !reply.starts_with(b"HTTP/");
    assert!(
        !settings,
        "answered with HTTP/2: {:?}",
        &reply[..reply.len().min(32)]
    );
    assert!(
        reply.is_empty() || reply.starts_with(b"HTTP/1.1 "),
        "unexpected reply {:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(64)])
    );
    gw.stop().await;
}
