//! `rekey`: rewrites every stored chunk that is not sealed under the active key (an
//! older key after a rotation, or plaintext written before encryption was turned on),
//! through compaction (`compact`): a pack whose trailer names another key (or a plain
//! table) is rewritten whole, its chunks re-encoded, the new pack made durable before
//! one transaction moves them; the emptied packs are then deleted as GC deletes them
//! (after the reads that started before). Inline chunks are re-encoded in the index.
//! A crash leaves either the old packs or the new ones in use, as for compaction;
//! running it again finishes the job. When a run reports `stale_packs_left: 0` and
//! `stale_inline_left: 0`, older keys may be removed from the key file.

use std::sync::Arc;

use crate::compact::{Candidate, batches};
use crate::error::{Error, Result};
use crate::gc::{GcPhase, GcReport};
use crate::index::InlineRewrite;
use crate::pack;
use crate::records::Location;
use crate::store::Store;

/// What a rekey run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// The key everything is sealed under afterwards (`None`: no encryption).
    pub active_key: Option<u16>,
    /// Packs with live chunks whose trailer was read.
    pub packs_checked: u64,
    /// Packs found sealed under another key (or plain).
    pub packs_stale: u64,
    /// Chunks re-encoded while their packs were rewritten.
    pub chunks_reencoded: u64,
    /// New packs written.
    pub new_packs: u64,
    /// Inline chunks re-encoded.
    pub inline_reencoded: u64,
    /// Old packs deleted (the rest wait for older reads and go at the next GC).
    pub packs_deleted: u64,
    /// Chunks that failed verification (marked damaged, left where they are).
    pub damaged_chunks: u64,
    /// Stale packs still in use after the run (damaged or unreadable ones).
    pub stale_packs_left: u64,
    /// Inline chunks not under the active key after the run.
    pub stale_inline_left: u64,
    /// Journal blobs (older snapshots and segments) deleted after the journal was
    /// snapshotted under the active key.
    pub journal_pruned: u64,
}

impl Store {
    /// Rewrites what is not sealed under the active key (module docs);
    /// `progress` is called after each batch.
    ///
    /// # Errors
    /// [`Error::Index`] or a backend error; a chunk or pack that fails verification is
    /// reported, not an error.
    pub async fn rekey(
        &self,
        progress: &(dyn Fn(&RekeyReport) + Send + Sync),
    ) -> Result<RekeyReport> {
        let index = Arc::clone(self.index());
        // Never beside a GC run (see `Index::maintenance`).
        let _running = index.maintenance.lock().await;
        let codec = index.codec().clone();
        let mut report = RekeyReport {
            active_key: codec.active_key(),
            ..RekeyReport::default()
        };
        // Inline chunks first: one transaction.
        let stale_inline = index.chunk_records_where(|id, rec| match rec.location {
            Location::Inline(stored) if !codec.is_current(&stored) => {
                Some((id, stored, rec.crc, rec.raw_len))
            }
            _ => None,
        })?;
        let stale_inline_count = stale_inline.len() as u64;
        let mut rewrites = Vec::new();
        for (id, stored, crc, raw_len) in stale_inline {
            match codec.verify(&id, stored.into(), crc, raw_len) {
                Ok(raw) => rewrites.push(InlineRewrite {
                    id,
                    old_crc: crc,
                    stored: codec.encode(&id, &raw).to_vec(),
                }),
                Err(e) => {
                    tracing::error!(chunk = %id, error = %e, "rekey: inline chunk fails verification; left as it is");
                    report.damaged_chunks += 1;
                }
            }
        }
        report.inline_reencoded = index.replace_inline(rewrites).await?;
        progress(&report);

        let stale = self.stale_packs(&mut report).await?;
        let stale_count = stale.len() as u64;
        let mut gc = GcReport::default();
        let mut emptied = Vec::new();
        for batch in batches(stale, self.config().pack_target as u64) {
            emptied.extend(self.compact_batch(&batch, &mut gc).await?);
            report.chunks_reencoded = gc.reencoded_chunks;
            report.new_packs = gc.compaction_new_packs;
            report.damaged_chunks += std::mem::take(&mut gc.damaged_chunks);
            progress(&report);
        }
        if !emptied.is_empty() {
            self.delete_empty_packs(&mut gc, &|_: GcPhase, _: &GcReport| {})
                .await?;
            report.packs_deleted = gc.packs_deleted;
        }
        // What is left needs no second pass: while this run holds the maintenance lock
        // nothing else moves chunks, and everything new is sealed under the active key,
        // so the stale packs left are those not emptied (damaged or unreadable), and the
        // stale inline chunks those not replaced.
        emptied.sort_unstable();
        emptied.dedup();
        report.stale_packs_left = stale_count.saturating_sub(emptied.len() as u64);
        report.stale_inline_left = stale_inline_count.saturating_sub(report.inline_reencoded);
        // The journal too: a fresh snapshot under the active key, and every older
        // snapshot and covered segment (sealed under older keys) pruned.
        report.journal_pruned = self.reseal_journal().await?;
        progress(&report);
        Ok(report)
    }

    /// Packs holding live chunks whose trailer names another key than the active one.
    async fn stale_packs(&self, report: &mut RekeyReport) -> Result<Vec<Candidate>> {
        let active = self.index().codec().active_key();
        let (_, _, packs) = self.index().packs_by_state()?;
        let mut stale = Vec::new();
        for (id, rec) in packs.into_iter().filter(|(_, r)| r.live_chunks > 0) {
            report.packs_checked += 1;
            let name = pack::blob_name(id);
            let Some(at) = rec.size.checked_sub(pack::TRAILER_LEN as u64) else {
                continue;
            };
            let tail = match self
                .blobs()
                .get_range(&name, at, pack::TRAILER_LEN as u64)
                .await
            {
                Ok(t) => t,
                Err(Error::BlobNotFound(_)) => {
                    tracing::error!(pack = %name, "rekey: a pack the index names is missing");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match pack::parse_trailer(&tail, rec.size) {
                Ok(t) if t.key == active => {}
                Ok(_) => {
                    report.packs_stale += 1;
                    stale.push(Candidate {
                        id,
                        rec,
                        sparse: true,
                    });
                }
                Err(e) => {
                    tracing::error!(pack = %name, error = %e, "rekey: pack trailer unreadable; left as it is");
                }
            }
        }
        Ok(stale)
    }
}
