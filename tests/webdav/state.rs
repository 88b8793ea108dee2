//! WebDAV state shared through the store and owned by the file layer: locks taken on one
//! replica are honoured by another (two gateways on one PostgreSQL database, and on one
//! SQLite file), and dead properties follow their file through SFTP renames and FTP deletes.

use std::time::Duration;

use filegate::audit::AuditRecord;
use filegate::identity::GrantLevel::{Full, ReadOnly};
use filegate::test_support::TestDb;
use reqwest::StatusCode;

use super::{Dav, FIND_COLOR, LOCK_EXCLUSIVE, PATCH_COLOR, lock_token};
use crate::support::{SharedStorage, TestGateway, sftp_client};

/// Two gateways (replicas) on the database at `url` and one storage (a folder, or a bucket
/// under `FILEGATE_TEST_STORAGE=s3`).
async fn replicas(url: &str) -> (TestGateway, TestGateway, SharedStorage) {
    let storage = SharedStorage::new();
    let tune = |config: &mut filegate::config::Config| {
        config.server.database_url = url.to_owned();
        storage.apply(config);
    };
    let a = TestGateway::start_with(tune).await;
    let b = TestGateway::start_with(tune).await;
    (a, b, storage)
}

async fn lock_on_a_blocks_b(db: TestDb) {
    let (a, b, _storage) = replicas(&db.url).await;
    a.user("alice", "alice-password", &[("/", Full)]).await;
    a.write("doc.txt", b"v1").await;
    let on_a = Dav::new(&a, "alice", "alice-password");
    let on_b = Dav::new(&b, "alice", "alice-password");

    let lock = on_a
        .call(
            "LOCK",
            "/doc.txt",
            &[("Timeout", "Second-600")],
            LOCK_EXCLUSIVE,
        )
        .await;
    assert_eq!(lock.status, StatusCode::OK, "LOCK on A: {}", lock.body);
    let token = format!("<{}>", lock_token(&lock));
    assert_eq!(
        on_b.status("PUT", "/doc.txt", &[], "from B without the token")
            .await,
        StatusCode::LOCKED,
        "a PUT on B to a path locked on A"
    );
    assert_eq!(
        on_b.status("DELETE", "/doc.txt", &[], "").await,
        StatusCode::LOCKED
    );
    let discovered = on_b
        .call(
            "PROPFIND",
            "/doc.txt",
            &[("Depth", "0")],
            r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#,
        )
        .await;
    assert!(
        discovered.body.contains(&lock_token(&lock)),
        "B shows A's lock: {}",
        discovered.body
    );
    let if_header = format!("({token})");
    assert!(
        on_b.status(
            "PUT",
            "/doc.txt",
            &[("If", &if_header)],
            "from B with A's token"
        )
        .await
        .is_success(),
        "the token from A lets the owner write on B"
    );
    assert_eq!(a.read("doc.txt").await.unwrap(), b"from B with A's token");
    // A second exclusive lock is refused on B while A's stands.
    assert_eq!(
        on_b.status("LOCK", "/doc.txt", &[], LOCK_EXCLUSIVE).await,
        StatusCode::LOCKED
    );
    assert_eq!(
        on_b.status("UNLOCK", "/doc.txt", &[("Lock-Token", &token)], "")
            .await,
        StatusCode::NO_CONTENT,
        "A's token unlocks on B"
    );
    assert!(
        on_a.status("PUT", "/doc.txt", &[], "A again, no token")
            .await
            .is_success(),
        "UNLOCK on B frees the file for A"
    );
    let again = on_a.call("LOCK", "/doc.txt", &[], LOCK_EXCLUSIVE).await;
    assert_eq!(again.status, StatusCode::OK, "a new lock once it is free");
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_lock_taken_on_one_replica_is_honoured_by_another_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => lock_on_a_blocks_b(db).await,
        None => eprintln!(
            "SKIPPED: FILEGATE_TEST_POSTGRES_URL unset: replicas on PostgreSQL not tested"
        ),
    }
}

