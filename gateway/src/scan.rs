//! Inline virus scanning (DESIGN.md invariant 2): policy over a [`Scanner`].
//!
//! - PUT: [`ScanService::begin`] starts a clamd session before the body is read and
//!   [`UploadScan::tee`] feeds it every body piece while the same piece is chunked; the
//!   commit waits for [`ScanService::conclude`], which only lets a clean verdict through.
//! - CompleteMultipartUpload: [`ScanService::scan_stored`] streams the assembled object
//!   back from the store; the caller commits with the scanned content digest, so what was
//!   scanned is exactly what is published.
//! - Verdicts are cached by content digest and scanner version (clamd `VERSION`: engine
//!   and signature database), so an identical re-upload is not rescanned and a new
//!   database invalidates the cache. The cache lives in memory (bounded); a restart
//!   empties it. Copies are metadata-only and not rescanned: their bytes were admitted
//!   when first uploaded (`s3dedup rescan` re-checks stored objects after signature
//!   updates).
//! - Policies: a scanner failure (down, timeout, unparseable reply) fails closed (503)
//!   unless `fail-open` is set, and every fail-open pass is logged and counted; objects
//!   over the scan size limit are rejected unless `allow-unscanned` is set.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3dedup_scanner::{ScanError, Scanner, Verdict};
use s3dedup_storage::PendingObject;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics as m;

/// What a scanner failure means for the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse the upload (503).
    #[default]
    FailClosed,
    /// Publish it unscanned; logged and counted on every use. Development only.
    FailOpen,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail-closed" => Ok(FailurePolicy::FailClosed),
            "fail-open" => Ok(FailurePolicy::FailOpen),
            _ => Err("expected fail-closed or fail-open".into()),
        }
    }
}

/// What happens to objects larger than the scan limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OversizePolicy {
    /// Refuse them (400 EntityTooLarge).
    #[default]
    Reject,
    /// Publish them unscanned; logged and counted.
    AllowUnscanned,
}

impl std::str::FromStr for OversizePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(OversizePolicy::Reject),
            "allow-unscanned" => Ok(OversizePolicy::AllowUnscanned),
            _ => Err("expected reject or allow-unscanned".into()),
        }
    }
}

/// Scan policy settings.
#[derive(Debug, Clone, Copy)]
pub struct ScanPolicy {
    /// On scanner failure.
    pub on_failure: FailurePolicy,
    /// Largest object scanned, bytes (keep it ≤ clamd's StreamMaxLength).
    pub max_size: u64,
    /// Above `max_size`.
    pub oversize: OversizePolicy,
}

/// Who uploaded what, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Access key of the request.
    pub access_key: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// Key.
    pub key: &'a str,
}

/// Body pieces queued to the scanner before ingest waits for it.
const TEE_DEPTH: usize = 16;
/// How long a scanner version reading is trusted before it is read again.
const VERSION_TTL: Duration = Duration::from_secs(30);
/// Verdicts kept (digest + version + verdict, ~150 bytes each).
const CACHE_ENTRIES: usize = 100_000;

/// Verdict cache keyed by content digest; entries carry the scanner version that gave
/// them and only match that version.
#[derive(Debug, Default)]
struct VerdictCache {
    map: HashMap<[u8; 32], (Arc<str>, Verdict)>,
}

impl VerdictCache {
    fn get(&self, digest: &[u8; 32], version: &str) -> Option<Verdict> {
        self.map
            .get(digest)
            .filter(|(v, _)| &**v == version)
            .map(|(_, verdict)| verdict.clone())
    }

    fn put(&mut self, digest: [u8; 32], version: Arc<str>, verdict: Verdict) {
        if self.map.len() >= CACHE_ENTRIES {
            // Crude but bounded: a full cache starts over.
            self.map.clear();
        }
        self.map.insert(digest, (version, verdict));
    }
}

