//! `[storage]`: where the site's files are kept (a local folder or an S3-compatible bucket),
//! and folders of the site kept on a storage of their own (`[[storage.mounts]]`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::Redacted;
use crate::path::SitePath;

/// Where files are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///absolute/folder` or `s3://BUCKET/PREFIX` (`FILEGATE_STORAGE_URL`). Absent:
    /// `file://` of `server.storage_dir` (by default `<data_dir>/files`); `fill_defaults`
    /// sets it, so after that it is always there.
    #[serde(deserialize_with = "super::empty_is_none")]
    pub url: Option<StorageUrl>,
    /// Options of S3-compatible storage (endpoint, region, credentials, path style).
    pub s3: S3Config,
    /// Folders of the site kept on another storage.
    pub mounts: Vec<MountConfig>,
}

/// Options of S3-compatible storage. Empty endpoint, region and credentials are filled from
/// the standard `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` ([`S3Config::fill_from_env`]); the secret is never printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000` (MinIO, moto); empty:
    /// AWS for `region`.
    pub endpoint: String,
    /// The bucket's region (`us-east-1` when empty and none is in the environment).
    pub region: String,
    pub access_key_id: String,
    /// Never logged (`Debug` redacts it).
    pub secret_access_key: Redacted,
    /// Path-style requests (`http://host/bucket/key`), as MinIO and moto need; otherwise
    /// virtual-hosted style (`http://bucket.host/key`).
    pub path_style: bool,
    /// Size of each part of a multipart upload and of each ranged read, 8 to 16 MiB.
    pub part_size_mib: u64,
    /// Parts of one upload sent at the same time (1 to 16), while the memory budget allows.
    pub uploads_in_flight: usize,
    /// Ranges of one download fetched at the same time (1 to 16), while the budget allows.
    pub reads_in_flight: usize,
    /// Memory for part buffers, shared by every transfer to and from this bucket (at least
    /// two parts). A transfer takes its parts from it when it starts; when it is spent,
    /// uploads are staged in a local file (sent when they complete) and downloads stream
    /// without read-ahead — so many parallel transfers never hold more than this. 96 MiB:
    /// 8 parallel SFTP uploads of 256 MiB then peak at 167–185 MiB resident in all, as fast
    /// as with 128 (260 MiB; `bench/s3.sh ONLY=rss`).
    pub transfer_memory_mib: u64,
    /// Whether a folder that holds something may be renamed (each object copied then
    /// deleted: not atomic, and slow for large folders). Off: such renames are refused.
    pub rename_folders: bool,
    /// Multipart uploads older than this many hours are aborted at start and daily (left
    /// behind by a crash; an upload in progress elsewhere is younger). 0: never.
    pub abandoned_upload_hours: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: Redacted::default(),
            path_style: false,
            part_size_mib: 8,
            uploads_in_flight: 4,
            reads_in_flight: 4,
            transfer_memory_mib: 96,
            rename_folders: false,
            abandoned_upload_hours: 24,
        }
    }
}

