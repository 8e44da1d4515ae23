//! What a failed SDK call answered: status, S3 error code and message.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The HTTP status and S3 error code of a call that must fail; panics (naming what came
/// back) when it succeeded.
pub fn refusal<R: std::fmt::Debug, E: ProvideErrorMetadata>(
    r: Result<R, SdkError<E, HttpResponse>>,
) -> (u16, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => (error_status(&e), error_code(&e)),
    }
}

/// The S3 error code of a failed SDK call (`(none)` when it has none).
pub fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("(none)")
        .to_owned()
}

/// The S3 error message of a failed SDK call (empty when it has none).
pub fn error_message<E: ProvideErrorMetadata>(e: &SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.message())
        .unwrap_or("")
        .to_owned()
}

/// The HTTP status of a failed SDK call (0 when no response arrived).
pub fn error_status<E>(e: &SdkError<E, HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}
