//! The API in process (`router.oneshot`) over a real SQLite store: every endpoint, the rights
//! matrix, pagination under concurrent changes, and bad input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::accounts::{KeyOwner, KeySpec, UserSpec};
use crate::config::Config;
use crate::gateway::Core;
use crate::identity::{GrantLevel, PermissionSet, Principal};
use crate::test_support::TempDir;

struct Api {
    core: Core,
    router: Router,
    _dir: TempDir,
}

#[derive(Clone)]
enum As {
    Nobody,
    Key(String),
    Session(String),
}

struct Reply {
    status: StatusCode,
    next: Option<String>,
    prev: Option<String>,
    body: Value,
}

impl Reply {
    fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

impl Api {
    async fn new() -> Api {
        let dir = TempDir::new("api");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("data");
        config.auth.lockout.enabled = false;
        config.fill_defaults();
        let core = Core::open(config).await.unwrap();
        let state = Arc::new(ApiState::new(
            core.auth.clone(),
            core.accounts.clone(),
            core.store.clone(),
            core.sink.clone(),
            core.audit.clone(),
            core.metrics.clone(),
            "api-test-cursor-key",
        ));
        Api {
            router: router(state),
            core,
            _dir: dir,
        }
    }

    async fn call(&self, who: &As, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Content-Type", "application/json");
        match who {
            As::Nobody => {}
            As::Key(k) => req = req.header("X-FilesAPI-Key", k),
            As::Session(s) => req = req.header("X-FilesAPI-Auth", s),
        }
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        self.raw(req.body(body).unwrap()).await
    }

    async fn raw(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let next = response
            .headers()
            .get("X-Files-Cursor-Next")
            .map(|v| v.to_str().unwrap().to_owned());
        let prev = response
            .headers()
            .get("X-Files-Cursor-Prev")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            next,
            prev,
            body,
        }
    }

    async fn user(&self, name: &str, admin: bool) -> i64 {
        let spec = UserSpec {
            username: name.into(),
            password: Some(format!("{name}-password")),
            site_admin: admin,
            ..Default::default()
        };
        let user = self
            .core
            .accounts
            .create_user(&Principal::cli(), spec)
            .await
            .unwrap();
        self.core
            .accounts
            .grant(
                &Principal::cli(),
                user.id,
                &format!("/{name}"),
                GrantLevel::Full,
            )
            .await
            .unwrap();
        user.id
    }

