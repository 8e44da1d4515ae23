//! The reference-counting primitives every write goes through (see the module docs of
//! `index`): refcounts, the GC queue, per-pack live accounting and the counters that
//! follow them, all inside the caller's write transaction.

use std::collections::{BTreeMap, HashMap};

use redb::{ReadableTable, WriteTransaction};

use super::{CHUNKS, GC_QUEUE, NewChunk, NewPack, PACKS, add_stat, journal, now_ms, stat};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::records::{ChunkRecord, ChunkState, Location, PackRecord, Slice};

/// Counts how many slices name each chunk.
pub(super) fn slice_counts<'a>(
    slices: impl IntoIterator<Item = &'a Slice>,
) -> BTreeMap<ChunkId, u64> {
    let mut counts = BTreeMap::new();
    for s in slices {
        *counts.entry(s.chunk).or_insert(0) += 1;
    }
    counts
}

/// Registers the packs an upload wrote (first commit that references a pack wins),
/// with no live chunk yet: adopting a chunk into a pack counts it (`add_refs`).
pub(super) fn register_packs(txn: &WriteTransaction, packs: &[NewPack]) -> Result<()> {
    let mut t = txn.open_table(PACKS)?;
    let mut added = 0i128;
    for p in packs {
        if t.get(p.id)?.is_none() {
            let rec = PackRecord {
                size: p.size,
                chunks: p.chunks,
                committed_ms: now_ms(),
                live_chunks: 0,
                live_bytes: 0,
                deleting_since_ms: None,
            };
            t.insert(p.id, rec.encode().as_slice())?;
            added += i128::from(p.size);
        }
    }
    drop(t);
    add_stat(txn, stat::STORED_BYTES, added)
}

/// Stored bytes of a chunk (in its pack, or inline in the index).
pub(crate) fn stored_len(loc: &Location) -> u64 {
    match loc {
        Location::Pack { stored_len, .. } => u64::from(*stored_len),
        Location::Inline(data) => data.len() as u64,
    }
}

/// Moves a pack's live accounting by `n` chunks of `bytes` stored bytes in all (`sign`
/// `+1` when they are located into it, `-1` when they leave). A pack reaching zero live chunks
/// is left for GC to retire (only GC marks packs deleting); the overhead of packs
/// holding live chunks is counted in `stats` (it is not garbage; an empty pack's is).
pub(crate) fn pack_live(
    txn: &WriteTransaction,
    packs: &mut redb::Table<'_, u128, &'static [u8]>,
    pack: u128,
    sign: i8,
    (n, bytes): (u32, u64),
) -> Result<()> {
    let mut rec = packs
        .get(pack)?
        .map(|v| PackRecord::decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::corrupt("index", format!("chunk in unknown pack {pack:032x}")))?;
    let bad = || Error::corrupt("pack record", format!("{pack:032x}: live accounting"));
    if sign > 0 {
        if rec.deleting_since_ms.is_some() {
            return Err(Error::corrupt(
                "index",
                format!("chunk located into pack {pack:032x}, which is being deleted"),
            ));
        }
        let was = rec.live_chunks;
        rec.live_chunks = rec.live_chunks.checked_add(n).ok_or_else(bad)?;
        rec.live_bytes = rec.live_bytes.checked_add(bytes).ok_or_else(bad)?;
        if was == 0 && n > 0 {
            let o = crate::pack::overhead(rec.chunks);
            add_stat(txn, stat::PACK_OVERHEAD_BYTES, i128::from(o))?;
        }
    } else {
        let was = rec.live_chunks;
        rec.live_chunks = rec.live_chunks.checked_sub(n).ok_or_else(bad)?;
        rec.live_bytes = rec.live_bytes.checked_sub(bytes).ok_or_else(bad)?;
        if was > 0 && rec.live_chunks == 0 {
            let o = crate::pack::overhead(rec.chunks);
            add_stat(txn, stat::PACK_OVERHEAD_BYTES, -i128::from(o))?;
        }
    }
    packs.insert(pack, rec.encode().as_slice())?;
    Ok(())
}

