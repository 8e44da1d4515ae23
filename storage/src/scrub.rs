//! Scrub: re-reads every pack at a bounded rate and re-derives each stored chunk's
//! SHA-256 (not only its CRC32C), so damage is found before a read needs the data.
//!
//! Packs are visited in id order; after each one the cursor is saved in the index, so
//! a scrub interrupted by a restart (or an error) resumes at the next pack. A chunk
//! whose bytes fail verification is marked damaged: reads of it fail fast (never wrong
//! bytes) and the next upload of the same content stores it again, which repairs every
//! object using it. A pack the index names but the store does not have marks all its
//! chunks. A transient backend error ends the run (the cursor keeps its place); it
//! never marks anything. Inline chunks are verified at the end.
//!
//! Each pack is read under a read lease, so GC and compaction running at the same time
//! cannot delete it mid-read; chunks compaction moved meanwhile are verified in their
//! new pack (its id is newer, so it is visited later in the same run).

use std::time::{Duration, Instant};

use crate::chunk::ChunkCodec;
use crate::error::{Error, Result};
use crate::index::{LocatedChunk, ScrubCursor, ScrubLast, ScrubTotals};
use crate::pack;
use crate::records::Location;
use crate::store::Store;

/// How fast scrub reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubOptions {
    /// Bytes per second (0 = as fast as the store answers).
    pub rate: u64,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        ScrubOptions { rate: 50 << 20 }
    }
}

/// What a scrub run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// It continued an interrupted run.
    pub resumed: bool,
    /// Counts over the whole run (including the part before a resume).
    pub totals: ScrubTotals,
    /// Packs the index names that the store does not have (their chunks are marked).
    pub missing_packs: u64,
    /// Damaged chunks, as `chunk id` (first 100).
    pub damaged: Vec<String>,
}

fn now_ms() -> u64 {
    crate::index::now_ms()
}

/// Verifies the located chunks against a pack's bytes; returns the damaged ones.
fn check_chunks(
    codec: &ChunkCodec,
    pack_id: u128,
    data: &bytes::Bytes,
    located: &[LocatedChunk],
) -> Vec<(crate::ChunkId, Option<(u128, u64)>)> {
    let mut bad = Vec::new();
    for l in located {
        let range = usize::try_from(l.offset).ok().and_then(|o| {
            let end = o.checked_add(l.stored_len as usize)?;
            (end <= data.len()).then_some(o..end)
        });
        let ok =
            range.is_some_and(|r| codec.verify(&l.id, data.slice(r), l.crc, l.raw_len).is_ok());
        if !ok {
            bad.push((l.id, Some((pack_id, l.offset))));
        }
    }
    bad
}

impl Store {
    /// Runs (or resumes) a scrub over every pack and inline chunk. `progress` gets the
    /// packs done, the packs known and the counts so far.
    ///
    /// # Errors
    /// Index and backend errors; progress made before one is kept for the next run.
    pub async fn scrub(
        &self,
        opts: ScrubOptions,
        progress: &(dyn Fn(u64, u64, &ScrubTotals) + Send + Sync),
    ) -> Result<ScrubReport> {
        let index = std::sync::Arc::clone(self.index());
        let codec = index.codec().clone();
        let codec = &codec;
        let (cursor, _) = index.scrub_state()?;
        let mut report = ScrubReport {
            resumed: cursor.is_some(),
            ..ScrubReport::default()
        };
        let mut cur = cursor.unwrap_or(ScrubCursor {
            started_ms: now_ms(),
            ..ScrubCursor::default()
        });
        let known = index.pack_count()?;
        let started = Instant::now();
        let mut read_now = 0u64;
        loop {
            let batch = index.packs_after(cur.after, 64)?;
            if batch.is_empty() {
                break;
            }
            for (id, _) in batch {
                let lease = index.inflight.read_lease();
                let damaged = match self.blobs().get(&pack::blob_name(id)).await {
                    Ok(data) => {
                        read_now += data.len() as u64;
                        cur.totals.bytes += data.len() as u64;
                        let located = match pack::parse_sealed(&data, id, codec.keys.as_deref()) {
                            Ok(entries) => index.located_in(id, &entries)?,
                            // The pack's own table is damaged: what the index says is in it.
                            Err(_) => index.located_by_scan(id)?,
                        };
                        cur.totals.chunks += located.len() as u64;
                        check_chunks(codec, id, &data, &located)
                    }
                    Err(Error::BlobNotFound(_)) if index.pack_known(id)? => {
                        let located = index.located_by_scan(id)?;
                        if located.is_empty() {
                            Vec::new() // retired meanwhile: nothing to lose
                        } else {
                            report.missing_packs += 1;
                            cur.totals.chunks += located.len() as u64;
                            located
                                .iter()
                                .map(|l| (l.id, Some((id, l.offset))))
                                .collect()
                        }
                    }
                    Err(Error::BlobNotFound(_)) => Vec::new(), // deleted by GC meanwhile
                    Err(e) => return Err(e),
                };
                drop(lease);
                if !damaged.is_empty() {
                    tracing::error!(
                        pack = format!("{id:032x}"),
                        chunks = damaged.len(),
                        "scrub: stored chunks fail verification; marked damaged (reads fail, a re-upload repairs)"
                    );
                    for (c, _) in damaged.iter().take(100 - report.damaged.len().min(100)) {
                        report.damaged.push(c.to_string());
                    }
                    cur.totals.damaged += index.mark_damaged(damaged).await?;
                }
                cur.after = id;
                cur.totals.packs += 1;
                index.save_scrub_cursor(cur).await?;
                progress(cur.totals.packs, known.max(cur.totals.packs), &cur.totals);
                if opts.rate > 0 {
                    #[allow(clippy::cast_precision_loss)]
                    let due = Duration::from_secs_f64(read_now as f64 / opts.rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        // Inline chunks live in the index: cheap to check all at the end.
        let mut bad_inline = Vec::new();
        let inline = index.chunk_records_where(|id, rec| match rec.location {
            Location::Inline(stored) => Some((id, stored, rec.crc, rec.raw_len)),
            Location::Pack { .. } => None,
        })?;
        for (id, stored, crc, raw_len) in inline {
            cur.totals.chunks += 1;
            if codec.verify(&id, stored.into(), crc, raw_len).is_err() {
                bad_inline.push((id, None));
                report.damaged.push(id.to_string());
            }
        }
        if !bad_inline.is_empty() {
            tracing::error!(
                chunks = bad_inline.len(),
                "scrub: inline chunks fail verification; marked damaged"
            );
            cur.totals.damaged += index.mark_damaged(bad_inline).await?;
        }
        index
            .finish_scrub(ScrubLast {
                started_ms: cur.started_ms,
                finished_ms: now_ms(),
                totals: cur.totals,
            })
            .await?;
        report.totals = cur.totals;
        Ok(report)
    }

    /// The cursor of an interrupted scrub and the last finished one.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn scrub_state(&self) -> Result<(Option<ScrubCursor>, Option<ScrubLast>)> {
        self.index().scrub_state()
    }
}
