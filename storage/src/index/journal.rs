//! The journal outbox: every metadata change a rebuild needs is appended, in the same
//! write transaction as the change, to `journal_outbox` (sequence number → encoded
//! entry). The shipper (`crate::journal`) copies the outbox to the backing store in
//! segments and trims what is stored; a crash anywhere leaves the entries in the
//! outbox, to be shipped again (segment names carry their range, so a re-shipped
//! segment overwrites or overlaps an older one harmlessly).
//!
//! `journal_state` holds the next sequence number, the outbox's size, and the last
//! snapshot taken (for status and pruning).

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::{
    BUCKETS, CHUNKS, Index, LOCKS, MANIFESTS, META, OBJECTS, VERSIONS, now_ms, read_manifest,
};
use crate::error::Result;
use crate::id::ChunkId;
use crate::journal::entry::{Change, Entry};
use crate::records::{BucketRecord, ChunkRecord, ChunkState, ObjectRecord};
use crate::version_entry::VersionEntry;

pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("journal_outbox");
pub(crate) const STATE: TableDefinition<&str, u64> = TableDefinition::new("journal_state");
pub(crate) const NEXT_SEQ: &str = "next_seq";
const OUTBOX_BYTES: &str = "outbox_bytes";
const SNAPSHOT_SEQ: &str = "snapshot_seq";
const SNAPSHOT_MS: &str = "snapshot_ms";
/// Meta keys a rebuild restores verbatim.
pub(crate) const JOURNALED_META: [&str; 2] = ["keys", "chunker"];

/// Appends `changes` to the outbox inside `txn`.
pub(crate) fn append(txn: &WriteTransaction, changes: Vec<Change>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut state = txn.open_table(STATE)?;
    let mut seq = state.get(NEXT_SEQ)?.map_or(1, |v| v.value());
    let mut bytes = state.get(OUTBOX_BYTES)?.map_or(0, |v| v.value());
    let mut outbox = txn.open_table(OUTBOX)?;
    let time_ms = now_ms();
    for change in changes {
        let e = Entry {
            seq,
            time_ms,
            change,
        }
        .encode();
        bytes += e.len() as u64;
        outbox.insert(seq, e.as_slice())?;
        seq += 1;
    }
    state.insert(NEXT_SEQ, seq)?;
    state.insert(OUTBOX_BYTES, bytes)?;
    Ok(())
}

/// A chunk change (what `add_refs`, compaction and rekey journal): a reference,
/// resolved to the chunk's record when shipped (see `Index::journal_pending`).
pub(crate) fn chunk(id: ChunkId) -> Change {
    Change::ChunkRef { id }
}

/// What the outbox holds and what was last snapshotted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalState {
    /// Sequence number the next change gets.
    pub next_seq: u64,
    /// Entries not yet in the store.
    pub pending_entries: u64,
    /// Their encoded size.
    pub pending_bytes: u64,
    /// Commit time of the oldest of them.
    pub oldest_pending_ms: Option<u64>,
    /// Sequence number of the last snapshot written to the store.
    pub snapshot_seq: Option<u64>,
    /// When it was written.
    pub snapshot_ms: Option<u64>,
}

