//! Sending one webhook request: resolve → SSRF check → connect to a checked address →
//! (TLS) → HTTP/1.1 → status. No redirects are followed (a 3xx is a failed attempt), the
//! response body is not read beyond a small cap, and the whole request has one timeout.
//!
//! Built on hyper 1's connection-level client (`hyper::client::conn::http1`, the `client`
//! feature of the hyper already in the tree) over a `TcpStream` this module opens itself:
//! a pooled client (hyper-util's legacy client, reqwest) resolves names on its own, so the
//! address checked would not be the address connected to. TLS is tokio-rustls with ring,
//! trusting webpki-roots (plus `webhooks.ca_file` for on-prem receivers).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::guard::{Allow, GuardError, Target};
use super::{Method, Outgoing};

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("refused by the SSRF guard: {0}")]
    Guard(#[from] GuardError),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("timed out")]
    Timeout,
}

/// How requests are made (shared by every delivery of a replica).
#[derive(Clone)]
pub struct Sender {
    pub allow: Allow,
    pub timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

/// A response: its status (any; the caller decides what is success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
}

impl Sender {
    /// A sender trusting webpki-roots and the PEM certificates in `ca_file` (if any).
    pub fn new(
        allow: Allow,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Sender, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("webhooks.ca_file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("webhooks.ca_file {}: {e}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("webhooks.ca_file {}: {e}", path.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Sender {
            allow,
            timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `req` within the timeout.
    pub async fn send(&self, req: &Outgoing) -> Result<Answer, SendError> {
        match tokio::time::timeout(self.timeout, self.send_inner(req)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Timeout),
        }
    }

    async fn send_inner(&self, req: &Outgoing) -> Result<Answer, SendError> {
        let target = Target::parse(&req.url)?;
        let addrs = target.resolve(&self.allow).await?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(SendError::Connect(last.unwrap_or_else(|| {
                std::io::Error::other("no address to connect to")
            })));
        };
        let _ = stream.set_nodelay(true);
        let request = self.request(&target, req)?;
        if target.https {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| SendError::Tls(e.to_string()))?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| SendError::Tls(e.to_string()))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(stream), request).await
        }
    }

    fn request(
        &self,
        target: &Target,
        req: &Outgoing,
    ) -> Result<hyper::Request<Full<Bytes>>, SendError> {
        let default_port = if target.https { 443 } else { 80 };
        let host = match (target.host.contains(':'), target.port == default_port) {
            (true, true) => format!("[{}]", target.host),
            (true, false) => format!("[{}]:{}", target.host, target.port),
            (false, true) => target.host.clone(),
            (false, false) => format!("{}:{}", target.host, target.port),
        };
        let mut builder = hyper::Request::builder()
            .method(match req.method {
                Method::Get => hyper::Method::GET,
                Method::Post => hyper::Method::POST,
            })
            .uri(target.path_and_query.as_str())
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "filegate-webhooks/1")
            .header(hyper::header::CONNECTION, "close");
        if let Some(ct) = req.content_type {
            builder = builder.header(hyper::header::CONTENT_TYPE, ct);
        }
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(Bytes::from(req.body.clone())))
            .map_err(|e| SendError::Http(e.to_string()))
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Answer, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| SendError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        // Read (and drop) at most 64 KiB of the answer so the receiver is not cut mid-write.
        let mut body = response.into_body();
        let mut seen = 0usize;
        while seen < 64 * 1024 {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        Ok(Answer { status })
    }
    .await;
    driver.abort();
    result
}
