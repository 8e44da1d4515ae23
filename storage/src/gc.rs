//! Garbage collection (DESIGN.md invariant 3 and "Garbage collection").
//!
//! No mark phase: refcounts are exact, so GC works from the queue of chunks at refcount
//! 0 with the time each got there. One run, in order:
//!
//! 1. **Stale multipart uploads** initiated more than `multipart_expiry` ago are aborted
//!    (their parts release their chunks, which join the queue now).
//! 2. **Chunks.** The cutoff is `now − grace`, taken *after* step 1 and compared with
//!    the time each chunk reached zero — never with the time a scan started. Batches of
//!    chunks queued before the cutoff are removed, each in a write transaction that
//!    re-checks it is still at 0 with the same queue time and that no upload pins it
//!    (`inflight`); a chunk leaves its pack's live accounting there. The cutoff is never
//!    later than the oldest journal entry not yet shipped to the store, so a rebuild
//!    from the store never restores an object whose chunks GC already removed.
//! 3. **Packs** with no live chunk are marked deleting (one transaction), their blobs are
//!    deleted once no read that started before that mark is still running, and only
//!    then are their records dropped. A crash between the steps leaves a pack marked
//!    deleting: the next run deletes the blob (idempotent) and drops the record. Then
//!    **compaction** rewrites sparse and small packs (`compact`); the packs it empties
//!    are deleted the same way.
//! 4. **Recorded orphans** (packs of uploads that never committed) older than the grace
//!    period, judged by the creation time in the pack id, are deleted, then forgotten.
//! 5. **Unknown packs** (in the store, unknown to the index: uploads killed before they
//!    could record their packs) older than the grace period are deleted — only after the
//!    store's identity marker is checked again to be this index's, never a pack being
//!    written now (`inflight`), and, in an index restored from a snapshot, never one
//!    created later than a day before that snapshot (it may hold data written after it;
//!    such packs are kept and counted until the index is reconciled with the store).
//!
//! Every step can be interrupted at any point: what it removed is durable, what it had
//! not yet removed is found again by the next run. Nothing referenced is ever touched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::ChunkSweep;
use crate::pack;
use crate::store::Store;

/// How unknown packs are protected in an index restored from a snapshot: packs created
/// later than this before the snapshot are kept (an upload may have run that long).
const RESTORED_MARGIN_MS: u64 = 24 * 3600 * 1000;

/// What a GC run does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcOptions {
    /// How long a chunk stays at refcount 0 (and an orphan or unknown pack exists)
    /// before it may be removed.
    pub grace: Duration,
    /// Multipart uploads older than this are aborted.
    pub multipart_expiry: Duration,
    /// Report what would be done, change nothing.
    pub dry_run: bool,
    /// Chunks removed per transaction (bounds how long one GC commit holds the writer).
    pub batch: usize,
    /// Packs whose live fraction is below this are compacted (0 = never).
    pub compact_threshold: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            multipart_expiry: Duration::from_secs(7 * 24 * 3600),
            dry_run: false,
            batch: 2000,
            compact_threshold: 0.5,
        }
    }
}

/// The phase a run is in (for progress reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPhase {
    /// Aborting stale multipart uploads.
    Uploads,
    /// Removing chunks past the grace period.
    Chunks,
    /// Deleting packs without live chunks.
    Packs,
    /// Rewriting sparse and small packs.
    Compact,
    /// Deleting recorded orphan packs.
    Orphans,
    /// Deleting packs the index does not know.
    Unknown,
    /// Finished.
    Done,
}

impl GcPhase {
    /// Lowercase name (`chunks`, `packs` …).
    pub fn name(self) -> &'static str {
        match self {
            GcPhase::Uploads => "uploads",
            GcPhase::Chunks => "chunks",
            GcPhase::Packs => "packs",
            GcPhase::Compact => "compact",
            GcPhase::Orphans => "orphans",
            GcPhase::Unknown => "unknown",
            GcPhase::Done => "done",
        }
    }
}

/// What a run did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Stale multipart uploads aborted.
    pub uploads_expired: u64,
    /// Chunk records removed.
    pub chunks_removed: u64,
    /// Their stored bytes.
    pub chunk_bytes: u64,
    /// Of those, bytes stored inline in the index (freed at once).
    pub inline_bytes: u64,
    /// Chunks past the grace period left alone because an upload is reusing them.
    pub chunks_pinned: u64,
    /// Pack blobs deleted because no live chunk was left in them.
    pub packs_deleted: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Packs without live chunks still waiting for reads that started before.
    pub packs_waiting: u64,
    /// Recorded orphan packs deleted.
    pub orphans_deleted: u64,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Packs unknown to the index deleted.
    pub unknown_deleted: u64,
    /// Their bytes.
    pub unknown_bytes: u64,
    /// Unknown packs kept because the index was restored from an older snapshot.
    pub unknown_kept: u64,
    /// Delete requests sent to the backing store.
    pub backend_deletes: u64,
    /// Packs compaction rewrote (their live chunks moved to new packs).
    pub packs_compacted: u64,
    /// New packs compaction wrote.
    pub compaction_new_packs: u64,
    /// Chunks compaction moved.
    pub compaction_moved_chunks: u64,
    /// Stored bytes compaction copied (the size of what it kept).
    pub compaction_rewritten_bytes: u64,
    /// Chunks compaction re-encoded because they were not sealed under the active key.
    pub reencoded_chunks: u64,
    /// Chunks that failed verification when compaction read them (marked damaged).
    pub damaged_chunks: u64,
    /// Packs left as they were because they are missing, unreadable or hold damaged
    /// chunks.
    pub damaged_packs: u64,
}

