//! Pack compaction, a phase of GC (DESIGN.md "Garbage collection").
//!
//! A pack whose live fraction (stored bytes of the chunks the index locates in it,
//! over its chunk bytes) is below `compact_threshold`, or which is small (under a
//! quarter of `pack_target`: packs of small multipart parts), is rewritten: packs are
//! taken in batches of at most `pack_target` live bytes; every live chunk of a batch
//! is read, verified (CRC32C and its id re-derived) and copied verbatim into one
//! new pack (re-encoded only when it is not sealed under the active key: that is how
//! `rekey` rewrites packs), which is made durable first; then one transaction moves every chunk that
//! is still where it was copied from. The old packs, left without live chunks, are
//! then deleted like any empty pack: only after every read that started before the
//! switch has ended (read leases, `inflight`).
//!
//! A chunk that fails verification is never dropped or "repaired" here: it is marked
//! damaged (reads fail fast, a re-upload of the content stores it again), its pack is
//! left as it is, and the run reports it. A crash at any point leaves either the old
//! locations (the new pack is then unknown to the index and swept after the grace
//! period) or the new ones (the old packs are then empty and deleted by the next run).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gc::{GcPhase, GcReport};
use crate::index::{Move, NewPack};
use crate::inflight::Holds;
use crate::pack::{self, PackEncoder};
use crate::records::PackRecord;
use crate::store::Store;

/// A pack worth rewriting.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) id: u128,
    pub(crate) rec: PackRecord,
    /// Below the live-fraction threshold (a lone small pack alone is not worth it), or
    /// to be rewritten whatever its size (`rekey`).
    pub(crate) sparse: bool,
}

/// Groups candidates (in id order) into batches of at most `target` live bytes, one
/// pack at least.
pub(crate) fn batches(mut candidates: Vec<Candidate>, target: u64) -> Vec<Vec<Candidate>> {
    candidates.sort_by_key(|c| c.id);
    let mut batches: Vec<Vec<Candidate>> = Vec::new();
    let mut live = 0u64;
    for c in candidates {
        match batches.last_mut() {
            Some(b) if live + c.rec.live_bytes <= target => {
                live += c.rec.live_bytes;
                b.push(c);
            }
            _ => {
                live = c.rec.live_bytes;
                batches.push(vec![c]);
            }
        }
    }
    batches
}

