//! The one serve loop and the one session registry, over real sockets: connection floods
//! refused while a session goes on, graceful stop (SIGTERM to a real `filegate serve`) with
//! no audit record lost, a front-end that cannot start stopping the others, thousands of idle
//! SFTP sessions with exactly the revoked key's session ended, and `/sessions/active` on one
//! replica and across two replicas on PostgreSQL.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use filegate::test_support::{TempDir, TestDb};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use serde_json::Value;
use suppaftp::FtpStream;
use support::TestGateway;
use support::sftp_client::{self, Sftp};
use tokio::io::AsyncReadExt;

const BIN: &str = env!("CARGO_BIN_EXE_filegate");

/// Runs blocking client code (suppaftp) off the runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn ftp_login(addr: SocketAddr, user: &str, password: &str) -> FtpStream {
    let mut ftp = FtpStream::connect(addr).expect("ftp connect");
    ftp.login(user, password).expect("ftp login");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .unwrap();
    ftp
}

/// What a fresh connection hears first: its first line, or "" when closed at once.
async fn first_line(addr: SocketAddr) -> (tokio::net::TcpStream, String) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf))
        .await
        .expect("the server answers or closes")
        .unwrap_or(0);
    (socket, String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_per_address_limit_is_refused_while_open_sessions_keep_transferring() {
    let gw = TestGateway::start_with(|c| c.limits.max_connections_per_address = 6).await;
    gw.user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let sftp = sftp_client::login(gw.addr("sftp"), "alice", "alice-password")
        .await
        .unwrap();
    let ftp_addr = gw.addr("ftp");
    let mut ftp = blocking(move || ftp_login(ftp_addr, "alice", "alice-password")).await;

    // Two sessions open: four more connections from this address are admitted, whatever
    // the protocol; every later one is refused (FTP says 421; SSH is closed at once).
    let mut held = Vec::new();
    let mut ftp_answers = HashMap::<String, usize>::new();
    for _ in 0..20 {
        let (socket, line) = first_line(ftp_addr).await;
        *ftp_answers
            .entry(line[..3.min(line.len())].to_owned())
            .or_default() += 1;
        held.push(socket);
    }
    assert_eq!(ftp_answers.get("220"), Some(&4), "{ftp_answers:?}");
    assert_eq!(ftp_answers.get("421"), Some(&16), "{ftp_answers:?}");
    let mut ssh_refused = 0;
    for _ in 0..10 {
        let (socket, line) = first_line(gw.addr("sftp")).await;
        assert!(!line.starts_with("SSH-"), "admitted past the cap: {line}");
        ssh_refused += 1;
        held.push(socket);
    }
    assert_eq!(ssh_refused, 10);

    // The sessions already open go on transferring.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        sftp.put("/alice/over-sftp.bin", &payload).await,
        StatusCode::Ok
    );
    assert_eq!(sftp.get("/alice/over-sftp.bin").await.unwrap(), payload);
    let expected = payload.clone();
    let back = blocking(move || {
        ftp.put_file("/alice/over-ftp.bin", &mut Cursor::new(payload))
            .unwrap();
        let back = ftp
            .retr_as_buffer("/alice/over-ftp.bin")
            .unwrap()
            .into_inner();
        let _ = ftp.quit();
        back
    })
    .await;
    assert_eq!(back, expected);
    drop(held);
    gw.stop().await;
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_that_cannot_bind_stops_those_already_started() {
    let dir = TempDir::new("gw");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let sftp_port = free_port();
    let mut config = filegate::config::Config::default();
    config.server.data_dir = dir.path().join("data");
    config.sftp.listen = format!("127.0.0.1:{sftp_port}").parse().unwrap();
    config.ftp.listen = taken.local_addr().unwrap();
    config.webdav.listen = "127.0.0.1:0".parse().unwrap();
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.fill_defaults();
    config.validate().unwrap();
    let core = filegate::gateway::Core::open(config).await.unwrap();
    let err = match filegate::gateway::Gateway::start(core).await {
        Ok(_) => panic!("started with the FTP port taken"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("cannot bind FTP listener"), "{err}");
    // The SFTP listener started first was stopped: its port is free again.
    TcpListener::bind(("127.0.0.1", sftp_port)).expect("the SFTP port was released");
}

/// Writes a config for a `filegate serve` process; returns its path.
fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("filegate.toml");
    let data = dir.join("data");
    std::fs::write(
        &path,
        format!("[server]\ndata_dir = \"{}\"\n{body}", data.display()),
    )
    .unwrap();
    path
}

fn cli(config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "filegate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn serve_exits_non_zero_with_a_clear_message_when_a_port_is_taken() {
    let dir = TempDir::new("cli");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[sftp]\nlisten = \"127.0.0.1:0\"\n[ftp]\nlisten = \"{}\"\n[webdav]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
            taken.local_addr().unwrap()
        ),
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must fail: {stderr}");
    assert!(
        stderr.contains("cannot bind FTP listener"),
        "a clear reason: {stderr}"
    );
    assert!(
        stderr.contains("stopping the others"),
        "the started front-ends are stopped: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_twenty_uploads_loses_no_audit_record() {
    let dir = TempDir::new("term");
    let config = write_config(
        dir.path(),
        "shutdown_grace_seconds = 2\n[sftp]\nlisten = \"127.0.0.1:0\"\nmax_sessions_per_login = 64\n\
         [ftp]\nenabled = false\n[webdav]\nenabled = false\n[api]\nenabled = false\n",
    );
    cli(
        &config,
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-password\n"),
    );
    cli(&config, &["user", "grant", "alice", "/alice", "full"], None);
    std::fs::create_dir_all(dir.path().join("data/files/alice")).unwrap();

    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("FILEGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("serve logs its address").unwrap();
        if let Some((_, after)) = line.split_once("sftp listening on ") {
            break after.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    // Ten uploads finish before the signal; ten are still writing when it comes.
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(
            sftp_client::login(addr, "alice", "alice-password")
                .await
                .expect("signed in"),
        );
    }
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::channel(20);
    let mut uploads = Vec::new();
    for (i, sftp) in sessions.into_iter().enumerate() {
        let done = finished_tx.clone();
        let path = format!("/alice/upload-{i:02}.bin");
        uploads.push(tokio::spawn(async move {
            let long = i % 2 == 1;
            let ok = upload(&sftp, &path, long).await;
            if ok {
                let _ = done.send(path.clone()).await;
            }
            (path, ok)
        }));
    }
    drop(finished_tx);
    for _ in 0..10 {
        finished_rx.recv().await.expect("the short uploads finish");
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    let mut outcome = HashMap::new();
    for upload in uploads {
        let (path, ok) = upload.await.unwrap();
        outcome.insert(path, ok);
    }
    let log = log.join().unwrap();
    assert_eq!(
        outcome.values().filter(|ok| **ok).count(),
        10,
        "the long uploads were cut by the stop: {outcome:?}"
    );

    // Every upload has exactly one record: `ok` for those the client saw finish, `failed`
    // for those cut by the stop.
    let url = format!("sqlite://{}", dir.path().join("data/filegate.db").display());
    let store = filegate::store::Store::connect(&url).await.unwrap();
    let records = store
        .read_audit(&filegate::store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    for (path, ok) in &outcome {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.action == "create" && r.path.as_deref() == Some(path.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "{path}: {mine:?}\nlog: {log:#?}");
        assert_eq!(mine[0].result == "ok", *ok, "{path}: {:?}", mine[0]);
    }
}

/// Uploads to `path`: 64 KiB and close (short), or 32 KiB every 20 ms until the server
/// goes away (long). True when the server confirmed the upload.
async fn upload(sftp: &Sftp, path: &str, long: bool) -> bool {
    let Ok(handle) = sftp
        .raw
        .open(
            path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
            FileAttributes::default(),
        )
        .await
    else {
        return false;
    };
    let chunk = vec![7u8; 32 * 1024];
    let mut offset = 0u64;
    loop {
        if sftp
            .raw
            .write(&handle.handle, offset, chunk.clone())
            .await
            .is_err()
        {
            return false;
        }
        offset += chunk.len() as u64;
        if !long && offset >= 64 * 1024 {
            break;
        }
        if long {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sftp.raw.close(&handle.handle).await.is_ok()
}

/// The admin's view of `/sessions/active` on `api`.
async fn active(api: SocketAddr, key: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("http://{api}/api/rest/v1/sessions/active"))
        .header("X-FilesAPI-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

async fn end_session(api: SocketAddr, key: &str, id: &Value) -> u16 {
    reqwest::Client::new()
        .delete(format!("http://{api}/api/rest/v1/sessions/active/{id}"))
        .header("X-FilesAPI-Key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (bounded, generously) until `check` holds for the listing.
async fn listing_until(
    api: SocketAddr,
    key: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = active(api, key).await;
        if check(&list) {
            return list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never saw {what}: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn until_closed(ssh: &russh::client::Handle<sftp_client::Client>) -> Duration {
    let start = Instant::now();
    while !ssh.is_closed() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the session was never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_sessions_list_sftp_and_ftp_with_their_bytes_and_delete_ends_one() {
    let gw = TestGateway::start_with(|c| c.server.session_heartbeat_seconds = 1).await;
    let alice = gw
        .user("alice", "alice-password", &[("/alice", Full)])
        .await;
    let (_, admin_key) = gw.key(None, "ops", None, PermissionSet::Full).await;
    let (_, alice_key) = gw
        .key(Some(alice), "alice-own", None, PermissionSet::Full)
        .await;
    let api = gw.addr("api");
    let sftp = sftp_client::login(gw.addr("sftp"), "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(sftp.put("/alice/a.bin", &[1u8; 5000]).await, StatusCode::Ok);
    let ftp_addr = gw.addr("ftp");
    let ftp = blocking(move || {
        let mut ftp = ftp_login(ftp_addr, "alice", "alice-password");
        let back = ftp.retr_as_buffer("/alice/a.bin").unwrap().into_inner();
        assert_eq!(back.len(), 5000);
        ftp
    })
    .await;

    let list = listing_until(api, &admin_key, "both sessions with their bytes", |l| {
        l.iter()
            .any(|s| s["interface"] == "sftp" && s["bytes_received"] == 5000)
            && l.iter()
                .any(|s| s["interface"] == "ftp" && s["bytes_sent"] == 5000)
    })
    .await;
    assert_eq!(list.len(), 2, "{list:#?}");
    for s in &list {
        assert_eq!(s["username"], "alice");
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["created_at"].is_string());
    }

    // Not for other users.
    let listed_by_alice = reqwest::Client::new()
        .get(format!("http://{api}/api/rest/v1/sessions/active"))
        .header("X-FilesAPI-Key", &alice_key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed_by_alice.status(), 403);

    let ftp_id = list.iter().find(|s| s["interface"] == "ftp").unwrap()["id"].clone();
    assert_eq!(end_session(api, &admin_key, &ftp_id).await, 204);
    let still = blocking(move || {
        let mut ftp = ftp;
        // The control connection was shut: the next command fails.
        ftp.noop().is_ok()
    })
    .await;
    assert!(!still, "the FTP session was ended");
    listing_until(api, &admin_key, "the FTP session gone", |l| {
        l.len() == 1 && l[0]["interface"] == "sftp"
    })
    .await;
    assert_eq!(end_session(api, &admin_key, &ftp_id).await, 404);
    assert_eq!(end_session(api, &admin_key, &Value::from(12345)).await, 404);
    // The SFTP session goes on.
    assert_eq!(sftp.get("/alice/a.bin").await.unwrap().len(), 5000);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lists_and_ends_a_session_held_by_another_replica_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: FILEGATE_TEST_POSTGRES_URL unset: cross-replica session test NOT RUN");
        return;
    };
    let url = db.url.clone();
    let tune = |url: String| {
        move |c: &mut filegate::config::Config| {
            c.server.database_url = url;
            c.server.session_heartbeat_seconds = 1;
        }
    };
    let a = TestGateway::start_with(tune(url.clone())).await;
    let b = TestGateway::start_with(tune(url)).await;
    a.user("alice", "alice-password", &[("/alice", Full)]).await;
    let (_, admin_key) = a.key(None, "ops", None, PermissionSet::Full).await;
    let on_b = sftp_client::login(b.addr("sftp"), "alice", "alice-password")
        .await
        .unwrap();
    let b_replica = b.gateway.core.sessions.replica().to_owned();
    let list = listing_until(a.addr("api"), &admin_key, "B's session on A", |l| {
        l.iter().any(|s| s["replica"] == b_replica.as_str())
    })
    .await;
    let id = list
        .iter()
        .find(|s| s["replica"] == b_replica.as_str())
        .unwrap()["id"]
        .clone();
    assert_eq!(end_session(a.addr("api"), &admin_key, &id).await, 204);
    let took = until_closed(&on_b.ssh).await;
    eprintln!("B's session ended {took:?} after the DELETE on A");
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The spawned login hands back the client handle (which russh makes a future) on purpose.
#[allow(clippy::async_yields_async)]
async fn revoking_one_key_among_many_idle_sftp_sessions_ends_exactly_its_session() {
    let n: usize = std::env::var("FILEGATE_TEST_IDLE_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let gw = TestGateway::start_with(|c| {
        c.limits.max_connections = n + 100;
        c.limits.max_connections_per_address = n + 100;
    })
    .await;
    let owner = gw
        .user("fleet", "fleet-password", &[("/fleet", Full)])
        .await;
    let started = Instant::now();
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(
            gw.key(
                Some(owner),
                &format!("device-{i}"),
                None,
                PermissionSet::Full,
            )
            .await,
        );
    }
    eprintln!("{n} keys made in {:?}", started.elapsed());
    let started = Instant::now();
    let addr = gw.addr("sftp");
    let mut handles = Vec::with_capacity(n);
    for batch in keys.chunks(50) {
        let logins = batch.iter().map(|(id, secret)| {
            let (id, secret) = (*id, secret.clone());
            tokio::spawn(async move {
                let mut ssh = sftp_client::connect(addr).await;
                let ok = ssh
                    .authenticate_password(format!("@api-{id}"), secret)
                    .await
                    .unwrap()
                    .success();
                assert!(ok, "key {id} signs in");
                ssh
            })
        });
        for login in logins.collect::<Vec<_>>() {
            handles.push(login.await.unwrap());
        }
    }
    eprintln!("{n} SFTP sessions signed in in {:?}", started.elapsed());
    assert_eq!(gw.gateway.core.sessions.len(), n);

    let victim = n / 2;
    let revoked = Instant::now();
    gw.revoke(keys[victim].0).await;
    let took = until_closed(&handles[victim]).await;
    eprintln!("the revoked key's session ended {took:?} after the revocation");
    assert!(revoked.elapsed() >= took);
    assert_eq!(gw.gateway.core.sessions.len(), n - 1);
    let closed: Vec<usize> = handles
        .iter()
        .enumerate()
        .filter(|(_, h)| h.is_closed())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed, vec![victim], "only the revoked key's session ended");
    // A session of another key still works.
    let other = handles.swap_remove(0);
    let sftp = sftp_client::open_sftp(other).await;
    assert!(sftp.list("/").await.is_ok());
    drop(handles);
    gw.stop().await;
}
