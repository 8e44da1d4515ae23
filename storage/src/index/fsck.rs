//! Consistency check: recount every reference and compare with the index.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableDatabase, ReadableTable};

use super::{
    BUCKETS, CHUNKS, GC_QUEUE, Index, LOCKS, MANIFESTS, OBJECTS, PACKS, PARTS, Stats, UPLOADS,
    VERSIONS, read_manifest, slice_counts,
};
use crate::error::Result;
use crate::id::ChunkId;
use crate::records::{
    BucketRecord, ChunkRecord, ChunkState, Location, ObjectRecord, PartRecord, UploadRecord,
};
use crate::version_entry::VersionEntry;

/// What `fsck` found. A healthy index has every problem count at zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Objects checked.
    pub objects: u64,
    /// Multipart parts checked.
    pub parts: u64,
    /// Chunk records checked.
    pub chunks: u64,
    /// Chunks whose refcount differs from the references counted.
    pub refcount_drift: u64,
    /// References to chunks that are missing or being deleted.
    pub dangling: u64,
    /// Chunks whose state disagrees with their refcount or the GC queue.
    pub bad_state: u64,
    /// Chunks located in packs the index does not know.
    pub unknown_packs: u64,
    /// Manifest segments no object or part owns.
    pub stray_segments: u64,
    /// Object lock records of versions that do not exist.
    pub stray_locks: u64,
    /// Keys whose current object is not their newest version, or that have none although
    /// their newest version is an object.
    pub version_order: u64,
    /// Packs whose live accounting (chunks located in them, their bytes) or deletion
    /// state differs from a recount.
    pub pack_drift: u64,
    /// Counters (stats table) that differ from a recount.
    pub stats_drift: u64,
    /// Records that fail to decode or verify (checksum, layout, bounds), by key in
    /// `problems`; the check goes on past each.
    pub damaged: u64,
    /// Human-readable details of the first problems found.
    pub problems: Vec<String>,
}

impl FsckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.refcount_drift == 0
            && self.dangling == 0
            && self.bad_state == 0
            && self.unknown_packs == 0
            && self.stray_segments == 0
            && self.stray_locks == 0
            && self.version_order == 0
            && self.pack_drift == 0
            && self.stats_drift == 0
            && self.damaged == 0
    }

    fn damaged(&mut self, what: String, e: &crate::Error) {
        self.damaged += 1;
        self.problem(format!("damaged {what}: {e}"));
    }

    fn problem(&mut self, msg: String) {
        if self.problems.len() < 100 {
            self.problems.push(msg);
        }
    }
}

