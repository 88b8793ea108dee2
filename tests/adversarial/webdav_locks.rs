//! Classes 1 and 2: WebDAV locks. A lock needs write rights, its timeout is capped, only its
//! owner (or an admin) unlocks it, and nothing a client does to the lock tree can take
//! WebDAV down for everyone else.

use filegate::identity::GrantLevel::{Full, List};
use reqwest::StatusCode;

use crate::clients::{Dav, LOCK_EXCLUSIVE};
use crate::support::TestGateway;

/// Whether `dav` can still do ordinary work in `dir` (every request gets an answer).
async fn still_works(dav: &Dav, dir: &str) -> Result<(), String> {
    let file = format!("{dir}/probe.txt");
    let steps: [(&str, String, &str, &[u16]); 5] = [
        ("PUT", file.clone(), "probe", &[201, 204]),
        ("PROPFIND", format!("{dir}/"), "", &[207]),
        ("MKCOL", format!("{dir}/sub"), "", &[201]),
        ("DELETE", format!("{dir}/sub/"), "", &[204]),
        ("DELETE", file, "", &[204]),
    ];
    for (method, path, body, ok) in steps {
        let headers: &[(&str, &str)] = if method == "PROPFIND" {
            &[("Depth", "1")]
        } else {
            &[]
        };
        match dav.try_call(method, &path, headers, body).await {
            Ok(r) if ok.contains(&r.status.as_u16()) => {}
            Ok(r) => return Err(format!("{method} {path}: {}", r.status)),
            Err(e) => return Err(format!("{method} {path}: connection failed: {e}")),
        }
    }
    Ok(())
}

fn token(reply: &crate::clients::Reply) -> Option<String> {
    reply
        .headers
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_list_only_user_locking_and_unlocking_the_root_does_not_break_webdav_for_others() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    gw.user("lister", "lister-password", &[("/", List)]).await;
    gw.user("worker", "worker-password", &[("/w", Full)]).await;
    let lister = Dav::new(&gw, "lister", "lister-password");
    let worker = Dav::new(&gw, "worker", "worker-password");
    still_works(&worker, "/w").await.expect("before the attack");

    for depth in ["0", "infinity"] {
        let lock = lister
            .try_call("LOCK", "/", &[("Depth", depth)], LOCK_EXCLUSIVE)
            .await;
        if let Ok(lock) = lock
            && let Some(token) = token(&lock)
        {
            let _ = lister
                .try_call("UNLOCK", "/", &[("Lock-Token", &token)], "")
                .await;
        }
    }
    still_works(&worker, "/w")
        .await
        .expect("another user's requests after LOCK/UNLOCK of / by a list-only user");
    let again = Dav::new(&gw, "worker", "worker-password");
    still_works(&again, "/w")
        .await
        .expect("a new connection after the attack");

    // The same on the root by someone allowed to lock it (a site admin): the lock tree must
    // survive removing its root node, whatever the rights rules say.
    gw.admin("boss", "boss-password").await;
    let boss = Dav::new(&gw, "boss", "boss-password");
    let lock = boss
        .call(
            "LOCK",
            "/",
            &[("Depth", "0"), ("Timeout", "Second-60")],
            LOCK_EXCLUSIVE,
        )
        .await;
    if let Some(token) = token(&lock) {
        let _ = boss
            .try_call("UNLOCK", "/", &[("Lock-Token", &token)], "")
            .await;
    }
    still_works(&Dav::new(&gw, "worker", "worker-password"), "/w")
        .await
        .expect("another user's requests after an admin's LOCK/UNLOCK of /");
    still_works(&boss, "/w")
        .await
        .expect("the admin's own requests after LOCK/UNLOCK of /");
    gw.stop().await;
}

