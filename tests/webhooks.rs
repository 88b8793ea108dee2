//! Webhooks end to end (issue 19): a real HTTP receiver on 127.0.0.1 (allowed by
//! `webhooks.allow_private`), rules made through the REST API, uploads over SFTP, FTP and
//! WebDAV; a receiver that comes up late; `kill -9` of the real binary between an upload and
//! its delivery; two replicas on one PostgreSQL sharing one outbox.

mod support;

use std::collections::HashMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use filegate::identity::GrantLevel::Full;
use filegate::identity::PermissionSet;
use filegate::test_support::{TempDir, TestDb};
use serde_json::{Value, json};
use support::TestGateway;
use support::serve_process::spawn_serve;
use support::sftp_client;

const BIN: &str = env!("CARGO_BIN_EXE_filegate");

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    method: Method,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The payload: the JSON body of a POST, or the query of a GET.
    fn payload(&self) -> Value {
        if self.method == Method::GET {
            let map: serde_json::Map<String, Value> = form_urlencoded::parse(self.query.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            Value::Object(map)
        } else {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }
    }

    /// Checks `X-Filegate-Signature` against `secret` (over `timestamp.body`, or
    /// `timestamp.query` for a GET).
    fn signed_by(&self, secret: &str) -> bool {
        let ts: i64 = self.header("x-filegate-timestamp").parse().unwrap_or(0);
        let signed: &[u8] = if self.method == Method::GET {
            self.query.as_bytes()
        } else {
            &self.body
        };
        let now = chrono::Utc::now().timestamp();
        (now - ts).abs() < 600
            && self.header("x-filegate-signature") == filegate::webhooks::sign(secret, ts, signed)
    }
}

