//! The servers: S3 API and admin (metrics, health), with graceful shutdown.
//!
//! [`run`] takes already-bound listeners and a shutdown future, so tests and the CLI
//! bind `127.0.0.1:0` (or anything) and read the real addresses back.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3dedup_storage::Store;
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::s3::{Gateway, GatewaySettings};
use crate::scan::ScanService;

/// How long in-flight requests get to finish after shutdown is requested.
const DRAIN: Duration = Duration::from_secs(30);

/// Credentials accepted by the S3 API.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

#[derive(Debug)]
struct Keys(Credentials);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.0.access_key {
            Ok(SecretKey::from(self.0.secret_key.as_str()))
        } else {
            Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records"
            ))
        }
    }
}

/// What [`run`] serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Gateway settings.
    pub settings: GatewaySettings,
    /// Accepted credentials.
    pub credentials: Credentials,
    /// Base domain for virtual-hosted-style requests.
    pub domain: Option<String>,
}

/// Builds the s3s service.
///
/// # Errors
/// An invalid domain.
pub fn s3_service(store: Store, opts: &ServeOptions, port: u16) -> anyhow::Result<S3Service> {
    let mut b = S3ServiceBuilder::new(Gateway::new(store, opts.settings.clone()));
    b.set_auth(Keys(opts.credentials.clone()));
    if let Some(d) = &opts.domain {
        // Clients send `Host: domain:port`; without the port form s3s would take the
        // whole host for a bucket name.
        let with_port = format!("{d}:{port}");
        b.set_host(s3s::host::MultiDomain::new([
            d.as_str(),
            with_port.as_str(),
        ])?);
    }
    Ok(b.build())
}

/// Longest presigned-URL validity S3 accepts (7 days).
const MAX_PRESIGN_SECS: u64 = 604_800;

/// Refuses presigned URLs valid for longer than S3 allows (s3s only checks expiry).
fn presign_too_long(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("X-Amz-Expires=")
                .is_some_and(|v| v.parse::<u64>().map_or(true, |n| n > MAX_PRESIGN_SECS))
        })
    })
}

fn request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// Serves the S3 API on `s3` and the admin endpoints on `admin` until `shutdown`
/// resolves, then stops accepting and lets in-flight requests finish (up to 30 s).
///
/// # Errors
/// Only set-up errors; per-connection errors are logged.
pub async fn run(
    store: Store,
    opts: ServeOptions,
    s3: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    crate::metrics::install();
    let service = s3_service(store.clone(), &opts, s3.local_addr()?.port())?;
    let graceful = GracefulShutdown::new();
    let http = ConnBuilder::new(TokioExecutor::new());
    let admin_store = store.clone();
    let scan = std::sync::Arc::clone(&opts.settings.scan);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            r = s3.accept() => {
                let Ok((sock, peer)) = r else { continue };
                let svc = service.clone();
                let handler = service_fn(move |req: Request<Incoming>| {
                    let svc = svc.clone();
                    serve_s3(svc, req, peer)
                });
                let conn = http.serve_connection_with_upgrades(TokioIo::new(sock), handler);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            r = admin.accept() => {
                let Ok((sock, _)) = r else { continue };
                let store = admin_store.clone();
                let scan = std::sync::Arc::clone(&scan);
                let handler = service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    let scan = std::sync::Arc::clone(&scan);
                    async move { Ok::<_, Infallible>(serve_admin(&store, &scan, &req).await) }
                });
                let conn = http.serve_connection(TokioIo::new(sock), handler);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move { let _ = conn.await; });
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("drain timed out"),
    }
    Ok(())
}

fn serve_s3(
    svc: S3Service,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> BoxFuture<'static, Result<Response<s3s::Body>, s3s::HttpError>> {
    let id = request_id();
    let span = tracing::info_span!(
        "s3",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        peer = %peer,
    );
    Box::pin(
        async move {
            let started = Instant::now();
            if presign_too_long(req.uri()) {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationQueryParametersError</Code><Message>X-Amz-Expires must be less than a week (in seconds) that is 604800</Message><RequestId>{id}</RequestId></Error>"
                );
                let mut resp = Response::new(s3s::Body::from(body));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/xml"),
                );
                return Ok(resp);
            }
            let mut resp = hyper::service::Service::call(&svc, req).await?;
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                resp.headers_mut().insert("x-amz-request-id", v);
            }
            let status = resp.status().as_u16();
            let ms = started.elapsed().as_millis() as u64;
            if status >= 500 {
                tracing::warn!(status, ms, "response");
            } else {
                tracing::debug!(status, ms, "response");
            }
            Ok(resp)
        }
        .instrument(span),
    )
}

async fn serve_admin(
    store: &Store,
    scan: &ScanService,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    match req.uri().path() {
        "/metrics" => text(StatusCode::OK, crate::metrics::render(store).await),
        "/health/live" => text(StatusCode::OK, "ok\n".into()),
        "/health/ready" => match ready(store, scan).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Ready = the index answers, the backing store answers and, when scanning is
/// enabled, the scanner answers.
async fn ready(store: &Store, scan: &ScanService) -> Result<(), String> {
    store.stats().await.map_err(|e| format!("index: {e}"))?;
    store
        .blobs()
        .check()
        .await
        .map_err(|e| format!("backing store: {e}"))?;
    if scan.enabled() {
        scan.scanner()
            .ping()
            .await
            .map_err(|e| format!("virus scanner: {e}"))?;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
