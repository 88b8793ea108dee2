//! Classes 9 and 10: keys cannot extend or widen themselves; lockout counts one key however
//! its login is spelled; a banned client cannot flood the audit log; `/metrics` is not
//! public.

use std::time::Duration;

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use serde_json::json;

use crate::clients::{Api, Dav, shared};
use crate::support::TestGateway;

#[tokio::test]
async fn a_desktop_app_key_cannot_extend_its_own_expiry() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    let ida = gw.user("ida", "ida-password", &[("/ida", Full)]).await;
    let expires = filegate::model::now() + 3600;
    let (id, secret) = gw
        .key_expiring(
            Some(ida),
            "desk",
            None,
            PermissionSet::DesktopApp,
            Some(expires),
        )
        .await;
    let api = Api::new(&gw);
    for wanted in [json!("2099-01-01T00:00:00Z"), serde_json::Value::Null] {
        let (status, body) = api
            .call(
                "PATCH",
                "/api/rest/v1/api_key",
                Some(("X-FilesAPI-Key", &secret)),
                Some(json!({ "expires_at": wanted })),
            )
            .await;
        let record = gw.gateway.core.store.key_by_id(id).await.unwrap().unwrap();
        assert_eq!(
            record.expires_at,
            Some(expires),
            "PATCH /api_key expires_at={wanted} answered {status} {body} and the expiry moved"
        );
        if wanted.is_string() {
            assert!(
                !status.is_success(),
                "PATCH /api_key expires_at={wanted}: {status}"
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_user_cannot_widen_a_key_an_admin_made_for_them() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    gw.admin("boss", "boss-password").await;
    let joe = gw.user("joe", "joe-password", &[("/joe", Full)]).await;
    gw.mkdir("joe/sub").await;
    let api = Api::new(&gw);
    let boss = api.session("boss", "boss-password").await;
    let (status, made) = api
        .call(
            "POST",
            "/api/rest/v1/api_keys",
            Some(("X-FilesAPI-Auth", &boss)),
            Some(json!({
                "user_id": joe, "name": "for joe", "permission_set": "readonly", "path": "joe/sub"
            })),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{made}");
    let id = made["id"].as_i64().expect("key id");

    let me = api.session("joe", "joe-password").await;
    for change in [
        json!({"permission_set": "full"}),
        json!({"path": ""}),
        json!({"path": null}),
        json!({"path": "joe"}),
        json!({"permission_set": "full", "path": ""}),
    ] {
        let (status, body) = api
            .call(
                "PATCH",
                &format!("/api/rest/v1/api_keys/{id}"),
                Some(("X-FilesAPI-Auth", &me)),
                Some(change.clone()),
            )
            .await;
        let record = gw.gateway.core.store.key_by_id(id).await.unwrap().unwrap();
        assert_eq!(
            (record.permission_set.as_str(), record.path.as_deref()),
            ("readonly", Some("joe/sub")),
            "PATCH {change} by the key's user answered {status} {body} and widened the key"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn every_spelling_of_one_key_login_shares_one_lockout_counter() {
    let _shared = shared().await;
    let gw = TestGateway::start_with(|c| {
        c.auth.lockout.max_failures_per_login = 3;
        c.auth.lockout.max_failures_per_address = 1000;
        c.auth.lockout.ban_seconds = 600;
    })
    .await;
    let kim = gw.user("kim", "kim-password", &[("/kim", Full)]).await;
    let (id, secret) = gw.key(Some(kim), "kimkey", None, PermissionSet::Full).await;
    let wrong = "0".repeat(64);
    // Three failures, each under another spelling of the same key.
    for login in [
        format!("@api-0{id}"),
        format!("@API-00{id}"),
        "@api-kimkey".to_owned(),
    ] {
        let status = Dav::new(&gw, &login, &wrong)
            .status("PROPFIND", "/kim/", &[("Depth", "0")], "")
            .await;
        assert!(status.is_client_error(), "{login}: {status}");
    }
    let right = Dav::new(&gw, &format!("@api-{id}"), &secret)
        .status("PROPFIND", "/kim/", &[("Depth", "0")], "")
        .await;
    gw.stop().await;
    assert!(
        !right.is_success(),
        "after 3 failures under other spellings (limit 3), @api-{id} still signs in: {right}"
    );
}

#[tokio::test]
async fn a_banned_client_does_not_write_one_audit_row_per_request() {
    let _shared = shared().await;
    let gw = TestGateway::start_with(|c| {
        c.auth.lockout.max_failures_per_login = 1000;
        c.auth.lockout.max_failures_per_address = 3;
        c.auth.lockout.ban_seconds = 600;
    })
    .await;
    gw.user("lou", "lou-password", &[("/lou", Full)]).await;
    let bad = Dav::new(&gw, "lou", "wrong-password");
    for _ in 0..3 {
        bad.status("GET", "/lou/", &[], "").await;
    }
    let before = gw.audit().await.len();
    let banned = Dav::new(&gw, "lou", "lou-password");
    for _ in 0..200 {
        let _ = banned.try_call("GET", "/lou/", &[], "").await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows = gw.audit().await.len() - before;
    gw.stop().await;
    assert!(
        rows <= 20,
        "200 requests from a banned address wrote {rows} audit rows"
    );
}

#[tokio::test]
async fn a_symlink_in_storage_to_another_users_folder_is_not_followed() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    gw.user("amy", "amy-password", &[("/amy", Full)]).await;
    gw.user("bob", "bob-password", &[("/bob", Full)]).await;
    gw.write("bob/secret.txt", b"bob's secret").await;
    let root = gw.root();
    std::os::unix::fs::symlink("../bob", root.join("amy/dir-link")).unwrap();
    std::os::unix::fs::symlink("../bob/secret.txt", root.join("amy/file-link")).unwrap();
    std::os::unix::fs::symlink(root.join("bob"), root.join("amy/abs-link")).unwrap();

    let mut leaks = Vec::new();
    let sftp = crate::support::sftp_client::login(gw.addr("sftp"), "amy", "amy-password")
        .await
        .expect("login");
    for path in [
        "/amy/dir-link/secret.txt",
        "/amy/file-link",
        "/amy/abs-link/secret.txt",
    ] {
        if let Ok(data) = crate::clients::sftp::get(&sftp, path).await {
            leaks.push(format!(
                "SFTP GET {path}: {:?}",
                String::from_utf8_lossy(&data)
            ));
        }
    }
    let wrote = crate::clients::sftp::put(&sftp, "/amy/dir-link/planted.txt", b"planted").await;
    let dav = Dav::new(&gw, "amy", "amy-password");
    for path in ["/amy/dir-link/secret.txt", "/amy/file-link"] {
        let r = dav.call("GET", path, &[], "").await;
        if r.body.contains("bob's secret") {
            leaks.push(format!("WebDAV GET {path}"));
        }
    }
    let _ = dav
        .call("PUT", "/amy/abs-link/planted2.txt", &[], "planted")
        .await;
    let addr = gw.addr("ftp");
    let ftp_leak = crate::clients::blocking(move || {
        let mut ftp = crate::clients::ftp_login(addr, "amy", "amy-password").ok()?;
        ftp.retr_as_buffer("/amy/dir-link/secret.txt")
            .ok()
            .map(|c| c.into_inner())
    })
    .await;
    if let Some(data) = ftp_leak {
        leaks.push(format!("FTP RETR: {:?}", String::from_utf8_lossy(&data)));
    }
    let planted: Vec<_> = ["bob/planted.txt", "bob/planted2.txt"]
        .into_iter()
        .filter(|p| root.join(p).exists())
        .collect();
    gw.stop().await;
    assert!(
        leaks.is_empty() && planted.is_empty(),
        "symlinks were followed into another user's folder: read {leaks:?}, wrote {planted:?} \
         (SFTP put status {wrote:?})"
    );
}

#[tokio::test]
async fn metrics_refuse_anonymous_and_non_admin_callers() {
    let _shared = shared().await;
    let gw = TestGateway::start().await;
    let max = gw.user("max", "max-password", &[("/max", Full)]).await;
    let (_, secret) = gw.key(Some(max), "maxkey", None, PermissionSet::Full).await;
    let api = Api::new(&gw);
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", api.base);
    let anonymous = http.get(&url).send().await.unwrap().status();
    let user = http
        .get(&url)
        .header("X-FilesAPI-Key", &secret)
        .send()
        .await
        .unwrap()
        .status();
    gw.stop().await;
    assert!(
        !anonymous.is_success() && !user.is_success(),
        "/metrics on the API port: anonymous {anonymous}, non-admin key {user}"
    );
}
