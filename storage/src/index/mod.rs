//! The redb index: buckets, objects, manifests, chunks, packs, multipart uploads.
//!
//! Layout:
//! - `mod.rs` — table definitions, open/format check, and the reference-counting and
//!   manifest primitives every write goes through;
//! - `buckets.rs` — create, delete, look up and list buckets;
//! - `objects.rs` — commit, copy, delete, list and read plans of objects;
//! - `multipart.rs` — uploads and parts;
//! - `fsck.rs` — the recount that proves refcounts equal references;
//! - `journal.rs` — the outbox every metadata change is journaled to, in its own
//!   transaction, and the snapshot of the whole state (see `crate::journal`);
//! - `rebuild.rs` — writing an index rebuilt from the store's journal.
//!
//! Every mutation is one redb write transaction with `Durability::Immediate` (redb's
//! default): it either commits entirely, durably, or not at all. Every commit also saves
//! redb's allocator state ("quick repair", which implies two-phase commit): after an
//! unclean stop redb then opens at once instead of re-verifying every page checksum of
//! the whole file, a walk that refuses the entire database ("all roots are corrupted")
//! when a single page shared by both commit slots has gone bad. Damage inside a value
//! is caught by the record's own CRC32C (`records`); damage to the tree shows as an
//! index error on the paths that touch it; `fsck` and the periodic snapshots walk it
//! all (see `snapshot`).
//!
//! Reference counting: a chunk's refcount is the number of manifest slices naming it,
//! over committed objects and uploaded multipart parts. Increments are applied before
//! the decrements of a replaced version, so a chunk shared by old and new never touches
//! zero. A chunk reaching zero is marked `Zero { since }` and queued in `gc_queue` with
//! that time; GC (a later component) reclaims it after a grace period.

mod buckets;
mod committer;
mod configs;
mod fsck;
mod gc;
mod identity;
pub(crate) mod journal;
mod keys;
mod lifecycle;
mod locks;
mod multipart;
mod objects;
mod rebuild;
mod refs;
mod scrub;
mod snapshot;
mod upgrade;
mod usage;
mod version_list;
mod versions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

pub use committer::CommitCounters;
use committer::Committer;
pub use fsck::FsckReport;
pub(crate) use gc::{ChunkSweep, LocatedChunk, Move};
pub use journal::JournalState;
pub(crate) use keys::InlineRewrite;
pub(crate) use lifecycle::KIND as LIFECYCLE_KIND;
pub(crate) use lifecycle::KeyOutcome;
pub(crate) use locks::LockChange;
pub use locks::LockRequest;
pub use multipart::UploadSummary;
pub use objects::{ListEntry, ListPage, WriteCondition};
pub(crate) use objects::{ListQuery, PlannedChunk};
pub(crate) use rebuild::Rebuilt;
use refs::{add_refs, register_packs, release_refs, slice_counts};
pub(crate) use refs::{pack_live, stored_len};
pub use scrub::{ScrubCursor, ScrubLast, ScrubTotals};
pub(crate) use snapshot::prune_snapshots;
pub use snapshot::{SnapshotInfo, SnapshotSettings, snapshot_dir};
pub use version_list::{VersionItem, VersionPage, VersionQuery};
pub use versions::{DeleteOptions, Deleted};

