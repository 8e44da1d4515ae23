//! The one place where internal errors become S3 errors.
//!
//! Every storage error maps to exactly one S3 code and status here. Server-side faults
//! (5xx) are logged once, at warn, when converted; client errors are not logged here
//! (the request log line carries their status).

use s3dedup_storage::Error as StorageError;
use s3s::{S3Error, S3ErrorCode, s3_error};

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
        E::Body(e) => {
            // The client's stream broke (disconnect, bad chunk signature, bad payload hash).
            let text = e.to_string();
            if text.contains("Sha256Mismatch") {
                s3_error!(
                    BadDigest,
                    "The x-amz-content-sha256 you specified did not match what we received"
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
