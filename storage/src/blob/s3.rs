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
//! through [`Backend::call`]:
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

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use md5::{Digest, Md5};

use super::{BlobInfo, BlobStore, BlobWriter, check_name};
use crate::error::{Error, Result};

use crate::metrics::{
    BACKEND_BYTES, BACKEND_CIRCUIT_OPEN, BACKEND_FAST_FAILS, BACKEND_REQUESTS, BACKEND_RETRIES,
    BACKEND_SECONDS,
};

/// Which request checksums the SDK computes (`S3DEDUP_STORE_CHECKSUM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Only where the operation requires one (what third-party stores accept).
    #[default]
    WhenRequired,
    /// Wherever the operation supports one (AWS's default; CRC32 trailers).
    WhenSupported,
}

impl std::str::FromStr for ChecksumMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "when_required" | "when-required" => Ok(ChecksumMode::WhenRequired),
            "when_supported" | "when-supported" => Ok(ChecksumMode::WhenSupported),
            _ => Err("expected when_required or when_supported".into()),
        }
    }
}

/// Everything needed to reach a bucket. [`S3Settings::from_url`] fills the defaults.
#[derive(Clone)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of every blob: empty, or ending in `/`.
    pub prefix: String,
    /// Endpoint URL (`http://127.0.0.1:9000`); `None` = AWS's regional endpoint.
    pub endpoint: Option<String>,
    /// Region; `None` = the SDK's region chain (environment, profile), else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted stores.
    pub path_style: bool,
    /// Static credentials; `None` = the SDK's default credential chain.
    pub credentials: Option<(String, String)>,
    /// Request checksum behaviour.
    pub checksum: ChecksumMode,
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// Deadline of one attempt, response body included.
    pub attempt_timeout: Duration,
    /// Attempts per request (1 = no retries).
    pub max_attempts: u32,
    /// First backoff; doubled per retry up to `backoff_max`, each jittered to 50–100 %.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Blobs up to this size are one `PutObject`; larger ones are multipart.
    pub single_put_max: usize,
    /// Multipart part size (S3 needs ≥ 5 MiB for all parts but the last).
    pub part_size: usize,
    /// Consecutive failed attempts that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before letting requests through again.
    pub breaker_cooldown: Duration,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret key.
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("static_credentials", &self.credentials.is_some())
            .field("checksum", &self.checksum)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Settings for `s3://bucket[/prefix]` with every other field at its default.
    ///
    /// # Errors
    /// A message saying what is wrong with the URL.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("expected s3://bucket[/prefix]")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(format!("{bucket:?} is not a valid bucket name"));
        }
        let prefix = prefix.trim_end_matches('/');
        if prefix
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !prefix.is_empty()
        {
            return Err(format!("prefix {prefix:?} has an empty, . or .. segment"));
        }
        Ok(S3Settings {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            checksum: ChecksumMode::WhenRequired,
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
            max_attempts: 4,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            single_put_max: 32 << 20,
            part_size: 16 << 20,
            breaker_threshold: 8,
            breaker_cooldown: Duration::from_secs(5),
        })
    }

    /// `s3://bucket/prefix` (for logs and for recognising the store on restart).
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Blobs in an S3 bucket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    backend: Arc<Backend>,
}

/// The client plus the retry and breaker state every request goes through.
struct Backend {
    client: Client,
    bucket: String,
    prefix: String,
    attempt_timeout: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    single_put_max: usize,
    part_size: usize,
    breaker: Breaker,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
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
                attempt_timeout: s.attempt_timeout,
                max_attempts: s.max_attempts,
                backoff_base: s.backoff_base,
                backoff_max: s.backoff_max,
                single_put_max: s.single_put_max,
                part_size: s.part_size,
                breaker: Breaker::new(s.breaker_threshold, s.breaker_cooldown),
            }),
        })
    }
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt (and counts against the breaker).
    Transient {
        outcome: &'static str,
        detail: String,
    },
    /// The backend answered; retrying would not change the answer.
    Final { outcome: &'static str, error: Error },
}