    async fn key(
        &self,
        owner: Option<i64>,
        name: &str,
        set: PermissionSet,
        path: Option<&str>,
    ) -> (i64, As) {
        let spec = KeySpec {
            owner: owner.map(KeyOwner::User).unwrap_or(KeyOwner::SiteWide),
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
        (k.record.id, As::Key(k.secret))
    }

    async fn session(&self, username: &str) -> As {
        let r = self
            .call(
                &As::Nobody,
                Method::POST,
                "/api/rest/v1/sessions",
                Some(json!({"username": username, "password": format!("{username}-password")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        As::Session(r.body["id"].as_str().unwrap().to_owned())
    }
}

const V1: &str = "/api/rest/v1";

#[tokio::test]
async fn the_eight_api_key_operations_work_for_a_user() {
    let api = Api::new().await;
    let alice = api.user("alice", false).await;
    let (_, alice_key) = api
        .key(Some(alice), "alice main", PermissionSet::Full, None)
        .await;

    let created = api.call(&alice_key, Method::POST, &format!("{V1}/api_keys"), Some(json!({"name": "ci", "expires_at": "2099-01-01T00:00:00Z", "permission_set": "files_only", "path": "alice/ci", "user_id": 0}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["key"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["user_id"], alice);
    assert_eq!(created.body["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(created.body["path"], "alice/ci");

    let listed = api
        .call(
            &alice_key,
            Method::GET,
            &format!("{V1}/api_keys?user_id=0"),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key"].is_null()),
        "secrets only at create"
    );

    let found = api
        .call(
            &alice_key,
            Method::GET,
            &format!("{V1}/api_keys/{id}?id={id}"),
            None,
        )
        .await;
    assert_eq!(found.body["name"], "ci");
    let current = api
        .call(
            &As::Key(secret.clone()),
            Method::GET,
            &format!("{V1}/api_key"),
            None,
        )
        .await;
    assert_eq!(
        (current.status, current.body["id"].as_i64()),
        (StatusCode::OK, Some(id))
    );

    let updated = api
        .call(
            &alice_key,
            Method::PATCH,
            &format!("{V1}/api_keys/{id}"),
            Some(json!({"id": id, "name": "ci renamed", "description": "nightly"})),
        )
        .await;
    assert_eq!(
        (updated.status, updated.body["name"].as_str()),
        (StatusCode::OK, Some("ci renamed"))
    );
    let mismatch = api
        .call(
            &alice_key,
            Method::PATCH,
            &format!("{V1}/api_keys/{id}"),
            Some(json!({"id": id + 1, "name": "x"})),
        )
        .await;
    assert_eq!(mismatch.kind(), "bad-request/request-params-invalid");

    let (_, desktop) = api
        .key(Some(alice), "desk", PermissionSet::DesktopApp, None)
        .await;
    let narrowed = api
        .call(
            &desktop,
            Method::PATCH,
            &format!("{V1}/api_key"),
            Some(json!({"name": "desk2", "permission_set": "files_only"})),
        )
        .await;
    assert_eq!(
        (narrowed.status, narrowed.body["permission_set"].as_str()),
        (StatusCode::OK, Some("files_only"))
    );
    let widened = api
        .call(
            &As::Key(secret.clone()),
            Method::PATCH,
            &format!("{V1}/api_key"),
            Some(json!({"permission_set": "full"})),
        )
        .await;
    assert_eq!(
        widened.status,
        StatusCode::FORBIDDEN,
        "a files_only key may not manage itself"
    );

    let deleted_current = api
        .call(
            &As::Key(secret.clone()),
            Method::DELETE,
            &format!("{V1}/api_key"),
            None,
        )
        .await;
    assert_eq!(
        (deleted_current.status, &deleted_current.body),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    let after = api
        .call(
            &As::Key(secret),
            Method::GET,
            &format!("{V1}/api_key"),
            None,
        )
        .await;
    assert_eq!(after.kind(), "not-authenticated/invalid-credentials");

    let (other_id, _) = api
        .key(Some(alice), "spare", PermissionSet::Full, None)
        .await;
    let deleted = api
        .call(
            &alice_key,
            Method::DELETE,
            &format!("{V1}/api_keys/{other_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api
        .call(
            &alice_key,
            Method::GET,
            &format!("{V1}/api_keys/{other_id}"),
            None,
        )
        .await;
    assert_eq!(gone.kind(), "not-found/api-key-not-found");
}

#[tokio::test]
async fn the_rights_matrix_holds_for_every_kind_of_caller() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let (_, site_key) = api.key(None, "site key", PermissionSet::Full, None).await;
    let (_, bob_full) = api
        .key(Some(bob), "bob full", PermissionSet::Full, None)
        .await;
    let (_, bob_desktop) = api
        .key(Some(bob), "bob desktop", PermissionSet::DesktopApp, None)
        .await;
    let (_, bob_files) = api
        .key(Some(bob), "bob files", PermissionSet::FilesOnly, None)
        .await;
    let (_, bob_ro) = api
        .key(Some(bob), "bob ro", PermissionSet::ReadOnly, None)
        .await;
    let (_, bob_wo) = api
        .key(Some(bob), "bob wo", PermissionSet::WriteOnly, None)
        .await;
    let (_, bob_path) = api
        .key(Some(bob), "bob path", PermissionSet::Full, Some("bob/sub"))
        .await;
    let bob_session = api.session("bob").await;
    let admin_session = api.session("root").await;

    let ok = "ok";
    let rows: Vec<(&str, As, [&str; 4])> = vec![
        // caller, [GET /api_keys, GET /users, POST /api_keys for bob, GET /api_keys?user_id=bob]
        ("admin session", admin_session, [ok, ok, ok, ok]),
        ("admin key", admin_key, [ok, ok, ok, ok]),
        ("site-wide key", site_key, [ok, ok, ok, ok]),
        (
            "bob full key",
            bob_full,
            [ok, "not-authorized/site-admin-required", ok, ok],
        ),
        (
            "bob session",
            bob_session,
            [ok, "not-authorized/site-admin-required", ok, ok],
        ),
        (
            "bob desktop_app",
            bob_desktop,
            ["not-authorized/api-key-only-for-desktop-app"; 4],
        ),
        (
            "bob files_only",
            bob_files,
            ["not-authorized/api-key-only-for-file-operations"; 4],
        ),
        (
            "bob readonly",
            bob_ro,
            ["not-authorized/api-key-only-for-file-operations"; 4],
        ),
        (
            "bob writeonly",
            bob_wo,
            ["not-authorized/api-key-only-for-file-operations"; 4],
        ),
        (
            "bob path-restricted",
            bob_path,
            ["not-authorized/api-key-is-path-restricted"; 4],
        ),
        (
            "nobody",
            As::Nobody,
            ["not-authenticated/authentication-required"; 4],
        ),
        (
            "bad key",
            As::Key("f".repeat(64)),
            ["not-authenticated/invalid-credentials"; 4],
        ),
        (
            "bad session",
            As::Session("nosuchsession".into()),
            ["not-authenticated/invalid-session"; 4],
        ),
    ];
    for (i, (label, who, expected)) in rows.into_iter().enumerate() {
        let calls = [
            api.call(&who, Method::GET, &format!("{V1}/api_keys"), None)
                .await,
            api.call(&who, Method::GET, &format!("{V1}/users"), None)
                .await,
            api.call(
                &who,
                Method::POST,
                &format!("{V1}/api_keys"),
                Some(json!({"name": format!("made by {i}"), "user_id": bob})),
            )
            .await,
            api.call(
                &who,
                Method::GET,
                &format!("{V1}/api_keys?user_id={bob}"),
                None,
            )
            .await,
        ];
        for (n, (reply, want)) in calls.iter().zip(expected).enumerate() {
            let got = if reply.status.is_success() {
                ok
            } else {
                reply.kind()
            };
            assert_eq!(got, want, "{label}, call {n}: {:?}", reply.body);
        }
    }
    // A user acting on another user's keys.
    let carol = api.user("carol", false).await;
    let (carol_key_id, _) = api
        .key(Some(carol), "carol key", PermissionSet::Full, None)
        .await;
    let (_, bob_full) = api
        .key(Some(bob), "bob full 2", PermissionSet::Full, None)
        .await;
    let other = api
        .call(
            &bob_full,
            Method::GET,
            &format!("{V1}/api_keys?user_id={carol}"),
            None,
        )
        .await;
    assert_eq!(other.kind(), "not-authorized/cant-act-for-other-user");
    let create_for = api
        .call(
            &bob_full,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "sneaky", "user_id": carol})),
        )
        .await;
    assert_eq!(create_for.kind(), "not-authorized/cant-act-for-other-user");
    let find_other = api
        .call(
            &bob_full,
            Method::GET,
            &format!("{V1}/api_keys/{carol_key_id}"),
            None,
        )
        .await;
    assert_eq!(
        find_other.kind(),
        "not-found/api-key-not-found",
        "no hint that the id exists"
    );
    let delete_other = api
        .call(
            &bob_full,
            Method::DELETE,
            &format!("{V1}/api_keys/{carol_key_id}"),
            None,
        )
        .await;
    assert_eq!(delete_other.kind(), "not-found/api-key-not-found");
    assert!(
        api.core
            .store
            .key_by_id(carol_key_id)
            .await
            .unwrap()
            .is_some()
    );
    // Site-wide keys can be made by admins only; a user's key without user_id is theirs.
    let mine = api
        .call(
            &bob_full,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "bob own"})),
        )
        .await;
    assert_eq!(mine.body["user_id"], bob);
    let (_, site_key) = api.key(None, "site key 2", PermissionSet::Full, None).await;
    let site_made = api
        .call(
            &site_key,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "another site key"})),
        )
        .await;
    assert!(site_made.body["user_id"].is_null());
}

#[tokio::test]
async fn pagination_walks_every_key_once_while_keys_come_and_go() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            api.key(Some(admin), &format!("k{n}"), PermissionSet::Full, None)
                .await
                .0,
        );
    }
    let mut seen = Vec::new();
    let mut uri = format!("{V1}/api_keys?per_page=1");
    let mut pages = 0;
    loop {
        let page = api.call(&admin_key, Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(
            page.body
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_i64().unwrap()),
        );
        pages += 1;
        if pages == 2 {
            // Between pages: delete one not yet seen, add a new one.
            api.core
                .accounts
                .revoke_key(&Principal::cli(), ids[4])
                .await
                .unwrap();
            ids.push(
                api.key(Some(admin), "late", PermissionSet::Full, None)
                    .await
                    .0,
            );
        }
        match page.next {
            Some(cursor) => uri = format!("{V1}/api_keys?per_page=1&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen, "no key twice");
    assert!(!seen.contains(&ids[4]), "the deleted key is not shown");
    assert!(seen.contains(ids.last().unwrap()), "the new key is reached");
    assert_eq!(seen.len(), 7);

    // X-Files-Cursor-Prev leads back a page; the first page has none.
    let first = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/api_keys?per_page=2"),
            None,
        )
        .await;
    assert!(first.prev.is_none());
    let second = api
        .call(
            &admin_key,
            Method::GET,
            &format!(
                "{V1}/api_keys?per_page=2&cursor={}",
                first.next.clone().unwrap()
            ),
            None,
        )
        .await;
    let back = api
        .call(
            &admin_key,
            Method::GET,
            &format!(
                "{V1}/api_keys?per_page=2&cursor={}",
                second.prev.clone().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(back.body, first.body);
    let sorted = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/api_keys?per_page=2&sort_by[expires_at]=desc"),
            None,
        )
        .await;
    let cursor = sorted.next.unwrap();
    let reused = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/api_keys?per_page=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        reused.kind(),
        "bad-request/invalid-cursor",
        "cursor reused with other sort parameters"
    );
    let forged = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/api_keys?cursor=deadbeef{}", "0".repeat(40)),
            None,
        )
        .await;
    assert_eq!(forged.kind(), "bad-request/invalid-cursor");
    for (query, kind) in [
        ("per_page=0", "bad-request/request-params-invalid"),
        ("per_page=10001", "bad-request/request-params-invalid"),
        ("per_page=lots", "bad-request/request-params-invalid"),
        ("sort_by[name]=asc", "bad-request/invalid-sort-field"),
        ("filter[name]=x", "bad-request/invalid-filter-field"),
        (
            "filter_gt[expires_at]=notatime",
            "bad-request/request-params-invalid",
        ),
    ] {
        let r = api
            .call(
                &admin_key,
                Method::GET,
                &format!("{V1}/api_keys?{query}"),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.kind()),
            (StatusCode::BAD_REQUEST, kind),
            "{query}"
        );
    }
    let filtered = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/api_keys?filter_gt%5Bexpires_at%5D=2000-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!(filtered.body, json!([]), "no key has an expiry");
}

