//! Small protocol clients shared by the adversarial tests: a WebDAV client over `reqwest`,
//! blocking FTP helpers over `suppaftp`, and a REST API caller.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream};

use crate::support::TestGateway;

/// A WebDAV client for one login.
pub struct Dav {
    pub http: reqwest::Client,
    pub base: String,
    pub login: String,
    pub password: String,
}

/// One WebDAV answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub const PATCH_COLOR: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"#;
pub const LOCK_EXCLUSIVE: &str = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>adversary</D:owner></D:lockinfo>"#;

impl Dav {
    pub fn new(gw: &TestGateway, login: &str, password: &str) -> Dav {
        Dav {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            base: format!("http://{}", gw.addr("webdav")),
            login: login.into(),
            password: password.into(),
        }
    }

    /// Sends one request; `Err` when the connection failed (dropped, reset, timed out).
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, String> {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.login, Some(&self.password))
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = req.send().await.map_err(|e| format!("{e:?}"))?;
        Ok(Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        })
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        self.try_call(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} by {}: connection failed: {e}", self.login))
    }

    pub async fn status(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> StatusCode {
        self.call(method, path, headers, body).await.status
    }

    /// The absolute URL of a site path (for `Destination`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

pub type FtpResult<T> = Result<T, FtpError>;

/// Runs blocking FTP client code off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Signs in over plain FTP, binary mode.
pub fn ftp_login(addr: SocketAddr, user: &str, password: &str) -> FtpResult<FtpStream> {
    let mut ftp = FtpStream::connect_timeout(addr, Duration::from_secs(10))?;
    ftp.get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok();
    ftp.login(user, password)?;
    ftp.transfer_type(FileType::Binary)?;
    Ok(ftp)
}

/// The port of an `EPSV` answer: `229 Entering Extended Passive Mode (|||40001|)`.
pub fn epsv_port(body: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(body);
    let inner = text.split("(|||").nth(1)?;
    inner.split('|').next()?.trim().parse().ok()
}

/// REST API calls over a real socket.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(gw: &TestGateway) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            base: format!("http://{}", gw.addr("api")),
        }
    }

    /// `(status, JSON body or Null)`; `auth` is `("X-FilesAPI-Key", secret)` or
    /// `("X-FilesAPI-Auth", token)`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = req.send().await.expect("API request sent");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Signs a user in (`POST /sessions`); returns the session token.
    pub async fn session(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/rest/v1/sessions",
                None,
                Some(serde_json::json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "session for {username}: {body}"
        );
        body["id"].as_str().expect("session id").to_owned()
    }
}

/// Tests that may use most of the process's descriptors run alone (`exclusive`); every other
/// test of this binary holds `shared` for its whole run.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    GATE.read().await
}

pub async fn exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    GATE.write().await
}

/// Signs in over plain FTP from `source`, with data connections from `source` too. Call from
/// a blocking thread of the runtime (`blocking`).
pub fn ftp_login_from(
    addr: SocketAddr,
    source: std::net::IpAddr,
    user: &str,
    password: &str,
) -> Result<FtpStream, String> {
    use crate::support::net::std_tcp_from;
    let stream = std_tcp_from(addr, source).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let handle = tokio::runtime::Handle::current();
    let mut ftp = FtpStream::connect_with_stream(stream)
        .map_err(|e| format!("greeting: {e}"))?
        .passive_stream_builder(move |data: SocketAddr| {
            let _entered = handle.enter();
            std_tcp_from(data, source).map_err(FtpError::ConnectionError)
        });
    ftp.login(user, password)
        .map_err(|e| format!("login: {e}"))?;
    ftp.transfer_type(FileType::Binary)
        .map_err(|e| format!("TYPE: {e}"))?;
    Ok(ftp)
}

/// SFTP calls that never panic: a status other than OK, or a broken session, is an `Err`
/// with a description (the tests here expect refusals and cut-off sessions).
pub mod sftp {
    use russh_sftp::client::error::Error as SftpError;
    use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

    use crate::support::sftp_client::Sftp;

    pub fn status<T>(result: Result<T, SftpError>) -> Result<T, String> {
        match result {
            Ok(v) => Ok(v),
            Err(SftpError::Status(s)) => Err(format!("{:?}", s.status_code)),
            Err(other) => Err(format!("session: {other}")),
        }
    }

    /// `status` without the value.
    pub fn ok<T>(result: Result<T, SftpError>) -> Result<(), String> {
        status(result).map(|_| ())
    }

    pub async fn put(s: &Sftp, path: &str, data: &[u8]) -> Result<(), String> {
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = status(s.raw.open(path, flags, FileAttributes::default()).await)?.handle;
        let wrote = status(s.raw.write(&handle, 0, data.to_vec()).await).map(|_| ());
        let closed = status(s.raw.close(&handle).await).map(|_| ());
        wrote.and(closed)
    }

    pub async fn get(s: &Sftp, path: &str) -> Result<Vec<u8>, String> {
        let handle = status(
            s.raw
                .open(path, OpenFlags::READ, FileAttributes::default())
                .await,
        )?
        .handle;
        let mut out = Vec::new();
        let result = loop {
            match s.raw.read(&handle, out.len() as u64, 32 * 1024).await {
                Ok(data) => out.extend_from_slice(&data.data),
                Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break status::<()>(Err(e)),
            }
        };
        let _ = s.raw.close(&handle).await;
        result.map(|()| out)
    }

    pub async fn list(s: &Sftp, path: &str) -> Result<Vec<String>, String> {
        let handle = status(s.raw.opendir(path).await)?.handle;
        let mut names = Vec::new();
        let result = loop {
            match s.raw.readdir(&handle).await {
                Ok(name) => names.extend(name.files.into_iter().map(|f| f.filename)),
                Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break status::<()>(Err(e)),
            }
        };
        let _ = s.raw.close(&handle).await;
        result.map(|()| names)
    }
}