use crate::chunk::{ChunkCodec, Compression};
use crate::chunker::ChunkerParams;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::inflight::Inflight;
use crate::records::{
    ChunkRecord, ChunkState, ChunkerRecord, Location, ManifestRef, ManifestSegment, PackRecord,
    SEGMENT_SLICES, Slice,
};

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const STATS: TableDefinition<&str, u64> = TableDefinition::new("stats");
pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
pub(crate) const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
/// Versions other than a key's current object (`versions.rs`), newest first per key.
pub(crate) const VERSIONS: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("versions");
/// Object lock records of versions ((bucket, key, seq); `locks.rs`).
pub(crate) const LOCKS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("locks");
/// Bucket configurations ((bucket, kind) → encoded; `configs.rs`).
pub(crate) const BUCKET_CONFIGS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("bucket_configs");
/// Tenants, users and access keys ((kind, name) → record; `identity.rs`).
pub(crate) const IDENTITIES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("identities");
pub(crate) const MANIFESTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("manifests");
pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
pub(crate) const GC_QUEUE: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("gc_queue");
pub(crate) const PACKS: TableDefinition<u128, &[u8]> = TableDefinition::new("packs");
pub(crate) const ORPHAN_PACKS: TableDefinition<u128, u64> = TableDefinition::new("orphan_packs");
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
pub(crate) const UPLOADS_BY_KEY: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("uploads_by_key");
pub(crate) const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");
/// Completed uploads by id, remembered for [`COMPLETED_UPLOAD_TTL_MS`] so a retried
/// completion gets the first answer again.
pub(crate) const COMPLETED_UPLOADS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("completed_uploads");
/// The same, by completion time, for expiry.
pub(crate) const COMPLETED_BY_TIME: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("completed_by_time");

/// How long a completed upload is remembered (AWS answers a retried completion for
/// at least this long).
pub(crate) const COMPLETED_UPLOAD_TTL_MS: u64 = 24 * 3600 * 1000;

/// Version of the index layout as a whole (tables, their key types, record versions);
/// what each format added, and why an older binary must refuse it, is in `upgrade`.
pub(crate) const INDEX_FORMAT: u32 = 11;
/// Index formats this version opens.
const READABLE_FORMATS: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const KEY_FORMAT: &str = "format";
const KEY_CHUNKER: &str = "chunker";
const KEY_NEXT_ID: &str = "next_manifest_id";

/// Counter names in the `stats` table.
pub(crate) mod stat {
    /// Sum of committed object sizes, every version (current and noncurrent).
    pub(crate) const LOGICAL_BYTES: &str = "logical_bytes";
    /// Current objects (one per key at most).
    pub(crate) const OBJECTS: &str = "objects";
    /// Noncurrent object versions (format 6).
    pub(crate) const NONCURRENT_VERSIONS: &str = "noncurrent_versions";
    /// Their sizes.
    pub(crate) const NONCURRENT_BYTES: &str = "noncurrent_bytes";
    /// Delete markers.
    pub(crate) const DELETE_MARKERS: &str = "delete_markers";
    /// Sum of raw lengths of chunks with refcount > 0.
    pub(crate) const UNIQUE_BYTES: &str = "unique_bytes";
    /// Chunks with refcount > 0.
    pub(crate) const CHUNKS: &str = "chunks";
    /// Bytes of packs known to the index plus inline chunk bytes.
    pub(crate) const STORED_BYTES: &str = "stored_bytes";
    /// Stored bytes (pack or inline) of chunks with refcount > 0: what live data
    /// needs (format 3).
    pub(crate) const LIVE_STORED_BYTES: &str = "live_stored_bytes";
    /// Bytes of packs holding live chunks that are not chunk data (magic, table,
    /// trailer; format 3).
    pub(crate) const PACK_OVERHEAD_BYTES: &str = "pack_overhead_bytes";
}

/// Counters kept transactionally with the data they describe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sum of committed object sizes, every version.
    pub logical_bytes: u64,
    /// Current objects.
    pub objects: u64,
    /// Noncurrent object versions.
    pub noncurrent_versions: u64,
    /// Their sizes (part of `logical_bytes`).
    pub noncurrent_bytes: u64,
    /// Delete markers.
    pub delete_markers: u64,
    /// Sum of raw lengths of referenced chunks.
    pub unique_bytes: u64,
    /// Referenced chunks.
    pub chunks: u64,
    /// Bytes held in the backing store (known packs) and inline.
    pub stored_bytes: u64,
    /// Of those, the stored bytes of referenced chunks.
    pub live_stored_bytes: u64,
    /// Of those, bytes of packs holding live chunks that are not chunk data (each such
    /// pack's table and framing).
    pub pack_overhead_bytes: u64,
}

