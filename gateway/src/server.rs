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
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use s3dedup_storage::SnapshotSettings;
use s3dedup_storage::Store;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::conn::{Busy, BusyGuard, ConnLimits, PacedBody, Stream, Watched};
use crate::edge::{self, EdgePolicy};
use crate::limits::Limits;
use crate::request_log::{LoggedBody, RequestLine};
use crate::s3::{Gateway, GatewaySettings};
use crate::scan::ScanService;
use crate::write_gate::WriteGate;

/// How long in-flight requests get to finish after shutdown is requested.
const DRAIN: Duration = Duration::from_secs(30);

pub use crate::access::Credentials;

/// What [`run`] serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Gateway settings.
    pub settings: GatewaySettings,
    /// Accepted credentials.
    pub credentials: Credentials,
    /// Base domain for virtual-hosted-style requests.
    pub domain: Option<String>,
    /// What the edge accepts (SigV2 …).
    pub edge: EdgePolicy,
    /// Most S3 connections served at once.
    pub max_connections: usize,
    /// Local index snapshots: where, and how often.
    pub snapshots: Option<(std::path::PathBuf, SnapshotSettings)>,
    /// The admin API (`/admin/v1`); `None` = not served.
    pub admin: Option<crate::admin::AdminApi>,
    /// HTTPS on both ports with this certificate; `None` = plain HTTP.
    pub tls: Option<Arc<crate::tls::CertStore>>,
    /// What one connection may cost.
    pub limits: ConnLimits,
    /// Read-only mode and the capacity guard.
    pub gate: Arc<WriteGate>,
    /// Rate limits and the failed-authentication lockout.
    pub rates: Arc<Limits>,
}

/// Most admin connections served at once (metrics scrapers, probes, operators).
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Builds the s3s service.
///
/// # Errors
/// An invalid domain.
pub fn s3_service(store: Store, opts: &ServeOptions, port: u16) -> anyhow::Result<S3Service> {
    let mut b = S3ServiceBuilder::new(Gateway::new(store.clone(), opts.settings.clone()));
    b.set_auth(crate::access::Keys {
        root: opts.credentials.clone(),
        store: store.clone(),
    });
    b.set_access(crate::access::Access {
        root_access_key: opts.credentials.access_key.clone(),
        store: store.clone(),
        gate: Arc::clone(&opts.gate),
        rates: Arc::clone(&opts.rates),
    });
    // Defence in depth behind the edge's refusal of form uploads: s3s buffers a form's
    // file part whole before authenticating it, so allow it nothing.
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = 0;
    config.form_max_field_size = 16 << 10;
    config.form_max_fields_size = 64 << 10;
    config.form_max_parts = 64;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
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

/// Raises the soft open-file limit to the hard limit and fits the connection limit
/// under it (each connection holds a descriptor; the index, packs being written, clamd
/// and backend connections need some too).
pub fn connection_limit(requested: Option<usize>) -> usize {
    const RESERVED_FDS: u64 = 256;
    const DEFAULT_MAX: usize = 4096;
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            1024
        }
    };
    let fits = usize::try_from(nofile.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
    match requested {
        Some(n) => {
            if n > fits {
                tracing::warn!(
                    max_connections = n,
                    nofile,
                    "max_connections exceeds what the open-file limit leaves room for; accepts will fail (and back off) when descriptors run out"
                );
            }
            n
        }
        None => {
            if fits < DEFAULT_MAX {
                tracing::warn!(
                    nofile,
                    max_connections = fits,
                    "open-file limit is low; serving fewer connections at once (raise LimitNOFILE)"
                );
            }
            DEFAULT_MAX.min(fits)
        }
    }
}

