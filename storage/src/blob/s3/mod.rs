//! Blobs as objects in an S3 bucket (aws-sdk-s3): any S3-compatible store.
//!
//! Each blob is one object, `<prefix><name>`. A pack is written with one `PutObject`
//! when it fits in [`S3Settings::single_put_max`] (the default pack size does), else as
//! a multipart upload in [`S3Settings::part_size`] parts, so a writer holds at most
//! `single_put_max` bytes, or two parts once it has switched to multipart. Reads are
//! ranged `GetObject`s.
//!
//! # Failure handling
//! The backend will be slow, throttled and sometimes down, so every request goes
//! through `Resilience::call` (`resilience.rs`):
//! - each attempt has a deadline ([`S3Settings::attempt_timeout`]) covering the
//!   response *and* its body, so a stall mid-body is a failed attempt, not a hang;
//! - network errors, timeouts, 5xx, 429 and bodies shorter than announced are retried
//!   ([`S3Settings::max_attempts`]) with exponential backoff and jitter; other 4xx
//!   are final;
//! - a circuit breaker counts consecutive failed attempts; at
//!   [`S3Settings::breaker_threshold`] it opens, and for
//!   [`S3Settings::breaker_cooldown`] every call fails at once with
//!   [`Error::Unavailable`] instead of queueing behind a dead backend; after the
//!   cooldown requests go through again, and the first success closes it.
//!
//! Only a 200 from `PutObject` / `CompleteMultipartUpload` counts as written (the
//! caller then commits an index record naming the blob: invariant 1). The SDK's own
//! retries are off (they would hide attempts from the breaker and the metrics), and
//! request checksums default to `when_required`, which third-party stores accept; each
//! `PutObject`/`UploadPart` carries a `Content-MD5` instead, so the backend rejects
//! bytes damaged in transit (cheaper here than signing the payload with SHA-256).
//!
//! # Layout
//! - `mod.rs` — [`S3BlobStore`]: the client, the blob operations, the [`BlobStore`] impl;
//! - `settings.rs` — [`S3Settings`], [`ChecksumMode`];
//! - `resilience.rs` — deadlines, retries, backoff, the circuit breaker (with an
//!   injectable clock) and the classification of SDK errors;
//! - `writer.rs` — the streamed writer (one `PutObject`, or multipart).

mod resilience;
mod settings;
mod writer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use md5::{Digest, Md5};

use super::{BlobInfo, BlobStore, BlobWriter, check_name};
use crate::error::{Error, Result};
use crate::metrics::BACKEND_BYTES;
use resilience::{Breaker, Failure, Resilience, SystemClock, classify};
pub use settings::{ChecksumMode, S3Settings};
use writer::S3Writer;

/// Blobs in an S3 bucket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    backend: Arc<Backend>,
}

