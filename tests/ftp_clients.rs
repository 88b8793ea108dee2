//! FTP with the clients people have (curl, lftp, Python ftplib) over 127.0.0.1: sessions
//! start in the principal's folder, implicit FTPS (`ftps://`), TLS 1.3 with uploads and
//! downloads on protected data connections; and a fresh grant whose folder is missing from
//! storage, used at once over SFTP, FTP and WebDAV.
//!
//! A client that is not installed makes its test say so on stderr ("SKIPPED") and pass
//! without running; the interop image (`tests/interop/apt-packages.txt`) has them all.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Output};

use filegate::identity::GrantLevel::Full;
use filegate::identity::Principal;
use support::TestGateway;

/// Whether `tool` can be run; says loudly when it cannot.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("SKIPPED {test}: `{tool}` is not installed");
    }
    found
}

/// Runs a command off the async workers; returns its output.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run client"))
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a Python script with `args`; asserts it succeeds; returns its stdout.
async fn python(script: &str, args: &[String]) -> String {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script).args(args);
    let out = run(command).await;
    assert!(out.status.success(), "python failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_port(addr: SocketAddr) -> (String, String) {
    (addr.ip().to_string(), addr.port().to_string())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Python helpers: an implicit-FTPS `FTP_TLS` (the socket is wrapped at connect), a context
/// accepting the self-signed certificate, pinned to one TLS version, and a round trip.
const PY_PRELUDE: &str = r#"
import ftplib, io, os, ssl, sys

def context(version):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx.minimum_version = v
    ctx.maximum_version = v
    return ctx

class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """Implicit FTPS: TLS from the first byte."""
    def connect(self, host, port, timeout=30):
        self.host, self.port, self.timeout = host, port, timeout
        import socket
        self.sock = self.context.wrap_socket(
            socket.create_connection((host, port), timeout), server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

def roundtrip(ftp, name, data):
    ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    out = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", out.write)
    assert out.getvalue() == data, f"{name}: round trip differs"
"#;

#[tokio::test]
async fn clients_land_in_their_folder_and_relative_paths_work() {
    let gw = TestGateway::start().await;
    gw.user("lena", "lena-password", &[("/projects", Full)])
        .await;
    gw.admin("root", "root-password").await;
    let (host, port) = host_port(gw.addr("ftp"));
    let data = random_bytes(1_500_000);

    // ftplib: PWD answers the folder; a relative STOR lands in it. An admin starts at "/".
    let script = format!(
        "{PY_PRELUDE}\n{}",
        r#"
host, port = sys.argv[1], int(sys.argv[2])
ftp = ftplib.FTP()
ftp.connect(host, port)
ftp.login("lena", "lena-password")
assert ftp.pwd() == "/projects", ftp.pwd()
roundtrip(ftp, "rel.bin", os.urandom(100_000))
assert "rel.bin" in ftp.nlst(), ftp.nlst()
ftp.cwd("/")
assert ftp.pwd() == "/"
assert ftp.nlst() == ["projects"], ftp.nlst()
ftp.quit()
admin = ftplib.FTP()
admin.connect(host, port)
admin.login("root", "root-password")
assert admin.pwd() == "/", admin.pwd()
admin.quit()
print("ok")
"#
    );
    assert_eq!(
        python(&script, &[host.clone(), port.clone()]).await.trim(),
        "ok"
    );
    assert!(gw.stored().is_file("projects/rel.bin").await);

    // curl: a URL path is relative to the login folder.
    let dir = filegate::test_support::TempDir::new("ftp-clients");
    let file = dir.path().join("up.bin");
    std::fs::write(&file, &data).unwrap();
    if have("curl", "curl part") {
        let mut up = Command::new("curl");
        up.args(["-sS", "-T"])
            .arg(&file)
            .arg(format!("ftp://lena:lena-password@{host}:{port}/curl.bin"));
        let out = run(up).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            gw.read("projects/curl.bin").await.unwrap(),
            data,
            "curl's relative upload landed in /projects"
        );
        let mut list = Command::new("curl");
        list.args(["-sS", "--list-only"])
            .arg(format!("ftp://lena:lena-password@{host}:{port}/"));
        let out = run(list).await;
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(names.contains("curl.bin"), "{}", text(&out));
    }

    // lftp: pwd, relative put and get, over plain FTP.
    if have("lftp", "lftp part") {
        let back = dir.path().join("back.bin");
        let mut lftp = Command::new("lftp");
        lftp.current_dir(dir.path())
            .args(["-u", "lena,lena-password", "-p", &port, "-e"])
            .arg(
                "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 1; pwd; \
                 put up.bin -o lftp.bin; get lftp.bin -o back.bin; ls; quit",
            )
            .arg(&host);
        let out = run(lftp).await;
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // lftp's `pwd` shows its login folder as the bare URL; its relative `ls` lists it.
        assert!(stdout.contains("rel.bin"), "lftp's ls: {stdout}");
        assert!(
            gw.read("projects/lftp.bin").await.as_ref() == Some(&data),
            "lftp's upload: {}",
            text(&out)
        );
        assert_eq!(std::fs::read(&back).unwrap(), data);
    }
    gw.stop().await;
}

#[tokio::test]
async fn implicit_ftps_and_tls_13_work_with_curl_ftplib_and_lftp() {
    let gw = TestGateway::start_with(|c| {
        c.ftp.implicit_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    gw.user("ivo", "ivo-password", &[("/ivo", Full)]).await;
    let (host, port) = host_port(gw.addr("ftp"));
    let (_, implicit_port) = host_port(gw.addr("ftps-implicit"));
    let dir = filegate::test_support::TempDir::new("ftps-clients");
    let data = random_bytes(3_000_000);
    let file = dir.path().join("one.bin");
    std::fs::write(&file, &data).unwrap();

    // ftplib, implicit and explicit, TLS 1.3 and 1.2: upload, download, listing; the
    // negotiated version is the one asked for. Data connections are protected (PROT P).
    let script = format!(
        "{PY_PRELUDE}\n{}",
        r#"
host, explicit, implicit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(sys.argv[4], "rb").read()
for version in ["1.3", "1.2"]:
    ftp = ImplicitFTP_TLS(context=context(version))
    welcome = ftp.connect(host, implicit)
    assert welcome.startswith("220"), welcome
    assert ftp.sock.version() == "TLSv" + version, ftp.sock.version()
    ftp.login("ivo", "ivo-password")
    assert ftp.pwd() == "/ivo", ftp.pwd()
    ftp.prot_p()
    roundtrip(ftp, f"implicit-{version}.bin", data)
    assert f"implicit-{version}.bin" in ftp.nlst()
    ftp.quit()

    ftp = ftplib.FTP_TLS(context=context(version))
    ftp.connect(host, explicit)
    ftp.auth()
    assert ftp.sock.version() == "TLSv" + version, ftp.sock.version()
    ftp.login("ivo", "ivo-password")
    ftp.prot_p()
    roundtrip(ftp, f"explicit-{version}.bin", data)
    ftp.quit()

# Implicit without PROT P: data is protected anyway (the client wraps it as well).
ftp = ImplicitFTP_TLS(context=context("1.3"))
ftp.connect(host, implicit)
ftp.login("ivo", "ivo-password")
ftp._prot_p = True
out = io.BytesIO()
ftp.retrbinary("RETR implicit-1.3.bin", out.write)
assert out.getvalue() == data
# A second AUTH TLS on an implicit connection is refused.
try:
    ftp.voidcmd("AUTH TLS")
    raise SystemExit("AUTH TLS accepted on a TLS channel")
except ftplib.error_perm as e:
    assert str(e).startswith("503"), e
ftp.quit()
print("ok")
"#
    );
    let args = [
        host.clone(),
        port.clone(),
        implicit_port.clone(),
        file.to_str().unwrap().to_owned(),
    ];
    assert_eq!(python(&script, &args).await.trim(), "ok");
    for name in [
        "implicit-1.3.bin",
        "implicit-1.2.bin",
        "explicit-1.3.bin",
        "explicit-1.2.bin",
    ] {
        assert!(
            gw.read(&format!("ivo/{name}")).await.as_ref() == Some(&data),
            "{name} differs"
        );
    }

    // curl: ftps:// is implicit FTPS; upload and download (TLS 1.3 and 1.2), and explicit
    // FTPS with --ssl-reqd.
    if have("curl", "curl part") {
        for (flag, name) in [("--tlsv1.3", "curl13.bin"), ("--tls-max", "curl12.bin")] {
            let mut tls: Vec<&str> = vec![flag];
            if flag == "--tls-max" {
                tls.push("1.2");
            }
            let mut up = Command::new("curl");
            up.args(["-sS", "-k"])
                .args(&tls)
                .arg("-T")
                .arg(&file)
                .arg(format!(
                    "ftps://ivo:ivo-password@{host}:{implicit_port}/{name}"
                ));
            let out = run(up).await;
            assert!(out.status.success(), "curl ftps upload: {}", text(&out));
            let back = dir.path().join(format!("{name}.back"));
            let mut down = Command::new("curl");
            down.args(["-sS", "-k"])
                .args(&tls)
                .arg("-o")
                .arg(&back)
                .arg(format!(
                    "ftps://ivo:ivo-password@{host}:{implicit_port}/{name}"
                ));
            let out = run(down).await;
            assert!(out.status.success(), "curl ftps download: {}", text(&out));
            assert!(
                std::fs::read(&back).unwrap() == data,
                "curl {name} round trip"
            );
            assert!(gw.read(&format!("ivo/{name}")).await.as_ref() == Some(&data));
        }
        let mut explicit = Command::new("curl");
        explicit
            .args(["-sS", "-k", "--ssl-reqd", "--tlsv1.3", "-o"])
            .arg(dir.path().join("explicit.back"))
            .arg(format!(
                "ftp://ivo:ivo-password@{host}:{port}/implicit-1.3.bin"
            ));
        let out = run(explicit).await;
        assert!(
            out.status.success(),
            "curl explicit TLS 1.3: {}",
            text(&out)
        );
        assert!(std::fs::read(dir.path().join("explicit.back")).unwrap() == data);
        // A plain FTP client on the implicit port gets no greeting in clear.
        let mut plain = Command::new("curl");
        plain.args(["-sS", "--max-time", "5"]).arg(format!(
            "ftp://ivo:ivo-password@{host}:{implicit_port}/implicit-1.3.bin"
        ));
        let out = run(plain).await;
        assert!(!out.status.success(), "plain FTP on the implicit port");
    }

    // lftp: TLS 1.3 (GnuTLS) upload and download on protected data connections, explicit and
    // implicit (ftps://), with the session resumption lftp asks for.
    if have("lftp", "lftp part") {
        for (url, up, down) in [
            (format!("ftp://{host}:{port}"), "lftp-x.bin", "lftp-x.back"),
            (
                format!("ftps://{host}:{implicit_port}"),
                "lftp-i.bin",
                "lftp-i.back",
            ),
        ] {
            let mut lftp = Command::new("lftp");
            lftp.current_dir(dir.path())
                .args(["-d", "-u", "ivo,ivo-password", "-e"])
                .arg(format!(
                    "set cmd:fail-exit yes; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; \
                     set ssl:verify-certificate no; set ssl:priority NORMAL:-VERS-ALL:+VERS-TLS1.3; \
                     set net:max-retries 1; put one.bin -o {up}; get {up} -o {down}; ls; quit"
                ))
                .arg(&url);
            let out = run(lftp).await;
            assert!(out.status.success(), "lftp {url}: {}", text(&out));
            assert!(
                gw.read(&format!("ivo/{up}")).await.as_ref() == Some(&data),
                "lftp {url} upload: {}",
                text(&out)
            );
            assert!(
                std::fs::read(dir.path().join(down)).unwrap() == data,
                "lftp {url} download"
            );
        }
    }
    gw.stop().await;
}

/// Deletes `rel` from storage (as an operator or a wiped volume would).
async fn wipe(gw: &TestGateway, rel: &str) {
    gw.stored().remove_all(rel).await;
    assert!(!gw.exists(rel).await);
}

#[tokio::test]
async fn a_fresh_grant_is_usable_at_once_over_sftp_ftp_and_webdav_even_when_its_folder_is_gone() {
    let gw = TestGateway::start().await;
    let accounts = &gw.gateway.core.accounts;
    let nia = gw.user("nia", "nia-password", &[]).await;
    accounts
        .grant(&Principal::cli(), nia, "/projects", Full)
        .await
        .unwrap();
    assert!(
        gw.stored().is_dir("projects").await,
        "the grant made its folder"
    );

    // SFTP: the folder deleted from disk; the first session lists "/" and "/projects".
    wipe(&gw, "projects").await;
    let sftp = support::sftp_client::login(gw.addr("sftp"), "nia", "nia-password")
        .await
        .expect("sftp login");
    assert_eq!(sftp.list("/").await.unwrap(), vec!["projects".to_owned()]);
    assert_eq!(sftp.list("/projects").await.unwrap(), Vec::<String>::new());
    drop(sftp);

    // FTP: deleted again; CWD /projects and a relative upload work at once.
    wipe(&gw, "projects").await;
    let (host, port) = host_port(gw.addr("ftp"));
    let script = r#"
import ftplib, io, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]))
ftp.login("nia", "nia-password")
assert ftp.pwd() == "/projects"
ftp.cwd("/")
assert ftp.nlst() == ["projects"], ftp.nlst()
ftp.cwd("/projects")
ftp.storbinary("STOR first.txt", io.BytesIO(b"first"))
ftp.quit()
print("ok")
"#;
    assert_eq!(python(script, &[host, port]).await.trim(), "ok");
    assert_eq!(gw.read("projects/first.txt").await.unwrap(), b"first");

    // WebDAV: deleted again; MKCOL /projects/x is 201, PROPFIND / shows the folder.
    wipe(&gw, "projects").await;
    if have("curl", "WebDAV part") {
        let dav = gw.addr("webdav");
        let mut mkcol = Command::new("curl");
        mkcol
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "MKCOL",
            ])
            .args(["-u", "nia:nia-password"])
            .arg(format!("http://{dav}/projects/x"));
        let out = run(mkcol).await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "201",
            "{}",
            text(&out)
        );
        assert!(gw.stored().is_dir("projects/x").await);
        wipe(&gw, "projects").await;
        let mut propfind = Command::new("curl");
        propfind
            .args(["-sS", "-X", "PROPFIND", "-H", "Depth: 1"])
            .args(["-u", "nia:nia-password"])
            .arg(format!("http://{dav}/"));
        let out = run(propfind).await;
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(body.contains("/projects/"), "{}", text(&out));
    }

    // Each time the folder was made again, and audited once: by nia, as a mkdir.
    let made: Vec<_> = gw
        .audit()
        .await
        .into_iter()
        .filter(|r| r.reason.as_deref() == Some("scope root made on first use"))
        .collect();
    let expected = if have("curl", "WebDAV count") { 4 } else { 2 };
    assert_eq!(made.len(), expected, "{made:#?}");
    for record in &made {
        assert_eq!(record.action, "mkdir");
        assert_eq!(record.path.as_deref(), Some("/projects"));
        assert_eq!(record.username.as_deref(), Some("nia"));
        assert_eq!(record.result, "ok");
    }
    let mut protocols: Vec<&str> = made.iter().map(|r| r.protocol.as_str()).collect();
    protocols.sort_unstable();
    let mut want = vec!["ftp", "sftp"];
    if expected == 4 {
        want.extend(["webdav", "webdav"]);
    }
    assert_eq!(protocols, want);
    gw.stop().await;
}