/// Accept-error backoff: starts here, doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// One listener's accept loop state: a connection limit and a backoff after errors.
/// Out of file descriptors (EMFILE/ENFILE), `accept` fails at once, again and again;
/// retrying at once spins a core at 100 % while nobody can be served. The backoff
/// waits, doubling, until an accept succeeds.
struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    slots: Arc<Semaphore>,
    backoff: Duration,
    last_warned: Option<Instant>,
}

impl Acceptor {
    fn new(listener: TcpListener, name: &'static str, max: usize) -> Self {
        Acceptor {
            listener,
            name,
            slots: Arc::new(Semaphore::new(max)),
            backoff: Duration::ZERO,
            last_warned: None,
        }
    }

    /// Waits for a free connection slot, then for a connection. Cancel-safe.
    async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr, OwnedSemaphorePermit) {
        loop {
            let permit = Arc::clone(&self.slots)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if !self.backoff.is_zero() {
                tokio::time::sleep(self.backoff).await;
            }
            match self.listener.accept().await {
                Ok((sock, peer)) => {
                    self.backoff = Duration::ZERO;
                    return (sock, peer, permit);
                }
                Err(e) => {
                    metrics::counter!(crate::metrics::ACCEPT_ERRORS, "listener" => self.name)
                        .increment(1);
                    self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                    let quiet = self
                        .last_warned
                        .is_some_and(|t| t.elapsed() < Duration::from_secs(10));
                    if !quiet {
                        self.last_warned = Some(Instant::now());
                        tracing::warn!(
                            listener = self.name,
                            error = %e,
                            backoff_ms = self.backoff.as_millis() as u64,
                            "accept failed; backing off (out of file descriptors? raise LimitNOFILE or lower max_connections)"
                        );
                    }
                }
            }
        }
    }
}

/// Counts an open connection in the gauge while alive.
struct Open {
    listener: &'static str,
    /// Held for the connection's life: dropping it frees the slot.
    _slot: OwnedSemaphorePermit,
}

impl Open {
    fn new(listener: &'static str, permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(crate::metrics::CONNECTIONS, "listener" => listener).increment(1.0);
        Open {
            listener,
            _slot: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::CONNECTIONS, "listener" => self.listener).decrement(1.0);
    }
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
    crate::metrics::record_build_info(&store);
    let service = s3_service(store.clone(), &opts, s3.local_addr()?.port())?;
    let graceful = GracefulShutdown::new();
    let limits = opts.limits;
    // HTTP/1 only: S3 clients speak HTTP/1.1 (ALPN offers nothing else on TLS). hyper's
    // header timer runs from a request's first byte; before it, `Watched` bounds the
    // silence (conn.rs).
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_size);
    let tls = opts
        .tls
        .as_ref()
        .map(|certs| tokio_rustls::TlsAcceptor::from(certs.server_config()));
    tokio::spawn(Arc::clone(&opts.gate).watch());
    let admin_state = AdminState {
        store: store.clone(),
        scan: std::sync::Arc::clone(&opts.settings.scan),
        api: opts.admin.clone().map(Arc::new),
        gate: Arc::clone(&opts.gate),
    };
    let edge = opts.edge;
    let domain: Option<Arc<str>> = opts.domain.as_deref().map(Arc::from);
    let mut s3 = Acceptor::new(s3, "s3", opts.max_connections);
    let mut admin = Acceptor::new(admin, "admin", MAX_ADMIN_CONNECTIONS);
    if let Some((dir, settings)) = opts.snapshots.clone() {
        tokio::spawn(snapshot_loop(store.clone(), dir, settings));
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            (sock, peer, permit) = s3.accept() => {
                let open = Open::new("s3", permit);
                let svc = (service.clone(), Arc::clone(&opts.rates), (store.clone(), domain.clone()));
                let busy = Busy::default();
                let conn_busy = busy.clone();
                let handler = service_fn(move |req: Request<Incoming>| {
                    let svc = (svc.0.clone(), Arc::clone(&svc.1), svc.2.clone());
                    let guard = busy.begin();
                    serve_s3(svc, req.map(|b| PacedBody::new(b, &limits)), peer, edge, guard)
                });
                let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let Some(io) = open_stream(sock, tls.as_ref(), &limits, conn_busy).await else {
                        return;
                    };
                    let conn = http.serve_connection(io, handler);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(open);
                });
            }
            (sock, peer, permit) = admin.accept() => {
                let open = Open::new("admin", permit);
                let state = admin_state.clone();
                // Busy until the handler answers: a long request (a backup, a usage
                // walk) is not an idle connection.
                let busy = Busy::default();
                let conn_busy = busy.clone();
                let handler = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    let guard = busy.begin();
                    async move {
                        let resp = serve_admin(&state, &req, peer).await;
                        drop(guard);
                        Ok::<_, Infallible>(resp)
                    }
                });
                let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let Some(io) = open_stream(sock, tls.as_ref(), &limits, conn_busy).await else {
                        return;
                    };
                    let _ = watcher.watch(http.serve_connection(io, handler)).await;
                    drop(open);
                });
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

