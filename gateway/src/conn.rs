//! Connection hygiene: what one client connection may cost.
//!
//! - [`Stream`] — a connection's bytes: TCP, or TLS over TCP (handshake bounded by the
//!   header read timeout).
//! - [`Watched`] — ends a connection that does nothing: silent after it opened (header
//!   read timeout), idle between requests (idle timeout), or not reading our response
//!   (a write that makes no progress for the idle timeout).
//! - [`PacedBody`] — cuts a request body that stalls or trickles: each
//!   `body_idle_timeout` window must bring `body_min_rate` × window bytes (at least one).
//!   Only time spent *waiting for the client* is judged: when the gateway itself pauses
//!   (a slow scan, a slow backend), the bytes the client sent meanwhile are waiting and
//!   arrive at once.
//!
//! Header size and the time headers may take once started are hyper's
//! (`max_header_size`, `header_read_timeout`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// How long a new connection may stay silent (and the TLS handshake may take), and
    /// how long a request's headers may take once they have started.
    pub header_read_timeout: Duration,
    /// How long a connection may stay idle between requests, or make no progress
    /// writing a response.
    pub idle_timeout: Duration,
    /// The window over which a request body's rate is judged.
    pub body_idle_timeout: Duration,
    /// Least body bytes per second, averaged over each window (0 = only a complete stall
    /// is cut).
    pub body_min_rate: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_size: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            max_header_size: 64 << 10,
        }
    }
}

/// A connection's byte stream.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// Performs the TLS handshake when `tls` is set, bounded by `timeout`.
    ///
    /// # Errors
    /// A failed or timed-out handshake (a plain HTTP request on a TLS port ends here).
    pub async fn accept(
        sock: TcpStream,
        tls: Option<&tokio_rustls::TlsAcceptor>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let Some(acceptor) = tls else {
            return Ok(Stream::Plain(sock));
        };
        match tokio::time::timeout(timeout, acceptor.accept(sock)).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, b))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Requests in flight on one connection: while one is, the connection is not idle.
#[derive(Debug, Clone, Default)]
pub struct Busy(Arc<AtomicUsize>);

/// Marks one request in flight until dropped (kept by the response body).
#[derive(Debug)]
pub struct BusyGuard(Arc<AtomicUsize>);

impl Busy {
    /// A request starts.
    pub fn begin(&self) -> BusyGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        BusyGuard(Arc::clone(&self.0))
    }

    fn idle(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that ends itself when nothing happens on it (module docs).
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    busy: Busy,
    idle: Duration,
    /// Last progress + the allowed silence.
    deadline: Pin<Box<Sleep>>,
}

impl<S> Watched<S> {
    /// Wraps a new connection: it must start talking within `first`.
    pub fn new(inner: S, busy: Busy, idle: Duration, first: Duration) -> Self {
        Watched {
            inner,
            busy,
            idle,
            deadline: Box::pin(tokio::time::sleep(first)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            // Waiting for a request: bounded. Waiting inside one (its body) is
            // PacedBody's to judge.
            Poll::Pending if this.busy.idle() && this.deadline.as_mut().poll(cx).is_ready() => {
                metrics::counter!(crate::metrics::CONNECTIONS_CUT, "reason" => "idle").increment(1);
                Poll::Ready(Ok(())) // end of stream: hyper closes the connection
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.deadline.as_mut().poll(cx).is_ready() {
            metrics::counter!(crate::metrics::CONNECTIONS_CUT, "reason" => "write_stalled")
                .increment(1);
            return true;
        }
        false
    }
}

fn write_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client did not read the response within idle_timeout",
    )
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, b) {
            Poll::Ready(Ok(n)) if n > 0 => {
                this.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(write_timeout())),
            other => other,
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) if n > 0 => {
                this.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(write_timeout())),
            other => other,
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(write_timeout())),
            other => other,
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TLS writes its close alert here: a client that stopped reading must not hold
        // the connection open at close either.
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending if this.stalled(cx) => Poll::Ready(Err(write_timeout())),
            other => other,
        }
    }
}

