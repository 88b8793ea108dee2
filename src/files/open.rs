//! Opening the storage the config names: the `[storage] url` backend for `/`, and
//! (`[[storage.mounts]]`) folders of the site on backends of their own. A serving process
//! claims each backend's staging folder ([`super::staging`]) and starts the S3 sweep of
//! abandoned uploads; an admin command does neither.

use std::path::Path;
use std::sync::Arc;

use super::local::{LocalStorage, Symlinks};
use super::mounts::Mounts;
use super::s3::S3Storage;
use super::staging::{self, StagingClaim};
use super::storage::Storage;
use crate::config::{Config, StorageUrl};
use crate::path::SitePath;

/// Why the configured storage cannot be used (one line, naming the URL).
#[derive(Debug, thiserror::Error)]
pub enum OpenStorageError {
    #[error("cannot open file storage at {url}: {source}")]
    Local { url: String, source: std::io::Error },
    #[error("cannot use storage {url}: {message}")]
    Unusable { url: String, message: String },
}

/// Who opens the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageRole {
    /// The process that serves (or will): claims the staging folders, clears what a crash
    /// left there, sweeps abandoned S3 uploads.
    Serve,
    /// An admin command beside a serving process: reads and makes folders, claims nothing.
    Admin,
}

/// The opened storage, and the staging folders claimed for it (held while it is used).
pub struct OpenedStorage {
    pub storage: Arc<dyn Storage>,
    pub claims: Vec<StagingClaim>,
}

/// The site's storage, as configured (`fill_defaults` has set `storage.url`; `validate`
/// has checked the mounts): the root backend alone, or with each mount's backend at its
/// folder ([`Mounts`]).
pub async fn open_storage(
    config: &Config,
    role: StorageRole,
) -> Result<OpenedStorage, OpenStorageError> {
    let mut claims = Vec::new();
    let root_url = config
        .storage
        .url
        .clone()
        .unwrap_or_else(|| StorageUrl::File(config.server.storage_dir.clone()));
    let root = open_url(config, &root_url, "root", role, &mut claims).await?;
    let mut named = vec![("storage.url".to_owned(), &root_url)];
    for mount in &config.storage.mounts {
        named.push((format!("the mount at {}", mount.path), &mount.url));
    }
    if config.storage.mounts.is_empty() {
        check_local_roots(&config.server.data_dir, &named)?;
        return Ok(OpenedStorage {
            storage: root,
            claims,
        });
    }
    let mut mounted = Vec::with_capacity(config.storage.mounts.len());
    for mount in &config.storage.mounts {
        let storage = open_url(
            config,
            &mount.url,
            &mount_name(&mount.path),
            role,
            &mut claims,
        )
        .await?;
        mounted.push((mount.path.clone(), storage));
    }
    check_local_roots(&config.server.data_dir, &named)?;
    let mounts = Mounts::new(root, mounted).map_err(|e| OpenStorageError::Unusable {
        url: root_url.to_string(),
        message: e.to_string(),
    })?;
    Ok(OpenedStorage {
        storage: Arc::new(mounts),
        claims,
    })
}

/// The name of a mount's local state (its staging folder): stable for its site path, and a
/// single short file name whatever the path.
fn mount_name(path: &SitePath) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.as_str().as_bytes());
    format!("mount-{}", hex::encode(&digest[..8]))
}

/// One backend. `name` tells uses apart where a backend keeps local state (its staging
/// folder under `data_dir`); serving, that folder is claimed into `claims`.
async fn open_url(
    config: &Config,
    url: &StorageUrl,
    name: &str,
    role: StorageRole,
    claims: &mut Vec<StagingClaim>,
) -> Result<Arc<dyn Storage>, OpenStorageError> {
    let staging = staging_dir(&config.server.data_dir, name);
    if role == StorageRole::Serve {
        claims.push(
            staging::claim(&staging).map_err(|err| OpenStorageError::Unusable {
                url: url.to_string(),
                message: err.to_string(),
            })?,
        );
    }
    match url {
        StorageUrl::File(dir) => {
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
                })?
                .with_staging(&staging)
                .map_err(|err| OpenStorageError::Unusable {
                    url: url.to_string(),
                    message: format!("its local staging folder: {err}"),
                })?;
            if role == StorageRole::Serve {
                storage.sweep_abandoned_uploads();
            }
            Ok(Arc::new(storage))
        }
    }
}

/// Where a backend stages uploads: a local backend on the data folder's filesystem, an S3
/// backend once its memory budget is spent. The root keeps the historical name.
fn staging_dir(data_dir: &Path, name: &str) -> std::path::PathBuf {
    if name == "root" {
        data_dir.join("uploads-in-progress")
    } else {
        data_dir.join("uploads-in-progress").join(name)
    }
}

/// Local storages as the kernel resolves them (`..` and symlinks followed; they exist once
/// opened): none may hold another (the same files under two site paths, each with its own
/// grants — the config check compares URLs as written only), and none may hold the data
/// folder or its staging and journal folders (a grant there would serve the database, the
/// keys and uploads in progress).
fn check_local_roots(
    data_dir: &Path,
    named: &[(String, &StorageUrl)],
) -> Result<(), OpenStorageError> {
    let unusable = |url: &StorageUrl, message: String| OpenStorageError::Unusable {
        url: url.to_string(),
        message,
    };
    // A data folder not made yet (a second handle on a gateway's storage, in tests) holds
    // nothing to protect; compare it as written.
    let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut roots: Vec<(String, std::path::PathBuf)> = Vec::new();
    for (name, url) in named {
        let StorageUrl::File(dir) = url else { continue };
        let real = std::fs::canonicalize(dir).map_err(|e| unusable(url, e.to_string()))?;
        if data.starts_with(&real) {
            return Err(unusable(
                url,
                format!(
                    "{name} holds the data folder {} (database, keys): choose a folder beside or inside it",
                    data.display()
                ),
            ));
        }
        for state in ["uploads-in-progress", "audit-journal"] {
            if real.starts_with(data.join(state)) {
                return Err(unusable(
                    url,
                    format!("{name} is inside the data folder's {state}"),
                ));
            }
        }
        for (other_name, other) in &roots {
            if real.starts_with(other) || other.starts_with(&real) {
                return Err(unusable(
                    url,
                    format!(
                        "{name} and {other_name} are the same folder or one holds the other ({}): the same files would be reachable under two site paths",
                        real.display()
                    ),
                ));
            }
        }
        roots.push((name.clone(), real));
    }
    Ok(())
}
