//! Several replicas on one PostgreSQL database (and one storage: a shared folder, or an S3
//! bucket with no shared filesystem at all, each replica's data folder private): two real
//! filegate processes share keys, revocations, bans and one audit log; and the audit log
//! survives the database going away during activity. Needs `FILEGATE_TEST_POSTGRES_URL` (set
//! by `.ci/run`), and moto_server for the S3 variant; without them these tests print a note
//! and do nothing.

mod support;

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use filegate::test_support::{TempDir, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestGateway;
use support::serve_process::spawn_serve;
use support::sftp_client;
use support::tcp_proxy::TcpProxy;

const BIN: &str = env!("CARGO_BIN_EXE_filegate");

async fn postgres_or_note(test: &str) -> Option<TestDb> {
    support::crypto();
    let db = TestDb::postgres().await;
    if db.is_none() {
        eprintln!("note: FILEGATE_TEST_POSTGRES_URL unset: {test} not run");
    }
    db
}

/// One `filegate serve` process.
struct Replica {
    node: &'static str,
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Replica {
    /// Writes the replica's config (its own data folder, the shared database and storage:
    /// `storage` is its `[storage]` section) and returns its path.
    fn configure(dir: &Path, node: &str, db_url: &str, storage: &str, passive: &str) -> PathBuf {
        let data = dir.join(node);
        let config = format!(
            r#"[server]
data_dir = "{data}"
database_url = "{db_url}"
node_name = "{node}"

[auth.lockout]
max_failures_per_login = 3
max_failures_per_address = 1000
delay_step_ms = 0

[sftp]
listen = "127.0.0.1:0"
revocation_check_seconds = 1

[ftp]
listen = "127.0.0.1:0"
passive_ports = "{passive}"
revocation_check_seconds = 1

[webdav]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

{storage}
"#,
            data = data.display(),
        );
        let path = dir.join(format!("{node}.toml"));
        std::fs::write(&path, config).unwrap();
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

    /// Starts `serve` and waits until all four listeners have logged their addresses.
    fn start(node: &'static str, config: PathBuf) -> Replica {
        let (child, addrs) = spawn_serve(&config, &[], 4, node);
        Replica { node, child, addrs }
    }

    fn addr(&self, protocol: &str) -> SocketAddr {
        self.addrs[protocol]
    }

    fn url(&self, protocol: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(protocol))
    }

    /// Stops the process as a service manager would (SIGTERM) and checks it exits cleanly.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{} exits cleanly on SIGTERM: {status}",
            self.node
        );
    }
}

impl Replica {
    /// `kill -9`: no shutdown at all.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and checks the process ends cleanly before `limit` (a watchdog against a
    /// hang, far above the configured grace periods; not a timing measurement).
    fn terminate_within(mut self, limit: Duration) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exits cleanly: {status}", self.node);
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{} still running {limit:?} after SIGTERM",
                self.node
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The REST API of one replica, as the site admin (a site-wide key).
struct Api<'a> {
    replica: &'a Replica,
    key: &'a str,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        route: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(
                method,
                self.replica.url("api", &format!("/api/rest/v1{route}")),
            )
            .header("X-FilesAPI-Key", self.key);
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn dav_get(
    replica: &Replica,
    login: &str,
    password: &str,
    path: &str,
) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .get(replica.url("webdav", path))
        .basic_auth(login, Some(password))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Retries `check` until it holds or `within` has passed; returns the time it took.
