//! Response bodies: the engine's verified chunk stream as an s3s body of exact length.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use s3s::StdError;
use s3s::stream::{ByteStream, RemainingLength};
use sync_wrapper::SyncWrapper;

/// A body of known length; a read or verification error aborts the response (the
/// client sees a short body, never wrong bytes) and is counted.
pub struct ObjectBody {
    first: Option<Bytes>,
    rest: SyncWrapper<BoxStream<'static, s3dedup_storage::Result<Bytes>>>,
    remaining: usize,
}

impl std::fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ObjectBody {
    /// `first` was already read (to fail before the status line when the very first
    /// chunk is bad); `rest` follows.
    pub fn new(
        first: Option<Bytes>,
        rest: BoxStream<'static, s3dedup_storage::Result<Bytes>>,
        len: u64,
    ) -> Self {
        ObjectBody {
            first,
            rest: SyncWrapper::new(rest),
            remaining: usize::try_from(len).unwrap_or(usize::MAX),
        }
    }
}

impl Stream for ObjectBody {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            self.remaining = self.remaining.saturating_sub(b.len());
            return Poll::Ready(Some(Ok(b)));
        }
        match self.rest.get_mut().as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len());
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                metrics::counter!(crate::metrics::READ_VERIFY_FAILURES).increment(1);
                tracing::warn!(error = %e, "object read failed mid-stream; aborting the response");
                Poll::Ready(Some(Err(Box::new(e))))
            }
            other => other.map(|o| o.map(|r| r.map_err(|e| Box::new(e) as StdError))),
        }
    }
}

impl ByteStream for ObjectBody {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}
