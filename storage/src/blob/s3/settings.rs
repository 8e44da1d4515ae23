//! Everything needed to reach a bucket, and which request checksums to send.

use std::fmt;
use std::time::Duration;

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
    /// PEM file of CA certificates trusted besides the system's (a private CA's HTTPS
    /// endpoint).
    pub ca_bundle: Option<std::path::PathBuf>,
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
            .field("ca_bundle", &self.ca_bundle)
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
            ca_bundle: None,
        })
    }

    /// `s3://bucket/prefix` (for logs and for recognising the store on restart).
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
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
}