/// The client plus the retry and breaker state every request goes through.
pub(super) struct Backend {
    client: Client,
    bucket: String,
    prefix: String,
    single_put_max: usize,
    part_size: usize,
    resilience: Resilience,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The SDK's default HTTPS client (rustls, aws-lc-rs), trusting the system's roots and
/// the CA certificates in `path`.
fn https_client_trusting(path: &std::path::Path) -> Result<aws_sdk_s3::config::SharedHttpClient> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let bad =
        |why: String| Error::InvalidArgument(format!("store CA bundle {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(bad("no CERTIFICATE block".into()));
    }
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

impl S3BlobStore {
    /// Builds the client. Does not contact the backend; see [`BlobStore::check`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for inconsistent settings.
    pub async fn connect(s: S3Settings) -> Result<Self> {
        if s.part_size < 5 << 20 || s.single_put_max < s.part_size || s.max_attempts == 0 {
            return Err(Error::InvalidArgument(
                "S3 store: need part_size ≥ 5 MiB, single_put_max ≥ part_size, max_attempts ≥ 1"
                    .into(),
            ));
        }
        // Region and credentials: the SDK's usual chains unless given. Nothing else is
        // taken from the environment, so the SDK's retry and checksum defaults cannot
        // override ours.
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &s.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some((ak, sk)) = &s.credentials {
            loader =
                loader.credentials_provider(Credentials::new(ak, sk, None, None, "s3dedup-config"));
        }
        if let Some(path) = &s.ca_bundle {
            loader = loader.http_client(https_client_trusting(path)?);
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(s.path_style)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(s.connect_timeout)
                    .build(),
            )
            .request_checksum_calculation(match s.checksum {
                ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
                ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
            })
            .response_checksum_validation(match s.checksum {
                ChecksumMode::WhenRequired => ResponseChecksumValidation::WhenRequired,
                ChecksumMode::WhenSupported => ResponseChecksumValidation::WhenSupported,
            });
        if shared.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        if let Some(e) = &s.endpoint {
            b = b.endpoint_url(e);
        }
        Ok(S3BlobStore {
            backend: Arc::new(Backend {
                client: Client::from_conf(b.build()),
                bucket: s.bucket,
                prefix: s.prefix,
                single_put_max: s.single_put_max,
                part_size: s.part_size,
                resilience: Resilience {
                    attempt_timeout: s.attempt_timeout,
                    max_attempts: s.max_attempts,
                    backoff_base: s.backoff_base,
                    backoff_max: s.backoff_max,
                    breaker: Breaker::new(
                        s.breaker_threshold,
                        s.breaker_cooldown,
                        Arc::new(SystemClock),
                    ),
                },
            }),
        })
    }
}

impl Backend {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `attempt` under the deadline, retry and breaker rules (module docs).
    async fn call<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.resilience.call(op, attempt).await
    }

    async fn put_object(&self, name: &str, data: Bytes) -> Result<()> {
        let md5 = content_md5(data.clone()).await?;
        let key = self.key(name);
        let len = data.len() as u64;
        self.call("put", || async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_md5(&md5)
                .body(ByteStream::from(data.clone()))
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| classify(e, name))?;
            Ok(())
        })
        .await?;
        metrics::counter!(BACKEND_BYTES, "direction" => "out").increment(len);
        Ok(())
    }

    /// A `GetObject`, optionally ranged, read to the end and checked against the
    /// length the response announced. Returns the bytes and the object's total size.
    async fn get_object(&self, name: &str, range: Option<(u64, u64)>) -> Result<(Bytes, u64)> {
        let key = self.key(name);
        let op = if range.is_some() { "get_range" } else { "get" };
        let (bytes, total) = self
            .call(op, || async {
                let mut req = self.client.get_object().bucket(&self.bucket).key(&key);
                if let Some((offset, len)) = range {
                    req = req.range(format!("bytes={offset}-{}", offset + len - 1));
                }
                let out = req.send().await.map_err(|e| classify(e, name))?;
                let announced = out.content_length().and_then(|l| u64::try_from(l).ok());
                let total = match out.content_range() {
                    Some(cr) => cr
                        .rsplit('/')
                        .next()
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or_else(|| Failure::rejected(format!("bad Content-Range {cr:?}")))?,
                    None => announced.unwrap_or(0),
                };
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Failure::transient("short_body", e))?
                    .into_bytes();
                if announced.is_some_and(|a| a != body.len() as u64) {
                    return Err(Failure::transient(
                        "short_body",
                        format!("body of {} bytes, {announced:?} announced", body.len()),
                    ));
                }
                Ok((body, total))
            })
            .await
            .map_err(|e| match (e, range) {
                // 416: the range starts at or past the end.
                (Error::Truncated { .. }, Some((offset, len))) => Error::Truncated {
                    name: name.to_owned(),
                    offset,
                    wanted: len,
                    got: 0,
                },
                (e, _) => e,
            })?;
        metrics::counter!(BACKEND_BYTES, "direction" => "in").increment(bytes.len() as u64);
        Ok((bytes, total))
    }

    async fn head(&self, name: &str) -> Result<u64> {
        let key = self.key(name);
        self.call("head", || async {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| classify(e, name))?;
            Ok(out
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0))
        })
        .await
    }
}

