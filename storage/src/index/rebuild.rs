//! Writing a rebuilt index (see `journal::rebuild`): everything in one transaction,
//! refcounts, pack accounting and counters recounted from what was restored.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use redb::{Database, ReadableTable};

use super::gc::{KEY_SNAPSHOT_TAKEN, KEY_STORE_ID};
use super::{
    BUCKETS, CHUNKS, INDEX_FORMAT, KEY_CHUNKER, KEY_FORMAT, META, OBJECTS, PACKS, STATS, VERSIONS,
    begin_write, journal, now_ms, slice_counts, stat, stored_len, write_manifest,
};
use crate::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::records::{
    BucketRecord, ChunkRecord, ChunkState, ChunkerRecord, Location, ObjectRecord, PackRecord, Slice,
};
use crate::version_entry::VersionEntry;

/// The state a rebuild restored.
#[derive(Debug)]
pub(crate) struct Rebuilt {
    /// Journaled meta values (key records, chunker parameters).
    pub(crate) meta: BTreeMap<String, Vec<u8>>,
    /// The store's identity.
    pub(crate) store_id: String,
    /// Buckets.
    pub(crate) buckets: Vec<(String, BucketRecord)>,
    /// Objects with their manifests (every chunk they name is in `chunks`).
    pub(crate) objects: Vec<(String, String, ObjectRecord, Vec<Slice>)>,
    /// Noncurrent versions (with their manifests) and delete markers.
    pub(crate) versions: Vec<(String, String, VersionEntry, Vec<Slice>)>,
    /// Object lock records of restored versions.
    pub(crate) locks: Vec<((String, String, u64), crate::lock::LockRecord)>,
    /// Bucket configurations by (bucket, kind).
    pub(crate) configs: Vec<((String, String), Vec<u8>)>,
    /// Identity records by (kind, name).
    pub(crate) identities: Vec<((String, String), Vec<u8>)>,
    /// Every chunk the objects reference, located.
    pub(crate) chunks: HashMap<ChunkId, ChunkRecord>,
    /// Readable packs present: size and chunk count.
    pub(crate) packs: BTreeMap<u128, (u64, u32)>,
    /// The journal sequence number new changes continue from.
    pub(crate) next_seq: u64,
    /// Chunker parameters when the journal recorded none.
    pub(crate) chunker: ChunkerParams,
}