/// The scanner plus its policy, cache and version.
#[derive(Debug)]
pub struct ScanService {
    scanner: Arc<dyn Scanner>,
    policy: ScanPolicy,
    cache: Mutex<VerdictCache>,
    /// Last version reading (`None` inside: clamd did not say) and when it was taken.
    version: tokio::sync::Mutex<Option<(Option<Arc<str>>, Instant)>>,
}

/// Outcome of a verdict-cache lookup.
enum Lookup {
    /// The decision from a cached verdict.
    Hit(S3Result<()>),
    /// No cached verdict; file the new one under this version (if known).
    Miss(Option<Arc<str>>),
}

/// Why the tee stopped an upload early: the error the body stream ends with, carried
/// through the engine (as `Error::Body`) to [`ScanService::abort_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Abort {
    /// Over the scan size limit, with the policy `reject`.
    #[error("object exceeds the scan size limit")]
    Oversize,
    /// The scanner stopped reading the stream, with the policy `fail-closed`.
    #[error("virus scanner failed")]
    ScannerFailed,
}

#[derive(Debug, Default)]
struct TeeState {
    bytes: AtomicU64,
    /// Set when teeing stopped without stopping the upload (fail-open, allow-unscanned).
    detached: AtomicBool,
    oversize: AtomicBool,
}

/// The scan of one upload, from [`ScanService::begin`] to [`ScanService::conclude`].
#[derive(Debug)]
pub struct UploadScan {
    inner: Option<Running>,
}

#[derive(Debug)]
struct Running {
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<Result<Verdict, ScanError>>,
    state: Arc<TeeState>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // An upload that ends early (error, disconnect) must not leave a clamd session.
        self.task.abort();
    }
}

impl UploadScan {
    /// No scan (scanning off, or not scanned here, e.g. single parts).
    pub fn off() -> Self {
        UploadScan { inner: None }
    }

    /// Wraps the body so every piece also goes to the scanner (with backpressure). Stops
    /// the upload early when the scanner fails (fail-closed) or the object outgrows the
    /// scan limit (reject); the caller maps that with [`ScanService::abort_error`].
    pub fn tee<S, E>(
        &self,
        body: S,
        policy: ScanPolicy,
    ) -> Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: From<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let Some(tee) = self
            .inner
            .as_ref()
            .and_then(|r| Some((r.tx.clone()?, Arc::clone(&r.state))))
        else {
            return Box::pin(body);
        };
        let tee = Some(tee);
        Box::pin(body.then(move |item| {
            let tee = tee.clone();
            async move {
                let (Ok(data), Some((tx, st))) = (&item, tee) else {
                    return item;
                };
                if st.detached.load(Ordering::Relaxed) {
                    return item;
                }
                let total =
                    st.bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                if total > policy.max_size {
                    st.oversize.store(true, Ordering::Relaxed);
                    if policy.oversize == OversizePolicy::Reject {
                        return stop(Abort::Oversize);
                    }
                    st.detached.store(true, Ordering::Relaxed);
                    return item;
                }
                if tx.send(data.clone()).await.is_err() {
                    // The scan ended before the body did: it failed.
                    if policy.on_failure == FailurePolicy::FailClosed {
                        return stop(Abort::ScannerFailed);
                    }
                    st.detached.store(true, Ordering::Relaxed);
                }
                item
            }
        }))
    }
}

fn stop<E>(why: Abort) -> Result<Bytes, E>
where
    E: From<Box<dyn std::error::Error + Send + Sync>>,
{
    Err(E::from(Box::new(why)))
}

fn virus_error(signature: &str) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("VirusDetected".into()),
        format!("The upload was rejected: virus scanner found {signature}"),
    );
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}

fn unavailable_error(e: &ScanError) -> S3Error {
    let mut err = s3_error!(
        ServiceUnavailable,
        "The virus scanner is unavailable; nothing was stored. Please retry ({e})"
    );
    err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
    err
}

fn oversize_error(limit: u64) -> S3Error {
    s3_error!(
        EntityTooLarge,
        "The object is larger than the virus-scan limit of {limit} bytes and cannot be scanned"
    )
}

