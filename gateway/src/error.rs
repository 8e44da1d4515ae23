//! The one place where internal errors become S3 errors.
//!
//! Every storage error maps to exactly one S3 code and status here. Server-side faults
//! (5xx) are logged once, at warn, when converted; client errors are not logged here
//! (the request log line carries their status).

use s3dedup_storage::Error as StorageError;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of ms since the epoch.
fn http_date(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The marker an upload body cut by a quota fails with (`s3::quota`), answered as
/// [`quota_error`].
pub(crate) const QUOTA_CUT: &str = "QuotaExceeded";

/// 403 `QuotaExceeded` (the code Ceph RGW answers; S3 itself has no quotas), the
/// message saying which quota and by how much.
pub fn quota_error(why: &str) -> S3Error {
    metrics::counter!(crate::metrics::QUOTA_REJECTIONS).increment(1);
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("QuotaExceeded".into()),
        format!("Quota exceeded: {why}; nothing was stored"),
    );
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}

/// 416 `InvalidPartNumber`: GET/HEAD `partNumber` past the object's last part.
pub fn invalid_part_number() -> S3Error {
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// Converts a storage error into the S3 error a client should see.
pub fn to_s3(e: StorageError) -> S3Error {
    use StorageError as E;
    match e {
        E::NoSuchBucket(b) => s3_error!(NoSuchBucket, "The specified bucket does not exist: {b}"),
        E::BucketExists(b) => {
            s3_error!(BucketAlreadyOwnedByYou, "You already own bucket {b}")
        }
        E::BucketNotEmpty(b) => s3_error!(BucketNotEmpty, "Bucket {b} is not empty"),
        E::NoSuchKey { key, .. } => s3_error!(NoSuchKey, "The specified key does not exist: {key}"),
        E::ObjectLocked(why) => s3_error!(
            AccessDenied,
            "Access Denied because object protected by object lock: {why}"
        ),
        E::InvalidBucketState(why) => s3_error!(InvalidBucketState, "{why}"),
        E::QuotaExceeded(why) => quota_error(&why),
        E::NoObjectLock(why) => s3_error!(InvalidRequest, "{why}"),
        E::NoSuchVersion { key, version, .. } => s3_error!(
            NoSuchVersion,
            "The specified version {version} of {key} does not exist"
        ),
        E::DeleteMarker {
            key,
            version,
            by_id,
            mtime_ms,
            ..
        } => {
            // S3 names the marker in both answers; a GET or HEAD of its id is 405.
            let mut err = if by_id {
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource: version {version} of {key} is a delete marker"
                )
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist: {key}")
            };
            let mut h = http::HeaderMap::new();
            h.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&version) {
                h.insert("x-amz-version-id", v);
            }
            if by_id && let Ok(v) = http::HeaderValue::from_str(&http_date(mtime_ms)) {
                h.insert(http::header::LAST_MODIFIED, v);
            }
            err.set_headers(h);
            err
        }
        E::NoSuchUpload(_) => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist; it may have been aborted or completed"
        ),
        E::InvalidPart { part, reason } => s3_error!(InvalidPart, "Part {part} {reason}"),
        E::InvalidPartOrder => s3_error!(
            InvalidPartOrder,
            "The list of parts was not in ascending order"
        ),
        E::EntityTooSmall { part, size, min } => s3_error!(
            EntityTooSmall,
            "Part {part} is {size} bytes; every part but the last must be at least {min} bytes"
        ),
        E::Conflict(why) => {
            let mut err = s3_error!(
                OperationAborted,
                "A conflicting operation changed the request's data ({why}); please retry"
            );
            err.set_status_code(http::StatusCode::CONFLICT);
            err
        }
        E::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the preconditions you specified did not hold"
        ),
        E::InvalidRange { size } => s3_error!(
            InvalidRange,
            "The requested range is not satisfiable for an object of {size} bytes"
        ),
        E::InvalidArgument(m) => s3_error!(InvalidArgument, "{m}"),
        // Identities are managed through the admin API, never through S3 requests.
        E::NoSuchIdentity(m) | E::IdentityExists(m) | E::IdentityInUse(m) => {
            s3_error!(InvalidArgument, "{m}")
        }
        E::Body(e) => {
            // The client's stream broke (disconnect, bad chunk signature, bad payload hash).
            let text = e.to_string();
            if text.contains("Sha256Mismatch") {
                s3_error!(
                    BadDigest,
                    "The x-amz-content-sha256 you specified did not match what we received"
                )
            } else if text.contains(QUOTA_CUT) {
                quota_error(text.trim_start_matches(QUOTA_CUT).trim_start_matches(": "))
            } else if text.contains("RequestTimeout") {
                s3_error!(
                    RequestTimeout,
                    "Your socket connection to the server was not read from or written to within the timeout period ({text})"
                )
            } else if text.contains("SignatureMismatch") {
                s3_error!(SignatureDoesNotMatch, "A chunk signature did not match")
            } else {
                s3_error!(IncompleteBody, "The request body could not be read: {text}")
            }
        }
        E::Unavailable { detail, slow_down } => {
            tracing::warn!(error = %detail, "backing store unavailable");
            let mut err = if slow_down {
                s3_error!(
                    SlowDown,
                    "The backing store is throttling; please reduce your request rate"
                )
            } else {
                s3_error!(
                    ServiceUnavailable,
                    "The backing store is unavailable; please retry"
                )
            };
            err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            err
        }
        E::ChunkGone(_) => {
            let mut err = s3_error!(
                ServiceUnavailable,
                "Stored data changed during the upload; please retry"
            );
            err.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
            err
        }
        e => {
            if matches!(e, E::Corrupt { .. } | E::UnsupportedFormat { .. }) {
                metrics::counter!(crate::metrics::CORRUPT_RECORDS).increment(1);
            }
            tracing::warn!(error = %e, "internal error");
            let code = match &e {
                E::Backend(_) => S3ErrorCode::ServiceUnavailable,
                _ => S3ErrorCode::InternalError,
            };
            let mut err =
                S3Error::with_message(code, "We encountered an internal error; please try again");
            err.set_source(Box::new(e));
            err
        }
    }
}