impl Index {
    /// The outbox's state.
    ///
    /// # Errors
    /// [`crate::Error::Index`].
    pub(crate) fn journal_state(&self) -> Result<JournalState> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let get = |k: &str| -> Result<Option<u64>> { Ok(state.get(k)?.map(|v| v.value())) };
        let outbox = txn.open_table(OUTBOX)?;
        let oldest = match outbox.first()? {
            Some((_, v)) => Entry::decode(v.value()).ok().map(|e| e.time_ms),
            None => None,
        };
        Ok(JournalState {
            next_seq: get(NEXT_SEQ)?.unwrap_or(1),
            pending_entries: outbox.len()?,
            pending_bytes: get(OUTBOX_BYTES)?.unwrap_or(0),
            oldest_pending_ms: oldest,
            snapshot_seq: get(SNAPSHOT_SEQ)?,
            snapshot_ms: get(SNAPSHOT_MS)?,
        })
    }

    /// The oldest outbox entries, up to about `max_bytes` (at least one), as shipped.
    /// Chunk references are resolved, in the same read transaction, to the chunk's
    /// record now (its current location; inline bytes included), or to
    /// [`Change::ChunkGone`] when it is no longer there: every sequence number is shipped.
    ///
    /// # Errors
    /// [`crate::Error::Index`], or a decode error.
    pub(crate) fn journal_pending(&self, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let chunks = txn.open_table(CHUNKS)?;
        let mut out = Vec::new();
        let mut size = 0usize;
        for r in outbox.iter()? {
            let (k, v) = r?;
            if size >= max_bytes {
                break;
            }
            let mut encoded = v.value().to_vec();
            if crate::journal::entry::is_chunk_ref(&encoded) {
                let mut e = Entry::decode(&encoded)?;
                if let Change::ChunkRef { id } = e.change {
                    let rec = chunks
                        .get(&id.0)?
                        .map(|v| ChunkRecord::decode(v.value()))
                        .transpose()?
                        .filter(|r| r.state != ChunkState::Deleting);
                    e.change = match rec {
                        Some(record) => Change::Chunk { id, record },
                        None => Change::ChunkGone { id },
                    };
                    encoded = e.encode();
                }
            }
            size += encoded.len();
            out.push((k.value(), encoded));
        }
        Ok(out)
    }

    /// Drops outbox entries up to `last` (they are in the store).
    pub(crate) fn journal_trim(&self, last: u64) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut freed = 0u64;
            outbox.retain_in(..=last, |_, v| {
                freed += v.len() as u64;
                false
            })?;
            let mut state = txn.open_table(STATE)?;
            let bytes = state.get(OUTBOX_BYTES)?.map_or(0, |v| v.value());
            state.insert(OUTBOX_BYTES, bytes.saturating_sub(freed))?;
            Ok(())
        })
    }

    /// Moves this index's journal past `store_max`, the highest sequence number the
    /// store's journal holds, when it is not already: an index restored from an older
    /// copy must not number new changes like ones the store already holds from the
    /// history it lost. Its outbox is dropped and the next shipment starts with a
    /// snapshot (numbered past every blob there), which a rebuild then starts from.
    /// Returns whether it moved.
    pub(crate) fn journal_catch_up(
        &self,
        store_max: u64,
    ) -> impl Future<Output = Result<bool>> + use<> {
        self.committer.submit(move |txn| {
            let mut state = txn.open_table(STATE)?;
            let next = state.get(NEXT_SEQ)?.map_or(1, |v| v.value());
            if next > store_max {
                return Ok(false);
            }
            tracing::warn!(
                index_next = next,
                store_max,
                "the store's journal is ahead of this index (restored from an older copy?): \
                 a fresh snapshot is taken before anything else is shipped"
            );
            state.insert(NEXT_SEQ, store_max + 2)?;
            state.insert(OUTBOX_BYTES, 0)?;
            state.remove(SNAPSHOT_SEQ)?;
            state.remove(SNAPSHOT_MS)?;
            drop(state);
            txn.open_table(OUTBOX)?.retain(|_, _| false)?;
            Ok(true)
        })
    }

    /// Moves the journal on by one harmless entry (the chunker record again), so a
    /// snapshot forced with nothing changed gets a sequence number of its own (see
    /// `Store::reseal_journal`) without leaving a gap.
    pub(crate) fn journal_skip(&self) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            let value = txn
                .open_table(META)?
                .get(JOURNALED_META[1])?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            let key = JOURNALED_META[1].to_owned();
            append(txn, vec![Change::Meta { key, value }])
        })
    }

    /// Records a snapshot written to the store.
    pub(crate) fn journal_snapshotted(
        &self,
        seq: u64,
        at_ms: u64,
    ) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            let mut state = txn.open_table(STATE)?;
            state.insert(SNAPSHOT_SEQ, seq)?;
            state.insert(SNAPSHOT_MS, at_ms)?;
            Ok(())
        })
    }

    /// The whole state a rebuild needs, from one read transaction, as entries numbered
    /// with the sequence the snapshot is taken at (returned): journaled meta values,
    /// buckets, objects with their manifests, and every chunk not being deleted (a
    /// chunk at refcount zero may be referenced again without a new entry). `emit` is
    /// called once per encoded entry.
    ///
    /// # Errors
    /// [`crate::Error::Index`], a decode error, or what `emit` returns.
    pub(crate) fn snapshot_entries(
        &self,
        mut emit: impl FnMut(u64, Vec<u8>) -> Result<()>,
    ) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let seq = txn
            .open_table(STATE)?
            .get(NEXT_SEQ)?
            .map_or(1, |v| v.value())
            - 1;
        let time_ms = now_ms();
        let mut put = |change: Change| {
            emit(
                seq,
                Entry {
                    seq,
                    time_ms,
                    change,
                }
                .encode(),
            )
        };
        let meta = txn.open_table(META)?;
        for key in JOURNALED_META {
            if let Some(v) = meta.get(key)? {
                put(Change::Meta {
                    key: key.to_owned(),
                    value: v.value().to_vec(),
                })?;
            }
        }
        for r in txn.open_table(BUCKETS)?.iter()? {
            let (k, v) = r?;
            put(Change::Bucket {
                name: k.value().to_owned(),
                record: BucketRecord::decode(v.value())?,
            })?;
        }
        // Tenants' dedup domains, retired tenant names, tenants before their users,
        // users before their keys; tenants' quotas.
        let kinds = [
            super::identity::DOMAIN,
            super::identity::RETIRED,
            super::identity::TENANT,
            super::identity::USER,
            super::identity::KEY,
            crate::quota::QUOTA_KIND,
            crate::rates::RATE_KIND,
        ];
        // A kind added later and forgotten here would vanish from every rebuild.
        for r in txn.open_table(super::IDENTITIES)?.iter()? {
            let (k, _) = r?;
            let kind = k.value().0;
            if !kinds.contains(&kind) {
                return Err(crate::error::Error::Internal(format!(
                    "identity kind {kind:?} is not covered by journal snapshots"
                )));
            }
        }
        for kind in kinds {
            for r in txn.open_table(super::IDENTITIES)?.range((kind, "")..)? {
                let (k, v) = r?;
                let (k_kind, name) = k.value();
                if k_kind != kind {
                    break;
                }
                put(Change::Identity {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    value: v.value().to_vec(),
                })?;
            }
        }
        for r in txn.open_table(super::BUCKET_CONFIGS)?.iter()? {
            let (k, v) = r?;
            let (bucket, kind) = k.value();
            put(Change::BucketConfig {
                bucket: bucket.to_owned(),
                kind: kind.to_owned(),
                value: v.value().to_vec(),
            })?;
        }
        let manifests = txn.open_table(MANIFESTS)?;
        // Noncurrent versions first, each as "install, then demote", so the current
        // objects that follow land on top of them.
        for r in txn.open_table(VERSIONS)?.iter()? {
            let (k, v) = r?;
            let (bucket, key, _) = k.value();
            let (b, k) = (bucket.to_owned(), key.to_owned());
            match VersionEntry::decode(v.value())? {
                VersionEntry::Object(record) => {
                    let slices = read_manifest(&manifests, record.manifest)?;
                    for change in
                        crate::journal::entry::object_changes(bucket, key, &record, &slices)
                    {
                        put(change)?;
                    }
                    put(Change::Demote { bucket: b, key: k })?;
                }
                VersionEntry::Marker(marker) => put(Change::Marker {
                    bucket: b,
                    key: k,
                    marker,
                })?,
            }
        }
        for r in txn.open_table(OBJECTS)?.iter()? {
            let (k, v) = r?;
            let (bucket, key) = k.value();
            let record = ObjectRecord::decode(v.value())?;
            let slices = read_manifest(&manifests, record.manifest)?;
            for change in crate::journal::entry::object_changes(bucket, key, &record, &slices) {
                put(change)?;
            }
        }
        for r in txn.open_table(LOCKS)?.iter()? {
            let (k, v) = r?;
            let (bucket, key, seq) = k.value();
            put(Change::Lock {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                seq,
                record: crate::lock::LockRecord::decode(v.value())?,
            })?;
        }
        for r in txn.open_table(CHUNKS)?.iter()? {
            let (k, v) = r?;
            let record = ChunkRecord::decode(v.value())?;
            if record.state != ChunkState::Deleting {
                put(Change::Chunk {
                    id: ChunkId(*k.value()),
                    record,
                })?;
            }
        }
        Ok(seq)
    }
}
