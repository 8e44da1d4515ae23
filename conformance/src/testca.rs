//! A test certificate authority (rcgen): a CA and server certificates for `127.0.0.1`
//! and `localhost`, written as PEM files the way an operator would have them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA that issues server certificates.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM file): what clients are told to trust.
    pub ca_file: PathBuf,
}

/// A server certificate's files.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The chain, leaf then CA (PEM).
    pub chain_file: PathBuf,
    /// The private key (PEM).
    pub key_file: PathBuf,
    /// The leaf certificate (DER), to recognise it on the wire.
    pub leaf_der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`; its certificate is written to `dir/<name>-ca.pem`.
    ///
    /// # Errors
    /// Key generation or the file write failed.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("s3dedup test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, issuer.pem())?;
        Ok(TestCa { issuer, ca_file })
    }

    /// Issues a certificate for `127.0.0.1` and `localhost`, written to
    /// `dir/<stem>.pem` (leaf + CA) and `dir/<stem>.key`.
    ///
    /// # Errors
    /// Signing or the file writes failed.
    pub fn issue(&self, dir: &Path, stem: &str) -> Result<ServerCert> {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("s3dedup test server {stem}"));
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.issuer)?;
        let chain_file = dir.join(format!("{stem}.pem"));
        let key_file = dir.join(format!("{stem}.key"));
        std::fs::write(&chain_file, format!("{}{}", leaf.pem(), self.issuer.pem()))?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok(ServerCert {
            chain_file,
            key_file,
            leaf_der: leaf.der().to_vec(),
        })
    }
}
