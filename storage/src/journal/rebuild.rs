//! `rebuild-index`: a new index from the backing store alone.
//!
//! 1. The newest complete snapshot whose manifest and every part verify is restored
//!    (a damaged one is reported and the one before it is tried; with none, the
//!    journal is replayed from its start).
//! 2. Journal segments are replayed in order, skipping entries the snapshot or an
//!    overlapping segment already applied. A damaged segment is reported and skipped;
//!    the sequence numbers nobody supplied are reported as gaps.
//! 3. Every pack present is listed and its table read. Each chunk a restored object
//!    references is checked against the tables: where the journal's location is not
//!    (any longer) right, the chunk is found in whichever pack holds it. An object
//!    with a chunk found nowhere is not restored, and is reported.
//! 4. Refcounts, pack accounting and counters are recounted from what was restored,
//!    and the index is written in one transaction.
//!
//! A blob from another store is refused ([`Error::JournalForeign`]), as is a sealed blob
//! without its key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::entry::{Change, Entry};
use super::format::{self, Kind};
use super::{SEGMENTS_PREFIX, SNAPSHOTS_PREFIX};
use crate::blob::BlobStore;
use crate::config::StoreConfig;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::index::Rebuilt;
use crate::lock::LockRecord;
use crate::pack;
use crate::records::{BucketRecord, ChunkRecord, ChunkState, Location, ObjectRecord, Slice};
use crate::store::STORE_ID_BLOB;
use crate::version_entry::VersionEntry;

/// Packs whose tables are read concurrently.
const PACK_READS: usize = 8;

/// What a rebuild restored, and what it could not.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// The store's identity.
    pub store_id: String,
    /// The snapshot restored (its sequence number).
    pub snapshot_seq: Option<u64>,
    /// Snapshots that could not be used, with the reason.
    pub snapshots_skipped: Vec<String>,
    /// Journal segments read.
    pub segments: u64,
    /// Entries applied from them.
    pub entries_replayed: u64,
    /// Segments that could not be used, with the reason.
    pub segments_skipped: Vec<String>,
    /// Sequence ranges no readable segment or snapshot held (changes lost).
    pub gaps: Vec<(u64, u64)>,
    /// The last sequence number applied.
    pub last_seq: u64,
    /// Buckets restored.
    pub buckets: u64,
    /// Current objects restored.
    pub objects: u64,
    /// Noncurrent object versions and delete markers restored.
    pub versions: u64,
    /// Their logical bytes.
    pub logical_bytes: u64,
    /// Distinct chunks they reference.
    pub chunks: u64,
    /// Packs in the store.
    pub packs: u64,
    /// Packs whose table could not be read (not registered; nothing is located in them).
    pub packs_unreadable: Vec<String>,
    /// Chunks found in another pack than the journal said (a move not yet journaled).
    pub chunks_relocated: u64,
    /// Chunks with no journal record found in a pack's table.
    pub chunks_from_packs: u64,
    /// Objects not restored: a chunk they need is in no pack, or their manifest is
    /// incomplete (part of it was in a lost segment).
    pub objects_lost: Vec<(String, String)>,
    /// Objects dropped because their bucket was not restored.
    pub orphan_objects: u64,
}

impl RebuildReport {
    /// Whether everything the store held was restored (no skipped blob, gap, lost object
    /// or unreadable pack).
    pub fn complete(&self) -> bool {
        self.snapshots_skipped.is_empty()
            && self.segments_skipped.is_empty()
            && self.gaps.is_empty()
            && self.packs_unreadable.is_empty()
            && self.objects_lost.is_empty()
            && self.orphan_objects == 0
    }
}

/// A restored version with its manifest.
type Restored = (VersionEntry, Vec<Slice>);

