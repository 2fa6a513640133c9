//! HTTPS for the gateway (rustls): the certificate chain and key are read and checked when
//! the project loads, so a bad file is a config error, not a failure at the first handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// Why the gateway's `tls:` files cannot serve HTTPS: each says which file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The `cert` file cannot be read or is not PEM: check the path and the file.
    #[error("cannot read certificates from {path}: {source}")]
    Certificates { path: PathBuf, source: pem::Error },
    /// The `cert` file holds no certificate (a key, or an empty file): put the chain there.
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    /// The `key` file cannot be read or holds no private key: check the path and the file.
    #[error("cannot read a private key from {path}: {source}")]
    Key { path: PathBuf, source: pem::Error },
    /// rustls refused its own default settings: a build problem, not the files'.
    #[error("TLS setup failed: {0}")]
    Setup(#[source] rustls::Error),
    /// The key does not go with the certificate, or is of a kind rustls does not take:
    /// check they are a pair, leaf certificate first.
    #[error("the certificate and key do not make a TLS identity: {0}")]
    Identity(#[source] rustls::Error),
}

/// A TLS acceptor for `cert` (a PEM chain, leaf first) and `key` (a PEM private key).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|source| TlsError::Certificates { path: cert.to_owned(), source })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key { path: key.to_owned(), source })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Identity)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
