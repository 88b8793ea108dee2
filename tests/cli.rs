//! The `filegate` binary end to end: management commands on a real store, first start, and
//! refusal of bad configuration and bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use filegate::test_support::TempDir;

struct Cli {
    dir: TempDir,
    database_url: Option<String>,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: TempDir::new("cli"),
            database_url: None,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_filegate"));
        cmd.args(args)
            .env("FILEGATE_DATA_DIR", self.dir.path())
            .env("FILEGATE_SFTP_LISTEN", "127.0.0.1:0")
            .env("FILEGATE_FTP_LISTEN", "127.0.0.1:0")
            .env("FILEGATE_WEBDAV_LISTEN", "127.0.0.1:0")
            .env("FILEGATE_API_LISTEN", "127.0.0.1:0")
            .env_remove("FILEGATE_DATABASE_URL")
            .stdin(Stdio::null());
        if let Some(url) = &self.database_url {
            cmd.env("FILEGATE_DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run filegate")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "filegate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "filegate {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("valid JSON")
    }
}

#[test]
fn users_grants_and_keys_are_managed_from_the_command_line() {
    let cli = Cli::new();
    let out = cli.with_stdin(
        &["user", "add", "alice", "--password-stdin"],
        "correct-horse\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli.ok(&["user", "grant", "alice", "/team/docs", "readonly"]);
    let users = cli.json(&["user", "list", "--json"]);
    let alice = &users.as_array().unwrap()[0];
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["grants"][0]["path"], "/team/docs");
    assert_eq!(alice["grants"][0]["permission"], "readonly");
    assert!(alice.get("password_hash").is_none());

    let key = cli.json(&[
        "key",
        "create",
        "--user",
        "alice",
        "--name",
        "Deploy Bot",
        "--path",
        "team/docs",
        "--permission-set",
        "readonly",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--json",
    ]);
    let secret = key["key"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(key["name"], "Deploy Bot");
    assert_eq!(key["user_id"], alice["id"]);
    assert_eq!(key["path"], "team/docs");
    assert_eq!(key["expires_at"], "2099-01-01T00:00:00Z");

    let site = cli.json(&["key", "create", "--site-wide", "--name", "backup", "--json"]);
    assert!(site["user_id"].is_null());

    let listed = cli.ok(&["key", "list", "--json"]);
    assert!(!listed.contains(secret), "key list never shows secrets");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let id = key["id"].to_string();
    cli.ok(&["key", "revoke", &id]);
    assert!(cli.fails(&["key", "revoke", &id]).contains("no such"));
    cli.ok(&["user", "disable", "alice"]);
    assert_eq!(cli.json(&["user", "list", "--json"])[0]["disabled"], true);

    let audit = cli.json(&["audit", "tail", "-n", "50", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "user_create",
        "permission_create",
        "api_key_create",
        "api_key_delete",
        "user_update",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["interface"] == "cli")
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_changes_nothing() {
    let cli = Cli::new();
    cli.with_stdin(
        &["user", "add", "bob", "--password-stdin"],
        "long-enough-pw\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["user", "add", "@api-1"], "may not start with @"),
        (vec!["user", "add", "bob"], "already taken"),
        (vec!["user", "add", "a/b"], "may contain only"),
        (vec!["user", "grant", "bob", "/x", "admin"], "level must be"),
        (
            vec!["user", "grant", "nobody", "/x", "full"],
            "no such user",
        ),
        (
            vec!["user", "grant", "bob", "/a/\u{1}b", "full"],
            "control character",
        ),
        (
            vec!["key", "create", "--user", "bob", "--name", "12345"],
            "all digits",
        ),
        (
            vec![
                "key", "create", "--user", "bob", "--name", "k", "--path", "/abs",
            ],
            "neither start nor end",
        ),
        (
            vec![
                "key", "create", "--user", "bob", "--name", "k", "--path", "a/../b",
            ],
            "segments",
        ),
        (
            vec![
                "key",
                "create",
                "--user",
                "bob",
                "--name",
                "k",
                "--permission-set",
                "root",
            ],
            "permission-set",
        ),
        (
            vec![
                "key",
                "create",
                "--user",
                "bob",
                "--name",
                "k",
                "--expires-at",
                "tomorrow",
            ],
            "RFC 3339",
        ),
        (
            vec![
                "key",
                "create",
                "--user",
                "bob",
                "--name",
                "k",
                "--expires-at",
                "2001-01-01",
            ],
            "future",
        ),
        (vec!["key", "create", "--name", "k"], "required"),
    ];
    for (args, needle) in cases {
        let err = cli.fails(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let short = cli.with_stdin(&["user", "passwd", "bob", "--password-stdin"], "short\n");
    assert!(!short.status.success());
    assert_eq!(cli.json(&["key", "list", "--json"]), serde_json::json!([]));
    assert_eq!(
        cli.json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_bad_config_stops_before_anything_starts_with_a_one_line_reason() {
    let cli = Cli::new();
    let config = cli.dir.path().join("bad.toml");
    std::fs::write(&config, "[sftp]\nlisten = \"not-an-address\"\n").unwrap();
    let out = cli
        .command(&["--config", config.to_str().unwrap(), "serve"])
        .env_remove("FILEGATE_SFTP_LISTEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("sftp.listen"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::write(&config, "[sftp]\nport = 22\n").unwrap();
    let err = cli.fails(&["--config", config.to_str().unwrap(), "migrate"]);
    assert!(err.contains("unknown field"), "{err}");
    let err = cli
        .command(&["migrate"])
        .env("FILEGATE_API_LISTEN", "8081")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&err.stderr).contains("FILEGATE_API_LISTEN"));
}

#[test]
fn the_first_start_creates_an_admin_and_prints_its_password_once() {
    let cli = Cli::new();
    let mut child = cli
        .command(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cli.dir.path().join("filegate.db").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Give it a moment to create the admin, then stop it as a service manager would.
    let store_ready = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let users = cli.run(&["user", "list", "--json"]);
        if users.status.success() && String::from_utf8_lossy(&users.stdout).contains("admin") {
            break;
        }
        assert!(
            std::time::Instant::now() < store_ready,
            "admin was never created"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits cleanly on SIGTERM");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(
        stdout.contains("created site admin \"admin\" with password "),
        "{stdout}"
    );
    let users = cli.json(&["user", "list", "--json"]);
    assert_eq!(users[0]["site_admin"], true);
    assert!(cli.dir.path().join("files").is_dir());

    // A second start creates nobody and prints no password.
    let mut again = cli
        .command(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Command::new("kill")
        .args(["-TERM", &again.id().to_string()])
        .status()
        .unwrap();
    again.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(again.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(!stdout.contains("password"), "{stdout}");
    assert_eq!(
        cli.json(&["user", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_cli_works_on_postgresql_too() {
    let Ok(admin_url) = std::env::var(filegate::test_support::POSTGRES_ENV) else {
        eprintln!(
            "note: {} unset: PostgreSQL CLI test not run",
            filegate::test_support::POSTGRES_ENV
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(filegate::test_support::TestDb::postgres())
        .unwrap();
    let _ = admin_url;
    let mut cli = Cli::new();
    cli.database_url = Some(db.url.clone());
    cli.with_stdin(
        &["user", "add", "pg-user", "--password-stdin"],
        "pg-password-1\n",
    );
    let key = cli.json(&[
        "key", "create", "--user", "pg-user", "--name", "pg key", "--json",
    ]);
    assert_eq!(key["key"].as_str().unwrap().len(), 64);
    assert_eq!(
        cli.json(&["key", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(cli.ok(&["migrate"]).contains("postgres"));
    rt.block_on(db.drop());
}

#[test]
fn granting_a_folder_or_giving_a_key_a_path_makes_the_folder() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "bob"]);
    let storage = cli.dir.path().join("files");
    assert!(!storage.join("projects").exists());
    cli.ok(&["user", "grant", "bob", "/projects/2026", "full"]);
    assert!(storage.join("projects/2026").is_dir());
    cli.ok(&[
        "key",
        "create",
        "--user",
        "bob",
        "--name",
        "drop",
        "--path",
        "inbox/bob",
    ]);
    assert!(storage.join("inbox/bob").is_dir());
    // Granting a folder that exists changes nothing on disk and is no error.
    std::fs::write(storage.join("projects/2026/keep.txt"), b"x").unwrap();
    cli.ok(&["user", "grant", "bob", "/projects", "readonly"]);
    assert!(storage.join("projects/2026/keep.txt").is_file());

    let audit = cli.json(&["audit", "tail", "-n", "50", "--json"]);
    let made: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "mkdir" && r["result"] == "ok")
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        made,
        ["/projects", "/projects/2026", "/inbox", "/inbox/bob"],
        "each folder made is audited once"
    );
}

#[test]
fn user_totp_enroll_prints_the_uri_and_ten_recovery_codes_once_and_list_shows_it() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "tina"]);
    let out = cli.ok(&["user", "totp", "enroll", "tina"]);
    assert!(
        out.contains("otpauth://totp/filegate:tina?secret="),
        "{out}"
    );
    let codes = out
        .lines()
        .filter(|l| {
            let l = l.trim();
            l.len() == 11 && l.as_bytes()[5] == b'-'
        })
        .count();
    assert_eq!(codes, 10, "{out}");
    // The secret is in the store only sealed (neither base32 nor raw hex in any file).
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    for file in ["filegate.db", "filegate.db-wal"] {
        let bytes = std::fs::read(cli.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{file}"
        );
    }
    let list = cli.json(&["user", "list", "--json"]);
    let tina = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "tina")
        .unwrap();
    assert_eq!(tina["two_factor"], true);
    assert!(
        cli.ok(&["user", "list"])
            .lines()
            .any(|l| l.contains("tina") && l.contains(" on "))
    );
    // Enrolling again is refused while it is on; disable, then disabling again fails.
    assert!(
        cli.fails(&["user", "totp", "enroll", "tina"])
            .contains("disable it first")
    );
    cli.ok(&["user", "totp", "disable", "tina"]);
    assert!(
        cli.fails(&["user", "totp", "disable", "tina"])
            .contains("no two-factor")
    );
    let list = cli.json(&["user", "list", "--json"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|u| u["two_factor"] == false)
    );
}

#[test]
fn serve_on_a_bucket_that_does_not_exist_stops_at_start_with_one_line() {
    let Some(moto) =
        filegate::test_support::S3Server::start(filegate::test_support::S3Provider::Moto)
    else {
        eprintln!("SKIPPED serve_on_a_bucket_that_does_not_exist...: no moto_server");
        return;
    };
    let cli = Cli::new();
    let config = cli.dir.path().join("s3.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"s3://no-such-bucket/files\"\n\n[storage.s3]\nendpoint = \"{}\"\npath_style = true\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let out = cli
        .command(&["--config", config.to_str().unwrap(), "serve"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "very-secret-value")
        .env("AWS_REGION", "us-east-1")
        .env("FILEGATE_LOG", "off")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("s3://no-such-bucket/files"), "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    assert!(!err.contains("very-secret-value"), "{err}");
}

/// Files staged for uploads in progress under `data/uploads-in-progress` (the lock file is
/// not one).
fn staged(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join("uploads-in-progress"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name() != ".lock" && e.path().is_file())
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Admin commands run beside a serving process: they must leave its uploads in progress
/// alone (they once cleared its staging folder as if after a crash, so the upload failed at
/// its end). A second `serve` on the same data folder stops at start with one line.
#[test]
fn admin_commands_beside_a_running_server_leave_its_uploads_in_progress_alone() {
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let cli = Cli::new();
    let out = cli.with_stdin(
        &["user", "add", "alice", "--password-stdin"],
        "correct-horse\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli.ok(&["user", "grant", "alice", "/inbox", "full"]);
    let mut serve = cli
        .command(&["serve"])
        .env("FILEGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = serve.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, after)) = line.split_once("webdav listening on ") {
                let _ = tx.send(after.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let webdav: std::net::SocketAddr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve starts")
        .parse()
        .unwrap();

    // An upload in progress: half of a 2 MB body sent, the rest held back.
    const LEN: usize = 2_000_000;
    let body: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut put = TcpStream::connect(webdav).unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:correct-horse");
    write!(
        put,
        "PUT /inbox/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
         Content-Length: {LEN}\r\n\r\n"
    )
    .unwrap();
    put.write_all(&body[..LEN / 2]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while staged(cli.dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "the upload is never staged");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Admin commands meanwhile, and a second server on the same data folder.
    let out = cli.with_stdin(
        &["user", "add", "bob", "--password-stdin"],
        "battery-staple\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli.ok(&["user", "grant", "bob", "/bob", "full"]);
    cli.ok(&["user", "list", "--json"]);
    let second = cli
        .command(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "a second serve on the same data folder starts: {stderr}"
    );
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("in use by another filegate process"))
        .collect();
    assert_eq!(said.len(), 1, "one line says why: {stderr}");
    assert_eq!(
        staged(cli.dir.path()).len(),
        1,
        "the upload's staging file is still there"
    );

    // The upload completes, byte for byte.
    put.write_all(&body[LEN / 2..]).unwrap();
    put.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = [0u8; 12];
    put.read_exact(&mut head).unwrap();
    let status = String::from_utf8_lossy(&head).into_owned();
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");
    let stored = std::fs::read(cli.dir.path().join("files/inbox/big.bin")).unwrap();
    assert!(stored == body, "the file is the bytes sent");

    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(serve.wait().unwrap().success(), "serve exits cleanly");
}
