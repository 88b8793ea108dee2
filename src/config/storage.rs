//! `[storage]`: where the site's files are kept (a local folder or an S3-compatible bucket),
//! and folders of the site kept on a storage of their own (`[[storage.mounts]]`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

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

/// Options of S3-compatible storage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {}

/// A folder of the site on a storage of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The site folder, e.g. `/archive`.
    pub path: String,
    /// Its storage, as `[storage] url`.
    pub url: StorageUrl,
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
}