impl Stats {
    /// Stored bytes no live object needs (chunks at refcount 0, dead space in packs):
    /// what GC and compaction reclaim.
    pub fn garbage_bytes(&self) -> u64 {
        self.stored_bytes
            .saturating_sub(self.live_stored_bytes)
            .saturating_sub(self.pack_overhead_bytes)
    }
}

/// A chunk written by an in-flight upload, not yet in the index.
#[derive(Debug, Clone)]
pub(crate) struct NewChunk {
    pub(crate) raw_len: u32,
    pub(crate) crc: u32,
    pub(crate) location: Location,
}

/// A pack written by an in-flight upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewPack {
    pub(crate) id: u128,
    pub(crate) size: u64,
    pub(crate) chunks: u32,
}

/// What an upload hands to a commit: its slices plus the chunks and packs it wrote.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    pub(crate) slices: Vec<Slice>,
    pub(crate) new_chunks: HashMap<ChunkId, NewChunk>,
    pub(crate) packs: Vec<NewPack>,
}

/// A write transaction as every writer here starts it (see the module docs).
fn begin_write(db: &Database) -> Result<WriteTransaction> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The open index.
#[derive(Debug)]
pub(crate) struct Index {
    db: Arc<Database>,
    params: ChunkerParams,
    /// How chunks are named and encoded (ids fixed at creation, keys checked at open).
    codec: ChunkCodec,
    committer: Committer,
    /// Pins, packs being written and read leases (see `inflight`).
    pub(crate) inflight: Arc<Inflight>,
    /// Held by GC and rekey for their whole run: both move chunks and delete packs, and
    /// two runs deleting the same emptied pack would trip over each other.
    pub(crate) maintenance: tokio::sync::Mutex<()>,
    /// Held while shipping the journal or writing a snapshot (one writer of
    /// `journal/` at a time).
    pub(crate) journal_lock: tokio::sync::Mutex<()>,
}

