//! Classes 3 and 4: a drop-box key cannot change existing bytes, and narrowed rights reach
//! sessions that are already open.

use std::io::Cursor;
use std::time::{Duration, Instant};

use filegate::accounts::KeyUpdate;
use filegate::identity::GrantLevel::Full;
use filegate::identity::{PermissionSet, Principal};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

use crate::clients::{Api, blocking, ftp_login, sftp};
use crate::support::TestGateway;
use crate::support::sftp_client;

#[tokio::test]
async fn a_writeonly_key_cannot_overwrite_a_file_by_opening_it_r_plus_over_sftp() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    let dan = gw.user("dan", "dan-password", &[("/drop", Full)]).await;
    gw.write("drop/existing.txt", b"precious bytes").await;
    let (id, secret) = gw
        .key(Some(dan), "dropper", Some("drop"), PermissionSet::WriteOnly)
        .await;
    let s = sftp_client::login(gw.addr("sftp"), &format!("@api-{id}"), &secret)
        .await
        .expect("login");
    // r+ : READ|WRITE without TRUNC or CREAT, then write at offset 0.
    let opened = s
        .raw
        .open(
            "/drop/existing.txt",
            OpenFlags::READ | OpenFlags::WRITE,
            FileAttributes::default(),
        )
        .await;
    let mut statuses = Vec::new();
    if let Ok(handle) = opened {
        statuses.push(sftp::ok(
            s.raw.write(&handle.handle, 0, b"XXXXXXXX".to_vec()).await,
        ));
        statuses.push(sftp::ok(s.raw.close(&handle.handle).await));
    }
    // Write-only, no TRUNC.
    if let Ok(handle) = s
        .raw
        .open(
            "/drop/existing.txt",
            OpenFlags::WRITE,
            FileAttributes::default(),
        )
        .await
    {
        statuses.push(sftp::ok(
            s.raw.write(&handle.handle, 0, b"YYYYYYYY".to_vec()).await,
        ));
        let size = FileAttributes {
            size: Some(1),
            ..Default::default()
        };
        statuses.push(sftp::ok(s.raw.fsetstat(&handle.handle, size).await));
        statuses.push(sftp::ok(s.raw.close(&handle.handle).await));
    }
    assert_eq!(
        gw.read("drop/existing.txt").await.unwrap(),
        b"precious bytes",
        "a writeonly key changed an existing file (statuses {statuses:?})"
    );
    // A new file still works: the drop box is usable.
    assert_eq!(s.put("/drop/new.txt", b"new").await, StatusCode::Ok);
    gw.stop().await;
}

/// Waits until `refused()` is true, up to `limit`.
async fn within<F, Fut>(limit: Duration, mut refused: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if refused().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test]
async fn narrowing_a_key_from_full_to_readonly_reaches_its_live_sftp_and_ftp_sessions() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    let fay = gw.user("fay", "fay-password", &[("/fay", Full)]).await;
    let (id, secret) = gw.key(Some(fay), "live", None, PermissionSet::Full).await;
    let login = format!("@api-{id}");
    let sftp = sftp_client::login(gw.addr("sftp"), &login, &secret)
        .await
        .expect("sftp login");
    assert_eq!(sftp.put("/fay/before.txt", b"a").await, StatusCode::Ok);
    let addr = gw.addr("ftp");
    let (l, p) = (login.clone(), secret.clone());
    let mut ftp = blocking(move || ftp_login(addr, &l, &p).expect("ftp login")).await;

    gw.gateway
        .core
        .accounts
        .update_key(
            &Principal::cli(),
            id,
            KeyUpdate {
                permission_set: Some(PermissionSet::ReadOnly),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let mut n = 0;
    let sftp_refused = within(Duration::from_secs(5), || {
        n += 1;
        let path = format!("/fay/sftp-{n}.txt");
        let s = &sftp;
        async move { s.ssh.is_closed() || sftp::put(s, &path, b"after").await.is_err() }
    })
    .await;
    let ftp_refused = blocking(move || {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(5) {
            n += 1;
            let path = format!("/fay/ftp-{n}.txt");
            if ftp
                .put_file(&path, &mut Cursor::new(b"after".to_vec()))
                .is_err()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    })
    .await;
    let written: Vec<String> = std::fs::read_dir(gw.root().join("fay"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "before.txt")
        .collect();
    assert!(
        sftp_refused && ftp_refused,
        "5 s after full → readonly, live sessions still write (sftp refused: {sftp_refused}, \
         ftp refused: {ftp_refused}); files written: {written:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn removing_a_grant_reaches_a_live_sftp_session() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    let gil = gw.user("gil", "gil-password", &[("/gil", Full)]).await;
    gw.write("gil/doc.txt", b"doc").await;
    let s = sftp_client::login(gw.addr("sftp"), "gil", "gil-password")
        .await
        .expect("login");
    assert_eq!(s.get("/gil/doc.txt").await.unwrap(), b"doc");
    let grants = gw.gateway.core.store.grants_of(gil).await.unwrap();
    for grant in grants {
        gw.gateway
            .core
            .accounts
            .revoke_grant(&Principal::cli(), grant.id)
            .await
            .unwrap();
    }
    let refused = within(Duration::from_secs(5), || {
        let s = &s;
        async move { s.ssh.is_closed() || sftp::get(s, "/gil/doc.txt").await.is_err() }
    })
    .await;
    assert!(
        refused,
        "the session still reads 5 s after its grant was removed"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_api_sessions_made_with_the_old_one() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    let hal = gw.user("hal", "hal-password", &[("/hal", Full)]).await;
    let api = Api::new(&gw);
    let token = api.session("hal", "hal-password").await;
    let (status, _) = api
        .call(
            "GET",
            "/api/rest/v1/api_keys",
            Some(("X-FilesAPI-Auth", &token)),
            None,
        )
        .await;
    assert!(status.is_success(), "the session works: {status}");
    gw.gateway
        .core
        .accounts
        .update_user(
            &Principal::cli(),
            hal,
            filegate::store::UserChanges::default(),
            Some("a-brand-new-password"),
        )
        .await
        .unwrap();
    let (status, body) = api
        .call(
            "GET",
            "/api/rest/v1/api_keys",
            Some(("X-FilesAPI-Auth", &token)),
            None,
        )
        .await;
    assert_eq!(
        status.as_u16(),
        401,
        "a session token made with the old password still works: {body}"
    );
    gw.stop().await;
}