/// The state being rebuilt.
#[derive(Default)]
struct State {
    meta: BTreeMap<String, Vec<u8>>,
    buckets: BTreeMap<String, BucketRecord>,
    objects: BTreeMap<(String, String), (ObjectRecord, Vec<Slice>)>,
    /// Noncurrent versions (with their slices) and delete markers, by seq.
    versions: BTreeMap<(String, String, u64), (VersionEntry, Vec<Slice>)>,
    /// Object lock records by (bucket, key, seq).
    locks: BTreeMap<(String, String, u64), LockRecord>,
    /// Bucket configurations by (bucket, kind).
    configs: BTreeMap<(String, String), Vec<u8>>,
    identities: BTreeMap<(String, String), Vec<u8>>,
    chunks: HashMap<ChunkId, ChunkRecord>,
    applied: u64,
}

impl State {
    fn apply(&mut self, e: Entry) {
        match e.change {
            Change::Bucket { name, record } => {
                self.buckets.insert(name, record);
            }
            Change::BucketGone { name } => {
                self.configs.retain(|(b, _), _| *b != name);
                self.buckets.remove(&name);
            }
            Change::Identity { kind, name, value } => {
                if value.is_empty() {
                    self.identities.remove(&(kind, name));
                } else {
                    self.identities.insert((kind, name), value);
                }
            }
            Change::BucketConfig {
                bucket,
                kind,
                value,
            } => {
                if value.is_empty() {
                    self.configs.remove(&(bucket, kind));
                } else {
                    self.configs.insert((bucket, kind), value);
                }
            }
            Change::Object {
                bucket,
                key,
                record,
                slices,
            } => {
                self.objects.insert((bucket, key), (record, slices));
            }
            Change::ObjectSlices {
                bucket,
                key,
                slices,
            } => {
                // Without its head (lost in a gap) there is nothing to extend; the size
                // check below drops an object whose manifest stayed short.
                if let Some((_, s)) = self.objects.get_mut(&(bucket, key)) {
                    s.extend(slices);
                }
            }
            Change::ObjectGone { bucket, key } => {
                self.objects.remove(&(bucket, key));
            }
            Change::Chunk { id, record } => {
                self.chunks.insert(id, record);
            }
            Change::Meta { key, value } => {
                self.meta.insert(key, value);
            }
            Change::ChunkGone { id } => {
                self.chunks.remove(&id);
            }
            // Resolved before shipping; never in a segment.
            Change::ChunkRef { .. } => {}
            Change::Demote { bucket, key } => {
                if let Some((rec, slices)) = self.objects.remove(&(bucket.clone(), key.clone())) {
                    let seq = rec.version.seq;
                    self.versions
                        .insert((bucket, key, seq), (VersionEntry::Object(rec), slices));
                }
            }
            Change::Promote { bucket, key, seq } => {
                if let Some((VersionEntry::Object(rec), slices)) =
                    self.versions.remove(&(bucket.clone(), key.clone(), seq))
                {
                    self.objects.insert((bucket, key), (rec, slices));
                }
            }
            Change::Marker {
                bucket,
                key,
                marker,
            } => {
                let seq = marker.version.seq;
                self.versions.insert(
                    (bucket, key, seq),
                    (VersionEntry::Marker(marker), Vec::new()),
                );
            }
            Change::VersionGone { bucket, key, seq } => {
                self.versions.remove(&(bucket, key, seq));
            }
            Change::Lock {
                bucket,
                key,
                seq,
                record,
            } => {
                if record.is_empty() {
                    self.locks.remove(&(bucket, key, seq));
                } else {
                    self.locks.insert((bucket, key, seq), record);
                }
            }
        }
    }
}

/// Reads and opens one journal blob, retrying nothing itself (the backend retries).
async fn read_blob(
    blobs: &dyn BlobStore,
    kind: Kind,
    name: &str,
    store_id: &str,
    keys: Option<&Keyring>,
) -> Result<(format::Header, Vec<u8>)> {
    let blob = blobs.get(name).await?;
    format::open(kind, name, &blob, Some(store_id), keys)
}

