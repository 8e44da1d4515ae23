//! The streamed writer: one `PutObject` when the blob fits in `single_put_max`, else a
//! multipart upload with one part in flight while the next fills.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};

use super::resilience::{Failure, classify};
use super::{Backend, content_md5};
use crate::blob::BlobWriter;
use crate::error::{Error, Result};
use crate::metrics::BACKEND_BYTES;

/// How much a writer's buffer grows at a time.
const GROW_STEP: usize = 4 << 20;

/// A streamed write: one `PutObject` at `finish` when the blob stays within
/// `single_put_max`, else a multipart upload with one part in flight while the next
/// fills. Dropped unfinished, it aborts its multipart upload (if any) in the
/// background; nothing is ever visible under the name before `finish`.
pub(super) struct S3Writer {
    backend: Arc<Backend>,
    name: String,
    /// The blob (or the current part) so far. Grown in [`GROW_STEP`]s, not doubled: a
    /// 16.3 MiB pack must not cost a 32 MiB buffer.
    buf: Vec<u8>,
    multipart: Option<Multipart>,
    done: bool,
}

struct Multipart {
    upload_id: String,
    parts: Vec<CompletedPart>,
    in_flight: Option<tokio::task::JoinHandle<Result<CompletedPart>>>,
}

impl S3Writer {
    pub(super) fn new(backend: Arc<Backend>, name: &str) -> Self {
        S3Writer {
            backend,
            name: name.to_owned(),
            buf: Vec::new(),
            multipart: None,
            done: false,
        }
    }

    async fn start_multipart(&mut self) -> Result<()> {
        let b = &self.backend;
        let key = b.key(&self.name);
        let name = self.name.clone();
        let upload_id = b
            .call("create_multipart", || async {
                let out = b
                    .client
                    .create_multipart_upload()
                    .bucket(&b.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| classify(e, &name))?;
                out.upload_id
                    .ok_or_else(|| Failure::rejected("CreateMultipartUpload returned no upload id"))
            })
            .await?;
        self.multipart = Some(Multipart {
            upload_id,
            parts: Vec::new(),
            in_flight: None,
        });
        Ok(())
    }

    /// Waits for the part in flight and records it.
    async fn settle(&mut self) -> Result<()> {
        let mp = self.multipart.as_mut().expect("multipart started");
        if let Some(h) = mp.in_flight.take() {
            mp.parts.push(h.await??);
        }
        Ok(())
    }

    /// Sends `data` as the next part (after the one in flight lands).
    async fn send_part(&mut self, data: Bytes) -> Result<()> {
        self.settle().await?;
        let mp = self.multipart.as_mut().expect("multipart started");
        let number = i32::try_from(mp.parts.len() + 1)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| Error::InvalidArgument("blob needs more than 10,000 parts".into()))?;
        let (b, name, upload_id) = (
            Arc::clone(&self.backend),
            self.name.clone(),
            mp.upload_id.clone(),
        );
        mp.in_flight = Some(tokio::spawn(async move {
            let md5 = content_md5(data.clone()).await?;
            let key = b.key(&name);
            let len = data.len() as u64;
            let etag = b
                .call("upload_part", || async {
                    let out = b
                        .client
                        .upload_part()
                        .bucket(&b.bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .content_md5(&md5)
                        .body(ByteStream::from(data.clone()))
                        .customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .map_err(|e| classify(e, &name))?;
                    out.e_tag
                        .ok_or_else(|| Failure::rejected("UploadPart returned no ETag"))
                })
                .await?;
            metrics::counter!(BACKEND_BYTES, "direction" => "out").increment(len);
            Ok(CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build())
        }));
        Ok(())
    }

    async fn complete(&mut self) -> Result<()> {
        self.settle().await?;
        let mp = self.multipart.as_ref().expect("multipart started");
        let (b, name, upload_id) = (&*self.backend, self.name.as_str(), mp.upload_id.as_str());
        let key = b.key(name);
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(mp.parts.clone()))
            .build();
        let mut attempts = 0;
        let result = b
            .call("complete_multipart", || {
                attempts += 1;
                let (done, key) = (done.clone(), &key);
                async move {
                    b.client
                        .complete_multipart_upload()
                        .bucket(&b.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .multipart_upload(done)
                        .send()
                        .await
                        .map_err(|e| classify(e, name))?;
                    Ok(())
                }
            })
            .await;
        match result {
            // A retried completion whose first attempt did land finds the upload gone.
            // That is success if the object is there (names are never reused for
            // different content: they are content-derived or fresh).
            Err(Error::BlobNotFound(_)) if attempts > 1 => b.head(name).await.map(|_| ()),
            r => r,
        }
    }
}

impl BlobWriter for S3Writer {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        async move {
            if self.buf.capacity() - self.buf.len() < data.len() {
                self.buf.reserve_exact(data.len().max(GROW_STEP));
            }
            self.buf.extend_from_slice(&data);
            if self.multipart.is_none() && self.buf.len() > self.backend.single_put_max {
                self.start_multipart().await?;
            }
            if self.multipart.is_some() {
                while self.buf.len() >= self.backend.part_size {
                    let part = Bytes::copy_from_slice(&self.buf[..self.backend.part_size]);
                    self.buf.drain(..self.backend.part_size);
                    self.send_part(part).await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        async move {
            let data = Bytes::from(std::mem::take(&mut self.buf));
            if self.multipart.is_none() {
                self.backend.put_object(&self.name, data).await?;
            } else {
                if !data.is_empty() {
                    self.send_part(data).await?;
                }
                self.complete().await?;
            }
            self.done = true;
            Ok(())
        }
        .boxed()
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(mp) = self.multipart.take() else {
            return; // nothing was sent
        };
        if let Some(h) = &mp.in_flight {
            h.abort();
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (b, key) = (Arc::clone(&self.backend), self.backend.key(&self.name));
        rt.spawn(async move {
            // One attempt: a leftover upload is invisible and bucket lifecycle rules
            // (AbortIncompleteMultipartUpload) clean up what this misses.
            let r = b
                .client
                .abort_multipart_upload()
                .bucket(&b.bucket)
                .key(&key)
                .upload_id(&mp.upload_id)
                .send()
                .await;
            if let Err(e) = r {
                tracing::debug!(key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "abort of an unfinished multipart upload failed");
            }
        });
    }
}
