//! `s3dedup admin …`: the CLI side of the admin API (HTTP/1.1 on the admin port, over
//! TLS when the server has a certificate: trusted are the system's roots, the server's
//! own certificate file when the CLI runs beside it, and `S3DEDUP_ADMIN_CA`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::config::Secret;

/// Environment variable with the admin API's URL.
pub const URL_ENV: &str = "S3DEDUP_ADMIN_URL";

/// Environment variable naming a PEM file of CA certificates the CLI trusts for an
/// `https://` admin URL (besides the system's roots).
pub const CA_ENV: &str = "S3DEDUP_ADMIN_CA";

/// A client of one server's admin API.
#[derive(Debug)]
pub struct AdminClient {
    authority: String,
    token: Secret,
    /// TLS (`https://`): the configuration and the name the certificate must carry.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// A TLS client configuration trusting the system's roots and the certificates in
/// `extra` (PEM files).
///
/// # Errors
/// A file that cannot be read or holds no certificate.
pub fn tls_client_config(
    extra: &[std::path::PathBuf],
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for file in extra {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{}: no CERTIFICATE block", file.display());
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// What a request answered.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The JSON body (`Null` when it was not JSON).
    pub body: serde_json::Value,
}

impl Answer {
    /// The body's `message`, or the status.
    pub fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| self.status.to_string(), str::to_owned)
    }
}

impl AdminClient {
    /// A client for `url` (`http://host:port` or `https://host:port`, a trailing `/` or
    /// path is ignored); `trust` = extra CA files for https.
    ///
    /// # Errors
    /// When the URL is neither, or a CA file is bad.
    pub fn new(url: &str, token: Secret, trust: &[std::path::PathBuf]) -> anyhow::Result<Self> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("admin URL {url:?}: {e}"))?;
        let (scheme, Some(a)) = (uri.scheme_str(), uri.authority()) else {
            anyhow::bail!("admin URL {url:?}: expected http://host:port or https://host:port");
        };
        let tls = match scheme {
            Some("http") => None,
            Some("https") => {
                let host = a.host().trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| anyhow::anyhow!("admin URL {url:?}: {e}"))?;
                Some((tls_client_config(trust)?, name))
            }
            _ => anyhow::bail!("admin URL {url:?}: expected http://host:port or https://host:port"),
        };
        Ok(AdminClient {
            authority: a.to_string(),
            token,
            tls,
        })
    }

    /// GETs `path` into the file `out` (through `out.tmp`, synced, then renamed);
    /// returns the bytes written. A non-200 answer is an error with its message.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses, or the file cannot be written.
    pub async fn download(&self, path: &str, out: &std::path::Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let resp = self.send(Method::GET, path).await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let bytes = resp.into_body().collect().await?.to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            anyhow::bail!("{}", Answer { status, body }.message());
        }
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
                file.write_all(&data).await?;
            }
        }
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, out)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
        Ok(n)
    }

    /// Sends one request; the path includes the query.
    ///
    /// # Errors
    /// When the server cannot be reached or the answer is not HTTP.
    pub async fn request(&self, method: Method, path: &str) -> anyhow::Result<Answer> {
        let resp = self.send(method, path).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(Answer { status, body })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let connect = tokio::net::TcpStream::connect(&self.authority);
        let stream = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| anyhow::anyhow!("admin API at {}: connect timed out", self.authority))?
            .map_err(|e| {
                anyhow::anyhow!(
                    "admin API at {}: {e} (is `s3dedup serve` running? set --admin or {URL_ENV})",
                    self.authority
                )
            })?;
        // The connection task is spawned per branch: its type differs with TLS.
        let mut sender = match &self.tls {
            None => {
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "admin API at {}: TLS: {e} (trust its CA with {CA_ENV})",
                            self.authority
                        )
                    })?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose()),
            )
            .body(Empty::<Bytes>::new())?;
        Ok(sender.send_request(req).await?)
    }
}
