//! Webhooks (issue 19) under attack: only site admins manage behaviors (a user's own full
//! key, a path-restricted or read-only admin key are refused); URLs aimed at the metadata
//! service, private ranges, loopback, other schemes or with credentials are refused; a rule
//! cannot forge the signature headers or smuggle header lines; bad input touches nothing.

use filegate::identity::GrantLevel::{Full, List};
use filegate::identity::PermissionSet;
use reqwest::StatusCode;
use serde_json::json;

use crate::clients::{Api, shared};
use crate::support::TestGateway;

fn webhook(url: &str) -> serde_json::Value {
    json!({"path": "", "behavior": "webhook", "value": {"urls": [url]}})
}

#[tokio::test]
async fn only_site_admins_manage_webhook_behaviors() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    let admin = gw.admin("boss", "boss-password").await;
    let (_, admin_key) = gw.key(Some(admin), "boss", None, PermissionSet::Full).await;
    let (_, admin_files_key) = gw
        .key(Some(admin), "boss files", None, PermissionSet::FilesOnly)
        .await;
    let (_, admin_path_key) = gw
        .key(Some(admin), "boss path", Some("pub"), PermissionSet::Full)
        .await;
    let user = gw.user("lou", "lou-password", &[("/pub", List)]).await;
    let (_, user_key) = gw.key(Some(user), "lou", None, PermissionSet::Full).await;
    let api = Api::new(&gw);
    let good = webhook("https://hooks.example.com/in");
    for key in [&user_key, &admin_files_key, &admin_path_key] {
        for (method, path, body) in [
            ("POST", "/api/rest/v1/behaviors", Some(good.clone())),
            ("GET", "/api/rest/v1/behaviors", None),
            ("GET", "/api/rest/v1/webhook_deliveries", None),
            (
                "POST",
                "/api/rest/v1/behaviors/webhook/test",
                Some(json!({"url": "https://hooks.example.com/"})),
            ),
        ] {
            let (status, body) = api
                .call(method, path, Some(("X-FilesAPI-Key", key)), body)
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        }
    }
    let (status, body) = api
        .call("POST", "/api/rest/v1/behaviors", None, Some(good.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        gw.gateway.core.store.behaviors().await.unwrap().is_empty(),
        "nothing was made"
    );
    let (status, made) = api
        .call(
            "POST",
            "/api/rest/v1/behaviors",
            Some(("X-FilesAPI-Key", &admin_key)),
            Some(good),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_i64().unwrap();
    for (method, body) in [
        ("PATCH", Some(json!({"name": "mine now"}))),
        ("DELETE", None),
        ("GET", None),
    ] {
        let (status, _) = api
            .call(
                method,
                &format!("/api/rest/v1/behaviors/{id}"),
                Some(("X-FilesAPI-Key", &user_key)),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }
    let row = gw.gateway.core.store.behavior(id).await.unwrap().unwrap();
    assert_eq!(row.name, None, "the user's PATCH changed nothing");
    gw.stop().await;
}

#[tokio::test]
async fn webhook_urls_and_headers_that_reach_inside_or_forge_signatures_are_refused() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    let admin = gw.admin("boss", "boss-password").await;
    let (_, key) = gw.key(Some(admin), "boss", None, PermissionSet::Full).await;
    gw.user("x", "x-password", &[("/x", Full)]).await;
    let api = Api::new(&gw);
    let mut refused = Vec::new();
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://127.0.0.1:2222/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://[::ffff:10.0.0.1]/",
        "http://100.64.0.1/",
        "gopher://example.com/",
        "file:///etc/shadow",
        "http://admin:secret@example.com/",
        "http://example.com/\r\nX-Injected: 1",
        "//example.com/",
    ] {
        refused.push((url, webhook(url)));
    }
    for (name, value) in [
        (
            "forged signature",
            json!({"urls": ["https://e.example/"], "headers": {"X-Filegate-Signature": "sha256=00"}}),
        ),
        (
            "forged timestamp",
            json!({"urls": ["https://e.example/"], "headers": {"x-filegate-timestamp": "1"}}),
        ),
        (
            "host header",
            json!({"urls": ["https://e.example/"], "headers": {"Host": "169.254.169.254"}}),
        ),
        (
            "header injection",
            json!({"urls": ["https://e.example/"], "headers": {"X-A": "1\r\nX-B: 2"}}),
        ),
        (
            "too many urls",
            json!({"urls": ["https://a.example/", "https://b.example/", "https://c.example/", "https://d.example/", "https://e.example/", "https://f.example/"]}),
        ),
        (
            "unknown trigger",
            json!({"urls": ["https://e.example/"], "triggers": ["login"]}),
        ),
        (
            "bad method",
            json!({"urls": ["https://e.example/"], "method": "DELETE"}),
        ),
        (
            "huge body",
            json!({"urls": ["https://e.example/"], "body": {"x": "y".repeat(20_000)}}),
        ),
    ] {
        refused.push((
            name,
            json!({"path": "x", "behavior": "webhook", "value": value}),
        ));
    }
    refused.push((
        "traversal",
        json!({"path": "../etc", "behavior": "webhook", "value": {"urls": ["https://e.example/"]}}),
    ));
    refused.push((
        "another behavior type",
        json!({"path": "x", "behavior": "remote_server_sync", "value": {}}),
    ));
    refused.push((
        "value not an object",
        json!({"path": "x", "behavior": "webhook", "value": 5}),
    ));
    for (what, body) in refused {
        let (status, answer) = api
            .call(
                "POST",
                "/api/rest/v1/behaviors",
                Some(("X-FilesAPI-Key", &key)),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert!(
            answer["type"].as_str().unwrap().starts_with("bad-request/"),
            "{answer}"
        );
    }
    assert!(
        gw.gateway.core.store.behaviors().await.unwrap().is_empty(),
        "nothing was made"
    );
    gw.stop().await;
}
