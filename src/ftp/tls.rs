//! FTPS: the certificate (the configured PEM files, or a self-signed one made into the data
//! folder on first start with rcgen, and kept) and the one TLS configuration built from it at
//! start and shared by every connection, control and data, explicit and implicit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::FtpError;

/// Returns (certificate, key) PEM paths, creating a self-signed pair if none is configured.
pub fn ensure_certificate(
    cert: &Path,
    key: &Path,
    data_dir: &Path,
    host: &str,
) -> Result<(PathBuf, PathBuf), FtpError> {
    if !cert.as_os_str().is_empty() && !key.as_os_str().is_empty() {
        for file in [cert, key] {
            if !file.is_file() {
                return Err(FtpError::Tls(format!("{} does not exist", file.display())));
            }
        }
        return Ok((cert.to_owned(), key.to_owned()));
    }
    let cert = data_dir.join("ftps-cert.pem");
    let key = data_dir.join("ftps-key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !names.iter().any(|n| n == host) {
        names.push(host.to_owned());
    }
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| FtpError::Tls(e.to_string()))?;
    std::fs::create_dir_all(data_dir).map_err(|e| FtpError::Tls(e.to_string()))?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| FtpError::Tls(e.to_string()))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| FtpError::Tls(e.to_string()))?;
    tracing::info!(cert = %cert.display(), "created a self-signed FTPS certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)
}

/// The FTPS server configuration: TLS 1.2 and 1.3, no client certificates, and session
/// resumption both ways (a cache of session IDs for TLS 1.2, stateless tickets for both),
/// since clients such as FileZilla and lftp resume the control connection's session on each
/// data connection.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, FtpError> {
    let fail =
        |what: &Path, e: &dyn std::fmt::Display| FtpError::Tls(format!("{}: {e}", what.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(cert, &e))?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| FtpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| fail(cert, &e))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| FtpError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}