#[tokio::test]
async fn a_lock_taken_on_one_replica_is_honoured_by_another_on_one_sqlite_file() {
    lock_on_a_blocks_b(TestDb::sqlite().await).await;
}

fn proppatches(records: &[AuditRecord], path: &str) -> usize {
    records
        .iter()
        .filter(|r| r.action == "update" && r.path.as_deref() == Some(path))
        .count()
}

async fn color_of(dav: &Dav, path: &str) -> bool {
    let found = dav
        .call("PROPFIND", path, &[("Depth", "0")], FIND_COLOR)
        .await;
    assert_eq!(
        found.status,
        StatusCode::MULTI_STATUS,
        "{path}: {}",
        found.body
    );
    found.body.contains("blue &amp; green")
}

#[tokio::test]
async fn dead_properties_follow_sftp_renames_and_go_with_an_ftp_delete() {
    // It renames a folder that holds a file: on S3 that needs `rename_folders` (otherwise
    // refused as not supported, which tests/sftp.rs's S3 run covers elsewhere).
    let gw = TestGateway::start_with(|c| c.storage.s3.rename_folders = true).await;
    gw.user("alice", "alice-password", &[("/", Full)]).await;
    gw.user("reader", "reader-password", &[("/", ReadOnly)])
        .await;
    gw.write("dir/f.txt", b"content").await;
    let dav = Dav::new(&gw, "alice", "alice-password");

    assert_eq!(
        dav.status("PROPPATCH", "/dir/f.txt", &[], PATCH_COLOR)
            .await,
        StatusCode::MULTI_STATUS
    );
    assert!(color_of(&dav, "/dir/f.txt").await);
    let reader = Dav::new(&gw, "reader", "reader-password");
    assert_eq!(
        reader
            .status("PROPPATCH", "/dir/f.txt", &[], PATCH_COLOR)
            .await,
        StatusCode::FORBIDDEN,
        "a read-only principal's PROPPATCH"
    );
    assert!(color_of(&reader, "/dir/f.txt").await, "but it reads them");
    // One record for the PROPPATCH that succeeded, one denied for the refused one.
    let mut records = Vec::new();
    for _ in 0..100 {
        records = gw.audit().await;
        if proppatches(&records, "/dir/f.txt") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut patches: Vec<_> = records
        .iter()
        .filter(|r| r.action == "update" && r.path.as_deref() == Some("/dir/f.txt"))
        .map(|r| (r.username.clone(), r.result.clone()))
        .collect();
    patches.sort();
    assert_eq!(
        patches,
        vec![
            (Some("alice".to_owned()), "ok".to_owned()),
            (Some("reader".to_owned()), "denied".to_owned()),
        ],
        "PROPPATCH is one audit record"
    );

    let sftp = sftp_client::login(gw.addr("sftp"), "alice", "alice-password")
        .await
        .expect("sftp login");
    sftp.raw.rename("/dir/f.txt", "/dir/g.txt").await.unwrap();
    assert!(color_of(&dav, "/dir/g.txt").await, "moved with the file");
    sftp.raw.rename("/dir", "/moved").await.unwrap();
    assert!(
        color_of(&dav, "/moved/g.txt").await,
        "moved with a parent folder"
    );
    drop(sftp);

    let addr = gw.addr("ftp");
    tokio::task::spawn_blocking(move || {
        let mut ftp = suppaftp::FtpStream::connect(addr).unwrap();
        ftp.login("alice", "alice-password").unwrap();
        ftp.rm("/moved/g.txt").unwrap();
        let _ = ftp.quit();
    })
    .await
    .unwrap();
    assert!(
        gw.gateway
            .core
            .store
            .props_of("/moved/g.txt")
            .await
            .unwrap()
            .is_empty(),
        "gone with an FTP DELE"
    );
    assert!(
        dav.status("PUT", "/moved/g.txt", &[], "new")
            .await
            .is_success()
    );
    assert!(
        !color_of(&dav, "/moved/g.txt").await,
        "a new file of the same name has none"
    );
    gw.stop().await;
}
