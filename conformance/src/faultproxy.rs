//! A fault-injecting HTTP/1.1 reverse proxy for end-to-end tests.
//!
//! [`FaultProxy`] sits between the gateway and its backing S3 server on loopback and
//! forwards requests unchanged (method, path and query, every header including `Host`,
//! body bytes), streaming bodies both ways. A [`FaultPlan`] selects requests to answer
//! with a 5xx, reset, stall or truncate instead, to test the gateway's retries and error
//! handling. The proxy runs on its own thread and tokio runtime, so its synchronous API
//! works from plain `#[test]`s and from `#[tokio::test]`s alike.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::http::uri::Authority;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// What to do to a request the plan selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 503 `SlowDown` (S3 XML error body) without forwarding upstream.
    Status503,
    /// Answer 500 `InternalError` (S3 XML error body) without forwarding upstream.
    Status500,
    /// Reset the client connection (TCP RST) right after reading the request head,
    /// without a response and without forwarding upstream.
    Reset,
    /// Forward upstream, then send nothing for [`FaultPlan::stall`] and close the client
    /// connection without a response.
    Stall,
    /// Forward upstream, send status and headers unchanged (so `Content-Length` announces
    /// the full body) but only the first half of the body, then close the connection.
    /// An empty upstream body (e.g. a HEAD response) is handled like [`Fault::Reset`].
    TruncateBody,
}

/// Which requests get which [`Fault`]. Set with [`FaultProxy::set`].
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// The fault to inject; `None` forwards everything untouched.
    pub fault: Option<Fault>,
    /// Inject on every Nth eligible request (1 = all of them; 0 counts as 1).
    pub every: u32,
    /// Methods eligible for injection (`"GET"`, `"PUT"` …); empty = all.
    pub methods: Vec<String>,
    /// How long [`Fault::Stall`] holds a response before closing.
    pub stall: Duration,
}

impl FaultPlan {
    /// Forward everything untouched.
    pub fn none() -> Self {
        Self {
            fault: None,
            every: 1,
            methods: Vec::new(),
            stall: Duration::from_secs(10),
        }
    }

    /// Inject `fault` on every `n`th request (any method, 10 s stall).
    pub fn every(fault: Fault, n: u32) -> Self {
        Self {
            fault: Some(fault),
            every: n,
            ..Self::none()
        }
    }

    /// Restricts injection to requests with these methods.
    pub fn methods(mut self, m: &[&str]) -> Self {
        self.methods = m.iter().map(|s| s.to_ascii_uppercase()).collect();
        self
    }

    /// Sets how long [`Fault::Stall`] holds a response.
    pub fn stall_for(mut self, d: Duration) -> Self {
        self.stall = d;
        self
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::none()
    }
}

/// Totals since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received from the client.
    pub requests: u64,
    /// Requests forwarded upstream (including stalled and truncated ones).
    pub forwarded: u64,
    /// Faults injected, of any kind.
    pub injected: u64,
    /// Injected 500 and 503 answers.
    pub status_5xx: u64,
    /// Injected resets.
    pub resets: u64,
    /// Injected stalls.
    pub stalls: u64,
    /// Injected truncations (including those handled like a reset).
    pub truncations: u64,
}

