//! Two-factor sign-in (TOTP) end to end, with real clients on 127.0.0.1: paramiko and
//! OpenSSH `sftp` answering the keyboard-interactive code prompt after the password, Python
//! ftplib with the code appended to the password, WebDAV refusing a TOTP user's password
//! (with or without a code) and taking their API key, the REST API's `POST /sessions` with
//! `otp`, the console's code page. Replayed codes, wrong codes and used recovery codes are
//! refused; API keys are never asked for a code; `auth.require_2fa` shuts out users
//! without TOTP on the file protocols.
//!
//! Codes are computed here from the secret the enrolment printed (RFC 6238). The replay
//! guard accepts a step only once and only after the last used one, so each test uses its
//! own users and at most the codes of "now" and "now + 1 step".
//!
//! A client that is not installed makes its test say so on stderr ("SKIPPED") and pass.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use filegate::auth::totp;
use filegate::identity::GrantLevel::Full;
use filegate::identity::{PermissionSet, Principal};
use reqwest::StatusCode;
use support::TestGateway;

/// Turns TOTP on for `user_id`; returns the secret and the recovery codes.
async fn enrol(gw: &TestGateway, user_id: i64) -> (Vec<u8>, Vec<String>) {
    let (enrolment, codes) = gw
        .gateway
        .core
        .accounts
        .totp_enroll_now(&Principal::cli(), user_id)
        .await
        .unwrap();
    assert!(enrolment.uri.starts_with("otpauth://totp/filegate:"));
    (base32_decode(&enrolment.secret_base32), codes)
}

fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base32") as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The code of `offset` steps from now.
fn code(secret: &[u8], offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{:06}", totp::code_at(secret, totp::step_at(now) + offset))
}

/// A six-digit code that is none of the accepted ones now.
fn wrong_code(secret: &[u8]) -> String {
    let taken: Vec<String> = (-2..=2).map(|o| code(secret, o)).collect();
    (0..1000)
        .map(|n| format!("{:06}", 123_457 + n))
        .find(|c| !taken.contains(c))
        .unwrap()
}

fn have(tool: &str, args: &[&str], test: &str) -> bool {
    let found = Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED {test}: `{tool}` is not usable here (tests/interop installs it)");
    }
    found
}

fn have_paramiko(test: &str) -> bool {
    have("python3", &["-c", "import paramiko"], test)
}

async fn python(script: &str, args: &[String]) -> Output {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).args(args);
    tokio::task::spawn_blocking(move || command.output().expect("python3"))
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// paramiko: password (partial success), then keyboard-interactive with the code; prints
/// `methods=<what the password left>`, the prompts and the listing of `/`, or `refused`.
///
/// paramiko's own `auth_interactive` asks for the `ssh-userauth` service again after a
/// partial success, which russh 0.65 answers by closing the connection (OpenSSH clients do
/// not do that; see the OpenSSH test below); so the keyboard-interactive request is sent on
/// the running auth handler, as `auth_interactive` would after the service accept.
const PARAMIKO: &str = r#"
import sys, threading, paramiko
from paramiko.message import Message
from paramiko.common import cMSG_USERAUTH_REQUEST
host, port, user, password, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
t = paramiko.Transport((host, port))
t.start_client(timeout=20)
try:
    left = t.auth_password(user, password)
    print("methods=" + ",".join(left))
    if left:
        prompts_seen = []
        def answer(title, instructions, prompts):
            prompts_seen.extend(p for p, _ in prompts)
            return [code for _ in prompts]
        ah = t.auth_handler
        ev = threading.Event()
        ah.auth_event, ah.auth_method, ah.username = ev, "keyboard-interactive", user
        ah.interactive_handler, ah.submethods = answer, ""
        m = Message()
        m.add_byte(cMSG_USERAUTH_REQUEST)
        for field in (user, "ssh-connection", "keyboard-interactive", "", ""):
            m.add_string(field)
        t._send_message(m)
        ah.wait_for_response(ev)
        print("prompts=" + "|".join(prompts_seen))
    sftp = paramiko.SFTPClient.from_transport(t)
    print("list=" + ",".join(sorted(sftp.listdir("/"))))
