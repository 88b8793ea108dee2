//! The S3 backend end to end, on a real moto_server: `filegate serve` (the real binary)
//! killed with SIGKILL during a 200 MiB SFTP upload leaves no object, no visible partial and
//! no file made of the unfinished multipart upload; a bucket that does not exist or an
//! endpoint that does not answer stop `serve` at start with one clear line; a large file
//! (256 MiB by default — moto keeps objects in memory and assembles 1 GiB slowly enough to
//! time the client out on a loaded machine; `FILEGATE_TEST_S3_BIG_MIB=1024` for 1 GiB) goes up
//! and comes back byte for byte over SFTP. On s3s-fs, which checks SigV4 signatures (moto
//! accepts any) and keeps objects as files: wrong credentials (a wrong secret, an unknown
//! access key) stop `serve` at start with one line naming the settings to check, and 1 GiB
//! goes up and comes back byte for byte over SFTP. Without the server a test needs it says
//! SKIPPED and does nothing (under `CI=true` a missing s3s-fs fails the test).

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filegate::identity::GrantLevel::Full;
use filegate::test_support::TempDir;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use support::s3::{Moto, moto};
use support::serve_process::spawn_serve;
use support::sftp_client::{self, Sftp, code};
use support::{Backend, TestGateway};

const BIN: &str = env!("CARGO_BIN_EXE_filegate");
const MIB: u64 = 1024 * 1024;

/// moto, or a loud note that `test` does not run.
fn moto_or_skip(test: &str) -> Option<&'static Moto> {
    let moto = moto();
    if moto.is_none() {
        eprintln!("SKIPPED {test}: no moto_server");
    }
    moto
}

/// The byte at `offset` of the test files: cheap to make and to check, and no run of it
/// repeats at a part boundary.
fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 20)) as u8
}

fn block(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| byte_at(offset + i)).collect()
}

/// Writes `len` bytes of the test pattern to the open `handle`, `window` writes of `chunk`
/// bytes in flight at a time, calling `after` with the bytes written after each window;
/// stops when `after` says so or a write fails. Returns the bytes acknowledged.
async fn write_pattern(
    s: &Sftp,
    handle: &str,
    len: u64,
    mut after: impl FnMut(u64) -> bool,
) -> Result<u64, StatusCode> {
    const CHUNK: u64 = 64 * 1024;
    const WINDOW: u64 = 16;
    let mut offset = 0;
    while offset < len {
        let mut writes = Vec::new();
        for i in 0..WINDOW {
            let at = offset + i * CHUNK;
            if at >= len {
                break;
            }
            let n = CHUNK.min(len - at) as usize;
            writes.push(s.raw.write(handle, at, block(at, n)));
        }
        for result in futures_util::future::join_all(writes).await {
            let status = code(result);
            if status != StatusCode::Ok {
                return Err(status);
            }
        }
        offset = (offset + WINDOW * CHUNK).min(len);
        if !after(offset) {
            break;
        }
    }
    Ok(offset)
}

/// Reads the open `handle` to its end, `window` reads in flight, and checks every byte
/// against the pattern; returns the length read.
async fn check_pattern(s: &Sftp, handle: &str, len: u64) -> u64 {
    const CHUNK: u64 = 255 * 1024;
    const WINDOW: u64 = 16;
    let mut offset = 0;
    while offset < len {
        let mut reads = Vec::new();
        for i in 0..WINDOW {
            let at = offset + i * CHUNK;
            if at >= len {
                break;
            }
            reads.push(async move { (at, s.raw.read(handle, at, CHUNK as u32).await) });
        }
        for (at, result) in futures_util::future::join_all(reads).await {
            let data = result
                .unwrap_or_else(|e| panic!("read at {at}: {e:?}"))
                .data;
            let want = CHUNK.min(len - at) as usize;
            assert_eq!(data.len(), want, "short read at {at}");
            assert!(
                data == block(at, want),
                "bytes differ in [{at}, {})",
                at + want as u64
            );
        }
        offset = (offset + WINDOW * CHUNK).min(len);
    }
    offset
}