impl Index {
    /// Opens or creates the index at `path` with `cache_bytes` of page cache. A new index
    /// records `params`; an existing one keeps its format version checked and its
    /// recorded parameters updated to `params` (old manifests stay valid whatever the
    /// parameters).
    ///
    /// # Errors
    /// [`Error::UnsupportedFormat`] for an index written by a newer version;
    /// [`Error::Index`] if redb cannot open the file.
    pub(crate) fn open(
        path: &Path,
        params: ChunkerParams,
        cache_bytes: usize,
        compression: Compression,
        keys: Option<Arc<Keyring>>,
    ) -> Result<Self> {
        params.validate()?;
        let db = match Database::builder().set_cache_size(cache_bytes).create(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::IndexLocked {
                    index: path.display().to_string(),
                });
            }
            opened => opened?,
        };
        let txn = begin_write(&db)?;
        let before = journaled_meta(&txn)?;
        let mut upgrade_from = None;
        {
            let mut meta = txn.open_table(META)?;
            let format = meta.get(KEY_FORMAT)?.map(|v| v.value().to_vec());
            match format {
                None => {
                    meta.insert(KEY_FORMAT, INDEX_FORMAT.to_le_bytes().as_slice())?;
                }
                Some(v) => {
                    let found = u32::from_le_bytes(
                        v.as_slice()
                            .try_into()
                            .map_err(|_| Error::corrupt("index", "format marker"))?,
                    );
                    if !READABLE_FORMATS.contains(&found) {
                        return Err(Error::UnsupportedFormat {
                            what: "index",
                            version: found,
                        });
                    }
                    if found != INDEX_FORMAT {
                        tracing::info!(from = found, to = INDEX_FORMAT, "index format upgraded");
                        meta.insert(KEY_FORMAT, INDEX_FORMAT.to_le_bytes().as_slice())?;
                        upgrade_from = Some(found);
                    }
                }
            }
            let recorded = meta
                .get(KEY_CHUNKER)?
                .map(|v| ChunkerRecord::decode(v.value()))
                .transpose()?;
            if recorded.map(|r| r.params) != Some(params) {
                if let Some(old) = recorded {
                    tracing::warn!(
                        old = ?old.params,
                        new = ?params,
                        "chunker parameters changed: existing data stays readable, new uploads dedup against it less"
                    );
                }
                meta.insert(KEY_CHUNKER, ChunkerRecord { params }.encode().as_slice())?;
            }
            // Create every table so readers never see "table does not exist".
            txn.open_table(STATS)?;
            txn.open_table(BUCKETS)?;
            txn.open_table(OBJECTS)?;
            txn.open_table(VERSIONS)?;
            txn.open_table(LOCKS)?;
            txn.open_table(BUCKET_CONFIGS)?;
            txn.open_table(IDENTITIES)?;
            txn.open_table(usage::BUCKET_USAGE)?;
            txn.open_table(usage::TENANT_USAGE)?;
            txn.open_table(MANIFESTS)?;
            txn.open_table(CHUNKS)?;
            txn.open_table(GC_QUEUE)?;
            txn.open_table(PACKS)?;
            txn.open_table(ORPHAN_PACKS)?;
            txn.open_table(UPLOADS)?;
            txn.open_table(UPLOADS_BY_KEY)?;
            txn.open_table(PARTS)?;
            txn.open_table(COMPLETED_UPLOADS)?;
            txn.open_table(COMPLETED_BY_TIME)?;
            txn.open_table(journal::OUTBOX)?;
            txn.open_table(journal::STATE)?;
        }
        if upgrade_from.is_some_and(|f| f < 3) {
            upgrade::recount_live(&txn)?;
        }
        if upgrade_from.is_some_and(|f| f < 10) {
            usage::recompute(&txn)?;
        }
        // Last before the commit: a refused key aborts the whole transaction.
        let codec = keys::open_codec(&txn, compression, keys)?;
        let resealed = identity::reseal_secrets(&txn, codec.keys.as_deref())?;
        if resealed > 0 {
            tracing::info!(
                resealed,
                "secrets (access keys, dedup domains) sealed again under the active encryption key"
            );
        }
        let changed: Vec<_> = journaled_meta(&txn)?
            .into_iter()
            .zip(before)
            .filter(|((_, now), (_, was))| now != was)
            .filter_map(|((key, now), _)| {
                now.map(|value| crate::journal::entry::Change::Meta {
                    key: key.to_owned(),
                    value,
                })
            })
            .collect();
        journal::append(&txn, changed)?;
        txn.commit()?;
        let db = Arc::new(db);
        let committer = Committer::start(Arc::clone(&db));
        let index = Index {
            db,
            params,
            codec,
            committer,
            inflight: Arc::default(),
            maintenance: tokio::sync::Mutex::new(()),
            journal_lock: tokio::sync::Mutex::new(()),
        };
        index.load_domains()?;
        Ok(index)
    }

    /// Walks every page of the index file at `path` and verifies redb's checksums
    /// (`Database::check_integrity`). Needs the file to itself: the gateway must not be
    /// running. `Ok(true)` = clean; `Ok(false)` = redb repaired an interrupted commit.
    ///
    /// # Errors
    /// [`Error::Index`] when the file is damaged (or cannot be opened).
    pub(crate) fn verify_file(path: &Path) -> Result<bool> {
        let mut db = match Database::open(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::IndexLocked {
                    index: path.display().to_string(),
                });
            }
            opened => opened?,
        };
        Ok(db.check_integrity()?)
    }

    /// Group-commit counters (writes, transactions, replayed batches).
    pub(crate) fn commit_counters(&self) -> &CommitCounters {
        &self.committer.counters
    }

    /// The chunker parameters in force.
    pub(crate) fn params(&self) -> ChunkerParams {
        self.params
    }

    /// How this store names and encodes chunks.
    pub(crate) fn codec(&self) -> &ChunkCodec {
        &self.codec
    }

    /// The chunker parameters recorded in the index.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn recorded_params(&self) -> Result<ChunkerParams> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let v = meta
            .get(KEY_CHUNKER)?
            .ok_or_else(|| Error::corrupt("index", "no chunker record"))?;
        Ok(ChunkerRecord::decode(v.value())?.params)
    }

    /// Whether an upload may skip writing this chunk: it is in the index, not being
    /// deleted and not known damaged. The caller must hold a pin on it first (see
    /// `inflight`): then GC cannot remove it before the upload commits.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn chunk_reusable(&self, id: &ChunkId) -> Result<bool> {
        let txn = self.db.begin_read()?;
        let chunks = txn.open_table(CHUNKS)?;
        match chunks.get(&id.0)? {
            None => Ok(false),
            Some(v) => {
                let rec = ChunkRecord::decode(v.value())?;
                Ok(rec.state != ChunkState::Deleting && !rec.damaged)
            }
        }
    }

    /// Current counters.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn stats(&self) -> Result<Stats> {
        read_stats(&self.db.begin_read()?)
    }

    /// Records packs written by uploads that never committed, so GC can delete them
    /// after the grace period without waiting for a store-wide sweep.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn record_orphans(
        &self,
        packs: Vec<NewPack>,
    ) -> impl Future<Output = Result<()>> + use<> {
        let now = now_ms();
        self.committer.submit(move |txn| {
            let known = txn.open_table(PACKS)?;
            let mut orphans = txn.open_table(ORPHAN_PACKS)?;
            for p in &packs {
                if known.get(p.id)?.is_none() {
                    orphans.insert(p.id, now)?;
                }
            }
            Ok(())
        })
    }

    /// Packs recorded as orphans (written, never committed), with the time recorded.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn orphan_packs(&self) -> Result<Vec<(u128, u64)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ORPHAN_PACKS)?;
        t.iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((k.value(), v.value()))
            })
            .collect()
    }

    /// Chunks queued for GC (refcount zero), oldest first: (since ms, id).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn gc_queue(&self) -> Result<Vec<(u64, ChunkId)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(GC_QUEUE)?;
        t.iter()?
            .map(|r| {
                let (k, _) = r?;
                let (since, id) = k.value();
                Ok((since, ChunkId(*id)))
            })
            .collect()
    }

    /// Every chunk record that decodes (damaged ones are `fsck`'s to report).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn chunk_records(&self) -> Result<Vec<(ChunkId, ChunkRecord)>> {
        self.chunk_records_where(|id, rec| Some((id, rec)))
    }

    /// [`Index::chunk_records`], keeping only what `keep` maps to `Some`: one pass, and
    /// only the kept records in memory (scrub's inline check, a pack's chunks by scan).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn chunk_records_where<T>(
        &self,
        mut keep: impl FnMut(ChunkId, ChunkRecord) -> Option<T>,
    ) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (k, v) = r?;
            if let Ok(rec) = ChunkRecord::decode(v.value())
                && let Some(x) = keep(ChunkId(*k.value()), rec)
            {
                out.push(x);
            }
        }
        Ok(out)
    }

    /// Packs known to the index.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn packs(&self) -> Result<Vec<(u128, PackRecord)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PACKS)?;
        t.iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((k.value(), PackRecord::decode(v.value())?))
            })
            .collect()
    }
}