async fn eventually<F: AsyncFnMut() -> bool>(within: Duration, mut check: F) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The `[storage]` section of a local folder.
fn folder(path: &Path) -> String {
    format!("[storage]\nurl = \"file://{}\"\n", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_keys_revocations_bans_and_one_audit_log() {
    let Some(db) =
        postgres_or_note("two_replicas_share_keys_revocations_bans_and_one_audit_log").await
    else {
        return;
    };
    let dir = TempDir::new("replicas");
    let storage = dir.path().join("files");
    std::fs::create_dir_all(storage.join("alice")).unwrap();
    two_replicas(db, dir, &folder(&storage), ["41000-41499", "41500-41999"]).await;
}

/// Replicas without a shared filesystem: both on one S3 bucket (moto) and PostgreSQL, each
/// with a private data folder; the same assertions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_s3_with_private_data_folders_share_keys_revocations_bans_and_one_audit_log()
 {
    let test = "two_replicas_on_s3_with_private_data_folders_share_keys_revocations_bans_and_one_audit_log";
    let Some(moto) = support::s3::moto() else {
        eprintln!("note: no moto_server: {test} not run");
        return;
    };
    let Some(db) = postgres_or_note(test).await else {
        return;
    };
    let dir = TempDir::new("replicas-s3");
    let storage = moto.toml(&moto.new_bucket("replicas"));
    // Passive ports of their own: the two variants run side by side.
    two_replicas(db, dir, &storage, ["43000-43499", "43500-43999"]).await;
}

/// Two replicas (each its own data folder under `dir`) on `db` and `storage` (a `[storage]`
/// section), FTP passive ports from `passive`: a key made on one signs in on the other,
/// revocations and bans cross over, one audit log.
async fn two_replicas(db: TestDb, dir: TempDir, storage: &str, passive: [&str; 2]) {
    let config_a = Replica::configure(dir.path(), "node-a", &db.url, storage, passive[0]);
    let config_b = Replica::configure(dir.path(), "node-b", &db.url, storage, passive[1]);

    Replica::cli(
        &config_a,
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-password-1\n"),
    );
    Replica::cli(
        &config_a,
        &["user", "grant", "alice", "/alice", "full"],
        None,
    );
    let ops: Value = serde_json::from_str(&Replica::cli(
        &config_b,
        &["key", "create", "--site-wide", "--name", "ops", "--json"],
        None,
    ))
    .unwrap();
    let ops_secret = ops["key"].as_str().unwrap().to_owned();
    let users: Value =
        serde_json::from_str(&Replica::cli(&config_a, &["user", "list", "--json"], None)).unwrap();
    let alice_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let a = Replica::start("node-a", config_a);
    let b = Replica::start("node-b", config_b);
    let api_a = Api {
        replica: &a,
        key: &ops_secret,
    };
    let api_b = Api {
        replica: &b,
        key: &ops_secret,
    };

    // A key made through A's API signs in on B over SFTP, FTP and WebDAV.
    let (status, key) = api_a
        .call(
            reqwest::Method::POST,
            "/api_keys",
            Some(json!({"user_id": alice_id, "name": "shared-key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (key_id, secret) = (
        key["id"].as_i64().unwrap(),
        key["key"].as_str().unwrap().to_owned(),
    );
    let login = format!("@api-{key_id}");

    let on_b = sftp_client::login(b.addr("sftp"), &login, &secret)
        .await
        .expect("SFTP on B");
    assert_eq!(
        on_b.put("/alice/via-b-sftp.txt", b"sftp on b").await,
        russh_sftp::protocol::StatusCode::Ok
    );
    let (ftp_addr, ftp_login, ftp_secret) = (b.addr("ftp"), login.clone(), secret.clone());
    let listed = tokio::task::spawn_blocking(move || {
        let mut ftp = suppaftp::FtpStream::connect(ftp_addr).unwrap();
        ftp.login(&ftp_login, &ftp_secret).unwrap();
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .unwrap();
        ftp.cwd("/alice").unwrap();
        ftp.put_file("via-b-ftp.txt", &mut Cursor::new(b"ftp on b".to_vec()))
            .unwrap();
        let names = ftp.nlst(None).unwrap();
        let _ = ftp.quit();
        names
    })
    .await
    .unwrap();
    assert!(
        listed.iter().any(|n| n.ends_with("via-b-sftp.txt")),
        "{listed:?}"
    );
    assert_eq!(
        dav_get(&b, &login, &secret, "/alice/via-b-ftp.txt").await,
        (StatusCode::OK, "ftp on b".into())
    );
    assert_eq!(
        dav_get(&a, &login, &secret, "/alice/via-b-sftp.txt").await,
        (StatusCode::OK, "sftp on b".into())
    );

    // Revoked through B: A refuses the next WebDAV request and ends A's SFTP session.
    let on_a = sftp_client::login(a.addr("sftp"), &login, &secret)
        .await
        .expect("SFTP on A");
    assert!(on_a.list("/alice").await.is_ok());
    let (status, _) = api_b
        .call(
            reqwest::Method::DELETE,
            &format!("/api_keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        dav_get(&a, &login, &secret, "/alice/via-b-sftp.txt")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let ended = eventually(Duration::from_secs(5), async || on_a.ssh.is_closed()).await;
    assert!(
        ended.is_some(),
        "A's SFTP session still open 5 s after B revoked its key"
    );
    assert!(
        sftp_client::login(a.addr("sftp"), &login, &secret)
            .await
            .is_none()
    );

    // Failed logins on A until the (address, login) pair is banned; B refuses it too.
    assert_eq!(
        dav_get(&b, "alice", "alice-password-1", "/alice/via-b-ftp.txt")
            .await
            .0,
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            dav_get(&a, "alice", "wrong-password", "/alice/").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        dav_get(&a, "alice", "alice-password-1", "/alice/").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let banned_on_b = eventually(Duration::from_secs(5), async || {
        dav_get(&b, "alice", "alice-password-1", "/alice/").await.0 == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
    assert!(
        banned_on_b.is_some(),
        "B never refused the login banned on A"
    );
    assert!(
        sftp_client::login(b.addr("sftp"), "alice", "alice-password-1")
            .await
            .is_none()
    );
    let (status, _) = api_b.call(reqwest::Method::GET, "/api_keys", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "others from the same address are not banned"
    );

    // One log, both node names, every action above.
    let history = async || {
        api_a
            .call(reqwest::Method::GET, "/history?per_page=10000", None)
            .await
            .1
    };
    let wanted: [(&str, &str, &str); 7] = [
        ("node-a", "api_key_create", "ok"),
        ("node-b", "login", "ok"),  // the key's SFTP and FTP logins on B
        ("node-b", "create", "ok"), // its uploads on B
        ("node-b", "api_key_delete", "ok"),
        ("node-a", "login", "denied"), // the wrong passwords and the revoked key on A
        ("node-b", "login", "denied"), // the ban on B
        ("node-a", "read", "ok"),      // the WebDAV download on A
    ];
    let found = eventually(Duration::from_secs(10), async || {
        let records = history().await;
        let records = records.as_array().cloned().unwrap_or_default();
        wanted.iter().all(|(node, action, result)| {
            records
                .iter()
                .any(|r| r["node"] == *node && r["action"] == *action && r["result"] == *result)
        })
    })
    .await;
    let records = history().await;
    assert!(found.is_some(), "missing from /history: {records:#}");
    let key_records: Vec<&Value> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key_id"] == key_id && r["action"] == "create")
        .collect();
    assert!(
        key_records
            .iter()
            .all(|r| r["user_id"] == alice_id && r["username"] == "alice"),
        "the key's actions are logged as its owner: {key_records:#?}"
    );
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["node"] == "node-b" && r["failure_type"] == "locked out")
    );

    b.stop();
    a.stop();
    db.drop().await;
}

/// `host:port` of a `postgres://user@host:port/db` URL, and the URL pointing at `addr`.
fn through(url: &str, addr: SocketAddr) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest
        .split_once('@')
        .map(|(a, r)| (format!("{a}@"), r))
        .unwrap_or((String::new(), rest));
    let (host, path) = rest.split_once('/').unwrap();
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .unwrap()
        .next()
        .unwrap();
    (upstream, format!("{scheme}://{auth}{addr}/{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_audit_record_is_lost_when_the_database_goes_away_during_activity() {
    let Some(db) =
        postgres_or_note("no_audit_record_is_lost_when_the_database_goes_away_during_activity")
            .await
    else {
        return;
    };
    let (upstream, _) = through(&db.url, "127.0.0.1:1".parse().unwrap());
    let proxy = TcpProxy::start(upstream).await;
    let (_, proxied_url) = through(&db.url, proxy.addr);
    let gw = TestGateway::start_with(move |c| {
        c.server.database_url = proxied_url;
        c.server.node_name = "outage-node".into();
    })
    .await;
    gw.user("olga", "olga-password", &[("/olga", Full)]).await;
    let sftp = sftp_client::login(gw.addr("sftp"), "olga", "olga-password")
        .await
        .unwrap();
    let ok = russh_sftp::protocol::StatusCode::Ok;
    let mut uploads = 0;
    for n in 0..5 {
        assert_eq!(
            sftp.put(&format!("/olga/before-{n}.txt"), b"before").await,
            ok
        );
        uploads += 1;
    }

    proxy.cut();
    // A transfer already running goes on; new sign-ins fail closed with a clear message.
    for n in 0..20 {
        assert_eq!(
            sftp.put(&format!("/olga/during-{n}.txt"), b"during").await,
            ok,
            "upload {n} during the outage"
        );
        uploads += 1;
    }
    let refused = reqwest::Client::new()
        .get(format!("http://{}/olga/before-0.txt", gw.addr("webdav")))
        .basic_auth("olga", Some("olga-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.text().await.unwrap(),
        "authentication is temporarily unavailable"
    );
    assert!(
        sftp_client::login(gw.addr("sftp"), "olga", "olga-password")
            .await
            .is_none()
    );
    let ftp_addr = gw.addr("ftp");
    let ftp_reply = tokio::task::spawn_blocking(move || {
        let mut ftp = suppaftp::FtpStream::connect(ftp_addr).unwrap();
        match ftp.login("olga", "olga-password") {
            Err(suppaftp::FtpError::UnexpectedResponse(r)) => (
                r.status.code(),
                String::from_utf8_lossy(&r.body).into_owned(),
            ),
            other => panic!("FTP login during the outage: {other:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(ftp_reply.0, 421, "{ftp_reply:?}");
    assert!(
        ftp_reply
            .1
            .contains("authentication is temporarily unavailable"),
        "{ftp_reply:?}"
    );
    let stats = gw.gateway.core.audit.stats();
    assert!(
        stats.journal_records > 0 && stats.write_failures > 0,
        "records kept in the local journal while the store is away: {stats:?}"
    );

    proxy.restore();
    let drained = eventually(Duration::from_secs(60), async || {
        let stats = gw.gateway.core.audit.stats();
        stats.backlog == 0 && stats.journal_records == 0
    })
    .await;
    assert!(
        drained.is_some(),
        "held records written once the store is back"
    );
    for n in 0..5 {
        assert_eq!(
            sftp.put(&format!("/olga/after-{n}.txt"), b"after").await,
            ok
        );
        uploads += 1;
    }
    assert!(
        sftp_client::login(gw.addr("sftp"), "olga", "olga-password")
            .await
            .is_some(),
        "sign-ins work again"
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
    let stored_uploads = records
        .iter()
        .filter(|r| {
            r.action == "create" && r.username.as_deref() == Some("olga") && r.result == "ok"
        })
        .count();
    assert_eq!(stored_uploads, uploads, "every upload has its audit record");
    assert!(records.iter().all(|r| r.node == "outage-node"));
    assert!(
        records
            .iter()
            .any(|r| r.action == "login" && r.reason.as_deref() == Some("store unavailable")),
        "the refused sign-ins during the outage are in the log too"
    );
    db.drop().await;
}

/// Upload records (`create`, ok) per path, as stored.
async fn upload_records(db: &TestDb) -> HashMap<String, usize> {
    let records = db
        .store
        .read_audit(&filegate::store::AuditQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut per_path = HashMap::new();
    for r in records {
        if r.action == "create" && r.result == "ok" {
            *per_path.entry(r.path.unwrap_or_default()).or_insert(0) += 1;
        }
    }
    per_path
}

fn journal_records(data_dir: &Path) -> usize {
    filegate::audit::Journal::open(&data_dir.join("audit-journal"))
        .unwrap()
        .records() as usize
}

/// Issue 12: `kill -9` during a store outage, then restart with the store back: every
/// upload acknowledged to the client has exactly one audit record. Then SIGTERM with the
/// store down: the server ends (its audit log within its grace period), the rest is left
/// in the journal and written at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_or_sigterm_during_a_store_outage_loses_no_acknowledged_upload() {
    let Some(db) =
        postgres_or_note("kill_9_or_sigterm_during_a_store_outage_loses_no_acknowledged_upload")
            .await
    else {
        return;
    };
    let (upstream, _) = through(&db.url, "127.0.0.1:1".parse().unwrap());
    let proxy = TcpProxy::start(upstream).await;
    let (_, proxied_url) = through(&db.url, proxy.addr);
    let dir = TempDir::new("outage");
    let storage = dir.path().join("files");
    std::fs::create_dir_all(storage.join("olga")).unwrap();
    let config = Replica::configure(
        dir.path(),
        "node-k",
        &proxied_url,
        &folder(&storage),
        "42000-42499",
    );
    let data_dir = dir.path().join("node-k");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[audit]\nstore_timeout_ms = 1000\nshutdown_grace_ms = 3000\n");
    std::fs::write(&config, text).unwrap();
    Replica::cli(
        &config,
        &["user", "add", "olga", "--password-stdin"],
        Some("olga-password-1\n"),
    );
    Replica::cli(&config, &["user", "grant", "olga", "/olga", "full"], None);
    let ok = russh_sftp::protocol::StatusCode::Ok;
    let mut acknowledged = Vec::new();

    // 1. Uploads before and during an outage, then kill -9.
    let server = Replica::start("node-k", config.clone());
    let sftp = sftp_client::login(server.addr("sftp"), "olga", "olga-password-1")
        .await
        .unwrap();
    for n in 0..3 {
        let path = format!("/olga/before-{n}.txt");
        assert_eq!(sftp.put(&path, b"before").await, ok);
        acknowledged.push(path);
    }
    proxy.cut();
    for n in 0..15 {
        let path = format!("/olga/outage-{n}.txt");
        assert_eq!(sftp.put(&path, b"during").await, ok, "{path}");
        acknowledged.push(path);
    }
    drop(sftp);
    server.kill9();
    assert!(
        journal_records(&data_dir) >= 15,
        "acknowledged records are in the journal on disk"
    );

    // 2. Store back, restart: the journal is replayed, one row per event.
    proxy.restore();
    let server = Replica::start("node-k", config.clone());
    let replayed = eventually(Duration::from_secs(60), async || {
        let stored = upload_records(&db).await;
        acknowledged.iter().all(|p| stored.contains_key(p))
    })
    .await;
    assert!(replayed.is_some(), "{:?}", upload_records(&db).await);
    let emptied = eventually(Duration::from_secs(60), async || {
        journal_records(&data_dir) == 0
    })
    .await;
    assert!(emptied.is_some(), "journal emptied after replay");

    // 3. Another outage, then SIGTERM: the server ends; the rest stays in the journal.
    let sftp = sftp_client::login(server.addr("sftp"), "olga", "olga-password-1")
        .await
        .unwrap();
    proxy.cut();
    for n in 0..10 {
        let path = format!("/olga/sigterm-{n}.txt");
        assert_eq!(sftp.put(&path, b"term").await, ok, "{path}");
        acknowledged.push(path);
    }
    drop(sftp);
    server.terminate_within(Duration::from_secs(120));
    assert!(journal_records(&data_dir) >= 10, "left in the journal");

    // 4. Next start with the store back: everything is there, exactly once.
    proxy.restore();
    let server = Replica::start("node-k", config.clone());
    let replayed = eventually(Duration::from_secs(60), async || {
        let stored = upload_records(&db).await;
        acknowledged.iter().all(|p| stored.contains_key(p))
    })
    .await;
    assert!(replayed.is_some(), "{:?}", upload_records(&db).await);
    let emptied = eventually(Duration::from_secs(60), async || {
        journal_records(&data_dir) == 0
    })
    .await;
    assert!(emptied.is_some(), "journal emptied after replay");
    server.stop();
    let stored = upload_records(&db).await;
    for path in &acknowledged {
        assert_eq!(stored.get(path), Some(&1), "exactly one record for {path}");
    }
    db.drop().await;
}