impl Rebuilt {
    /// Writes the index file at `path`; returns the number of chunks located. It is
    /// written as `<path>.partial`, synced, and renamed into place only when complete:
    /// a rebuild that dies half-way leaves no index that looks like one.
    ///
    /// # Errors
    /// [`crate::Error::Index`], or the file system's error.
    pub(crate) fn write(self, path: &Path, cache_bytes: usize) -> Result<u64> {
        let partial = path.with_extension("redb.partial");
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::backend(e)),
            _ => {}
        }
        let n = self.write_to(&partial, cache_bytes)?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(Error::backend)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::backend)?;
        Ok(n)
    }

    fn write_to(self, path: &Path, cache_bytes: usize) -> Result<u64> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let txn = begin_write(&db)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(KEY_FORMAT, INDEX_FORMAT.to_le_bytes().as_slice())?;
            for (k, v) in &self.meta {
                if journal::JOURNALED_META.contains(&k.as_str()) {
                    meta.insert(k.as_str(), v.as_slice())?;
                }
            }
            if meta.get(KEY_CHUNKER)?.is_none() {
                let rec = ChunkerRecord {
                    params: self.chunker,
                };
                meta.insert(KEY_CHUNKER, rec.encode().as_slice())?;
            }
            meta.insert(KEY_STORE_ID, self.store_id.as_bytes())?;
            // Packs written after the rebuild read the store are unknown to it: GC
            // keeps unknown packs from a day before this on (see `gc`).
            meta.insert(KEY_SNAPSHOT_TAKEN, now_ms().to_le_bytes().as_slice())?;
            txn.open_table(journal::STATE)?
                .insert(journal::NEXT_SEQ, self.next_seq)?;
        }
        let mut buckets = txn.open_table(BUCKETS)?;
        for (name, rec) in &self.buckets {
            buckets.insert(name.as_str(), rec.encode().as_slice())?;
        }
        drop(buckets);
        let mut counts: BTreeMap<ChunkId, u64> = BTreeMap::new();
        let (mut logical, mut objects) = (0u64, 0u64);
        let mut last_seq = 0u64;
        for (bucket, key, mut rec, slices) in self.objects {
            last_seq = last_seq.max(rec.version.seq);
            for (id, n) in slice_counts(&slices) {
                *counts.entry(id).or_insert(0) += n;
            }
            rec.manifest = write_manifest(&txn, &slices)?;
            txn.open_table(OBJECTS)?
                .insert((bucket.as_str(), key.as_str()), rec.encode().as_slice())?;
            logical += rec.size;
            objects += 1;
        }
        let (mut noncurrent, mut noncurrent_bytes, mut markers) = (0u64, 0u64, 0u64);
        for (bucket, key, mut entry, slices) in self.versions {
            last_seq = last_seq.max(entry.version().seq);
            match &mut entry {
                VersionEntry::Object(rec) => {
                    for (id, n) in slice_counts(&slices) {
                        *counts.entry(id).or_insert(0) += n;
                    }
                    rec.manifest = write_manifest(&txn, &slices)?;
                    logical += rec.size;
                    noncurrent += 1;
                    noncurrent_bytes += rec.size;
                }
                VersionEntry::Marker(_) => markers += 1,
            }
            let k = crate::versions::version_key(entry.version().seq);
            txn.open_table(VERSIONS)?.insert(
                (bucket.as_str(), key.as_str(), k),
                entry.encode().as_slice(),
            )?;
        }
        {
            let mut t = txn.open_table(super::LOCKS)?;
            for ((bucket, key, seq), rec) in &self.locks {
                t.insert(
                    (bucket.as_str(), key.as_str(), *seq),
                    rec.encode().as_slice(),
                )?;
            }
            let mut t = txn.open_table(super::BUCKET_CONFIGS)?;
            for ((bucket, kind), value) in &self.configs {
                t.insert((bucket.as_str(), kind.as_str()), value.as_slice())?;
            }
            let mut t = txn.open_table(super::IDENTITIES)?;
            for ((kind, name), value) in &self.identities {
                super::identity::check_record(kind, value)?;
                t.insert((kind.as_str(), name.as_str()), value.as_slice())?;
            }
        }
        let mut chunks = txn.open_table(CHUNKS)?;
        let mut per_pack: HashMap<u128, (u32, u64)> = HashMap::new();
        let (mut unique, mut live_stored, mut inline) = (0u64, 0u64, 0u64);
        for (id, n) in &counts {
            let Some(mut rec) = self.chunks.get(id).cloned() else {
                continue;
            };
            rec.refcount = *n;
            rec.state = ChunkState::Live;
            rec.damaged = false;
            let len = stored_len(&rec.location);
            match rec.location {
                Location::Pack { pack, .. } => {
                    let e = per_pack.entry(pack).or_default();
                    e.0 += 1;
                    e.1 += len;
                }
                Location::Inline(_) => inline += len,
            }
            unique += u64::from(rec.raw_len);
            live_stored += len;
            chunks.insert(&id.0, rec.encode().as_slice())?;
        }
        drop(chunks);
        let mut packs = txn.open_table(PACKS)?;
        let (mut stored, mut overhead) = (inline, 0u64);
        for (id, (size, n)) in &self.packs {
            let (live_chunks, live_bytes) = per_pack.get(id).copied().unwrap_or_default();
            if live_chunks > 0 {
                overhead += crate::pack::overhead(*n);
            }
            stored += size;
            let rec = PackRecord {
                size: *size,
                chunks: *n,
                committed_ms: crate::pack::pack_id_ms(*id),
                live_chunks,
                live_bytes,
                deleting_since_ms: None,
            };
            packs.insert(*id, rec.encode().as_slice())?;
        }
        drop(packs);
        let mut stats = txn.open_table(STATS)?;
        stats.insert(stat::LOGICAL_BYTES, logical)?;
        stats.insert(stat::OBJECTS, objects)?;
        stats.insert(stat::NONCURRENT_VERSIONS, noncurrent)?;
        stats.insert(stat::NONCURRENT_BYTES, noncurrent_bytes)?;
        stats.insert(stat::DELETE_MARKERS, markers)?;
        stats.insert(super::versions::LAST_VERSION_SEQ, last_seq)?;
        stats.insert(stat::UNIQUE_BYTES, unique)?;
        stats.insert(stat::CHUNKS, counts.len() as u64)?;
        stats.insert(stat::STORED_BYTES, stored)?;
        stats.insert(stat::LIVE_STORED_BYTES, live_stored)?;
        stats.insert(stat::PACK_OVERHEAD_BYTES, overhead)?;
        drop(stats);
        super::usage::recompute(&txn)?;
        txn.commit()?;
        drop(db);
        Ok(counts.len() as u64)
    }
}
