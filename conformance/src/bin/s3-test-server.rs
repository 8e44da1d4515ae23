//! The S3 server the S3 backing store's tests run against: `s3s-fs` (the crates.io
//! library, objects stored as files under ROOT) served on one port, built with the
//! workspace instead of installed separately (`conformance/src/s3server.rs` starts it).
//!
//! Usage: `s3-test-server [--tls-cert PEM --tls-key PEM] --host H --port P --access-key AK
//! --secret-key SK ROOT` (with the TLS files it serves HTTPS).

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

fn usage() -> ! {
    eprintln!("usage: s3-test-server --host H --port P --access-key AK --secret-key SK ROOT");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut host, mut port, mut ak, mut sk, mut root) =
        (String::from("127.0.0.1"), 0u16, None, None, None);
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--host" => host = value(),
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--access-key" => ak = Some(value()),
            "--secret-key" => sk = Some(value()),
            "--tls-cert" => cert = Some(value()),
            "--tls-key" => key = Some(value()),
            _ if !a.starts_with("--") && root.is_none() => root = Some(a),
            _ => usage(),
        }
    }
    let Some(root) = root else { usage() };
    let fs = s3s_fs::FileSystem::new(&root)
        .map_err(|e| anyhow::anyhow!("cannot serve {root}: {e:?}"))?;
    let mut b = S3ServiceBuilder::new(fs);
    if let (Some(ak), Some(sk)) = (ak, sk) {
        b.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let service = b.build();
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some(tls_acceptor(&c, &k)?),
        (None, None) => None,
        _ => usage(),
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let (http, service, tls) = (http.clone(), service.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(socket), service).await;
                }
                Some(tls) => {
                    if let Ok(s) = tls.accept(socket).await {
                        let _ = http.serve_connection(TokioIo::new(s), service).await;
                    }
                }
            }
        });
    }
}

fn tls_acceptor(cert: &str, key: &str) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}
