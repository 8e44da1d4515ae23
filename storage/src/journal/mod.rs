//! The metadata journal and snapshots in the backing store: what makes the bucket
//! alone enough to rebuild the index (DESIGN.md "Disaster recovery").
//!
//! Every metadata change (buckets, object versions with their manifests, chunks stored
//! or moved, key records) is appended to the index's outbox in the transaction that
//! makes it (`index::journal`). [`Store::ship_journal`](crate::Store::ship_journal)
//! copies the outbox to the store as segments `journal/seg/<first>-<last>` and trims
//! it; [`Store::snapshot_journal`](crate::Store::snapshot_journal) writes the whole
//! state at one sequence number as `journal/snap/<seq>/part-<n>` plus a manifest
//! written last, then prunes what the two newest snapshots make redundant. A rebuild
//! (`rebuild`) restores the newest complete snapshot, replays the segments after it and
//! reconciles with the packs present.
//!
//! Layout:
//! - `entry.rs` — one change, versioned and checksummed;
//! - `format.rs` — the blob container (compressed, checksummed, sealed with encryption);
//! - `ship.rs` — shipping, snapshots and pruning;
//! - `rebuild.rs` — reading it all back into a new index.
//!
//! Not journaled: multipart uploads in progress (a rebuild drops them; their packs
//! become garbage) and scrub's damage marks (the next scrub finds the damage again).

pub(crate) mod entry;
pub(crate) mod format;
pub mod rebuild;
mod ship;

pub use ship::{JournalStatus, ShipReport, SnapshotReport};

/// Prefix of journal segments.
pub const SEGMENTS_PREFIX: &str = "journal/seg/";
/// Prefix of snapshots.
pub const SNAPSHOTS_PREFIX: &str = "journal/snap/";

/// Name of the segment holding entries `first..=last`.
pub(crate) fn segment_name(first: u64, last: u64) -> String {
    format!("{SEGMENTS_PREFIX}{first:020}-{last:020}")
}

/// Parses a segment name back into its range.
pub(crate) fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let (a, b) = name.strip_prefix(SEGMENTS_PREFIX)?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Name of part `n` of the snapshot at `seq`.
pub(crate) fn snapshot_part_name(seq: u64, n: u32) -> String {
    format!("{SNAPSHOTS_PREFIX}{seq:020}/part-{n:06}")
}

/// Name of the manifest of the snapshot at `seq`.
pub(crate) fn snapshot_manifest_name(seq: u64) -> String {
    format!("{SNAPSHOTS_PREFIX}{seq:020}/manifest")
}

/// The snapshot sequence number a snapshot blob belongs to.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    name.strip_prefix(SNAPSHOTS_PREFIX)?
        .split_once('/')?
        .0
        .parse()
        .ok()
}

/// What kind of journal blob a name holds.
pub(crate) fn kind_of(name: &str) -> Option<format::Kind> {
    if name.starts_with(SEGMENTS_PREFIX) {
        Some(format::Kind::Segment)
    } else if name.starts_with(SNAPSHOTS_PREFIX) {
        Some(if name.ends_with("/manifest") {
            format::Kind::SnapshotManifest
        } else {
            format::Kind::SnapshotPart
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        assert_eq!(parse_segment_name(&segment_name(7, 42)), Some((7, 42)));
        assert!(segment_name(9, 9) < segment_name(10, 10));
        assert_eq!(parse_snapshot_name(&snapshot_part_name(5, 3)), Some(5));
        assert_eq!(parse_snapshot_name(&snapshot_manifest_name(5)), Some(5));
        assert!(crate::blob::check_name(&segment_name(1, 2)).is_ok());
        assert!(crate::blob::check_name(&snapshot_part_name(1, 2)).is_ok());
    }
}
