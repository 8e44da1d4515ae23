//! The storage engine's error type.

use std::fmt;

use crate::id::ChunkId;

/// Boxed error of a client-supplied byte stream or a backend SDK.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the storage engine can fail with.
///
/// Variants name the condition, not the layer, so the gateway can map each one to
/// exactly one S3 error code in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bucket does not exist.
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    /// The bucket already exists.
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    /// A tenant, user or access key named does not exist (the message says which).
    #[error("{0}")]
    NoSuchIdentity(String),
    /// A tenant, user or access key of that name already exists.
    #[error("{0}")]
    IdentityExists(String),
    /// A tenant still owns buckets.
    #[error("{0}")]
    IdentityInUse(String),
    /// The bucket still holds objects.
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    /// No object under this key.
    #[error("no object {bucket:?}/{key:?}")]
    NoSuchKey {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The version named does not exist (any more).
    #[error("no version {version} of {bucket:?}/{key:?}")]
    NoSuchVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version id asked for.
        version: String,
    },
    /// What was asked for is a delete marker: a GET or HEAD of the key (S3: 404
    /// NoSuchKey) or of the marker's version id (S3: 405 MethodNotAllowed); either
    /// answer names the marker (`x-amz-delete-marker`, `x-amz-version-id`).
    #[error("{bucket:?}/{key:?} is a delete marker ({version})")]
    DeleteMarker {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The marker's version id.
        version: String,
        /// Its modification time, ms since the epoch.
        mtime_ms: u64,
        /// Whether the request named the marker's version id.
        by_id: bool,
    },
    /// Object lock protects the version (retention or legal hold) or its retention
    /// (COMPLIANCE, or GOVERNANCE without the bypass): S3 answers 403 AccessDenied.
    #[error("object locked: {0}")]
    ObjectLocked(String),
    /// The bucket is not in a state that allows the request (S3 409
    /// InvalidBucketState), e.g. suspending versioning with object lock enabled.
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// A quota (bucket or tenant) would be exceeded: nothing was published (S3: 403
    /// QuotaExceeded, the message saying which quota).
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The request needs object lock, which the bucket does not have (S3 400
    /// InvalidRequest).
    #[error("{0}")]
    NoObjectLock(String),
    /// The multipart upload does not exist (never created, completed or aborted).
    #[error("multipart upload {0:?} does not exist")]
    NoSuchUpload(String),
    /// A part named in CompleteMultipartUpload is missing or its ETag differs.
    #[error("part {part}: {reason}")]
    InvalidPart {
        /// Part number as given by the client.
        part: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Parts in CompleteMultipartUpload are not in ascending order.
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum part size.
    #[error("part {part} is {size} bytes, smaller than the minimum {min}")]
    EntityTooSmall {
        /// Part number.
        part: u32,
        /// Its size.
        size: u64,
        /// The configured minimum.
        min: u64,
    },
    /// What was checked before a commit changed before it (e.g. a part re-uploaded while
    /// its upload was being scanned for completion).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A write condition (`If-Match`, `If-None-Match: *`) did not hold at commit time.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The requested byte range does not overlap the object (HTTP 416).
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange {
        /// The object's size.
        size: u64,
    },
    /// A chunk the upload relied on was garbage-collected before the commit; the client
    /// should retry the upload.
    #[error("chunk {0} vanished before commit; retry the upload")]
    ChunkGone(ChunkId),
    /// Stored bytes or records failed verification (checksum, framing, bounds).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which stored thing (chunk, pack, record …).
        what: &'static str,
        /// What check failed.
        detail: String,
    },
    /// A stored format version this build does not understand.
    #[error("unsupported {what} format version {version}")]
    UnsupportedFormat {
        /// Which stored thing.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A blob is missing from the backing store.
    #[error("blob {0:?} not found in the backing store")]
    BlobNotFound(String),
    /// A ranged read returned fewer bytes than asked for.
    #[error("blob {name:?} is truncated: wanted {wanted} bytes at {offset}, got {got}")]
    Truncated {
        /// Blob name.
        name: String,
        /// Offset of the read.
        offset: u64,
        /// Bytes asked for.
        wanted: u64,
        /// Bytes received.
        got: u64,
    },
    /// An invalid argument from the caller (bad blob name, bad range, bad parameters).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backing store is unreachable, failing or throttling (after retries, or at
    /// once while its circuit breaker is open); the client should retry later.
    #[error("backing store unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
        /// The backend itself asked to slow down (503 SlowDown / 429).
        slow_down: bool,
    },
    /// The backing store failed.
    #[error("backing store: {0}")]
    Backend(#[source] BoxError),
    /// The client's byte stream failed midway.
    #[error("request body: {0}")]
    Body(#[source] BoxError),
    /// The redb index failed.
    #[error("index: {0}")]
    Index(#[from] redb::Error),
    /// The index is missing or empty but the backing store already holds packs: this
    /// is a store whose index was lost, not a new store. Starting an empty index over
    /// it would show no buckets (and a later GC sweep would delete every pack).
    #[error(
        "the index {index} is missing or empty, but the backing store already holds packs \
         (first: {first}): this is not a new store. Restore the index from a snapshot \
         (<data_dir>/index-snapshots/, see the README \"Index integrity and restoring the index\"), or point \
         the gateway at an empty store"
    )]
    IndexMissing {
        /// The index file.
        index: String,
        /// A pack found in the store.
        first: String,
    },
    /// A chunk or record is sealed under a key that is not configured.
    #[error(
        "encryption key {id} is not configured (it sealed stored data): add it back to the \
         key file, or run `s3dedup admin rekey` while it is still configured"
    )]
    KeyMissing {
        /// The key id named by the stored item.
        id: u16,
    },
    /// The configured keys do not match the store's (refused at start, before anything
    /// is written).
    #[error("wrong encryption key: {detail}")]
    WrongKey {
        /// Which key and why.
        detail: String,
    },
    /// The store holds encrypted data (or keyed chunk ids) but no key is configured.
    #[error(
        "this store was written with encryption ({detail}): set encryption = \"aead\" and \
         its encryption_key_file (or S3DEDUP_ENCRYPTION_KEY)"
    )]
    EncryptionRequired {
        /// What the index records.
        detail: String,
    },
    /// The backing store carries another index's identity: it belongs to another data
    /// dir, whose packs this index must never sweep.
    #[error(
        "the backing store belongs to another data dir (store id {found}, this index \
         expects {expected}): point this gateway at its own store or an empty prefix (if that \
         data dir is gone for good, deleting the store's s3dedup-store-id blob releases it)"
    )]
    StoreOwnedElsewhere {
        /// The id in the store's marker.
        found: String,
        /// The id this index recorded (`none` for an index that never had a store).
        expected: String,
    },
    /// A journal blob in the store names another store: it was copied from elsewhere
    /// and must not be replayed into this one.
    #[error(
        "journal blob {blob} belongs to store {found}, not to this store ({expected}): \
         remove it from the store or rebuild against the store it came from"
    )]
    JournalForeign {
        /// The blob.
        blob: String,
        /// The store id it carries.
        found: String,
        /// This store's id.
        expected: String,
    },
    /// Another process (a running gateway) holds the index open.
    #[error("the index {index} is in use by another process")]
    IndexLocked {
        /// The index file.
        index: String,
    },
    /// A background task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl fmt::Display) -> Self {
        Error::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn backend(e: impl Into<BoxError>) -> Self {
        Error::Backend(e.into())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Index(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}
