//! Metric names (one place, so dashboards and code agree) and recording helpers.

use std::sync::OnceLock;
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use s3dedup_storage::Store;

/// Requests by `operation` and `status`.
pub const REQUESTS: &str = "s3dedup_requests_total";
/// S3 requests by principal (`root`, a tenant's name, `anonymous`).
pub const TENANT_REQUESTS: &str = "s3dedup_tenant_requests_total";
/// Refused authentications and authorizations by reason (`unknown_key`, `disabled`,
/// `expired`, `signature`, `anonymous`, `not_owner`).
pub const AUTH_FAILURES: &str = "s3dedup_auth_failures_total";
/// Request latency in seconds by `operation`.
pub const REQUEST_SECONDS: &str = "s3dedup_request_duration_seconds";
/// Sum of sizes of committed objects.
pub const LOGICAL_BYTES: &str = "s3dedup_logical_bytes";
/// Sum of sizes of referenced unique chunks.
pub const UNIQUE_BYTES: &str = "s3dedup_unique_bytes";
/// Bytes held by the backing store (packs known to the index) plus inline chunks.
pub const STORED_BYTES: &str = "s3dedup_stored_bytes";
/// Committed objects.
pub const OBJECTS: &str = "s3dedup_objects";
/// Noncurrent object versions.
pub const NONCURRENT_VERSIONS: &str = "s3dedup_noncurrent_versions";
/// Their logical bytes.
pub const NONCURRENT_BYTES: &str = "s3dedup_noncurrent_bytes";
/// Delete markers.
pub const DELETE_MARKERS: &str = "s3dedup_delete_markers";
/// Versions object lock protects now.
pub const LOCKED_VERSIONS: &str = "s3dedup_locked_versions";
/// Their bytes.
pub const LOCKED_BYTES: &str = "s3dedup_locked_bytes";
/// Referenced unique chunks.
pub const CHUNKS: &str = "s3dedup_chunks";
/// logical / stored bytes.
pub const DEDUP_RATIO: &str = "s3dedup_dedup_ratio";
/// logical − stored bytes.
pub const SAVED_BYTES: &str = "s3dedup_saved_bytes";
/// New chunk bytes through the compression stage: `direction=in` raw, `out` as stored
/// (headers included; chunks that do not compress count as stored raw).
pub const COMPRESSED_BYTES: &str = "s3dedup_compressed_bytes_total";
/// Raw bytes of referenced chunks over their stored bytes (1 when nothing is stored).
pub const COMPRESSION_RATIO: &str = "s3dedup_compression_ratio";
/// Bytes received in uploads.
pub const INGESTED_BYTES: &str = "s3dedup_ingested_bytes_total";
/// Chunks cut from uploads that were already stored (by `result`=`new`|`deduped`).
pub const INGESTED_CHUNKS: &str = "s3dedup_ingested_chunks_total";
/// Chunk reads that failed verification.
pub const READ_VERIFY_FAILURES: &str = "s3dedup_read_verify_failures_total";
/// Stored records (index or pack) that failed to decode or verify in a request.
pub const CORRUPT_RECORDS: &str = "s3dedup_corrupt_records_total";
/// Requests refused at the edge before s3s saw them, by `code`.
pub const EDGE_REFUSALS: &str = "s3dedup_edge_refusals_total";
/// Errors accepting a connection (EMFILE, ENFILE …), by `listener`.
pub const ACCEPT_ERRORS: &str = "s3dedup_accept_errors_total";
/// Index snapshots taken, by `result` (`ok`|`error`).
pub const INDEX_SNAPSHOTS: &str = "s3dedup_index_snapshots_total";
/// Connections open now, by `listener`.
pub const CONNECTIONS: &str = "s3dedup_connections";
/// Connections ended by the gateway for doing nothing, by `reason` (`idle`,
/// `write_stalled`, `slow_body`, `handshake`).
pub const CONNECTIONS_CUT: &str = "s3dedup_connections_cut_total";
/// TLS certificate reloads, by `result` (`ok`|`error`).
pub const TLS_RELOADS: &str = "s3dedup_tls_reloads_total";
/// Writes refused by the write gate, by `reason` (`read_only`|`disk_full`).
pub const WRITES_REFUSED: &str = "s3dedup_writes_refused_total";
/// Requests refused by a rate limit, by `by` (`ip`|`key`).
pub const RATE_LIMITED: &str = "s3dedup_rate_limited_total";
/// Client IPs locked out after too many failed authentications.
pub const AUTH_LOCKOUTS: &str = "s3dedup_auth_lockouts_total";
/// Audit log writes that failed.
pub const AUDIT_ERRORS: &str = "s3dedup_audit_errors_total";
/// Writes refused by a quota.
pub const QUOTA_REJECTIONS: &str = "s3dedup_quota_rejections_total";
/// Free bytes on the data dir's file system (as the capacity guard last saw them).
pub const DATA_DISK_FREE: &str = "s3dedup_data_disk_free_bytes";
/// 1 while the gateway is in read-only mode.
pub const READ_ONLY: &str = "s3dedup_read_only";
/// Index write transactions committed (group commit: one may apply many writes).
pub const INDEX_COMMITS: &str = "s3dedup_index_commits_total";
/// Index writes applied.
pub const INDEX_WRITES: &str = "s3dedup_index_writes_total";
/// Responses whose body failed on our side after the status line (by `operation`).
pub const FAILED_BODIES: &str = "s3dedup_response_body_failures_total";
/// Always 1, labelled with the `version` and git `commit` of the binary.
pub const BUILD_INFO: &str = "s3dedup_build_info";

