//! The FTPS certificate: the configured PEM files, or a self-signed one made into the data
//! folder on first start (rcgen) and kept.

use std::path::{Path, PathBuf};

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
