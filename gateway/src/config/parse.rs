//! Parsers of setting values: durations, sizes, URLs, keys. Each takes the text and
//! returns the typed value or a message saying what was expected.

use std::time::Duration;

use s3dedup_storage::blob::S3Settings;

use super::Secret;

/// A duration: `"90s"`, `"5m"`, `"1h 30m"`, `"250ms"` (humantime), or plain seconds
/// (`"2.5"`).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| "expected a duration such as 90s, 5m or 1h (or seconds ≥ 0)".into());
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 90s, 5m or 1h (or plain seconds)"))
}

/// A fraction: `"50%"` or `"0.5"`, between 0 and 1.
///
/// # Errors
/// A message naming the accepted forms.
pub(super) fn parse_fraction(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.parse::<f64>(),
    };
    match v {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("expected a percentage such as 50% (or a fraction between 0 and 1)".into()),
    }
}

/// A size: `"16MiB"`, `"1GB"`, `"64 KiB"` (bytesize), or plain bytes.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e}; expected a size such as 64KiB, 16MiB or 1GB (or plain bytes)"))
}

pub(super) fn parse_size_in(
    lo: u64,
    hi: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s| {
        let n = parse_size(s)?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!(
                "{} is outside {}..={}",
                bytesize::ByteSize(n).display().iec(),
                bytesize::ByteSize(lo).display().iec(),
                bytesize::ByteSize(hi).display().iec()
            ))
        }
    }
}

pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("expected a duration > 0".into()),
        d => Ok(d),
    }
}

pub(super) fn parse_store(s: &str) -> Result<S3Settings, String> {
    S3Settings::from_url(s)
}

pub(super) fn parse_endpoint(s: &str) -> Result<String, String> {
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

pub(super) fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e}; expected a level (info, debug) or tracing directives"))
}

/// A region as SigV4 scopes carry it: `[a-z0-9-]+` (what s3s accepts).
pub(super) fn parse_region(s: &str) -> Result<String, String> {
    if crate::edge::is_region(s) {
        Ok(s.to_owned())
    } else {
        Err("expected lowercase letters, digits and hyphens, e.g. us-east-1".into())
    }
}

/// Root credentials are checked as MinIO checks them: short keys are guessable.
pub(super) fn parse_access_key(s: &str) -> Result<String, String> {
    if s.chars().count() < 3 {
        return Err("an access key needs at least 3 characters".into());
    }
    Ok(s.to_owned())
}

/// Infallible, so clap never quotes the value in an error; the length rule is checked in
/// `Settings::validate`, which names the key and not the value.
pub(super) fn parse_secret_key(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

pub(super) fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}
