//! `s3dedup rebuild-index`: a new index from the backing store alone (see
//! `s3dedup_storage::journal::rebuild`), then opened and checked with fsck.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use s3dedup_storage::blob::BlobStore;
use s3dedup_storage::journal::rebuild::{RebuildReport, rebuild_index};
use s3dedup_storage::{Store, StoreConfig};

/// A rebuild report as JSON.
pub fn report_json(r: &RebuildReport, fsck_clean: bool) -> Value {
    json!({
        "complete": r.complete(),
        "fsck_clean": fsck_clean,
        "store_id": r.store_id,
        "snapshot_seq": r.snapshot_seq,
        "snapshots_skipped": r.snapshots_skipped,
        "segments": r.segments,
        "entries_replayed": r.entries_replayed,
        "segments_skipped": r.segments_skipped,
        "gaps": r.gaps.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        "last_seq": r.last_seq,
        "buckets": r.buckets,
        "objects": r.objects,
        "logical_bytes": r.logical_bytes,
        "chunks": r.chunks,
        "packs": r.packs,
        "packs_unreadable": r.packs_unreadable,
        "chunks_relocated": r.chunks_relocated,
        "chunks_from_packs": r.chunks_from_packs,
        "objects_lost": r.objects_lost.iter().map(|(b, k)| format!("{b}/{k}")).collect::<Vec<_>>(),
        "orphan_objects": r.orphan_objects,
    })
}

fn print_text(r: &RebuildReport) {
    println!("store {}", r.store_id);
    match r.snapshot_seq {
        Some(s) => println!("snapshot restored: seq {s}"),
        None => println!("no usable snapshot: the journal was replayed from its start"),
    }
    println!(
        "journal: {} segments, {} entries replayed, last seq {}",
        r.segments, r.entries_replayed, r.last_seq
    );
    println!(
        "restored: {} buckets, {} objects ({} bytes), {} chunks; {} packs in the store",
        r.buckets, r.objects, r.logical_bytes, r.chunks, r.packs
    );
    if r.chunks_relocated + r.chunks_from_packs > 0 {
        println!(
            "located from pack tables: {} moved chunks, {} chunks the journal did not have",
            r.chunks_relocated, r.chunks_from_packs
        );
    }
    for s in &r.snapshots_skipped {
        println!("SKIPPED snapshot: {s}");
    }
    for s in &r.segments_skipped {
        println!("SKIPPED segment: {s}");
    }
    for (a, b) in &r.gaps {
        println!("LOST journal entries {a}..={b} (no readable segment holds them)");
    }
    for p in &r.packs_unreadable {
        println!("UNREADABLE pack (left in the store, not used): {p}");
    }
    for (b, k) in &r.objects_lost {
        println!("NOT RESTORED {b}/{k}: a chunk it needs is in no pack");
    }
    if r.orphan_objects > 0 {
        println!(
            "NOT RESTORED {} objects whose bucket is gone",
            r.orphan_objects
        );
    }
}

/// Rebuilds `index` from `blobs`, opens it, runs fsck, prints the report; returns
/// whether everything was restored and fsck is clean.
///
/// # Errors
/// Whatever stops the rebuild (an existing index, a foreign journal, a missing key, the
/// backend down after its retries); the index is then not written.
pub async fn run(
    index: &Path,
    blobs: Arc<dyn BlobStore>,
    cfg: StoreConfig,
    as_json: bool,
) -> anyhow::Result<bool> {
    let report = rebuild_index(index, Arc::clone(&blobs), &cfg).await?;
    let store = Store::open(index, blobs, cfg).await?;
    let fsck = store.fsck().await?;
    if as_json {
        println!("{}", report_json(&report, fsck.is_clean()));
    } else {
        print_text(&report);
        if fsck.is_clean() {
            println!("fsck: clean (0 drift)");
        } else {
            println!("fsck: {fsck:#?}");
        }
    }
    Ok(report.complete() && fsck.is_clean())
}
