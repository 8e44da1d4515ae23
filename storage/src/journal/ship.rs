//! Shipping the outbox to the store, snapshots, and pruning.

use bytes::Bytes;

use super::format::{self, Header, Kind};
use super::{SEGMENTS_PREFIX, SNAPSHOTS_PREFIX};
use crate::error::{Error, Result};
use crate::index::now_ms;
use crate::store::Store;

/// Raw bytes per segment (entries are cut at the first entry past this).
const SEGMENT_RAW: usize = 4 << 20;
/// Raw bytes per snapshot part.
const PART_RAW: usize = 8 << 20;
/// Complete snapshots kept in the store (the newest is used; the one before is the
/// fallback if the newest is damaged).
const SNAPSHOTS_KEPT: usize = 2;

pub use crate::index::JournalState as JournalStatus;

/// What one shipment wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipReport {
    /// Segments written.
    pub segments: u64,
    /// Entries shipped.
    pub entries: u64,
    /// Blob bytes written.
    pub bytes: u64,
}

/// What one snapshot wrote and pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Sequence number it was taken at (`None`: nothing changed since the last one).
    pub seq: Option<u64>,
    /// Entries (records) it holds.
    pub entries: u64,
    /// Parts written.
    pub parts: u32,
    /// Blob bytes written.
    pub bytes: u64,
    /// Old snapshot blobs and journal segments deleted.
    pub pruned: u64,
}

impl Store {
    /// The store id journal blobs carry.
    fn journal_store_id(&self) -> Result<String> {
        self.index()
            .store_id()?
            .ok_or_else(|| Error::Internal("the index has no store id".into()))
    }

    /// The highest sequence number any journal blob in the store covers (0: none).
    pub(crate) async fn journal_store_max(&self) -> Result<u64> {
        let mut max = 0;
        for b in self.blobs().list(SEGMENTS_PREFIX).await? {
            if let Some((_, last)) = super::parse_segment_name(&b.name) {
                max = max.max(last);
            }
        }
        for b in self.blobs().list(SNAPSHOTS_PREFIX).await? {
            if let Some(seq) = super::parse_snapshot_name(&b.name) {
                max = max.max(seq);
            }
        }
        Ok(max)
    }

    /// See `Index::journal_catch_up` (called when the store opens).
    pub(crate) async fn journal_catch_up(&self) -> Result<()> {
        let max = self.journal_store_max().await?;
        if max > 0 {
            self.index().journal_catch_up(max).await?;
        }
        Ok(())
    }