#[tokio::test]
async fn users_grants_ssh_keys_and_sessions_round_trip() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let made = api.call(&admin_key, Method::POST, &format!("{V1}/users"), Some(json!({"username": "dave", "password": "dave-password", "email": "d@example.com", "ftp_permission": false, "allowed_ips": "10.0.0.0/8"}))).await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    let dave = made.body["id"].as_i64().unwrap();
    assert_eq!(made.body["ftp_permission"], false);
    assert_eq!(made.body["allowed_ips"], "10.0.0.0/8");
    assert!(made.body.get("password").is_none() && made.body.get("password_hash").is_none());
    let taken = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/users"),
            Some(json!({"username": "DAVE"})),
        )
        .await;
    assert_eq!(taken.kind(), "processing-failure/model-save-error");
    let missing = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/users"),
            Some(json!({"email": "x"})),
        )
        .await;
    assert_eq!(missing.kind(), "bad-request/request-params-required");
    let patched = api
        .call(
            &admin_key,
            Method::PATCH,
            &format!("{V1}/users/{dave}"),
            Some(json!({"disabled": true, "allowed_ips": ""})),
        )
        .await;
    assert_eq!(
        (
            patched.body["disabled"].as_bool(),
            patched.body["allowed_ips"].as_str()
        ),
        (Some(true), Some(""))
    );
    api.call(
        &admin_key,
        Method::PATCH,
        &format!("{V1}/users/{dave}"),
        Some(json!({"disabled": false})),
    )
    .await;
    let all = api
        .call(&admin_key, Method::GET, &format!("{V1}/users"), None)
        .await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);

    let grant = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/permissions"),
            Some(json!({"user_id": dave, "path": "projects/x", "permission": "readonly"})),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{:?}", grant.body);
    let bad_grant = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/permissions"),
            Some(json!({"user_id": dave, "path": "a/../b", "permission": "full"})),
        )
        .await;
    assert_eq!(bad_grant.kind(), "bad-request/request-params-invalid");
    let grants = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/permissions?filter[user_id]={dave}&filter_prefix[path]=projects"),
            None,
        )
        .await;
    assert_eq!(grants.body[0]["path"], "projects/x");
    assert_eq!(grants.body[0]["permission"], "readonly");

    let dave_session = api.session("dave").await;
    let own = api
        .call(
            &dave_session,
            Method::GET,
            &format!("{V1}/permissions"),
            None,
        )
        .await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1 dave@laptop";
    let pk = api
        .call(
            &dave_session,
            Method::POST,
            &format!("{V1}/public_keys"),
            Some(json!({"title": "laptop", "public_key": line})),
        )
        .await;
    assert_eq!(pk.status, StatusCode::CREATED, "{:?}", pk.body);
    let pks = api
        .call(
            &dave_session,
            Method::GET,
            &format!("{V1}/public_keys"),
            None,
        )
        .await;
    assert_eq!(pks.body[0]["title"], "laptop");
    let pk_id = pk.body["id"].as_i64().unwrap();
    assert_eq!(
        api.call(
            &dave_session,
            Method::DELETE,
            &format!("{V1}/public_keys/{pk_id}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    // Gone once, audited once; a second delete finds nothing.
    assert_eq!(
        api.call(
            &dave_session,
            Method::DELETE,
            &format!("{V1}/public_keys/{pk_id}"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let search = crate::store::AuditSearch {
        action: Some("public_key_delete".into()),
        limit: 100,
        ..Default::default()
    };
    let mut deletes = Vec::new();
    for _ in 0..500 {
        deletes = api.core.store.search_audit(&search).await.unwrap();
        if !deletes.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].path.as_deref(),
        Some(format!("public_key:{pk_id}").as_str())
    );
    let grant_id = grant.body["id"].as_i64().unwrap();
    assert_eq!(
        api.call(
            &dave_session,
            Method::DELETE,
            &format!("{V1}/permissions/{grant_id}"),
            None
        )
        .await
        .kind(),
        "not-authorized/site-admin-required"
    );
    assert_eq!(
        api.call(
            &admin_key,
            Method::DELETE,
            &format!("{V1}/permissions/{grant_id}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    let wrong = api
        .call(
            &As::Nobody,
            Method::POST,
            &format!("{V1}/sessions"),
            Some(json!({"username": "dave", "password": "nope-nope"})),
        )
        .await;
    assert_eq!(
        wrong.kind(),
        "not-authenticated/invalid-username-or-password"
    );
    let by_key_name = api
        .call(
            &As::Nobody,
            Method::POST,
            &format!("{V1}/sessions"),
            Some(json!({"username": "@api-1", "password": "x"})),
        )
        .await;
    assert_eq!(
        by_key_name.kind(),
        "not-authenticated/invalid-username-or-password"
    );
    assert_eq!(
        api.call(
            &dave_session,
            Method::DELETE,
            &format!("{V1}/sessions"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(&dave_session, Method::GET, &format!("{V1}/api_keys"), None)
            .await
            .kind(),
        "not-authenticated/invalid-session"
    );

    let deleted = api
        .call(
            &admin_key,
            Method::DELETE,
            &format!("{V1}/users/{dave}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call(&admin_key, Method::GET, &format!("{V1}/users/{dave}"), None)
            .await
            .kind(),
        "not-found/user-not-found"
    );
}

#[tokio::test]
async fn history_shows_api_calls_and_only_your_own_to_non_admins() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let erin = api.user("erin", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let (_, erin_key) = api
        .key(Some(erin), "erin key", PermissionSet::Full, None)
        .await;
    api.call(&erin_key, Method::GET, &format!("{V1}/api_keys"), None)
        .await;
    api.call(&admin_key, Method::GET, &format!("{V1}/users"), None)
        .await;
    for _ in 0..50 {
        if api.core.audit.backlog() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let all = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history?per_page=1000"),
            None,
        )
        .await;
    let rows = all.body.as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["interface"] == "restapi"
            && r["action"] == "api_call"
            && r["user_id"] == erin)
    );
    let mine = api
        .call(&erin_key, Method::GET, &format!("{V1}/history"), None)
        .await;
    assert!(
        mine.body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user_id"] == erin),
        "{:?}",
        mine.body
    );
    let theirs = api
        .call(
            &erin_key,
            Method::GET,
            &format!("{V1}/history/users/{admin}"),
            None,
        )
        .await;
    assert_eq!(theirs.kind(), "not-authorized/cant-act-for-other-user");
    let logins = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history/login"),
            None,
        )
        .await;
    assert!(
        logins
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "login")
    );
    // File and folder histories, from records a file operation would write.
    let mut upload = crate::audit::AuditEvent::by(
        &Principal::cli(),
        crate::audit::Action::Upload,
        crate::audit::Outcome::Ok,
    )
    .path("/erin/docs/a.txt");
    upload.user_id = Some(erin);
    let mut other_upload = upload.clone().path("/erin/other.txt");
    other_upload.event_key.push_str("-other"); // another event, not the same one again
    api.core
        .store
        .append_audit("test", &[upload.clone(), other_upload])
        .await
        .unwrap();
    let file = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history/files/erin/docs/a.txt"),
            None,
        )
        .await;
    assert_eq!(file.body.as_array().unwrap().len(), 1, "{:?}", file.body);
    assert_eq!(file.body[0]["path"], "erin/docs/a.txt");
    let folder = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history/folders/erin"),
            None,
        )
        .await;
    assert_eq!(folder.body.as_array().unwrap().len(), 2);
    let prefix = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history?filter_prefix[path]=erin/docs"),
            None,
        )
        .await;
    assert_eq!(prefix.body.as_array().unwrap().len(), 1);
    let by_key = api
        .call(
            &erin_key,
            Method::GET,
            &format!("{V1}/history/folders/erin"),
            None,
        )
        .await;
    assert_eq!(
        by_key.body.as_array().unwrap().len(),
        2,
        "a user sees their own file history"
    );
    let bad = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history?filter[action]=x"),
            None,
        )
        .await;
    assert_eq!(bad.kind(), "bad-request/invalid-filter-field");
    let paged = api
        .call(
            &admin_key,
            Method::GET,
            &format!("{V1}/history?per_page=1&sort_by[created_at]=asc"),
            None,
        )
        .await;
    assert_eq!(paged.body.as_array().unwrap().len(), 1);
    let next = api
        .call(
            &admin_key,
            Method::GET,
            &format!(
                "{V1}/history?per_page=1&sort_by[created_at]=asc&cursor={}",
                paged.next.unwrap()
            ),
            None,
        )
        .await;
    assert!(next.body[0]["id"].as_i64() > paged.body[0]["id"].as_i64());
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let As::Key(secret) = &admin_key else {
        unreachable!()
    };
    let post = |body: &'static [u8]| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("{V1}/api_keys"))
            .header("X-FilesAPI-Key", secret.as_str())
            .header("Content-Type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(
        api.raw(post(b"{\"name\": ")).await.kind(),
        "bad-request/invalid-body"
    );
    assert_eq!(
        api.raw(post(b"\xff\xfe")).await.kind(),
        "bad-request/invalid-body"
    );
    assert_eq!(
        api.raw(post(b"[]")).await.kind(),
        "bad-request/invalid-body"
    );
    let huge = Request::builder()
        .method(Method::POST)
        .uri(format!("{V1}/api_keys"))
        .header("X-FilesAPI-Key", secret.as_str())
        .body(Body::from(vec![b' '; 200_000]))
        .unwrap();
    assert_eq!(
        api.raw(huge).await.kind(),
        "bad-request/request-body-too-large"
    );
    for (body, kind) in [
        (json!({"name": 7}), "bad-request/request-params-invalid"),
        (
            json!({"description": "no name"}),
            "bad-request/request-params-required",
        ),
        (
            json!({"name": "x", "permission_set": "root"}),
            "bad-request/request-params-invalid",
        ),
        (
            json!({"name": "x", "path": "/abs"}),
            "bad-request/request-params-invalid",
        ),
        (
            json!({"name": "x", "path": "a/../b"}),
            "bad-request/request-params-invalid",
        ),
        (json!({"name": "123"}), "bad-request/request-params-invalid"),
        (
            json!({"name": "x", "expires_at": "soon"}),
            "bad-request/request-params-invalid",
        ),
        (
            json!({"name": "x", "user_id": "bob"}),
            "bad-request/request-params-invalid",
        ),
        (
            json!({"name": "x", "is_admin": true}),
            "bad-request/request-params-invalid",
        ),
        (
            json!({"name": "x", "user_id": 999}),
            "not-found/user-not-found",
        ),
        (
            json!({"name": "admin key"}),
            "processing-failure/model-save-error",
        ),
    ] {
        let r = api
            .call(
                &admin_key,
                Method::POST,
                &format!("{V1}/api_keys"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.kind(), kind, "{body}: {:?}", r.body);
    }
    let bad_id = api
        .call(&admin_key, Method::GET, &format!("{V1}/api_keys/abc"), None)
        .await;
    assert_eq!(bad_id.kind(), "bad-request/request-params-invalid");
    let unknown = api
        .call(&admin_key, Method::GET, &format!("{V1}/nope"), None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.core
            .store
            .list_keys(crate::store::KeyOwnerFilter::All, 0, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let error = api
        .call(&As::Nobody, Method::GET, &format!("{V1}/api_keys"), None)
        .await;
    for field in ["error", "http-code", "instance", "title", "type"] {
        assert!(
            error.body.get(field).is_some(),
            "error bodies carry {field}"
        );
    }
}

#[tokio::test]
async fn health_answers_anyone_and_metrics_only_a_site_admin() {
    let api = Api::new().await;
    let health = api.call(&As::Nobody, Method::GET, "/healthz", None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    api.call(
        &As::Key("0".repeat(64)),
        Method::GET,
        &format!("{V1}/api_key"),
        None,
    )
    .await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let (_, admin_ro) = api
        .key(Some(admin), "admin ro", PermissionSet::ReadOnly, None)
        .await;
    let (_, site_key) = api.key(None, "site key", PermissionSet::Full, None).await;
    let (_, bob_key) = api
        .key(Some(bob), "bob key", PermissionSet::Full, None)
        .await;
    let bob_session = api.session("bob").await;
    let admin_session = api.session("root").await;
    for (who, status, kind) in [
        (
            As::Nobody,
            StatusCode::UNAUTHORIZED,
            "not-authenticated/authentication-required",
        ),
        (
            As::Key("f".repeat(64)),
            StatusCode::UNAUTHORIZED,
            "not-authenticated/invalid-credentials",
        ),
        (
            bob_key,
            StatusCode::FORBIDDEN,
            "not-authorized/site-admin-required",
        ),
        (
            bob_session,
            StatusCode::FORBIDDEN,
            "not-authorized/site-admin-required",
        ),
        (
            admin_ro,
            StatusCode::FORBIDDEN,
            "not-authorized/api-key-only-for-file-operations",
        ),
    ] {
        let refused = api.call(&who, Method::GET, "/metrics", None).await;
        assert_eq!((refused.status, refused.kind()), (status, kind));
    }
    for who in [admin_key, site_key, admin_session] {
        let metrics = api.call(&who, Method::GET, "/metrics", None).await;
        assert_eq!(metrics.status, StatusCode::OK);
        let text = metrics.body.as_str().unwrap();
        assert!(
            text.contains("filegate_logins_total{protocol=\"restapi\",result=\"denied\"}"),
            "{text}"
        );
        assert!(text.contains("filegate_audit_backlog"));
        assert!(text.contains("filegate_lockout_refusals_unrecorded_total"));
    }
}

#[tokio::test]
async fn a_session_token_stops_working_after_a_password_change_or_when_its_user_goes() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let me_uri = format!("{V1}/users/{bob}");
    let me = async |who: &As| api.call(who, Method::GET, &me_uri, None).await;

    let session = api.session("bob").await;
    assert_eq!(me(&session).await.status, StatusCode::OK);
    let renamed = api
        .call(
            &admin_key,
            Method::PATCH,
            &format!("{V1}/users/{bob}"),
            Some(json!({"name": "Bob B."})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(me(&session).await.status, StatusCode::OK, "a new name");
    let changed = api
        .call(
            &admin_key,
            Method::PATCH,
            &format!("{V1}/users/{bob}"),
            Some(json!({"password": "a-new-password-for-bob"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(
        me(&session).await.kind(),
        "not-authenticated/invalid-session",
        "a password change ends the sessions made with the old one"
    );

    let fresh = api
        .call(
            &As::Nobody,
            Method::POST,
            &format!("{V1}/sessions"),
            Some(json!({"username": "bob", "password": "a-new-password-for-bob"})),
        )
        .await;
    let session = As::Session(fresh.body["id"].as_str().unwrap().to_owned());
    assert_eq!(me(&session).await.status, StatusCode::OK);
    for disabled in [true, false] {
        let r = api
            .call(
                &admin_key,
                Method::PATCH,
                &format!("{V1}/users/{bob}"),
                Some(json!({"disabled": disabled})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        me(&session).await.kind(),
        "not-authenticated/invalid-session",
        "disabling a user ends their sessions for good, not until re-enabled"
    );

    let fresh = api
        .call(
            &As::Nobody,
            Method::POST,
            &format!("{V1}/sessions"),
            Some(json!({"username": "bob", "password": "a-new-password-for-bob"})),
        )
        .await;
    let session = As::Session(fresh.body["id"].as_str().unwrap().to_owned());
    let gone = api
        .call(
            &admin_key,
            Method::DELETE,
            &format!("{V1}/users/{bob}"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(&session).await.kind(),
        "not-authenticated/invalid-session"
    );
}

#[tokio::test]
async fn a_key_may_only_narrow_itself_and_users_may_only_narrow_their_keys() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let widen = "not-authorized/site-admin-required";
    let current_uri = format!("{V1}/api_key");
    let patch_current =
        async |who: &As, body: Value| api.call(who, Method::PATCH, &current_uri, Some(body)).await;

    // A desktop_app key with an expiry may not extend, remove or widen it.
    let made = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(
                json!({"name": "desk", "user_id": bob, "permission_set": "desktop_app",
                        "expires_at": "2090-01-01T00:00:00Z"}),
            ),
        )
        .await;
    let desk_id = made.body["id"].as_i64().unwrap();
    let desk = As::Key(made.body["key"].as_str().unwrap().to_owned());
    for body in [
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
        json!({"expires_at": ""}),
        json!({"permission_set": "full"}),
    ] {
        let r = patch_current(&desk, body.clone()).await;
        assert_eq!(r.kind(), widen, "{body}: {:?}", r.body);
    }
    let row = api.core.store.key_by_id(desk_id).await.unwrap().unwrap();
    assert_eq!(
        (row.permission_set.as_str(), row.expires_at),
        (
            "desktop_app",
            crate::model::parse_time("2090-01-01T00:00:00Z")
        )
    );
    let earlier = patch_current(
        &desk,
        json!({"expires_at": "2080-01-01T00:00:00Z", "permission_set": "readonly", "name": "d2"}),
    )
    .await;
    assert_eq!(earlier.status, StatusCode::OK, "{:?}", earlier.body);
    assert_eq!(earlier.body["expires_at"], "2080-01-01T00:00:00Z");

    // A key without an expiry may be given one, but an admin's own key may not widen itself.
    let (admin_desk_id, admin_desk) = api
        .key(Some(admin), "admin desk", PermissionSet::DesktopApp, None)
        .await;
    let r = patch_current(&admin_desk, json!({"permission_set": "full"})).await;
    assert_eq!(r.kind(), widen, "even an admin's key cannot widen itself");
    let r = patch_current(&admin_desk, json!({"expires_at": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = patch_current(&admin_desk, json!({"expires_at": ""})).await;
    assert_eq!(r.kind(), widen);
    let _ = admin_desk_id;

    // A key an admin made for bob (readonly, confined to bob/sub): bob may only narrow it.
    let made = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(
                json!({"name": "bob ro", "user_id": bob, "permission_set": "readonly",
                        "path": "bob/sub", "expires_at": "2090-01-01T00:00:00Z"}),
            ),
        )
        .await;
    let ro_id = made.body["id"].as_i64().unwrap();
    let bob_session = api.session("bob").await;
    let (_, bob_full) = api
        .key(Some(bob), "bob full", PermissionSet::Full, None)
        .await;
    for who in [&bob_session, &bob_full] {
        for body in [
            json!({"permission_set": "full"}),
            json!({"permission_set": "files_only"}),
            json!({"permission_set": "writeonly"}),
            json!({"path": ""}),
            json!({"path": "bob"}),
            json!({"path": "bob/subway"}),
            json!({"expires_at": "2099-01-01T00:00:00Z"}),
            json!({"expires_at": ""}),
        ] {
            let r = api
                .call(
                    who,
                    Method::PATCH,
                    &format!("{V1}/api_keys/{ro_id}"),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(r.kind(), widen, "{body}: {:?}", r.body);
        }
    }
    let row = api.core.store.key_by_id(ro_id).await.unwrap().unwrap();
    assert_eq!(
        (row.permission_set.as_str(), row.path.as_deref()),
        ("readonly", Some("bob/sub"))
    );
    let narrowed = api
        .call(
            &bob_session,
            Method::PATCH,
            &format!("{V1}/api_keys/{ro_id}"),
            Some(
                json!({"path": "bob/sub/deeper", "expires_at": "2085-01-01T00:00:00Z",
                        "name": "bob ro 2", "description": "mine"}),
            ),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{:?}", narrowed.body);
    assert_eq!(narrowed.body["path"], "bob/sub/deeper");

    // A user cannot widen a key they made either; an admin can widen anyone's.
    let own = api
        .call(
            &bob_session,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "bob own ro", "permission_set": "readonly"})),
        )
        .await;
    let own_id = own.body["id"].as_i64().unwrap();
    let r = api
        .call(
            &bob_session,
            Method::PATCH,
            &format!("{V1}/api_keys/{own_id}"),
            Some(json!({"permission_set": "full"})),
        )
        .await;
    assert_eq!(r.kind(), widen);
    let r = api
        .call(
            &admin_key,
            Method::PATCH,
            &format!("{V1}/api_keys/{ro_id}"),
            Some(json!({"permission_set": "full", "path": "", "expires_at": ""})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        (
            r.body["permission_set"].as_str(),
            &r.body["path"],
            &r.body["expires_at"]
        ),
        (Some("full"), &Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn account_rules_refuse_keys_beyond_their_maker_whoever_calls() {
    let api = Api::new().await;
    let bob = api.user("bob", false).await;
    let carol = api.user("carol", false).await;
    let (maker, _) = api
        .key(Some(bob), "maker", PermissionSet::Full, Some("bob/a"))
        .await;
    let principal = |key: Option<(PermissionSet, Option<&str>)>| Principal {
        user: Some(crate::identity::UserIdentity {
            id: bob,
            username: "bob".into(),
            revision: 1,
        }),
        key: key.map(|(permission_set, path)| crate::identity::KeyIdentity {
            id: maker,
            name: "maker".into(),
            permission_set,
            path: path.map(|p| crate::path::SitePath::from_key_path(p).unwrap()),
            revision: 1,
        }),
        site_admin: false,
        grants: Vec::new(),
        protocol: crate::identity::Protocol::Api,
        client: crate::identity::ClientInfo::new(None),
    };
    let spec = |owner: KeyOwner, set: PermissionSet, path: Option<&str>| KeySpec {
        owner,
        name: format!("k{}", crate::secret::random_hex(4)),
        description: None,
        path: path.map(str::to_owned),
        permission_set: set,
        expires_at: None,
        platform: None,
        created_by: Some(bob),
    };
    let refused = [
        (
            principal(None),
            spec(KeyOwner::SiteWide, PermissionSet::Full, None),
        ),
        (
            principal(None),
            spec(KeyOwner::User(carol), PermissionSet::Full, None),
        ),
        (
            principal(Some((PermissionSet::FilesOnly, None))),
            spec(KeyOwner::User(bob), PermissionSet::Full, None),
        ),
        (
            principal(Some((PermissionSet::Full, Some("bob/a")))),
            spec(KeyOwner::User(bob), PermissionSet::Full, Some("bob")),
        ),
        (
            principal(Some((PermissionSet::Full, Some("bob/a")))),
            spec(KeyOwner::User(bob), PermissionSet::Full, None),
        ),
    ];
    for (actor, spec) in refused {
        let result = api.core.accounts.create_key(&actor, spec.clone()).await;
        assert!(
            matches!(result, Err(crate::accounts::AccountError::Widening(_))),
            "{spec:?}: {result:?}"
        );
    }
    let allowed = api
        .core
        .accounts
        .create_key(
            &principal(Some((PermissionSet::Full, Some("bob/a")))),
            spec(
                KeyOwner::User(bob),
                PermissionSet::ReadOnly,
                Some("bob/a/b"),
            ),
        )
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");
}

#[tokio::test]
async fn an_expiring_key_cannot_outlive_itself_through_new_keys_or_ssh_keys() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let made = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "bob temp", "user_id": bob, "expires_at": "2030-01-01T00:00:00Z"})),
        )
        .await;
    let temp = As::Key(made.body["key"].as_str().unwrap().to_owned());
    let widen = "not-authorized/site-admin-required";
    for body in [
        json!({"name": "forever"}),
        json!({"name": "later", "expires_at": "2031-01-01T00:00:00Z"}),
    ] {
        let r = api
            .call(
                &temp,
                Method::POST,
                &format!("{V1}/api_keys"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.kind(), widen, "{body}: {:?}", r.body);
    }
    let sooner = api
        .call(
            &temp,
            Method::POST,
            &format!("{V1}/api_keys"),
            Some(json!({"name": "sooner", "expires_at": "2029-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(sooner.status, StatusCode::CREATED, "{:?}", sooner.body);
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxVv0n8bXYWH7X1o3OvZ4kmq2sA2sBl8xPq7Rk9YzN1";
    let ssh = api
        .call(
            &temp,
            Method::POST,
            &format!("{V1}/public_keys"),
            Some(json!({"title": "laptop", "public_key": line})),
        )
        .await;
    assert_eq!(ssh.kind(), widen, "{:?}", ssh.body);
    let (_, bob_full) = api
        .key(Some(bob), "bob full", PermissionSet::Full, None)
        .await;
    let ssh = api
        .call(
            &bob_full,
            Method::POST,
            &format!("{V1}/public_keys"),
            Some(json!({"title": "laptop", "public_key": line})),
        )
        .await;
    assert_eq!(ssh.status, StatusCode::CREATED, "{:?}", ssh.body);
}

#[tokio::test]
async fn a_grant_or_a_key_path_makes_its_folder_within_the_makers_rights() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let storage = api.core.config.server.storage_dir.clone();
    let granted = api
        .call(
            &admin_key,
            Method::POST,
            &format!("{V1}/permissions"),
            Some(json!({"user_id": bob, "path": "shared/reports", "permission": "readonly"})),
        )
        .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{:?}", granted.body);
    assert!(storage.join("shared/reports").is_dir());

    // bob's key paths are made where bob may make folders, and nowhere else.
    let bob_session = api.session("bob").await;
    for (path, made) in [
        ("bob/inbox", true),
        ("shared/reports/mine", false),
        ("elsewhere", false),
    ] {
        let r = api
            .call(
                &bob_session,
                Method::POST,
                &format!("{V1}/api_keys"),
                Some(json!({"name": format!("key {path}"), "path": path})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(storage.join(path).is_dir(), made, "{path}");
    }
}

#[tokio::test]
async fn a_user_cannot_mint_api_keys_without_end_but_an_admin_still_can() {
    let api = Api::new().await;
    let admin = api.user("root", true).await;
    let bob = api.user("bob", false).await;
    let (_, admin_key) = api
        .key(Some(admin), "admin key", PermissionSet::Full, None)
        .await;
    let (_, bob_key) = api.key(Some(bob), "bob 0", PermissionSet::Full, None).await;
    let cap = crate::accounts::MAX_KEYS_PER_USER;
    for n in 1..cap - 1 {
        api.key(Some(bob), &format!("bob {n}"), PermissionSet::Full, None)
            .await;
    }
    async fn make(api: &Api, who: &As, name: &str, owner: i64) -> Reply {
        let body = json!({"name": name, "user_id": owner});
        api.call(who, Method::POST, &format!("{V1}/api_keys"), Some(body))
            .await
    }
    let last = make(&api, &bob_key, "bob last", bob).await;
    assert_eq!(last.status, StatusCode::CREATED, "{:?}", last.body);
    let over = make(&api, &bob_key, "bob over", bob).await;
    assert!(over.status.is_client_error(), "{:?}", over.body);
    assert!(
        over.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at most"),
        "{:?}",
        over.body
    );
    let by_admin = make(&api, &admin_key, "bob by admin", bob).await;
    assert_eq!(by_admin.status, StatusCode::CREATED, "{:?}", by_admin.body);
    assert_eq!(api.core.store.count_keys_of(bob).await.unwrap(), cap + 1);
}

#[tokio::test]
async fn every_api_answer_is_never_cached_sniffed_or_framed() {
    let api = Api::new().await;
    for uri in [
        format!("{V1}/api_keys"),
        format!("{V1}/no/such/route"),
        "/healthz".to_owned(),
        "/metrics".to_owned(),
    ] {
        let req = Request::builder().uri(&uri).body(Body::empty()).unwrap();
        let response = api.router.clone().oneshot(req).await.unwrap();
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["cache-control"], "no-store", "{uri}");
        assert_eq!(h["x-frame-options"], "DENY", "{uri}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{uri}"
        );
    }
}