/// Base64 MD5 of `data`, computed off the async threads (packs are MiBs).
async fn content_md5(data: Bytes) -> Result<String> {
    let digest = tokio::task::spawn_blocking(move || Md5::digest(&data)).await?;
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

impl BlobStore for S3BlobStore {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, Result<()>> {
        async move {
            check_name(name)?;
            self.backend.put_object(name, data).await
        }
        .boxed()
    }

    fn writer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>>> {
        async move {
            check_name(name)?;
            Ok(Box::new(S3Writer::new(Arc::clone(&self.backend), name)) as Box<dyn BlobWriter>)
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes>> {
        async move {
            check_name(name)?;
            if len == 0 {
                // No such thing as an empty HTTP range: check the blob instead.
                let size = self.backend.head(name).await?;
                if offset > size {
                    return Err(Error::Truncated {
                        name: name.to_owned(),
                        offset,
                        wanted: 0,
                        got: 0,
                    });
                }
                return Ok(Bytes::new());
            }
            let (bytes, _) = self.backend.get_object(name, Some((offset, len))).await?;
            if bytes.len() as u64 != len {
                // A range running past the end is answered with what exists.
                return Err(Error::Truncated {
                    name: name.to_owned(),
                    offset,
                    wanted: len,
                    got: bytes.len() as u64,
                });
            }
            Ok(bytes)
        }
        .boxed()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Bytes>> {
        async move {
            check_name(name)?;
            Ok(self.backend.get_object(name, None).await?.0)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            check_name(name)?;
            let b = &self.backend;
            let key = b.key(name);
            let r = b
                .call("delete", || async {
                    b.client
                        .delete_object()
                        .bucket(&b.bucket)
                        .key(&key)
                        .send()
                        .await
                        .map_err(|e| classify(e, name))?;
                    Ok(())
                })
                .await;
            match r {
                Err(Error::BlobNotFound(_)) => Ok(()),
                r => r,
            }
        }
        .boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<BlobInfo>>> {
        async move {
            let b = &self.backend;
            let full = b.key(prefix);
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = b
                    .call("list", || async {
                        b.client
                            .list_objects_v2()
                            .bucket(&b.bucket)
                            .prefix(&full)
                            .set_continuation_token(token.clone())
                            .send()
                            .await
                            .map_err(|e| classify(e, prefix))
                    })
                    .await?;
                for o in page.contents() {
                    let Some(name) = o.key().and_then(|k| k.strip_prefix(&b.prefix)) else {
                        continue;
                    };
                    if check_name(name).is_err() {
                        continue; // not something this store wrote
                    }
                    out.push(BlobInfo {
                        name: name.to_owned(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
                token = page.next_continuation_token().map(str::to_owned);
                if token.is_none() || page.is_truncated() != Some(true) {
                    break;
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
        .boxed()
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            let b = &self.backend;
            if let Some(why) = b.resilience.breaker.is_open() {
                return Err(Error::Unavailable {
                    detail: why,
                    slow_down: false,
                });
            }
            // A readiness probe answers quickly: one attempt, at most 5 s.
            let deadline = b.resilience.attempt_timeout.min(Duration::from_secs(5));
            b.resilience
                .call_with("head_bucket", 1, deadline, || async {
                    b.client
                        .head_bucket()
                        .bucket(&b.bucket)
                        .send()
                        .await
                        .map_err(|e| classify(e, &b.bucket))?;
                    Ok(())
                })
                .await
                .map_err(|e| match e {
                    Error::BlobNotFound(_) => {
                        Error::backend(format!("bucket {:?} does not exist", b.bucket))
                    }
                    e => e,
                })
        }
        .boxed()
    }
}
