//! The gateway's storage as the tests see it: set up files and check what landed, through
//! the same storage seam (`files::Storage`) the gateway serves, whatever the backend (a local
//! folder or an S3 bucket). Async helpers for async tests; `*_blocking` ones for the code of
//! blocking clients that runs on `spawn_blocking` threads.

use std::sync::Arc;

use filegate::config::Config;
use filegate::files::{Overwrite, Storage, StorageErrorKind, WriteMode};
use filegate::path::SitePath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A handle on the storage a gateway serves as `/` (cheap to clone).
#[derive(Clone)]
pub struct Stored {
    storage: Arc<dyn Storage>,
    runtime: tokio::runtime::Handle,
}

fn site(rel: &str) -> SitePath {
    SitePath::parse(&format!("/{}", rel.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{rel:?} is not a site path: {e:?}"))
}

impl Stored {
    /// Opens the storage `config` names, as the gateway does, with a data folder of its own
    /// (`data_dir`: a local backend's staging folder, never the gateway's).
    pub async fn open(config: &Config, data_dir: std::path::PathBuf) -> Stored {
        let mut config = config.clone();
        config.server.data_dir = data_dir;
        let storage = filegate::files::open_storage(&config, filegate::files::StorageRole::Admin)
            .await
            .expect("open the gateway's storage for the test")
            .storage;
        Stored {
            storage,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Writes a file (replacing any), making its parent folders.
    pub async fn write(&self, rel: &str, content: &[u8]) {
        let path = site(rel);
        if let Some(parent) = path.parent() {
            self.mkdir_path(&parent).await;
        }
        let mut upload = self
            .storage
            .begin_write(&path, WriteMode::Replace, Overwrite::Allow)
            .await
            .unwrap_or_else(|e| panic!("write {rel}: {e}"));
        upload.writer().write_all(content).await.unwrap();
        upload.writer().flush().await.unwrap();
        upload
            .commit()
            .await
            .unwrap_or_else(|e| panic!("commit {rel}: {e}"));
    }

    /// A file's bytes; `None` when there is no file there.
    pub async fn read(&self, rel: &str) -> Option<Vec<u8>> {
        let path = site(rel);
        match self.storage.metadata(&path).await {
            Ok(m) if !m.is_dir() => {}
            _ => return None,
        }
        let mut reader = match self.storage.open_read(&path).await {
            Ok(reader) => reader,
            Err(e) if e.kind == StorageErrorKind::NotFound => return None,
            Err(e) => panic!("read {rel}: {e}"),
        };
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await.unwrap();
        Some(bytes)
    }

    /// A file's bytes as text; `None` when there is no file there.
    pub async fn read_string(&self, rel: &str) -> Option<String> {
        self.read(rel)
            .await
            .map(|b| String::from_utf8(b).expect("utf-8"))
    }

    /// Whether a file or folder exists there.
    pub async fn exists(&self, rel: &str) -> bool {
        self.storage.metadata(&site(rel)).await.is_ok()
    }

    pub async fn is_file(&self, rel: &str) -> bool {
        self.storage
            .metadata(&site(rel))
            .await
            .is_ok_and(|m| !m.is_dir())
    }

    pub async fn is_dir(&self, rel: &str) -> bool {
        self.storage
            .metadata(&site(rel))
            .await
            .is_ok_and(|m| m.is_dir())
    }

    /// Makes a folder and its parents (no error when they exist).
    pub async fn mkdir(&self, rel: &str) {
        self.mkdir_path(&site(rel)).await;
    }

    async fn mkdir_path(&self, path: &SitePath) {
        let mut at = SitePath::root();
        for segment in path.segments() {
            at = at.join(segment).unwrap();
            match self.storage.create_dir(&at).await {
                Ok(()) => {}
                Err(e) if e.kind == StorageErrorKind::AlreadyExists => {}
                Err(e) => panic!("mkdir {at}: {e}"),
            }
        }
    }

    /// The names in a folder, sorted (empty when it does not exist).
    pub async fn list(&self, rel: &str) -> Vec<String> {
        let Ok(mut chunks) = self.storage.read_dir_chunks(&site(rel)).await else {
            return Vec::new();
        };
        let mut names = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            names.extend(chunk.into_iter().map(|e| e.name));
        }
        names.sort();
        names
    }

    /// Removes a file, or a folder with everything in it (as an operator or a wiped volume
    /// would); nothing when it does not exist.
    pub async fn remove_all(&self, rel: &str) {
        let path = site(rel);
        let Ok(meta) = self.storage.metadata(&path).await else {
            return;
        };
        if !meta.is_dir() {
            self.storage.remove_file(&path).await.unwrap();
            return;
        }
        for name in self.list(rel).await {
            Box::pin(self.remove_all(&format!("{}/{name}", rel.trim_end_matches('/')))).await;
        }
        self.storage.remove_dir(&path).await.unwrap();
    }

    /// `read`, from a blocking thread (`spawn_blocking`).
    pub fn read_blocking(&self, rel: &str) -> Option<Vec<u8>> {
        self.runtime.block_on(self.read(rel))
    }

    /// `exists`, from a blocking thread.
    pub fn exists_blocking(&self, rel: &str) -> bool {
        self.runtime.block_on(self.exists(rel))
    }

    /// `list`, from a blocking thread.
    pub fn list_blocking(&self, rel: &str) -> Vec<String> {
        self.runtime.block_on(self.list(rel))
    }
}
