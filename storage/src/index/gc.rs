//! GC's transactions and the read-only views it plans from (the orchestration, with
//! backend deletes, is `crate::gc`). Every removal re-checks, inside its own write
//! transaction, the condition it was planned on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::{
    CHUNKS, GC_QUEUE, Index, META, NewPack, ORPHAN_PACKS, PACKS, UPLOADS, add_stat, now_ms,
    pack_live, stat, stored_len,
};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::records::{ChunkRecord, ChunkState, Location, PackRecord, UploadRecord};

/// `meta` key present in a snapshot copy of the index (and so in an index restored
/// from one): the time the snapshot was taken, ms (little endian u64).
pub(crate) const KEY_SNAPSHOT_TAKEN: &str = "snapshot_taken_ms";

/// `meta` key: the identity of the backing store this index owns (32 hex chars), the
/// same as in the store's marker blob.
pub(crate) const KEY_STORE_ID: &str = "store_id";

/// What one chunk-collection transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChunkSweep {
    /// Chunk records removed.
    pub(crate) removed: u64,
    /// Their stored bytes (the inline ones leave the index now; pack bytes leave with
    /// their pack's deletion or compaction).
    pub(crate) stored: u64,
    /// Of those, inline bytes.
    pub(crate) inline: u64,
    /// Past the grace period but pinned by an upload: left for a later run.
    pub(crate) pinned: u64,
    /// The last queue entry looked at; `None` when the queue held nothing eligible.
    pub(crate) last: Option<(u64, [u8; 32])>,
}

/// A chunk the index locates in a given pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocatedChunk {
    pub(crate) id: ChunkId,
    pub(crate) offset: u64,
    pub(crate) stored_len: u32,
    pub(crate) crc: u32,
    pub(crate) raw_len: u32,
}

/// Compaction moving one chunk: from (pack, offset) to an offset of the new pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Move {
    pub(crate) id: ChunkId,
    pub(crate) from: (u128, u64),
    /// Stored length where it was.
    pub(crate) from_len: u32,
    pub(crate) to_offset: u64,
    /// Stored length and CRC32C where it goes (they differ from the old ones only when
    /// `rekey` re-encoded it).
    pub(crate) stored_len: u32,
    pub(crate) crc: u32,
}

/// Packs by state: (empty and not yet retired, being deleted, all others).
pub(crate) type PacksByState = (
    Vec<PackDeletion>,
    Vec<PackDeletion>,
    Vec<(u128, PackRecord)>,
);

/// A pack GC may delete: no chunk located in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackDeletion {
    pub(crate) id: u128,
    pub(crate) size: u64,
}

impl Index {
    /// Removes up to `max` chunks that reached refcount 0 at or before `cutoff_ms` (queue
    /// entries after `after`), each only if it is *still* at 0 with the same queue time
    /// and no upload pins it (`inflight`). Ids claimed from `inflight` are appended to
    /// `doomed`; the caller releases them once this future resolves, success or not.
    pub(crate) fn collect_chunks(
        &self,
        cutoff_ms: u64,
        after: Option<(u64, [u8; 32])>,
        max: usize,
        doomed: Arc<Mutex<Vec<ChunkId>>>,
    ) -> impl Future<Output = Result<ChunkSweep>> + use<> {
        let inflight = Arc::clone(&self.inflight);
        self.committer.submit(move |txn| {
            let mut queue = txn.open_table(GC_QUEUE)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut packs = txn.open_table(PACKS)?;
            let start = after.unwrap_or((0, [0; 32]));
            let mut entries = Vec::with_capacity(max.min(4096));
            for r in queue.range((start.0, &start.1)..=(cutoff_ms, &[0xffu8; 32]))? {
                let (k, _) = r?;
                let (since, id) = k.value();
                if after == Some((since, *id)) {
                    continue;
                }
                entries.push((since, *id));
                if entries.len() >= max {
                    break;
                }
            }
            let mut sweep = ChunkSweep {
                last: entries.last().copied(),
                ..ChunkSweep::default()
            };
            // Per-pack deltas, applied once per pack at the end (one record write per
            // pack, not per chunk).
            let mut left: HashMap<u128, (u32, u64)> = HashMap::new();
            for (since, id) in entries {
                let rec = chunks
                    .get(&id)?
                    .map(|v| ChunkRecord::decode(v.value()))
                    .transpose()?;
                // The re-check: still unreferenced, since the time it was queued with.
                let Some(rec) = rec
                    .filter(|r| r.refcount == 0 && r.state == ChunkState::Zero { since_ms: since })
                else {
                    continue; // a stale entry is fsck's to report, not GC's to act on
                };
                if !inflight.doom(ChunkId(id)) {
                    sweep.pinned += 1;
                    continue;
                }
                doomed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(ChunkId(id));
                queue.remove((since, &id))?;
                chunks.remove(&id)?;
                let len = stored_len(&rec.location);
                match rec.location {
                    Location::Pack { pack, .. } => {
                        let e = left.entry(pack).or_default();
                        e.0 += 1;
                        e.1 += len;
                    }
                    Location::Inline(_) => sweep.inline += len,
                }
                sweep.removed += 1;
                sweep.stored += len;
            }
            for (pack, delta) in left {
                pack_live(txn, &mut packs, pack, -1, delta)?;
            }
            drop((queue, chunks, packs));
            add_stat(txn, stat::STORED_BYTES, -i128::from(sweep.inline))?;
            Ok(sweep)
        })
    }