impl ScanService {
    /// Logs the scanner's state at start-up without holding it up (an unreachable clamd
    /// can take the whole connect + reply deadline to say so).
    pub fn report_start(&self, policy: FailurePolicy) {
        if !self.enabled() {
            tracing::warn!(
                "virus scanning is not enabled (set S3DEDUP_CLAMD): uploads are NOT scanned"
            );
            return;
        }
        let scanner = Arc::clone(self.scanner());
        tokio::spawn(async move {
            match scanner.version().await {
                Ok(v) => tracing::info!(version = %v, "virus scanning enabled"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "virus scanning enabled but clamd does not answer yet; uploads fail until it does ({policy:?})"
                ),
            }
        });
        if policy == FailurePolicy::FailOpen {
            tracing::warn!(
                "scan policy is fail-open: when clamd fails, uploads are published UNSCANNED"
            );
        }
    }

    /// Scanning with `scanner` under `policy`.
    pub fn new(scanner: Arc<dyn Scanner>, policy: ScanPolicy) -> Self {
        ScanService {
            scanner,
            policy,
            cache: Mutex::new(VerdictCache::default()),
            version: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether uploads are scanned.
    pub fn enabled(&self) -> bool {
        self.scanner.enabled()
    }

    /// The policy.
    pub fn policy(&self) -> ScanPolicy {
        self.policy
    }

    /// The scanner (readiness checks, rescans).
    pub fn scanner(&self) -> &Arc<dyn Scanner> {
        &self.scanner
    }

    /// Starts scanning `who`'s upload of `size` bytes (if known), before its body is read.
    ///
    /// # Errors
    /// EntityTooLarge when `size` is over the limit and oversize uploads are rejected.
    pub fn begin(&self, size: Option<u64>, who: Subject<'_>) -> S3Result<UploadScan> {
        if !self.enabled() {
            return Ok(UploadScan::off());
        }
        if let Some(n) = size
            && n > self.policy.max_size
        {
            return self.oversize(who).map(|()| UploadScan::off());
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(TEE_DEPTH);
        let scanner = Arc::clone(&self.scanner);
        let task = tokio::spawn(async move {
            let pieces = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok)));
            let r: Result<_, std::convert::Infallible> =
                s3dedup_scanner::scan_stream(&*scanner, pieces).await;
            r.unwrap_or_else(|never| match never {})
        });
        Ok(UploadScan {
            inner: Some(Running {
                tx: Some(tx),
                task,
                state: Arc::default(),
            }),
        })
    }

    /// The S3 error for an upload the tee stopped early, if it did.
    pub fn abort_error(&self, e: &s3dedup_storage::Error) -> Option<S3Error> {
        let s3dedup_storage::Error::Body(source) = e else {
            return None;
        };
        match *source.downcast_ref::<Abort>()? {
            Abort::Oversize => {
                metrics::counter!(m::SCAN_OVERSIZE, "outcome" => "rejected").increment(1);
                Some(oversize_error(self.policy.max_size))
            }
            Abort::ScannerFailed => {
                let e = ScanError::Unavailable("the scanner stopped reading the stream".into());
                metrics::counter!(m::SCAN_ERRORS).increment(1);
                tracing::warn!(error = %e, "virus scan failed; upload refused (fail-closed)");
                Some(unavailable_error(&e))
            }
        }
    }

    /// Decides an upload whose body was fully ingested into `pending`: `Ok` only if it
    /// may be published.
    ///
    /// # Errors
    /// VirusDetected (403) naming the signature; ServiceUnavailable (503) when the
    /// scanner failed and the policy is fail-closed; EntityTooLarge over the limit.
    pub async fn conclude(
        &self,
        mut scan: UploadScan,
        pending: &PendingObject,
        who: Subject<'_>,
    ) -> S3Result<()> {
        let Some(mut run) = scan.inner.take() else {
            return Ok(());
        };
        if run.state.oversize.load(Ordering::Relaxed) {
            return self.oversize(who);
        }
        let digest = pending.content_digest();
        let version = match self.lookup(&digest, who).await {
            Lookup::Hit(decision) => return decision, // `run` drops: clamd never scans
            Lookup::Miss(version) => version,
        };
        // The body stream (with the tee's senders) is gone; dropping the last sender
        // ends the clamd stream and the verdict follows.
        let started = Instant::now();
        drop(run.tx.take());
        let result = match (&mut run.task).await {
            Ok(r) => r,
            Err(e) => Err(ScanError::Unavailable(format!("scan task failed: {e}"))),
        };
        let bytes = run.state.bytes.load(Ordering::Relaxed);
        self.settle(&digest, version, result, started, bytes, who)
    }