/// The git commit this binary was built from (or "unknown").
pub const COMMIT: &str = env!("S3DEDUP_COMMIT");

/// Verdicts by `verdict` (`clean`|`infected`|`error`) and `source` (`scanned`|`cache_hit`).
pub const SCANS: &str = "s3dedup_scans_total";
/// Gauge: stored bytes no live object needs (chunks at refcount 0, dead pack space).
pub const GARBAGE_BYTES: &str = "s3dedup_garbage_bytes";
/// Counter: GC runs, by result (ok, error).
pub const GC_RUNS: &str = "s3dedup_gc_runs_total";
/// Counter: bytes GC freed in the backing store and the index.
pub const GC_RECLAIMED: &str = "s3dedup_gc_reclaimed_bytes_total";
/// Counter: pack blobs GC deleted (empty, orphan and unknown packs).
pub const GC_DELETED_PACKS: &str = "s3dedup_gc_deleted_packs_total";
/// Counter: chunk records GC removed.
pub const GC_REMOVED_CHUNKS: &str = "s3dedup_gc_removed_chunks_total";
/// Counter: delete requests GC sent to the backing store.
pub const GC_BACKEND_DELETES: &str = "s3dedup_gc_backend_deletes_total";
/// Counter: stored bytes compaction copied into new packs.
pub const COMPACTION_REWRITTEN: &str = "s3dedup_compaction_rewritten_bytes_total";
/// Counter: packs compaction rewrote.
pub const COMPACTED_PACKS: &str = "s3dedup_compaction_packs_total";
/// Counter: chunks GC or compaction found damaged (marked, never dropped).
pub const GC_DAMAGED_CHUNKS: &str = "s3dedup_gc_damaged_chunks_total";
/// Counter: scrub runs, by result.
pub const SCRUB_RUNS: &str = "s3dedup_scrub_runs_total";
/// Rekey runs, by `result`.
pub const REKEY_RUNS: &str = "s3dedup_rekey_runs_total";
/// Lifecycle runs, by result.
pub const LIFECYCLE_RUNS: &str = "s3dedup_lifecycle_runs_total";
/// What lifecycle rules expired, by action (current, noncurrent, delete_marker, upload).
pub const LIFECYCLE_EXPIRED: &str = "s3dedup_lifecycle_expired_total";
/// Versions lifecycle rules made due but object lock kept.
pub const LIFECYCLE_LOCKED: &str = "s3dedup_lifecycle_locked_kept_total";
/// Counter: chunks scrub verified (SHA-256 re-derived).
pub const SCRUB_CHUNKS: &str = "s3dedup_scrub_chunks_checked_total";
/// Counter: chunks scrub found damaged.
pub const SCRUB_DAMAGED: &str = "s3dedup_scrub_damaged_chunks_total";
/// Gauge: fraction of packs the current (or last) scrub has done, 0 to 1.
pub const SCRUB_PROGRESS: &str = "s3dedup_scrub_progress";
/// Gauge: 1 while a GC run is in progress.
pub const GC_RUNNING: &str = "s3dedup_gc_running";
/// Scan latency in seconds (body end or stored-object scan start to verdict).
pub const SCAN_SECONDS: &str = "s3dedup_scan_duration_seconds";
/// Bytes sent to the scanner.
pub const SCANNED_BYTES: &str = "s3dedup_scanned_bytes_total";
/// Uploads rejected because a signature matched.
pub const INFECTED_REJECTED: &str = "s3dedup_infected_rejected_total";
/// Scans that produced no verdict (scanner down, timeout, bad reply).
pub const SCAN_ERRORS: &str = "s3dedup_scan_errors_total";
/// Objects published unscanned because the scanner failed and the policy is fail-open.
pub const SCAN_FAIL_OPEN: &str = "s3dedup_scan_fail_open_total";
/// Objects over the scan limit, by `outcome` (`rejected`|`allowed`).
pub const SCAN_OVERSIZE: &str = "s3dedup_scan_oversize_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets(&buckets)
            .expect("static non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        s3dedup_storage::metrics::describe();
        handle
    })
}

