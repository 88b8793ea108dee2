//! A local file open for reading: tokio's `File` for streaming and seeking, plus a chunked
//! read that fills the returned buffer with one blocking call.

use std::io;

use crate::files::storage::{FileReader, LocalSource, read_chunk_via_async_read};

/// A file open for reading. `AsyncRead`/`AsyncSeek` are tokio's; `read_chunk` reads with
/// one blocking call straight into the buffer it returns (tokio's `File` reads into a buffer
/// of its own and copies from it), which is what makes a large GET or download cheap.
pub(super) struct LocalReader {
    /// `None` only while a `read_chunk` has the file on the blocking pool.
    pub(super) file: Option<tokio::fs::File>,
    /// Set once `poll_read` was used: tokio may then hold read-ahead bytes, so `read_chunk`
    /// must go through it too.
    pub(super) streamed: bool,
}

impl LocalReader {
    fn file(&mut self) -> io::Result<&mut tokio::fs::File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file lost by an interrupted read"))
    }
}

impl tokio::io::AsyncRead for LocalReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.streamed = true;
        match self.file() {
            Ok(file) => std::pin::Pin::new(file).poll_read(cx, buf),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

impl tokio::io::AsyncSeek for LocalReader {
    fn start_seek(mut self: std::pin::Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        std::pin::Pin::new(self.file()?).start_seek(position)
    }
    fn poll_complete(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<u64>> {
        match self.file() {
            Ok(file) => std::pin::Pin::new(file).poll_complete(cx),
            Err(e) => std::task::Poll::Ready(Err(e)),
        }
    }
}

#[async_trait::async_trait]
impl FileReader for LocalReader {
    /// The file itself, unless `poll_read` was used (tokio may hold bytes read ahead, and the
    /// descriptor's position is then past the logical one).
    fn local_source(&mut self) -> Option<LocalSource<'_>> {
        use std::os::fd::AsFd;
        if self.streamed {
            return None;
        }
        let file = self.file.as_ref()?;
        let pos = rustix::fs::tell(file).ok()?;
        Some(LocalSource {
            fd: file.as_fd(),
            pos,
        })
    }

    async fn read_chunk(&mut self, max: usize) -> io::Result<bytes::Bytes> {
        if self.streamed {
            return read_chunk_via_async_read(self, max).await;
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("file lost"))?;
        // Fails only while tokio still has an operation of its own in flight.
        let std_file = match file.try_into_std() {
            Ok(f) => f,
            Err(file) => {
                self.file = Some(file);
                return read_chunk_via_async_read(self, max).await;
            }
        };
        let (std_file, read) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut buf = Vec::with_capacity(max);
            let read = (&std_file)
                .take(max as u64)
                .read_to_end(&mut buf)
                .map(|_| buf);
            (std_file, read)
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(tokio::fs::File::from_std(std_file));
        Ok(bytes::Bytes::from(read?))
    }
}