/// A message for an error s3s produced without one (it routes, authenticates and
/// parses before any of our code runs). Every error a client sees says what is wrong.
fn default_message(code: &str, bucket: Option<&str>) -> String {
    let m = match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided; \
             check your secret key and signing method"
        }
        "InvalidBucketName" => {
            let name = bucket.unwrap_or_default();
            let rule = crate::bucket_name::problem(name)
                .unwrap_or("it does not follow S3's bucket naming rules");
            return format!("The specified bucket is not valid: {name:?}: {rule}");
        }
        "NoSuchBucket" => "The specified bucket does not exist",
        "AccessDenied" => "Access denied",
        "NotImplemented" => "This operation or option is not implemented by s3dedup",
        "InvalidURI" => "The request URI could not be parsed",
        "KeyTooLongError" => "Your key is too long; the maximum is 1024 bytes",
        "MissingContentLength" => "You must provide the Content-Length header",
        "IncompleteBody" => "The body is shorter than the Content-Length header says",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate",
        "MethodNotAllowed" => "The specified method is not allowed against this resource",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the server's time is too large"
        }
        "XAmzContentSHA256Mismatch" => {
            "The x-amz-content-sha256 header does not match the body received"
        }
        "AuthorizationHeaderMalformed" => "The Authorization header is malformed",
        "MaxMessageLengthExceeded" => "Your request body is too large",
        "InvalidRequest" | "InvalidArgument" => "The request is not valid",
        "InvalidDigest" => "The Content-MD5 or checksum you specified is not valid",
        "BadDigest" => "The Content-MD5 or checksum you specified did not match what we received",
        "InternalError" => "We encountered an internal error; please try again",
        other => return format!("The request failed: {other}"),
    };
    m.to_owned()
}