/// The error a too-slow body ends with; [`crate::error`] answers it `RequestTimeout`.
#[derive(Debug, thiserror::Error)]
#[error("RequestTimeout: the request body {0} within body_idle_timeout")]
pub struct BodyTooSlow(&'static str);

/// A request body cut when it stalls or trickles (module docs).
#[derive(Debug)]
pub struct PacedBody<B> {
    inner: B,
    window: Duration,
    min_bytes: u64,
    got: u64,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> PacedBody<B> {
    /// Wraps `inner` under `limits`.
    pub fn new(inner: B, limits: &ConnLimits) -> Self {
        let secs = limits.body_idle_timeout.as_secs_f64();
        PacedBody {
            inner,
            window: limits.body_idle_timeout,
            // At least one byte per window: a complete stall is always cut.
            min_bytes: ((limits.body_min_rate as f64 * secs) as u64).max(1),
            got: 0,
            deadline: None,
        }
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let window = this.window;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(window)));
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.got += d.len() as u64;
                }
                // Past the deadline while the gateway was not waiting: a new window,
                // nothing judged (module docs).
                if deadline.is_elapsed() {
                    deadline.as_mut().reset(Instant::now() + window);
                    this.got = 0;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                while deadline.as_mut().poll(cx).is_ready() {
                    if this.got < this.min_bytes {
                        let why = if this.got == 0 {
                            "stalled"
                        } else {
                            "arrived too slowly"
                        };
                        metrics::counter!(crate::metrics::CONNECTIONS_CUT, "reason" => "slow_body")
                            .increment(1);
                        tracing::info!(bytes = this.got, "request body {why}; cut");
                        return Poll::Ready(Some(Err(Box::new(BodyTooSlow(why)))));
                    }
                    this.got = 0;
                    deadline.as_mut().reset(Instant::now() + window);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::StreamBody;

    fn limits(window_ms: u64, rate: u64) -> ConnLimits {
        ConnLimits {
            body_idle_timeout: Duration::from_millis(window_ms),
            body_min_rate: rate,
            ..ConnLimits::default()
        }
    }

    type Chunks = futures::channel::mpsc::UnboundedReceiver<Result<Frame<Bytes>, io::Error>>;

    fn channel() -> (
        futures::channel::mpsc::UnboundedSender<Result<Frame<Bytes>, io::Error>>,
        StreamBody<Chunks>,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (tx, StreamBody::new(rx))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_after_one_window() {
        let (tx, body) = channel();
        tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .unwrap();
        let mut body = PacedBody::new(body, &limits(1000, 0));
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("stalled"), "{err}");
        // The first window had 3 bytes (enough at rate 0); the second had none.
        assert!(started.elapsed() >= Duration::from_millis(1000));
        assert!(started.elapsed() <= Duration::from_millis(2100));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_rate_is_cut_and_a_steady_body_is_not() {
        // 10 bytes every 100 ms = 100 B/s: below 1 KiB/s, above 50 B/s.
        for (rate, cut) in [(1024, true), (50, false)] {
            let (tx, body) = channel();
            let mut body = PacedBody::new(body, &limits(1000, rate));
            let feeder = tokio::spawn(async move {
                for _ in 0..40 {
                    if tx
                        .unbounded_send(Ok(Frame::data(Bytes::from_static(b"0123456789"))))
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let mut outcome = Ok(0u64);
            while let Some(f) = body.frame().await {
                match f {
                    Ok(f) => {
                        *outcome.as_mut().unwrap() += f.data_ref().map_or(0, |d| d.len()) as u64
                    }
                    Err(e) => {
                        outcome = Err(e.to_string());
                        break;
                    }
                }
            }
            feeder.abort();
            match (cut, outcome) {
                (true, Err(e)) => assert!(e.contains("too slowly"), "{e}"),
                (false, Ok(n)) => assert_eq!(n, 400),
                (c, o) => panic!("rate {rate}: expected cut={c}, got {o:?}"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_gateway_spends_elsewhere_is_not_judged() {
        let (tx, body) = channel();
        let mut body = PacedBody::new(body, &limits(1000, 1 << 20));
        assert!(
            tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"x"))))
                .is_ok()
        );
        assert!(body.frame().await.unwrap().is_ok());
        // The gateway is busy for 5 windows while the client's bytes wait.
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.unbounded_send(Ok(Frame::data(Bytes::from(vec![0u8; 2 << 20]))))
            .unwrap();
        drop(tx);
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.is_none());
    }
}
