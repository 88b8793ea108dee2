//! S3-compatible storage for the tests: one `moto_server` per test process, shared by every
//! gateway of the process (each gets a bucket of its own), started on first use on a free
//! port of 127.0.0.1.
//!
//! moto is a child process that must not outlive the test binary, and a `static`'s `Drop`
//! never runs: it is started through `setpriv --pdeathsig KILL` from a thread that lives as
//! long as the process, so the kernel kills it when the test binary exits, however it exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use filegate::config::Config;

/// Which storage the end-to-end suites run on: `FILEGATE_TEST_STORAGE` = `local` (the
/// default) or `s3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// The environment variable choosing the suites' storage.
pub const STORAGE_ENV: &str = "FILEGATE_TEST_STORAGE";

impl Backend {
    pub fn from_env() -> Backend {
        match std::env::var(STORAGE_ENV).as_deref() {
            Ok("s3") => Backend::S3,
            Ok("local") | Ok("") | Err(_) => Backend::Local,
            Ok(other) => panic!("{STORAGE_ENV}={other:?}: expected `local` or `s3`"),
        }
    }
}

/// A running moto_server.
pub struct Moto {
    pub addr: SocketAddr,
}

static MOTO: OnceLock<Option<Moto>> = OnceLock::new();

/// The process's moto_server, started on first use; `None` (said loudly) when `moto_server`
/// is not installed or does not start.
pub fn moto() -> Option<&'static Moto> {
    MOTO.get_or_init(start_moto).as_ref()
}

/// The process's moto_server; panics when there is none (the suites were asked to run on S3:
/// passing without it would be a lie).
pub fn require_moto() -> &'static Moto {
    moto().unwrap_or_else(|| {
        panic!(
            "{STORAGE_ENV}=s3 but moto_server cannot be started (pip install 'moto[server]==5.2.1')"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_moto() -> Option<Moto> {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED S3: `moto_server` is not installed (pip install 'moto[server]==5.2.1')");
        return None;
    }
    for _attempt in 0..3 {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("moto-parent".into())
            .spawn(move || {
                let child = Command::new("setpriv")
                    .args([
                        "--pdeathsig",
                        "KILL",
                        "moto_server",
                        "-H",
                        "127.0.0.1",
                        "-p",
                    ])
                    .arg(port.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                let started = child.is_ok();
                let _ = tx.send(child.map(|c| c.id()));
                if started {
                    // The parent-death signal fires when the thread that started moto ends:
                    // this one lives until the process exits.
                    loop {
                        std::thread::park();
                    }
                }
            })
            .unwrap();
        let pid = match rx.recv().unwrap() {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("SKIPPED S3: cannot run setpriv/moto_server: {e}");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Some(Moto { addr });
            }
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("moto_server on port {port} did not answer; trying another port");
    }
    eprintln!("SKIPPED S3: moto_server did not start");
    None
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a bucket with a fresh name (moto takes unsigned requests) and returns it.
    pub fn new_bucket(&self, label: &str) -> String {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fg-{label}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let mut stream = TcpStream::connect(self.addr).expect("connect to moto_server");
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "create bucket {name}: {answer}"
        );
        name
    }

    /// Points `config` at `s3://bucket/files` on this server (the `[storage]` section of
    /// [`Moto::toml`], so the field names live in one place).
    pub fn configure(&self, config: &mut Config, bucket: &str) {
        let parsed = Config::from_toml(&self.toml(bucket))
            .unwrap_or_else(|e| panic!("the test S3 config does not parse: {e}"));
        config.storage.url = parsed.storage.url;
        config.storage.s3 = parsed.storage.s3;
    }

    /// The `[storage]` and `[storage.s3]` sections for `s3://bucket/files` on this server
    /// (path-style requests: moto answers on an IP address).
    pub fn toml(&self, bucket: &str) -> String {
        format!(
            "[storage]\nurl = \"s3://{bucket}/files\"\n\n[storage.s3]\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing-secret\"\n\
             path_style = true\n",
            self.endpoint()
        )
    }
}

/// One plain HTTP request to moto (it takes unsigned requests): the status code and body.
pub fn http(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to moto_server");
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The values of every `<tag>…</tag>` in `xml`.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(rest[..end].to_owned());
        rest = &rest[end + close.len()..];
    }
    out
}

impl Moto {
    /// Every object key in `bucket` (up to 1 000, enough for the tests that ask).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = http(self.addr, "GET", &format!("/{bucket}?list-type=2"));
        assert_eq!(status, 200, "list {bucket}: {body}");
        xml_values(&body, "Key")
    }

    /// The keys of the multipart uploads started and neither completed nor aborted in
    /// `bucket`.
    pub fn open_multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = http(self.addr, "GET", &format!("/{bucket}?uploads"));
        assert_eq!(status, 200, "list uploads of {bucket}: {body}");
        xml_values(&body, "Key")
    }
}
