//! Opening the storage the config names: the `[storage] url` backend for `/`, and
//! (`[[storage.mounts]]`) folders of the site on backends of their own.

use std::path::Path;
use std::sync::Arc;

use super::local::{LocalStorage, Symlinks};
use super::s3::S3Storage;
use super::storage::Storage;
use crate::config::{Config, StorageUrl};

/// Why the configured storage cannot be used (one line, naming the URL).
#[derive(Debug, thiserror::Error)]
pub enum OpenStorageError {
    #[error("cannot open file storage at {url}: {source}")]
    Local { url: String, source: std::io::Error },
    #[error("cannot use storage {url}: {message}")]
    Unusable { url: String, message: String },
}

/// The site's storage, as configured (`fill_defaults` has set `storage.url`).
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, OpenStorageError> {
    let root = config
        .storage
        .url
        .clone()
        .unwrap_or_else(|| StorageUrl::File(config.server.storage_dir.clone()));
    open_url(config, &root, "root").await
}

/// One backend. `name` tells uses apart where a backend keeps local state (a local backend's
/// staging folder under `data_dir`).
async fn open_url(
    config: &Config,
    url: &StorageUrl,
    name: &str,
) -> Result<Arc<dyn Storage>, OpenStorageError> {
    match url {
        StorageUrl::File(dir) => {
            let staging = staging_dir(&config.server.data_dir, name);
            let storage =
                LocalStorage::open(dir, &staging).map_err(|source| OpenStorageError::Local {
                    url: url.to_string(),
                    source,
                })?;
            Ok(Arc::new(storage.with_symlinks(Symlinks::following(
                config.server.follow_symlinks,
            ))))
        }
        StorageUrl::S3 { bucket, prefix } => {
            let storage = S3Storage::open(bucket, prefix, &config.storage.s3)
                .await
                .map_err(|err| OpenStorageError::Unusable {
                    url: url.to_string(),
                    message: err.to_string(),
                })?;
            storage.sweep_abandoned_uploads();
            Ok(Arc::new(storage))
        }
    }
}

/// Where a local backend stages uploads: on the data folder's filesystem. The root keeps the
/// historical name.
fn staging_dir(data_dir: &Path, name: &str) -> std::path::PathBuf {
    if name == "root" {
        data_dir.join("uploads-in-progress")
    } else {
        data_dir.join("uploads-in-progress").join(name)
    }
}