fn entries(raw: &[u8]) -> Result<Vec<Entry>> {
    format::items(raw)?.into_iter().map(Entry::decode).collect()
}

/// Whether an error means "this blob is unusable" (reported, skipped) rather than
/// "stop" (backend down, wrong store, missing key).
fn skippable(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. } | Error::UnsupportedFormat { .. } | Error::BlobNotFound(_)
    )
}

/// Restores the snapshot at `seq`.
async fn restore_snapshot(
    blobs: &dyn BlobStore,
    seq: u64,
    store_id: &str,
    keys: Option<&Keyring>,
) -> Result<State> {
    let manifest = super::snapshot_manifest_name(seq);
    let (head, raw) = read_blob(blobs, Kind::SnapshotManifest, &manifest, store_id, keys).await?;
    let items = format::items(&raw)?;
    let bad = |d: &str| Error::corrupt("journal blob", format!("{manifest}: {d}"));
    let (total, parts) = items.split_first().ok_or_else(|| bad("empty manifest"))?;
    let total = u64::from_le_bytes((*total).try_into().map_err(|_| bad("entry count"))?);
    if parts.len() != head.count as usize || head.first != seq {
        return Err(bad("part count or sequence disagrees with its header"));
    }
    let mut state = State::default();
    let mut seen = 0u64;
    for (n, item) in parts.iter().enumerate() {
        let (len, crc) = match *item {
            [l @ .., c0, c1, c2, c3] if l.len() == 8 => (
                u64::from_le_bytes(l.try_into().expect("8")),
                u32::from_le_bytes([*c0, *c1, *c2, *c3]),
            ),
            _ => return Err(bad("part descriptor")),
        };
        let name = super::snapshot_part_name(seq, n as u32);
        let blob = blobs.get(&name).await?;
        if blob.len() as u64 != len || crc32c::crc32c(&blob) != crc {
            return Err(Error::corrupt(
                "journal blob",
                format!("{name}: differs from the snapshot manifest"),
            ));
        }
        let (h, raw) = format::open(Kind::SnapshotPart, &name, &blob, Some(store_id), keys)?;
        if h.first != seq {
            return Err(bad("a part of another snapshot"));
        }
        for e in entries(&raw)? {
            seen += 1;
            state.apply(e);
        }
    }
    if seen != total {
        return Err(bad("entry count disagrees with its parts"));
    }
    state.applied = seq;
    Ok(state)
}