except paramiko.AuthenticationException as e:
    print("refused")
t.close()
"#;

async fn paramiko(gw: &TestGateway, user: &str, password: &str, code: &str) -> String {
    let addr = gw.addr("sftp");
    let args = [
        addr.ip().to_string(),
        addr.port().to_string(),
        user.to_owned(),
        password.to_owned(),
        code.to_owned(),
    ];
    let out = python(PARAMIKO, &args).await;
    assert!(out.status.success(), "paramiko: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn sftp_asks_for_the_code_after_the_password_and_refuses_a_wrong_or_replayed_one() {
    if !have_paramiko("sftp_asks_for_the_code") {
        return;
    }
    let gw = TestGateway::start().await;
    let id = gw.user("sam", "sam-password", &[("/sam", Full)]).await;
    let (secret, _) = enrol(&gw, id).await;

    let good = code(&secret, 0);
    let out = paramiko(&gw, "sam", "sam-password", &good).await;
    assert!(out.contains("methods=keyboard-interactive"), "{out}");
    assert!(out.contains("prompts=Verification code: "), "{out}");
    assert!(out.contains("list=sam"), "{out}");

    // The same code again (same window): refused.
    let out = paramiko(&gw, "sam", "sam-password", &good).await;
    assert!(out.contains("refused"), "replayed code: {out}");
    // A wrong code: refused; a wrong password never reaches the code.
    let out = paramiko(&gw, "sam", "sam-password", &wrong_code(&secret)).await;
    assert!(out.contains("refused"), "wrong code: {out}");
    let out = paramiko(&gw, "sam", "not-the-password", &code(&secret, 1)).await;
    assert!(
        out.contains("refused") && !out.contains("methods="),
        "{out}"
    );
    // The next step's code works once.
    let out = paramiko(&gw, "sam", "sam-password", &code(&secret, 1)).await;
    assert!(out.contains("list=sam"), "next code: {out}");

    let audit = gw.audit().await;
    let reasons: Vec<&str> = audit.iter().filter_map(|r| r.reason.as_deref()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("already used")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("wrong second-factor code")),
        "{reasons:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_api_key_of_a_totp_user_signs_in_with_no_code_on_every_protocol() {
    let gw = TestGateway::start().await;
    let id = gw.user("kim", "kim-password", &[("/kim", Full)]).await;
    enrol(&gw, id).await;
    let (_, secret) = gw
        .key(Some(id), "kim-script", None, PermissionSet::Full)
        .await;
    let login = "@api-kim-script";

    // SFTP (paramiko: the password is the key's secret; nothing else is asked).
    if have_paramiko("api key over sftp") {
        let out = paramiko(&gw, login, &secret, "unused").await;
        assert!(
            out.contains("methods=\n") || out.contains("methods=\r\n"),
            "{out}"
        );
        assert!(out.contains("list=kim"), "{out}");
    }
    // FTP (ftplib).
    let addr = gw.addr("ftp");
    let script = r#"
import ftplib, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]))
ftp.login(sys.argv[3], sys.argv[4])
print("pwd=" + ftp.pwd())
ftp.quit()
"#;
    let args = [
        addr.ip().to_string(),
        addr.port().to_string(),
        login.to_owned(),
        secret.clone(),
    ];
    let out = python(script, &args).await;
    assert!(out.status.success(), "ftplib with a key: {}", text(&out));
    // WebDAV.
    let http = reqwest::Client::new();
    let dav = format!("http://{}/", gw.addr("webdav"));
    let response = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &dav)
        .basic_auth(login, Some(&secret))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 207);
    // REST API.
    let api = format!("http://{}/api/rest/v1/api_key", gw.addr("api"));
    let response = http
        .get(&api)
        .header("X-FilesAPI-Key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn ftp_takes_the_code_appended_to_the_password_once() {
    let gw = TestGateway::start().await;
    let id = gw.user("fay", "fay-password", &[("/fay", Full)]).await;
    let (secret, _) = enrol(&gw, id).await;
    let addr = gw.addr("ftp");
    let script = r#"
import ftplib, sys
host, port = sys.argv[1], int(sys.argv[2])
for password in sys.argv[3:]:
    ftp = ftplib.FTP()
    ftp.connect(host, port)
    try:
        ftp.login("fay", password)
        print("ok " + ftp.pwd())
        ftp.quit()
    except ftplib.error_perm as e:
        print("refused")
        ftp.close()
"#;
    let good = code(&secret, 0);
    let passwords = [
        "fay-password".to_owned(),
        format!("fay-password{}", wrong_code(&secret)),
        format!("fay-password{good}"),
        format!("fay-password{good}"),
        format!("fay-password{}", code(&secret, 1)),
    ];
    let mut args = vec![addr.ip().to_string(), addr.port().to_string()];
    args.extend(passwords);
    let out = python(script, &args).await;
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        ["refused", "refused", "ok /fay", "refused", "ok /fay"],
        "password alone, wrong code, good code, replay, next code"
    );
    // The password alone loses its last six characters as the code: a wrong password.
    let audit = gw.audit().await;
    let reasons: Vec<&str> = audit.iter().filter_map(|r| r.reason.as_deref()).collect();
    assert!(reasons.contains(&"wrong second-factor code"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("already used")),
        "{reasons:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn webdav_refuses_a_totp_users_password_with_or_without_a_code_and_says_to_use_a_key() {
    let gw = TestGateway::start().await;
    let id = gw.user("dee", "dee-password", &[("/dee", Full)]).await;
    let (secret, _) = enrol(&gw, id).await;
    let http = reqwest::Client::new();
    let dav = format!("http://{}/", gw.addr("webdav"));
    for password in [
        "dee-password".to_owned(),
        format!("dee-password{}", code(&secret, 0)),
    ] {
        let response = http
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &dav)
            .basic_auth("dee", Some(&password))
            .header("Depth", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = response.text().await.unwrap();
        assert!(body.contains("API key"), "{body}");
    }
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| {
        r.reason
            .as_deref()
            .is_some_and(|m| m.contains("WebDAV takes an API key"))
    }));
    let (_, secret) = gw
        .key(Some(id), "dee-mount", None, PermissionSet::Full)
        .await;
    let response = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &dav)
        .basic_auth("@api-dee-mount", Some(&secret))
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 207);
    gw.stop().await;
}

