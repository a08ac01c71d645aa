//! Certificates and TLS configuration: load the configured PEM files, or generate a
//! self-signed development certificate for every host into `cert_dir` on first start.

use crate::config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("certificate generation: {0}")]
    Generate(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the listeners need: one config for STARTTLS, one with ALPN for direct TLS,
/// and the `tls-server-end-point` channel-binding value of our certificate (RFC 5929).
pub struct TlsSetup {
    pub starttls: Arc<rustls::ServerConfig>,
    pub direct: Arc<rustls::ServerConfig>,
    pub end_point: Vec<u8>,
    pub cert_path: PathBuf,
}

/// XEP-0368: the ALPN protocol name of client-to-server direct TLS.
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

pub fn setup(config: &Config) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path) = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => ensure_dev_certificate(&config.tls.cert_dir, &config.hosts)?,
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(&cert_path, e))?;
    let leaf = chain.first().ok_or_else(|| file_error(&cert_path, "no certificate in file"))?;
    let end_point = end_point_hash(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_error(&key_path, e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let starttls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut direct = starttls.clone();
    direct.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    Ok(TlsSetup { starttls: Arc::new(starttls), direct: Arc::new(direct), end_point, cert_path })
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_owned(), reason: reason.to_string() }
}

/// Returns the generated pair in `dir`, creating it when missing. The key is written 0600.
pub fn ensure_dev_certificate(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let name = hosts.first().map(String::as_str).unwrap_or("localhost");
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let (cert, key) = self_signed(name, hosts).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key_path, key.as_bytes())?;
    std::fs::write(&cert_path, cert).map_err(|e| file_error(&cert_path, e))?;
    tracing::info!(cert = %cert_path.display(), hosts = ?hosts, "generated a self-signed development certificate");
    Ok((cert_path, key_path))
}

/// A certificate for every host, named after the first (clients show the subject), valid
/// from the start of last year for ten years. Returns (certificate PEM, key PEM).
fn self_signed(name: &str, hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "stanzad development certificate");
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 9, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn current_year() -> i32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    1970 + (secs / 31_556_952) as i32
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::storage::files::write_private(path, bytes).map_err(|e| file_error(path, e))
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash, but SHA-256 for MD5/SHA-1.
pub fn end_point_hash(cert_der: &[u8]) -> Vec<u8> {
    match signature_hash(cert_der) {
        SigHash::Sha384 => Sha384::digest(cert_der).to_vec(),
        SigHash::Sha512 => Sha512::digest(cert_der).to_vec(),
        SigHash::Sha256 => Sha256::digest(cert_der).to_vec(),
    }
}

enum SigHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Reads the outer signatureAlgorithm OID: Certificate ::= SEQUENCE { tbs, algorithm, signature }.
fn signature_hash(der: &[u8]) -> SigHash {
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let oid = der_body(der)
        .and_then(|cert| der_skip(cert)) // skip tbsCertificate
        .and_then(der_body) // AlgorithmIdentifier
        .and_then(der_body); // its first field: the OID
    match oid {
        Some(oid) if SHA384.contains(&oid) => SigHash::Sha384,
        Some(oid) if SHA512.contains(&oid) => SigHash::Sha512,
        _ => SigHash::Sha256,
    }
}

/// Splits a DER TLV into (header length, content length).
fn der_header(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.get(1)?;
    if first < 0x80 {
        return Some((2, first as usize));
    }
    let count = (first & 0x7f) as usize;
    if count == 0 || count > 4 {
        return None;
    }
    let len = input.get(2..2 + count)?.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
    Some((2 + count, len))
}

/// The content of the first TLV.
fn der_body(input: &[u8]) -> Option<&[u8]> {
    let (header, len) = der_header(input)?;
    input.get(header..header.checked_add(len)?)
}

/// What follows the first TLV.
fn der_skip(input: &[u8]) -> Option<&[u8]> {
    let (header, len) = der_header(input)?;
    input.get(header.checked_add(len)?..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_reused_and_key_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = vec!["localhost".to_string(), "example.org".to_string()];
        let (cert, key) = ensure_dev_certificate(dir.path(), &hosts).expect("generate");
        let first = std::fs::read(&cert).expect("cert");
        let again = ensure_dev_certificate(dir.path(), &hosts).expect("reuse");
        assert_eq!(again, (cert.clone(), key.clone()));
        assert_eq!(std::fs::read(&cert).expect("cert"), first, "must not regenerate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn setup_builds_both_configs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.tls.cert_dir = dir.path().to_owned();
        let tls = setup(&config).expect("setup");
        assert_eq!(tls.direct.alpn_protocols, vec![b"xmpp-client".to_vec()]);
        assert!(tls.starttls.alpn_protocols.is_empty());
        assert_eq!(tls.end_point.len(), 32, "rcgen signs ECDSA P-256 with SHA-256");
    }

    #[test]
    fn der_walk_never_panics_on_garbage() {
        for input in [&[][..], &[0x30], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x30, 0x82, 0xff, 0xff, 0]] {
            let _ = end_point_hash(input);
        }
    }
}
