//! Multipart uploads left behind (a crash, a killed process) hold storage the bucket's owner
//! pays for and never become objects. They are aborted once older than
//! `storage.s3.abandoned_upload_hours` — at start, then daily — and never younger ones, which
//! another replica may still be writing. OpenDAL has no call to list multipart uploads, so
//! this sends its own two requests (`ListMultipartUploads`, `AbortMultipartUpload`), signed
//! with the same SigV4 signer OpenDAL uses (reqsign).

use std::time::Duration;

use reqsign_aws_v4::{RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

use crate::config::S3Config;

/// What a sweep needs: where the bucket is, how to sign, how old is abandoned.
pub(super) struct Sweeper {
    client: reqwest::Client,
    /// `https://host/bucket` (path style) or `https://bucket.host`.
    base: String,
    /// Uploads under this key prefix (`PREFIX/`, or empty) are ours.
    prefix: String,
    signer: Option<Signer<reqsign_aws_v4::Credential>>,
    max_age: chrono::Duration,
}

/// One multipart upload in progress.
#[derive(Debug, PartialEq, Eq)]
struct Upload {
    key: String,
    upload_id: String,
    initiated: Option<chrono::DateTime<chrono::Utc>>,
}

impl Sweeper {
    /// `None` when `abandoned_upload_hours` is 0 (sweeping off).
    pub(super) fn new(
        client: reqwest::Client,
        bucket: &str,
        prefix: &str,
        config: &S3Config,
        region: &str,
    ) -> Option<Sweeper> {
        if config.abandoned_upload_hours == 0 {
            return None;
        }
        let endpoint = match config.endpoint.trim().trim_end_matches('/') {
            "" => format!("https://s3.{region}.amazonaws.com"),
            endpoint => endpoint.to_owned(),
        };
        let base = if config.path_style {
            format!("{endpoint}/{bucket}")
        } else {
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
                None => format!("{endpoint}/{bucket}"),
            }
        };
        let signer = (!config.access_key_id.trim().is_empty()).then(|| {
            Signer::new(
                Context::new(),
                StaticCredentialProvider::new(
                    config.access_key_id.trim(),
                    config.secret_access_key.0.trim(),
                ),
                RequestSigner::new("s3", region),
            )
        });
        Some(Sweeper {
            client,
            base,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            signer,
            max_age: chrono::Duration::hours(config.abandoned_upload_hours as i64),
        })
    }

    /// Aborts the uploads under the prefix older than the age; how many were aborted.
    pub(super) async fn sweep(&self) -> Result<usize, String> {
        let now = chrono::Utc::now();
        let mut aborted = 0;
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let url = format!(
                "{}/?{}",
                self.base,
                self.list_query(&key_marker, &id_marker)
            );
            let body = self.send(http::Method::GET, &url).await?;
            for upload in uploads(&body) {
                let old = upload.initiated.is_some_and(|at| now - at > self.max_age);
                if !old || !upload.key.starts_with(&self.prefix) {
                    continue;
                }
                let id: String =
                    form_urlencoded::byte_serialize(upload.upload_id.as_bytes()).collect();
                let url = format!("{}/{}?uploadId={id}", self.base, encode_key(&upload.key));
                self.send(http::Method::DELETE, &url).await?;
                aborted += 1;
            }
            if tag(&body, "IsTruncated").as_deref() != Some("true") {
                return Ok(aborted);
            }
            key_marker = tag(&body, "NextKeyMarker").unwrap_or_default();
            id_marker = tag(&body, "NextUploadIdMarker").unwrap_or_default();
            if key_marker.is_empty() {
                return Ok(aborted);
            }
        }
    }

    /// `uploads&prefix=…` (and the markers of the next page).
    fn list_query(&self, key_marker: &str, id_marker: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("prefix", &self.prefix);
        if !key_marker.is_empty() {
            query.append_pair("key-marker", key_marker);
            query.append_pair("upload-id-marker", id_marker);
        }
        format!("uploads&{}", query.finish())
    }

    /// One signed, bodiless request; the response body when it succeeds.
    async fn send(&self, method: http::Method, url: &str) -> Result<String, String> {
        let request = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(())
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let (mut parts, ()) = request.into_parts();
        if let Some(signer) = &self.signer {
            signer
                .sign(&mut parts, None)
                .await
                .map_err(|e| format!("signing {method} {url}: {e}"))?;
        }
        let mut builder = self.client.request(parts.method, parts.uri.to_string());
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        if !status.is_success() {
            let code = tag(&body, "Code").unwrap_or_default();
            return Err(format!("{method} {url}: HTTP {status} {code}"));
        }
        Ok(body)
    }
}

/// Sweeps now, then every day, for as long as the process runs.
pub(super) fn spawn(sweeper: std::sync::Arc<Sweeper>, bucket: String) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(24 * 3600));
        loop {
            every.tick().await;
            match sweeper.sweep().await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(
                        bucket,
                        aborted = n,
                        "aborted abandoned S3 multipart uploads"
                    )
                }
                Err(err) => {
                    tracing::warn!(bucket, error = %err, "could not sweep abandoned S3 multipart uploads")
                }
            }
        }
    });
}

/// The `<Upload>` entries of a `ListMultipartUploadsResult`.
fn uploads(body: &str) -> Vec<Upload> {
    body.split("<Upload>")
        .skip(1)
        .filter_map(|rest| {
            let entry = rest.split("</Upload>").next()?;
            Some(Upload {
                key: tag(entry, "Key")?,
                upload_id: tag(entry, "UploadId")?,
                initiated: tag(entry, "Initiated")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc)),
            })
        })
        .collect()
}

/// The text of the first `<name>…</name>` in `xml`, unescaped.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..start + len]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A key in a URL path: every byte but unreserved ones and `/` percent-encoded.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_read_from_the_listing_with_their_keys_unescaped() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
            <Upload><Key>site/a &amp; b</Key><UploadId>u1</UploadId>\
            <Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>\
            <Upload><Key>site/c</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
        let found = uploads(xml);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].key, "site/a & b");
        assert!(found[0].initiated.is_some());
        assert_eq!(found[1].initiated, None);
        assert_eq!(encode_key("site/a & b+%"), "site/a%20%26%20b%2B%25");
    }
}