/// Live fraction of a pack: live stored bytes over its chunk bytes.
fn live_fraction(rec: &PackRecord) -> f64 {
    let payload = rec.size.saturating_sub(pack::overhead(rec.chunks));
    if payload == 0 {
        return 1.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let f = rec.live_bytes as f64 / payload as f64;
    f
}

impl Store {
    /// Compacts sparse and small packs (see the module docs); returns the packs it
    /// emptied (to be retired and deleted by the caller).
    pub(crate) async fn compact(
        &self,
        threshold: f64,
        dry_run: bool,
        report: &mut GcReport,
        progress: &(dyn Fn(GcPhase, &GcReport) + Send + Sync),
    ) -> Result<Vec<u128>> {
        let target = self.config().pack_target as u64;
        let small = target / 4;
        let (_, _, packs) = self.index().packs_by_state()?;
        let candidates: Vec<Candidate> = packs
            .into_iter()
            .filter(|(_, rec)| rec.live_chunks > 0)
            .filter_map(|(id, rec)| {
                let sparse = live_fraction(&rec) < threshold;
                (sparse || rec.size < small).then_some(Candidate { id, rec, sparse })
            })
            .collect();
        let mut emptied = Vec::new();
        for batch in batches(candidates, target) {
            if batch.len() == 1 && !batch[0].sparse {
                continue; // one small, full pack: rewriting it gains nothing
            }
            if dry_run {
                report.packs_compacted += batch.len() as u64;
                report.compaction_rewritten_bytes +=
                    batch.iter().map(|c| c.rec.live_bytes).sum::<u64>();
                continue;
            }
            emptied.extend(self.compact_batch(&batch, report).await?);
            progress(GcPhase::Compact, report);
        }
        Ok(emptied)
    }

    /// Rewrites one batch into one new pack; returns the source packs it moved
    /// chunks out of.
    pub(crate) async fn compact_batch(
        &self,
        batch: &[Candidate],
        report: &mut GcReport,
    ) -> Result<Vec<u128>> {
        let index = Arc::clone(self.index());
        let codec = index.codec().clone();
        let mut holds = Holds::new(&index.inflight);
        let (mut enc, magic) = PackEncoder::start_sealed(codec.keys.clone());
        holds.pack(enc.id());
        let mut writer = self.blobs().writer(&pack::blob_name(enc.id())).await?;
        writer.write(magic).await?;
        let mut moves = Vec::new();
        let mut sources = Vec::new();
        for c in batch {
            let blob = match self.blobs().get(&pack::blob_name(c.id)).await {
                Ok(b) => b,
                Err(Error::BlobNotFound(name)) => {
                    tracing::error!(pack = %name, "compaction: a pack the index names is missing; left as it is (run fsck --read-data)");
                    report.damaged_packs += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let entries = match pack::parse_sealed(&blob, c.id, codec.keys.as_deref()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(pack = format!("{:032x}", c.id), error = %e, "compaction: pack table unreadable; left as it is");
                    report.damaged_packs += 1;
                    continue;
                }
            };
            let located = index.located_in(c.id, &entries)?;
            let mut damaged = Vec::new();
            let mut copies = Vec::with_capacity(located.len());
            for l in &located {
                let range = usize::try_from(l.offset).ok().and_then(|o| {
                    let end = o.checked_add(l.stored_len as usize)?;
                    (end <= blob.len()).then_some(o..end)
                });
                let stored = range.map(|r| blob.slice(r));
                let verified = stored.and_then(|s| {
                    Some((codec.verify(&l.id, s.clone(), l.crc, l.raw_len).ok()?, s))
                });
                match verified {
                    Some((_, s)) if codec.is_current(&s) => copies.push((l, s, l.crc)),
                    Some((raw, _)) => {
                        report.reencoded_chunks += 1;
                        let s = codec.encode(&l.id, &raw);
                        let crc = crate::chunk::checksum(&s);
                        copies.push((l, s, crc));
                    }
                    None => damaged.push((l.id, Some((c.id, l.offset)))),
                }
            }
            if !damaged.is_empty() {
                tracing::error!(
                    pack = format!("{:032x}", c.id),
                    chunks = damaged.len(),
                    "compaction: chunks fail verification; marked damaged, pack left as it is"
                );
                report.damaged_chunks += damaged.len() as u64;
                report.damaged_packs += 1;
                index.mark_damaged(damaged).await?;
                continue;
            }
            for (l, stored, crc) in copies {
                let (e, bytes) = enc.push_stored(l.id, stored, crc);
                writer.write(bytes).await?;
                moves.push(Move {
                    id: l.id,
                    from: (c.id, l.offset),
                    from_len: l.stored_len,
                    to_offset: e.offset,
                    stored_len: e.stored_len,
                    crc,
                });
            }
            sources.push(c.id);
        }
        if moves.is_empty() {
            // Nothing to copy (all damaged, or all gone): the unfinished writer
            // publishes nothing. Sources without live chunks are retired by the caller.
            drop(writer);
            return Ok(sources);
        }
        let body_len = enc.len();
        let (id, tail, entries) = enc.finish();
        let size = body_len + tail.len() as u64;
        writer.write(tail).await?;
        writer.finish().await?;
        let new = NewPack {
            id,
            size,
            chunks: entries.len() as u32,
        };
        let (moved, bytes) = index.relocate(new, Arc::new(moves)).await?;
        drop(holds);
        report.packs_compacted += sources.len() as u64;
        report.compaction_new_packs += 1;
        report.compaction_moved_chunks += moved;
        report.compaction_rewritten_bytes += bytes;
        Ok(sources)
    }
}