/// The connection's stream: TLS handshake done (when on), watched for idleness. `None`
/// when the handshake failed (a plain HTTP request on a TLS port, a scanner, a timeout).
async fn open_stream(
    sock: TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    limits: &ConnLimits,
    busy: Busy,
) -> Option<TokioIo<Watched<Stream>>> {
    let peer = sock.peer_addr().ok();
    match Stream::accept(sock, tls, limits.header_read_timeout).await {
        Ok(s) => Some(TokioIo::new(Watched::new(
            s,
            busy,
            limits.idle_timeout,
            limits.header_read_timeout.min(limits.idle_timeout),
        ))),
        Err(e) => {
            metrics::counter!(crate::metrics::CONNECTIONS_CUT, "reason" => "handshake")
                .increment(1);
            tracing::debug!(?peer, error = %e, "TLS handshake failed; connection closed");
            None
        }
    }
}

fn serve_s3(
    (svc, rates, (store, domain)): (S3Service, Arc<Limits>, (Store, Option<Arc<str>>)),
    req: Request<PacedBody<Incoming>>,
    peer: std::net::SocketAddr,
    edge: EdgePolicy,
    busy: BusyGuard,
) -> BoxFuture<'static, Result<Response<LoggedBody>, s3s::HttpError>> {
    let id = request_id();
    let span = tracing::info_span!(
        "s3",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        peer = %peer,
        principal = tracing::field::Empty,
    );
    Box::pin(
        async move {
            let started = Instant::now();
            let bytes_in = content_length(req.headers());
            let seen = crate::audit::S3Seen::of(req.uri(), req.headers());
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let checked = rates
                .check_ip(peer.ip(), crate::limits::declared_length(req.headers()))
                .map_err(|r| edge::Refusal::of_limit(&r))
                .and_then(|()| edge::check(req.method(), req.uri(), req.headers(), edge, now));
            if let Err(refusal) = checked {
                // Answered without reading a byte of the body; the connection is closed
                // so an unread body cannot be taken for the next request.
                metrics::counter!(crate::metrics::EDGE_REFUSALS, "code" => refusal.code)
                    .increment(1);
                let body = if req.method() == http::Method::HEAD {
                    s3s::Body::empty()
                } else {
                    s3s::Body::from(refusal.xml(&id))
                };
                let mut resp = Response::new(body);
                *resp.status_mut() = refusal.status;
                let h = resp.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/xml"),
                );
                h.insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                if let Ok(v) = http::HeaderValue::from_str(&id) {
                    h.insert("x-amz-request-id", v);
                }
                if let Some(secs) = refusal.retry_after_secs() {
                    h.insert(http::header::RETRY_AFTER, secs.into());
                }
                // A locked-out address's refusals are not audited one by one (its lockout
                // is, once): a flood must not flood the log.
                let locked_out = refusal.status == StatusCode::FORBIDDEN && refusal.retry_after.is_some();
                if let Some(seen) = seen.filter(|_| !locked_out) {
                    let xml = refusal.xml(&id);
                    let status = (refusal.status.as_u16(), bytes_in);
                    let op = ("Refused", false);
                    seen.done((&id, peer.ip()), op, (None, None), status, Some(xml.as_bytes()));
                }
                let line = (String::from("Refused"), None);
                return Ok(logged(resp, line, (bytes_in, started), Some(refusal.code), busy));
            }
            let bucket = crate::cors::path_bucket(req.uri().path());
            if req.method() == http::Method::OPTIONS {
                // A CORS preflight: unsigned, answered from the bucket's rules.
                let b = crate::cors::bucket_of(req.headers(), req.uri().path(), domain.as_deref());
                let resp = crate::cors::preflight(&store, b.as_deref(), req.headers(), &id).await;
                let line = (String::from("PreflightCORS"), None);
                return Ok(logged(resp, line, (bytes_in, started), None, busy));
            }
            let method = req.method().clone();
            let origin = req.headers().get(http::header::ORIGIN).cloned();
            let mut req = req;
            req.extensions_mut().insert(crate::access::PeerIp(peer.ip()));
            let req = req.map(s3s::Body::http_body);
            let (resp, info) = crate::access::with_request_info(svc.call(req)).await;
            let operation = info.operation().to_owned();
            if let Some(p) = &info.principal {
                tracing::Span::current().record("principal", p.as_str());
            }
            let mut resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    // No response at all (hyper drops the connection): still one line.
                    crate::metrics::record_request(&operation, 500, started);
                    tracing::warn!(operation, error = ?e, bytes_in, "request failed without a response");
                    return Err(e);
                }
            };
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                resp.headers_mut().insert("x-amz-request-id", v);
            }
            // The bucket s3s routed the request to (path- or virtual-hosted-style).
            if let (Some(o), Some((b, _))) = (origin.as_ref().and_then(|o| o.to_str().ok()), &info.target) {
                crate::cors::decorate(&store, b, &method, o, resp.headers_mut()).await;
            }
            // s3s answers HeadObject 200 whatever its output says; a HEAD of a range or
            // a part is 206, as the GET.
            if operation == "HeadObject"
                && resp.status() == StatusCode::OK
                && resp.headers().contains_key(http::header::CONTENT_RANGE)
            {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            if resp.status().as_u16() >= 400
                && let Some(xml) = resp.body().bytes()
                && let Some(full) = crate::error::complete_error_body(
                    &crate::error::acl_body_error(&operation, &xml),
                    &id,
                    bucket.as_deref(),
                )
            {
                if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
                    resp.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, full.len().into());
                }
                *resp.body_mut() = s3s::Body::from(full);
            }
            if info.bad_signature() && resp.status() == StatusCode::FORBIDDEN {
                metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => "signature")
                    .increment(1);
            }
            if resp.status() == StatusCode::FORBIDDEN
                && resp.body().bytes().is_some_and(|b| failed_authentication(&b))
                && rates.auth_failed(peer.ip())
            {
                crate::audit::emit(crate::audit::Event {
                    kind: "lockout",
                    request_id: id.clone(),
                    ip: peer.ip().to_string(),
                    operation: "LockedOut".into(),
                    status: 403,
                    detail: "too many failed authentications".into(),
                    ..Default::default()
                });
            }
            if let Some(seen) = seen {
                let status = (resp.status().as_u16(), bytes_in);
                let body = resp.body().bytes();
                let write = info.operation.is_some() && !crate::write_gate::is_read(&operation);
                let op = (operation.as_str(), write);
                let who = (info.principal.as_deref(), info.target.as_ref());
                seen.done((&id, peer.ip()), op, who, status, body.as_deref());
            }
            Ok(logged(resp, (operation, info.principal), (bytes_in, started), None, busy))
        }
        .instrument(span),
    )
}

