//! The WebDAV front-end in process (`router.oneshot`) over a real store and storage.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use tower::ServiceExt;

use super::*;
use crate::accounts::{KeyOwner, KeySpec, UserSpec};
use crate::config::Config;
use crate::gateway::Core;
use crate::identity::{GrantLevel, PermissionSet, Principal};
use crate::test_support::TempDir;

struct Dav {
    core: Core,
    router: Router,
    _dir: TempDir,
}

struct Reply {
    status: StatusCode,
    body: String,
}

fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

impl Dav {
    async fn new() -> Dav {
        let dir = TempDir::new("dav");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        config.auth.lockout.enabled = false;
        config.fill_defaults();
        let core = Core::open(config).await.unwrap();
        let router = router(
            core.auth.clone(),
            core.files.clone(),
            core.store.clone(),
            core.config.webdav.clone(),
        );
        Dav {
            core,
            router,
            _dir: dir,
        }
    }

    async fn user(&self, name: &str, grants: &[(&str, GrantLevel)]) -> i64 {
        let spec = UserSpec {
            username: name.into(),
            password: Some(format!("{name}-password")),
            ..Default::default()
        };
        let user = self
            .core
            .accounts
            .create_user(&Principal::cli(), spec)
            .await
            .unwrap();
        for (path, level) in grants {
            self.core
                .accounts
                .grant(&Principal::cli(), user.id, path, *level)
                .await
                .unwrap();
            std::fs::create_dir_all(self.root().join(path.trim_start_matches('/'))).unwrap();
        }
        user.id
    }

    async fn key(
        &self,
        owner: i64,
        name: &str,
        path: Option<&str>,
        set: PermissionSet,
    ) -> (i64, String) {
        let spec = KeySpec {
            owner: KeyOwner::User(owner),
            name: name.into(),
            description: None,
            path: path.map(str::to_owned),
            permission_set: set,
            expires_at: None,
            platform: None,
            created_by: None,
        };
        let k = self
            .core
            .accounts
            .create_key(&Principal::cli(), spec)
            .await
            .unwrap();
        (k.record.id, k.secret)
    }

    fn root(&self) -> std::path::PathBuf {
        self.core.config.server.storage_dir.clone()
    }

