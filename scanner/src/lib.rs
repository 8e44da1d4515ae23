//! s3dedup virus scanning: the [`Scanner`] trait, its clamd implementation
//! ([`ClamdScanner`]), clamd's reply parser ([`parse_reply`]) and a no-op scanner for
//! the embedded default ([`NoopScanner`]).
//!
//! A scan is a stream: [`Scanner::open`] starts one, [`ScanStream::write`] feeds it
//! bytes as they arrive, [`ScanStream::finish`] returns the verdict. Anything that is not
//! a clear `OK` or a named signature is a [`ScanError`]: the caller's policy (fail closed
//! or open) decides what an error means, never this crate. No S3 or storage types here.

mod clamd;
mod reply;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};

pub use clamd::{ClamdAddress, ClamdScanner, ClamdSettings};
pub use reply::parse_reply;

/// What a completed scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// A signature matched; its name as the scanner reported it.
    Infected(String),
}

/// A scan that did not produce a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The scanner could not be reached or the connection broke.
    #[error("scanner unavailable: {0}")]
    Unavailable(String),
    /// The scanner did not answer in time.
    #[error("scanner timed out after {0:?}")]
    Timeout(Duration),
    /// The stream is larger than the scanner accepts (or a size limit stopped the scan).
    #[error("stream exceeds the scanner's size limit: {0}")]
    TooLarge(String),
    /// The scanner reported an error of its own.
    #[error("scanner error: {0}")]
    Scanner(String),
    /// The scanner's reply was not one this parser knows.
    #[error("unrecognized scanner reply: {0:?}")]
    Protocol(String),
}

/// A virus scanner.
#[async_trait]
pub trait Scanner: Send + Sync + Debug + 'static {
    /// Whether this scanner scans at all ([`NoopScanner`] does not).
    fn enabled(&self) -> bool {
        true
    }
    /// Starts scanning one stream.
    async fn open(&self) -> Result<Box<dyn ScanStream>, ScanError>;
    /// Engine and signature database version (clamd's `VERSION` reply, e.g.
    /// `ClamAV 1.4.6/27456/Tue Nov 19 08:38:13 2024`): verdicts are cached under it.
    async fn version(&self) -> Result<String, ScanError>;
    /// Checks that the scanner answers.
    async fn ping(&self) -> Result<(), ScanError>;
}

/// One stream being scanned.
#[async_trait]
pub trait ScanStream: Send {
    /// Sends the next bytes.
    async fn write(&mut self, data: Bytes) -> Result<(), ScanError>;
    /// Ends the stream and waits for the verdict.
    async fn finish(self: Box<Self>) -> Result<Verdict, ScanError>;
}

/// Scans every piece of `body` until it ends. A body that fails stops the scan and its
/// error is returned as the outer `Err`; the inner result is the scan's.
///
/// # Errors
/// The body's error; the scan's errors are in the inner result.
pub async fn scan_stream<S, E>(
    scanner: &dyn Scanner,
    mut body: S,
) -> Result<Result<Verdict, ScanError>, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
{
    let mut s = match scanner.open().await {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    while let Some(piece) = body.next().await {
        if let Err(e) = s.write(piece?).await {
            return Ok(Err(e));
        }
    }
    Ok(s.finish().await)
}

/// The scanner of the embedded default: scans nothing. Callers check
/// [`Scanner::enabled`] and skip scanning; calling it anyway is an error, never a
/// silent "clean".
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopScanner;

#[async_trait]
impl Scanner for NoopScanner {
    fn enabled(&self) -> bool {
        false
    }
    async fn open(&self) -> Result<Box<dyn ScanStream>, ScanError> {
        Err(ScanError::Unavailable("scanning is disabled".into()))
    }
    async fn version(&self) -> Result<String, ScanError> {
        Err(ScanError::Unavailable("scanning is disabled".into()))
    }
    async fn ping(&self) -> Result<(), ScanError> {
        Err(ScanError::Unavailable("scanning is disabled".into()))
    }
}
