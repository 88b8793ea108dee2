//! libunftp's storage seam over the file layer: every FTP command that touches files ends
//! up in `files::Files` with the session's principal. No path or permission logic here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use unftp_core::auth::UserDetail;
use unftp_core::storage::{self, Error, ErrorKind, FEATURE_RESTART, Fileinfo, StorageBackend};

use super::status::ftp_error;
use crate::files::{Download, Files, FsError, Metadata, SendSocket, WriteMode};
use crate::identity::Principal;
use crate::path::SitePath;

/// Bytes moved per read or write on the data connection.
const CHUNK: usize = 1024 * 1024;

/// The signed-in user of an FTP session, and the folder its session starts in.
#[derive(Debug, Clone)]
pub struct FtpUser(pub Arc<Principal>, pub PathBuf);

impl fmt::Display for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display_name())
    }
}

impl UserDetail for FtpUser {
    /// Where the session starts (libunftp, patched, sets the working folder to it at login).
    /// Not a jail: paths are checked by the file layer, `CWD /` still works.
    fn home(&self) -> Option<&Path> {
        Some(&self.1)
    }
}

/// Attributes in libunftp's terms.
#[derive(Debug, Clone)]
pub struct FtpMeta(Metadata);

impl storage::Metadata for FtpMeta {
    fn len(&self) -> u64 {
        self.0.len
    }
    fn is_dir(&self) -> bool {
        self.0.is_dir()
    }
    fn is_file(&self) -> bool {
        !self.0.is_dir()
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> storage::Result<SystemTime> {
        self.0
            .modified
            .ok_or_else(|| Error::from(ErrorKind::LocalError))
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

/// The storage backend: the file layer.
#[derive(Clone)]
/// The file layer, and the connection's byte counters (shown in the session registry).
pub struct FilesBackend(pub Arc<Files>, pub Arc<crate::sessions::Bytes>);

impl fmt::Debug for FilesBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FilesBackend")
    }
}

fn site(path: &Path) -> storage::Result<SitePath> {
    let text = path
        .to_str()
        .ok_or_else(|| ftp_error(FsError::InvalidPath(crate::path::PathError::InvalidUtf8)))?;
    SitePath::parse(text).map_err(|e| ftp_error(e.into()))
}

impl FilesBackend {
    /// Opens `path` for download (policy-checked and audited by the file layer), at `start_pos`.
    async fn open(&self, user: &FtpUser, path: &Path, start_pos: u64) -> storage::Result<Download> {
        let path = site(path)?;
        let mut download = self.0.open_read(&user.0, &path).await.map_err(ftp_error)?;
        if start_pos > 0 {
            download
                .seek(std::io::SeekFrom::Start(start_pos))
                .await
                .map_err(Error::from)?;
        }
        Ok(download)
    }
}

#[async_trait::async_trait]
impl StorageBackend<FtpUser> for FilesBackend {
    type Metadata = FtpMeta;

    fn name(&self) -> &str {
        "filegate"
    }

    fn supported_features(&self) -> u32 {
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<FtpMeta> {
        let path = site(path.as_ref())?;
        self.0
            .stat(&user.0, &path)
            .await
            .map(FtpMeta)
            .map_err(ftp_error)
    }

    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<Vec<Fileinfo<PathBuf, FtpMeta>>> {
        let path = site(path.as_ref())?;
        let entries = self.0.list(&user.0, &path).await.map_err(ftp_error)?;
        Ok(entries
            .into_iter()
            .map(|e| Fileinfo {
                path: PathBuf::from(e.name),
                metadata: FtpMeta(e.metadata),
            })
            .collect())
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> storage::Result<u64>
    where
        W: AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + fmt::Debug,
    {
        let mut download = self.open(user, path.as_ref(), start_pos).await?;
        // Plain data connection and a local file: sendfile(2), no copy through user space.
        if let Some(plain) = libunftp::take_plain_data_socket() {
            let socket = SendSocket::new(plain.fd).map_err(Error::from)?;
            let counter = &self.1;
            if let Some(sent) = download
                .send_to(&socket, plain.idle_timeout, |n| counter.sent(n))
                .await
                .map_err(Error::from)?
            {
                return Ok(sent);
            }
        }
        let mut reader = BufReader::with_capacity(CHUNK, download);
        let mut sent = 0u64;
        loop {
            let chunk = reader.fill_buf().await.map_err(Error::from)?;
            if chunk.is_empty() {
                break;
            }
            output.write_all(chunk).await.map_err(Error::from)?;
            let n = chunk.len();
            self.1.sent(n as u64);
            reader.consume(n);
            sent += n as u64;
        }
        output.flush().await.map_err(Error::from)?;
        Ok(sent)
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
    ) -> storage::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        Ok(Box::new(self.open(user, path.as_ref(), start_pos).await?))
    }

    async fn put<
        P: AsRef<Path> + Send + fmt::Debug,
        R: AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &FtpUser,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> storage::Result<u64> {
        let path = site(path.as_ref())?;
        // STOR replaces atomically; REST+STOR and APPE continue the file in place.
        let mode = if start_pos == 0 {
            WriteMode::Replace
        } else {
            WriteMode::Update
        };
        let mut upload = self
            .0
            .create(&user.0, &path, mode)
            .await
            .map_err(ftp_error)?;
        if start_pos > 0 {
            upload
                .seek(std::io::SeekFrom::Start(start_pos))
                .await
                .map_err(Error::from)?;
        }
        // The buffer is filled before it is written: one write (one trip to the blocking
        // pool) per MiB rather than one per socket read (often 64 KiB).
        let mut buf = vec![0u8; CHUNK];
        loop {
            let mut filled = 0;
            while filled < CHUNK {
                let n = input.read(&mut buf[filled..]).await.map_err(Error::from)?;
                if n == 0 {
                    break;
                }
                filled += n;
                self.1.received(n as u64);
            }
            if filled > 0 {
                upload
                    .write_all(&buf[..filled])
                    .await
                    .map_err(Error::from)?;
            }
            if filled < CHUNK {
                break;
            }
        }
        let written = upload.commit().await.map_err(ftp_error)?;
        Ok(written)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        let path = site(path.as_ref())?;
        self.0.remove_file(&user.0, &path).await.map_err(ftp_error)
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        let path = site(path.as_ref())?;
        self.0.make_dir(&user.0, &path).await.map_err(ftp_error)
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        from: P,
        to: P,
    ) -> storage::Result<()> {
        let (from, to) = (site(from.as_ref())?, site(to.as_ref())?);
        self.0
            .rename(&user.0, &from, &to, true)
            .await
            .map_err(ftp_error)
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        let path = site(path.as_ref())?;
        self.0.remove_dir(&user.0, &path).await.map_err(ftp_error)
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        let path = site(path.as_ref())?;
        let meta = self.0.stat(&user.0, &path).await.map_err(ftp_error)?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(ftp_error(FsError::NotADirectory))
        }
    }
}