/// Whether an error document says the request failed authentication (a bad signature,
/// an unknown, disabled or expired key): what the lockout counts.
fn failed_authentication(xml: &[u8]) -> bool {
    const CODES: [&[u8]; 2] = [
        b"<Code>SignatureDoesNotMatch</Code>",
        b"<Code>InvalidAccessKeyId</Code>",
    ];
    CODES.iter().any(|c| xml.windows(c.len()).any(|w| w == *c))
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Wraps the response so its one log line is written when the body has been sent.
fn logged(
    resp: Response<s3s::Body>,
    (operation, principal): (String, Option<String>),
    (bytes_in, started): (u64, Instant),
    code: Option<&'static str>,
    busy: BusyGuard,
) -> Response<LoggedBody> {
    let line = RequestLine {
        operation,
        status: resp.status().as_u16(),
        bytes_in,
        started,
        code,
        principal,
        span: tracing::Span::current(),
        busy: Some(busy),
    };
    resp.map(|body| LoggedBody::new(body, line))
}

/// What the admin port serves.
#[derive(Debug, Clone)]
struct AdminState {
    store: Store,
    scan: Arc<ScanService>,
    api: Option<Arc<crate::admin::AdminApi>>,
    gate: Arc<WriteGate>,
}

async fn serve_admin(
    state: &AdminState,
    req: &Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<crate::admin::backup::AdminBody> {
    let (store, scan, api) = (&state.store, &state.scan, state.api.as_deref());
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map(crate::admin::backup::boxed)
            .unwrap_or_default()
    };
    let path = req.uri().path();
    if let Some(api) = api
        && (path == "/admin/v1" || path.starts_with("/admin/v1/"))
    {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let resp = api.serve(req.method(), path, req.uri().query(), auth).await;
        // Every admin action (and every refused attempt at one) is audited; reads are not.
        if !matches!(*req.method(), http::Method::GET | http::Method::HEAD)
            || resp.status() == StatusCode::UNAUTHORIZED
        {
            crate::audit::emit(crate::audit::Event {
                kind: "admin",
                tenant: "admin".into(),
                ip: peer.ip().to_string(),
                operation: format!("{} {path}", req.method()),
                status: resp.status().as_u16(),
                detail: req.uri().query().unwrap_or("").to_owned(),
                ..Default::default()
            });
        }
        return resp;
    }
    match path {
        "/metrics" => text(StatusCode::OK, crate::metrics::render(store).await),
        "/health/live" => text(StatusCode::OK, "ok\n".into()),
        "/health/ready" => match ready(store, scan, &state.gate).await {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Ready = the index answers, the data disk has room, the backing store answers and,
/// when scanning is enabled, the scanner answers.
async fn ready(store: &Store, scan: &ScanService, gate: &WriteGate) -> Result<(), String> {
    store.stats().await.map_err(|e| format!("index: {e}"))?;
    if let Some(why) = gate.low_space() {
        return Err(format!("uploads refused: {why}"));
    }
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

/// Takes a local index snapshot every interval (keeping the newest few).
async fn snapshot_loop(store: Store, dir: std::path::PathBuf, settings: SnapshotSettings) {
    let Some(every) = settings.interval else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let started = Instant::now();
        match store.snapshot_index(&dir, settings.keep).await {
            Ok(info) => {
                metrics::counter!(crate::metrics::INDEX_SNAPSHOTS, "result" => "ok").increment(1);
                tracing::info!(
                    path = %info.path.display(),
                    entries = info.entries,
                    bytes = info.bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "index snapshot written"
                );
            }
            Err(e) => {
                metrics::counter!(crate::metrics::INDEX_SNAPSHOTS, "result" => "error")
                    .increment(1);
                tracing::error!(error = %e, "index snapshot failed; the previous snapshots are kept");
            }
        }
    }
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