/// Finds the store's identity: its marker blob, else the newest journal blob's header.
async fn store_identity(blobs: &dyn BlobStore) -> Result<String> {
    match blobs.get(STORE_ID_BLOB).await {
        Ok(b) => return Ok(String::from_utf8_lossy(&b).trim().to_owned()),
        Err(Error::BlobNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    for prefix in [SNAPSHOTS_PREFIX, SEGMENTS_PREFIX] {
        if let Some(b) = blobs.list(prefix).await?.last() {
            let kind = super::kind_of(&b.name).unwrap_or(Kind::Segment);
            // Only the header is read; every blob is then checked against this id.
            if let Ok(id) = format::store_id(kind, &b.name, &blobs.get(&b.name).await?) {
                return Ok(id);
            }
        }
    }
    Err(Error::InvalidArgument(
        "the store has no s3dedup-store-id marker and no journal: nothing to rebuild from".into(),
    ))
}

/// Rebuilds the index at `index_path` (which must not exist) from `blobs`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the index exists or the store holds no journal;
/// [`Error::JournalForeign`]; [`Error::KeyMissing`] / [`Error::EncryptionRequired`];
/// backend errors (after the backend's own retries); [`Error::Index`].
pub async fn rebuild_index(
    index_path: &Path,
    blobs: Arc<dyn BlobStore>,
    cfg: &StoreConfig,
) -> Result<RebuildReport> {
    if std::fs::metadata(index_path).is_ok_and(|m| m.len() > 0) {
        return Err(Error::InvalidArgument(format!(
            "{} already exists: rebuild into a new data dir",
            index_path.display()
        )));
    }
    let keys = cfg.keys.as_deref();
    let store_id = store_identity(blobs.as_ref()).await?;
    let mut report = RebuildReport {
        store_id: store_id.clone(),
        ..RebuildReport::default()
    };

    // 1. The newest snapshot that verifies.
    let snaps = blobs.list(SNAPSHOTS_PREFIX).await?;
    let complete: std::collections::BTreeSet<u64> = snaps
        .iter()
        .filter(|b| b.name.ends_with("/manifest"))
        .filter_map(|b| super::parse_snapshot_name(&b.name))
        .collect();
    let mut state = State::default();
    for &seq in complete.iter().rev() {
        match restore_snapshot(blobs.as_ref(), seq, &store_id, keys).await {
            Ok(s) => {
                state = s;
                report.snapshot_seq = Some(seq);
                break;
            }
            Err(e) if skippable(&e) => {
                tracing::warn!(seq, error = %e, "rebuild: snapshot unusable, trying an older one");
                report
                    .snapshots_skipped
                    .push(format!("snapshot {seq}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }

    // 2. The journal after it.
    let mut segments: Vec<(u64, u64, String)> = blobs
        .list(SEGMENTS_PREFIX)
        .await?
        .into_iter()
        .filter_map(|b| super::parse_segment_name(&b.name).map(|(f, l)| (f, l, b.name)))
        .collect();
    segments.sort();
    let mut max_seen = state
        .applied
        .max(complete.iter().next_back().copied().unwrap_or(0));
    for (_, last, name) in segments {
        max_seen = max_seen.max(last);
        if last <= state.applied {
            continue;
        }
        let opened = read_blob(blobs.as_ref(), Kind::Segment, &name, &store_id, keys)
            .await
            .and_then(|(h, raw)| Ok((h, entries(&raw)?)));
        let (_, list) = match opened {
            Ok(x) => x,
            Err(e) if skippable(&e) => {
                tracing::warn!(segment = %name, error = %e, "rebuild: segment unusable, skipped");
                report.segments_skipped.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        report.segments += 1;
        for e in list {
            if e.seq <= state.applied {
                continue;
            }
            if e.seq > state.applied + 1 {
                report.gaps.push((state.applied + 1, e.seq - 1));
            }
            state.applied = e.seq;
            report.entries_replayed += 1;
            state.apply(e);
        }
    }
    report.last_seq = state.applied;

    // 3. Reconcile with the packs present.
    let needed: HashSet<ChunkId> = state
        .objects
        .values()
        .map(|(_, s)| s)
        .chain(state.versions.values().map(|(_, s)| s))
        .flat_map(|s| s.iter().map(|s| s.chunk))
        .collect();
    let listed = blobs.list(pack::PACKS_PREFIX).await?;
    report.packs = listed.len() as u64;
    let tables: Vec<(u128, u64, Result<Vec<pack::PackEntry>>)> = futures::stream::iter(
        listed
            .into_iter()
            .filter_map(|b| pack::parse_blob_name(&b.name).map(|id| (id, b.size))),
    )
    .map(|(id, size)| {
        let blobs = Arc::clone(&blobs);
        async move {
            let t = read_table(blobs.as_ref(), id, size, keys).await;
            match t {
                Err(e) if !skippable(&e) && !matches!(e, Error::KeyMissing { .. }) => Err(e),
                t => Ok((id, size, t)),
            }
        }
    })
    .buffer_unordered(PACK_READS)
    .try_collect()
    .await?;
    let mut packs: BTreeMap<u128, (u64, u32)> = BTreeMap::new();
    let mut found: HashMap<ChunkId, (u128, pack::PackEntry)> = HashMap::new();
    let mut at: HashSet<(u128, u64, ChunkId)> = HashSet::new();
    for (id, size, t) in tables {
        match t {
            Ok(list) => {
                packs.insert(id, (size, list.len() as u32));
                for e in list {
                    if needed.contains(&e.id) {
                        at.insert((id, e.offset, e.id));
                        found.entry(e.id).or_insert((id, e));
                    }
                }
            }
            Err(e) => report
                .packs_unreadable
                .push(format!("{}: {e}", pack::blob_name(id))),
        }
    }
    let mut chunks: HashMap<ChunkId, ChunkRecord> = HashMap::new();
    let mut lost: HashSet<ChunkId> = HashSet::new();
    for id in &needed {
        let rec = state.chunks.get(id);
        let ok = match rec.map(|r| &r.location) {
            Some(Location::Inline(data)) => crate::chunk::checksum(data) == rec.expect("some").crc,
            Some(Location::Pack { pack, offset, .. }) => at.contains(&(*pack, *offset, *id)),
            None => false,
        };
        if ok {
            chunks.insert(*id, rec.expect("checked").clone());
            continue;
        }
        let Some((pack_id, e)) = found.get(id) else {
            lost.insert(*id);
            continue;
        };
        let raw_len = match rec {
            Some(r) => {
                report.chunks_relocated += 1;
                r.raw_len
            }
            None => {
                report.chunks_from_packs += 1;
                raw_len_of(blobs.as_ref(), *pack_id, e.offset).await?
            }
        };
        chunks.insert(
            *id,
            ChunkRecord {
                refcount: 0,
                state: ChunkState::Live,
                raw_len,
                crc: e.crc,
                location: Location::Pack {
                    pack: *pack_id,
                    offset: e.offset,
                    stored_len: e.stored_len,
                },
                damaged: false,
            },
        );
    }
    // Current objects, then noncurrent versions and delete markers: each object
    // version is restored only when its bucket, its whole manifest and every chunk it
    // needs are there.
    let restorable = |report: &mut RebuildReport,
                      bucket: &str,
                      key: &str,
                      rec: &ObjectRecord,
                      slices: &[Slice]| {
        if !state.buckets.contains_key(bucket) {
            report.orphan_objects += 1;
            return false;
        }
        let covered: u64 = slices.iter().map(|s| u64::from(s.len)).sum();
        if covered != rec.size {
            tracing::error!(%bucket, %key, version = %rec.version, covered, size = rec.size,
                "rebuild: object not restored, its manifest is incomplete (journal gap)");
            report
                .objects_lost
                .push((bucket.to_owned(), key.to_owned()));
            return false;
        }
        if slices.iter().any(|s| lost.contains(&s.chunk)) {
            tracing::error!(%bucket, %key, version = %rec.version,
                "rebuild: object not restored, a chunk it needs is in no pack");
            report
                .objects_lost
                .push((bucket.to_owned(), key.to_owned()));
            return false;
        }
        report.logical_bytes += rec.size;
        true
    };
    // Every surviving version of a key, current or not, newest first; then the newest
    // becomes the current object if it is one, as S3 has it. (Filtered separately, a key
    // whose current object was lost would have no current object over a surviving older
    // version, and a lost Demote would leave an old current object under a newer marker.)
    let mut by_key: BTreeMap<(String, String), Vec<Restored>> = BTreeMap::new();
    for ((bucket, key), (record, slices)) in std::mem::take(&mut state.objects) {
        if restorable(&mut report, &bucket, &key, &record, &slices) {
            by_key
                .entry((bucket, key))
                .or_default()
                .push((VersionEntry::Object(record), slices));
        }
    }
    for ((bucket, key, _), (entry, slices)) in std::mem::take(&mut state.versions) {
        let keep = match &entry {
            VersionEntry::Object(rec) => restorable(&mut report, &bucket, &key, rec, &slices),
            VersionEntry::Marker(_) => state.buckets.contains_key(&bucket),
        };
        if keep {
            by_key
                .entry((bucket, key))
                .or_default()
                .push((entry, slices));
        }
    }
    let mut objects = Vec::new();
    let mut versions = Vec::new();
    let mut present: HashSet<(String, String, u64)> = HashSet::new();
    for ((bucket, key), mut list) in by_key {
        list.sort_by_key(|(e, _)| std::cmp::Reverse(e.version().seq));
        for (i, (entry, slices)) in list.into_iter().enumerate() {
            present.insert((bucket.clone(), key.clone(), entry.version().seq));
            match entry {
                VersionEntry::Object(rec) if i == 0 => {
                    report.objects += 1;
                    objects.push((bucket.clone(), key.clone(), rec, slices));
                }
                entry => {
                    report.versions += 1;
                    versions.push((bucket.clone(), key.clone(), entry, slices));
                }
            }
        }
    }
    // A lock whose version was not restored goes with it.
    let locks: Vec<_> = std::mem::take(&mut state.locks)
        .into_iter()
        .filter(|(k, _)| present.contains(k))
        .collect();
    report.buckets = state.buckets.len() as u64;

    // The keys must be the store's before anything is written: a wrong key fails to
    // open the key records (or, when it opened nothing at all, left none restored).
    match (state.meta.get("keys"), keys) {
        (Some(rec), Some(k)) => {
            crate::crypto::KeyRecords::decode(rec)?.unlock(k)?;
        }
        (Some(_), None) => {
            return Err(Error::EncryptionRequired {
                detail: "the journal holds key records".into(),
            });
        }
        (None, Some(_))
            if !report.snapshots_skipped.is_empty() || !report.segments_skipped.is_empty() =>
        {
            return Err(Error::WrongKey {
                detail: "no key record in the store's journal opens with the configured keys \
                         (a wrong key, or the journal is damaged): nothing was written"
                    .into(),
            });
        }
        _ => {}
    }

    // 4. Write it.
    let configs = std::mem::take(&mut state.configs)
        .into_iter()
        .filter(|((b, _), _)| state.buckets.contains_key(b))
        .collect();
    let rebuilt = Rebuilt {
        meta: state.meta,
        store_id,
        buckets: state.buckets.into_iter().collect(),
        objects,
        versions,
        locks,
        configs,
        identities: state.identities.into_iter().collect(),
        chunks,
        packs,
        // Past every blob in the store (see `Index::journal_catch_up`): the first
        // shipment's snapshot never shares a name with one already there.
        next_seq: max_seen + 2,
        chunker: cfg.chunker,
    };
    let path = index_path.to_owned();
    let cache = cfg.index_cache;
    report.chunks = tokio::task::spawn_blocking(move || rebuilt.write(&path, cache)).await??;
    Ok(report)
}

/// Reads pack `id`'s table (two ranged reads: trailer, then table).
async fn read_table(
    blobs: &dyn BlobStore,
    id: u128,
    size: u64,
    keys: Option<&Keyring>,
) -> Result<Vec<pack::PackEntry>> {
    let name = pack::blob_name(id);
    let tail_at = size
        .checked_sub(pack::TRAILER_LEN as u64)
        .ok_or_else(|| Error::corrupt("pack", "too short for a trailer"))?;
    let tail = blobs
        .get_range(&name, tail_at, pack::TRAILER_LEN as u64)
        .await?;
    let trailer = pack::parse_trailer(&tail, size)?;
    let table = blobs
        .get_range(&name, trailer.table_offset, trailer.table_len())
        .await?;
    pack::parse_table(&table, &trailer, id, keys)
}

/// A stored chunk's raw length, from its header.
async fn raw_len_of(blobs: &dyn BlobStore, pack_id: u128, offset: u64) -> Result<u32> {
    let head = blobs
        .get_range(
            &pack::blob_name(pack_id),
            offset,
            crate::chunk::HEADER_LEN as u64,
        )
        .await?;
    head.get(4..8)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| Error::corrupt("chunk", "header is truncated"))
}