/// A running fault-injecting proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`"127.0.0.1:PORT"`; an
    /// `http://` prefix is accepted). Starts with [`FaultPlan::none`].
    pub fn start(upstream: &str) -> Result<FaultProxy> {
        let authority: Authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("bad upstream address {upstream:?}"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding fault proxy")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("faultproxy")
            .enable_all()
            .build()?;
        let listener = {
            let _rt = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let state = Arc::new(State::default());
        let (shutdown, stop) = oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("faultproxy".into())
            .spawn(move || {
                rt.block_on(accept_loop(listener, authority, st, stop));
                // Drops in-flight connections (stalls included) instead of waiting for them.
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(FaultProxy {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` to point the gateway at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the plan for the next requests and restarts its `every` count.
    pub fn set(&self, plan: FaultPlan) {
        *self
            .state
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = PlanState { plan, seen: 0 };
    }

    /// Totals since start.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            requests: get(&c.requests),
            forwarded: get(&c.forwarded),
            injected: get(&c.injected),
            status_5xx: get(&c.status_5xx),
            resets: get(&c.resets),
            stalls: get(&c.stalls),
            truncations: get(&c.truncations),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// State shared between the handle and the proxy's tasks.
#[derive(Debug, Default)]
struct State {
    plan: Mutex<PlanState>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct PlanState {
    plan: FaultPlan,
    /// Eligible requests seen under this plan.
    seen: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    injected: AtomicU64,
    status_5xx: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    truncations: AtomicU64,
}

impl State {
    /// Counts the request and decides whether the plan selects it.
    fn select(&self, method: &Method) -> Option<(Fault, Duration)> {
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let mut p = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        let fault = p.plan.fault?;
        if !p.plan.methods.is_empty() && !p.plan.methods.iter().any(|m| m == method.as_str()) {
            return None;
        }
        p.seen += 1;
        if !p.seen.is_multiple_of(u64::from(p.plan.every.max(1))) {
            return None;
        }
        c.injected.fetch_add(1, Ordering::Relaxed);
        let kind = match fault {
            Fault::Status503 | Fault::Status500 => &c.status_5xx,
            Fault::Reset => &c.resets,
            Fault::Stall => &c.stalls,
            Fault::TruncateBody => &c.truncations,
        };
        kind.fetch_add(1, Ordering::Relaxed);
        Some((fault, p.plan.stall))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What the proxy's tasks share.
struct Proxy {
    upstream: Authority,
    state: Arc<State>,
    client: Client<HttpConnector, Incoming>,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    upstream: Authority,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let proxy = Arc::new(Proxy {
        upstream,
        state,
        client,
    });
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_conn(stream, proxy.clone()));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Serves one client connection (keep-alive) until it closes or a fault ends it.
async fn serve_conn(stream: TcpStream, proxy: Arc<Proxy>) {
    let flags = Arc::new(ConnFlags::default());
    let io = TokioIo::new(FaultIo {
        stream,
        flags: flags.clone(),
    });
    let service = hyper::service::service_fn(move |req| handle(proxy.clone(), flags.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection aborted by fault injection")
    }
}

impl std::error::Error for Aborted {}

async fn handle(
    proxy: Arc<Proxy>,
    conn: Arc<ConnFlags>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Aborted> {
    let Some((fault, stall)) = proxy.state.select(req.method()) else {
        return Ok(match proxy.forward(req).await {
            Ok(resp) => passthrough(resp),
            Err(e) => bad_gateway(e),
        });
    };
    match fault {
        Fault::Status503 | Fault::Status500 => {
            // Read the request body first: closing on unread data would make the kernel
            // send a RST that can destroy the error response before the client reads it.
            let mut body = req.into_body();
            while let Some(Ok(_)) = body.frame().await {}
            Ok(if fault == Fault::Status503 {
                s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown")
            } else {
                s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            })
        }
        Fault::Reset => {
            conn.rst.store(true, Ordering::Relaxed);
            Err(Aborted)
        }
        Fault::Stall => {
            drop(proxy.forward(req).await);
            tokio::time::sleep(stall).await;
            Err(Aborted)
        }
        Fault::TruncateBody => {
            let resp = match proxy.forward(req).await {
                Ok(resp) => resp,
                Err(e) => return Ok(bad_gateway(e)),
            };
            let (mut parts, body) = resp.into_parts();
            let hint = body.size_hint();
            let (body, len) = match hint.exact() {
                Some(len) => (body.map_err(BoxError::from).boxed(), len),
                // Chunked: the half is unknown until the end, so buffer it (test data only).
                None => match body.collect().await {
                    Ok(all) => {
                        let all = all.to_bytes();
                        let len = all.len() as u64;
                        (full(all), len)
                    }
                    Err(e) => return Ok(bad_gateway(e)),
                },
            };
            if len == 0 {
                conn.rst.store(true, Ordering::Relaxed);
                return Err(Aborted);
            }
            strip_hop_by_hop(&mut parts.headers);
            let body = Truncated {
                inner: body,
                remaining: len / 2,
                hint,
                conn,
            };
            Ok(Response::from_parts(parts, body.boxed()))
        }
    }
}

impl Proxy {
    /// Sends `req` upstream unchanged but for the URI's scheme and authority.
    async fn forward(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let (mut parts, body) = req.into_parts();
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
        uri.authority = Some(self.upstream.clone());
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri).expect("scheme, authority and path make a valid URI");
        parts.version = Version::HTTP_11;
        self.state
            .counters
            .forwarded
            .fetch_add(1, Ordering::Relaxed);
        // The client keeps an existing Host header, so SigV4 signatures still verify.
        self.client.request(Request::from_parts(parts, body)).await
    }
}

fn passthrough(resp: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.map_err(BoxError::from).boxed())
}

/// Drops the upstream connection's own keep-alive headers; hyper sets the client's.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    headers.remove(CONNECTION);
    headers.remove(HeaderName::from_static("keep-alive"));
}

fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn s3_error(status: StatusCode, code: &str) -> Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Error><Code>{code}</Code><Message>injected</Message></Error>"
    );
    let mut resp = Response::new(full(xml));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    resp
}

fn bad_gateway(e: impl std::fmt::Display) -> Response<ProxyBody> {
    let mut resp = Response::new(full(format!("faultproxy: upstream error: {e}\n")));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp
}

/// Per-connection fault state, shared by the service and the connection's socket.
#[derive(Default)]
struct ConnFlags {
    /// Send a RST instead of a FIN when the connection closes.
    rst: AtomicBool,
    /// Fail the next flush, i.e. close once everything written so far is on the wire.
    cut_after_flush: AtomicBool,
}

/// The client socket, with the [`ConnFlags`] hooks.
struct FaultIo {
    stream: TcpStream,
    flags: Arc<ConnFlags>,
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes the socket only once its own buffer is empty, so failing here cuts
    /// the connection exactly after the bytes already handed to it.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.flags.cut_after_flush.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.flags.rst.load(Ordering::Relaxed) {
            // SO_LINGER 0: close() sends a RST.
            let _ = self.stream.set_zero_linger();
        }
    }
}

/// A response body that yields the first `remaining` bytes of `inner` and then never
/// ends; it arms [`ConnFlags::cut_after_flush`] so the connection closes once those bytes
/// are written, leaving the client short of the announced length.
struct Truncated {
    inner: ProxyBody,
    remaining: u64,
    /// The original size hint, so hyper frames the response as announced.
    hint: SizeHint,
    conn: Arc<ConnFlags>,
}

impl Body for Truncated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.remaining == 0 {
                self.conn.cut_after_flush.store(true, Ordering::Relaxed);
                return Poll::Pending;
            }
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue; // trailers: never reached before the cut
                    };
                    if data.len() as u64 > self.remaining {
                        data.truncate(self.remaining as usize);
                    }
                    self.remaining -= data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(Some(Err("upstream body ended early".into()))),
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}
