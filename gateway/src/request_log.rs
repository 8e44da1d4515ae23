//! The one log line and the one count per S3 request, at its end: when the response body
//! has been sent (or the client went away). The response body is wrapped in
//! [`LoggedBody`], which counts the bytes it yields and emits the line when it ends or
//! is dropped, inside the request's span (request id, method, path, peer).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// What the line says, gathered when the response starts.
#[derive(Debug)]
pub struct RequestLine {
    /// The S3 operation (see [`crate::access`]), or `Refused` at the edge.
    pub operation: String,
    /// HTTP status.
    pub status: u16,
    /// Request bytes, as declared by Content-Length.
    pub bytes_in: u64,
    /// When the request arrived.
    pub started: Instant,
    /// The edge's error code, for refusals.
    pub code: Option<&'static str>,
    /// Who asked (`root`, a tenant, `anonymous`), once authenticated.
    pub principal: Option<String>,
    /// The request's span.
    pub span: tracing::Span,
    /// Marks the connection busy until the line is emitted (the response is sent).
    pub busy: Option<crate::conn::BusyGuard>,
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Every byte sent.
    Complete,
    /// The client went away (or stopped reading) first.
    Dropped,
    /// Producing the body failed on our side (a chunk failed verification, the backend
    /// failed mid-read): a server fault after a 2xx status line.
    Failed,
}

impl RequestLine {
    fn emit(self, bytes_out: u64, ended: Ended) {
        crate::metrics::record_request(&self.operation, self.status, self.started);
        if let Some(p) = &self.principal {
            metrics::counter!(crate::metrics::TENANT_REQUESTS, "tenant" => p.clone()).increment(1);
        }
        let ms = self.started.elapsed().as_millis() as u64;
        let (operation, status, bytes_in, code) = (
            self.operation.as_str(),
            self.status,
            self.bytes_in,
            self.code,
        );
        // A response the client stopped reading says so; one we failed to produce is a
        // server fault whatever its status line said.
        let aborted = (ended == Ended::Dropped).then_some(true);
        let failed = (ended == Ended::Failed).then_some(true);
        let _in_span = self.span.enter();
        if failed.is_some() {
            crate::metrics::record_failed_body(operation);
            tracing::warn!(
                operation, status, bytes_in, bytes_out, ms, failed, "request"
            );
        } else if status >= 500 {
            tracing::warn!(
                operation, status, bytes_in, bytes_out, ms, code, aborted, "request"
            );
        } else {
            tracing::info!(
                operation, status, bytes_in, bytes_out, ms, code, aborted, "request"
            );
        }
    }
}

/// A response body that logs its request's line when it ends.
pub struct LoggedBody {
    inner: Pin<Box<s3s::Body>>,
    line: Option<RequestLine>,
    sent: u64,
}

impl std::fmt::Debug for LoggedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl LoggedBody {
    /// Wraps `body`; `line` is emitted once, when it ends or is dropped.
    pub fn new(body: s3s::Body, line: RequestLine) -> Self {
        LoggedBody {
            inner: Box::pin(body),
            line: Some(line),
            sent: 0,
        }
    }

    fn finish(&mut self, ended: Ended) {
        if let Some(line) = self.line.take() {
            line.emit(self.sent, ended);
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.sent += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(Ended::Complete);
                }
            }
            Poll::Ready(None) => self.finish(Ended::Complete),
            Poll::Ready(Some(Err(_))) => self.finish(Ended::Failed),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Never polled to the end: a HEAD, an empty body hyper did not poll, or a client
        // that went away mid-body (then `sent` is short of the size).
        let ended = if self.inner.is_end_stream() {
            Ended::Complete
        } else {
            Ended::Dropped
        };
        self.finish(ended);
    }
}