impl Index {
    /// Recounts references from every object and part manifest and compares them with
    /// the chunk records, the GC queue, the pack table and the counters.
    ///
    /// A record that cannot be decoded is reported by its key (`damaged`) and skipped;
    /// the references it held then show up as drift on the chunks it named.
    ///
    /// # Errors
    /// [`crate::Error::Index`] when redb itself fails (its tree cannot be walked).
    pub(crate) fn fsck(&self) -> Result<FsckReport> {
        let txn = self.db.begin_read()?;
        let mut report = FsckReport::default();
        let manifests = txn.open_table(MANIFESTS)?;
        let mut counted: BTreeMap<ChunkId, u64> = BTreeMap::new();
        let mut owned: BTreeSet<u64> = BTreeSet::new();
        let mut logical = 0u64;

        // Every object version holds its own references: current ones in `objects`,
        // noncurrent ones in `versions` (delete markers hold none).
        let mut noncurrent = (0u64, 0u64, 0u64);
        let mut versions: Vec<(String, ObjectRecord)> = Vec::new();
        let mut present: BTreeSet<(String, String, u64)> = BTreeSet::new();
        // Per key: the current object's seq, and the newest entry in `versions`.
        let mut current: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut newest: BTreeMap<(String, String), (u64, bool)> = BTreeMap::new();
        for r in txn.open_table(OBJECTS)?.iter()? {
            let (k, v) = r?;
            let (b, key) = k.value();
            match ObjectRecord::decode(v.value()) {
                Ok(rec) => {
                    report.objects += 1;
                    present.insert((b.to_owned(), key.to_owned(), rec.version.seq));
                    current.insert((b.to_owned(), key.to_owned()), rec.version.seq);
                    versions.push((format!("{b}/{key}"), rec));
                }
                Err(e) => report.damaged(format!("object {b}/{key}"), &e),
            }
        }
        for r in txn.open_table(VERSIONS)?.iter()? {
            let (k, v) = r?;
            let (b, key, vk) = k.value();
            let entry = VersionEntry::decode(v.value());
            if let Ok(e) = &entry {
                newest
                    .entry((b.to_owned(), key.to_owned()))
                    .or_insert((e.version().seq, matches!(e, VersionEntry::Marker(_))));
            }
            match entry {
                Ok(VersionEntry::Object(rec)) => {
                    present.insert((b.to_owned(), key.to_owned(), rec.version.seq));
                    noncurrent.0 += 1;
                    noncurrent.1 += rec.size;
                    versions.push((format!("{b}/{key} version {}", rec.version), rec));
                }
                Ok(VersionEntry::Marker(_)) => noncurrent.2 += 1,
                Err(e) => report.damaged(format!("version {vk} of {b}/{key}"), &e),
            }
        }
        // A key's current object is its newest version; with none, its newest is a marker.
        for ((b, key), (seq, marker)) in &newest {
            let bad = match current.get(&(b.clone(), key.clone())) {
                Some(cur) => cur <= seq,
                None => !marker,
            };
            if bad {
                report.version_order += 1;
                report.problem(format!(
                    "{b}/{key}: the current object is not its newest version (newest {seq:016x}, \
                     marker {marker}, current {:?})",
                    current.get(&(b.clone(), key.clone()))
                ));
            }
        }
        for r in txn.open_table(LOCKS)?.iter()? {
            let (k, v) = r?;
            let (b, key, seq) = k.value();
            if let Err(e) = crate::lock::LockRecord::decode(v.value()) {
                report.damaged(format!("lock of version {seq:016x} of {b}/{key}"), &e);
            } else if !present.contains(&(b.to_owned(), key.to_owned(), seq)) {
                report.stray_locks += 1;
                report.problem(format!(
                    "lock of {b}/{key} names version {seq:016x}, which is gone"
                ));
            }
        }
        for (what, rec) in versions {
            owned.insert(rec.manifest.id);
            logical += rec.size;
            let slices = match read_manifest(&manifests, rec.manifest) {
                Ok(s) => s,
                Err(e) => {
                    report.damaged(format!("manifest {} of {what}", rec.manifest.id), &e);
                    continue;
                }
            };
            let len: u64 = slices.iter().map(|s| u64::from(s.len)).sum();
            if len != rec.size {
                report.dangling += 1;
                report.problem(format!(
                    "{what}: manifest covers {len} bytes, size {}",
                    rec.size
                ));
            }
            for (id, n) in slice_counts(&slices) {
                *counted.entry(id).or_insert(0) += n;
            }
        }
        for r in txn.open_table(PARTS)?.iter()? {
            let (k, v) = r?;
            let (upload, part) = k.value();
            let rec = match PartRecord::decode(v.value()) {
                Ok(rec) => rec,
                Err(e) => {
                    report.damaged(format!("part {part} of upload {upload}"), &e);
                    continue;
                }
            };
            owned.insert(rec.manifest.id);
            report.parts += 1;
            match read_manifest(&manifests, rec.manifest) {
                Ok(slices) => {
                    for (id, n) in slice_counts(&slices) {
                        *counted.entry(id).or_insert(0) += n;
                    }
                }
                Err(e) => report.damaged(
                    format!(
                        "manifest {} of part {part} of upload {upload}",
                        rec.manifest.id
                    ),
                    &e,
                ),
            }
        }
        for r in txn.open_table(BUCKETS)?.iter()? {
            let (k, v) = r?;
            if let Err(e) = BucketRecord::decode(v.value()) {
                report.damaged(format!("bucket {}", k.value()), &e);
            }
        }
        for r in txn.open_table(UPLOADS)?.iter()? {
            let (k, v) = r?;
            if let Err(e) = UploadRecord::decode(v.value()) {
                report.damaged(format!("upload {}", k.value()), &e);
            }
        }
        for r in manifests.iter()? {
            let (k, _) = r?;
            if !owned.contains(&k.value().0) {
                report.stray_segments += 1;
                report.problem(format!("manifest segment {:?} has no owner", k.value()));
            }
        }

        let packs = txn.open_table(PACKS)?;
        let queue = txn.open_table(GC_QUEUE)?;
        let mut queued: BTreeSet<(u64, [u8; 32])> = BTreeSet::new();
        for r in queue.iter()? {
            let (k, _) = r?;
            let (t, id) = k.value();
            queued.insert((t, *id));
        }
        let (mut unique, mut live, mut stored, mut live_stored) = (0u64, 0u64, 0u64, 0u64);
        let mut overhead = 0u64;
        let mut pack_recs = BTreeMap::new();
        for r in packs.iter()? {
            let (k, v) = r?;
            match crate::records::PackRecord::decode(v.value()) {
                Ok(p) => {
                    stored += p.size;
                    pack_recs.insert(k.value(), p);
                }
                Err(e) => report.damaged(format!("pack record {:032x}", k.value()), &e),
            }
        }
        let mut located: BTreeMap<u128, (u32, u64)> = BTreeMap::new();
        for r in txn.open_table(CHUNKS)?.iter()? {
            let (k, v) = r?;
            let id = ChunkId(*k.value());
            let rec = match ChunkRecord::decode(v.value()) {
                Ok(rec) => rec,
                Err(e) => {
                    report.damaged(format!("chunk record {id}"), &e);
                    counted.remove(&id);
                    continue;
                }
            };
            report.chunks += 1;
            let want = counted.remove(&id).unwrap_or(0);
            if rec.refcount != want {
                report.refcount_drift += 1;
                report.problem(format!(
                    "chunk {id}: refcount {} but {want} references",
                    rec.refcount
                ));
            }
            if want > 0 && rec.state == ChunkState::Deleting {
                report.dangling += 1;
                report.problem(format!("chunk {id} is referenced but being deleted"));
            }
            let state_ok = match rec.state {
                ChunkState::Live => rec.refcount > 0,
                ChunkState::Zero { since_ms } => {
                    rec.refcount == 0 && queued.remove(&(since_ms, id.0))
                }
                ChunkState::Deleting => rec.refcount == 0,
            };
            if !state_ok {
                report.bad_state += 1;
                report.problem(format!(
                    "chunk {id}: state {:?} with refcount {}",
                    rec.state, rec.refcount
                ));
            }
            let len = super::stored_len(&rec.location);
            match &rec.location {
                Location::Pack { pack, .. } => {
                    if packs.get(*pack)?.is_none() {
                        report.unknown_packs += 1;
                        report.problem(format!("chunk {id} in unknown pack {pack:032x}"));
                    }
                    let e = located.entry(*pack).or_default();
                    e.0 += 1;
                    e.1 += len;
                }
                Location::Inline(data) => stored += data.len() as u64,
            }
            if rec.refcount > 0 {
                unique += u64::from(rec.raw_len);
                live += 1;
                live_stored += len;
            }
        }
        for (id, n) in counted {
            report.dangling += 1;
            report.problem(format!("chunk {id}: {n} references but no chunk record"));
        }
        for (t, id) in queued {
            report.bad_state += 1;
            report.problem(format!(
                "gc queue entry ({t}, {}) has no zero-ref chunk",
                ChunkId(id)
            ));
        }

        for (id, p) in &pack_recs {
            let (n, bytes) = located.get(id).copied().unwrap_or_default();
            if n > 0 {
                overhead += crate::pack::overhead(p.chunks);
            }
            if (p.live_chunks, p.live_bytes) != (n, bytes) {
                report.pack_drift += 1;
                report.problem(format!(
                    "pack {id:032x}: records {} live chunks ({} bytes), {n} ({bytes} bytes) located in it",
                    p.live_chunks, p.live_bytes
                ));
            }
            if p.deleting_since_ms.is_some() && n > 0 {
                report.pack_drift += 1;
                report.problem(format!(
                    "pack {id:032x} is being deleted but {n} chunks are located in it"
                ));
            }
        }

        let recount = Stats {
            logical_bytes: logical,
            objects: report.objects,
            noncurrent_versions: noncurrent.0,
            noncurrent_bytes: noncurrent.1,
            delete_markers: noncurrent.2,
            unique_bytes: unique,
            chunks: live,
            stored_bytes: stored,
            live_stored_bytes: live_stored,
            pack_overhead_bytes: overhead,
        };
        let recorded = super::read_stats(&txn)?;
        if recount != recorded {
            report.stats_drift += 1;
            report.problem(format!(
                "stats recorded {recorded:?}, recounted {recount:?}"
            ));
        }
        for p in super::usage::verify(&txn)? {
            report.stats_drift += 1;
            report.problem(p);
        }
        Ok(report)
    }
}
