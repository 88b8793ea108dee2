//! An SFTP client for tests: russh with russh-sftp's raw session, no host-key checks.

use std::net::SocketAddr;
use std::sync::Arc;

use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

pub struct Client;

impl russh::client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

pub struct Sftp {
    pub raw: RawSftpSession,
    pub ssh: russh::client::Handle<Client>,
}

pub async fn connect(addr: SocketAddr) -> russh::client::Handle<Client> {
    let config = Arc::new(russh::client::Config::default());
    russh::client::connect(config, addr, Client)
        .await
        .expect("connect")
}

/// Connects from a chosen local address (e.g. 127.0.0.2, so that the server sees another
/// client address than 127.0.0.1).
pub async fn connect_from(addr: SocketAddr, source: &str) -> russh::client::Handle<Client> {
    let stream = tcp_from(addr, source).await;
    let config = Arc::new(russh::client::Config::default());
    russh::client::connect_stream(config, stream, Client)
        .await
        .expect("connect")
}

/// A plain TCP connection from `source` (any port) to `addr`.
pub async fn tcp_from(addr: SocketAddr, source: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.expect("tcp connect")
}

/// Signs in with a password from `source`; `None` when refused.
pub async fn login_from(
    addr: SocketAddr,
    source: &str,
    user: &str,
    password: &str,
) -> Option<Sftp> {
    let mut ssh = connect_from(addr, source).await;
    let result = ssh.authenticate_password(user, password).await.unwrap();
    if !result.success() {
        return None;
    }
    Some(open_sftp(ssh).await)
}

pub async fn open_sftp(ssh: russh::client::Handle<Client>) -> Sftp {
    let channel = ssh.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    let raw = RawSftpSession::new(channel.into_stream());
    raw.init().await.unwrap();
    Sftp { raw, ssh }
}

/// Signs in with a password; `None` when refused.
pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Option<Sftp> {
    let mut ssh = connect(addr).await;
    let result = ssh.authenticate_password(user, password).await.unwrap();
    if !result.success() {
        return None;
    }
    Some(open_sftp(ssh).await)
}

pub fn code<T: std::fmt::Debug>(result: Result<T, SftpError>) -> StatusCode {
    match result {
        Ok(_) => StatusCode::Ok,
        Err(SftpError::Status(status)) => status.status_code,
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

impl Sftp {
    pub async fn put(&self, path: &str, data: &[u8]) -> StatusCode {
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = match self.raw.open(path, flags, FileAttributes::default()).await {
            Ok(h) => h.handle,
            Err(e) => return code::<()>(Err(e)),
        };
        for (i, chunk) in data.chunks(32 * 1024).enumerate() {
            let status = code(
                self.raw
                    .write(&handle, (i * 32 * 1024) as u64, chunk.to_vec())
                    .await,
            );
            if status != StatusCode::Ok {
                return status;
            }
        }
        code(self.raw.close(&handle).await)
    }

    pub async fn get(&self, path: &str) -> Result<Vec<u8>, StatusCode> {
        let handle = self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::default())
            .await
            .map_err(|e| code::<()>(Err(e)))?
            .handle;
        let mut out = Vec::new();
        loop {
            match self.raw.read(&handle, out.len() as u64, 32 * 1024).await {
                Ok(data) => out.extend_from_slice(&data.data),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
                Err(e) => return Err(code::<()>(Err(e))),
            }
        }
        self.raw.close(&handle).await.unwrap();
        Ok(out)
    }

    pub async fn list(&self, path: &str) -> Result<Vec<String>, StatusCode> {
        let handle = self
            .raw
            .opendir(path)
            .await
            .map_err(|e| code::<()>(Err(e)))?
            .handle;
        let mut names = Vec::new();
        loop {
            match self.raw.readdir(&handle).await {
                Ok(name) => names.extend(name.files.into_iter().map(|f| f.filename)),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
                Err(e) => return Err(code::<()>(Err(e))),
            }
        }
        self.raw.close(&handle).await.unwrap();
        names.sort();
        Ok(names)
    }
}

/// Connects from a chosen local address (e.g. 127.0.0.2, so the server sees another client).
pub async fn try_connect_from(
    addr: SocketAddr,
    source: std::net::IpAddr,
) -> std::io::Result<russh::client::Handle<Client>> {
    let stream = super::net::tcp_from(addr, source).await?;
    let config = Arc::new(russh::client::Config::default());
    russh::client::connect_stream(config, stream, Client)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Signs in with a password from a chosen local address; `None` when refused or cut off.
pub async fn try_login_from(
    addr: SocketAddr,
    source: std::net::IpAddr,
    user: &str,
    password: &str,
) -> Option<Sftp> {
    let mut ssh = try_connect_from(addr, source).await.ok()?;
    let result = ssh.authenticate_password(user, password).await.ok()?;
    if !result.success() {
        return None;
    }
    let channel = ssh.channel_open_session().await.ok()?;
    channel.request_subsystem(true, "sftp").await.ok()?;
    let raw = RawSftpSession::new(channel.into_stream());
    raw.init().await.ok()?;
    Some(Sftp { raw, ssh })
}
