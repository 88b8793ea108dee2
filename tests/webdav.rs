//! The WebDAV front-end over real sockets on 127.0.0.1: every method with `reqwest` for a
//! user and for API keys (by id and by name), refusals by permission set and key path,
//! revocation, limits and bad input; HTTPS with curl.

mod support;

use std::process::Command;

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use reqwest::{Method, StatusCode};
use support::TestGateway;

/// A WebDAV client for one login.
struct Dav {
    http: reqwest::Client,
    base: String,
    login: String,
    password: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Dav {
    fn new(gw: &TestGateway, login: &str, password: &str) -> Dav {
        Dav {
            http: reqwest::Client::new(),
            base: format!("http://{}", gw.addr("webdav")),
            login: login.into(),
            password: password.into(),
        }
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.login, Some(&self.password))
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = req.send().await.expect("request sent");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    async fn status(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> StatusCode {
        self.call(method, path, headers, body).await.status
    }
}

const PATCH_COLOR: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:color>blue &amp; green</Z:color></D:prop></D:set></D:propertyupdate>"#;
const FIND_COLOR: &str = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x"><D:prop><Z:color/></D:prop></D:propfind>"#;
const LOCK_EXCLUSIVE: &str = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tests</D:owner></D:lockinfo>"#;

/// Runs every WebDAV method inside `dir` (a folder the login may fully use).
async fn every_method(dav: &Dav, dir: &str, gw: &TestGateway) {
    let who = &dav.login;
    let file = format!("{dir}/a.txt");
    assert_eq!(
        dav.status("PUT", &file, &[], "hello webdav").await,
        StatusCode::CREATED,
        "{who}"
    );
    assert_eq!(gw.read_string(&file).await.unwrap(), "hello webdav");

    let got = dav.call("GET", &file, &[], "").await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (StatusCode::OK, "hello webdav")
    );
    let etag = got.headers["etag"].to_str().unwrap().to_owned();
    assert!(got.headers.contains_key("last-modified"), "{who}");
    assert_eq!(
        dav.status("GET", &file, &[("If-None-Match", &etag)], "")
            .await,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        dav.status("PUT", &file, &[("If-Match", "\"not-the-etag\"")], "lost")
            .await,
        StatusCode::PRECONDITION_FAILED
    );
    let range = dav.call("GET", &file, &[("Range", "bytes=6-11")], "").await;
    assert_eq!(
        (range.status, range.body.as_str()),
        (StatusCode::PARTIAL_CONTENT, "webdav")
    );

    let sub = format!("{dir}/sub");
    assert_eq!(
        dav.status("MKCOL", &sub, &[], "").await,
        StatusCode::CREATED
    );
    assert_eq!(
        dav.status("MKCOL", &sub, &[], "").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let listing = dav
        .call("PROPFIND", &format!("{dir}/"), &[("Depth", "1")], "")
        .await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    assert!(
        listing.body.contains(&format!("{file}<")) && listing.body.contains(&format!("{sub}/<")),
        "{who}: {}",
        listing.body
    );
    assert!(
        listing
            .body
            .contains("<D:getcontentlength>12</D:getcontentlength>")
    );

    let copy = format!("{sub}/b.txt");
    assert_eq!(
        dav.status(
            "COPY",
            &file,
            &[("Destination", &format!("{}{copy}", dav.base))],
            ""
        )
        .await,
        StatusCode::CREATED
    );
    let moved = format!("{dir}/c.txt");
    assert_eq!(
        dav.status("MOVE", &copy, &[("Destination", &moved)], "")
            .await,
        StatusCode::CREATED
    );
    assert!(!gw.exists(&copy).await);
    assert_eq!(gw.read_string(&moved).await.unwrap(), "hello webdav");

    let patched = dav.call("PROPPATCH", &moved, &[], PATCH_COLOR).await;
    assert_eq!(patched.status, StatusCode::MULTI_STATUS, "{}", patched.body);
    let props = dav
        .call("PROPFIND", &moved, &[("Depth", "0")], FIND_COLOR)
        .await;
    assert!(
        props.body.contains("blue &amp; green"),
        "dead property round-trips: {}",
        props.body
    );
    assert_eq!(
        gw.gateway.core.store.props_of(&moved).await.unwrap().len(),
        1,
        "kept in the store"
    );

    let lock = dav
        .call("LOCK", &moved, &[("Timeout", "Second-60")], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let token = lock.headers["lock-token"].to_str().unwrap().to_owned();
    assert_eq!(
        dav.status("PUT", &moved, &[], "no token").await,
        StatusCode::LOCKED
    );
    assert_eq!(
        dav.status("DELETE", &moved, &[], "").await,
        StatusCode::LOCKED
    );
    let with_token = format!("({token})");
    assert_eq!(
        dav.status("PUT", &moved, &[("If", &with_token)], "with token")
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        dav.status("UNLOCK", &moved, &[("Lock-Token", &token)], "")
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(gw.read_string(&moved).await.unwrap(), "with token");

    assert_eq!(
        dav.status("DELETE", &sub, &[], "").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        dav.status("DELETE", &moved, &[], "").await,
        StatusCode::NO_CONTENT
    );
    assert!(!gw.exists(&sub).await && !gw.exists(&moved).await);
    assert!(
        gw.gateway
            .core
            .store
            .props_of(&moved)
            .await
            .unwrap()
            .is_empty(),
        "props go with the file"
    );
}

#[tokio::test]
async fn every_method_works_for_a_user_and_for_keys_by_id_and_by_name() {
    let gw = TestGateway::start().await;
    let alice = gw
        .user("alice", "alice-password", &[("/alice", Full)])
        .await;
    every_method(&Dav::new(&gw, "alice", "alice-password"), "/alice", &gw).await;

    gw.mkdir("alice/by-id").await;
    gw.mkdir("alice/by-name").await;
    let (id, secret) = gw
        .key(
            Some(alice),
            "alice laptop",
            Some("alice/by-id"),
            PermissionSet::Full,
        )
        .await;
    every_method(
        &Dav::new(&gw, &format!("@api-{id}"), &secret),
        "/alice/by-id",
        &gw,
    )
    .await;
    let (_, named) = gw
        .key(
            Some(alice),
            "alice-sync",
            Some("alice/by-name"),
            PermissionSet::Full,
        )
        .await;
    every_method(
        &Dav::new(&gw, "@API-alice-sync", &named),
        "/alice/by-name",
        &gw,
    )
    .await;

    let records = gw.audit().await;
    let key_upload = records
        .iter()
        .find(|r| {
            r.key_id == Some(id)
                && r.action == "create"
                && r.path.as_deref() == Some("/alice/by-id/a.txt")
        })
        .expect("the key's upload is audited");
    assert_eq!(key_upload.user_id, Some(alice), "logged as the key's owner");
    assert_eq!(
        (key_upload.protocol.as_str(), key_upload.result.as_str()),
        ("webdav", "ok")
    );
    gw.stop().await;
}

#[tokio::test]
async fn keys_stay_inside_their_path_and_permission_set() {
    let gw = TestGateway::start().await;
    let bob = gw.user("bob", "bob-password", &[("/", Full)]).await;
    gw.write("team/private.txt", b"secret").await;
    gw.write("team/drop/in.txt", b"inside").await;
    let (id, secret) = gw
        .key(
            Some(bob),
            "confined",
            Some("team/drop"),
            PermissionSet::Full,
        )
        .await;
    let confined = Dav::new(&gw, &format!("@api-{id}"), &secret);
    assert_eq!(
        confined
            .call("GET", "/team/drop/in.txt", &[], "")
            .await
            .body,
        "inside"
    );

    let above = confined
        .call("PROPFIND", "/team/", &[("Depth", "1")], "")
        .await;
    assert_eq!(
        above.status,
        StatusCode::MULTI_STATUS,
        "folders above the key's path show the way down"
    );
    assert!(
        above.body.contains("/team/drop/") && !above.body.contains("private.txt"),
        "{}",
        above.body
    );
    let outside = format!("{}/team/stolen.txt", confined.base);
    let escape = format!("{}/team/drop/%2e%2e/stolen.txt", confined.base);
    type Attempt<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let refusals: Vec<Attempt> = vec![
        ("GET", "/team/private.txt", vec![]),
        ("GET", "/team/drop/%2e%2e/private.txt", vec![]),
        ("GET", "/team/drop/..%2fprivate.txt", vec![]),
        ("COPY", "/team/drop/in.txt", vec![("Destination", &outside)]),
        ("MOVE", "/team/drop/in.txt", vec![("Destination", &outside)]),
        ("COPY", "/team/drop/in.txt", vec![("Destination", &escape)]),
        ("MOVE", "/team/drop/in.txt", vec![("Destination", &escape)]),
        (
            "COPY",
            "/team/private.txt",
            vec![("Destination", "/team/drop/copied.txt")],
        ),
        ("PUT", "/outside.txt", vec![]),
        ("MKCOL", "/team/newdir", vec![]),
        ("DELETE", "/team/private.txt", vec![]),
        ("PROPPATCH", "/team/private.txt", vec![]),
        ("LOCK", "/team/private.txt", vec![]),
    ];
    for (method, path, headers) in refusals {
        let body = match method {
            "PUT" => "x",
            "PROPPATCH" => PATCH_COLOR,
            "LOCK" => LOCK_EXCLUSIVE,
            _ => "",
        };
        let status = confined.status(method, path, &headers, body).await;
        // 409: dav-server's answer to a PUT whose folder it cannot see.
        assert!(
            [
                StatusCode::NOT_FOUND,
                StatusCode::FORBIDDEN,
                StatusCode::BAD_REQUEST,
                StatusCode::BAD_GATEWAY,
                StatusCode::CONFLICT
            ]
            .contains(&status),
            "{method} {path} {headers:?}: {status}"
        );
    }
    assert!(!gw.exists("team/stolen.txt").await);
    assert!(!gw.exists("team/drop/copied.txt").await);
    assert!(!gw.exists("outside.txt").await);
    assert!(!gw.exists("team/newdir").await);
    assert_eq!(gw.read_string("team/private.txt").await.unwrap(), "secret");
    assert!(gw.exists("team/drop/in.txt").await);

    let (_, ro) = gw
        .key(Some(bob), "reader", None, PermissionSet::ReadOnly)
        .await;
    let reader = Dav::new(&gw, "@api-reader", &ro);
    assert_eq!(
        reader.call("GET", "/team/private.txt", &[], "").await.body,
        "secret"
    );
    assert_eq!(
        reader
            .status("PROPFIND", "/team/", &[("Depth", "1")], "")
            .await,
        StatusCode::MULTI_STATUS
    );
    for (method, path, body) in [
        ("PUT", "/team/new.txt", "x"),
        ("DELETE", "/team/private.txt", ""),
        ("MKCOL", "/team/d", ""),
        ("PROPPATCH", "/team/private.txt", PATCH_COLOR),
    ] {
        assert_eq!(
            reader.status(method, path, &[], body).await,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    assert_eq!(
        reader
            .status(
                "MOVE",
                "/team/private.txt",
                &[("Destination", "/team/moved.txt")],
                ""
            )
            .await,
        StatusCode::FORBIDDEN
    );
    assert!(gw.exists("team/private.txt").await);

    let (_, wo) = gw
        .key(
            Some(bob),
            "dropbox",
            Some("team/drop"),
            PermissionSet::WriteOnly,
        )
        .await;
    let writer = Dav::new(&gw, "@api-dropbox", &wo);
    assert_eq!(
        writer.status("PUT", "/team/drop/up.txt", &[], "up").await,
        StatusCode::CREATED
    );
    assert_eq!(
        writer.status("GET", "/team/drop/in.txt", &[], "").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        writer
            .status("PUT", "/team/drop/in.txt", &[], "clobber")
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(gw.read_string("team/drop/in.txt").await.unwrap(), "inside");

    // Revoked and expired keys are refused on their very next request.
    gw.revoke(id).await;
    assert_eq!(
        confined.status("GET", "/team/drop/in.txt", &[], "").await,
        StatusCode::UNAUTHORIZED
    );
    let soon = chrono::Utc::now().timestamp() + 2;
    let (_, short) = gw
        .key_expiring(
            Some(bob),
            "short-lived",
            None,
            PermissionSet::Full,
            Some(soon),
        )
        .await;
    let short = Dav::new(&gw, "@api-short-lived", &short);
    assert_eq!(
        short.status("GET", "/team/private.txt", &[], "").await,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        short.status("GET", "/team/private.txt", &[], "").await,
        StatusCode::UNAUTHORIZED
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_touches_nothing() {
    let gw = TestGateway::start_with(|c| c.webdav.max_body_bytes = 16).await;
    gw.user("lim", "lim-password", &[("/", Full)]).await;
    gw.write("keep.txt", b"kept").await;
    let dav = Dav::new(&gw, "lim", "lim-password");

    let deep = dav
        .call("PROPFIND", "/", &[("Depth", "infinity")], "")
        .await;
    assert_eq!(deep.status, StatusCode::FORBIDDEN);
    assert!(deep.body.contains("propfind-finite-depth"));
    assert_eq!(
        dav.status("PROPFIND", "/", &[("Depth", "1")], "<not-xml")
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        dav.status("PUT", "/big.txt", &[], "0123456789abcdefX")
            .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(!gw.exists("big.txt").await);
    assert_eq!(
        dav.status("PUT", "/small.txt", &[], "0123456789abcdef")
            .await,
        StatusCode::CREATED
    );

    let long = "n".repeat(300);
    for path in [
        "/a%00b.txt",
        "/%ff%fe.txt",
        &format!("/{long}.txt"),
        "/keep.txt/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let status = dav.status("PUT", path, &[], "x").await;
        assert!(status.is_client_error(), "PUT {path}: {status}");
    }
    assert_eq!(
        dav.status("MOVE", "/keep.txt", &[("Destination", "/a%00b.txt")], "")
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(gw.read_string("keep.txt").await.unwrap(), "kept");
    let names = gw.stored().list("").await;
    assert_eq!(names.len(), 2, "only keep.txt and small.txt: {names:?}");

    for login in [
        "",
        "@api-",
        "@api-99999999999999999999",
        "a\u{1}b",
        &"x".repeat(300),
    ] {
        let bad = Dav::new(&gw, login, "whatever");
        assert_eq!(
            bad.status("GET", "/keep.txt", &[], "").await,
            StatusCode::UNAUTHORIZED,
            "{login:?}"
        );
    }
    let garbage = reqwest::Client::new()
        .get(format!("{}/keep.txt", dav.base))
        .header("Authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert!(
        garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=\"filegate\"")
    );
    gw.stop().await;
}

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
    gw.write("tess/a.txt", b"over https").await;
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
async fn missing_or_wrong_credentials_get_401_with_a_basic_challenge() {
    let gw = TestGateway::start().await;
    gw.user("ula", "ula-password", &[("/ula", Full)]).await;
    let none = reqwest::Client::new()
        .get(format!("http://{}/ula/", gw.addr("webdav")))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = Dav::new(&gw, "ula", "wrong-password");
    assert_eq!(
        wrong
            .status("PROPFIND", "/ula/", &[("Depth", "1")], "")
            .await,
        StatusCode::UNAUTHORIZED
    );
    let right = Dav::new(&gw, "ula", "ula-password");
    assert_eq!(
        right
            .status("PROPFIND", "/ula/", &[("Depth", "1")], "")
            .await,
        StatusCode::MULTI_STATUS
    );
    gw.stop().await;
}

// ---- Locks: who may take, use, refresh and release them (issue 11, classes 1 and 2) ----

/// A site admin (with a password), for override rules.
async fn admin(gw: &TestGateway, name: &str, password: &str) -> i64 {
    let spec = filegate::accounts::UserSpec {
        username: name.into(),
        password: Some(password.into()),
        site_admin: true,
        ..Default::default()
    };
    let accounts = &gw.gateway.core.accounts;
    let user = accounts
        .create_user(&filegate::identity::Principal::cli(), spec)
        .await
        .unwrap();
    user.id
}

fn lock_token(reply: &Reply) -> String {
    reply.headers["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned()
}

#[tokio::test]
async fn a_lock_on_the_root_and_its_unlock_leave_webdav_serving_everyone() {
    let gw = TestGateway::start().await;
    gw.user("root", "root-password", &[("/", Full)]).await;
    gw.user("other", "other-password", &[("/other", Full)])
        .await;
    let owner = Dav::new(&gw, "root", "root-password");
    let other = Dav::new(&gw, "other", "other-password");
    for depth in ["0", "infinity"] {
        let lock = owner
            .call("LOCK", "/", &[("Depth", depth)], LOCK_EXCLUSIVE)
            .await;
        assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
        let token = format!("<{}>", lock_token(&lock));
        assert_eq!(
            owner
                .status("UNLOCK", "/", &[("Lock-Token", &token)], "")
                .await,
            StatusCode::NO_CONTENT
        );
    }
    // Everyone is still served (the lock table was neither poisoned nor left locked).
    assert_eq!(
        other.status("PUT", "/other/a.txt", &[], "a").await,
        StatusCode::CREATED
    );
    assert_eq!(
        other
            .status("PROPFIND", "/other/", &[("Depth", "1")], "")
            .await,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(
        other.status("MKCOL", "/other/d", &[], "").await,
        StatusCode::CREATED
    );
    assert_eq!(
        other.status("DELETE", "/other/a.txt", &[], "").await,
        StatusCode::NO_CONTENT
    );
    gw.stop().await;
}

#[tokio::test]
async fn lock_needs_write_rights_where_hidden_is_404_and_visible_is_403() {
    use filegate::identity::GrantLevel::{List, ReadOnly, WriteOnly};
    let gw = TestGateway::start().await;
    gw.write("shared/f.txt", b"f").await;
    gw.write("secret/s.txt", b"s").await;
    gw.user("lister", "lister-password", &[("/shared", List)])
        .await;
    gw.user("reader", "reader-password", &[("/shared", ReadOnly)])
        .await;
    gw.user("dropper", "dropper-password", &[("/shared", WriteOnly)])
        .await;
    let lister = Dav::new(&gw, "lister", "lister-password");
    let reader = Dav::new(&gw, "reader", "reader-password");
    for (who, path, want) in [
        (&lister, "/", StatusCode::FORBIDDEN),
        (&lister, "/shared/", StatusCode::FORBIDDEN),
        (&lister, "/shared/f.txt", StatusCode::FORBIDDEN),
        (&lister, "/secret/s.txt", StatusCode::NOT_FOUND),
        (&reader, "/shared/f.txt", StatusCode::FORBIDDEN),
        (&reader, "/secret/", StatusCode::NOT_FOUND),
    ] {
        for depth in ["0", "infinity"] {
            assert_eq!(
                who.status("LOCK", path, &[("Depth", depth)], LOCK_EXCLUSIVE)
                    .await,
                want,
                "{} LOCK {path} depth {depth}",
                who.login
            );
        }
    }
    // Nothing was locked: a writer is not blocked.
    let dropper = Dav::new(&gw, "dropper", "dropper-password");
    assert_eq!(
        dropper.status("PUT", "/shared/new.txt", &[], "n").await,
        StatusCode::CREATED
    );
    let lock = dropper
        .call("LOCK", "/shared/newer.txt", &[], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::CREATED, "write rights may lock");
    // PROPPATCH needs WRITE as well.
    assert_eq!(
        lister
            .status("PROPPATCH", "/shared/f.txt", &[], PATCH_COLOR)
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        reader
            .status("PROPPATCH", "/shared/f.txt", &[], PATCH_COLOR)
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        reader
            .status("PROPPATCH", "/secret/s.txt", &[], PATCH_COLOR)
            .await,
        StatusCode::NOT_FOUND
    );
    assert!(
        gw.gateway
            .core
            .store
            .props_of("/shared/f.txt")
            .await
            .unwrap()
            .is_empty()
    );
    gw.stop().await;
}

#[tokio::test]
async fn only_the_lock_owner_or_a_site_admin_unlocks_refreshes_or_uses_a_lock() {
    let gw = TestGateway::start().await;
    let ann = gw.user("ann", "ann-password", &[("/team", Full)]).await;
    gw.user("ben", "ben-password", &[("/team", Full)]).await;
    admin(&gw, "boss", "boss-password").await;
    gw.write("team/doc.txt", b"v1").await;
    let ann_dav = Dav::new(&gw, "ann", "ann-password");
    let ben = Dav::new(&gw, "ben", "ben-password");
    let boss = Dav::new(&gw, "boss", "boss-password");

    let lock = ann_dav
        .call("LOCK", "/team/doc.txt", &[], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let token = lock_token(&lock);
    // The token is visible to anyone who may list the file...
    let discovery = ben
        .call("PROPFIND", "/team/doc.txt", &[("Depth", "0")], "")
        .await;
    assert!(discovery.body.contains(&token), "{}", discovery.body);
    // ...and useless to them.
    let tagged = format!("(<{token}>)");
    assert_eq!(
        ben.status("PUT", "/team/doc.txt", &[("If", &tagged)], "ben's")
            .await,
        StatusCode::LOCKED
    );
    assert_eq!(
        ben.status("DELETE", "/team/doc.txt", &[("If", &tagged)], "")
            .await,
        StatusCode::LOCKED
    );
    assert_eq!(
        ben.status(
            "UNLOCK",
            "/team/doc.txt",
            &[("Lock-Token", &format!("<{token}>"))],
            ""
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ben.status(
            "LOCK",
            "/team/doc.txt",
            &[("If", &tagged), ("Timeout", "Second-60")],
            ""
        )
        .await,
        StatusCode::PRECONDITION_FAILED,
        "no refresh of another owner's lock"
    );
    assert_eq!(gw.read("team/doc.txt").await.unwrap(), b"v1");

    // The same user through one of their keys is the same owner.
    let (_, secret) = gw
        .key(Some(ann), "ann-laptop", None, PermissionSet::Full)
        .await;
    let ann_key = Dav::new(&gw, "@api-ann-laptop", &secret);
    assert_eq!(
        ann_key
            .status("PUT", "/team/doc.txt", &[("If", &tagged)], "v2")
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ann_key
            .status(
                "UNLOCK",
                "/team/doc.txt",
                &[("Lock-Token", &format!("<{token}>"))],
                ""
            )
            .await,
        StatusCode::NO_CONTENT
    );

    // A site admin may break someone else's lock.
    let again = lock_token(
        &ann_dav
            .call("LOCK", "/team/doc.txt", &[], LOCK_EXCLUSIVE)
            .await,
    );
    assert_eq!(
        boss.status(
            "UNLOCK",
            "/team/doc.txt",
            &[("Lock-Token", &format!("<{again}>"))],
            ""
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ben.status("PUT", "/team/doc.txt", &[], "v3").await,
        StatusCode::NO_CONTENT,
        "unlocked for everyone"
    );

    // Site-wide keys own their locks by key: another site-wide key cannot release them.
    let (_, one) = gw.key(None, "site-one", None, PermissionSet::Full).await;
    let (_, two) = gw.key(None, "site-two", None, PermissionSet::Full).await;
    let one = Dav::new(&gw, "@api-site-one", &one);
    let two = Dav::new(&gw, "@api-site-two", &two);
    let held = lock_token(&one.call("LOCK", "/team/doc.txt", &[], LOCK_EXCLUSIVE).await);
    let header = format!("<{held}>");
    assert_eq!(
        two.status("UNLOCK", "/team/doc.txt", &[("Lock-Token", &header)], "")
            .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        one.status("UNLOCK", "/team/doc.txt", &[("Lock-Token", &header)], "")
            .await,
        StatusCode::NO_CONTENT
    );
    gw.stop().await;
}

#[tokio::test]
async fn lock_timeouts_are_capped_and_locks_expire() {
    let gw = TestGateway::start_with(|c| c.webdav.max_lock_seconds = 4).await;
    gw.user("tim", "tim-password", &[("/t", Full)]).await;
    gw.user("tom", "tom-password", &[("/t", Full)]).await;
    gw.write("t/f.txt", b"f").await;
    let tim = Dav::new(&gw, "tim", "tim-password");
    let tom = Dav::new(&gw, "tom", "tom-password");
    for timeout in [None, Some("Infinite"), Some("Second-999999")] {
        let headers: Vec<(&str, &str)> = timeout.map(|t| ("Timeout", t)).into_iter().collect();
        let lock = tim.call("LOCK", "/t/f.txt", &headers, LOCK_EXCLUSIVE).await;
        assert_eq!(lock.status, StatusCode::OK, "{timeout:?}: {}", lock.body);
        assert!(
            lock.body.contains("<D:timeout>Second-4</D:timeout>"),
            "{timeout:?}: {}",
            lock.body
        );
        let token = format!("<{}>", lock_token(&lock));
        tim.status("UNLOCK", "/t/f.txt", &[("Lock-Token", &token)], "")
            .await;
    }
    // A lock nobody releases ends by itself.
    assert_eq!(
        tom.status("PROPFIND", "/t/", &[("Depth", "0")], "").await,
        StatusCode::MULTI_STATUS,
        "signed in once (the password cache keeps the next requests quick)"
    );
    let lock = tim
        .call("LOCK", "/t/", &[("Depth", "infinity")], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    assert_eq!(
        tom.status("PUT", "/t/f.txt", &[], "tom").await,
        StatusCode::LOCKED
    );
    tokio::time::sleep(std::time::Duration::from_millis(4200)).await;
    assert_eq!(
        tom.status("PUT", "/t/f.txt", &[], "tom").await,
        StatusCode::NO_CONTENT
    );
    gw.stop().await;
}

#[tokio::test]
async fn locks_are_capped_per_principal_and_in_total() {
    let gw = TestGateway::start_with(|c| {
        c.webdav.max_locks_per_principal = 3;
        c.webdav.max_locks = 5;
    })
    .await;
    gw.user("lou", "lou-password", &[("/l", Full)]).await;
    gw.user("liz", "liz-password", &[("/l", Full)]).await;
    gw.user("lee", "lee-password", &[("/l", Full)]).await;
    let lou = Dav::new(&gw, "lou", "lou-password");
    let liz = Dav::new(&gw, "liz", "liz-password");
    let lee = Dav::new(&gw, "lee", "lee-password");
    for i in 0..3 {
        assert_eq!(
            lou.status("LOCK", &format!("/l/lou{i}"), &[], LOCK_EXCLUSIVE)
                .await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        lou.status("LOCK", "/l/lou9", &[], LOCK_EXCLUSIVE).await,
        StatusCode::INSUFFICIENT_STORAGE,
        "per principal"
    );
    for i in 0..2 {
        assert_eq!(
            liz.status("LOCK", &format!("/l/liz{i}"), &[], LOCK_EXCLUSIVE)
                .await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        lee.status("LOCK", "/l/lee0", &[], LOCK_EXCLUSIVE).await,
        StatusCode::INSUFFICIENT_STORAGE,
        "in total"
    );
    // Deleting a locked file (with its token) gives the lock back.
    let lock = lou.call("PROPFIND", "/l/lou0", &[("Depth", "0")], "").await;
    let token = lock
        .body
        .split("<D:href>urn:uuid:")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .map(|t| format!("(<urn:uuid:{t}>)"))
        .unwrap_or_else(|| panic!("lockdiscovery shows the token: {}", lock.body));
    assert_eq!(
        lou.status("DELETE", "/l/lou0", &[("If", &token)], "").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        lee.status("LOCK", "/l/lee0", &[], LOCK_EXCLUSIVE).await,
        StatusCode::CREATED
    );
    gw.stop().await;
}

// ---- Slow and greedy clients on the HTTP listeners (issue 11, class 6) ----

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; false if it is still open at `deadline`.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits until the gate counts `n` connections from 127.0.0.1.
async fn gate_counts(gw: &TestGateway, n: usize) {
    let ip = "127.0.0.1".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.gateway.core.gate.open(ip).1 != n {
        assert!(
            Instant::now() < deadline,
            "the gate counts {:?}, not {n}",
            gw.gateway.core.gate.open(ip)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn half_sent_requests_on_webdav_and_the_api_are_closed_after_the_header_timeout() {
    let gw = TestGateway::start_with(|c| c.limits.handshake_timeout_seconds = 1).await;
    for protocol in ["webdav", "api"] {
        let addr = gw.addr(protocol);
        let opened = Instant::now();
        let mut slow = Vec::new();
        for i in 0..100 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head: &[u8] = if i % 2 == 0 {
                b"PROPFIND / HTTP/1.1\r\nHost: x\r\nDepth: 1\r\n"
            } else {
                b"GET /healthz HTTP/1.1\r\nHo"
            };
            stream.write_all(head).await.unwrap();
            slow.push(stream);
        }
        gate_counts(&gw, 100).await;
        // A few keep trickling bytes: the timeout is for the whole head, not per read.
        let trickle = async {
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for stream in slow.iter_mut().take(10) {
                    let _ = stream.write_all(b"X").await;
                }
            }
        };
        trickle.await;
        let deadline = opened + Duration::from_secs(6);
        for (i, stream) in slow.iter_mut().enumerate() {
            assert!(
                closed_by(stream, deadline).await,
                "{protocol}: connection {i} still open after {:?}",
                opened.elapsed()
            );
        }
        gate_counts(&gw, 0).await;
    }
    // The listeners still serve.
    gw.user("hal", "hal-password", &[("/hal", Full)]).await;
    assert_eq!(
        Dav::new(&gw, "hal", "hal-password")
            .status("PROPFIND", "/hal/", &[("Depth", "0")], "")
            .await,
        StatusCode::MULTI_STATUS
    );
    let health = reqwest::get(format!("http://{}/healthz", gw.addr("api")))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_address_past_its_cap_does_not_stop_a_client_from_another() {
    let gw = TestGateway::start_with(|c| {
        c.limits.max_connections_per_address = 20;
        c.limits.handshake_timeout_seconds = 30;
    })
    .await;
    gw.user("inno", "inno-password", &[("/inno", Full)]).await;
    let mut flood = Vec::new();
    for protocol in ["webdav", "api"] {
        for _ in 0..40 {
            flood.push(TcpStream::connect(gw.addr(protocol)).await.unwrap());
        }
    }
    gate_counts(&gw, 20).await;
    // One more from the flooding address is closed at once...
    let mut extra = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_by(&mut extra, Instant::now() + Duration::from_secs(3)).await);
    // ...while another address is served on both listeners.
    let innocent = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let listing = innocent
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("http://{}/inno/", gw.addr("webdav")),
        )
        .basic_auth("inno", Some("inno-password"))
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), StatusCode::MULTI_STATUS);
    let health = innocent
        .get(format!("http://{}/healthz", gw.addr("api")))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(flood);
    gate_counts(&gw, 0).await;
    gw.stop().await;
}

// ---- The serve loop itself (filegate::http_serve), with routes made for the test ----

mod serve_loop {
    use super::*;
    use std::sync::Arc;

    use axum::Router;
    use axum::routing::get;
    use filegate::http_serve::{HttpServer, ServeOptions};
    use filegate::limits::{ConnectionGate, Limits};

    fn gate() -> Arc<ConnectionGate> {
        ConnectionGate::new(Limits {
            max_connections: 100,
            max_connections_per_address: 100,
            handshake_timeout: Duration::from_secs(5),
            login_timeout: Duration::from_secs(5),
            transfer_idle_timeout: Duration::from_secs(5),
            max_open_files: 100,
            max_open_files_per_user: 100,
        })
    }

    async fn serve(options: impl FnOnce(&mut ServeOptions)) -> (HttpServer, Arc<ConnectionGate>) {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("a handler bug");
                    }
                    "never"
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    "done"
                }),
            );
        let gate = gate();
        let mut opts = ServeOptions::new("test", gate.clone());
        options(&mut opts);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        (HttpServer::spawn(listener, app, opts).unwrap(), gate)
    }

    /// Sends one request on `stream`; returns the response head and body as text.
    async fn get_on(stream: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            text.extend_from_slice(&buf[..n]);
            let reply = String::from_utf8_lossy(&text).into_owned();
            // Complete when the body has the declared length.
            if let Some((head, body)) = reply.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if length.is_some_and(|n| body.len() >= n) || n == 0 {
                    return reply;
                }
            } else if n == 0 {
                return reply;
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_closes_only_its_own_connection() {
        let (server, gate) = serve(|_| {}).await;
        let mut bystander = TcpStream::connect(server.addr).await.unwrap();
        assert!(
            get_on(&mut bystander, "/ok")
                .await
                .starts_with("HTTP/1.1 200")
        );
        let mut victim = TcpStream::connect(server.addr).await.unwrap();
        let reply = get_on(&mut victim, "/boom").await;
        assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
        assert!(
            reply.to_ascii_lowercase().contains("connection: close"),
            "{reply}"
        );
        assert!(closed_by(&mut victim, Instant::now() + Duration::from_secs(3)).await);
        // The other connection, and new ones, go on.
        assert!(
            get_on(&mut bystander, "/ok")
                .await
                .starts_with("HTTP/1.1 200")
        );
        let mut fresh = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_on(&mut fresh, "/ok").await.starts_with("HTTP/1.1 200"));
        drop((bystander, fresh));
        let ip = "127.0.0.1".parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while gate.open(ip).1 != 0 {
            assert!(Instant::now() < deadline, "permits given back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let (server, _gate) = serve(|o| o.idle_timeout = Duration::from_millis(300)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_on(&mut stream, "/ok").await.starts_with("HTTP/1.1 200"));
        let after = Instant::now();
        assert!(closed_by(&mut stream, after + Duration::from_secs(3)).await);
        assert!(
            after.elapsed() >= Duration::from_millis(250),
            "not before the idle timeout"
        );
        // A connection that never sends a request is closed after the handshake timeout.
        let (server2, _gate) = serve(|o| o.handshake_timeout = Duration::from_millis(300)).await;
        let mut silent = TcpStream::connect(server2.addr).await.unwrap();
        assert!(closed_by(&mut silent, Instant::now() + Duration::from_secs(3)).await);
        server.stop().await;
        server2.stop().await;
    }

    #[tokio::test]
    async fn a_handler_at_work_longer_than_the_transfer_idle_timeout_is_not_cut() {
        // Nothing waits for the client while the handler works: no byte moving is no stall.
        let (server, _gate) = serve(|o| o.transfer_idle_timeout = Duration::from_millis(200)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let reply = get_on(&mut stream, "/slow").await;
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with("done"),
            "{reply}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn stopping_lets_a_request_in_progress_finish_and_refuses_new_connections() {
        let (server, _gate) = serve(|_| {}).await;
        let addr = server.addr;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = tokio::spawn(async move { get_on(&mut stream, "/slow").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopped = Instant::now();
        server.stop().await;
        let reply = request.await.unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with("done"),
            "{reply}"
        );
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "no need to wait out the grace time"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn stopping_closes_what_is_left_after_the_grace_time() {
        let (server, _gate) = serve(|o| o.grace = Duration::from_millis(200)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = Instant::now();
        server.stop().await;
        assert!(
            stopped.elapsed() < Duration::from_millis(450),
            "{:?}",
            stopped.elapsed()
        );
        assert!(closed_by(&mut stream, Instant::now() + Duration::from_secs(2)).await);
    }
}

#[tokio::test]
async fn a_download_in_progress_stops_when_its_key_is_revoked() {
    let gw = TestGateway::start_with(|c| c.webdav.revocation_check_seconds = 1).await;
    let owner = gw.user("rev", "rev-password", &[("/rev", Full)]).await;
    const SIZE: usize = 64 << 20;
    gw.write("rev/big.bin", &vec![7u8; SIZE]).await;
    let (id, secret) = gw
        .key(Some(owner), "rev-key", None, PermissionSet::Full)
        .await;
    let mut download = reqwest::Client::new()
        .get(format!("http://{}/rev/big.bin", gw.addr("webdav")))
        .basic_auth(format!("@api-{id}"), Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let mut received = download.chunk().await.unwrap().map_or(0, |c| c.len());
    gw.revoke(id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(10), download.chunk()).await {
            Ok(Ok(Some(chunk))) => received += chunk.len(),
            Ok(Ok(None)) => break false,
            Ok(Err(_)) => break true,
            Err(_) => panic!("the download neither ended nor went on"),
        }
    };
    assert!(cut && received < SIZE, "received {received} of {SIZE}");
    gw.stop().await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_closed_after_the_handshake_timeout() {
    let dir = filegate::test_support::TempDir::new("davtlsslow");
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start_with(move |c| {
        c.webdav.tls_cert = cert;
        c.webdav.tls_key = key;
        c.limits.handshake_timeout_seconds = 1;
    })
    .await;
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(gw.addr("webdav")).await.unwrap();
        // A TLS record header, then nothing.
        stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        silent.push(stream);
    }
    for stream in &mut silent {
        assert!(closed_by(stream, opened + Duration::from_secs(5)).await);
    }
    gate_counts(&gw, 0).await;
    gw.stop().await;
}

#[tokio::test]
async fn a_drop_box_user_cannot_lock_an_existing_folder_or_file_and_full_users_keep_writing() {
    use filegate::identity::GrantLevel::WriteOnly;
    let gw = TestGateway::start().await;
    gw.user("carol", "carol-password", &[("/drop", WriteOnly)])
        .await;
    gw.user("bob", "bob-password", &[("/drop", Full)]).await;
    gw.write("drop/f.txt", b"f").await;
    let carol = Dav::new(&gw, "carol", "carol-password");
    let bob = Dav::new(&gw, "bob", "bob-password");
    for path in ["/drop/", "/drop/f.txt"] {
        for depth in ["0", "infinity"] {
            assert_eq!(
                carol
                    .status(
                        "LOCK",
                        path,
                        &[("Depth", depth), ("Timeout", "Infinite")],
                        LOCK_EXCLUSIVE
                    )
                    .await,
                StatusCode::FORBIDDEN,
                "LOCK {path} depth {depth}"
            );
        }
    }
    // A lock on a new name (what a drop box does) is still hers to take.
    let lock = carol
        .call("LOCK", "/drop/new.txt", &[], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::CREATED, "{}", lock.body);
    // Nothing else is locked: bob keeps writing and deleting.
    assert_eq!(
        bob.status("PUT", "/drop/f.txt", &[], "bob's").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bob.status("PUT", "/drop/g.txt", &[], "g").await,
        StatusCode::CREATED
    );
    assert_eq!(
        bob.status("DELETE", "/drop/f.txt", &[], "").await,
        StatusCode::NO_CONTENT
    );
    let folder = bob
        .call("LOCK", "/drop/", &[("Depth", "0")], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(folder.status, StatusCode::OK, "{}", folder.body);
    gw.stop().await;
}

#[tokio::test]
async fn locks_of_an_owner_who_can_no_longer_sign_in_stop_blocking_others() {
    let gw = TestGateway::start().await;
    let dan = gw.user("dan", "dan-password", &[("/team", Full)]).await;
    gw.user("bob", "bob-password", &[("/team", Full)]).await;
    gw.write("team/doc.txt", b"v1").await;
    let dan_dav = Dav::new(&gw, "dan", "dan-password");
    let bob = Dav::new(&gw, "bob", "bob-password");
    let lock = dan_dav
        .call(
            "LOCK",
            "/team/",
            &[("Depth", "infinity"), ("Timeout", "Infinite")],
            LOCK_EXCLUSIVE,
        )
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    assert_eq!(
        bob.status("PUT", "/team/doc.txt", &[], "v2").await,
        StatusCode::LOCKED
    );
    gw.gateway
        .core
        .accounts
        .update_user(
            &filegate::identity::Principal::cli(),
            dan,
            filegate::store::UserChanges {
                disabled: Some(true),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        bob.status("PUT", "/team/doc.txt", &[], "v2").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bob.status("DELETE", "/team/doc.txt", &[], "").await,
        StatusCode::NO_CONTENT
    );
    let again = bob
        .call("LOCK", "/team/", &[("Depth", "infinity")], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    gw.stop().await;
}

#[tokio::test]
async fn unlock_needs_write_and_delete_rights_at_the_path_even_for_the_owners_keys() {
    let gw = TestGateway::start().await;
    let alice = gw
        .user(
            "alice",
            "alice-password",
            &[("/pub", Full), ("/alice", Full)],
        )
        .await;
    gw.mkdir("alice/sub").await;
    gw.write("pub/locked.txt", b"l").await;
    let alice_dav = Dav::new(&gw, "alice", "alice-password");
    let lock = alice_dav
        .call("LOCK", "/pub/locked.txt", &[], LOCK_EXCLUSIVE)
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let token = format!("<{}>", lock_token(&lock));
    let (ro, ro_secret) = gw
        .key(Some(alice), "readonly", None, PermissionSet::ReadOnly)
        .await;
    let (wo, wo_secret) = gw
        .key(Some(alice), "writeonly", None, PermissionSet::WriteOnly)
        .await;
    let (sub, sub_secret) = gw
        .key(
            Some(alice),
            "confined",
            Some("alice/sub"),
            PermissionSet::Full,
        )
        .await;
    for (id, secret, want) in [
        (ro, &ro_secret, StatusCode::FORBIDDEN),
        (wo, &wo_secret, StatusCode::FORBIDDEN),
        (sub, &sub_secret, StatusCode::NOT_FOUND),
    ] {
        let key = Dav::new(&gw, &format!("@api-{id}"), secret);
        assert_eq!(
            key.status("UNLOCK", "/pub/locked.txt", &[("Lock-Token", &token)], "")
                .await,
            want,
            "key {id}"
        );
        assert_eq!(
            key.status(
                "LOCK",
                "/pub/locked.txt",
                &[("If", &format!("({token})"))],
                ""
            )
            .await,
            want,
            "refresh by key {id}"
        );
    }
    // The lock is still there, and still alice's to remove.
    assert_eq!(
        alice_dav
            .status("UNLOCK", "/pub/locked.txt", &[("Lock-Token", &token)], "")
            .await,
        StatusCode::NO_CONTENT
    );
    gw.stop().await;
}

fn patch_props(names: std::ops::Range<usize>, value: &str) -> String {
    let props: String = names.map(|i| format!("<Z:p{i}>{value}</Z:p{i}>")).collect();
    format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"#
    )
}

#[tokio::test]
async fn dead_properties_are_capped_per_resource_and_in_size() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let alice = Dav::new(&gw, "alice", "alice-password");
    assert_eq!(
        alice.status("PUT", "/alice/a.txt", &[], "a").await,
        StatusCode::CREATED
    );
    let stored = || async {
        gw.gateway
            .core
            .store
            .props_of("/alice/a.txt")
            .await
            .unwrap()
            .len()
    };
    let big = "x".repeat(5000);
    assert_eq!(
        alice
            .status("PROPPATCH", "/alice/a.txt", &[], &patch_props(0..2, &big))
            .await,
        StatusCode::INSUFFICIENT_STORAGE
    );
    assert_eq!(stored().await, 0, "nothing stored");
    assert_eq!(
        alice
            .status("PROPPATCH", "/alice/a.txt", &[], &patch_props(0..60, "v"))
            .await,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(stored().await, 60);
    assert_eq!(
        alice
            .status("PROPPATCH", "/alice/a.txt", &[], &patch_props(58..66, "v"))
            .await,
        StatusCode::INSUFFICIENT_STORAGE,
        "66 would be more than 64"
    );
    assert_eq!(stored().await, 60, "nothing of it stored");
    assert_eq!(
        alice
            .status("PROPPATCH", "/alice/a.txt", &[], &patch_props(0..64, "w"))
            .await,
        StatusCode::MULTI_STATUS,
        "changing existing ones and adding up to the cap"
    );
    assert_eq!(stored().await, 64);
    gw.stop().await;
}

#[tokio::test]
async fn copy_or_move_to_another_host_is_502_and_touches_nothing() {
    let gw = TestGateway::start().await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let alice = Dav::new(&gw, "alice", "alice-password");
    assert_eq!(
        alice.status("PUT", "/alice/a.txt", &[], "a").await,
        StatusCode::CREATED
    );
    for method in ["COPY", "MOVE"] {
        assert_eq!(
            alice
                .status(
                    method,
                    "/alice/a.txt",
                    &[("Destination", "http://evil.example:9999/alice/x.txt")],
                    ""
                )
                .await,
            StatusCode::BAD_GATEWAY,
            "{method}"
        );
    }
    assert!(!gw.exists("alice/x.txt").await);
    assert!(gw.exists("alice/a.txt").await);
    let here = format!("http://{}/alice/y.txt", gw.addr("webdav"));
    assert_eq!(
        alice
            .status("COPY", "/alice/a.txt", &[("Destination", &here)], "")
            .await,
        StatusCode::CREATED
    );
    assert_eq!(
        alice
            .status(
                "MOVE",
                "/alice/a.txt",
                &[("Destination", "/alice/z.txt")],
                ""
            )
            .await,
        StatusCode::CREATED
    );
    gw.stop().await;
}

#[path = "webdav/sendfile.rs"]
mod sendfile;
#[path = "webdav/sendfile_abuse.rs"]
mod sendfile_abuse;
#[path = "webdav/stall.rs"]
mod stall;
#[path = "webdav/state.rs"]
mod state;
