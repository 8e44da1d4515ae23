//! Garbage collection on the engine: what it frees, and everything it must not touch
//! (chunks an upload reuses, packs an upload is writing, packs a read is using, packs
//! newer than a restored snapshot, stores another index owns). Every test ends with
//! fsck clean.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::gc::{GcOptions, GcReport};
use s3dedup_storage::pack;
use s3dedup_storage::{Error, ObjectMeta, Store, WriteCondition};

fn grace(d: Duration) -> GcOptions {
    GcOptions {
        grace: d,
        ..GcOptions::default()
    }
}

async fn gc(store: &Store, opts: GcOptions) -> GcReport {
    store.gc(opts, &|_, _| {}).await.expect("gc")
}

/// GC with no grace and no compaction: frees empty packs, leaves sparse ones.
async fn gc_without_compaction(store: &Store) -> GcReport {
    gc(
        store,
        GcOptions {
            compact_threshold: 0.0,
            ..grace(Duration::ZERO)
        },
    )
    .await
}

async fn packs_in_store(store: &Store) -> Vec<u128> {
    store
        .blobs()
        .list(pack::PACKS_PREFIX)
        .await
        .unwrap()
        .iter()
        .filter_map(|b| pack::parse_blob_name(&b.name))
        .collect()
}

async fn put_multipart(store: &Store, key: &str, parts: &[Vec<u8>]) {
    let up = store
        .create_upload("b", key, ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let mut listed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as u32 + 1;
        let p = store.ingest(common::pieces(data, 4096)).await.unwrap();
        let rec = store.put_part(&up, n, p, vec![]).await.unwrap();
        listed.push((n, rec.etag().to_string()));
    }
    store
        .complete_upload(&up, listed, 0, vec![], WriteCondition::default(), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_everything_then_collecting_frees_every_byte() {
    let (_dir, store) = common::fresh_store().await;
    let unique = common::random_bytes(1, 300_000);
    common::put(&store, "b", "unique", &unique).await;
    common::put(&store, "b", "dup", &unique).await;
    common::put(&store, "b", "tiny", b"inline").await;
    put_multipart(
        &store,
        "mp",
        &[common::random_bytes(2, 70_000), unique[..50_000].to_vec()],
    )
    .await;
    let before = store.stats().await.unwrap();
    assert!(before.stored_bytes > 300_000);
    assert_eq!(before.garbage_bytes(), 0, "{before:?}");
    for k in ["unique", "dup", "tiny", "mp"] {
        store.delete_object("b", k).await.unwrap();
    }
    let mid = store.stats().await.unwrap();
    // All of it is garbage but the framing of the packs (their tables), which goes
    // with them.
    assert_eq!(mid.live_stored_bytes, 0, "{mid:?}");
    assert_eq!(
        mid.garbage_bytes() + mid.pack_overhead_bytes,
        mid.stored_bytes,
        "{mid:?}"
    );

    // A dry run reports and changes nothing.
    let dry = gc(
        &store,
        GcOptions {
            dry_run: true,
            ..grace(Duration::ZERO)
        },
    )
    .await;
    assert!(dry.chunks_removed > 0);
    assert_eq!(store.stats().await.unwrap(), mid);

    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.chunks_removed > 0 && r.packs_deleted > 0, "{r:?}");
    assert_eq!(r.reclaimed_bytes(), mid.stored_bytes, "{r:?}");
    assert_eq!(r.backend_deletes, r.packs_deleted);
    assert_eq!(packs_in_store(&store).await, Vec::<u128>::new());
    let after = store.stats().await.unwrap();
    assert_eq!((after.stored_bytes, after.chunks), (0, 0), "{after:?}");
    common::assert_fsck_clean(&store).await;
    // Nothing left to do: a second run is a no-op.
    assert_eq!(gc(&store, grace(Duration::ZERO)).await.reclaimed_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_runs_from_when_a_chunk_lost_its_last_reference() {
    let (_dir, store) = common::fresh_store().await;
    let data = common::random_bytes(3, 200_000);
    common::put(&store, "b", "k", &data).await;
    store.delete_object("b", "k").await.unwrap();
    let r = gc(&store, grace(Duration::from_secs(3600))).await;
    assert_eq!((r.chunks_removed, r.packs_deleted), (0, 0), "{r:?}");
    // Still there: uploading the same content again writes nothing new.
    let p = store.ingest(common::pieces(&data, 5000)).await.unwrap();
    assert_eq!(p.stats.new_chunks, 0, "{:?}", p.stats);
    common::commit(&store, "k", p).await;
    assert_eq!(common::get(&store, "b", "k").await, data);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_reusing_unreferenced_chunks_pins_them_against_gc() {
    let (_dir, store) = common::fresh_store().await;
    let data = common::random_bytes(4, 150_000);
    common::put(&store, "b", "a", &data).await;
    store.delete_object("b", "a").await.unwrap();
    // The upload found every chunk reusable (refcount 0, not yet collected) ...
    let pending = store.ingest(common::pieces(&data, 3000)).await.unwrap();
    assert_eq!(pending.stats.new_chunks, 0);
    // ... so GC with no grace must leave every one of them alone.
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.chunks_removed, 0, "{r:?}");
    assert!(r.chunks_pinned > 0, "{r:?}");
    store
        .put_object(
            "b",
            "a",
            pending,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await
        .expect("the commit finds every chunk it reused");
    assert_eq!(common::get(&store, "b", "a").await, data);
    assert_eq!(
        store.inflight_counts().0,
        0,
        "pins released after the commit"
    );
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!((r.chunks_removed, r.packs_deleted), (0, 0), "{r:?}");
    assert_eq!(common::get(&store, "b", "a").await, data);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_of_an_upload_not_yet_committed_are_not_swept() {
    let (_dir, store) = common::fresh_store().await;
    let data = common::random_bytes(5, 200_000);
    let pending = store.ingest(common::pieces(&data, 3000)).await.unwrap();
    assert!(pending.stats.packs > 0);
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!((r.unknown_deleted, r.orphans_deleted), (0, 0), "{r:?}");
    common::commit(&store, "k", pending).await;
    assert_eq!(common::get(&store, "b", "k").await, data);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_keeps_the_packs_it_uses() {
    let (_dir, store) = common::fresh_store().await;
    let data = common::random_bytes(6, 400_000);
    common::put(&store, "b", "k", &data).await;
    let reader = store.get_object("b", "k", None).await.unwrap();
    store.delete_object("b", "k").await.unwrap();
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.chunks_removed > 0, "{r:?}");
    assert_eq!(r.packs_deleted, 0, "{r:?}");
    assert!(r.packs_waiting > 0, "{r:?}");
    assert!(!packs_in_store(&store).await.is_empty());
    assert_eq!(reader.collect().await.unwrap(), data, "the read completes");
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.packs_deleted > 0 && r.packs_waiting == 0, "{r:?}");
    assert_eq!(packs_in_store(&store).await, Vec::<u128>::new());
    common::assert_fsck_clean(&store).await;
}

/// A pack id created `age` ago.
fn pack_id_aged(age: Duration) -> u128 {
    let ms = (std::time::SystemTime::now() - age)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (u128::from(ms) << 80) | 0x1234
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_and_unknown_packs_go_once_older_than_the_grace_period() {
    let (_dir, store) = common::fresh_store().await;
    // An upload that never commits: its packs are recorded as orphans.
    let pending = store
        .ingest(common::pieces(&common::random_bytes(7, 100_000), 3000))
        .await
        .unwrap();
    drop(pending);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let orphans = store.orphan_packs().unwrap();
    assert!(!orphans.is_empty());
    // A pack nobody knows (an upload killed before it could record anything), 2 h old.
    let old = pack_id_aged(Duration::from_secs(7200));
    store
        .blobs()
        .put(&pack::blob_name(old), Bytes::from_static(b"S3DPACK1 junk"))
        .await
        .unwrap();
    let r = gc(&store, grace(Duration::from_secs(3600))).await;
    assert_eq!((r.unknown_deleted, r.orphans_deleted), (1, 0), "{r:?}");
    assert!(!packs_in_store(&store).await.contains(&old));
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.orphans_deleted, orphans.len() as u64, "{r:?}");
    assert!(store.orphan_packs().unwrap().is_empty());
    assert_eq!(packs_in_store(&store).await, Vec::<u128>::new());
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_restored_from_a_snapshot_keeps_newer_unknown_packs() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snaps");
    let later = common::random_bytes(8, 200_000);
    {
        let store = common::open_fs(dir.path(), common::small_config()).await;
        store.create_bucket("b").await.unwrap();
        common::put(&store, "b", "early", b"written before the snapshot").await;
        store.snapshot_index(&snaps, 3).await.unwrap();
        common::put(&store, "b", "later", &later).await;
    }
    let snapshot = std::fs::read_dir(&snaps)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&snapshot, dir.path().join("index.redb")).unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let in_store = packs_in_store(&store).await;
    assert!(
        !in_store.is_empty(),
        "the later object's packs are in the store"
    );
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.unknown_deleted, 0, "{r:?}");
    assert_eq!(r.unknown_kept, in_store.len() as u64, "{r:?}");
    assert_eq!(packs_in_store(&store).await, in_store, "kept for a rebuild");
    assert_eq!(
        common::get(&store, "b", "early").await,
        b"written before the snapshot"
    );
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_multipart_uploads_expire_and_release_their_parts() {
    let (_dir, store) = common::fresh_store().await;
    let up = store
        .create_upload("b", "k", ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let p = store
        .ingest(common::pieces(&common::random_bytes(9, 120_000), 4096))
        .await
        .unwrap();
    store.put_part(&up, 1, p, vec![]).await.unwrap();
    let fresh = store
        .create_upload("b", "k2", ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.uploads_expired, 0, "a week has not passed: {r:?}");
    assert!(store.upload(&up).await.is_ok());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = gc(
        &store,
        GcOptions {
            multipart_expiry: Duration::from_millis(10),
            ..grace(Duration::ZERO)
        },
    )
    .await;
    assert_eq!(r.uploads_expired, 2, "{r:?}");
    assert!(matches!(
        store.upload(&up).await,
        Err(Error::NoSuchUpload(_))
    ));
    assert!(matches!(
        store.upload(&fresh).await,
        Err(Error::NoSuchUpload(_))
    ));
    assert!(r.chunks_removed > 0 && r.packs_deleted > 0, "{r:?}");
    assert_eq!(store.stats().await.unwrap().stored_bytes, 0);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_uploads_end_as_one_copy() {
    let (_dir, store) = common::fresh_store().await;
    let data = Arc::new(common::random_bytes(10, 1 << 20));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, data) = (store.clone(), Arc::clone(&data));
        tasks.push(tokio::spawn(async move {
            common::put(&store, "b", &format!("copy-{i}"), &data).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = store.stats().await.unwrap();
    gc(&store, grace(Duration::ZERO)).await;
    let after = store.stats().await.unwrap();
    let limit = (data.len() as f64 * 1.1) as u64;
    assert!(
        after.stored_bytes <= limit,
        "stored {} after gc (before {}), limit {limit}",
        after.stored_bytes,
        before.stored_bytes
    );
    for i in 0..8 {
        assert_eq!(common::get(&store, "b", &format!("copy-{i}")).await, *data);
    }
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn a_store_claimed_by_another_index_is_refused() {
    let blobs = Arc::new(MemoryBlobStore::default());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = common::open_mem(a.path(), Arc::clone(&blobs), common::small_config()).await;
    let second = Store::open(
        &b.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        common::small_config(),
    )
    .await;
    assert!(
        matches!(second, Err(Error::StoreOwnedElsewhere { .. })),
        "{second:?}"
    );
    drop(first);
    // Its owner still opens it.
    common::open_mem(a.path(), blobs, common::small_config()).await;
}

/// X = A ++ B in 16 KiB packs, then Y = A (reusing X's chunks of A), then X deleted:
/// the pack that held the end of A and the start of B is left sparse.
async fn sparse_setup(store: &Store) -> Vec<u8> {
    store.create_bucket("b").await.unwrap();
    let a = common::random_bytes(11, 20_000);
    let x = [a.clone(), common::random_bytes(12, 20_000)].concat();
    common::put(store, "b", "x", &x).await;
    common::put(store, "b", "y", &a).await;
    store.delete_object("b", "x").await.unwrap();
    a
}

fn sparse_packs(store: &Store) -> Vec<u128> {
    store
        .packs()
        .unwrap()
        .into_iter()
        .filter(|(_, p)| {
            p.live_chunks > 0
                && (p.live_bytes as f64) < 0.5 * (p.size - pack::overhead(p.chunks)) as f64
        })
        .map(|(id, _)| id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_and_small_packs_are_compacted_and_reads_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let a = sparse_setup(&store).await;
    // Without compaction, GC frees the empty packs and leaves the sparse one.
    let r = gc_without_compaction(&store).await;
    assert_eq!(r.packs_compacted, 0);
    let sparse = sparse_packs(&store);
    assert!(!sparse.is_empty(), "the setup leaves a sparse pack");
    let before = store.stats().await.unwrap();
    assert!(before.garbage_bytes() > 0, "{before:?}");
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.packs_compacted >= sparse.len() as u64, "{r:?}");
    assert_eq!(r.compaction_new_packs, 1, "{r:?}");
    assert!(
        r.compaction_moved_chunks > 0 && r.compaction_rewritten_bytes > 0,
        "{r:?}"
    );
    let in_store = packs_in_store(&store).await;
    for p in &sparse {
        assert!(
            !in_store.contains(p),
            "compacted pack {p:032x} still in the store"
        );
    }
    let after = store.stats().await.unwrap();
    assert_eq!(after.garbage_bytes(), 0, "{after:?}");
    assert!(after.stored_bytes < before.stored_bytes);
    assert_eq!(common::get(&store, "b", "y").await, a);
    common::assert_fsck_clean(&store).await;
    // Converged: the next run rewrites nothing.
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!((r.packs_compacted, r.compaction_new_packs), (0, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_old_packs_until_reads_that_planned_on_them_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let a = sparse_setup(&store).await;
    gc_without_compaction(&store).await;
    let sparse = sparse_packs(&store);
    let reader = store.get_object("b", "y", None).await.unwrap();
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.packs_compacted > 0 && r.packs_waiting > 0, "{r:?}");
    assert!(packs_in_store(&store).await.contains(&sparse[0]));
    assert_eq!(
        reader.collect().await.unwrap(),
        a,
        "the read planned before the switch"
    );
    assert_eq!(common::get(&store, "b", "y").await, a, "a read after it");
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert!(r.packs_deleted > 0 && r.packs_waiting == 0, "{r:?}");
    assert!(!packs_in_store(&store).await.contains(&sparse[0]));
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_found_by_compaction_is_marked_never_dropped_and_a_reupload_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let a = sparse_setup(&store).await;
    gc_without_compaction(&store).await;
    let sparse = sparse_packs(&store)[0];
    // Flip a byte of the first chunk in the sparse pack (one of y's chunks).
    let path = dir.path().join("store/blobs").join(pack::blob_name(sparse));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8 + 40] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.damaged_chunks, 1, "{r:?}");
    assert!(r.damaged_packs >= 1, "{r:?}");
    assert!(
        packs_in_store(&store).await.contains(&sparse),
        "a damaged pack is kept"
    );
    // Reads fail fast, before any byte: never wrong bytes.
    let err = store.get_object("b", "y", None).await.unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    common::assert_fsck_clean(&store).await;
    // Uploading the same content stores the damaged chunk again and repairs the object.
    let p = store.ingest(common::pieces(&a, 4096)).await.unwrap();
    assert!(p.stats.new_chunks >= 1, "{:?}", p.stats);
    common::commit(&store, "y2", p).await;
    assert_eq!(common::get(&store, "b", "y").await, a);
    assert_eq!(common::get(&store, "b", "y2").await, a);
    common::assert_fsck_clean(&store).await;
    let r = gc(&store, grace(Duration::ZERO)).await;
    assert_eq!(r.damaged_chunks, 0, "{r:?}");
    assert_eq!(common::get(&store, "b", "y").await, a);
    common::assert_fsck_clean(&store).await;
}