/// Adds references. A chunk missing from the index (or being deleted) is adopted from
/// `new_chunks` (this upload wrote it); otherwise the upload cannot commit. A chunk
/// known damaged is replaced by this upload's copy when it wrote one (repair).
pub(super) fn add_refs(
    txn: &WriteTransaction,
    counts: &BTreeMap<ChunkId, u64>,
    new_chunks: &HashMap<ChunkId, NewChunk>,
) -> Result<()> {
    let mut chunks = txn.open_table(CHUNKS)?;
    let mut queue = txn.open_table(GC_QUEUE)?;
    let mut packs = txn.open_table(PACKS)?;
    let (mut unique, mut live, mut stored, mut live_stored) = (0i128, 0i128, 0i128, 0i128);
    let mut changed = Vec::new();
    for (id, &n) in counts {
        let existing = chunks
            .get(&id.0)?
            .map(|v| ChunkRecord::decode(v.value()))
            .transpose()?;
        let new = new_chunks.get(id);
        let rec = match existing {
            Some(mut rec) if rec.state != ChunkState::Deleting => {
                if let ChunkState::Zero { since_ms } = rec.state {
                    queue.remove((since_ms, &id.0))?;
                    unique += i128::from(rec.raw_len);
                    live += 1;
                    live_stored += i128::from(stored_len(&rec.location));
                }
                rec.refcount += n;
                rec.state = ChunkState::Live;
                if rec.damaged
                    && let Some(new) = new
                {
                    // Repair: this upload stored the content again; the damaged copy
                    // leaves its pack's live accounting (GC reclaims the space).
                    let old = stored_len(&rec.location);
                    match &rec.location {
                        Location::Pack { pack, .. } => {
                            pack_live(txn, &mut packs, *pack, -1, (1, old))?;
                        }
                        Location::Inline(_) => stored -= i128::from(old),
                    }
                    live_stored -= i128::from(old);
                    adopt_location(txn, &mut packs, &new.location, &mut stored)?;
                    live_stored += i128::from(stored_len(&new.location));
                    rec.location = new.location.clone();
                    rec.crc = new.crc;
                    rec.damaged = false;
                    changed.push(journal::chunk(*id));
                }
                rec
            }
            _ => {
                let new = new.ok_or(Error::ChunkGone(*id))?;
                unique += i128::from(new.raw_len);
                live += 1;
                adopt_location(txn, &mut packs, &new.location, &mut stored)?;
                live_stored += i128::from(stored_len(&new.location));
                let rec = ChunkRecord {
                    refcount: n,
                    state: ChunkState::Live,
                    raw_len: new.raw_len,
                    crc: new.crc,
                    location: new.location.clone(),
                    damaged: false,
                };
                changed.push(journal::chunk(*id));
                rec
            }
        };
        chunks.insert(&id.0, rec.encode().as_slice())?;
    }
    drop((chunks, queue, packs));
    journal::append(txn, changed)?;
    add_stat(txn, stat::UNIQUE_BYTES, unique)?;
    add_stat(txn, stat::CHUNKS, live)?;
    add_stat(txn, stat::STORED_BYTES, stored)?;
    add_stat(txn, stat::LIVE_STORED_BYTES, live_stored)
}

/// Counts a newly located chunk: into its pack's live accounting, or (inline) into
/// the stored bytes.
fn adopt_location(
    txn: &WriteTransaction,
    packs: &mut redb::Table<'_, u128, &'static [u8]>,
    loc: &Location,
    stored: &mut i128,
) -> Result<()> {
    match loc {
        Location::Pack {
            pack, stored_len, ..
        } => pack_live(txn, packs, *pack, 1, (1, u64::from(*stored_len))),
        Location::Inline(data) => {
            *stored += data.len() as i128;
            Ok(())
        }
    }
}

/// Drops references; chunks reaching zero are queued for GC.
pub(super) fn release_refs(txn: &WriteTransaction, counts: &BTreeMap<ChunkId, u64>) -> Result<()> {
    let mut chunks = txn.open_table(CHUNKS)?;
    let mut queue = txn.open_table(GC_QUEUE)?;
    let now = now_ms();
    let (mut unique, mut live, mut live_stored) = (0i128, 0i128, 0i128);
    for (id, &n) in counts {
        let mut rec = chunks
            .get(&id.0)?
            .map(|v| ChunkRecord::decode(v.value()))
            .transpose()?
            .ok_or_else(|| Error::corrupt("index", format!("released chunk {id} is missing")))?;
        if rec.refcount < n || rec.state != ChunkState::Live {
            return Err(Error::corrupt(
                "index",
                format!(
                    "chunk {id} has refcount {} ({:?}), releasing {n}",
                    rec.refcount, rec.state
                ),
            ));
        }
        rec.refcount -= n;
        if rec.refcount == 0 {
            rec.state = ChunkState::Zero { since_ms: now };
            queue.insert((now, &id.0), ())?;
            unique -= i128::from(rec.raw_len);
            live -= 1;
            live_stored -= i128::from(stored_len(&rec.location));
        }
        chunks.insert(&id.0, rec.encode().as_slice())?;
    }
    drop((chunks, queue));
    add_stat(txn, stat::UNIQUE_BYTES, unique)?;
    add_stat(txn, stat::CHUNKS, live)?;
    add_stat(txn, stat::LIVE_STORED_BYTES, live_stored)
}