/// A `filegate serve` config on `bucket` with every listener on a free port.
fn write_config(dir: &Path, moto: &Moto, bucket: &str) -> PathBuf {
    let config = format!(
        r#"[server]
data_dir = "{data}"

[sftp]
listen = "127.0.0.1:0"

[ftp]
listen = "127.0.0.1:0"
passive_ports = "42500-42999"

[webdav]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

{storage}"#,
        data = dir.join("data").display(),
        storage = moto.toml(bucket),
    );
    let path = dir.join("filegate.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn cli(config: &Path, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
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
}

struct Serve {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Serve {
    fn start(config: &Path) -> Serve {
        let (child, addrs) = spawn_serve(config, &[], 4, "filegate serve on S3");
        Serve { child, addrs }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_200_mib_upload_leaves_no_object_and_no_visible_partial() {
    let test = "kill_9_during_a_200_mib_upload_leaves_no_object_and_no_visible_partial";
    let Some(moto) = moto_or_skip(test) else {
        return;
    };
    let dir = TempDir::new("s3-crash");
    let bucket = moto.new_bucket("crash");
    let config = write_config(dir.path(), moto, &bucket);
    cli(
        &config,
        &["user", "add", "alice", "--password-stdin"],
        Some("alice-password-1\n"),
    );
    cli(&config, &["user", "grant", "alice", "/alice", "full"], None);

    let mut serve = Serve::start(&config);
    let s = sftp_client::login(serve.addrs["sftp"], "alice", "alice-password-1")
        .await
        .expect("login");
    assert_eq!(s.put("/alice/small.txt", b"before").await, StatusCode::Ok);
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let handle = s
        .raw
        .open("/alice/big.bin", flags, FileAttributes::default())
        .await
        .unwrap()
        .handle;
    // Half of the 200 MiB: several parts of the multipart upload are in the bucket.
    let sent = write_pattern(&s, &handle, 200 * MIB, |done| done < 100 * MIB)
        .await
        .expect("writes before the kill");
    assert!(sent >= 100 * MIB);
    serve.child.kill().unwrap(); // SIGKILL: no shutdown, no abort of the upload.
    serve.child.wait().unwrap();
    drop(s);

    let keys = moto.keys(&bucket);
    assert!(
        !keys.iter().any(|k| k.contains("big.bin")),
        "an object for the interrupted upload: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with("alice/small.txt")),
        "{keys:?}"
    );
    let open = moto.open_multipart_uploads(&bucket);
    eprintln!("multipart uploads left open by the kill (aborted once abandoned): {open:?}");

    // Restarted, the server shows no trace of it over SFTP, FTP-less checks aside.
    let serve = Serve::start(&config);
    let s = sftp_client::login(serve.addrs["sftp"], "alice", "alice-password-1")
        .await
        .expect("login after restart");
    assert_eq!(
        s.list("/alice").await.unwrap(),
        vec!["small.txt".to_owned()]
    );
    assert_eq!(
        code(s.raw.stat("/alice/big.bin").await),
        StatusCode::NoSuchFile
    );
    assert_eq!(s.get("/alice/small.txt").await.unwrap(), b"before");
    // The same name uploads fine afterwards.
    assert_eq!(s.put("/alice/big.bin", b"whole").await, StatusCode::Ok);
    assert_eq!(s.get("/alice/big.bin").await.unwrap(), b"whole");
}

/// `serve` with `storage` must exit non-zero at start, within 60 s, with one line on stderr
/// that contains `expect`; returns what it wrote on stderr.
fn refuses_to_start(dir: &Path, storage: &str, expect: &str) -> String {
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n{storage}",
            dir.join("bad-data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("serve still running 60 s after start with {storage}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "serve started with {storage}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains(expect)),
        "no line naming {expect:?}: {stderr}"
    );
    // The reason, not a log of each retry (OpenDAL's default warned ~15 lines per retry).
    assert!(
        lines.len() <= 3 && !stderr.contains("Backtrace"),
        "{} lines: {stderr}",
        lines.len()
    );
    assert!(
        !stderr.contains("interop-secret") && !stderr.contains("testing-secret"),
        "a secret in the error: {stderr}"
    );
    stderr
}

#[test]
fn a_missing_bucket_or_an_endpoint_that_does_not_answer_stops_serve_with_one_clear_line() {
    let test =
        "a_missing_bucket_or_an_endpoint_that_does_not_answer_stops_serve_with_one_clear_line";
    let Some(moto) = moto_or_skip(test) else {
        return;
    };
    let dir = TempDir::new("s3-bad");
    refuses_to_start(
        dir.path(),
        &moto.toml("no-such-bucket-here"),
        "no-such-bucket-here",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = moto
        .toml("some-bucket")
        .replace(&moto.endpoint(), &format!("http://127.0.0.1:{port}"));
    refuses_to_start(dir.path(), &nowhere, "some-bucket");
}

/// Wrong credentials (a wrong secret; an access key the endpoint does not know) stop `serve`
/// at start with one line that says access was denied, names the settings to check and the
/// provider's code, and never prints a secret. On s3s-fs, which checks SigV4 signatures
/// (moto accepts any credentials).
#[test]
fn wrong_credentials_stop_serve_with_one_clear_line_and_no_secret() {
    use filegate::test_support::{S3Provider, S3Server};
    let Some(server) = S3Server::start(S3Provider::S3sFs) else {
        eprintln!(
            "SKIPPED wrong_credentials_stop_serve_with_one_clear_line_and_no_secret: no s3s-fs"
        );
        return;
    };
    server.create_bucket("creds-bucket");
    let dir = TempDir::new("s3-creds");
    let storage = |key: &str, secret: &str| {
        format!(
            "[storage]\nurl = \"s3://creds-bucket/files\"\n\n[storage.s3]\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"{key}\"\nsecret_access_key = \"{secret}\"\n\
             path_style = true\n",
            server.endpoint()
        )
    };
    for (key, secret, code) in [
        (
            server.access_key(),
            "wrong-secret-4711",
            "SignatureDoesNotMatch",
        ),
        ("UNKNOWNKEY4711", server.secret_key(), "NotSignedUp"),
    ] {
        let stderr = refuses_to_start(dir.path(), &storage(key, secret), "access denied");
        let denied: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("access denied"))
            .collect();
        assert_eq!(denied.len(), 1, "one line says it: {stderr}");
        let line = denied[0];
        for part in [
            "s3://creds-bucket/files",
            code,
            "storage.s3.access_key_id",
            "storage.s3.secret_access_key",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
        assert!(
            !stderr.contains(secret) && !stderr.contains(server.secret_key()),
            "a secret in the error: {stderr}"
        );
        assert!(
            !stderr.contains("<?xml") && !stderr.contains("S3Error {"),
            "{stderr}"
        );
    }
}

/// Sends `mib` MiB (and a bit: not a whole number of parts) up over SFTP to `gw` and back,
/// checking every byte, as a user granted `folder` (written as `folder/large.bin`); prints
/// the times.
async fn large_round_trip(gw: &TestGateway, mib: u64, provider: &str, folder: &str) {
    let len = mib * MIB + 12_345;
    let file = format!("{}/large.bin", folder.trim_end_matches('/'));
    let file = file.as_str();
    gw.user("big", "big-password", &[(folder, Full)]).await;
    let s = sftp_client::login(gw.addr("sftp"), "big", "big-password")
        .await
        .expect("login");
    // The close completes the multipart upload, which the provider assembles (1 GiB of
    // parts copied into one object): on a loaded machine that passes the client's default
    // 10 s per request, which OpenSSH's client does not have.
    s.raw.set_timeout(300);
    let started = Instant::now();
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let handle = s
        .raw
        .open(file, flags, FileAttributes::default())
        .await
        .unwrap()
        .handle;
    assert_eq!(write_pattern(&s, &handle, len, |_| true).await, Ok(len));
    assert_eq!(code(s.raw.close(&handle).await), StatusCode::Ok);
    let up = started.elapsed();
    assert_eq!(s.raw.stat(file).await.unwrap().attrs.size, Some(len));
    let started = Instant::now();
    let handle = s
        .raw
        .open(file, OpenFlags::READ, FileAttributes::default())
        .await
        .unwrap()
        .handle;
    assert_eq!(check_pattern(&s, &handle, len).await, len);
    s.raw.close(&handle).await.unwrap();
    eprintln!(
        "{mib} MiB over SFTP on S3 ({provider}): up {:.1} s, down {:.1} s",
        up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_and_comes_back_byte_for_byte_over_sftp() {
    let test = "a_large_file_goes_up_and_comes_back_byte_for_byte_over_sftp";
    if moto_or_skip(test).is_none() {
        return;
    }
    let mib: u64 = std::env::var("FILEGATE_TEST_S3_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let gw = TestGateway::start_on(Backend::S3, |_| {}).await;
    large_round_trip(&gw, mib, "moto", "/big").await;
    gw.stop().await;
}

/// 1 GiB on s3s-fs, which keeps objects as files (moto keeps them in memory and copies a
/// whole object for each ranged GET, which makes 1 GiB there a test of moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_file_goes_up_and_comes_back_byte_for_byte_over_sftp_on_s3s_fs() {
    use filegate::config::Config;
    use filegate::test_support::{S3Provider, S3Server};
    let Some(server) = S3Server::start(S3Provider::S3sFs) else {
        eprintln!(
            "SKIPPED a_1_gib_file_goes_up_and_comes_back_byte_for_byte_over_sftp_on_s3s_fs: no s3s-fs"
        );
        return;
    };
    server.create_bucket("big");
    let storage = Config::from_toml(&format!(
        "[storage]\nurl = \"s3://big/files\"\n\n[storage.s3]\nendpoint = \"{}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
         path_style = true\n",
        server.endpoint(),
        server.access_key(),
        server.secret_key()
    ))
    .expect("the s3s-fs storage config parses")
    .storage;
    let gw = TestGateway::start_on(Backend::Local, move |config| config.storage = storage).await;
    // At the root: s3s-fs makes folder markers into directories it then fails to HEAD (500;
    // see the README's provider table), so no folder is made.
    large_round_trip(&gw, 1024, "s3s-fs", "/").await;
    gw.stop().await;
}