impl S3Config {
    /// Fills what the config leaves empty from the standard AWS variables.
    pub fn fill_from_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let fill = |field: &mut String, name: &str| {
            if field.trim().is_empty()
                && let Some(v) = get(name).filter(|v| !v.trim().is_empty())
            {
                *field = v.trim().to_owned();
            }
        };
        fill(&mut self.endpoint, "AWS_ENDPOINT_URL");
        fill(&mut self.region, "AWS_REGION");
        fill(&mut self.access_key_id, "AWS_ACCESS_KEY_ID");
        fill(&mut self.secret_access_key.0, "AWS_SECRET_ACCESS_KEY");
    }

    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let endpoint = self.endpoint.trim();
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !endpoint.is_empty() && !scheme_ok {
            return Err(format!(
                "storage.s3.endpoint {endpoint:?} must start with http:// or https://"
            ));
        }
        if !(8..=16).contains(&self.part_size_mib) {
            return Err(format!(
                "storage.s3.part_size_mib {} must be between 8 and 16",
                self.part_size_mib
            ));
        }
        if !(1..=16).contains(&self.uploads_in_flight) {
            return Err(format!(
                "storage.s3.uploads_in_flight {} must be between 1 and 16",
                self.uploads_in_flight
            ));
        }
        if !(1..=16).contains(&self.reads_in_flight) {
            return Err(format!(
                "storage.s3.reads_in_flight {} must be between 1 and 16",
                self.reads_in_flight
            ));
        }
        if self.transfer_memory_mib < 2 * self.part_size_mib || self.transfer_memory_mib > 65536 {
            return Err(format!(
                "storage.s3.transfer_memory_mib {} must be between two parts ({} MiB) and 65536",
                self.transfer_memory_mib,
                2 * self.part_size_mib
            ));
        }
        if self.abandoned_upload_hours > 24 * 365 {
            return Err(format!(
                "storage.s3.abandoned_upload_hours {} must be at most a year (8760)",
                self.abandoned_upload_hours
            ));
        }
        if self.access_key_id.trim().is_empty() != self.secret_access_key.0.trim().is_empty() {
            return Err(
                "storage.s3.access_key_id and storage.s3.secret_access_key go together: set both or neither"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A folder of the site on a storage of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The site folder, e.g. `/archive`: absolute and normalised (no `.`, `..`, empty
    /// names or trailing `/`), not `/` itself. Mounts may nest: the deepest one holds a path.
    #[serde(deserialize_with = "mount_path")]
    pub path: SitePath,
    /// Its storage, as `[storage] url`.
    pub url: StorageUrl,
}

fn mount_path<'de, D: Deserializer<'de>>(d: D) -> Result<SitePath, D::Error> {
    parse_mount_path(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A mount point as the config writes it: exactly a normalised absolute site path, not `/`.
pub fn parse_mount_path(text: &str) -> Result<SitePath, String> {
    let path = SitePath::parse(text).map_err(|e| format!("mount path {text:?}: {e}"))?;
    if path.is_root() {
        return Err(format!(
            "mount path {text:?}: the site root is [storage] url, not a mount"
        ));
    }
    if path.as_str() != text {
        return Err(format!(
            "mount path {text:?} is not a normalised absolute site path (such as {path})"
        ));
    }
    Ok(path)
}

impl StorageConfig {
    /// What parsing alone cannot check: each mount point once, and no two storages sharing
    /// files (a folder or prefix inside another's would show the same files under two site
    /// paths, each with its own grants).
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for mount in &self.mounts {
            if !seen.insert(&mount.path) {
                return Err(format!("storage.mounts: {} is mounted twice", mount.path));
            }
        }
        let root = self.url.iter().map(|url| ("storage.url".to_owned(), url));
        let mounts = self
            .mounts
            .iter()
            .map(|m| (format!("the mount at {}", m.path), &m.url));
        let storages: Vec<(String, &StorageUrl)> = root.chain(mounts).collect();
        for (i, (a_name, a)) in storages.iter().enumerate() {
            for (b_name, b) in &storages[i + 1..] {
                if a.overlaps(b) {
                    return Err(format!(
                        "storage.mounts: {a} ({a_name}) and {b} ({b_name}) overlap: the same files would be reachable under two site paths"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A storage named by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `file:///absolute/folder`.
    File(PathBuf),
    /// `s3://BUCKET/PREFIX`: objects under `PREFIX/` (no leading or trailing `/`; empty for
    /// the whole bucket).
    S3 { bucket: String, prefix: String },
}

impl FromStr for StorageUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{text:?}: a file URL names an absolute folder, as file:///srv/files"
                ));
            }
            if path.split('/').any(|part| part == "..") {
                return Err(format!(
                    "{text:?}: a file URL names a folder without '..' components"
                ));
            }
            return Ok(StorageUrl::File(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(format!(
                    "{text:?}: {bucket:?} is not a bucket name (3-63 of a-z, 0-9, '-', '.')"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix
                .split('/')
                .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
                || prefix.contains('\0')
            {
                return Err(format!("{text:?}: the prefix is not a plain folder path"));
            }
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        Err(format!(
            "{text:?} is not a storage URL: file:///folder or s3://bucket/prefix"
        ))
    }
}

impl StorageUrl {
    /// Whether the two hold some of the same files: the same folder or prefix, or one inside
    /// the other (by whole names).
    pub fn overlaps(&self, other: &StorageUrl) -> bool {
        fn within(inner: &str, outer: &str) -> bool {
            outer.is_empty()
                || inner == outer
                || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
        }
        match (self, other) {
            (StorageUrl::File(a), StorageUrl::File(b)) => a.starts_with(b) || b.starts_with(a),
            (
                StorageUrl::S3 {
                    bucket: a,
                    prefix: pa,
                },
                StorageUrl::S3 {
                    bucket: b,
                    prefix: pb,
                },
            ) => a == b && (within(pa, pb) || within(pb, pa)),
            _ => false,
        }
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::File(path) => write!(f, "file://{}", path.display()),
            StorageUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StorageUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl<'de> Deserialize<'de> for StorageUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(toml_mounts: &str) -> Result<StorageConfig, String> {
        let text = format!("url = \"file:///srv/files\"\n{toml_mounts}");
        let config: StorageConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn mounts_are_normalised_absolute_folders_each_once_on_storages_of_their_own() {
        let ok = mounts(
            "[[mounts]]\npath = \"/archive\"\nurl = \"file:///mnt/archive\"\n\
             [[mounts]]\npath = \"/archive/cold\"\nurl = \"s3://cold-bucket/x\"\n\
             [[mounts]]\npath = \"/archive2\"\nurl = \"s3://cold-bucket/xy\"\n",
        )
        .unwrap();
        assert_eq!(ok.mounts[1].path.as_str(), "/archive/cold");
        for (path, url, says) in [
            ("archive", "file:///mnt/a", "normalised"),
            ("/archive/", "file:///mnt/a", "normalised"),
            ("/a/../archive", "file:///mnt/a", "normalised"),
            ("/", "file:///mnt/a", "site root"),
            ("/a\\u0000b", "file:///mnt/a", "NUL"),
            ("/archive", "file:///srv/files/archive", "overlap"),
            ("/archive", "file:///srv", "overlap"),
            ("/archive", "file:///srv/files", "overlap"),
        ] {
            let err =
                mounts(&format!("[[mounts]]\npath = \"{path}\"\nurl = \"{url}\"\n")).unwrap_err();
            assert!(err.contains(says), "{path} {url}: {err}");
        }
        let twice = mounts(
            "[[mounts]]\npath = \"/a\"\nurl = \"file:///mnt/a\"\n\
             [[mounts]]\npath = \"/a\"\nurl = \"file:///mnt/b\"\n",
        )
        .unwrap_err();
        assert!(twice.contains("mounted twice"), "{twice}");
        let shared = mounts(
            "[[mounts]]\npath = \"/a\"\nurl = \"s3://bucket-one/p\"\n\
             [[mounts]]\npath = \"/b\"\nurl = \"s3://bucket-one/p/q\"\n",
        )
        .unwrap_err();
        assert!(shared.contains("overlap"), "{shared}");
    }

    #[test]
    fn storage_urls_parse_or_say_why_not() {
        assert_eq!(
            "file:///srv/files".parse::<StorageUrl>().unwrap(),
            StorageUrl::File("/srv/files".into())
        );
        assert_eq!(
            "s3://team-bucket/gateway/files/"
                .parse::<StorageUrl>()
                .unwrap(),
            StorageUrl::S3 {
                bucket: "team-bucket".into(),
                prefix: "gateway/files".into()
            }
        );
        assert_eq!(
            "s3://team-bucket"
                .parse::<StorageUrl>()
                .unwrap()
                .to_string(),
            "s3://team-bucket"
        );
        for bad in [
            "file://relative",
            "s3://Bad_Bucket/x",
            "s3://ab",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "http://x",
            "/srv/files",
        ] {
            assert!(bad.parse::<StorageUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_options_are_checked_once_and_the_secret_never_printed() {
        assert_eq!(S3Config::default().validate(), Ok(()));
        let bad = |tweak: fn(&mut S3Config)| {
            let mut c = S3Config::default();
            tweak(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.part_size_mib = 5).contains("storage.s3.part_size_mib"));
        assert!(bad(|c| c.part_size_mib = 17).contains("storage.s3.part_size_mib"));
        assert!(bad(|c| c.uploads_in_flight = 0).contains("storage.s3.uploads_in_flight"));
        assert!(bad(|c| c.reads_in_flight = 17).contains("storage.s3.reads_in_flight"));
        assert!(bad(|c| c.transfer_memory_mib = 15).contains("storage.s3.transfer_memory_mib"));
        assert!(bad(|c| c.endpoint = "minio:9000".into()).contains("storage.s3.endpoint"));
        assert!(bad(|c| c.access_key_id = "AKIA".into()).contains("secret_access_key"));

        let mut c = S3Config {
            region: "eu-west-1".into(),
            ..S3Config::default()
        };
        c.fill_from_env(|name| match name {
            "AWS_REGION" => Some("us-east-2".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9000".into()),
            "AWS_ACCESS_KEY_ID" => Some("AKIA1".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("hunter2".into()),
            _ => None,
        });
        assert_eq!(
            c.region, "eu-west-1",
            "the config wins over the environment"
        );
        assert_eq!(c.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.secret_access_key.0, "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));

        let parsed: StorageConfig = toml::from_str(
            "url = \"s3://bucket/files\"\n[s3]\npath_style = true\npart_size_mib = 16\n",
        )
        .unwrap();
        assert!(parsed.s3.path_style);
        assert_eq!(parsed.s3.part_size_mib, 16);
        assert_eq!(parsed.s3.uploads_in_flight, 4);
        assert_eq!(parsed.s3.abandoned_upload_hours, 24);
    }
}