/// A meta key and its value, if set.
type MetaValue = (&'static str, Option<Vec<u8>>);

/// The meta values a rebuild restores, as they are in `txn`.
fn journaled_meta(txn: &WriteTransaction) -> Result<Vec<MetaValue>> {
    let meta = txn.open_table(META)?;
    journal::JOURNALED_META
        .into_iter()
        .map(|k| Ok((k, meta.get(k)?.map(|v| v.value().to_vec()))))
        .collect()
}

fn read_stats(txn: &redb::ReadTransaction) -> Result<Stats> {
    let t = txn.open_table(STATS)?;
    let get = |k: &str| -> Result<u64> { Ok(t.get(k)?.map_or(0, |v| v.value())) };
    Ok(Stats {
        logical_bytes: get(stat::LOGICAL_BYTES)?,
        objects: get(stat::OBJECTS)?,
        noncurrent_versions: get(stat::NONCURRENT_VERSIONS)?,
        noncurrent_bytes: get(stat::NONCURRENT_BYTES)?,
        delete_markers: get(stat::DELETE_MARKERS)?,
        unique_bytes: get(stat::UNIQUE_BYTES)?,
        chunks: get(stat::CHUNKS)?,
        stored_bytes: get(stat::STORED_BYTES)?,
        live_stored_bytes: get(stat::LIVE_STORED_BYTES)?,
        pack_overhead_bytes: get(stat::PACK_OVERHEAD_BYTES)?,
    })
}

fn add_stat(txn: &WriteTransaction, key: &str, delta: i128) -> Result<()> {
    let mut t = txn.open_table(STATS)?;
    let cur = t.get(key)?.map_or(0, |v| v.value());
    let new = i128::from(cur) + delta;
    let new = u64::try_from(new)
        .map_err(|_| Error::corrupt("stats", format!("{key} would become {new}")))?;
    t.insert(key, new)?;
    Ok(())
}

fn next_id(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let cur = match meta.get(KEY_NEXT_ID)? {
        None => 1,
        Some(v) => u64::from_le_bytes(
            v.value()
                .try_into()
                .map_err(|_| Error::corrupt("index", "manifest id counter"))?,
        ),
    };
    meta.insert(KEY_NEXT_ID, (cur + 1).to_le_bytes().as_slice())?;
    Ok(cur)
}

/// Writes a manifest in segments under a fresh id.
fn write_manifest(txn: &WriteTransaction, slices: &[Slice]) -> Result<ManifestRef> {
    let id = next_id(txn)?;
    let mut t = txn.open_table(MANIFESTS)?;
    let mut start = 0u64;
    for (seg, part) in slices.chunks(SEGMENT_SLICES).enumerate() {
        let segment = ManifestSegment {
            start,
            slices: part.to_vec(),
        };
        start += part.iter().map(|s| u64::from(s.len)).sum::<u64>();
        let seg =
            u32::try_from(seg).map_err(|_| Error::InvalidArgument("manifest too large".into()))?;
        t.insert((id, seg), segment.encode().as_slice())?;
    }
    Ok(ManifestRef {
        id,
        slices: slices.len() as u64,
    })
}

/// Content digest of a manifest: SHA-256 over each slice's chunk id, offset and length.
/// Chunk ids are content hashes, so equal digests mean equal bytes; it costs one small
/// hash per ~64 KiB chunk, not a pass over the data. (The same bytes cut differently, e.g.
/// uploaded in other parts, get another digest.)
pub(crate) fn content_digest<'a>(slices: impl IntoIterator<Item = &'a Slice>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for s in slices {
        h.update(s.chunk.0);
        h.update(s.offset.to_le_bytes());
        h.update(s.len.to_le_bytes());
    }
    h.finalize().into()
}

