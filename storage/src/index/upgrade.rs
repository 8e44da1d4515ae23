//! Index formats, and the one-time conversions opening an older index needs.
//!
//! What each format added (`INDEX_FORMAT` is the newest):
//! 2: records are sealed with a CRC32C (v2 records); an index of format 1 is upgraded
//! in place when opened (its v1 records stay readable), and from then on a binary that
//! only knows format 1 refuses it instead of failing on every new record.
//! 3: pack records carry exact live accounting and a deletion state, chunk records a
//! damage flag, and `stats` the stored bytes of referenced chunks (what GC needs); an
//! older index is recounted once when opened (`upgrade`).
//! 4: chunks may be zstd-compressed or sealed, pack tables sealed, and `meta` may hold
//! key records (`keys`): nothing to convert, but a binary that knows only format 3 would
//! fail on every such chunk instead of refusing the index at start.
//! 5: every metadata change is journaled (`journal_outbox`, `journal_state`); a binary
//! that knows only format 4 would write changes the journal never sees, so it must
//! refuse the index. An upgraded index's first shipment starts with a snapshot.
//! 6: object versions and delete markers (`versions`), object lock (`locks`), records
//! with their version, bucket records with their versioning state and lock
//! configuration; a binary that knows only format 5 would ignore the `versions` table
//! (and drop references it holds), so it must refuse.
//! 7: bucket configurations (`bucket_configs`: lifecycle rules) and upload records with
//! the lock their object gets; a binary that knows only format 6 would ignore the
//! configurations (and never expire what the rules say) and fail on such uploads, so it
//! must refuse. Nothing to convert.
//! 8: tenants, users and access keys (`identities`), buckets owned by tenants; a binary
//! that knows only format 7 would refuse every tenant key and let the root key alone
//! reach tenants' buckets, and its journal would miss identity changes, so it must
//! refuse. Nothing to convert: every existing bucket belongs to the root tenant.
//! 9: tenants' dedup domains (`identities` kind `domain`: tenants whose chunk ids are
//! keyed with their own secret, `dedup_scope = tenant`), and object ACLs (lock records
//! v3 and upload records v4 carry them); a binary that knows only format 8 would fail on
//! those records, name such a tenant's new chunks with the store's ids (sharing them
//! across tenants) and call its chunks corrupt in scrub, so it must refuse. Nothing to
//! convert.
//! 10: exact usage per bucket and per tenant (`bucket_usage`, `tenant_usage`) and quotas
//! (bucket configuration and identity kind `quota`), checked in the transaction that
//! publishes; a binary that knows only format 9 would publish without updating usage
//! (every later quota check off) and ignore quotas, so it must refuse. An older index is
//! recounted once when opened (one pass over the object tables).
//! 11: object records v5 with the part table of multipart objects, upload records v5
//! with the checksum their object gets (COMPOSITE or FULL_OBJECT); a binary that knows
//! only format 10 would fail on every object written since, so it must refuse. Nothing
//! to convert: older multipart objects have no part table (GET `partNumber` answers
//! for them as for a single part).
//!
//! Format 3's recount: when an index older than format 3 is opened, the live accounting
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