    /// Scans stored content (an assembled multipart upload) of `size` bytes and `digest`
    /// before it is published.
    ///
    /// # Errors
    /// As [`ScanService::conclude`]; a read error of the stored bytes is returned as is.
    pub async fn scan_stored<S>(
        &self,
        size: u64,
        digest: [u8; 32],
        body: S,
        who: Subject<'_>,
    ) -> S3Result<()>
    where
        S: Stream<Item = s3dedup_storage::Result<Bytes>> + Send + Unpin,
    {
        if !self.enabled() {
            return Ok(());
        }
        if size > self.policy.max_size {
            return self.oversize(who);
        }
        let version = match self.lookup(&digest, who).await {
            Lookup::Hit(decision) => return decision,
            Lookup::Miss(version) => version,
        };
        let started = Instant::now();
        let result = s3dedup_scanner::scan_stream(&*self.scanner, body)
            .await
            .map_err(crate::error::to_s3)?;
        self.settle(&digest, version, result, started, size, who)
    }

    /// The cached decision for `digest` under the scanner's current version, or the
    /// version a new verdict is to be filed under.
    async fn lookup(&self, digest: &[u8; 32], who: Subject<'_>) -> Lookup {
        let version = self.version().await;
        let cached = version.as_deref().and_then(|v| {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(digest, v)
        });
        match cached {
            Some(verdict) => Lookup::Hit(self.verdict(Ok(verdict), who, true)),
            None => Lookup::Miss(version),
        }
    }

