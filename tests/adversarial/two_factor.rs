//! Two-factor sign-in under attack: a code without the password, empty, lettered and
//! overlong codes (REST API and FTP), a console code page replayed from another address or
//! with a forged token, and a stolen password alone on every protocol. Each is refused
//! with the one refusal, recorded with its real reason, and signs nobody in.

use std::time::Duration;

use filegate::auth::totp;
use filegate::identity::GrantLevel::Full;
use filegate::identity::Principal;
use reqwest::StatusCode;
use suppaftp::FtpStream;

use crate::support::TestGateway;

async fn enrolled(gw: &TestGateway, name: &str) -> Vec<u8> {
    let id = gw
        .user(name, &format!("{name}-password"), &[("/t", Full)])
        .await;
    let (enrolment, _) = gw
        .gateway
        .core
        .accounts
        .totp_enroll_now(&Principal::cli(), id)
        .await
        .unwrap();
    let uri = enrolment.uri;
    assert!(uri.contains(&enrolment.secret_base32));
    decode(&enrolment.secret_base32)
}

fn decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn now_code(secret: &[u8]) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{:06}", totp::code_at(secret, totp::step_at(now)))
}

async fn session(gw: &TestGateway, user: &str, password: &str, otp: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("http://{}/api/rest/v1/sessions", gw.addr("api")))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": user, "password": password, "otp": otp}).to_string())
        .send()
        .await
        .unwrap()
        .status()
}

fn ftp_login(addr: std::net::SocketAddr, user: &str, password: &str) -> bool {
    let mut ftp = FtpStream::connect(addr).unwrap();
    let ok = ftp.login(user, password).is_ok();
    let _ = ftp.quit();
    ok
}

#[tokio::test]
async fn a_code_alone_or_an_empty_lettered_or_overlong_code_never_signs_in() {
    let gw = TestGateway::start().await;
    let secret = enrolled(&gw, "eve").await;
    let overlong = "1".repeat(100_000);
    for otp in [
        "",
        "      ",
        "12345a",
        "１２３４５６",
        "123-456",
        overlong.as_str(),
    ] {
        assert_ne!(
            session(&gw, "eve", "eve-password", otp).await,
            StatusCode::CREATED,
            "otp {:?}",
            otp.get(..12)
        );
    }
    // The code without the password (or as the password).
    let code = now_code(&secret);
    assert_ne!(session(&gw, "eve", "", &code).await, StatusCode::CREATED);
    assert_ne!(session(&gw, "eve", &code, &code).await, StatusCode::CREATED);
    let addr = gw.addr("ftp");
    let attempts = [
        code.clone(),
        "eve-password".to_owned(),
        "eve-password12345".to_owned(),
        "eve-passwordabcdef".to_owned(),
        format!("eve-password{}", &overlong[..1000]),
    ];
    let results = tokio::task::spawn_blocking(move || attempts.map(|p| ftp_login(addr, "eve", &p)))
        .await
        .unwrap();
    assert_eq!(
        results, [false; 5],
        "FTP: code alone, none, short, letters, overlong"
    );
    // The real code still works afterwards (nothing was spent by the garbage).
    assert_eq!(
        session(&gw, "eve", "eve-password", &code).await,
        StatusCode::CREATED
    );
    let audit = gw.audit().await;
    let reasons: Vec<String> = audit.iter().filter_map(|r| r.reason.clone()).collect();
    assert!(
        reasons.iter().any(|r| r == "malformed second-factor code"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "second-factor code missing"),
        "{reasons:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_stolen_password_alone_opens_nothing_on_any_protocol() {
    let gw = TestGateway::start().await;
    enrolled(&gw, "vic").await;
    let addr = gw.addr("ftp");
    let ftp_ok = tokio::task::spawn_blocking(move || ftp_login(addr, "vic", "vic-password"))
        .await
        .unwrap();
    assert!(!ftp_ok, "FTP");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dav = http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("http://{}/", gw.addr("webdav")),
        )
        .basic_auth("vic", Some("vic-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(dav.status(), StatusCode::UNAUTHORIZED, "WebDAV");
    assert_eq!(
        session(&gw, "vic", "vic-password", "").await,
        StatusCode::UNAUTHORIZED
    );
    // SFTP: the password gets a partial success, never a session.
    let ssh = crate::support::sftp_client::login(gw.addr("sftp"), "vic", "vic-password").await;
    assert!(ssh.is_none(), "SFTP");
    // Console: the password gets the code page, not a session cookie.
    let page = http
        .post(format!("http://{}/sign-in", gw.addr("api")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=vic&password=vic-password")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("set-cookie").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn a_console_code_page_cannot_be_finished_from_another_address_or_with_a_forged_token() {
    let gw = TestGateway::start().await;
    let secret = enrolled(&gw, "ivy").await;
    let base = format!("http://{}", gw.addr("api"));
    let client = |ip: &str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let page = client("127.0.0.1")
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=ivy&password=ivy-password")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"pending\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let token = &page[start..start + page[start..].find('"').unwrap()];
    let finish = |http: reqwest::Client, token: String| {
        let base = base.clone();
        let otp = now_code(&secret);
        async move {
            http.post(format!("{base}/sign-in/code"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("pending={token}&otp={otp}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Another address (127.0.0.2) with the right code: refused (the token is bound).
    assert_eq!(
        finish(client("127.0.0.2"), token.to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    // Tampered or made-up tokens: refused.
    let mut flipped = token.to_owned().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(
        finish(client("127.0.0.1"), flipped).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        finish(client("127.0.0.1"), "00".repeat(60)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        finish(client("127.0.0.1"), "x".repeat(4000)).await,
        StatusCode::UNAUTHORIZED
    );
    // The genuine one, from its address: signed in.
    assert_eq!(
        finish(client("127.0.0.1"), token.to_owned()).await,
        StatusCode::SEE_OTHER
    );
    gw.stop().await;
}