impl Failure {
    /// The backend answered with something unusable; retrying will not help.
    fn rejected(detail: impl Into<crate::error::BoxError>) -> Self {
        Failure::Final {
            outcome: "rejected",
            error: Error::backend(detail),
        }
    }

    fn transient(outcome: &'static str, detail: impl fmt::Display) -> Self {
        Failure::Transient {
            outcome,
            detail: detail.to_string(),
        }
    }
}

/// Classifies an SDK error. `name` is the blob, for not-found errors.
fn classify<E>(e: SdkError<E, HttpResponse>, name: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = || format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) => Failure::transient("timeout", detail()),
        SdkError::DispatchFailure(d) if d.is_timeout() => Failure::transient("timeout", detail()),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::transient("network", detail())
        }
        SdkError::ServiceError(ctx) => match ctx.raw().status().as_u16() {
            404 => Failure::Final {
                outcome: "not_found",
                error: Error::BlobNotFound(name.to_owned()),
            },
            // The range starts at or past the end; the caller fills in the numbers.
            416 => Failure::Final {
                outcome: "ok",
                error: Error::Truncated {
                    name: name.to_owned(),
                    offset: 0,
                    wanted: 0,
                    got: 0,
                },
            },
            429 | 503 => Failure::transient("throttled", detail()),
            408 | 500..=599 => Failure::transient("server_error", detail()),
            _ => Failure::rejected(detail()),
        },
        _ => Failure::rejected(detail()),
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
        self.call_with(op, self.max_attempts, self.attempt_timeout, attempt)
            .await
    }

    /// [`Backend::call`] with its own attempt count and deadline.
    async fn call_with<T, F, Fut>(
        &self,
        op: &'static str,
        max_attempts: u32,
        deadline: Duration,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut last = String::new();
        let mut throttled = false;
        for n in 1..=max_attempts {
            if n > 1 {
                metrics::counter!(BACKEND_RETRIES, "op" => op).increment(1);
                tokio::time::sleep(self.backoff(n - 1)).await;
            }
            if let Err(e) = self.breaker.admit() {
                metrics::counter!(BACKEND_FAST_FAILS).increment(1);
                return Err(e);
            }
            let started = Instant::now();
            let result = match tokio::time::timeout(deadline, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(Failure::transient(
                    "timeout",
                    format!("no complete answer within {deadline:?}"),
                )),
            };
            metrics::histogram!(BACKEND_SECONDS, "op" => op)
                .record(started.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok(_) => "ok",
                Err(Failure::Final { outcome, .. } | Failure::Transient { outcome, .. }) => outcome,
            };
            metrics::counter!(BACKEND_REQUESTS, "op" => op, "outcome" => outcome).increment(1);
            match result {
                Ok(v) => {
                    self.breaker.success();
                    return Ok(v);
                }
                // The backend answered: it is up, whatever it said.
                Err(Failure::Final { error, .. }) => {
                    self.breaker.success();
                    return Err(error);
                }
                Err(Failure::Transient { outcome, detail }) => {
                    self.breaker.failure();
                    tracing::debug!(op, attempt = n, outcome, %detail, "backend attempt failed");
                    throttled = outcome == "throttled";
                    last = detail;
                }
            }
        }
        tracing::warn!(op, attempts = max_attempts, error = %last, "backend request failed");
        Err(Error::Unavailable {
            detail: format!("{op} failed after {max_attempts} attempts: {last}"),
            slow_down: throttled,
        })
    }

    /// Backoff before retry `n` (1-based): base·2ⁿ⁻¹ capped, jittered to 50–100 %.
    fn backoff(&self, n: u32) -> Duration {
        let full = self
            .backoff_base
            .saturating_mul(1 << (n - 1).min(16))
            .min(self.backoff_max);
        full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
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

/// Consecutive-failure circuit breaker (module docs).
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    consecutive: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` while open. After the cooldown, requests pass (half-open): one more
    /// failure reopens it at once, a success closes it.
    fn admit(&self) -> Result<()> {
        let st = self.lock();
        match st.open_until {
            Some(until) if Instant::now() < until => Err(Error::Unavailable {
                detail: format!(
                    "backing store circuit open after {} consecutive failures; retrying in {:?}",
                    st.consecutive,
                    until - Instant::now()
                ),
                slow_down: false,
            }),
            _ => Ok(()),
        }
    }

    fn success(&self) {
        let mut st = self.lock();
        if st.open_until.take().is_some() {
            tracing::info!("backing store answering again; circuit closed");
            metrics::gauge!(BACKEND_CIRCUIT_OPEN).set(0.0);
        }
        st.consecutive = 0;
    }

    fn failure(&self) {
        let mut st = self.lock();
        st.consecutive = st.consecutive.saturating_add(1);
        let reopen = match st.open_until {
            // Half-open (cooldown over) or closed at the threshold.
            Some(until) => Instant::now() >= until,
            None => st.consecutive >= self.threshold,
        };
        if reopen {
            if st.open_until.is_none() {
                tracing::warn!(
                    failures = st.consecutive,
                    cooldown = ?self.cooldown,
                    "backing store failing; circuit open"
                );
            }
            st.open_until = Some(Instant::now() + self.cooldown);
            metrics::gauge!(BACKEND_CIRCUIT_OPEN).set(1.0);
        }
    }

    fn is_open(&self) -> Option<String> {
        let st = self.lock();
        st.open_until
            .filter(|u| Instant::now() < *u)
            .map(|_| format!("circuit open after {} consecutive failures", st.consecutive))
    }
}

/// How much a writer's buffer grows at a time.
const GROW_STEP: usize = 4 << 20;

/// A streamed write: one `PutObject` at `finish` when the blob stays within
/// `single_put_max`, else a multipart upload with one part in flight while the next
/// fills. Dropped unfinished, it aborts its multipart upload (if any) in the
/// background; nothing is ever visible under the name before `finish`.
struct S3Writer {
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
            Ok(Box::new(S3Writer {
                backend: Arc::clone(&self.backend),
                name: name.to_owned(),
                buf: Vec::new(),
                multipart: None,
                done: false,
            }) as Box<dyn BlobWriter>)
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
            if let Some(why) = b.breaker.is_open() {
                return Err(Error::Unavailable {
                    detail: why,
                    slow_down: false,
                });
            }
            // A readiness probe answers quickly: one attempt, at most 5 s.
            let deadline = b.attempt_timeout.min(Duration::from_secs(5));
            b.call_with("head_bucket", 1, deadline, || async {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = S3Settings::from_url("s3://my-bucket").unwrap();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("my-bucket", ""));
        let s = S3Settings::from_url("s3://my-bucket/a/b/").unwrap();
        assert_eq!(s.prefix, "a/b/");
        assert_eq!(s.url(), "s3://my-bucket/a/b/");
        for bad in [
            "my-bucket",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-x-bucket",
            "s3://b_ucket",
            "s3://bucket/a//b",
            "s3://bucket/../x",
        ] {
            assert!(S3Settings::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn breaker_opens_at_the_threshold_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_millis(50));
        b.failure();
        b.failure();
        assert!(b.admit().is_ok());
        b.failure();
        assert!(matches!(b.admit(), Err(Error::Unavailable { .. })));
        assert!(b.is_open().is_some());
        std::thread::sleep(Duration::from_millis(60));
        // Half-open: requests pass; one more failure reopens at once.
        assert!(b.admit().is_ok());
        b.failure();
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok());
        b.success();
        assert!(b.is_open().is_none());
        b.failure();
        assert!(
            b.admit().is_ok(),
            "one failure after closing does not reopen"
        );
    }

    #[test]
    fn backoff_grows_jittered_and_capped() {
        let s = S3Settings::from_url("s3://bucket").unwrap();
        let b = Backend {
            client: Client::from_conf(
                aws_sdk_s3::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .build(),
            ),
            bucket: s.bucket,
            prefix: s.prefix,
            attempt_timeout: s.attempt_timeout,
            max_attempts: s.max_attempts,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            single_put_max: s.single_put_max,
            part_size: s.part_size,
            breaker: Breaker::new(1, Duration::ZERO),
        };
        for (n, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = b.backoff(n).as_millis();
            assert!(d >= full / 2 && d <= full, "retry {n}: {d} ms");
        }
    }
}