/// A webhook receiver on 127.0.0.1 answering 200 to everything.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Receiver::serve(listener), addr)
    }

    fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let receiver = Receiver::default();
        let hits = receiver.hits.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let hits = hits.clone();
                async move {
                    hits.lock().unwrap().push(Hit {
                        method,
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    "ok"
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (generously) until `n` requests arrived, then a little longer to catch extras.
    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Hit> {
        let start = Instant::now();
        while self.hits().len() < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.hits()
    }
}

fn allow_loopback(c: &mut filegate::config::Config) {
    c.webhooks.allow_private = vec!["127.0.0.0/8".parse().unwrap()];
    c.webhooks.retry_base_ms = 200;
    c.webhooks.retry_max_ms = 1000;
    c.webhooks.poll_ms = 100;
}

/// An admin's full key.
async fn admin_key(gw: &TestGateway) -> String {
    let admin = gw.admin("root", "root-password-1").await;
    gw.key(Some(admin), "hooks", None, PermissionSet::Full)
        .await
        .1
}

async fn api(
    api: SocketAddr,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{api}/api/rest/v1{path}"))
        .header("X-FilesAPI-Key", key)
        .header("Content-Type", "application/json");
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Makes a webhook behavior; returns (id, signing secret).
async fn rule(gw_api: SocketAddr, key: &str, path: &str, value: Value) -> (i64, String) {
    let (status, body) = api(
        gw_api,
        key,
        reqwest::Method::POST,
        "/behaviors",
        Some(json!({"path": path, "behavior": "webhook", "value": value})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["value"]["signing_secret"].as_str().unwrap().to_owned();
    (body["id"].as_i64().unwrap(), secret)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_sftp_ftp_and_webdav_each_makes_exactly_one_signed_delivery() {
    let gw = TestGateway::start_with(allow_loopback).await;
    let key = admin_key(&gw).await;
    gw.user("alice", "alice-password", &[("/in", Full)]).await;
    let (receiver, addr) = Receiver::start().await;
    let (_, secret) = rule(
        gw.addr("api"),
        &key,
        "in",
        json!({"urls": [format!("http://{addr}/hook")], "method": "POST", "triggers": ["create"]}),
    )
    .await;

    let sftp = sftp_client::login(gw.addr("sftp"), "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(
        sftp.put("/in/s.txt", b"sftp!").await,
        russh_sftp::protocol::StatusCode::Ok
    );
    let ftp_addr = gw.addr("ftp");
    blocking(move || {
        let mut ftp = suppaftp::FtpStream::connect(ftp_addr).unwrap();
        ftp.login("alice", "alice-password").unwrap();
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .unwrap();
        ftp.put_file("/in/f.txt", &mut Cursor::new(b"ftp!".to_vec()))
            .unwrap();
        let _ = ftp.quit();
    })
    .await;
    let put = reqwest::Client::new()
        .put(format!("http://{}/in/d.txt", gw.addr("webdav")))
        .basic_auth("alice", Some("alice-password"))
        .body("webdav!")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let hits = receiver.wait_for(3, Duration::from_secs(60)).await;
    assert_eq!(hits.len(), 3, "one delivery per upload: {hits:#?}");
    let mut seen = HashMap::new();
    for hit in &hits {
        assert!(hit.signed_by(&secret), "a valid signature: {hit:?}");
        assert!(!hit.signed_by("another secret"));
        let p = hit.payload();
        assert_eq!(p["action"], "create");
        assert_eq!(p["username"], "alice");
        assert_eq!(
            hit.header("x-filegate-delivery"),
            p["event_key"].as_str().unwrap()
        );
        seen.insert(p["interface"].as_str().unwrap().to_owned(), p.clone());
    }
    assert_eq!(seen["sftp"]["path"], "in/s.txt");
    assert_eq!(seen["sftp"]["size"], 5);
    assert_eq!(seen["ftp"]["path"], "in/f.txt");
    assert_eq!(seen["webdav"]["path"], "in/d.txt");

    let (status, list) = api(
        gw.addr("api"),
        &key,
        reqwest::Method::GET,
        "/webhook_deliveries",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(
        list.iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 1),
        "{list:?}"
    );
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", gw.addr("api")))
        .header("X-FilesAPI-Key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("filegate_webhook_delivered_total 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("filegate_webhook_latency_seconds_count 3\n"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_on_a_folder_ignores_other_folders_and_triggers_it_does_not_list() {
    let gw = TestGateway::start_with(allow_loopback).await;
    let key = admin_key(&gw).await;
    gw.user(
        "bob",
        "bob-password",
        &[("/a", Full), ("/b", Full), ("/ab", Full)],
    )
    .await;
    gw.write("a/old.txt", b"old").await;
    let (receiver, addr) = Receiver::start().await;
    rule(
        gw.addr("api"),
        &key,
        "a",
        json!({"urls": [format!("http://{addr}/")], "method": "GET", "triggers": ["create", "move"]}),
    )
    .await;
    let sftp = sftp_client::login(gw.addr("sftp"), "bob", "bob-password")
        .await
        .unwrap();
    sftp.put("/b/x.txt", b"not watched").await;
    sftp.put("/ab/x.txt", b"not watched either").await;
    sftp.get("/a/old.txt").await.unwrap(); // read: not a trigger of this rule
    sftp.raw.remove("/a/old.txt").await.unwrap(); // destroy: not a trigger either
    sftp.put("/a/new.txt", b"watched").await;
    sftp.raw.rename("/b/x.txt", "/a/moved.txt").await.unwrap();
    let hits = receiver.wait_for(2, Duration::from_secs(60)).await;
    let mut payloads: Vec<Value> = hits.iter().map(Hit::payload).collect();
    assert_eq!(hits.len(), 2, "{payloads:#?}");
    // Deliveries to one host run concurrently (`webhooks.per_host_concurrency`): in any order.
    payloads.sort_by_key(|p| p["action"].as_str().unwrap_or_default().to_owned());
    assert_eq!(payloads[0]["action"], "create");
    assert_eq!(payloads[0]["path"], "a/new.txt");
    assert_eq!(payloads[1]["action"], "move");
    assert_eq!(payloads[1]["path"], "b/x.txt");
    assert_eq!(payloads[1]["destination"], "a/moved.txt");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_the_delivery_once_when_it_comes_back() {
    let gw = TestGateway::start_with(allow_loopback).await;
    let key = admin_key(&gw).await;
    gw.user("carol", "carol-password", &[("/drop", Full)]).await;
    // A port with nothing listening yet.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    rule(
        gw.addr("api"),
        &key,
        "drop",
        json!({"urls": [format!("http://{addr}/late")]}),
    )
    .await;
    let sftp = sftp_client::login(gw.addr("sftp"), "carol", "carol-password")
        .await
        .unwrap();
    sftp.put("/drop/order.csv", b"1,2,3").await;
    // Wait until at least two attempts failed.
    let start = Instant::now();
    loop {
        let (_, list) = api(
            gw.addr("api"),
            &key,
            reqwest::Method::GET,
            "/webhook_deliveries",
            None,
        )
        .await;
        let d = &list[0];
        if d["attempts"].as_i64().unwrap_or(0) >= 2 {
            assert_eq!(d["status"], "pending");
            assert!(d["last_error"].as_str().unwrap().contains("connect"), "{d}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no retries: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let receiver = Receiver::serve(listener);
    let hits = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(hits.len(), 1, "delivered once: {hits:#?}");
    assert_eq!(hits[0].payload()["path"], "drop/order.csv");
    let (_, list) = api(
        gw.addr("api"),
        &key,
        reqwest::Method::GET,
        "/webhook_deliveries?filter[status]=delivered",
        None,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["attempts"].as_i64().unwrap() >= 3);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_to_metadata_private_or_loopback_addresses_are_refused_unless_allowed() {
    let gw = TestGateway::start_with(|c| {
        c.webhooks.retry_base_ms = 100;
        c.webhooks.poll_ms = 100;
    })
    .await;
    let key = admin_key(&gw).await;
    let api_addr = gw.addr("api");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://127.0.0.1:9/",
        "http://[::1]/",
        "http://[::ffff:169.254.169.254]/",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
    ] {
        let (status, body) = api(
            api_addr,
            &key,
            reqwest::Method::POST,
            "/behaviors",
            Some(json!({"path": "", "behavior": "webhook", "value": {"urls": [url]}})),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
    }
    // A name is checked after DNS, at send time: `localhost` is accepted as a URL but never
    // reached.
    let (receiver, addr) = Receiver::start().await;
    rule(
        api_addr,
        &key,
        "",
        json!({"urls": [format!("http://localhost:{}/", addr.port())]}),
    )
    .await;
    gw.user("dave", "dave-password", &[("/d", Full)]).await;
    let sftp = sftp_client::login(gw.addr("sftp"), "dave", "dave-password")
        .await
        .unwrap();
    sftp.put("/d/x", b"x").await;
    let start = Instant::now();
    loop {
        let (_, list) = api(
            api_addr,
            &key,
            reqwest::Method::GET,
            "/webhook_deliveries",
            None,
        )
        .await;
        if let Some(err) = list[0]["last_error"].as_str() {
            assert!(err.contains("SSRF"), "{err}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = api(
        api_addr,
        &key,
        reqwest::Method::POST,
        "/behaviors/webhook/test",
        Some(json!({"url": format!("http://127.0.0.1:{}/", addr.port())})),
    )
    .await;
    assert_eq!(status, 400, "the test call is guarded too");
    assert!(receiver.hits().is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviors_are_created_found_listed_updated_and_deleted_with_files_com_shapes() {
    let gw = TestGateway::start_with(allow_loopback).await;
    let key = admin_key(&gw).await;
    let a = gw.addr("api");
    let (receiver, addr) = Receiver::start().await;
    let url = format!("http://{addr}/t");
    let (id, secret) = rule(
        a,
        &key,
        "/x/y/",
        json!({"urls": [url], "triggers": ["read"]}),
    )
    .await;
    assert_eq!(secret.len(), 64);
    let (status, found) = api(
        a,
        &key,
        reqwest::Method::GET,
        &format!("/behaviors/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["path"], "x/y");
    assert_eq!(found["behavior"], "webhook");
    assert_eq!(found["recursive"], true);
    assert_eq!(found["value"]["method"], "POST");
    assert!(
        found["value"].get("signing_secret").is_none(),
        "the secret is shown once"
    );
    let (_, under) = api(
        a,
        &key,
        reqwest::Method::GET,
        "/behaviors/folders/x/y",
        None,
    )
    .await;
    assert_eq!(under.as_array().unwrap().len(), 1);
    let (_, above) = api(
        a,
        &key,
        reqwest::Method::GET,
        "/behaviors/folders/x/y/z?ancestor_behaviors=true",
        None,
    )
    .await;
    assert_eq!(above.as_array().unwrap().len(), 1);
    let (_, other) = api(a, &key, reqwest::Method::GET, "/behaviors/folders/x", None).await;
    assert!(other.as_array().unwrap().is_empty());
    let (status, patched) = api(
        a,
        &key,
        reqwest::Method::PATCH,
        &format!("/behaviors/{id}"),
        Some(json!({"id": id, "name": "orders", "value": {"urls": [url], "method": "GET"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "orders");
    assert_eq!(patched["value"]["method"], "GET");
    let (status, _) = api(
        a,
        &key,
        reqwest::Method::PATCH,
        &format!("/behaviors/{id}"),
        Some(json!({"path": "elsewhere"})),
    )
    .await;
    assert_eq!(status, 400, "a path cannot change");
    let (status, body) = api(
        a,
        &key,
        reqwest::Method::POST,
        "/behaviors/webhook/test",
        Some(json!({"url": url, "method": "POST", "body": {"hello": "world"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hits = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].payload()["hello"], "world");
    let (status, _) = api(
        a,
        &key,
        reqwest::Method::DELETE,
        &format!("/behaviors/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = api(
        a,
        &key,
        reqwest::Method::GET,
        &format!("/behaviors/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    gw.stop().await;
}

/// One `filegate serve` process (as tests/serve.rs and tests/replicas.rs run it).
struct Serve {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Serve {
    fn start(config: &Path, env: &[(&str, &str)]) -> Serve {
        let (child, addrs) = spawn_serve(config, env, 2, "filegate");
        Serve { child, addrs }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("FILEGATE_WEBHOOKS_ALLOW_PRIVATE", "127.0.0.0/8")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        if out.status.success() {
            stdout
        } else {
            stdout + &stderr
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_an_upload_and_its_delivery_then_a_restart_delivers_it_once() {
    let dir = TempDir::new("hooks-kill");
    let config = dir.path().join("filegate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\nnode_name = \"solo\"\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [ftp]\nenabled = false\n[webdav]\nenabled = false\n\
             [webhooks]\nretry_base_ms = 200\nretry_max_ms = 500\npoll_ms = 100\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let env = [("FILEGATE_WEBHOOKS_ALLOW_PRIVATE", "127.0.0.0/8")];
    let serve = Serve::start(&config, &env);
    let api_addr = serve.addrs["api"];
    let (ok, out) = cli(
        &config,
        &["key", "create", "--site-wide", "--name", "hooks", "--json"],
    );
    assert!(ok, "{out}");
    let key = serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v["key"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("a key in {out}"));
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = parked.local_addr().unwrap();
    drop(parked);
    let (_, secret) = rule(
        api_addr,
        &key,
        "",
        json!({"urls": [format!("http://{hook_addr}/")], "triggers": ["create"]}),
    )
    .await;
    let (ok, listed) = cli(&config, &["webhook", "list"]);
    assert!(
        ok && listed.contains(&format!("http://{hook_addr}/")),
        "{listed}"
    );
    let (ok, tested) = cli(&config, &["webhook", "test", "1"]);
    assert!(
        !ok && tested.contains("connect"),
        "nothing listens yet: {tested}"
    );

    // An upload with the receiver down, then kill -9 while its delivery is pending.
    let sftp_user = {
        // A user made through the API (the CLI needs a password on stdin).
        let (status, body) = api(
            api_addr,
            &key,
            reqwest::Method::POST,
            "/users",
            Some(json!({"username": "gina", "password": "gina-password-1"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        let (status, body) = api(
            api_addr,
            &key,
            reqwest::Method::POST,
            "/permissions",
            Some(json!({"user_id": id, "path": "gina", "permission": "full"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        "gina"
    };
    std::fs::create_dir_all(dir.path().join("data/files/gina")).unwrap();
    let sftp = sftp_client::login(serve.addrs["sftp"], sftp_user, "gina-password-1")
        .await
        .unwrap();
    assert_eq!(
        sftp.put("/gina/crash.txt", b"before the crash").await,
        russh_sftp::protocol::StatusCode::Ok
    );
    drop(sftp);
    tokio::time::sleep(Duration::from_millis(800)).await;
    serve.kill9();

    let receiver = Receiver::serve(tokio::net::TcpListener::bind(hook_addr).await.unwrap());
    let serve = Serve::start(&config, &env);
    let hits = receiver.wait_for(1, Duration::from_secs(60)).await;
    let creates: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.payload()["path"] == "gina/crash.txt")
        .collect();
    assert_eq!(
        creates.len(),
        1,
        "delivered once after the restart: {hits:#?}"
    );
    assert!(creates[0].signed_by(&secret));
    serve.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_deliver_500_uploads_500_times_without_a_duplicate() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SKIPPED: FILEGATE_TEST_POSTGRES_URL unset: two-replica webhook test not run");
        return;
    };
    let url = db.url.clone();
    let tune = |node: &'static str, url: String| {
        move |c: &mut filegate::config::Config| {
            allow_loopback(c);
            c.server.database_url = url;
            c.server.node_name = node.into();
            c.webhooks.batch = 16;
        }
    };
    let one = TestGateway::start_with(tune("one", url.clone())).await;
    let two = TestGateway::start_with(tune("two", url.clone())).await;
    let key = admin_key(&one).await;
    one.user("hal", "hal-password", &[("/up", Full)]).await;
    two.mkdir("up").await;
    let (receiver, addr) = Receiver::start().await;
    rule(
        one.addr("api"),
        &key,
        "up",
        json!({"urls": [format!("http://{addr}/")], "triggers": ["create"]}),
    )
    .await;
    let mut uploads = Vec::new();
    for (gw, tag) in [(&one, "one"), (&two, "two")] {
        let sftp = sftp_client::login(gw.addr("sftp"), "hal", "hal-password")
            .await
            .unwrap();
        uploads.push(tokio::spawn(async move {
            for i in 0..250 {
                assert_eq!(
                    sftp.put(&format!("/up/{tag}-{i}.txt"), b"x").await,
                    russh_sftp::protocol::StatusCode::Ok
                );
            }
        }));
    }
    for u in uploads {
        u.await.unwrap();
    }
    let hits = receiver.wait_for(500, Duration::from_secs(180)).await;
    let mut ids: Vec<String> = hits
        .iter()
        .map(|h| h.header("x-filegate-delivery"))
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((total, ids.len()), (500, 500), "500 deliveries, none twice");
    let (_, delivered) = api(
        one.addr("api"),
        &key,
        reqwest::Method::GET,
        "/webhook_deliveries?filter[status]=delivered&per_page=1000",
        None,
    )
    .await;
    assert_eq!(delivered.as_array().unwrap().len(), 500);
    one.stop().await;
    two.stop().await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_com_python_sdk_creates_lists_updates_and_deletes_a_webhook_behavior() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import files_sdk"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_sdk {
        eprintln!(
            "SKIPPED: python3 with files-com (tests/interop/requirements.txt) is not installed"
        );
        return;
    }
    let gw = TestGateway::start_with(allow_loopback).await;
    let key = admin_key(&gw).await;
    let user = gw.user("ivy", "ivy-password", &[("/ivy", Full)]).await;
    let user_key = gw
        .key(Some(user), "ivy key", None, PermissionSet::Full)
        .await
        .1;
    let (receiver, addr) = Receiver::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/suites/webhooks_sdk.py"
    );
    let api_addr = gw.addr("api").to_string();
    let hook = format!("http://{addr}/sdk");
    let out = blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("API_ADDR", api_addr)
            .env("ADMIN_KEY_SECRET", key)
            .env("USER_KEY_SECRET", user_key)
            .env("HOOK_URL", hook)
            .output()
            .unwrap()
    })
    .await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "the SDK's webhook_test reached the receiver");
    assert_eq!(hits[0].payload()["hello"], "sdk");
    gw.stop().await;
}
