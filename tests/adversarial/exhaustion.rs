//! Classes 5 and 6: one client cannot take the gateway from the others. While an abusive
//! client floods from 127.0.0.1, an innocent one from 127.0.0.2 keeps being served; slow and
//! idle clients are cut off after the configured timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clients::{Dav, blocking, exclusive, ftp_login_from, shared};
use crate::support::TestGateway;
use crate::support::net::OTHER_CLIENT;
use crate::support::sftp_client;

/// Descriptors open in this process (the gateway runs in it); `None` when even listing them
/// fails for want of a descriptor.
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024)
}

/// The innocent client, from 127.0.0.2: SFTP, FTP and WebDAV each do a round trip.
async fn innocent_client_is_served(gw: &TestGateway) -> Vec<String> {
    let mut failures = Vec::new();
    let sftp = tokio::time::timeout(Duration::from_secs(15), async {
        let s = sftp_client::try_login_from(gw.addr("sftp"), OTHER_CLIENT, "bea", "bea-password")
            .await
            .ok_or("login failed")?;
        crate::clients::sftp::put(&s, "/bea/sftp.txt", b"sftp")
            .await
            .map_err(|_| "put failed")?;
        crate::clients::sftp::get(&s, "/bea/sftp.txt")
            .await
            .map_err(|_| "get failed")?;
        Ok::<_, &str>(())
    })
    .await;
    match sftp {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(format!("SFTP from 127.0.0.2: {e}")),
        Err(_) => failures.push("SFTP from 127.0.0.2: timed out".into()),
    }
    let addr = gw.addr("ftp");
    let ftp = tokio::time::timeout(
        Duration::from_secs(15),
        blocking(move || {
            let mut ftp = ftp_login_from(addr, OTHER_CLIENT, "bea", "bea-password")?;
            ftp.put_file("/bea/ftp.txt", &mut std::io::Cursor::new(b"ftp".to_vec()))
                .map_err(|e| e.to_string())?;
            let _ = ftp.quit();
            Ok::<_, String>(())
        }),
    )
    .await;
    match ftp {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failures.push(format!("FTP from 127.0.0.2: {e}")),
        Err(_) => failures.push("FTP from 127.0.0.2: timed out".into()),
    }
    let mut dav = Dav::new(gw, "bea", "bea-password");
    dav.http = reqwest::Client::builder()
        .local_address(OTHER_CLIENT)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    match dav.try_call("PUT", "/bea/dav.txt", &[], "dav").await {
        Ok(r) if r.status.is_success() => {}
        Ok(r) => failures.push(format!("WebDAV from 127.0.0.2: {}", r.status)),
        Err(e) => failures.push(format!("WebDAV from 127.0.0.2: {e}")),
    }
    failures
}