impl GcReport {
    /// Bytes freed in the store and the index (net of what compaction wrote).
    pub fn reclaimed_bytes(&self) -> u64 {
        (self.inline_bytes + self.pack_bytes + self.orphan_bytes + self.unknown_bytes)
            .saturating_sub(self.compaction_rewritten_bytes)
    }

    fn add_sweep(&mut self, s: &ChunkSweep) {
        self.chunks_removed += s.removed;
        self.chunk_bytes += s.stored;
        self.inline_bytes += s.inline;
        self.chunks_pinned += s.pinned;
    }
}

/// What GC has left to do (see [`Store::gc_backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcBacklog {
    /// Chunks at refcount 0 (removable once their grace period has passed).
    pub zero_ref_chunks: u64,
    /// Packs with no live chunk, not yet marked for deletion.
    pub empty_packs: u64,
    /// Packs marked deleting whose blob or record is not gone yet.
    pub deleting_packs: u64,
    /// Recorded orphan packs.
    pub orphan_packs: u64,
    /// Packs the index knows.
    pub packs: u64,
}

/// Milliseconds of a duration, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    /// Runs garbage collection once (see the module docs). `progress` is called after
    /// each step with the phase and the counts so far.
    ///
    /// # Errors
    /// Index and backend errors; what was done before the error stays done (and
    /// consistent), the next run picks up the rest.
    pub async fn gc(
        &self,
        opts: GcOptions,
        progress: &(dyn Fn(GcPhase, &GcReport) + Send + Sync),
    ) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..GcReport::default()
        };
        let index = Arc::clone(self.index());
        // One GC or rekey at a time (see `Index::maintenance`).
        let _running = index.maintenance.lock().await;

        // 1. Stale multipart uploads.
        progress(GcPhase::Uploads, &report);
        let expired =
            index.uploads_initiated_before(now().saturating_sub(ms(opts.multipart_expiry)))?;
        for id in expired {
            if opts.dry_run {
                report.uploads_expired += 1;
                continue;
            }
            match self.abort_upload(&id).await {
                Ok(()) => report.uploads_expired += 1,
                Err(Error::NoSuchUpload(_)) => {} // completed or aborted meanwhile
                Err(e) => return Err(e),
            }
        }

        // 2. Chunks: the grace clock is each chunk's own time at zero. The journal is
        // shipped first, so what was deleted before this run is collectable in it.
        progress(GcPhase::Chunks, &report);
        self.ship_journal().await?;
        // Never past a change the store's journal does not hold yet: a rebuild from the
        // bucket would bring back the object that released the chunk.
        // (The queue range is inclusive: strictly before the entry's millisecond.)
        let unshipped = index
            .journal_state()?
            .oldest_pending_ms
            .map_or(u64::MAX, |t| t.saturating_sub(1));
        let cutoff = now().saturating_sub(ms(opts.grace)).min(unshipped);
        if opts.dry_run {
            let (n, bytes) = index.collectable(cutoff)?;
            report.chunks_removed = n;
            report.chunk_bytes = bytes;
        } else {
            let mut after = None;
            loop {
                let doomed = Arc::new(Mutex::new(Vec::new()));
                let r = index
                    .collect_chunks(cutoff, after, opts.batch.max(1), Arc::clone(&doomed))
                    .await;
                let claimed = std::mem::take(
                    &mut *doomed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                index.inflight.release_doomed(&claimed);
                let sweep = r?;
                report.add_sweep(&sweep);
                progress(GcPhase::Chunks, &report);
                match sweep.last {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
        }

        // 3. Packs without live chunks; then compaction, and the packs it emptied.
        progress(GcPhase::Packs, &report);
        if opts.dry_run {
            let (empty, deleting, _) = index.packs_by_state()?;
            report.packs_deleted = (empty.len() + deleting.len()) as u64;
            report.pack_bytes = empty.iter().chain(&deleting).map(|p| p.size).sum();
        } else {
            self.delete_empty_packs(&mut report, progress).await?;
        }
        if opts.compact_threshold > 0.0 {
            progress(GcPhase::Compact, &report);
            let emptied = self
                .compact(opts.compact_threshold, opts.dry_run, &mut report, progress)
                .await?;
            if !emptied.is_empty() {
                report.packs_waiting = 0; // counted again below
                self.delete_empty_packs(&mut report, progress).await?;
            }
        }

        // 4 and 5 need the store's listing (sizes, and the unknown packs); listed
        // before the set of packs being written is taken, and that before the index
        // is read (see `inflight`).
        progress(GcPhase::Orphans, &report);
        let listed: HashMap<u128, u64> = self
            .blobs()
            .list(pack::PACKS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|b| pack::parse_blob_name(&b.name).map(|id| (id, b.size)))
            .collect();
        let writing = index.inflight.packs_being_written();
        let (known, orphans) = index.known_pack_ids()?;
        let now = now();
        let old_enough = |id: u128| pack::pack_id_ms(id).saturating_add(ms(opts.grace)) <= now;

        // 4. Recorded orphans.
        for &id in &orphans {
            if writing.contains(&id) || !old_enough(id) {
                continue;
            }
            if known.contains(&id) || index.pack_known(id)? {
                // Committed after all (cannot happen today): only the note goes.
                if !opts.dry_run {
                    index.forget_orphan(id).await?;
                }
                continue;
            }
            let size = listed.get(&id).copied().unwrap_or(0);
            report.orphans_deleted += 1;
            report.orphan_bytes += size;
            if !opts.dry_run {
                if listed.contains_key(&id) {
                    self.blobs().delete(&pack::blob_name(id)).await?;
                    report.backend_deletes += 1;
                }
                index.forget_orphan(id).await?;
            }
            progress(GcPhase::Orphans, &report);
        }

        // 5. Unknown packs.
        progress(GcPhase::Unknown, &report);
        let mut unknown: Vec<(u128, u64)> = listed
            .iter()
            .filter(|(id, _)| !known.contains(id) && !orphans.contains(id) && !writing.contains(id))
            .filter(|(id, _)| old_enough(**id))
            .map(|(id, size)| (*id, *size))
            .collect();
        unknown.sort_unstable();
        if !unknown.is_empty() {
            let mine = index.store_id()?;
            let marker = self.store_marker().await?;
            if mine.is_none() || mine != marker {
                return Err(Error::StoreOwnedElsewhere {
                    found: marker.unwrap_or_else(|| "none".into()),
                    expected: mine.unwrap_or_else(|| "none".into()),
                });
            }
            let horizon = index
                .restored_snapshot_ms()?
                .map(|t| t.saturating_sub(RESTORED_MARGIN_MS));
            for (id, size) in unknown {
                if horizon.is_some_and(|h| pack::pack_id_ms(id) >= h) {
                    report.unknown_kept += 1;
                    continue;
                }
                // The index may have learned of it since it was read (a commit).
                if index.pack_known(id)? {
                    continue;
                }
                report.unknown_deleted += 1;
                report.unknown_bytes += size;
                if !opts.dry_run {
                    self.blobs().delete(&pack::blob_name(id)).await?;
                    report.backend_deletes += 1;
                }
                progress(GcPhase::Unknown, &report);
            }
        }
        progress(GcPhase::Done, &report);
        Ok(report)
    }

    /// Retires packs without live chunks and deletes the retired ones no read in
    /// flight may still use (step 3).
    pub(crate) async fn delete_empty_packs(
        &self,
        report: &mut GcReport,
        progress: &(dyn Fn(GcPhase, &GcReport) + Send + Sync),
    ) -> Result<()> {
        let index = self.index();
        let (empty, _, _) = index.packs_by_state()?;
        let marked = index
            .retire_packs(empty.iter().map(|p| p.id).collect())
            .await?;
        index.inflight.retired_durably(&marked);
        let (_, deleting, _) = index.packs_by_state()?;
        for p in deleting {
            if !index.inflight.may_delete(p.id) {
                report.packs_waiting += 1;
                continue;
            }
            self.blobs().delete(&pack::blob_name(p.id)).await?;
            report.backend_deletes += 1;
            report.pack_bytes += index.forget_pack(p.id).await?;
            index.inflight.deleted(p.id);
            report.packs_deleted += 1;
            progress(GcPhase::Packs, report);
        }
        Ok(())
    }

    /// What GC has left to do, from the index: chunks at refcount 0, packs with no
    /// live chunk, packs being deleted, recorded orphans; and packs known.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn gc_backlog(&self) -> Result<GcBacklog> {
        let index = self.index();
        let (empty, deleting, rest) = index.packs_by_state()?;
        let (_, orphans) = index.known_pack_ids()?;
        Ok(GcBacklog {
            zero_ref_chunks: index.gc_queue_len()?,
            empty_packs: empty.len() as u64,
            deleting_packs: deleting.len() as u64,
            orphan_packs: orphans.len() as u64,
            packs: (empty.len() + deleting.len() + rest.len()) as u64,
        })
    }

    /// Chunks pinned by uploads in flight and reads in flight now (for status).
    pub fn inflight_counts(&self) -> (usize, usize) {
        let f = &self.index().inflight;
        (f.pinned(), f.reads())
    }
}

fn now() -> u64 {
    crate::index::now_ms()
}
