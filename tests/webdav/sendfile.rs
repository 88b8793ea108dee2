//! Plain HTTP GETs of local files are sent with `sendfile(2)` (issue 14), over real sockets:
//! whole files and single ranges byte-exact, HEAD, keep-alive across GETs and a PROPFIND on
//! one connection, and the audit record's bytes; HTTPS sends the same bytes through the
//! buffered path. The gateway's `filegate_http_sendfile_bytes_total` counter shows which path
//! ran, so these tests fail if the fast path silently stops being used.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Dav, curl};
use crate::support::TestGateway;

const MIB: usize = 1 << 20;

/// `len` pseudo-random bytes, none of them zero (so zeros sent in their place would show).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 255) as u8 + 1
        })
        .collect()
}

/// Bytes the gateway's plain HTTP connections sent with `sendfile` so far.
pub fn sendfile_bytes(gw: &TestGateway) -> u64 {
    gw.gateway
        .core
        .metrics
        .http_sendfile_bytes
        .load(Ordering::Relaxed)
}

/// The bytes of each `read` audit record of `path`, sorted, once `n` of them are there.
pub async fn read_records(gw: &TestGateway, path: &str, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut bytes: Vec<i64> = gw
            .audit()
            .await
            .iter()
            .filter(|r| r.action == "read" && r.path.as_deref() == Some(path))
            .map(|r| r.bytes.unwrap_or(-1))
            .collect();
        if bytes.len() >= n || Instant::now() > deadline {
            bytes.sort_unstable();
            return bytes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn gateway() -> Option<TestGateway> {
    let gw = TestGateway::start().await;
    if !gw.local_only("webdav sendfile", "sendfile serves local files only") {
        gw.stop().await;
        return None;
    }
    gw.user("sam", "sam-password", &[("/sam", Full)]).await;
    Some(gw)
}

/// A GET with `headers`: status, headers and body.
async fn get(
    dav: &Dav,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = dav
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", dav.base),
        )
        .basic_auth(&dav.login, Some(&dav.password));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = req.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the whole body").to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn plain_gets_of_whole_files_and_ranges_are_sent_with_sendfile_byte_exact_and_audited() {
    let Some(gw) = gateway().await else { return };
    let len = 6 * MIB + 12_345;
    let content = pattern(len);
    gw.write("sam/f.bin", &content).await;
    let dav = Dav::new(&gw, "sam", "sam-password");

    let before = sendfile_bytes(&gw);
    let (status, _, body) = get(&dav, "GET", "/sam/f.bin", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == content, "whole file: {} of {len} bytes", body.len());
    assert_eq!(
        sendfile_bytes(&gw) - before,
        len as u64,
        "the whole file went out with sendfile"
    );

    let ranges = [
        ("bytes=0-99", 0..100),
        ("bytes=1000000-2999999", 1_000_000..3_000_000),
        ("bytes=-5000", len - 5000..len),
        ("bytes=4000000-", 4_000_000..len),
    ];
    for (asked, range) in &ranges {
        let before = sendfile_bytes(&gw);
        let (status, headers, body) = get(&dav, "GET", "/sam/f.bin", &[("Range", asked)]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{asked}");
        assert_eq!(
            headers["content-range"].to_str().unwrap(),
            format!("bytes {}-{}/{len}", range.start, range.end - 1),
            "{asked}"
        );
        assert!(body == content[range.clone()], "{asked}: wrong bytes");
        assert_eq!(sendfile_bytes(&gw) - before, range.len() as u64, "{asked}");
    }

    let before = sendfile_bytes(&gw);
    let (status, headers, body) = get(&dav, "HEAD", "/sam/f.bin", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"].to_str().unwrap(), len.to_string());
    assert!(body.is_empty());
    assert_eq!(sendfile_bytes(&gw), before, "HEAD sends nothing");

    // One record per request with the bytes it sent (HEAD opens the file and sends none).
    let mut want: Vec<i64> = ranges.iter().map(|(_, r)| r.len() as i64).collect();
    want.extend([len as i64, 0]);
    want.sort_unstable();
    assert_eq!(read_records(&gw, "/sam/f.bin", want.len()).await, want);
    gw.stop().await;
}

/// Reads a response head, up to and including its blank line.
pub async fn response_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("a response in time")
            .unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads one response (head, then a `Content-Length` or chunked body) from a kept-alive
/// connection.
async fn response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let head = response_head(stream).await;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        body.resize(length.parse().unwrap(), 0);
        read_exact(stream, &mut body).await;
        return (head, body);
    }
    assert_eq!(
        header("transfer-encoding").as_deref(),
        Some("chunked"),
        "{head}"
    );
    loop {
        let size_line = response_head_line(stream).await;
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
        let mut chunk = vec![0u8; size + 2];
        read_exact(stream, &mut chunk).await;
        if size == 0 {
            return (head, body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) {
    tokio::time::timeout(Duration::from_secs(20), stream.read_exact(buf))
        .await
        .expect("the body in time")
        .unwrap();
}

/// One line (a chunk size), read byte by byte.
async fn response_head_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await;
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

pub fn authorization() -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode("sam:sam-password");
    format!("Authorization: Basic {token}\r\n")
}

#[tokio::test]
async fn two_gets_and_a_propfind_share_one_kept_alive_connection() {
    let Some(gw) = gateway().await else { return };
    let len = 3 * MIB + 7;
    let content = pattern(len);
    gw.write("sam/k.bin", &content).await;
    let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    let auth = authorization();
    let before = sendfile_bytes(&gw);

    let get = format!("GET /sam/k.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let (head, body) = response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == content, "first GET");

    let ranged = format!("GET /sam/k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-\r\n{auth}\r\n");
    stream.write_all(ranged.as_bytes()).await.unwrap();
    let (head, body) = response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == content[100..], "second GET");

    let propfind = format!(
        "PROPFIND /sam/k.bin HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: 0\r\n{auth}\r\n"
    );
    stream.write_all(propfind.as_bytes()).await.unwrap();
    let (head, body) = response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 207"), "{head}");
    let xml = String::from_utf8_lossy(&body);
    assert!(
        xml.contains(&format!("<D:getcontentlength>{len}<")),
        "{xml}"
    );
    assert_eq!(sendfile_bytes(&gw) - before, (2 * len - 100) as u64);
    gw.stop().await;
}

#[tokio::test]
async fn https_gets_send_the_same_bytes_through_the_buffered_path() {
    let dir = filegate::test_support::TempDir::new("davtls-sendfile");
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start_with(move |c| {
        c.webdav.tls_cert = cert;
        c.webdav.tls_key = key;
    })
    .await;
    gw.user("sam", "sam-password", &[("/sam", Full)]).await;
    let len = 5 * MIB + 3;
    let content = pattern(len);
    gw.write("sam/t.bin", &content).await;
    let url = format!("https://{}/sam/t.bin", gw.addr("webdav"));
    let whole = dir.path().join("whole.bin");
    let part = dir.path().join("part.bin");
    let (w, p) = (
        whole.to_str().unwrap().to_owned(),
        part.to_str().unwrap().to_owned(),
    );
    let codes = tokio::task::spawn_blocking(move || {
        let auth = ["-k", "-u", "sam:sam-password"];
        let (_, a) = curl(&[&auth[..], &["-o", &w, &url]].concat());
        let (_, b) = curl(&[&auth[..], &["-r", "1048576-", "-o", &p, &url]].concat());
        (a, b)
    })
    .await
    .unwrap();
    assert_eq!(codes, ("200".to_owned(), "206".to_owned()));
    assert!(
        std::fs::read(&whole).unwrap() == content,
        "HTTPS whole file"
    );
    assert!(
        std::fs::read(&part).unwrap() == content[MIB..],
        "HTTPS range"
    );
    assert_eq!(
        sendfile_bytes(&gw),
        0,
        "nothing is sent with sendfile over TLS"
    );
    let mut want = vec![len as i64, (len - MIB) as i64];
    want.sort_unstable();
    assert_eq!(read_records(&gw, "/sam/t.bin", 2).await, want);
    gw.stop().await;
}
