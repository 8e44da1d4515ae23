//! Checks made on a request's line and headers before s3s sees it: what s3s does not
//! refuse at all, or refuses only after reading the body.
//!
//! Everything here is a pure function of the method, URI, headers and the clock, so
//! the table of cases is unit-tested without a server. A refusal never reads the body:
//! the server answers it at once and closes the connection.

use http::{HeaderMap, Method, StatusCode, Uri};

/// Longest presigned-URL validity S3 accepts (7 days), for SigV4 and (here) SigV2.
pub const MAX_PRESIGN_SECS: i64 = 604_800;
/// Largest clock difference accepted on a SigV2 header-signed request (as SigV4's).
pub const MAX_SKEW_SECS: i64 = 900;
/// Largest request header section, names and values (S3 documents 8 KiB for PUT; a
/// little room is left for long session tokens).
pub const MAX_HEADER_BYTES: usize = 16 << 10;

/// What the edge allows.
#[derive(Debug, Clone, Copy)]
pub struct EdgePolicy {
    /// Accept AWS Signature Version 2 (header and presigned query). Off by default: a
    /// SigV2 signature does not cover the body, and its date is only checked here.
    pub sigv2: bool,
    /// The gateway's region, named to clients whose credential scope carries a region
    /// that is not one (s3cmd's default `US`), so they retry with it as they do on AWS.
    pub region: &'static str,
}

impl Default for EdgePolicy {
    fn default() -> Self {
        EdgePolicy {
            sigv2: false,
            region: "us-east-1",
        }
    }
}

/// A request refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// S3 error code.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
    /// The region to use instead (AuthorizationHeaderMalformed, as AWS answers).
    pub region: Option<&'static str>,
    /// `Retry-After`, for refusals that pass with time.
    pub retry_after: Option<std::time::Duration>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            region: None,
            retry_after: None,
        }
    }

    /// `Retry-After` in whole seconds, rounded up (a client retrying early is refused
    /// again), at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
    }

    /// The answer to a limit's refusal: 503 SlowDown or, for a locked-out IP, 403.
    pub fn of_limit(r: &crate::limits::Refusal) -> Self {
        use crate::limits::Refusal as L;
        let (mut refusal, wait) = match *r {
            L::SlowDown(wait) => (
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate (the gateway's rate limit was reached)",
                ),
                wait,
            ),
            L::LockedOut(left) => (
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    format!(
                        "Too many failed authentications from your address; it is refused for {} more seconds",
                        left.as_secs().max(1)
                    ),
                ),
                left,
            ),
        };
        refusal.retry_after = Some(wait);
        refusal
    }

    /// The S3 error document.
    pub fn xml(&self, request_id: &str) -> String {
        let region = self.region.map_or(String::new(), |r| {
            format!("<Region>{}</Region>", xml_escape(r))
        });
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{region}<RequestId>{request_id}</RequestId></Error>",
            self.code,
            xml_escape(&self.message)
        )
    }
}

use crate::error::xml_escape;

/// A region as SigV4 scopes carry it and s3s accepts it: `[a-z0-9-]+`.
pub(crate) fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Form-urlencoded decoding, as s3s decodes the query (`+` is a space).
fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters as (name, value), both decoded as s3s decodes them: a name spelled
/// with percent escapes (`Signatur%65`) is the name s3s will see.
pub(crate) fn query_pairs(uri: &Uri) -> impl Iterator<Item = (String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
}

fn query_get(uri: &Uri, name: &str) -> Option<String> {
    query_pairs(uri).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Headers whose value decides how a request is authenticated or parsed. s3s reads each
/// as a single UTF-8 value and silently skips values that are not UTF-8, so a request
/// that repeats one, or sends one that is not UTF-8, could look different here and
/// there: it is refused.
const SINGLE_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "date",
    "x-amz-date",
    "x-amz-content-sha256",
];

/// The value of a header that must appear at most once, as UTF-8.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_single_headers(headers: &HeaderMap) -> Result<(), Refusal> {
    for name in SINGLE_HEADERS {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!("The {name} header may appear only once"),
            ));
        }
        if first.is_some_and(|v| v.to_str().is_err()) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!("The {name} header must be visible ASCII"),
            ));
        }
    }
    Ok(())
}

/// Checks one request; `now` is seconds since the Unix epoch.
///
/// # Errors
/// The [`Refusal`] to answer with.
pub fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    policy: EdgePolicy,
    now: i64,
) -> Result<(), Refusal> {
    if !matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE | Method::OPTIONS
    ) {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The method {method} is not allowed against this resource"),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "RequestHeaderSectionTooLarge",
            format!(
                "Your request header section is {header_bytes} bytes; the maximum is {MAX_HEADER_BYTES}"
            ),
        ));
    }
    check_single_headers(headers)?;
    // s3s reads an empty header as an absent one: an empty Content-MD5 would go
    // unchecked instead of being refused as S3 refuses it.
    if headers
        .get("content-md5")
        .is_some_and(|v| v.as_bytes().trim_ascii().is_empty())
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        ));
    }
    if *method == Method::POST && is_form_upload(headers) {
        // s3s reads a form's whole file part into memory before authenticating it, and
        // the gateway does not implement POST object yet: refuse before any body byte.
        return Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "POST object (HTML form upload) is not supported; use PUT or a presigned PUT URL",
        ));
    }
    check_auth(uri, headers, policy, now)
}

