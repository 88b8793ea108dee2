//! Helpers for tests (unit and integration): throw-away databases and folders, and
//! S3-compatible server processes (`moto_server`, `s3s-fs`).
//!
//! Not part of the server; compiled into the library so `tests/` can use it too.

use std::path::{Path, PathBuf};

use crate::store::Store;

/// The environment variable naming a PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "FILEGATE_TEST_POSTGRES_URL";

/// A folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("filegate-{label}-{}", crate::secret::random_hex(6)));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store in a fresh database of its own.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] TempDir),
    Postgres { admin_url: String, database: String },
}

impl TestDb {
    /// A SQLite database in a temporary file.
    pub async fn sqlite() -> TestDb {
        let dir = TempDir::new("db");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = Store::connect(&url).await.expect("open sqlite test db");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A new PostgreSQL database on the server at `FILEGATE_TEST_POSTGRES_URL`, or `None`
    /// when the variable is unset.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())?;
        let database = format!("filegate_test_{}", crate::secret::random_hex(6));
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to test postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database);
        let store = Store::connect(&url).await.expect("open postgres test db");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Postgres {
                admin_url,
                database,
            },
        })
    }

    /// SQLite always; PostgreSQL too when configured (a note is printed when it is not).
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        match TestDb::postgres().await {
            Some(db) => dbs.push(db),
            None => eprintln!("note: {POSTGRES_ENV} unset: PostgreSQL half of this test not run"),
        }
        dbs
    }

    /// Closes the store and removes the database.
    pub async fn drop(self) {
        self.store.close().await;
        if let Cleanup::Postgres {
            admin_url,
            database,
        } = &self.cleanup
        {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            }
        }
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// An audit sink that keeps events in memory.
#[derive(Default)]
pub struct MemorySink(std::sync::Mutex<Vec<crate::audit::AuditEvent>>);

impl MemorySink {
    pub fn events(&self) -> Vec<crate::audit::AuditEvent> {
        self.0.lock().expect("sink lock").clone()
    }

    /// The last event recorded.
    pub fn last(&self) -> Option<crate::audit::AuditEvent> {
        self.0.lock().expect("sink lock").last().cloned()
    }
}

impl crate::audit::AuditSink for MemorySink {
    fn record(&self, event: crate::audit::AuditEvent) {
        self.0.lock().expect("sink lock").push(event);
    }
}

/// A principal for a user with `grants`, optionally signed in with a key.
pub fn principal(
    grants: &[(&str, crate::identity::GrantLevel)],
    key: Option<(Option<&str>, crate::identity::PermissionSet)>,
) -> crate::identity::Principal {
    use crate::identity::{ClientInfo, Grant, KeyIdentity, Principal, Protocol, UserIdentity};
    use crate::path::SitePath;
    Principal {
        user: Some(UserIdentity {
            id: 1,
            username: "tester".into(),
            revision: 1,
        }),
        key: key.map(|(path, permission_set)| KeyIdentity {
            id: 7,
            name: "test-key".into(),
            permission_set,
            path: path.map(|p| SitePath::from_key_path(p).expect("valid key path")),
            revision: 1,
        }),
        site_admin: false,
        grants: grants
            .iter()
            .map(|(path, level)| Grant {
                path: SitePath::parse(path).expect("valid path"),
                level: *level,
            })
            .collect(),
        protocol: Protocol::Sftp,
        client: ClientInfo::new(Some(std::net::IpAddr::from([127, 0, 0, 1]))),
    }
}

/// The S3-compatible servers the S3 tests run on. Providers differ (see README, "S3
/// providers"), so the storage contract runs on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Provider {
    /// `moto_server` (PyPI `moto[server]`): in memory, accepts any credentials.
    Moto,
    /// `s3s-fs` (crates.io, `--features binary`): objects as files under a folder, checks
    /// SigV4 signatures against one key pair.
    S3sFs,
}

/// The `s3s-fs` version the tests and `.ci/run` expect.
pub const S3S_FS_VERSION: &str = "0.14.1";

impl S3Provider {
    pub fn name(self) -> &'static str {
        match self {
            S3Provider::Moto => "moto_server",
            S3Provider::S3sFs => "s3s-fs",
        }
    }

    fn install_hint(self) -> String {
        match self {
            S3Provider::Moto => "pip install 'moto[server]==5.2.1'".to_owned(),
            S3Provider::S3sFs => format!(
                "cargo install s3s-fs --version ={S3S_FS_VERSION} --locked --features binary"
            ),
        }
    }

    /// Whether keys map onto a file system, folders onto directories (s3s-fs): a marker
    /// `a/` becomes an empty directory, which is not listed (only files are), and a HEAD of
    /// a folder's name (`a`) is answered `500 InternalError`. On such a provider an empty
    /// folder does not exist and a folder's name cannot be stat'ed.
    pub fn folders_are_directories(self) -> bool {
        self == S3Provider::S3sFs
    }

    /// Whether `GET ?uploads` (ListMultipartUploads) is implemented: s3s-fs answers
    /// `501 NotImplemented`, so abandoned uploads cannot be found and aborted there.
    pub fn lists_multipart_uploads(self) -> bool {
        self == S3Provider::Moto
    }
}

