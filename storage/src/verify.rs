//! `fsck --read-data`: reads every pack the index names and verifies every chunk the
//! index locates in it (CRC32C of the stored bytes, header, and SHA-256 of the raw
//! bytes against the chunk id), plus every inline chunk. Offline and sequential: one
//! pack in memory at a time.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::index::Index;
use crate::pack;
use crate::records::{ChunkRecord, Location};
use crate::store::Store;

/// What reading the stored data found. Healthy: every problem count zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataReport {
    /// Packs read.
    pub packs: u64,
    /// Chunks verified (pack and inline).
    pub chunks: u64,
    /// Bytes read from the backing store.
    pub bytes: u64,
    /// Packs the index names that the store does not have (or could not return).
    pub missing_packs: u64,
    /// Packs whose own table does not parse (self-description damaged).
    pub bad_pack_tables: u64,
    /// Chunks whose stored bytes fail verification.
    pub bad_chunks: u64,
    /// Details of the first problems found.
    pub problems: Vec<String>,
}

impl DataReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.missing_packs == 0 && self.bad_pack_tables == 0 && self.bad_chunks == 0
    }

    fn problem(&mut self, msg: String) {
        if self.problems.len() < 100 {
            self.problems.push(msg);
        }
    }
}

/// Chunks by pack, and the inline ones.
type Locations = (BTreeMap<u128, Vec<Located>>, Vec<(ChunkId, ChunkRecord)>);

/// A chunk as located by the index.
struct Located {
    id: ChunkId,
    offset: u64,
    stored_len: u32,
    crc: u32,
    raw_len: u32,
}

impl Index {
    /// Every chunk record that decodes, grouped by pack, and the inline ones.
    fn chunk_locations(&self) -> Result<Locations> {
        let mut packs: BTreeMap<u128, Vec<Located>> = BTreeMap::new();
        let mut inline = Vec::new();
        for (id, rec) in self.chunk_records()? {
            match &rec.location {
                Location::Pack {
                    pack,
                    offset,
                    stored_len,
                } => packs.entry(*pack).or_default().push(Located {
                    id,
                    offset: *offset,
                    stored_len: *stored_len,
                    crc: rec.crc,
                    raw_len: rec.raw_len,
                }),
                Location::Inline(_) => inline.push((id, rec)),
            }
        }
        Ok((packs, inline))
    }
}

impl Store {
    /// Reads and verifies all stored data; `progress(done, total)` is called after each
    /// pack. Chunk records that do not decode are `fsck`'s to report, not this.
    ///
    /// # Errors
    /// [`Error::Index`] when the index cannot be read.
    pub async fn verify_data(&self, mut progress: impl FnMut(u64, u64)) -> Result<DataReport> {
        let index = std::sync::Arc::clone(self.index());
        let (packs, inline) =
            tokio::task::spawn_blocking(move || index.chunk_locations()).await??;
        let mut report = DataReport::default();
        let codec = self.index().codec();
        for (id, rec) in inline {
            report.chunks += 1;
            if let Location::Inline(stored) = rec.location
                && let Err(e) = codec.verify(&id, stored.into(), rec.crc, rec.raw_len)
            {
                report.bad_chunks += 1;
                report.problem(format!("inline chunk {id}: {e}"));
            }
        }
        let total = packs.len() as u64;
        for (pack_id, chunks) in packs {
            let name = pack::blob_name(pack_id);
            let data = match self.blobs().get(&name).await {
                Ok(d) => d,
                Err(e) => {
                    report.missing_packs += 1;
                    report.problem(format!("pack {name}: {e} ({} chunks)", chunks.len()));
                    progress(report.packs + report.missing_packs, total);
                    continue;
                }
            };
            report.packs += 1;
            report.bytes += data.len() as u64;
            if let Err(e) = pack::parse_sealed(&data, pack_id, codec.keys.as_deref()) {
                report.bad_pack_tables += 1;
                report.problem(format!("pack {name}: table: {e}"));
            }
            for c in chunks {
                report.chunks += 1;
                let end = c.offset.checked_add(u64::from(c.stored_len));
                let r = match end.filter(|&e| e <= data.len() as u64) {
                    None => Err(Error::corrupt(
                        "chunk",
                        "located beyond the end of its pack",
                    )),
                    Some(end) => codec
                        .verify(
                            &c.id,
                            data.slice(c.offset as usize..end as usize),
                            c.crc,
                            c.raw_len,
                        )
                        .map(drop),
                };
                if let Err(e) = r {
                    report.bad_chunks += 1;
                    report.problem(format!("chunk {} in {name} at {}: {e}", c.id, c.offset));
                }
            }
            progress(report.packs + report.missing_packs, total);
        }
        Ok(report)
    }
}