fn is_form_upload(headers: &HeaderMap) -> bool {
    single(headers, "content-type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
    })
}

fn check_auth(uri: &Uri, headers: &HeaderMap, policy: EdgePolicy, now: i64) -> Result<(), Refusal> {
    let authorization = single(headers, "authorization");
    let v4_query = query_get(uri, "X-Amz-Signature").is_some()
        || query_get(uri, "X-Amz-Credential").is_some()
        || query_get(uri, "X-Amz-Algorithm").is_some();
    let v2_query = query_get(uri, "Signature").is_some();
    if authorization.is_some() && (v4_query || v2_query) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        ));
    }
    if v4_query && v2_query {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; the request carries both SigV4 and SigV2 query parameters",
        ));
    }
    let v2_header = authorization.is_some_and(|a| a.starts_with("AWS ") && !a.starts_with("AWS4"));
    if (v2_header || v2_query) && !policy.sigv2 {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    if v2_header {
        // A SigV2 header signature covers the Date (or x-amz-date) header; without a
        // bound on it a captured request could be replayed forever.
        let date = single(headers, "x-amz-date")
            .or_else(|| single(headers, "date"))
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "AWS authentication requires a valid Date or x-amz-date header",
                )
            })?;
        let when = http_date_secs(date).ok_or_else(|| {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "AWS authentication requires a valid Date or x-amz-date header",
            )
        })?;
        if (now - when).abs() > MAX_SKEW_SECS {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large",
            ));
        }
    }
    if v2_query {
        let expires = query_get(uri, "Expires").and_then(|v| v.parse::<i64>().ok());
        match expires {
            None => {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
                ));
            }
            Some(e) if e.saturating_sub(now) > MAX_PRESIGN_SECS => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    format!(
                        "Expires must be less than a week ({MAX_PRESIGN_SECS} seconds) from now"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if v4_query {
        // S3's three messages: not a number, negative, over a week.
        let why = match query_get(uri, "X-Amz-Expires").map(|v| v.parse::<i64>()) {
            None => None,
            Some(Err(_)) => Some("X-Amz-Expires should be a number".to_owned()),
            Some(Ok(n)) if n < 0 => Some("X-Amz-Expires must be non-negative".to_owned()),
            Some(Ok(n)) if n > MAX_PRESIGN_SECS => Some(format!(
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than {MAX_PRESIGN_SECS} seconds"
            )),
            Some(Ok(_)) => None,
        };
        if let Some(why) = why {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                why,
            ));
        }
    }
    // SigV4 credential scope: <key>/<date>/<region>/<service>/aws4_request.
    let scope = match authorization {
        Some(a) if a.starts_with("AWS4-") => a
            .split("Credential=")
            .nth(1)
            .map(|s| s.split([',', ' ']).next().unwrap_or("").to_owned()),
        _ => query_get(uri, "X-Amz-Credential"),
    };
    if let Some(scope) = scope {
        // s3cmd signs with its default bucket_location `US` until told the bucket's
        // region; s3s refuses such a scope after checking the signature (InvalidRequest).
        // AWS answers AuthorizationHeaderMalformed naming the right region, and s3cmd
        // retries with it: answer the same.
        let region = scope.split('/').nth(2).unwrap_or("");
        if !region.is_empty() && !is_region(region) {
            let mut r = Refusal::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                format!(
                    "The authorization header is malformed; the region {region:?} is wrong; expecting {:?}",
                    policy.region
                ),
            );
            r.region = Some(policy.region);
            return Err(r);
        }
        let service = scope.split('/').nth(3).unwrap_or("");
        if service != "s3" {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                format!(
                    "The credential scope names service {service:?}; this endpoint serves \"s3\""
                ),
            ));
        }
    }
    Ok(())
}

/// Seconds since the epoch of a request date: an HTTP date (IMF-fixdate, what SDKs
/// send), RFC 2822 with a numeric zone (`+0000`, what s3cmd sends), or an ISO 8601
/// basic `x-amz-date`.
fn http_date_secs(s: &str) -> Option<i64> {
    use s3s::dto::{Timestamp, TimestampFormat};
    let s = s.trim();
    let t = Timestamp::parse(TimestampFormat::HttpDate, s)
        .ok()
        .map(time::OffsetDateTime::from)
        .or_else(|| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc2822).ok()
        })
        .or_else(|| amz_date(s))?;
    Some(t.unix_timestamp())
}

/// `YYYYMMDDTHHMMSSZ`.
fn amz_date(s: &str) -> Option<time::OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

#[cfg(test)]
mod tests;