async fn api_session(gw: &TestGateway, user: &str, password: &str, otp: Option<&str>) -> u16 {
    api_session_reply(gw, user, password, otp).await.0
}

/// `POST /sessions`: the status and the error type (`not-authenticated/locked-out`, …).
async fn api_session_reply(
    gw: &TestGateway,
    user: &str,
    password: &str,
    otp: Option<&str>,
) -> (u16, String) {
    let mut body = serde_json::json!({"username": user, "password": password});
    if let Some(otp) = otp {
        body["otp"] = otp.into();
    }
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/rest/v1/sessions", gw.addr("api")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or_default();
    (status, body["type"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn the_api_session_takes_otp_and_a_recovery_code_works_once() {
    let gw = TestGateway::start().await;
    let id = gw.user("ann", "ann-password", &[("/ann", Full)]).await;
    let (secret, recovery) = enrol(&gw, id).await;
    assert_eq!(recovery.len(), 10);
    assert_eq!(api_session(&gw, "ann", "ann-password", None).await, 401);
    let wrong = wrong_code(&secret);
    assert_eq!(
        api_session(&gw, "ann", "ann-password", Some(&wrong)).await,
        401
    );
    let good = code(&secret, 0);
    assert_eq!(
        api_session(&gw, "ann", "ann-password", Some(&good)).await,
        201
    );
    assert_eq!(
        api_session(&gw, "ann", "ann-password", Some(&good)).await,
        401
    );
    // A code without the password is nothing.
    assert_ne!(
        api_session(&gw, "ann", "", Some(&code(&secret, 1))).await,
        201
    );
    // A recovery code, typed in capitals: once.
    let r = recovery[3].to_uppercase();
    assert_eq!(api_session(&gw, "ann", "ann-password", Some(&r)).await, 201);
    assert_eq!(api_session(&gw, "ann", "ann-password", Some(&r)).await, 401);
    assert_eq!(
        gw.gateway.core.store.recovery_codes_left(id).await.unwrap(),
        9
    );
    // The API's user object says so (Files.com's `active_2fa`); a key needs no code.
    let (_, key) = gw.key(Some(id), "ann-key", None, PermissionSet::Full).await;
    let me = reqwest::Client::new()
        .get(format!("http://{}/api/rest/v1/users/{id}", gw.addr("api")))
        .header("X-FilesAPI-Key", key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["active_2fa"], true, "{me}");
    gw.stop().await;
}

#[tokio::test]
async fn brute_forcing_codes_runs_into_the_lockout() {
    let gw = TestGateway::start_with(|c| {
        c.auth.lockout.max_failures_per_login = 5;
    })
    .await;
    let id = gw.user("bo", "bo-password", &[("/bo", Full)]).await;
    let (secret, _) = enrol(&gw, id).await;
    let mut statuses = Vec::new();
    for n in 0..8 {
        let guess = format!("{:06}", 100_000 + n);
        if (-1..=1).any(|o| code(&secret, o) == guess) {
            continue;
        }
        statuses.push(api_session_reply(&gw, "bo", "bo-password", Some(&guess)).await);
    }
    let locked = |(status, kind): &(u16, String)| *status == 401 && kind.contains("locked-out");
    assert!(!statuses.iter().take(4).any(locked), "{statuses:?}");
    assert!(statuses.last().is_some_and(locked), "{statuses:?}");
    // Banned: even the right code is refused now.
    let right = api_session_reply(&gw, "bo", "bo-password", Some(&code(&secret, 0))).await;
    assert!(locked(&right), "{right:?}");
    gw.stop().await;
}

#[tokio::test]
async fn require_2fa_shuts_users_without_totp_out_of_the_file_protocols_but_not_the_console() {
    let gw = TestGateway::start_with(|c| {
        c.auth.require_2fa = filegate::auth::Require2fa::All;
    })
    .await;
    gw.user("nia", "nia-password", &[("/nia", Full)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let dav = format!("http://{}/", gw.addr("webdav"));
    let response = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &dav)
        .basic_auth("nia", Some("nia-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api_session(&gw, "nia", "nia-password", None).await, 401);
    // The console lets them in, to enrol.
    let base = format!("http://{}", gw.addr("api"));
    let response = http
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=nia&password=nia-password")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&response);
    // ... where every page but My account sends them to enrol.
    for (path, to) in [
        ("/files/", Some("/account")),
        ("/keys", Some("/account")),
        ("/account", None),
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        match to {
            Some(to) => {
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
                assert_eq!(response.headers()["location"], to, "{path}");
            }
            None => assert_eq!(response.status(), StatusCode::OK, "{path}"),
        }
    }
    let audit = gw.audit().await;
    assert!(audit.iter().any(|r| {
        r.reason
            .as_deref()
            .is_some_and(|m| m.contains("required by auth.require_2fa"))
    }));
    gw.stop().await;
}

fn form_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

fn cookie_of(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_console_enrols_with_a_qr_code_and_then_asks_for_the_code_after_the_password() {
    let gw = TestGateway::start().await;
    gw.user("cy", "cy-password", &[("/cy", Full)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let base = format!("http://{}", gw.addr("api"));
    let sign_in = |body: String| {
        http.post(format!("{base}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = sign_in("username=cy&password=cy-password".into())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&response);
    let account = http
        .get(format!("{base}/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_value(&account, "csrf");
    let post = |path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let page = post("/account/2fa/begin", format!("csrf={csrf}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data:image/svg+xml;base64,"), "QR code");
    let start = page.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let secret_b32 = &page[start..start + 32];
    let secret = base32_decode(secret_b32);
    let wrong = post(
        "/account/2fa/confirm",
        format!("csrf={csrf}&otp={}", wrong_code(&secret)),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let done = post(
        "/account/2fa/confirm",
        format!("csrf={csrf}&otp={}", code(&secret, 0)),
    )
    .await
    .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let done = done.text().await.unwrap();
    assert_eq!(
        done.matches("<li><code>").count(),
        10,
        "recovery codes shown once"
    );

    // Signing in again: the password leads to the code page, which opens the session.
    let response = sign_in("username=cy&password=cy-password".into())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    let pending = form_value(&page, "pending");
    let code_post = |otp: String, pending: String| {
        http.post(format!("{base}/sign-in/code"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pending={pending}&otp={otp}"))
            .send()
    };
    let refused = code_post(wrong_code(&secret), pending.clone())
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let forged = code_post(code(&secret, 1), format!("{}00", &pending))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let ok = code_post(code(&secret, 1), pending).await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(&ok).starts_with("filegate_session=") || !cookie_of(&ok).is_empty());
    gw.stop().await;
}

/// OpenSSH's `sftp` prompting for the code: driven through a pseudo-terminal (sshpass
/// cannot answer two prompts), answering "password:" and then "Verification code:".
const OPENSSH_PTY: &str = r#"
import os, pty, sys, time, select
port, user, password, code = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sftp", ["sftp", "-P", port, "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
        "-o", "NumberOfPasswordPrompts=1", user + "@127.0.0.1"])
seen, sent = b"", set()
deadline = time.time() + 40
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 1)
    if not r:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    low = seen.lower()
    if b"password:" in low and "pw" not in sent:
        os.write(fd, (password + "\n").encode()); sent.add("pw")
    if b"verification code:" in low and "code" not in sent:
        os.write(fd, (code + "\n").encode()); sent.add("code")
    if b"sftp>" in low and "ls" not in sent:
        os.write(fd, b"ls\nbye\n"); sent.add("ls")
os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
"#;

#[tokio::test]
async fn openssh_sftp_prompts_for_the_verification_code() {
    if !have("ssh", &["-V"], "openssh prompt") {
        return;
    }
    let gw = TestGateway::start().await;
    let id = gw.user("oz", "oz-password", &[("/oz", Full)]).await;
    let (secret, _) = enrol(&gw, id).await;
    let args = [
        gw.addr("sftp").port().to_string(),
        "oz".to_owned(),
        "oz-password".to_owned(),
        code(&secret, 0),
    ];
    let out = python(OPENSSH_PTY, &args).await;
    let seen = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(seen.contains("verification code:"), "{}", text(&out));
    assert!(
        seen.contains("sftp>") && seen.contains("oz"),
        "{}",
        text(&out)
    );
    gw.stop().await;
}

#[tokio::test]
async fn wrong_codes_from_many_addresses_exhaust_the_accounts_code_budget_but_not_its_recovery_codes()
 {
    // The per-address lockout alone lets an attacker who holds the password guess codes from
    // many addresses; the account's own budget stops that (10 wrong codes per 15 minutes).
    use filegate::auth::{Proof, SecondFactor, SignIn};
    use filegate::identity::{ClientInfo, Protocol};
    let gw = TestGateway::start().await;
    let id = gw.user("cy", "cy-password", &[("/cy", Full)]).await;
    let (secret, recovery) = enrol(&gw, id).await;
    let auth = &gw.gateway.core.auth;
    let attempt = |ip: u8, code: String| async move {
        let client = ClientInfo::new(Some(std::net::IpAddr::from([10, 9, 8, ip])));
        auth.sign_in(
            "cy",
            Proof::Password("cy-password"),
            SecondFactor::Given(Some(&code)),
            Protocol::Api,
            client,
        )
        .await
    };
    for n in 0..filegate::auth::MAX_CODE_FAILURES {
        // One address per guess: no address and no (address, login) pair gets near a ban.
        let refused = attempt(n as u8 + 1, wrong_code(&secret)).await;
        assert!(refused.is_err(), "a wrong code signed in");
    }
    let right = attempt(200, code(&secret, 0)).await;
    assert!(
        right.is_err(),
        "the right code after the account's budget of wrong codes must be refused"
    );
    let with_recovery = attempt(201, recovery[0].clone()).await;
    assert!(
        matches!(with_recovery, Ok(SignIn::Done(_))),
        "a recovery code still signs the user in: {with_recovery:?}"
    );
    gw.stop().await;
}