/// Sets `s3dedup_build_info` (once, when serving starts): version, commit, and whether
/// the store encrypts (`encryption` = `aead` or `off`).
pub fn record_build_info(store: &Store) {
    let encryption = if store.encryption().active_key.is_some() {
        "aead"
    } else {
        "off"
    };
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => COMMIT,
        "encryption" => encryption
    )
    .set(1.0);
}

/// Describes every gateway metric to the recorder: each family gets `# HELP`.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_journal();
    describe_counter!(
        TENANT_REQUESTS,
        "S3 requests by principal: root, a tenant's name, or anonymous"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused by authentication or authorization, by reason"
    );
    describe_counter!(
        REQUESTS,
        "S3 requests by operation and HTTP status (Unresolved: refused before routing, e.g. a bad signature; Refused: refused at the edge)"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "S3 request duration by operation, until the response body has been sent"
    );
    describe_gauge!(
        LOGICAL_BYTES,
        Unit::Bytes,
        "Sum of the sizes of stored object versions (current and noncurrent)"
    );
    describe_gauge!(
        NONCURRENT_VERSIONS,
        "Noncurrent object versions (versioned buckets)"
    );
    describe_gauge!(
        NONCURRENT_BYTES,
        Unit::Bytes,
        "Sum of the sizes of noncurrent object versions (part of s3dedup_logical_bytes)"
    );
    describe_gauge!(DELETE_MARKERS, "Delete markers (versioned buckets)");
    describe_gauge!(
        LOCKED_VERSIONS,
        "Object versions under a legal hold or retention that has not passed"
    );
    describe_gauge!(
        LOCKED_BYTES,
        Unit::Bytes,
        "Sum of the sizes of the object versions object lock protects"
    );
    describe_gauge!(
        UNIQUE_BYTES,
        Unit::Bytes,
        "Sum of the sizes of the distinct chunks objects reference"
    );
    describe_gauge!(
        STORED_BYTES,
        Unit::Bytes,
        "Bytes held in the backing store (known packs) and inline"
    );
    describe_gauge!(OBJECTS, "Current objects");
    describe_gauge!(CHUNKS, "Distinct chunks referenced");
    describe_gauge!(
        DEDUP_RATIO,
        "Logical bytes / stored bytes (1 when nothing is stored)"
    );
    describe_gauge!(
        SAVED_BYTES,
        Unit::Bytes,
        "Logical bytes minus stored bytes: what dedup saves"
    );
    describe_counter!(INGESTED_BYTES, Unit::Bytes, "Bytes received in uploads");
    describe_counter!(
        COMPRESSED_BYTES,
        Unit::Bytes,
        "New chunk bytes through compression: direction=in raw, out as stored"
    );
    describe_gauge!(
        COMPRESSION_RATIO,
        "Raw bytes of referenced chunks / their stored bytes (1 when nothing is stored)"
    );
    describe_counter!(
        INGESTED_CHUNKS,
        "Chunks cut from uploads, by result (new or deduped)"
    );
    describe_counter!(
        READ_VERIFY_FAILURES,
        "Chunk reads whose SHA-256 or CRC32C did not verify"
    );
    describe_counter!(
        CORRUPT_RECORDS,
        "Stored records that failed to decode or verify in a request"
    );
    describe_counter!(
        EDGE_REFUSALS,
        "Requests refused before s3s saw them, by S3 error code"
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "Errors accepting a connection (EMFILE, ENFILE ...), by listener"
    );
    describe_counter!(INDEX_SNAPSHOTS, "Local index snapshots taken, by result");
    describe_gauge!(CONNECTIONS, "Connections open now, by listener");
    describe_counter!(
        CONNECTIONS_CUT,
        "Connections ended for doing nothing (idle, write_stalled, slow_body, handshake)"
    );
    describe_counter!(TLS_RELOADS, "TLS certificate reloads on SIGHUP, by result");
    describe_counter!(
        WRITES_REFUSED,
        "Writes refused with 503, by reason (read_only, disk_full)"
    );
    describe_gauge!(
        DATA_DISK_FREE,
        "Free bytes on the data dir's file system, as the capacity guard last saw them"
    );
    describe_gauge!(READ_ONLY, "1 while the gateway is in read-only mode");
    describe_counter!(
        QUOTA_REJECTIONS,
        "Writes refused by a bucket or tenant quota"
    );
    describe_counter!(INDEX_COMMITS, "Index write transactions committed");
    describe_counter!(
        INDEX_WRITES,
        "Index writes applied (several per commit under load)"
    );
    describe_counter!(
        FAILED_BODIES,
        "Responses whose body failed on the server side after the status line was sent, by operation"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels carry the version, git commit and encryption (aead or off)"
    );
    describe_counter!(
        SCANS,
        "Virus-scan verdicts by verdict and source (scanned or cache_hit)"
    );
    describe_histogram!(
        SCAN_SECONDS,
        Unit::Seconds,
        "Virus-scan latency, body end to verdict"
    );
    describe_counter!(
        SCANNED_BYTES,
        Unit::Bytes,
        "Bytes sent to the virus scanner"
    );
    describe_counter!(
        INFECTED_REJECTED,
        "Uploads refused because a signature matched"
    );
    describe_counter!(
        SCAN_ERRORS,
        "Scans without a verdict (scanner down, timeout, bad reply)"
    );
    describe_counter!(
        SCAN_FAIL_OPEN,
        "Objects published unscanned because the scanner failed under fail-open"
    );
    describe_counter!(
        SCAN_OVERSIZE,
        "Objects over the scan size limit, by outcome"
    );
    describe_gauge!(
        GARBAGE_BYTES,
        Unit::Bytes,
        "Stored bytes no live object needs: chunks at refcount 0 and dead space in packs"
    );
    describe_counter!(GC_RUNS, "Garbage collection runs, by result");
    describe_counter!(
        GC_RECLAIMED,
        Unit::Bytes,
        "Bytes garbage collection freed in the backing store and the index"
    );
    describe_counter!(
        GC_DELETED_PACKS,
        "Pack blobs garbage collection deleted (empty, orphan and unknown packs)"
    );
    describe_counter!(
        GC_REMOVED_CHUNKS,
        "Chunk records garbage collection removed"
    );
    describe_counter!(
        GC_BACKEND_DELETES,
        "Delete requests garbage collection sent to the backing store"
    );
    describe_gauge!(
        GC_RUNNING,
        "1 while a garbage collection run is in progress"
    );
    describe_counter!(SCRUB_RUNS, "Scrub runs, by result");
    describe_counter!(REKEY_RUNS, "Rekey runs, by result");
    describe_counter!(LIFECYCLE_RUNS, "Lifecycle runs, by result");
    describe_counter!(
        LIFECYCLE_EXPIRED,
        "What lifecycle rules expired, by action (current, noncurrent, delete_marker, upload)"
    );
    describe_counter!(
        LIFECYCLE_LOCKED,
        "Versions lifecycle rules made due that object lock kept"
    );
    describe_counter!(
        SCRUB_CHUNKS,
        "Chunks scrub verified (stored bytes read back, SHA-256 re-derived)"
    );
    describe_counter!(
        SCRUB_DAMAGED,
        "Chunks scrub found damaged (marked: reads fail fast, a re-upload repairs)"
    );
    describe_gauge!(
        SCRUB_PROGRESS,
        "Fraction of packs the current or last scrub has verified"
    );
    describe_counter!(
        COMPACTION_REWRITTEN,
        Unit::Bytes,
        "Stored bytes compaction copied from sparse or small packs into new packs"
    );
    describe_counter!(COMPACTED_PACKS, "Packs compaction rewrote");
    describe_counter!(
        GC_DAMAGED_CHUNKS,
        "Chunks garbage collection or compaction found damaged (marked, never dropped)"
    );
}