#[tokio::test]
async fn a_list_only_user_cannot_lock_anything_and_others_keep_writing() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    gw.user("lister", "lister-password", &[("/", List)]).await;
    gw.user("worker", "worker-password", &[("/w", Full)]).await;
    gw.write("w/doc.txt", b"doc").await;
    let lister = Dav::new(&gw, "lister", "lister-password");
    for (path, depth) in [("/", "infinity"), ("/w/", "infinity"), ("/w/doc.txt", "0")] {
        let lock = lister
            .call("LOCK", path, &[("Depth", depth)], LOCK_EXCLUSIVE)
            .await;
        assert!(
            !lock.status.is_success(),
            "LOCK {path} (Depth {depth}) by a list-only user: {}",
            lock.status
        );
    }
    let worker = Dav::new(&gw, "worker", "worker-password");
    assert_eq!(
        worker.status("PUT", "/w/doc.txt", &[], "changed").await,
        StatusCode::NO_CONTENT,
        "the worker's write is not blocked by a lock"
    );
    assert_eq!(gw.read("w/doc.txt").await.unwrap(), b"changed");
    gw.stop().await;
}

/// Seconds granted by a LOCK answer: the `D:timeout` of its lockdiscovery (or a `Timeout`
/// header); `None` for `Infinite` or garbage.
fn timeout_seconds(reply: &crate::clients::Reply) -> Option<u64> {
    let from_body = reply
        .body
        .split("timeout>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .map(str::to_owned);
    let from_header = || {
        reply
            .headers
            .get("timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let text = from_body.or_else(from_header)?;
    text.trim().strip_prefix("Second-")?.parse().ok()
}

#[tokio::test]
async fn lock_timeouts_are_capped_at_one_hour_by_default() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    gw.user("worker", "worker-password", &[("/w", Full)]).await;
    gw.write("w/a.txt", b"a").await;
    gw.write("w/b.txt", b"b").await;
    gw.write("w/c.txt", b"c").await;
    let dav = Dav::new(&gw, "worker", "worker-password");
    for (path, timeout) in [
        ("/w/a.txt", Some("Infinite")),
        ("/w/b.txt", None),
        ("/w/c.txt", Some("Second-4100000000")),
    ] {
        let headers: Vec<(&str, &str)> = timeout.map(|t| ("Timeout", t)).into_iter().collect();
        let lock = dav.call("LOCK", path, &headers, LOCK_EXCLUSIVE).await;
        assert_eq!(lock.status, StatusCode::OK, "LOCK {path}: {}", lock.body);
        let granted = timeout_seconds(&lock);
        assert!(
            granted.is_some_and(|s| s > 0 && s <= 3600),
            "LOCK {path} with Timeout {timeout:?} was granted {granted:?}: {}",
            lock.body
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn only_the_lock_owner_or_an_admin_can_unlock() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    gw.user("ann", "ann-password", &[("/shared", Full)]).await;
    gw.user("ben", "ben-password", &[("/shared", Full)]).await;
    gw.admin("boss", "boss-password").await;
    gw.write("shared/doc.txt", b"doc").await;
    let ann = Dav::new(&gw, "ann", "ann-password");
    let ben = Dav::new(&gw, "ben", "ben-password");
    let lock = ann
        .call(
            "LOCK",
            "/shared/doc.txt",
            &[("Timeout", "Second-600")],
            LOCK_EXCLUSIVE,
        )
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let first = token(&lock).expect("a lock token");

    // Ben can see the token (lockdiscovery) and tries to lift the lock with it.
    let stolen = ben
        .call("UNLOCK", "/shared/doc.txt", &[("Lock-Token", &first)], "")
        .await;
    assert!(
        !stolen.status.is_success(),
        "UNLOCK by another user with the owner's token: {}",
        stolen.status
    );
    assert_eq!(
        ben.status("PUT", "/shared/doc.txt", &[], "ben was here")
            .await,
        StatusCode::LOCKED,
        "the lock still holds against Ben"
    );
    assert_eq!(gw.read("shared/doc.txt").await.unwrap(), b"doc");
    let boss = Dav::new(&gw, "boss", "boss-password");
    assert_eq!(
        boss.status("UNLOCK", "/shared/doc.txt", &[("Lock-Token", &first)], "")
            .await,
        StatusCode::NO_CONTENT,
        "a site admin may lift any lock"
    );
    assert_eq!(
        ben.status("PUT", "/shared/doc.txt", &[], "ben now").await,
        StatusCode::NO_CONTENT
    );

    let relock = ann
        .call(
            "LOCK",
            "/shared/doc.txt",
            &[("Timeout", "Second-600")],
            LOCK_EXCLUSIVE,
        )
        .await;
    let second = token(&relock).expect("a second lock token");
    assert_eq!(
        ann.status("UNLOCK", "/shared/doc.txt", &[("Lock-Token", &second)], "")
            .await,
        StatusCode::NO_CONTENT,
        "the owner unlocks"
    );
    gw.stop().await;
}

/// Two gateways (replicas) on one database (PostgreSQL when configured, else one SQLite
/// file) and one storage (a folder, or a bucket on S3), with `tune` applied to both.
async fn replicas(
    db: &filegate::test_support::TestDb,
    tune: impl Fn(&mut filegate::config::Config) + Copy,
) -> (TestGateway, TestGateway, crate::support::SharedStorage) {
    let storage = crate::support::SharedStorage::new();
    let both = |config: &mut filegate::config::Config| {
        config.server.database_url = db.url.clone();
        storage.apply(config);
        tune(config);
    };
    let a = TestGateway::start_with(both).await;
    let b = TestGateway::start_with(both).await;
    (a, b, storage)
}

async fn shared_db() -> filegate::test_support::TestDb {
    match filegate::test_support::TestDb::postgres().await {
        Some(db) => db,
        None => {
            eprintln!(
                "note: FILEGATE_TEST_POSTGRES_URL unset: replicas share one SQLite file instead"
            );
            filegate::test_support::TestDb::sqlite().await
        }
    }
}

#[tokio::test]
async fn a_lock_token_stolen_on_one_replica_is_of_no_use_on_another_and_caps_span_replicas() {
    let _shared = crate::clients::shared().await;
    let db = shared_db().await;
    let (a, b, _storage) = replicas(&db, |c| c.webdav.max_locks_per_principal = 2).await;
    a.user("ann", "ann-password", &[("/shared", Full)]).await;
    a.user("ben", "ben-password", &[("/shared", Full)]).await;
    a.write("shared/doc.txt", b"doc").await;
    a.write("shared/two.txt", b"two").await;
    a.write("shared/three.txt", b"three").await;
    let ann_a = Dav::new(&a, "ann", "ann-password");
    let ann_b = Dav::new(&b, "ann", "ann-password");
    let ben_b = Dav::new(&b, "ben", "ben-password");

    let lock = ann_a
        .call(
            "LOCK",
            "/shared/doc.txt",
            &[("Timeout", "Second-600")],
            LOCK_EXCLUSIVE,
        )
        .await;
    assert_eq!(lock.status, StatusCode::OK, "{}", lock.body);
    let stolen = token(&lock).expect("a lock token");
    let if_header = format!("({stolen})");

    // Ben learns the token (lockdiscovery on B shows it) and tries every use of it on B.
    assert_eq!(
        ben_b
            .status(
                "PUT",
                "/shared/doc.txt",
                &[("If", &if_header)],
                "ben was here"
            )
            .await,
        StatusCode::LOCKED,
        "a PUT on B with another principal's token"
    );
    assert_eq!(
        ben_b
            .status("DELETE", "/shared/doc.txt", &[("If", &if_header)], "")
            .await,
        StatusCode::LOCKED
    );
    let unlock = ben_b
        .call("UNLOCK", "/shared/doc.txt", &[("Lock-Token", &stolen)], "")
        .await;
    assert!(
        !unlock.status.is_success(),
        "UNLOCK on B with a stolen token: {}",
        unlock.status
    );
    let refresh = ben_b
        .call(
            "LOCK",
            "/shared/doc.txt",
            &[("If", &if_header), ("Timeout", "Second-600")],
            "",
        )
        .await;
    assert!(
        !refresh.status.is_success(),
        "a refresh on B with a stolen token: {}",
        refresh.status
    );
    assert_eq!(
        ben_b
            .status("LOCK", "/shared/doc.txt", &[], LOCK_EXCLUSIVE)
            .await,
        StatusCode::LOCKED,
        "a lock of his own on B"
    );
    assert_eq!(
        a.read("shared/doc.txt").await.unwrap(),
        b"doc",
        "nothing Ben did on B touched the file"
    );

    // The per-owner cap counts the locks of every replica.
    assert_eq!(
        ann_b
            .status("LOCK", "/shared/two.txt", &[], LOCK_EXCLUSIVE)
            .await,
        StatusCode::OK
    );
    assert_eq!(
        ann_a
            .status("LOCK", "/shared/three.txt", &[], LOCK_EXCLUSIVE)
            .await,
        StatusCode::INSUFFICIENT_STORAGE,
        "a third lock, on A, with two held across A and B"
    );
    assert_eq!(
        ann_b
            .status("UNLOCK", "/shared/doc.txt", &[("Lock-Token", &stolen)], "")
            .await,
        StatusCode::NO_CONTENT,
        "the owner unlocks on B what she locked on A"
    );
    assert_eq!(
        ben_b.status("PUT", "/shared/doc.txt", &[], "ben now").await,
        StatusCode::NO_CONTENT
    );
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

fn patch_many(names: std::ops::Range<usize>, tag: &str) -> String {
    let props: String = names
        .map(|i| format!("<Z:p{tag}{i}>{tag}</Z:p{tag}{i}>"))
        .collect();
    format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:flood"><D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"#
    )
}

#[tokio::test]
async fn a_property_flood_sent_to_two_replicas_at_once_stays_within_the_cap() {
    let _shared = crate::clients::shared().await;
    let db = shared_db().await;
    let (a, b, _storage) = replicas(&db, |_| {}).await;
    a.user("ann", "ann-password", &[("/", Full)]).await;
    a.write("f.txt", b"f").await;
    let on_a = Dav::new(&a, "ann", "ann-password");
    let on_b = Dav::new(&b, "ann", "ann-password");
    let (to_a, to_b) = (patch_many(0..40, "a"), patch_many(0..40, "b"));
    for round in 0..5 {
        let (ra, rb) = tokio::join!(
            on_a.call("PROPPATCH", "/f.txt", &[], &to_a),
            on_b.call("PROPPATCH", "/f.txt", &[], &to_b),
        );
        let stored = a.gateway.core.store.props_of("/f.txt").await.unwrap().len();
        assert!(
            stored <= 64,
            "round {round}: {stored} properties stored (A: {}, B: {})",
            ra.status,
            rb.status
        );
        let refused = [ra.status, rb.status]
            .iter()
            .filter(|s| **s == StatusCode::INSUFFICIENT_STORAGE)
            .count();
        assert!(
            refused == 1,
            "round {round}: 40 + 40 properties: one of the two is refused (A: {}, B: {})",
            ra.status,
            rb.status
        );
    }
    // Each replica still answers and the one that won keeps its properties.
    let stored = a.gateway.core.store.props_of("/f.txt").await.unwrap();
    assert_eq!(stored.len(), 40);
    assert!(
        on_b.status("PUT", "/f.txt", &[], "still works")
            .await
            .is_success()
    );
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

/// Red team, 2026-12-01: a PROPFIND, PROPPATCH or LOCK body nested a few thousand elements
/// deep (about 14 KB) overflowed the stack in dav-server's recursive XML parser and aborted
/// the whole process, every protocol with it. It is refused with 400 before parsing now.
#[tokio::test]
async fn a_deeply_nested_xml_body_is_refused_and_takes_nothing_down() {
    let _shared = crate::clients::shared().await;
    let gw = TestGateway::start().await;
    gw.user("lister", "lister-password", &[("/", List)]).await;
    gw.user("worker", "worker-password", &[("/w", Full)]).await;
    let lister = Dav::new(&gw, "lister", "lister-password");
    let worker = Dav::new(&gw, "worker", "worker-password");
    let nested = "<a>".repeat(3000) + &"</a>".repeat(3000);
    let bodies = [
        (
            "PROPFIND",
            format!(
                r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{nested}</D:prop></D:propfind>"#
            ),
        ),
        (
            "PROPPATCH",
            format!(
                r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>{nested}</D:prop></D:set></D:propertyupdate>"#
            ),
        ),
        (
            "LOCK",
            format!(
                r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{nested}</D:owner></D:lockinfo>"#
            ),
        ),
    ];
    for (method, body) in &bodies {
        for (dav, path) in [(&lister, "/"), (&worker, "/w/")] {
            let reply = dav
                .try_call(method, path, &[("Depth", "0")], body)
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
            assert_ne!(reply.status.as_u16() / 100, 2, "{method} {path} accepted");
            assert!(
                matches!(reply.status.as_u16(), 400 | 403),
                "{method} {path}: {}",
                reply.status
            );
        }
    }
    still_works(&worker, "/w").await.expect("after the attack");
}