/// An S3-compatible server process on a free port of 127.0.0.1, killed when dropped.
/// moto accepts any credentials; s3s-fs only [`S3Server::access_key`] and
/// [`S3Server::secret_key`]. Buckets are made with [`S3Server::create_bucket`].
pub struct S3Server {
    pub provider: S3Provider,
    child: std::process::Child,
    port: u16,
    /// s3s-fs's data folder (buckets are its subfolders).
    root: Option<TempDir>,
}

impl S3Server {
    /// Starts one and waits until it answers. When the program is not installed: `None`
    /// with a loud SKIPPED note, or a panic under `CI=true` (CI must run these tests).
    pub fn start(provider: S3Provider) -> Option<S3Server> {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let port = free_port();
        let mut command;
        let mut root = None;
        match provider {
            S3Provider::Moto => {
                command = Command::new("moto_server");
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            }
            S3Provider::S3sFs => {
                let dir = TempDir::new("s3s-fs");
                command = Command::new("s3s-fs");
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", S3S_FS_ACCESS_KEY])
                    .args(["--secret-key", S3S_FS_SECRET_KEY])
                    .arg(dir.path());
                root = Some(dir);
            }
        }
        let child = match command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                let name = provider.name();
                let hint = provider.install_hint();
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but {name} cannot be started ({err}): {hint}"
                );
                eprintln!(
                    "SKIPPED: {name} cannot be started ({err}); install it with `{hint}` \
                     to run the S3 tests on it"
                );
                return None;
            }
        };
        let mut server = S3Server {
            provider,
            child,
            port,
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_request(port, "GET", "/").is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{} on port {port} exited at start: {status}",
                    provider.name()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} on port {port} did not answer within 30 s",
                provider.name()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access key the server accepts (moto: any).
    pub fn access_key(&self) -> &'static str {
        match self.provider {
            S3Provider::Moto => "testing",
            S3Provider::S3sFs => S3S_FS_ACCESS_KEY,
        }
    }

    /// The secret key the server accepts (moto: any).
    pub fn secret_key(&self) -> &'static str {
        match self.provider {
            S3Provider::Moto => "testing",
            S3Provider::S3sFs => S3S_FS_SECRET_KEY,
        }
    }

    /// Creates a bucket: an unsigned `PUT /name` on moto (it accepts them), a folder in the
    /// data folder on s3s-fs (a bucket is one; unsigned requests are refused there).
    pub fn create_bucket(&self, name: &str) {
        match &self.root {
            Some(root) => std::fs::create_dir(root.path().join(name))
                .unwrap_or_else(|err| panic!("create bucket {name}: {err}")),
            None => {
                let (status, body) = http_request(self.port, "PUT", &format!("/{name}"))
                    .unwrap_or_else(|err| panic!("create bucket {name}: {err}"));
                assert_eq!(status, 200, "create bucket {name}: HTTP {status}: {body}");
            }
        }
    }

    /// An unsigned, bodiless request (moto accepts them; s3s-fs refuses them): status and
    /// body.
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        http_request(self.port, method, path)
            .unwrap_or_else(|err| panic!("{method} {path} to {}: {err}", self.provider.name()))
    }

    /// The multipart uploads in progress in `bucket`: what an interrupted upload must not
    /// leave behind. moto: the keys from an unsigned `GET /bucket?uploads`; s3s-fs (which
    /// has no ListMultipartUploads): the files it keeps for uploads in progress (the
    /// `.upload-ID.json` record, `.upload_id-ID.part-N` parts, `….upload-ID.metadata.json`),
    /// of every bucket (each test has a server of its own).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        if let Some(root) = &self.root {
            let mut found: Vec<String> = std::fs::read_dir(root.path())
                .expect("read the s3s-fs folder")
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.contains(".upload"))
                .collect();
            found.sort();
            return found;
        }
        let (status, body) = http_request(self.port, "GET", &format!("/{bucket}?uploads"))
            .unwrap_or_else(|err| panic!("list uploads of {bucket}: {err}"));
        assert_eq!(
            status, 200,
            "list uploads of {bucket}: HTTP {status}: {body}"
        );
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

/// The one key pair s3s-fs accepts in the tests.
const S3S_FS_ACCESS_KEY: &str = "filegate-test-key";
const S3S_FS_SECRET_KEY: &str = "s3s-fs-test-secret";

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// One bodiless HTTP/1.1 request to 127.0.0.1:`port`; the response's status code and body.
fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