/// Journal entries shipped to the store.
pub const JOURNAL_SHIPPED: &str = "s3dedup_journal_shipped_entries_total";
/// Failed journal shipments and snapshots, by step.
pub const JOURNAL_ERRORS: &str = "s3dedup_journal_errors_total";
/// Journal snapshots written to the store.
pub const JOURNAL_SNAPSHOTS: &str = "s3dedup_journal_snapshots_total";
/// Age of the oldest change not yet in the store's journal.
pub const JOURNAL_LAG_SECONDS: &str = "s3dedup_journal_lag_seconds";
/// Bytes of changes not yet in the store's journal.
pub const JOURNAL_LAG_BYTES: &str = "s3dedup_journal_lag_bytes";
/// Age of the last journal snapshot in the store.
pub const JOURNAL_SNAPSHOT_AGE: &str = "s3dedup_journal_snapshot_age_seconds";

fn describe_journal() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        JOURNAL_SHIPPED,
        "Metadata journal entries shipped to the backing store"
    );
    describe_counter!(
        JOURNAL_ERRORS,
        "Failed journal shipments and snapshots, by step"
    );
    describe_counter!(
        JOURNAL_SNAPSHOTS,
        "Index snapshots written to the backing store"
    );
    describe_gauge!(
        JOURNAL_LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest metadata change not yet in the store's journal (0 = none pending)"
    );
    describe_gauge!(
        JOURNAL_LAG_BYTES,
        Unit::Bytes,
        "Encoded bytes of metadata changes not yet in the store's journal"
    );
    describe_gauge!(
        JOURNAL_SNAPSHOT_AGE,
        Unit::Seconds,
        "Age of the last index snapshot in the backing store"
    );
}

