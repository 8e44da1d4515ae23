//! s3dedup storage engine: content-defined chunks, packs, and the redb index.
//!
//! An uploaded byte stream is cut into content-defined chunks (FastCDC v2020), each named
//! by its SHA-256. Chunks the index does not know yet are appended to a *pack*, one blob
//! in a [`blob::BlobStore`]; the redb [`index::Index`] maps objects to manifests (lists
//! of chunk slices) and chunks to their pack location and reference count.
//!
//! Write order (DESIGN.md invariant 1): an ingest writes its packs durably first; only
//! then does one redb write transaction publish the object, take references and release
//! the replaced version's. A crash in between leaves orphan packs, never a reference to
//! a chunk that is not stored.
//!
//! # Layout
//! - [`chunker`] — streaming FastCDC, pure.
//! - [`id`] — [`ChunkId`], the SHA-256 naming a chunk (a leaf module).
//! - [`identity`] — tenants, users, access keys: records, names, sealed secrets.
//! - [`chunk`] — the versioned stored-chunk codec (compression, sealing).
//! - [`crypto`] — keys, AEAD sealing, keyed chunk ids.
//! - [`pack`] — self-describing pack format, pure.
//! - [`blob`] — the `BlobStore` trait and its `fs` and `memory` backends.
//! - [`records`] — versioned encodings of every index value.
//! - [`index`] — redb tables, transactions, refcounts, listing, fsck.
//! - [`ingest`] — the upload pipeline producing a [`PendingObject`].
//! - [`config`] — [`StoreConfig`], the engine's settings.
//! - [`read`] — the read pipeline: coalesced, read-ahead, verified chunk streams.
//! - [`store`] — [`Store`], the API the gateway calls.
//! - [`verify`] — `fsck --read-data`: every stored chunk read back and verified.
//! - [`scrub`] — re-reads every pack at a bounded rate, marks damaged chunks.
//! - [`gc`] — garbage collection: chunks past the grace period, empty packs, orphans,
//!   stale multipart uploads (`inflight` holds what running uploads and reads use).
//! - [`journal`] — the metadata journal and snapshots in the store; `rebuild-index`.
//! - [`rekey`] — rewrites what is not sealed under the active key (through compaction).
//! - [`error`] — the crate's [`Error`].
//! - [`metrics`] — the crate's metric names and help texts.

pub mod blob;
pub mod chunk;
pub mod chunker;
mod codec;
mod compact;
pub mod config;
pub mod crypto;
pub mod error;
pub mod gc;
pub mod id;
pub mod identity;
mod index;
mod inflight;
pub mod ingest;
pub mod journal;
pub mod lifecycle;
pub mod lock;
pub mod metrics;
pub mod pack;
pub mod quota;
pub mod rates;
pub mod read;
pub mod records;
pub mod rekey;
pub mod scrub;
pub mod store;
pub mod verify;
pub mod version_entry;
pub mod versions;

pub use chunker::ChunkerParams;
pub use error::{Error, Result};
pub use id::ChunkId;
pub use index::{
    CommitCounters, DeleteOptions, Deleted, FsckReport, ListEntry, ListPage, LockRequest,
    ScrubCursor, ScrubLast, ScrubTotals, SnapshotInfo, SnapshotSettings, Stats, UploadSummary,
    VersionItem, VersionPage, VersionQuery, WriteCondition, snapshot_dir,
};
pub use ingest::PendingObject;
pub use records::{ChecksumSpec, Etag, ObjectMeta, ObjectRecord, PartInfo};
pub use store::{ByteRange, ObjectReader, Store, StoreConfig};
pub use version_entry::{DeleteMarker, VersionEntry};
pub use versions::{Version, VersionSel, Versioning};
