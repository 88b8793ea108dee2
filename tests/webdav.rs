//! The WebDAV front-end over real sockets on 127.0.0.1: plain HTTP and HTTPS, with curl.

mod support;

use std::process::Command;

use filegate::identity::GrantLevel::Full;
use support::TestGateway;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_owned(), code.to_owned())
}

#[tokio::test]
async fn webdav_serves_https_when_a_certificate_is_configured() {
    let dir = filegate::test_support::TempDir::new("davtls");
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
    gw.user("tess", "tess-password", &[("/tess", Full)]).await;
    gw.put("tess/a.txt", b"over https");
    let url = format!("https://{}/tess/a.txt", gw.addr("webdav"));
    let (body, code) =
        tokio::task::spawn_blocking(move || curl(&["-k", "-u", "tess:tess-password", &url]))
            .await
            .unwrap();
    assert_eq!((body.as_str(), code.as_str()), ("over https", "200"));
    let plain = format!("http://{}/tess/a.txt", gw.addr("webdav"));
    let (_, code) =
        tokio::task::spawn_blocking(move || curl(&["-u", "tess:tess-password", &plain]))
            .await
            .unwrap();
    assert_ne!(code, "200", "no plain HTTP on the TLS port");
    gw.stop().await;
}

#[tokio::test]
async fn webdav_over_plain_http_refuses_missing_or_wrong_credentials() {
    let gw = TestGateway::start().await;
    gw.user("ula", "ula-password", &[("/ula", Full)]).await;
    let base = format!("http://{}/ula/", gw.addr("webdav"));
    let (code_none, code_bad, code_ok) = tokio::task::spawn_blocking(move || {
        let none = curl(&[&base]).1;
        let bad = curl(&["-u", "ula:wrong-password", &base]).1;
        let ok = curl(&[
            "-u",
            "ula:ula-password",
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 1",
            &base,
        ])
        .1;
        (none, bad, ok)
    })
    .await
    .unwrap();
    assert_eq!(
        (code_none.as_str(), code_bad.as_str(), code_ok.as_str()),
        ("401", "401", "207")
    );
    gw.stop().await;
}