    /// The outbox and snapshot state (journal lag, last snapshot).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn journal_status(&self) -> Result<JournalStatus> {
        self.index().journal_state()
    }

    /// Copies every outbox entry to the store as segments and trims the outbox. An
    /// index with no snapshot in the store yet (new, or upgraded from format 4) takes
    /// one first, so the store always holds a complete starting point.
    ///
    /// # Errors
    /// Backend errors (nothing is trimmed that is not stored), [`Error::Index`].
    pub async fn ship_journal(&self) -> Result<ShipReport> {
        if self.journal_status()?.snapshot_seq.is_none() {
            self.snapshot_journal().await?;
        }
        let _one = self.index().journal_lock.lock().await;
        self.ship_locked().await
    }

    async fn ship_locked(&self) -> Result<ShipReport> {
        let store_id = self.journal_store_id()?;
        let keys = self.config().keys.clone();
        let mut report = ShipReport::default();
        loop {
            let index = std::sync::Arc::clone(self.index());
            let batch =
                tokio::task::spawn_blocking(move || index.journal_pending(SEGMENT_RAW)).await??;
            let (Some(&(first, _)), Some(&(last, _))) = (batch.first(), batch.last()) else {
                return Ok(report);
            };
            let name = super::segment_name(first, last);
            let (store_id, keys, n) = (store_id.clone(), keys.clone(), batch.len());
            let blob = tokio::task::spawn_blocking({
                let name = name.clone();
                move || {
                    let mut raw = Vec::with_capacity(batch.iter().map(|e| e.1.len() + 4).sum());
                    for (_, e) in &batch {
                        format::push_item(&mut raw, e);
                    }
                    let header = Header {
                        store_id,
                        first,
                        last,
                        count: u32::try_from(batch.len()).unwrap_or(u32::MAX),
                        created_ms: now_ms(),
                        key: None,
                    };
                    format::seal(Kind::Segment, &name, header, &raw, keys.as_deref())
                }
            })
            .await?;
            report.bytes += blob.len() as u64;
            self.blobs().put(&name, Bytes::from(blob)).await?;
            self.index().journal_trim(last).await?;
            report.segments += 1;
            report.entries += n as u64;
        }
    }

    /// Ships the outbox, then writes a snapshot of the whole state (unless nothing
    /// changed since the last one) and prunes snapshots and segments the newest
    /// [`SNAPSHOTS_KEPT`] snapshots make redundant.
    ///
    /// # Errors
    /// Backend errors (a snapshot without its manifest is never used), [`Error::Index`].
    pub async fn snapshot_journal(&self) -> Result<SnapshotReport> {
        self.snapshot_with(false, SNAPSHOTS_KEPT).await
    }

    /// A snapshot even if nothing changed, keeping only it: after a rekey, nothing in
    /// the journal is left under an older key. Returns the blobs pruned.
    pub(crate) async fn reseal_journal(&self) -> Result<u64> {
        Ok(self.snapshot_with(true, 1).await?.pruned)
    }

    async fn snapshot_with(&self, force: bool, keep: usize) -> Result<SnapshotReport> {
        let _one = self.index().journal_lock.lock().await;
        self.ship_locked().await?;
        let state = self.journal_status()?;
        let mut report = SnapshotReport::default();
        if state.snapshot_seq == Some(state.next_seq - 1) && !force {
            return Ok(report);
        }
        if force && state.snapshot_seq == Some(state.next_seq - 1) {
            // Same sequence as the snapshot there: number past it so the names differ
            // (an empty change would do; a gap in numbering is harmless).
            self.index().journal_skip().await?;
        }
        let store_id = self.journal_store_id()?;
        let keys = self.config().keys.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<u8>)>(2);
        let index = std::sync::Arc::clone(self.index());
        let producer = tokio::task::spawn_blocking(move || {
            let mut raw = Vec::new();
            let (mut part, mut in_part, mut total) = (0u32, 0u32, 0u64);
            let mut parts: Vec<(u64, u32)> = Vec::new();
            let mut seal_part = |seq: u64, raw: &mut Vec<u8>, n: u32, part: &mut u32| {
                let name = super::snapshot_part_name(seq, *part);
                let header = Header {
                    store_id: store_id.clone(),
                    first: seq,
                    last: seq,
                    count: n,
                    created_ms: now_ms(),
                    key: None,
                };
                let blob = format::seal(Kind::SnapshotPart, &name, header, raw, keys.as_deref());
                parts.push((blob.len() as u64, crc32c::crc32c(&blob)));
                raw.clear();
                *part += 1;
                tx.blocking_send((name, blob))
                    .map_err(|_| Error::Internal("snapshot upload stopped".into()))
            };
            let seq = index.snapshot_entries(|seq, e| {
                format::push_item(&mut raw, &e);
                in_part += 1;
                total += 1;
                if raw.len() >= PART_RAW {
                    seal_part(seq, &mut raw, in_part, &mut part)?;
                    in_part = 0;
                }
                Ok(())
            })?;
            if in_part > 0 || part == 0 {
                seal_part(seq, &mut raw, in_part, &mut part)?;
            }
            // The manifest: every part's blob length and CRC32C, written last.
            let mut list = Vec::new();
            format::push_item(&mut list, &total.to_le_bytes());
            for (len, crc) in &parts {
                let mut item = len.to_le_bytes().to_vec();
                item.extend_from_slice(&crc.to_le_bytes());
                format::push_item(&mut list, &item);
            }
            let name = super::snapshot_manifest_name(seq);
            let header = Header {
                store_id,
                first: seq,
                last: seq,
                count: part,
                created_ms: now_ms(),
                key: None,
            };
            let blob = format::seal(
                Kind::SnapshotManifest,
                &name,
                header,
                &list,
                keys.as_deref(),
            );
            tx.blocking_send((name, blob))
                .map_err(|_| Error::Internal("snapshot upload stopped".into()))?;
            Ok::<_, Error>((seq, total, part))
        });
        let mut failed = None;
        while let Some((name, blob)) = rx.recv().await {
            report.bytes += blob.len() as u64;
            if let Err(e) = self.blobs().put(&name, Bytes::from(blob)).await {
                failed = Some(e);
                break;
            }
        }
        drop(rx);
        let produced = producer.await?;
        if let Some(e) = failed {
            return Err(e);
        }
        let (seq, entries, parts) = produced?;
        self.index().journal_snapshotted(seq, now_ms()).await?;
        report.seq = Some(seq);
        report.entries = entries;
        report.parts = parts;
        report.pruned = self.prune_journal(keep).await?;
        Ok(report)
    }

    /// Deletes snapshots older than the newest `keep` complete ones, and segments wholly
    /// covered by the oldest snapshot kept. With the default `keep`, only once that many
    /// exist: with a single snapshot the full journal stays as its fallback.
    async fn prune_journal(&self, keep: usize) -> Result<u64> {
        let blobs = self.blobs().list(SNAPSHOTS_PREFIX).await?;
        let complete: std::collections::BTreeSet<u64> = blobs
            .iter()
            .filter(|b| b.name.ends_with("/manifest"))
            .filter_map(|b| super::parse_snapshot_name(&b.name))
            .collect();
        if complete.len() < keep.max(SNAPSHOTS_KEPT) && keep >= SNAPSHOTS_KEPT {
            return Ok(0);
        }
        let Some(&oldest_kept) = complete.iter().rev().nth(keep.max(1) - 1) else {
            return Ok(0);
        };
        let mut pruned = 0;
        for b in &blobs {
            if super::parse_snapshot_name(&b.name).is_some_and(|s| s < oldest_kept) {
                self.blobs().delete(&b.name).await?;
                pruned += 1;
            }
        }
        for b in self.blobs().list(SEGMENTS_PREFIX).await? {
            if super::parse_segment_name(&b.name).is_some_and(|(_, last)| last <= oldest_kept) {
                self.blobs().delete(&b.name).await?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }
}
