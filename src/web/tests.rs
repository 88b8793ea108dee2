//! The console in process (`router.oneshot`, the API and console router the listener
//! serves) over a real SQLite store and data folder: sign-in/out, refusals, CSRF, rights,
//! show-once secrets, escaping, cookie flags, revocation, files and their audit records.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

use super::*;
use crate::accounts::UserSpec;
use crate::api::ApiState;
use crate::audit::AuditRecord;
use crate::config::Config;
use crate::gateway::Core;
use crate::identity::Principal;
use crate::store::{AuditSearch, KeyOwnerFilter};
use crate::test_support::TempDir;

struct Console {
    core: Core,
    router: Router,
    _dir: TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Console {
    async fn new() -> Console {
        let dir = TempDir::new("web");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        config.auth.lockout.enabled = false;
        config.fill_defaults();
        let core = Core::open(config).await.unwrap();
        let api = Arc::new(ApiState::new(
            core.auth.clone(),
            core.accounts.clone(),
            core.store.clone(),
            core.sink.clone(),
            core.audit.clone(),
            core.metrics.clone(),
            "web-test-cursor-key",
        ));
        let web = Arc::new(WebState {
            auth: core.auth.clone(),
            accounts: core.accounts.clone(),
            store: core.store.clone(),
            files: core.files.clone(),
            cursors: Arc::new(crate::api::Cursors::new(b"web-test-cursor-key")),
            https: false,
            max_upload: 0,
        });
        Console {
            router: crate::api::router_with_console(api, web),
            core,
            _dir: dir,
        }
    }

    async fn user(&self, name: &str, password: &str, admin: bool) -> i64 {
        self.core
            .accounts
            .create_user(
                &Principal::cli(),
                UserSpec {
                    username: name.into(),
                    password: Some(password.into()),
                    site_admin: admin,
                    name: None,
                    email: None,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut req = Request::builder().method(Method::GET).uri(uri);
        if let Some(t) = token {
            req = req.header(header::COOKIE, format!("{}={t}", session::COOKIE));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// A form POST; `csrf: true` adds the session's token.
    async fn post(
        &self,
        uri: &str,
        token: Option<&str>,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        if let (Some(t), true) = (token, csrf) {
            body.append_pair("csrf", &session::csrf_of(t));
        }
        body.extend_pairs(fields.iter().copied());
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(t) = token {
            req = req.header(header::COOKIE, format!("{}={t}", session::COOKIE));
        }
        self.send(req.body(Body::from(body.finish())).unwrap())
            .await
    }

    /// Signs in through the form; returns the session id from the cookie.
    async fn sign_in(&self, name: &str, password: &str) -> String {
        let r = self
            .post(
                "/sign-in",
                None,
                &[("username", name), ("password", password)],
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        cookie
            .strip_prefix(&format!("{}=", session::COOKIE))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Waits for the audit writer to store records matching `q` (polling, no timing).
    async fn audit(&self, q: AuditSearch) -> Vec<AuditRecord> {
        self.audit_at_least(q, 1).await
    }

    /// The matching records once there are at least `n` (records are written in batches), or
    /// what there is after 10 s.
    async fn audit_at_least(&self, q: AuditSearch, n: usize) -> Vec<AuditRecord> {
        let q = AuditSearch { limit: 1000, ..q };
        let mut rows = Vec::new();
        for _ in 0..500 {
            rows = self.core.store.search_audit(&q).await.unwrap();
            if rows.len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        rows
    }
}

fn secret_on(page: &str) -> String {
    let at = page.find("id=\"secret\"").expect("no API key field");
    let rest = &page[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_owned()
}

fn multipart(token: &str, files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----filegate-test-boundary-7d1";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n",
            session::csrf_of(token)
        )
        .as_bytes(),
    );
    for (name, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                name.replace('"', "%22")
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
];

fn assert_headers(r: &Reply, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            r.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on {what}"
        );
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_every_page_has_the_headers() {
    let c = Console::new().await;
    c.user("alice", "alice-password-1", false).await;
    let home = c.get("/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body
            .contains("<label for=\"username\">Username</label>")
    );
    assert!(
        home.body
            .contains("<label for=\"password\">Password</label>")
    );
    assert_headers(&home, "/");
    assert_eq!(home.headers.get("cache-control").unwrap(), "no-store");
    // No inline script or style anywhere.
    assert!(!home.body.contains("<script>") && !home.body.contains("style="));

    let r = c
        .post(
            "/sign-in",
            None,
            &[("username", "alice"), ("password", "alice-password-1")],
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cookie = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let token = c.sign_in("alice", "alice-password-1").await;
    assert_eq!(token.len(), 64, "a 256-bit id in hex");
    // The store holds a digest, never the id.
    assert!(
        c.core
            .store
            .web_session_by_digest(&token)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.core
            .store
            .web_session_by_digest(&crate::secret::digest_hex(&token))
            .await
            .unwrap()
            .is_some()
    );

    for page in ["/account", "/files/", "/history", "/keys", "/nope"] {
        let r = c.get(page, Some(&token)).await;
        assert_headers(&r, page);
        if r.status == StatusCode::OK {
            assert_eq!(
                r.headers.get("cache-control").unwrap(),
                "no-store",
                "{page}"
            );
        }
    }
    let account = c.get("/account", Some(&token)).await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("alice") && account.body.contains(">Sign out</button>"));
    // The static files: versioned names, long cache, same headers.
    let css_at = account.body.find("/static/").unwrap();
    let css_url = &account.body[css_at..css_at + account.body[css_at..].find('"').unwrap()];
    let css = c.get(css_url, None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_headers(&css, "stylesheet");

    // A login record with protocol web.
    let logins = c
        .audit(AuditSearch {
            protocol: Some("web".into()),
            action: Some("login".into()),
            result: Some("ok".into()),
            ..Default::default()
        })
        .await;
    assert!(
        logins
            .iter()
            .any(|r| r.username.as_deref() == Some("alice"))
    );

    // Sign out needs the token; then the session is gone.
    let r = c.post("/sign-out", Some(&token), &[], false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/account", Some(&token)).await.status, StatusCode::OK);
    let r = c.post("/sign-out", Some(&token), &[], true).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = c.get("/account", Some(&token)).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
}

#[tokio::test]
async fn every_refused_sign_in_looks_the_same_and_keys_cannot_sign_in() {
    let c = Console::new().await;
    let bob = c.user("bob", "bob-password-1", false).await;
    let key = c
        .core
        .accounts
        .create_key(
            &Principal::cli(),
            crate::accounts::KeySpec {
                owner: crate::accounts::KeyOwner::User(bob),
                name: "bob key".into(),
                description: None,
                path: None,
                permission_set: crate::identity::PermissionSet::Full,
                expires_at: None,
                platform: None,
                created_by: None,
            },
        )
        .await
        .unwrap();
    let login = format!("@api-{}", key.record.id);
    let attempts = [
        ("bob", "wrong-password"),
        ("nobody-here", "bob-password-1"),
        (login.as_str(), key.secret.as_str()),
        ("", ""),
    ];
    let mut bodies = Vec::new();
    for (user, password) in attempts {
        let r = c
            .post(
                "/sign-in",
                None,
                &[("username", user), ("password", password)],
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert!(r.body.contains(sign::REFUSED));
        // Same page apart from the echoed username.
        bodies.push(r.body.replace(&format!("value=\"{user}\""), "value=\"\""));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let denied = c
        .audit_at_least(
            AuditSearch {
                protocol: Some("web".into()),
                result: Some("denied".into()),
                ..Default::default()
            },
            2,
        )
        .await;
    assert!(denied.len() >= 2, "refusals are audited: {denied:?}");
}

#[tokio::test]
async fn csrf_and_cross_site_posts_are_refused_and_change_nothing() {
    let c = Console::new().await;
    let carol = c.user("carol", "carol-password-1", false).await;
    let token = c.sign_in("carol", "carol-password-1").await;
    let keys = || async {
        c.core
            .store
            .all_keys(KeyOwnerFilter::User(carol))
            .await
            .unwrap()
            .len()
    };
    // No token.
    let r = c
        .post("/account/keys", Some(&token), &[("name", "k1")], false)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A wrong token.
    let r = c
        .post(
            "/account/keys",
            Some(&token),
            &[("csrf", &"0".repeat(64)), ("name", "k1")],
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Another session's token.
    let other = c.sign_in("carol", "carol-password-1").await;
    let r = c
        .post(
            "/account/keys",
            Some(&token),
            &[("csrf", &session::csrf_of(&other)), ("name", "k1")],
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The right token from another site.
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &session::csrf_of(&token))
        .append_pair("name", "k1")
        .finish();
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/account/keys")
            .header(header::HOST, "console.example")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("{}={token}", session::COOKIE))
            .header(name, value)
            .body(Body::from(body.clone()))
            .unwrap();
        assert_eq!(c.send(req).await.status, StatusCode::FORBIDDEN, "{name}");
    }
    // What chromium sends from a no-referrer page: `Origin: null`, vouched for by
    // `Sec-Fetch-Site` only when it says same-origin.
    for (site, expected) in [
        ("cross-site", StatusCode::FORBIDDEN),
        ("same-site", StatusCode::FORBIDDEN),
        ("same-origin", StatusCode::OK),
    ] {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("csrf", &session::csrf_of(&token))
            .append_pair("name", &format!("k-{site}"));
        let req = Request::builder()
            .method(Method::POST)
            .uri("/account/keys")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("{}={token}", session::COOKIE))
            .header("origin", "null")
            .header("sec-fetch-site", site)
            .body(Body::from(body.finish()))
            .unwrap();
        assert_eq!(
            c.send(req).await.status,
            expected,
            "Origin: null, Sec-Fetch-Site: {site}"
        );
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/account/keys")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("{}={token}", session::COOKIE))
        .header("origin", "null")
        .body(Body::from(format!(
            "csrf={}&name=k-null",
            session::csrf_of(&token)
        )))
        .unwrap();
    assert_eq!(
        c.send(req).await.status,
        StatusCode::FORBIDDEN,
        "Origin: null alone"
    );
    assert_eq!(keys().await, 1);
    c.core
        .store
        .delete_key(
            c.core
                .store
                .all_keys(KeyOwnerFilter::User(carol))
                .await
                .unwrap()[0]
                .id,
        )
        .await
        .unwrap();
    // A multipart upload without the token writes nothing.
    let (ctype, mut bytes) = multipart(&other, &[("planted.txt", b"x")]);
    bytes = String::from_utf8(bytes)
        .unwrap()
        .replace(&session::csrf_of(&other), "nope")
        .into_bytes();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/files/")
        .header(header::CONTENT_TYPE, ctype)
        .header(header::COOKIE, format!("{}={token}", session::COOKIE))
        .body(Body::from(bytes))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::FORBIDDEN);
    assert_eq!(keys().await, 0);
    // A form over the limit is refused.
    let big = "x".repeat(MAX_FORM + 1);
    let r = c
        .post("/account/keys", Some(&token), &[("name", &big)], true)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // With the token it works.
    let r = c
        .post("/account/keys", Some(&token), &[("name", "k1")], true)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys().await, 1);
}

#[tokio::test]
async fn non_admins_get_403_on_admin_pages_and_posts_and_no_menu_links() {
    let c = Console::new().await;
    c.user("root", "root-password-1", true).await;
    let dave = c.user("dave", "dave-password-1", false).await;
    let erin = c.user("erin", "erin-password-1", false).await;
    let token = c.sign_in("dave", "dave-password-1").await;
    let account = c.get("/account", Some(&token)).await;
    assert!(!account.body.contains("href=\"/keys\"") && !account.body.contains("href=\"/users\""));
    for page in [
        "/keys",
        "/users",
        &format!("/users/{erin}"),
        &format!("/users/{erin}/folders"),
    ] {
        assert_eq!(
            c.get(page, Some(&token)).await.status,
            StatusCode::FORBIDDEN,
            "{page}"
        );
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/users".into(),
            vec![
                ("username", "mallory"),
                ("password", "mallory-pass-1"),
                ("site_admin", "on"),
            ],
        ),
        (
            format!("/users/{dave}/settings"),
            vec![("site_admin", "on"), ("sftp", "on")],
        ),
        (
            format!("/users/{erin}/password"),
            vec![("password", "taken-over-1")],
        ),
        (format!("/users/{erin}/keys"), vec![("name", "stolen")]),
        (
            format!("/users/{dave}/folders"),
            vec![("path", "/"), ("level", "full")],
        ),
        ("/keys".into(), vec![("name", "site-wide")]),
    ];
    for (uri, fields) in posts {
        let r = c.post(&uri, Some(&token), &fields, true).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    assert!(
        c.core
            .store
            .user_by_name("mallory")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !c.core
            .store
            .user_by_id(dave)
            .await
            .unwrap()
            .unwrap()
            .site_admin
    );
    assert!(c.core.store.grants_of(dave).await.unwrap().is_empty());
    assert!(
        c.core
            .store
            .all_keys(KeyOwnerFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
    // Another user's key, by id: absent, and still there.
    let erin_token = c.sign_in("erin", "erin-password-1").await;
    let r = c
        .post(
            "/account/keys",
            Some(&erin_token),
            &[("name", "erin key")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let erin_key = c
        .core
        .store
        .all_keys(KeyOwnerFilter::User(erin))
        .await
        .unwrap()[0]
        .id;
    let uri = format!("/keys/{erin_key}/delete");
    assert_eq!(
        c.get(&uri, Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.post(&uri, Some(&token), &[], true).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(c.core.store.key_by_id(erin_key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_new_key_secret_is_shown_once_and_never_again() {
    let c = Console::new().await;
    let admin = c.user("root", "root-password-1", true).await;
    let frank = c.user("frank", "frank-password-1", false).await;
    let token = c.sign_in("root", "root-password-1").await;
    for (uri, owner, name) in [
        ("/account/keys".to_owned(), Some(admin), "laptop-admin"),
        (format!("/users/{frank}/keys"), Some(frank), "laptop-frank"),
        ("/keys".to_owned(), None, "laptop-site"),
    ] {
        let r = c
            .post(
                &uri,
                Some(&token),
                &[
                    ("name", name),
                    ("expires", "2099-06-30"),
                    ("permission_set", "readonly"),
                ],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        assert!(r.body.contains("This key will not be shown again"));
        assert!(r.body.contains("<label for=\"secret\">API key</label>"));
        let secret = secret_on(&r.body);
        assert!(r.body.contains("readonly value=") || r.body.contains(" readonly "));
        assert!(
            r.headers.get(header::LOCATION).is_none(),
            "no redirect carrying the secret"
        );
        let principal = c
            .core
            .auth
            .api_key(&secret, crate::identity::ClientInfo::new(None))
            .await
            .unwrap();
        assert_eq!(principal.user.map(|u| u.id), owner);
        for page in ["/account", "/keys", &format!("/users/{frank}"), "/history"] {
            let later = c.get(page, Some(&token)).await;
            assert_eq!(later.status, StatusCode::OK, "{page}");
            assert!(!later.body.contains(&secret), "the secret is on {page}");
            assert!(later.body.contains("laptop") || page == "/history");
        }
    }
    let listed = c.get(&format!("/users/{frank}"), Some(&token)).await;
    assert!(listed.body.contains("2099-06-30") && listed.body.contains("readonly"));
}

#[tokio::test]
async fn names_are_escaped_everywhere() {
    let c = Console::new().await;
    c.user("root", "root-password-1", true).await;
    let token = c.sign_in("root", "root-password-1").await;
    let script = "<script>alert(1)</script>";
    // A username the rules refuse is echoed escaped (sign-in form and the refusal).
    let r = c
        .post(
            "/sign-in",
            None,
            &[("username", script), ("password", "x")],
            false,
        )
        .await;
    assert!(!r.body.contains(script) && r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let r = c
        .post(
            "/users",
            Some(&token),
            &[("username", script), ("password", "abcdefgh1")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.body.contains(script));
    // A key name, shown on several pages.
    let r = c
        .post("/account/keys", Some(&token), &[("name", script)], true)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for page in ["/account", "/keys"] {
        let body = c.get(page, Some(&token)).await.body;
        assert!(!body.contains(script), "{page}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
    }
    // A file name.
    let evil = "\"><img src=x onerror=alert(1)>";
    let (ctype, body) = multipart(&token, &[(evil, b"boom")]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/files/")
        .header(header::CONTENT_TYPE, ctype)
        .header(header::COOKIE, format!("{}={token}", session::COOKIE))
        .body(Body::from(body))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let listing = c.get("/files/", Some(&token)).await.body;
    assert!(listing.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!listing.contains("<img src=x"));
}

#[tokio::test]
async fn sessions_end_when_the_password_changes_or_the_user_is_disabled() {
    let c = Console::new().await;
    c.user("root", "root-password-1", true).await;
    let gina = c.user("gina", "gina-password-1", false).await;
    let a = c.sign_in("gina", "gina-password-1").await;
    let b = c.sign_in("gina", "gina-password-1").await;
    // A wrong current password changes nothing.
    let r = c
        .post(
            "/account/password",
            Some(&a),
            &[("current", "wrong-one"), ("new", "gina-password-2")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/account", Some(&b)).await.status, StatusCode::OK);
    // Adding an own SSH key keeps the session (the change was the session's own).
    let r = c
        .post(
            "/account/ssh-keys",
            Some(&a),
            &[("title", "laptop"), ("public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1 me@host")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(c.get("/account", Some(&a)).await.status, StatusCode::OK);
    let r = c
        .post(
            "/account/password",
            Some(&a),
            &[("current", "gina-password-1"), ("new", "gina-password-2")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for t in [&a, &b] {
        let r = c.get("/account", Some(t)).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    }
    // Disabled by an admin: signed out at the next request.
    let g = c.sign_in("gina", "gina-password-2").await;
    let root = c.sign_in("root", "root-password-1").await;
    let r = c
        .post(
            &format!("/users/{gina}/settings"),
            Some(&root),
            &[("disabled", "on"), ("sftp", "on")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        c.core
            .store
            .user_by_id(gina)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_eq!(
        c.get("/account", Some(&g)).await.status,
        StatusCode::SEE_OTHER
    );
    let r = c
        .post(
            "/sign-in",
            None,
            &[("username", "gina"), ("password", "gina-password-2")],
            false,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn upload_and_download_are_byte_exact_and_audited() {
    let c = Console::new().await;
    c.user("root", "root-password-1", true).await;
    let hank = c.user("hank", "hank-password-1", false).await;
    let root = c.sign_in("root", "root-password-1").await;
    let r = c
        .post(
            &format!("/users/{hank}/folders"),
            Some(&root),
            &[("path", "/hank"), ("level", "full")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let token = c.sign_in("hank", "hank-password-1").await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (ctype, body) = multipart(&token, &[("big.bin", &data), ("small.txt", b"hello\n")]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/files/hank/")
        .header(header::CONTENT_TYPE, ctype)
        .header(header::COOKIE, format!("{}={token}", session::COOKIE))
        .body(Body::from(body))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/files/hank/?done=uploaded"),
        "{}",
        r.body
    );
    let listing = c.get("/files/hank/", Some(&token)).await;
    assert!(listing.body.contains(">big.bin</a>") && listing.body.contains(">small.txt</a>"));
    let down = c.get("/files/hank/big.bin", Some(&token)).await;
    assert_eq!(down.status, StatusCode::OK);
    assert!(
        down.headers
            .get(header::CONTENT_DISPOSITION)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"big.bin\"")
    );
    let got = {
        let req = Request::builder()
            .uri("/files/hank/big.bin")
            .header(header::COOKIE, format!("{}={token}", session::COOKIE))
            .body(Body::empty())
            .unwrap();
        let response = c.router.clone().oneshot(req).await.unwrap();
        axum::body::to_bytes(response.into_body(), 1 << 26)
            .await
            .unwrap()
    };
    assert_eq!(got.as_ref(), data.as_slice());
    // Outside the grant: hidden.
    assert_eq!(
        c.get("/files/other/", Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    for action in ["create", "read"] {
        let rows = c
            .audit(AuditSearch {
                user_id: Some(hank),
                protocol: Some("web".into()),
                action: Some(action.into()),
                path_prefix: Some("/hank/big.bin".into()),
                ..Default::default()
            })
            .await;
        assert!(!rows.is_empty(), "no {action} record");
        if action == "create" {
            assert_eq!(rows[0].bytes, Some(data.len() as i64));
        }
    }
    // Folder, rename, delete.
    let r = c
        .post(
            "/file-actions/mkdir",
            Some(&token),
            &[("dir", "/hank"), ("name", "reports")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = c
        .post(
            "/file-actions/rename",
            Some(&token),
            &[
                ("dir", "/hank"),
                ("name", "small.txt"),
                ("new_name", "note.txt"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = c
        .post(
            "/file-actions/delete",
            Some(&token),
            &[("dir", "/hank"), ("name", "note.txt")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let listing = c.get("/files/hank/", Some(&token)).await.body;
    assert!(
        listing.contains(">reports</a>")
            && !listing.contains("note.txt")
            && !listing.contains("small.txt")
    );
    // History shows the user's own records.
    let history = c.get("/history?protocol=web", Some(&token)).await;
    assert!(history.body.contains("/hank/big.bin"));
}

#[tokio::test]
async fn traversal_and_bad_names_touch_nothing() {
    let c = Console::new().await;
    c.user("root", "root-password-1", true).await;
    let token = c.sign_in("root", "root-password-1").await;
    for uri in [
        "/files/a/../b/",
        "/files/a/%2e%2e/b",
        "/files/%2e%2e/",
        "/files/a%00b",
    ] {
        let r = c.get(uri, Some(&token)).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{uri}: {}",
            r.status
        );
    }
    for name in ["..", ".", "a/b", "", "a\u{1}b"] {
        let r = c
            .post(
                "/file-actions/mkdir",
                Some(&token),
                &[("dir", "/"), ("name", name)],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}");
    }
    let r = c
        .post(
            "/file-actions/mkdir",
            Some(&token),
            &[("dir", "/../etc"), ("name", "x")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .post(
            "/file-actions/rename",
            Some(&token),
            &[("dir", "/"), ("name", "x"), ("new_name", "../x")],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let listing = c.get("/files/", Some(&token)).await.body;
    assert!(listing.contains("This folder is empty."));
}

#[tokio::test]
async fn the_api_keeps_its_routes_next_to_the_console() {
    let c = Console::new().await;
    let ivy = c.user("ivy", "ivy-password-1", false).await;
    let key = c
        .core
        .accounts
        .create_key(
            &Principal::cli(),
            crate::accounts::KeySpec {
                owner: crate::accounts::KeyOwner::SiteWide,
                name: "site".into(),
                description: None,
                path: None,
                permission_set: crate::identity::PermissionSet::Full,
                expires_at: None,
                platform: None,
                created_by: None,
            },
        )
        .await
        .unwrap();
    let call = |uri: String| {
        Request::builder()
            .uri(uri)
            .header("X-FilesAPI-Key", key.secret.clone())
            .body(Body::empty())
            .unwrap()
    };
    // A route with a path parameter, and one without.
    let r = c.send(call(format!("/api/rest/v1/users/{ivy}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("\"username\":\"ivy\""));
    let r = c.send(call("/api/rest/v1/users".into())).await;
    assert_eq!(r.status, StatusCode::OK);
    // Unknown API paths keep the API's JSON 404; others get the console's page.
    let r = c.send(call("/api/rest/v1/nothing/here".into())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.starts_with('{'), "{}", r.body);
    let r = c.get("/nothing/here", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("<!DOCTYPE html>"));
    assert_headers(&r, "console 404");
    assert_eq!(c.get("/healthz", None).await.status, StatusCode::OK);
}