/// Escapes text content for an XML error document.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The error body S3 gives an ACL body that does not parse: s3s answers `MalformedXML`
/// before the handler runs; S3 says `MalformedACLError` for PutBucketAcl and
/// PutObjectAcl. Any other body is returned as it is.
pub fn acl_body_error<'a>(operation: &str, xml: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    const FROM: &str = "<Code>MalformedXML</Code>";
    let text = std::str::from_utf8(xml).unwrap_or("");
    if !matches!(operation, "PutBucketAcl" | "PutObjectAcl") || !text.contains(FROM) {
        return std::borrow::Cow::Borrowed(xml);
    }
    let mut out = text.replacen(FROM, "<Code>MalformedACLError</Code>", 1);
    let message = "<Message>The XML you provided was not well-formed or did not validate against our published schema</Message>";
    match (out.find("<Message>"), out.find("</Message>")) {
        (Some(a), Some(b)) if a < b => out.replace_range(a..b + "</Message>".len(), message),
        _ => {
            let at = out
                .find("</Code>")
                .map_or(out.len(), |i| i + "</Code>".len());
            out.insert_str(at, message);
        }
    }
    std::borrow::Cow::Owned(out.into_bytes())
}

/// Completes an S3 error body: a `<Message>` when s3s left it out (or gave only
/// "Unknown operation"), and the `<RequestId>`. `None` when `xml` is not an error body.
pub fn complete_error_body(xml: &[u8], request_id: &str, bucket: Option<&str>) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(xml).ok()?;
    let code_start = text.find("<Code>")? + "<Code>".len();
    let code_end = code_start + text[code_start..].find("</Code>")?;
    let code = &text[code_start..code_end];
    let after_code = code_end + "</Code>".len();
    let mut out = String::with_capacity(text.len() + 160);
    out.push_str(&text[..after_code]);
    let rest = &text[after_code..];
    let rest = match rest.strip_prefix("<Message>Unknown operation</Message>") {
        Some(r) => {
            out.push_str("<Message>This operation is not implemented by s3dedup</Message>");
            r
        }
        None if !rest.starts_with("<Message>") => {
            out.push_str("<Message>");
            out.push_str(&xml_escape(&default_message(code, bucket)));
            out.push_str("</Message>");
            rest
        }
        None => rest,
    };
    match rest.rfind("</Error>") {
        Some(end) if !rest.contains("<RequestId>") => {
            out.push_str(&rest[..end]);
            out.push_str("<RequestId>");
            out.push_str(&xml_escape(request_id));
            out.push_str("</RequestId>");
            out.push_str(&rest[end..]);
        }
        _ => out.push_str(rest),
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::complete_error_body;

    #[test]
    fn unparsable_acl_bodies_are_malformed_acl_errors() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>MalformedXML</Code></Error>";
        let out = super::acl_body_error("PutBucketAcl", xml);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("<Code>MalformedACLError</Code><Message>The XML"),
            "{text}"
        );
        let with_message = b"<Error><Code>MalformedXML</Code><Message>x</Message></Error>";
        let out = super::acl_body_error("PutObjectAcl", with_message);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("MalformedACLError") && !text.contains(">x<"),
            "{text}"
        );
        assert_eq!(&*super::acl_body_error("PutBucketPolicy", xml), &xml[..]);
    }

    fn complete(xml: &str, bucket: Option<&str>) -> String {
        String::from_utf8(complete_error_body(xml.as_bytes(), "REQ1", bucket).unwrap()).unwrap()
    }

    #[test]
    fn missing_messages_and_request_ids_are_filled_in() {
        let decl = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        let out = complete(
            &format!("{decl}<Error><Code>SignatureDoesNotMatch</Code></Error>"),
            None,
        );
        assert!(out.starts_with(decl));
        assert!(
            out.contains("<Message>The request signature we calculated"),
            "{out}"
        );
        assert!(
            out.ends_with("<RequestId>REQ1</RequestId></Error>"),
            "{out}"
        );

        let out = complete(
            "<Error><Code>InvalidBucketName</Code></Error>",
            Some("Bad_Name"),
        );
        assert!(
            out.contains("\"Bad_Name\": a bucket name may hold only lowercase"),
            "{out}"
        );

        let out = complete(
            "<Error><Code>NotImplemented</Code><Message>Unknown operation</Message></Error>",
            None,
        );
        assert!(
            out.contains("not implemented by s3dedup") && !out.contains("Unknown"),
            "{out}"
        );

        // A message we wrote is kept as it is.
        assert_eq!(
            super::http_date(784_111_777_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        let ours = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist: a&amp;b</Message></Error>";
        let out = complete(ours, None);
        assert!(
            out.contains("does not exist: a&amp;b</Message><RequestId>REQ1"),
            "{out}"
        );
        assert!(complete_error_body(b"<ListBucketResult/>", "R", None).is_none());
    }
}
