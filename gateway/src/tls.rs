//! TLS on the S3 and admin ports: rustls with TLS 1.2 and 1.3 only (rustls has no older
//! version and no CBC or RC4 suite), ECDHE key exchange with AEAD suites, ALPN
//! `http/1.1`. The certificate is read from PEM files and re-read on SIGHUP: new
//! handshakes get the new one, open connections keep theirs and are not dropped.
//!
//! A plain HTTP request on a TLS port is not answered (no redirect to HTTPS on the same
//! port: it would invite clients to send credentials in the clear).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be loaded (the files' paths are named, never key bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("tls_cert {path}: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file could not be read, holds no key, or the key does not match.
    #[error("tls_key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The process's one crypto provider: aws-lc-rs, the one the AWS SDK builds anyway.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain and its key.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: files.cert.clone(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: files.key.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_err(e.to_string()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| key_err(e.to_string()))
}

/// The certificate handshakes get; [`CertStore::reload`] swaps it.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads `files`.
    ///
    /// # Errors
    /// See [`load`].
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load(&files)?;
        Ok(Arc::new(CertStore {
            files,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Re-reads the files; on failure the current certificate stays in use.
    ///
    /// # Errors
    /// See [`load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = Arc::new(load(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }

    /// The rustls server configuration over this store (shared by both ports).
    ///
    /// # Panics
    /// Never: the provider supports both protocol versions.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// Listens for SIGHUP now (so a reload sent right after start does not find SIGHUP's
/// default action, which ends the process) and spawns the loop that reloads the
/// certificate on each one; without TLS a SIGHUP is logged and changes nothing.
pub fn handle_sighup(store: Option<Arc<CertStore>>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hup) => {
            tokio::spawn(reload_loop(hup, store));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates are not reloaded");
        }
    }
}

async fn reload_loop(mut hup: tokio::signal::unix::Signal, store: Option<Arc<CertStore>>) {
    while hup.recv().await.is_some() {
        let Some(store) = &store else {
            tracing::info!("SIGHUP: nothing to reload (TLS is off)");
            continue;
        };
        match store.reload() {
            Ok(()) => {
                metrics::counter!(crate::metrics::TLS_RELOADS, "result" => "ok").increment(1);
                tracing::info!(cert = %store.cert_path().display(), "TLS certificate reloaded");
            }
            Err(e) => {
                metrics::counter!(crate::metrics::TLS_RELOADS, "result" => "error").increment(1);
                tracing::error!(error = %e, "TLS certificate reload failed; the previous one stays in use");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = load(&files).unwrap_err().to_string();
        assert!(e.starts_with("tls_cert /nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let files = TlsFiles {
            cert,
            key: dir.path().join("key.pem"),
        };
        let e = load(&files).unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
    }
}