/// Reads every slice of a manifest.
fn read_manifest<T: ReadableTable<(u64, u32), &'static [u8]>>(
    t: &T,
    m: ManifestRef,
) -> Result<Vec<Slice>> {
    // The count comes from a stored record: never allocate on its word alone (one
    // flipped byte asked for 171 GB and aborted the process).
    let mut out =
        Vec::with_capacity(usize::try_from(m.slices).map_or(0, |n| n.min(SEGMENT_SLICES)));
    for r in t.range((m.id, 0)..=(m.id, u32::MAX))? {
        let (_, v) = r?;
        out.extend(ManifestSegment::decode(v.value())?.slices);
        if out.len() as u64 > m.slices {
            break;
        }
    }
    if out.len() as u64 != m.slices {
        return Err(Error::corrupt(
            "manifest",
            format!("{} slices found, record says {}", out.len(), m.slices),
        ));
    }
    Ok(out)
}

/// Releases a manifest's references and deletes its segments.
fn drop_manifest(txn: &WriteTransaction, m: ManifestRef) -> Result<()> {
    let slices = {
        let t = txn.open_table(MANIFESTS)?;
        read_manifest(&t, m)?
    };
    release_refs(txn, &slice_counts(&slices))?;
    let mut t = txn.open_table(MANIFESTS)?;
    t.retain_in((m.id, 0)..=(m.id, u32::MAX), |_, _| false)?;
    Ok(())
}