    /// Records a finished scan (metrics, cache) and decides on it.
    fn settle(
        &self,
        digest: &[u8; 32],
        version: Option<Arc<str>>,
        result: Result<Verdict, ScanError>,
        started: Instant,
        bytes: u64,
        who: Subject<'_>,
    ) -> S3Result<()> {
        metrics::histogram!(m::SCAN_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(m::SCANNED_BYTES).increment(bytes);
        if let (Some(v), Ok(verdict)) = (version, &result) {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(*digest, v, verdict.clone());
        }
        self.verdict(result, who, false)
    }

    /// The scanner's version, re-read after [`VERSION_TTL`]; `None` when it cannot be
    /// read (then nothing is cached or served from the cache). A failed reading is kept
    /// for the TTL too, so an unreachable clamd costs one attempt per TTL, not one per
    /// upload; concurrent callers wait for the one reading in flight.
    async fn version(&self) -> Option<Arc<str>> {
        let mut slot = self.version.lock().await;
        if let Some((v, at)) = &*slot
            && at.elapsed() < VERSION_TTL
        {
            return v.clone();
        }
        let v = match self.scanner.version().await {
            Ok(v) => Some(Arc::from(v)),
            Err(e) => {
                tracing::debug!(error = %e, "scanner version unavailable; verdict cache bypassed");
                None
            }
        };
        *slot = Some((v.clone(), Instant::now()));
        v
    }

    fn oversize(&self, who: Subject<'_>) -> S3Result<()> {
        match self.policy.oversize {
            OversizePolicy::Reject => {
                metrics::counter!(m::SCAN_OVERSIZE, "outcome" => "rejected").increment(1);
                Err(oversize_error(self.policy.max_size))
            }
            OversizePolicy::AllowUnscanned => {
                metrics::counter!(m::SCAN_OVERSIZE, "outcome" => "allowed").increment(1);
                tracing::warn!(
                    target: "audit",
                    event = "unscanned_oversize",
                    access_key = who.access_key,
                    bucket = who.bucket,
                    key = who.key,
                    limit = self.policy.max_size,
                    "object over the scan limit published unscanned (allow-unscanned)"
                );
                Ok(())
            }
        }
    }

    fn verdict(
        &self,
        result: Result<Verdict, ScanError>,
        who: Subject<'_>,
        from_cache: bool,
    ) -> S3Result<()> {
        let label = if from_cache { "cache_hit" } else { "scanned" };
        match result {
            Ok(Verdict::Clean) => {
                metrics::counter!(m::SCANS, "verdict" => "clean", "source" => label).increment(1);
                Ok(())
            }
            Ok(Verdict::Infected(sig)) => {
                metrics::counter!(m::SCANS, "verdict" => "infected", "source" => label)
                    .increment(1);
                metrics::counter!(m::INFECTED_REJECTED).increment(1);
                tracing::warn!(
                    target: "audit",
                    event = "virus_rejected",
                    access_key = who.access_key,
                    bucket = who.bucket,
                    key = who.key,
                    signature = %sig,
                    "upload rejected: virus found"
                );
                crate::audit::emit(crate::audit::Event {
                    kind: "scan",
                    operation: "VirusRejected".into(),
                    key_id: who.access_key.to_owned(),
                    bucket: who.bucket.to_owned(),
                    key: who.key.to_owned(),
                    status: 403,
                    detail: sig.to_string(),
                    ..Default::default()
                });
                Err(virus_error(&sig))
            }
            Err(ScanError::TooLarge(why)) => {
                tracing::info!(reason = %why, "scanner reported a size limit");
                self.oversize(who)
            }
            Err(e) => {
                metrics::counter!(m::SCANS, "verdict" => "error", "source" => label).increment(1);
                metrics::counter!(m::SCAN_ERRORS).increment(1);
                match self.policy.on_failure {
                    FailurePolicy::FailClosed => {
                        tracing::warn!(error = %e, bucket = who.bucket, key = who.key,
                            "virus scan failed; upload refused (fail-closed)");
                        Err(unavailable_error(&e))
                    }
                    FailurePolicy::FailOpen => {
                        metrics::counter!(m::SCAN_FAIL_OPEN).increment(1);
                        tracing::warn!(
                            target: "audit",
                            event = "fail_open",
                            access_key = who.access_key,
                            bucket = who.bucket,
                            key = who.key,
                            error = %e,
                            "virus scan failed; object published UNSCANNED (fail-open)"
                        );
                        Ok(())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_match_only_their_version() {
        let mut c = VerdictCache::default();
        let d = [7u8; 32];
        c.put(d, "ClamAV 1.4.6/27000".into(), Verdict::Clean);
        assert_eq!(c.get(&d, "ClamAV 1.4.6/27000"), Some(Verdict::Clean));
        assert_eq!(c.get(&d, "ClamAV 1.4.6/27001"), None);
        assert_eq!(c.get(&[8u8; 32], "ClamAV 1.4.6/27000"), None);
        c.put(
            d,
            "ClamAV 1.4.6/27001".into(),
            Verdict::Infected("X".into()),
        );
        assert_eq!(
            c.get(&d, "ClamAV 1.4.6/27001"),
            Some(Verdict::Infected("X".into()))
        );
        assert_eq!(c.get(&d, "ClamAV 1.4.6/27000"), None);
    }

    #[test]
    fn policies_parse() {
        assert_eq!("fail-open".parse(), Ok(FailurePolicy::FailOpen));
        assert_eq!("fail-closed".parse(), Ok(FailurePolicy::FailClosed));
        assert!("open".parse::<FailurePolicy>().is_err());
        assert_eq!(
            "allow-unscanned".parse(),
            Ok(OversizePolicy::AllowUnscanned)
        );
        assert_eq!("reject".parse(), Ok(OversizePolicy::Reject));
        assert!("skip".parse::<OversizePolicy>().is_err());
    }
}
