//! The storage engine's metric names, in one place, with their help texts (the
//! gateway's exporter publishes them as `# HELP` lines).

/// Backend requests by `op` and `outcome` (`ok`, `not_found`, `rejected`, `throttled`,
/// `server_error`, `timeout`, `network`, `short_body`).
pub const BACKEND_REQUESTS: &str = "s3dedup_backend_requests_total";
/// Backend request latency in seconds by `op` (one attempt, body included).
pub const BACKEND_SECONDS: &str = "s3dedup_backend_request_duration_seconds";
/// Bytes sent to (`direction=out`) and received from (`in`) the backend.
pub const BACKEND_BYTES: &str = "s3dedup_backend_bytes_total";
/// Attempts repeated after a transient failure, by `op`.
pub const BACKEND_RETRIES: &str = "s3dedup_backend_retries_total";
/// Calls refused at once because the circuit breaker was open.
pub const BACKEND_FAST_FAILS: &str = "s3dedup_backend_fast_failures_total";
/// 1 while the circuit breaker is open.
pub const BACKEND_CIRCUIT_OPEN: &str = "s3dedup_backend_circuit_open";

/// Describes every storage metric to the installed recorder (for `# HELP`).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        BACKEND_REQUESTS,
        "Backing-store requests (each attempt) by op and outcome"
    );
    describe_histogram!(
        BACKEND_SECONDS,
        Unit::Seconds,
        "Backing-store attempt latency by op, body included"
    );
    describe_counter!(
        BACKEND_BYTES,
        Unit::Bytes,
        "Bytes sent to (direction=out) and received from (in) the backing store"
    );
    describe_counter!(
        BACKEND_RETRIES,
        "Backing-store attempts repeated after a transient failure, by op"
    );
    describe_counter!(
        BACKEND_FAST_FAILS,
        "Backing-store calls refused at once while the circuit breaker was open"
    );
    describe_gauge!(
        BACKEND_CIRCUIT_OPEN,
        "1 while the backing store's circuit breaker is open"
    );
}