#[tokio::test]
async fn an_sftp_channel_and_handle_flood_does_not_stop_a_second_client() {
    // Runs alone: the flood may use most of this process's descriptors.
    let _alone = exclusive().await;
    let gw = TestGateway::start().await;
    gw.user("mal", "mal-password", &[("/mal", Full)]).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    gw.write("mal/f.txt", b"x").await;
    let before = open_fds();
    let limit = fd_limit();

    let mut ssh = sftp_client::connect(gw.addr("sftp")).await;
    assert!(
        ssh.authenticate_password("mal", "mal-password")
            .await
            .unwrap()
            .success()
    );
    let ssh = Arc::new(ssh);
    let handles = Arc::new(AtomicUsize::new(0));
    let mut sessions: Vec<Arc<RawSftpSession>> = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..100 {
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
        let opened = tokio::time::timeout(Duration::from_secs(2), async {
            let channel = ssh.channel_open_session().await.ok()?;
            channel.request_subsystem(true, "sftp").await.ok()?;
            let raw = RawSftpSession::new(channel.into_stream());
            raw.set_timeout(5);
            raw.init().await.ok()?;
            Some(Arc::new(raw))
        })
        .await;
        let Ok(Some(raw)) = opened else { break };
        sessions.push(raw.clone());
        let handles = handles.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let batch = (0..50)
                    .map(|_| raw.open("/mal/f.txt", OpenFlags::READ, FileAttributes::default()));
                let results = futures_util::future::join_all(batch).await;
                let ok = results.iter().filter(|r| r.is_ok()).count();
                handles.fetch_add(ok, Ordering::Relaxed);
                if ok < 50 {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let during = open_fds();
    let channels = sessions.len();
    let held = handles.load(Ordering::Relaxed);
    let failures = innocent_client_is_served(&gw).await;

    drop(sessions);
    let _ = ssh
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    gw.stop().await;
    println!(
        "flood: {channels} channels, {held} handles, descriptors {before:?} → {during:?} of {limit}"
    );
    assert!(
        failures.is_empty(),
        "while one client held {channels} channels and {held} handles: {failures:?}"
    );
    assert!(
        during.is_some_and(|n| n < limit * 9 / 10),
        "one SFTP connection drove the process to {during:?} of {limit} descriptors \
         ({channels} channels, {held} handles)"
    );
}

/// Reads until the server closes the connection; true when it did before `deadline`.
async fn closed_by(mut stream: TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn tune_short(c: &mut filegate::config::Config) {
    c.limits.handshake_timeout_seconds = 2;
    c.limits.login_timeout_seconds = 2;
    c.limits.max_connections_per_address = 1000;
}

#[tokio::test]
async fn half_sent_http_requests_are_closed_after_the_header_timeout() {
    let _shared = shared().await;
    let gw = TestGateway::start_with(tune_short).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    let mut slow = Vec::new();
    for listener in ["webdav", "api"] {
        for _ in 0..100 {
            let mut stream = TcpStream::connect(gw.addr(listener)).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await
                .unwrap();
            slow.push((listener, stream));
        }
    }
    // handshake_timeout 2 s; allow generous slack for a loaded machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let results =
        futures_util::future::join_all(slow.into_iter().map(|(listener, stream)| async move {
            (listener, closed_by(stream, deadline).await)
        }))
        .await;
    let open_webdav = results.iter().filter(|(l, c)| *l == "webdav" && !c).count();
    let open_api = results.iter().filter(|(l, c)| *l == "api" && !c).count();
    let dav = Dav::new(&gw, "bea", "bea-password");
    assert_eq!(
        dav.status("PUT", "/bea/after.txt", &[], "ok")
            .await
            .as_u16(),
        201,
        "a normal client is served afterwards"
    );
    gw.stop().await;
    assert_eq!(
        (open_webdav, open_api),
        (0, 0),
        "half-sent requests still open 10 s after a 2 s header timeout (webdav, api)"
    );
}

#[tokio::test]
async fn idle_unauthenticated_ftp_connections_are_closed_after_the_login_timeout() {
    let _shared = shared().await;
    let gw = TestGateway::start_with(tune_short).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(gw.addr("ftp")).await.unwrap();
        let mut greeting = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut greeting)).await;
        idle.push(stream);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let results =
        futures_util::future::join_all(idle.into_iter().map(|s| closed_by(s, deadline))).await;
    let still_open = results.iter().filter(|c| !**c).count();
    let addr = gw.addr("ftp");
    let works =
        blocking(move || crate::clients::ftp_login(addr, "bea", "bea-password").is_ok()).await;
    gw.stop().await;
    assert!(works, "a normal FTP client is served afterwards");
    assert_eq!(
        still_open, 0,
        "idle unauthenticated FTP connections still open 10 s after a 2 s login timeout"
    );
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_on_every_protocol() {
    let _shared = shared().await;
    let gw = TestGateway::start_with(|c| {
        c.limits.max_connections_per_address = 20;
        c.limits.handshake_timeout_seconds = 60;
        c.limits.login_timeout_seconds = 60;
    })
    .await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    let mut held = Vec::new();
    for listener in ["sftp", "ftp", "webdav", "api"] {
        for _ in 0..30 {
            if let Ok(stream) = TcpStream::connect(gw.addr(listener)).await {
                held.push((listener, stream));
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let results =
        futures_util::future::join_all(held.into_iter().map(|(listener, stream)| async move {
            (listener, closed_by(stream, deadline).await)
        }))
        .await;
    let open: Vec<&str> = results
        .iter()
        .filter(|(_, closed)| !closed)
        .map(|(l, _)| *l)
        .collect();
    let failures = innocent_client_is_served(&gw).await;
    gw.stop().await;
    assert!(
        open.len() <= 20,
        "{} connections from one address stay open with a cap of 20 (all protocols \
         together): {open:?}",
        open.len()
    );
    assert!(
        failures.is_empty(),
        "the client from 127.0.0.2: {failures:?}"
    );
}

/// Issue 12: a flood of audited operations while the database is unreachable. The audit
/// queue (8 here) is the only memory records take — past it, records go to the local journal
/// — nothing is dropped, every acknowledged upload has exactly one record once the database
/// is back, and the flooding client is not refused for the outage. Needs PostgreSQL (to cut
/// it); without `FILEGATE_TEST_POSTGRES_URL` it says so and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_flood_during_a_store_outage_stays_bounded_and_loses_nothing() {
    let Some(db) = filegate::test_support::TestDb::postgres().await else {
        eprintln!(
            "note: FILEGATE_TEST_POSTGRES_URL unset: an_audit_flood_during_a_store_outage_stays_bounded_and_loses_nothing not run"
        );
        return;
    };
    let url = db.url.clone();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest.split_once('@').unwrap();
    let (host, database) = rest.split_once('/').unwrap();
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(host)
        .unwrap()
        .next()
        .unwrap();
    let proxy = crate::support::tcp_proxy::TcpProxy::start(upstream).await;
    let proxied = format!("{scheme}://{auth}@{}/{database}", proxy.addr);
    let gw = TestGateway::start_with(move |c| {
        c.server.database_url = proxied;
        c.audit.queue = 8;
        c.audit.batch = 4;
        c.audit.store_timeout_ms = 1000;
    })
    .await;
    gw.user("flood", "flood-password", &[("/flood", Full)])
        .await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(
            sftp_client::login(gw.addr("sftp"), "flood", "flood-password")
                .await
                .unwrap(),
        );
    }
    proxy.cut();
    let audit = gw.gateway.core.audit.clone();
    let max_backlog = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (audit, max_backlog, sampling) = (audit.clone(), max_backlog.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                max_backlog.fetch_max(audit.backlog(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut flood = Vec::new();
    for (s, sftp) in sessions.into_iter().enumerate() {
        flood.push(tokio::spawn(async move {
            let ok = russh_sftp::protocol::StatusCode::Ok;
            let mut uploaded = Vec::new();
            for n in 0..40 {
                sftp.list("/flood").await.unwrap();
                if n % 8 == 0 {
                    let path = format!("/flood/s{s}-{n}.txt");
                    assert_eq!(sftp.put(&path, b"x").await, ok, "{path}");
                    uploaded.push(path);
                }
            }
            uploaded
        }));
    }
    let mut uploaded = Vec::new();
    for task in flood {
        uploaded.extend(task.await.unwrap());
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let stats = audit.stats();
    assert!(
        max_backlog.load(Ordering::Relaxed) <= 8,
        "only the queue holds records in memory: {stats:?}"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.journal_records >= 6 * 40, "{stats:?}");

    proxy.restore();
    let mut replayed = false;
    for _ in 0..600 {
        let stats = audit.stats();
        if stats.journal_records == 0 && stats.backlog == 0 {
            replayed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        replayed,
        "journal replayed once the store is back: {:?}",
        audit.stats()
    );
    gw.stop().await;
    let records = db
        .store
        .read_audit(&filegate::store::AuditQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let listings = records
        .iter()
        .filter(|r| r.action == "list" && r.username.as_deref() == Some("flood"))
        .count();
    assert_eq!(listings, 6 * 40, "every listing recorded once");
    for path in &uploaded {
        let n = records
            .iter()
            .filter(|r| r.action == "create" && r.result == "ok" && r.path.as_deref() == Some(path))
            .count();
        assert_eq!(n, 1, "one record for {path}");
    }
    db.drop().await;
}

#[tokio::test]
async fn many_overlapping_ranges_send_the_file_once_not_once_per_range() {
    // `Range: bytes=0-,0-,0-,…` asked a 1 MB file 2 500 times over (a 2.5 GB answer); a
    // request for more than one range now gets the whole file once (200), as S3 answers.
    let _gate = shared().await;
    let gw = TestGateway::start().await;
    gw.user("mira", "mira-password", &[("/mira", Full)]).await;
    let body = vec![7u8; 1_000_000];
    gw.write("mira/f.bin", &body).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/mira/f.bin", gw.addr("webdav"));
    let ranges = format!("bytes={}", vec!["0-"; 2500].join(","));
    let response = http
        .get(&url)
        .basic_auth("mira", Some("mira-password"))
        .header("Range", ranges)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len(), body.len());
    // One range still works as before.
    let one = http
        .get(&url)
        .basic_auth("mira", Some("mira-password"))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), reqwest::StatusCode::PARTIAL_CONTENT);
    assert_eq!(one.bytes().await.unwrap().len(), 10);
    gw.stop().await;
}

/// Stalled HTTP requests that hold every slot of an address: WebDAV PUTs whose client sends
/// half the body then nothing, API requests whose JSON body never ends. While they stall the
/// address is at its cap (a further connection is refused); after the transfer idle timeout
/// every one of them is cut, no partial file is left, and the address is served again.
#[tokio::test]
async fn stalled_http_uploads_holding_every_slot_of_an_address_are_cut_after_the_transfer_idle_timeout()
 {
    let _shared = shared().await;
    const T: Duration = Duration::from_secs(2);
    let gw = TestGateway::start_with(|c| {
        c.limits.max_connections_per_address = 8;
        c.limits.transfer_idle_timeout_seconds = T.as_secs();
    })
    .await;
    gw.user("mal", "mal-password", &[("/mal", Full)]).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("mal:mal-password");
    let mut stalled = Vec::new();
    for i in 0..8 {
        let (listener, head, body) = if i % 2 == 0 {
            (
                "webdav",
                format!(
                    "PUT /mal/stall-{i}.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
                     Content-Length: 1000000\r\n\r\n"
                ),
                vec![b'm'; 500_000],
            )
        } else {
            (
                "api",
                "POST /api/rest/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n"
                    .to_owned(),
                b"{\"username\": \"mal\", \"password\": \"".to_vec(),
            )
        };
        let mut stream = TcpStream::connect(gw.addr(listener)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        stalled.push(stream);
    }
    let since = Instant::now();
    let ip = "127.0.0.1".parse().unwrap();
    while gw.gateway.core.gate.open(ip).1 != 8 {
        assert!(
            since.elapsed() < T / 2,
            "the stalled requests hold every slot: {:?}",
            gw.gateway.core.gate.open(ip)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = TcpStream::connect(gw.addr("webdav")).await.unwrap();
    assert!(
        closed_by(refused, tokio::time::Instant::now() + T / 2).await,
        "a ninth connection from the address is refused while they stall"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut first_cut = None;
    for stream in stalled {
        assert!(
            closed_by(stream, deadline).await,
            "a stalled request still open after 20 s"
        );
        first_cut.get_or_insert(since.elapsed());
    }
    let first_cut = first_cut.unwrap_or_default();
    assert!(
        first_cut >= T / 2,
        "cut after {first_cut:?}, before the timeout ({T:?})"
    );
    while gw.gateway.core.gate.open(ip).1 != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = gw.stored().list("mal").await;
    assert!(listed.is_empty(), "partial uploads left behind: {listed:?}");
    let dav = Dav::new(&gw, "mal", "mal-password");
    assert_eq!(
        dav.status("PUT", "/mal/stall-0.bin", &[], "whole")
            .await
            .as_u16(),
        201,
        "the address is served again"
    );
    gw.stop().await;
}

/// Writes `data` to `path` over SFTP in 32 KiB writes, 16 in flight; closes the file unless
/// `keep_open` (then the handle is returned, the upload left in progress).
async fn sftp_upload(
    s: &sftp_client::Sftp,
    path: &str,
    data: &[u8],
    keep_open: bool,
) -> Result<Option<String>, String> {
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let handle = s
        .raw
        .open(path, flags, FileAttributes::default())
        .await
        .map_err(|e| format!("open {path}: {e}"))?
        .handle;
    for (window, chunk) in data.chunks(16 * 32 * 1024).enumerate() {
        let writes = chunk.chunks(32 * 1024).enumerate().map(|(i, piece)| {
            let offset = (window * 16 * 32 * 1024 + i * 32 * 1024) as u64;
            s.raw.write(&handle, offset, piece.to_vec())
        });
        for result in futures_util::future::join_all(writes).await {
            result.map_err(|e| format!("write {path}: {e}"))?;
        }
    }
    if keep_open {
        return Ok(Some(handle));
    }
    s.raw
        .close(&handle)
        .await
        .map_err(|e| format!("close {path}: {e}"))?;
    Ok(None)
}

/// On S3 storage, one user's uploads that stall half way hold the bucket's whole transfer
/// memory (`storage.s3.transfer_memory_mib`): another user's upload is then staged on local
/// disk and sent at its close through the parts kept for sends, and their download streams
/// without read-ahead. Neither waits for the stalled uploads, and the bytes come back exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_s3_uploads_holding_the_transfer_memory_do_not_stop_another_users_transfers() {
    let test = "stalled_s3_uploads_holding_the_transfer_memory_do_not_stop_another_users_transfers";
    if crate::support::s3::moto().is_none() {
        eprintln!("SKIPPED {test}: no moto_server");
        return;
    }
    let gw = TestGateway::start_on(crate::support::Backend::S3, |c| {
        c.storage.s3.part_size_mib = 8;
        c.storage.s3.transfer_memory_mib = 32; // four parts
    })
    .await;
    gw.user("mal", "mal-password", &[("/mal", Full)]).await;
    gw.user("bea", "bea-password", &[("/bea", Full)]).await;
    const MIB: usize = 1024 * 1024;
    let pattern = |seed: u8, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 16) as u8)
            .collect()
    };
    // Mallory: four uploads of 10 MiB (more than a part each), left open and silent.
    let mal = sftp_client::login(gw.addr("sftp"), "mal", "mal-password")
        .await
        .expect("mal logs in");
    let mut stalled = Vec::new();
    for i in 0..4 {
        let handle = sftp_upload(
            &mal,
            &format!("/mal/stall-{i}.bin"),
            &pattern(1, 10 * MIB),
            true,
        )
        .await
        .expect("mal's upload starts")
        .expect("left open");
        stalled.push(handle);
    }
    let staging = gw
        .gateway
        .core
        .config
        .server
        .data_dir
        .join("uploads-in-progress");
    let staged_files = || crate::support::staged_files(&staging);
    // Bea, from another address: 20 MiB up and down, within a bound far below any timeout.
    let data = pattern(7, 20 * MIB);
    let bea = sftp_client::try_login_from(gw.addr("sftp"), OTHER_CLIENT, "bea", "bea-password")
        .await
        .expect("bea logs in");
    let bea_handle = tokio::time::timeout(
        Duration::from_secs(60),
        sftp_upload(&bea, "/bea/big.bin", &data, true),
    )
    .await
    .expect("bea's upload is not held up by mal's")
    .expect("bea's upload is accepted")
    .expect("left open");
    assert!(
        staged_files() > 0,
        "with the transfer memory taken, bea's upload is staged on local disk"
    );
    tokio::time::timeout(Duration::from_secs(60), bea.raw.close(&bea_handle))
        .await
        .expect("bea's upload is sent at close, not held up by mal's")
        .expect("bea's upload completes");
    let back = tokio::time::timeout(
        Duration::from_secs(60),
        crate::clients::sftp::get(&bea, "/bea/big.bin"),
    )
    .await
    .expect("bea's download is not held up by mal's")
    .expect("bea's download works");
    assert!(back == data, "bea's file comes back byte for byte");
    let failures = innocent_client_is_served(&gw).await;
    assert!(failures.is_empty(), "{failures:?}");
    // Mallory's uploads were never committed: nothing of them is visible, and when they go
    // away nothing is left staged.
    let listed = gw.stored().list("mal").await;
    assert!(
        listed.is_empty(),
        "mal's unfinished uploads are visible: {listed:?}"
    );
    drop(stalled);
    drop(mal);
    let deadline = Instant::now() + Duration::from_secs(20);
    while staged_files() > 0 {
        assert!(
            Instant::now() < deadline,
            "staged files left after mal went away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}