/// Renders all metrics, refreshing the gauges that mirror the index first.
pub async fn render(store: &Store) -> String {
    let handle = install();
    if let Ok(s) = store.stats().await {
        metrics::gauge!(LOGICAL_BYTES).set(s.logical_bytes as f64);
        metrics::gauge!(UNIQUE_BYTES).set(s.unique_bytes as f64);
        metrics::gauge!(STORED_BYTES).set(s.stored_bytes as f64);
        metrics::gauge!(GARBAGE_BYTES).set(s.garbage_bytes() as f64);
        metrics::gauge!(OBJECTS).set(s.objects as f64);
        metrics::gauge!(NONCURRENT_VERSIONS).set(s.noncurrent_versions as f64);
        metrics::gauge!(NONCURRENT_BYTES).set(s.noncurrent_bytes as f64);
        metrics::gauge!(DELETE_MARKERS).set(s.delete_markers as f64);
        if let Ok((n, bytes)) = store.locked().await {
            metrics::gauge!(LOCKED_VERSIONS).set(n as f64);
            metrics::gauge!(LOCKED_BYTES).set(bytes as f64);
        }
        metrics::gauge!(CHUNKS).set(s.chunks as f64);
        // What clients stored against what the backing store holds: the same figures
        // `s3dedup stats` prints.
        metrics::gauge!(SAVED_BYTES).set(s.logical_bytes.saturating_sub(s.stored_bytes) as f64);
        let ratio = if s.stored_bytes == 0 {
            1.0
        } else {
            s.logical_bytes as f64 / s.stored_bytes as f64
        };
        metrics::gauge!(DEDUP_RATIO).set(ratio);
        let compression = if s.live_stored_bytes == 0 {
            1.0
        } else {
            s.unique_bytes as f64 / s.live_stored_bytes as f64
        };
        metrics::gauge!(COMPRESSION_RATIO).set(compression);
    }
    if let Ok(j) = store.journal_status() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let age = |t: u64| now.saturating_sub(t) as f64 / 1000.0;
        metrics::gauge!(JOURNAL_LAG_SECONDS).set(j.oldest_pending_ms.map_or(0.0, age));
        metrics::gauge!(JOURNAL_LAG_BYTES).set(j.pending_bytes as f64);
        if let Some(t) = j.snapshot_ms {
            metrics::gauge!(JOURNAL_SNAPSHOT_AGE).set(age(t));
        }
    }
    let c = store.commit_counters();
    metrics::counter!(INDEX_COMMITS).absolute(c.commits.load(std::sync::atomic::Ordering::Relaxed));
    metrics::counter!(INDEX_WRITES).absolute(c.writes.load(std::sync::atomic::Ordering::Relaxed));
    handle.render()
}

/// Records one S3 operation's outcome.
pub fn record_request(operation: &str, status: u16, started: Instant) {
    let operation = operation.to_owned();
    metrics::counter!(REQUESTS, "operation" => operation.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

/// Counts a response whose body failed after its status line was sent.
pub fn record_failed_body(operation: &str) {
    metrics::counter!(FAILED_BODIES, "operation" => operation.to_owned()).increment(1);
}

/// Records what an upload did.
pub fn record_ingest(stats: &s3dedup_storage::ingest::IngestStats, size: u64) {
    metrics::counter!(INGESTED_BYTES).increment(size);
    metrics::counter!(INGESTED_CHUNKS, "result" => "new").increment(stats.new_chunks);
    metrics::counter!(INGESTED_CHUNKS, "result" => "deduped")
        .increment(stats.chunks - stats.new_chunks);
    metrics::counter!(COMPRESSED_BYTES, "direction" => "in").increment(stats.new_bytes);
    metrics::counter!(COMPRESSED_BYTES, "direction" => "out").increment(stats.new_stored_bytes);
}
