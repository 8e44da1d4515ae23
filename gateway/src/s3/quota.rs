//! Quotas at the edge of an upload: refused before a byte is read when the declared
//! size cannot fit, cut as soon as an undeclared one (chunked, without a length) has
//! gone past the room left. The commit's check is the exact one (`s3dedup_storage`
//! `index::usage`); these only keep an upload that cannot fit from being stored first.
//! A cut upload publishes nothing; the chunks it had stored become garbage for GC.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::dto::StreamingBlob;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Result, StdError};

use super::Gateway;
use crate::error::{quota_error, to_s3};

use crate::error::QUOTA_CUT as CUT;

impl Gateway {
    /// Bytes a new version of bucket/key may bring (`None` = unlimited), or the refusal
    /// when even an empty one would exceed an object-count quota.
    pub(super) async fn quota_room(&self, bucket: &str, key: &str) -> S3Result<Option<u64>> {
        self.store.quota_room(bucket, key).await.map_err(to_s3)
    }
}

/// Refuses an upload whose declared length does not fit in `room`.
pub(super) fn check_declared(len: Option<i64>, room: Option<u64>) -> S3Result<()> {
    if let (Some(len), Some(room)) = (len.and_then(|n| u64::try_from(n).ok()), room)
        && len > room
    {
        return Err(quota_error(&format!(
            "this upload of {len} bytes does not fit: the quota leaves {room} bytes"
        )));
    }
    Ok(())
}

/// Most of a refused upload's body read and thrown away so the client sees the refusal.
const DRAIN_MAX: u64 = 64 << 20;

/// Reads and discards what is left of a refused upload's body (up to 64 MiB, a minute)
/// while the refusal goes out: closing a connection with unread bytes makes TCP reset it,
/// and a client still sending would see the reset instead of the 403.
pub(super) fn drain(body: Option<StreamingBlob>) {
    let Some(mut body) = body else { return };
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut read = 0u64;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while read <= DRAIN_MAX {
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(Some(Ok(b))) => read += b.len() as u64,
                _ => break,
            }
        }
    });
}

/// `body`, failing once more than `room` bytes have come through.
pub(super) fn capped(body: StreamingBlob, room: Option<u64>) -> StreamingBlob {
    match room {
        None => body,
        Some(room) => StreamingBlob::new(Capped {
            inner: body,
            room,
            seen: 0,
        }),
    }
}

struct Capped {
    inner: StreamingBlob,
    room: u64,
    seen: u64,
}

impl Stream for Capped {
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.seen += b.len() as u64;
                if this.seen > this.room {
                    let msg = format!(
                        "{CUT}: the upload passed the {} bytes the quota leaves",
                        this.room
                    );
                    return Poll::Ready(Some(Err(msg.into())));
                }
                Poll::Ready(Some(Ok(b)))
            }
            other => other,
        }
    }
}

impl ByteStream for Capped {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn blob(chunks: &[&'static [u8]]) -> StreamingBlob {
        let items: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        StreamingBlob::wrap(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn an_undeclared_body_is_cut_once_past_the_room() {
        let mut s = capped(blob(&[b"12345", b"67890", b"abc"]), Some(10));
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"12345");
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"67890");
        let e = s.next().await.unwrap().unwrap_err().to_string();
        assert!(e.starts_with(CUT), "{e}");
        // Without a quota nothing is counted.
        let all: Vec<_> = capped(blob(&[b"12345", b"67890", b"abc"]), None)
            .collect()
            .await;
        assert!(all.iter().all(Result::is_ok));
    }

    #[test]
    fn a_declared_length_over_the_room_is_refused() {
        assert!(check_declared(Some(11), Some(10)).is_err());
        assert!(check_declared(Some(10), Some(10)).is_ok());
        assert!(check_declared(None, Some(0)).is_ok());
        assert!(check_declared(Some(1 << 40), None).is_ok());
    }
}