    /// Which of a pack's table entries the index still locates in that pack.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn located_in(
        &self,
        pack: u128,
        entries: &[crate::pack::PackEntry],
    ) -> Result<Vec<LocatedChunk>> {
        let txn = self.db.begin_read()?;
        let chunks = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        for e in entries {
            let Some(v) = chunks.get(&e.id.0)? else {
                continue;
            };
            let rec = ChunkRecord::decode(v.value())?;
            if let Location::Pack {
                pack: p,
                offset,
                stored_len,
            } = rec.location
                && p == pack
                && offset == e.offset
            {
                out.push(LocatedChunk {
                    id: e.id,
                    offset,
                    stored_len,
                    crc: rec.crc,
                    raw_len: rec.raw_len,
                });
            }
        }
        Ok(out)
    }

    /// Chunks the index locates in `pack`, by a scan of every chunk record (when the
    /// pack's own table cannot be read).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn located_by_scan(&self, pack: u128) -> Result<Vec<LocatedChunk>> {
        self.chunk_records_where(|id, rec| match rec.location {
            Location::Pack {
                pack: p,
                offset,
                stored_len,
            } if p == pack => Some(LocatedChunk {
                id,
                offset,
                stored_len,
                crc: rec.crc,
                raw_len: rec.raw_len,
            }),
            _ => None,
        })
    }

    /// Compaction's switch: registers the new (durable) pack and, in this one
    /// transaction, moves every chunk that is *still* where it was copied from;
    /// returns the chunks and stored bytes moved. A chunk that moved or went meanwhile
    /// stays as it is (its copy in the new pack is dead space).
    pub(crate) fn relocate(
        &self,
        new: NewPack,
        moves: Arc<Vec<Move>>,
    ) -> impl Future<Output = Result<(u64, u64)>> + use<> {
        self.committer.submit(move |txn| {
            super::register_packs(txn, &[new])?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut packs = txn.open_table(PACKS)?;
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut live_delta = 0i128;
            let mut left: HashMap<u128, (u32, u64)> = HashMap::new();
            let mut changed = Vec::new();
            for m in moves.iter() {
                let Some(mut rec) = chunks
                    .get(&m.id.0)?
                    .map(|v| ChunkRecord::decode(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                let here = matches!(rec.location,
                    Location::Pack { pack, offset, .. } if (pack, offset) == m.from);
                if !here {
                    continue;
                }
                let len = u64::from(m.stored_len);
                let e = left.entry(m.from.0).or_default();
                e.0 += 1;
                e.1 += u64::from(m.from_len);
                if rec.refcount > 0 {
                    live_delta += i128::from(m.stored_len) - i128::from(m.from_len);
                }
                rec.location = Location::Pack {
                    pack: new.id,
                    offset: m.to_offset,
                    stored_len: m.stored_len,
                };
                rec.crc = m.crc;
                chunks.insert(&m.id.0, rec.encode().as_slice())?;
                changed.push(super::journal::chunk(m.id));
                n += 1;
                bytes += len;
            }
            drop(chunks);
            super::journal::append(txn, changed)?;
            for (pack, delta) in left {
                pack_live(txn, &mut packs, pack, -1, delta)?;
            }
            if n > 0 {
                let moved = (u32::try_from(n).unwrap_or(u32::MAX), bytes);
                pack_live(txn, &mut packs, new.id, 1, moved)?;
            }
            if live_delta != 0 {
                super::add_stat(txn, super::stat::LIVE_STORED_BYTES, live_delta)?;
            }
            Ok((n, bytes))
        })
    }

    /// Marks chunks damaged (their stored bytes fail verification), each only if the
    /// index still locates it at the place that was read; returns how many it marked.
    /// Reads of them then fail fast, and the next upload of the same content stores
    /// it again (`add_refs`).
    pub(crate) fn mark_damaged(
        &self,
        found: Vec<(ChunkId, Option<(u128, u64)>)>,
    ) -> impl Future<Output = Result<u64>> + use<> {
        self.committer.submit(move |txn| {
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut n = 0;
            for (id, at) in &found {
                let Some(mut rec) = chunks
                    .get(&id.0)?
                    .map(|v| ChunkRecord::decode(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                let here = match (&rec.location, at) {
                    (Location::Pack { pack, offset, .. }, Some(at)) => (*pack, *offset) == *at,
                    (Location::Inline(_), None) => true,
                    _ => false,
                };
                if here && !rec.damaged {
                    rec.damaged = true;
                    chunks.insert(&id.0, rec.encode().as_slice())?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Entries in the GC queue (chunks at refcount 0).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn gc_queue_len(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(GC_QUEUE)?.len()?)
    }

    /// Chunks GC would remove with this cutoff (a dry run): count and stored bytes.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn collectable(&self, cutoff_ms: u64) -> Result<(u64, u64)> {
        let txn = self.db.begin_read()?;
        let queue = txn.open_table(GC_QUEUE)?;
        let chunks = txn.open_table(CHUNKS)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for r in queue.range((0u64, &[0u8; 32])..=(cutoff_ms, &[0xffu8; 32]))? {
            let (k, _) = r?;
            if let Some(v) = chunks.get(k.value().1)?
                && let Ok(rec) = ChunkRecord::decode(v.value())
                && rec.refcount == 0
            {
                n += 1;
                bytes += stored_len(&rec.location);
            }
        }
        Ok((n, bytes))
    }

    /// Packs by state: (empty and not yet retired, being deleted, all others).
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn packs_by_state(&self) -> Result<PacksByState> {
        let (mut empty, mut deleting, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for (id, rec) in self.packs()? {
            let d = PackDeletion { id, size: rec.size };
            match (rec.deleting_since_ms, rec.live_chunks) {
                (Some(_), _) => deleting.push(d),
                (None, 0) => empty.push(d),
                (None, _) => rest.push((id, rec)),
            }
        }
        Ok((empty, deleting, rest))
    }

    /// Marks packs with no live chunk as being deleted (each re-checked); returns the
    /// ones marked. Their blobs may go once reads older than this commit have ended.
    pub(crate) fn retire_packs(
        &self,
        candidates: Vec<u128>,
    ) -> impl Future<Output = Result<Vec<u128>>> + use<> {
        let inflight = Arc::clone(&self.inflight);
        self.committer.submit(move |txn| {
            let mut packs = txn.open_table(PACKS)?;
            let now = now_ms();
            let mut marked = Vec::new();
            for &id in &candidates {
                let Some(mut rec) = packs
                    .get(id)?
                    .map(|v| PackRecord::decode(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                if rec.live_chunks != 0 || rec.deleting_since_ms.is_some() {
                    continue;
                }
                rec.deleting_since_ms = Some(now);
                packs.insert(id, rec.encode().as_slice())?;
                inflight.retiring(id);
                marked.push(id);
            }
            Ok(marked)
        })
    }

    /// Drops the record of a pack being deleted whose blob is gone; returns its size.
    pub(crate) fn forget_pack(&self, id: u128) -> impl Future<Output = Result<u64>> + use<> {
        self.committer.submit(move |txn| {
            let mut packs = txn.open_table(PACKS)?;
            let rec = packs
                .get(id)?
                .map(|v| PackRecord::decode(v.value()))
                .transpose()?
                .ok_or_else(|| Error::corrupt("index", format!("pack {id:032x} vanished")))?;
            if rec.deleting_since_ms.is_none() || rec.live_chunks != 0 {
                return Err(Error::corrupt(
                    "index",
                    format!("pack {id:032x} is not being deleted"),
                ));
            }
            packs.remove(id)?;
            drop(packs);
            add_stat(txn, stat::STORED_BYTES, -i128::from(rec.size))?;
            Ok(rec.size)
        })
    }

    /// Drops a recorded orphan (its blob is gone, or it turned out to be known).
    pub(crate) fn forget_orphan(&self, id: u128) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            txn.open_table(ORPHAN_PACKS)?.remove(id)?;
            Ok(())
        })
    }

    /// Pack ids the index knows (recorded) and the recorded orphans.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn known_pack_ids(&self) -> Result<(HashSet<u128>, HashSet<u128>)> {
        let txn = self.db.begin_read()?;
        let mut known = HashSet::new();
        for r in txn.open_table(PACKS)?.iter()? {
            known.insert(r?.0.value());
        }
        let mut orphans = HashSet::new();
        for r in txn.open_table(ORPHAN_PACKS)?.iter()? {
            orphans.insert(r?.0.value());
        }
        Ok((known, orphans))
    }

    /// Whether a pack id is recorded (known) now.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn pack_known(&self, id: u128) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(PACKS)?.get(id)?.is_some())
    }

    /// Ids of multipart uploads initiated before `before_ms`.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn uploads_initiated_before(&self, before_ms: u64) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for r in txn.open_table(UPLOADS)?.iter()? {
            let (k, v) = r?;
            match UploadRecord::decode(v.value()) {
                Ok(up) if up.initiated_ms < before_ms => out.push(k.value().to_owned()),
                Ok(_) => {}
                Err(e) => tracing::warn!(upload = k.value(), error = %e, "damaged upload record"),
            }
        }
        Ok(out)
    }

    /// The identity of the store this index owns, if it recorded one.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn store_id(&self) -> Result<Option<String>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(KEY_STORE_ID)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Records the identity of the store this index owns.
    pub(crate) fn set_store_id(&self, id: String) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            txn.open_table(META)?.insert(KEY_STORE_ID, id.as_bytes())?;
            Ok(())
        })
    }

    /// When the snapshot this index was restored from was taken (`None`: not restored).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn restored_snapshot_ms(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(KEY_SNAPSHOT_TAKEN)?
            .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes)))
    }
}
