//! One-time recount when an index older than format 3 is opened: the live accounting
//! of every pack and the stored bytes of referenced chunks, which format 3 keeps
//! exact from then on. One pass over the chunk table in the opening transaction.

use std::collections::HashMap;

use redb::{ReadableTable, WriteTransaction};

use super::{CHUNKS, PACKS, STATS, stat, stored_len};
use crate::error::Result;
use crate::records::{ChunkRecord, Location, PackRecord};

pub(super) fn recount_live(txn: &WriteTransaction) -> Result<()> {
    let mut per_pack: HashMap<u128, (u32, u64)> = HashMap::new();
    let mut live_stored = 0u64;
    for r in txn.open_table(CHUNKS)?.iter()? {
        let (_, v) = r?;
        // A damaged record is fsck's to report; it counts for nothing here.
        let Ok(rec) = ChunkRecord::decode(v.value()) else {
            continue;
        };
        let len = stored_len(&rec.location);
        if rec.refcount > 0 {
            live_stored += len;
        }
        if let Location::Pack { pack, .. } = rec.location {
            let e = per_pack.entry(pack).or_default();
            e.0 += 1;
            e.1 += len;
        }
    }
    let mut packs = txn.open_table(PACKS)?;
    let mut rewritten = Vec::new();
    let mut overhead = 0u64;
    for r in packs.iter()? {
        let (k, v) = r?;
        let Ok(mut rec) = PackRecord::decode(v.value()) else {
            continue;
        };

        let (n, bytes) = per_pack.get(&k.value()).copied().unwrap_or_default();
        if n > 0 {
            overhead += crate::pack::overhead(rec.chunks);
        }
        rec.live_chunks = n;
        rec.live_bytes = bytes;
        rewritten.push((k.value(), rec));
    }
    for (id, rec) in rewritten {
        packs.insert(id, rec.encode().as_slice())?;
    }
    let mut stats = txn.open_table(STATS)?;
    stats.insert(stat::LIVE_STORED_BYTES, live_stored)?;
    stats.insert(stat::PACK_OVERHEAD_BYTES, overhead)?;
    tracing::info!(
        packs = per_pack.len(),
        live_stored_bytes = live_stored,
        "index upgraded to format 3: pack live accounting recounted"
    );
    Ok(())
}