    async fn call(
        &self,
        auth: Option<&str>,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        Reply {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

#[tokio::test]
async fn every_webdav_method_works_for_a_user() {
    let dav = Dav::new().await;
    dav.user("alice", &[("/alice", GrantLevel::Full)]).await;
    let me = basic("alice", "alice-password");
    let a = Some(me.as_str());
    assert_eq!(
        dav.call(a, "PUT", "/alice/a.txt", &[], "hello")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        std::fs::read_to_string(dav.root().join("alice/a.txt")).unwrap(),
        "hello"
    );
    let got = dav.call(a, "GET", "/alice/a.txt", &[], "").await;
    assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, "hello"));
    let range = dav
        .call(a, "GET", "/alice/a.txt", &[("Range", "bytes=1-3")], "")
        .await;
    assert_eq!(
        (range.status, range.body.as_str()),
        (StatusCode::PARTIAL_CONTENT, "ell")
    );
    assert_eq!(
        dav.call(a, "MKCOL", "/alice/sub", &[], "").await.status,
        StatusCode::CREATED
    );
    let listing = dav
        .call(a, "PROPFIND", "/alice/", &[("Depth", "1")], "")
        .await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    assert!(
        listing.body.contains("/alice/a.txt") && listing.body.contains("/alice/sub/"),
        "{}",
        listing.body
    );
    assert_eq!(
        dav.call(
            a,
            "COPY",
            "/alice/a.txt",
            &[("Destination", "/alice/sub/b.txt")],
            ""
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        dav.call(
            a,
            "MOVE",
            "/alice/sub/b.txt",
            &[("Destination", "/alice/c.txt")],
            ""
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        std::fs::read_to_string(dav.root().join("alice/c.txt")).unwrap(),
        "hello"
    );
    let patch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"#;
    assert_eq!(
        dav.call(a, "PROPPATCH", "/alice/c.txt", &[], patch)
            .await
            .status,
        StatusCode::MULTI_STATUS
    );
    let props = dav.call(a, "PROPFIND", "/alice/c.txt", &[("Depth", "0")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x"><D:prop><Z:color/></D:prop></D:propfind>"#).await;
    assert!(
        props.body.contains("blue"),
        "dead property round-trips: {}",
        props.body
    );
    assert_eq!(
        dav.core.store.props_of("/alice/c.txt").await.unwrap().len(),
        1,
        "kept in the store"
    );
    let lock_body = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let lock = dav
        .call(
            a,
            "LOCK",
            "/alice/c.txt",
            &[("Timeout", "Second-60")],
            lock_body,
        )
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let token = lock
        .body
        .split("<D:href>")
        .nth(1)
        .and_then(|s| s.split("</D:href>").next())
        .unwrap()
        .to_owned();
    assert_eq!(
        dav.call(a, "PUT", "/alice/c.txt", &[], "no token")
            .await
            .status,
        StatusCode::LOCKED
    );
    assert_eq!(
        dav.call(
            a,
            "UNLOCK",
            "/alice/c.txt",
            &[("Lock-Token", &format!("<{token}>"))],
            ""
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        dav.call(a, "DELETE", "/alice/sub", &[], "").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(!dav.root().join("alice/sub").exists());
    assert_eq!(
        dav.call(None, "GET", "/alice/c.txt", &[], "").await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = basic("alice", "nope-nope");
    assert_eq!(
        dav.call(Some(&wrong), "GET", "/alice/c.txt", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn keys_sign_in_by_id_and_name_and_stay_inside_their_rights() {
    let dav = Dav::new().await;
    let bob = dav.user("bob", &[("/", GrantLevel::Full)]).await;
    std::fs::create_dir_all(dav.root().join("team/drop")).unwrap();
    std::fs::write(dav.root().join("team/private.txt"), "secret").unwrap();
    std::fs::write(dav.root().join("team/drop/in.txt"), "inside").unwrap();
    let (id, secret) = dav
        .key(bob, "confined", Some("team/drop"), PermissionSet::Full)
        .await;
    let by_id = basic(&format!("@api-{id}"), &secret);
    let by_name = basic("@api-confined", &secret);
    assert_eq!(
        dav.call(Some(&by_id), "GET", "/team/drop/in.txt", &[], "")
            .await
            .body,
        "inside"
    );
    assert_eq!(
        dav.call(Some(&by_name), "GET", "/team/drop/in.txt", &[], "")
            .await
            .body,
        "inside"
    );
    for (method, uri, headers) in [
        ("GET", "/team/private.txt", vec![]),
        ("GET", "/team/drop/%2e%2e/private.txt", vec![]),
        (
            "COPY",
            "/team/drop/in.txt",
            vec![("Destination", "/team/stolen.txt")],
        ),
        (
            "MOVE",
            "/team/drop/in.txt",
            vec![("Destination", "/team/stolen.txt")],
        ),
        ("PUT", "/outside.txt", vec![]),
    ] {
        let body = if method == "PUT" { "x" } else { "" };
        let r = dav.call(Some(&by_id), method, uri, &headers, body).await;
        let refused = [
            StatusCode::NOT_FOUND,
            StatusCode::FORBIDDEN,
            StatusCode::BAD_REQUEST,
            StatusCode::CONFLICT,
        ];
        assert!(refused.contains(&r.status), "{method} {uri}: {}", r.status);
    }
    assert!(!dav.root().join("team/stolen.txt").exists());
    assert!(!dav.root().join("outside.txt").exists());
    assert!(dav.root().join("team/drop/in.txt").exists());

    let (_, ro) = dav.key(bob, "reader", None, PermissionSet::ReadOnly).await;
    let reader = basic("@api-reader", &ro);
    assert_eq!(
        dav.call(Some(&reader), "GET", "/team/private.txt", &[], "")
            .await
            .body,
        "secret"
    );
    assert_eq!(
        dav.call(Some(&reader), "PUT", "/team/new.txt", &[], "x")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dav.call(Some(&reader), "DELETE", "/team/private.txt", &[], "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let (_, wo) = dav
        .key(bob, "writer", Some("team/drop"), PermissionSet::WriteOnly)
        .await;
    let writer = basic("@api-writer", &wo);
    assert_eq!(
        dav.call(Some(&writer), "PUT", "/team/drop/up.txt", &[], "up")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        dav.call(Some(&writer), "GET", "/team/drop/in.txt", &[], "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Revocation: refused on the very next request.
    dav.core
        .accounts
        .revoke_key(&Principal::cli(), id)
        .await
        .unwrap();
    assert_eq!(
        dav.call(Some(&by_id), "GET", "/team/drop/in.txt", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn infinite_depth_listings_and_oversized_bodies_are_refused() {
    let dir = TempDir::new("dav-limits");
    let mut config = Config::default();
    config.server.data_dir = dir.path().join("data");
    config.webdav.max_body_bytes = 10;
    config.fill_defaults();
    let core = Core::open(config).await.unwrap();
    let spec = UserSpec {
        username: "lim".into(),
        password: Some("lim-password".into()),
        ..Default::default()
    };
    let user = core
        .accounts
        .create_user(&Principal::cli(), spec)
        .await
        .unwrap();
    core.accounts
        .grant(&Principal::cli(), user.id, "/", GrantLevel::Full)
        .await
        .unwrap();
    let dav = Dav {
        router: router(
            core.auth.clone(),
            core.files.clone(),
            core.store.clone(),
            core.config.webdav.clone(),
        ),
        core,
        _dir: dir,
    };
    let auth = basic("lim", "lim-password");
    let deep = dav
        .call(Some(&auth), "PROPFIND", "/", &[("Depth", "infinity")], "")
        .await;
    assert_eq!(deep.status, StatusCode::FORBIDDEN);
    assert!(deep.body.contains("propfind-finite-depth"));
    assert_eq!(
        dav.call(Some(&auth), "PROPFIND", "/", &[("Depth", "1")], "")
            .await
            .status,
        StatusCode::MULTI_STATUS
    );
    let big = dav
        .call(
            Some(&auth),
            "PUT",
            "/big.txt",
            &[("Content-Length", "11")],
            "01234567890",
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!dav.root().join("big.txt").exists());
    assert_eq!(
        dav.call(Some(&auth), "PUT", "/small.txt", &[], "0123456789")
            .await
            .status,
        StatusCode::CREATED
    );
}
