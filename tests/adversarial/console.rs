//! The web console under attack, over a real socket: cross-site posts (no token, another
//! session's token, a foreign `Origin`), deleting another user's key by id, a non-admin
//! posting straight to admin forms, path traversal in `/files`, and a sign-in with an API
//! key. Each refusal is checked against the store or the disk: nothing changed.

use std::time::Duration;

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use filegate::store::KeyOwnerFilter;
use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::clients::shared;
use crate::support::TestGateway;

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(Policy::none())
            .build()
            .expect("http client")
    }

    async fn sign_in(gw: &TestGateway, user: &str, password: &str) -> Browser {
        let base = format!("http://{}", gw.addr("api"));
        let http = Browser::client();
        let response = http
            .post(format!("{base}/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={user}&password={password}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "sign-in of {user}"
        );
        let set = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        Browser { http, base, cookie }
    }

    /// The CSRF token the session's pages carry.
    async fn csrf(&self) -> String {
        let page = self.get("/account").await.1;
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + 64].to_owned()
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: String, origin: Option<&str>) -> StatusCode {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            req = req
                .header("origin", o)
                .header("sec-fetch-site", "cross-site");
        }
        req.send().await.unwrap().status()
    }
}

#[tokio::test]
async fn console_refuses_cross_site_posts_foreign_keys_admin_forms_and_traversal() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    let ann = gw.user("ann", "ann-password-1", &[("/ann", Full)]).await;
    let ben = gw.user("ben", "ben-password-1", &[("/ben", Full)]).await;
    let (ben_key, ben_secret) = gw
        .key(Some(ben), "ben key", None, PermissionSet::Full)
        .await;
    gw.write("ben/secret.txt", b"ben's").await;
    let a = Browser::sign_in(&gw, "ann", "ann-password-1").await;
    let b = Browser::sign_in(&gw, "ben", "ben-password-1").await;
    let token = a.csrf().await;
    let other = b.csrf().await;
    let store = &gw.gateway.core.store;

    // CSRF: no token, another session's token, the right token from another site.
    for (body, origin) in [
        ("name=planted".to_owned(), None),
        (format!("csrf={other}&name=planted"), None),
        (
            format!("csrf={token}&name=planted"),
            Some("http://evil.example"),
        ),
    ] {
        assert_eq!(
            a.post("/account/keys", body, origin).await,
            StatusCode::FORBIDDEN
        );
    }
    assert!(
        store
            .all_keys(KeyOwnerFilter::User(ann))
            .await
            .unwrap()
            .is_empty()
    );

    // Ben's key by id: not found for Ann, and still working.
    let del = format!("/keys/{ben_key}/delete");
    assert_eq!(a.get(&del).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        a.post(&del, format!("csrf={token}"), None).await,
        StatusCode::NOT_FOUND
    );
    assert!(store.key_by_id(ben_key).await.unwrap().is_some());
    assert!(!ben_secret.is_empty());

    // Admin forms posted directly by a non-admin.
    for (path, body) in [
        (
            "/users".to_owned(),
            "username=mallory&password=mallory-pass-1&site_admin=on".to_owned(),
        ),
        (format!("/users/{ann}/settings"), "site_admin=on".to_owned()),
        (
            format!("/users/{ben}/password"),
            "password=taken-over-1".to_owned(),
        ),
        (
            format!("/users/{ann}/folders"),
            "path=%2F&level=full".to_owned(),
        ),
        (format!("/users/{ben}/keys"), "name=stolen".to_owned()),
        ("/keys".to_owned(), "name=site-wide".to_owned()),
    ] {
        let status = a.post(&path, format!("csrf={token}&{body}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(store.user_by_name("mallory").await.unwrap().is_none());
    assert!(!store.user_by_id(ann).await.unwrap().unwrap().site_admin);
    assert_eq!(store.grants_of(ann).await.unwrap().len(), 1);
    assert_eq!(store.all_keys(KeyOwnerFilter::All).await.unwrap().len(), 1);

    // Traversal: out of the grant or through `..`, nothing is read or made.
    for path in [
        "/files/ben/secret.txt",
        "/files/ann/%2e%2e/ben/secret.txt",
        "/files/ann/..%2fben/secret.txt",
    ] {
        let (status, body) = a.get(path).await;
        assert!(!body.contains("ben's"), "{path} leaked");
        assert!(
            matches!(status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {status}"
        );
    }
    for (dir, name) in [
        ("%2Fann", "..%2F..%2Fben%2Fx"),
        ("%2Fann%2F..%2Fben", "x"),
        ("%2Fben", "x"),
    ] {
        let status = a
            .post(
                "/file-actions/mkdir",
                format!("csrf={token}&dir={dir}&name={name}"),
                None,
            )
            .await;
        assert!(
            matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
            ),
            "{dir} {name}: {status}"
        );
    }
    assert!(!gw.exists("ben/x").await);

    // An API key does not sign in to the console.
    let response = Browser::client()
        .post(format!("http://{}/sign-in", gw.addr("api")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=%40api-{ben_key}&password={ben_secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    gw.stop().await;
}
