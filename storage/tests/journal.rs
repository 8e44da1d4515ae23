//! The metadata journal and snapshots in the backing store, and `rebuild_index`
//! (engine level; `conformance/tests/disaster_recovery.rs` runs the same with the real
//! binary, the aws CLI and an S3 store behind the fault proxy).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use s3dedup_storage::blob::{BlobInfo, BlobStore, BlobWriter, MemoryBlobStore};
use s3dedup_storage::crypto::Keyring;
use s3dedup_storage::gc::GcOptions;
use s3dedup_storage::journal::rebuild::{RebuildReport, rebuild_index};
use s3dedup_storage::journal::{SEGMENTS_PREFIX, SNAPSHOTS_PREFIX};
use s3dedup_storage::{Error, ListEntry, ObjectMeta, Store, StoreConfig, WriteCondition};

type Dump = BTreeMap<(String, String), (String, u64, ObjectMeta, Vec<u8>)>;

/// Every object of every bucket: ETag, size, metadata, bytes.
async fn dump(store: &Store) -> Dump {
    let mut out = BTreeMap::new();
    for (bucket, _) in store.buckets().await.unwrap() {
        let page = store
            .list_objects(&bucket, "", None, None, 100_000)
            .await
            .unwrap();
        for e in page.entries {
            let ListEntry::Object { key, record } = e else {
                continue;
            };
            let data = common::get(store, &bucket, &key).await;
            out.insert(
                (bucket.clone(), key),
                (record.etag.to_string(), record.size, record.meta, data),
            );
        }
    }
    out
}

fn assert_same(a: &Dump, b: &Dump) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "objects differ"
    );
    for (k, (etag, size, meta, data)) in a {
        let (etag2, size2, meta2, data2) = &b[k];
        assert_eq!((etag, size, meta), (etag2, size2, meta2), "{k:?}");
        assert!(data == data2, "{k:?}: bytes differ");
    }
}

fn meta(tag: &str) -> ObjectMeta {
    ObjectMeta {
        content_type: Some("text/plain".into()),
        headers: vec![("cache-control".into(), "no-cache".into())],
        user: vec![("tag".into(), tag.into())],
        checksums: vec![("CRC32C".into(), format!("c-{tag}"))],
    }
}

async fn put_meta(store: &Store, bucket: &str, key: &str, data: &[u8], m: ObjectMeta) {
    let pending = store
        .ingest_bytes(Bytes::copy_from_slice(data))
        .await
        .unwrap();
    store
        .put_object(bucket, key, pending, m, WriteCondition::default())
        .await
        .unwrap();
}

/// A mix: single PUTs (inline-sized and large), a multipart upload, copies, an
/// overwrite, deletes, a deleted bucket.
async fn workload(store: &Store, round: u64) {
    let b = format!("b{round}");
    store.create_bucket(&b).await.unwrap();
    store.create_bucket("gone").await.ok();
    let big = common::random_bytes(round, 60_000);
    put_meta(store, &b, "big", &big, meta("big")).await;
    put_meta(store, &b, "tiny", b"tiny object", meta("tiny")).await;
    common::put(store, &b, "dup", &big).await;
    common::put(
        store,
        &b,
        "over",
        &common::random_bytes(round + 100, 20_000),
    )
    .await;
    common::put(
        store,
        &b,
        "over",
        &common::random_bytes(round + 200, 25_000),
    )
    .await;
    common::put(
        store,
        &b,
        "deleted",
        &common::random_bytes(round + 300, 30_000),
    )
    .await;
    store.delete_object(&b, "deleted").await.unwrap();
    store
        .copy_object((&b, "big"), (&b, "copy"), None, WriteCondition::default())
        .await
        .unwrap();
    store
        .copy_object(
            (&b, "tiny"),
            (&b, "copy-meta"),
            Some(meta("replaced")),
            WriteCondition::default(),
        )
        .await
        .unwrap();
    let id = store
        .create_upload(&b, "multi", meta("mp"), Default::default())
        .await
        .unwrap();
    let mut etags = Vec::new();
    for n in 1..=3u32 {
        let data = common::random_bytes(round * 10 + u64::from(n), 12_000);
        let pending = store.ingest_bytes(Bytes::from(data)).await.unwrap();
        let part = store.put_part(&id, n, pending, Vec::new()).await.unwrap();
        etags.push((n, part.etag().to_string()));
    }
    store
        .complete_upload(&id, etags, 0, Vec::new(), WriteCondition::default(), None)
        .await
        .unwrap();
    common::put(store, "gone", &format!("x{round}"), b"short-lived").await;
    store
        .delete_object("gone", &format!("x{round}"))
        .await
        .unwrap();
    store.delete_bucket("gone").await.unwrap();
}

async fn rebuild(dir: &Path, blobs: &Arc<MemoryBlobStore>, cfg: &StoreConfig) -> RebuildReport {
    let blobs = Arc::clone(blobs) as Arc<dyn BlobStore>;
    rebuild_index(&dir.join("index.redb"), blobs, cfg)
        .await
        .expect("rebuild")
}

async fn blob_names(blobs: &MemoryBlobStore, prefix: &str) -> Vec<String> {
    blobs
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_journal_rebuild_every_live_object() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = common::small_config();
    let store = common::open_mem(old_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    workload(&store, 1).await;
    // The first shipment starts with a snapshot, then more changes go to the journal
    // only, then a second snapshot, then more journal.
    store.ship_journal().await.unwrap();
    assert_eq!(
        blob_names(&blobs, SNAPSHOTS_PREFIX).await.len(),
        2,
        "one part + manifest"
    );
    workload(&store, 2).await;
    store.ship_journal().await.unwrap();
    let snap = store.snapshot_journal().await.unwrap();
    assert!(snap.seq.is_some() && snap.entries > 0, "{snap:?}");
    workload(&store, 3).await;
    store.ship_journal().await.unwrap();
    let status = store.journal_status().unwrap();
    assert_eq!((status.pending_entries, status.pending_bytes), (0, 0));
    assert!(!blob_names(&blobs, SEGMENTS_PREFIX).await.is_empty());
    let before = dump(&store).await;
    assert!(before.len() >= 21, "{} objects", before.len());
    let stats_before = store.stats().await.unwrap();
    drop(store);

    let report = rebuild(new_dir.path(), &blobs, &cfg).await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(report.snapshot_seq, snap.seq);
    assert!(report.entries_replayed > 0);
    let rebuilt = common::open_mem(new_dir.path(), Arc::clone(&blobs), cfg).await;
    common::assert_fsck_clean(&rebuilt).await;
    assert_same(&before, &dump(&rebuilt).await);
    let stats = rebuilt.stats().await.unwrap();
    assert_eq!(
        (
            stats.logical_bytes,
            stats.objects,
            stats.unique_bytes,
            stats.chunks
        ),
        (
            stats_before.logical_bytes,
            stats_before.objects,
            stats_before.unique_bytes,
            stats_before.chunks
        )
    );
    assert!(rebuilt.bucket("gone").await.unwrap().is_none());
    // The rebuilt index keeps journaling: a change after it survives a second rebuild.
    common::put(&rebuilt, "b1", "after", b"written after the rebuild").await;
    rebuilt.ship_journal().await.unwrap();
    let again = dump(&rebuilt).await;
    drop(rebuilt);
    let third = tempfile::tempdir().unwrap();
    let report = rebuild(third.path(), &blobs, &common::small_config()).await;
    assert!(report.complete(), "{report:#?}");
    let rebuilt = common::open_mem(third.path(), blobs, common::small_config()).await;
    assert_same(&again, &dump(&rebuilt).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_gc_after_the_last_shipment_are_reconciled_with_the_packs() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = common::small_config();
    let store = common::open_mem(old_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket("b").await.unwrap();
    // Each `keep` shares the first part of a `drop`'s chunks: once `drop` is deleted,
    // the packs it wrote are partly live, and compaction moves what is left.
    for i in 0..6u64 {
        let data = common::random_bytes(i, 60_000);
        common::put(&store, "b", &format!("drop{i}"), &data).await;
        common::put(&store, "b", &format!("keep{i}"), &data[..25_000]).await;
    }
    store.ship_journal().await.unwrap();
    for i in 0..6u64 {
        store.delete_object("b", &format!("drop{i}")).await.unwrap();
    }
    store.ship_journal().await.unwrap();
    let before = dump(&store).await;
    // GC with no grace: chunks go, packs are compacted (live chunks move to new packs)
    // and emptied packs deleted. Their moves are journaled but never shipped here.
    let opts = GcOptions {
        grace: Duration::ZERO,
        compact_threshold: 0.9,
        ..GcOptions::default()
    };
    let gc = store.gc(opts, &|_, _| {}).await.unwrap();
    assert!(
        gc.packs_deleted > 0 && gc.compaction_moved_chunks > 0,
        "{gc:?}"
    );
    let unshipped = store.journal_status().unwrap().pending_entries;
    assert!(unshipped > 0, "compaction journals its moves");
    drop(store);
    let report = rebuild(new_dir.path(), &blobs, &cfg).await;
    assert!(report.complete(), "{report:#?}");
    assert!(report.chunks_relocated > 0, "{report:#?}");
    let rebuilt = common::open_mem(new_dir.path(), blobs, cfg).await;
    common::assert_fsck_clean(&rebuilt).await;
    assert_same(&before, &dump(&rebuilt).await);
}

/// A memory store whose journal writes fail while `down` is set.
#[derive(Debug, Default)]
struct JournalDown {
    inner: MemoryBlobStore,
    down: AtomicBool,
}

impl BlobStore for JournalDown {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, s3dedup_storage::Result<()>> {
        Box::pin(async move {
            if name.starts_with("journal/") && self.down.load(Ordering::SeqCst) {
                return Err(Error::Backend("journal writes are down".into()));
            }
            self.inner.put(name, data).await
        })
    }
    fn writer<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Box<dyn BlobWriter>>> {
        self.inner.writer(name)
    }
    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Bytes>> {
        self.inner.get_range(name, offset, len)
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, s3dedup_storage::Result<Bytes>> {
        self.inner.get(name)
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, s3dedup_storage::Result<()>> {
        self.inner.delete(name)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Vec<BlobInfo>>> {
        self.inner.list(prefix)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_removes_what_an_unshipped_delete_released() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(JournalDown::default());
    let store = Store::open(
        &dir.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        common::small_config(),
    )
    .await
    .unwrap();
    store.create_bucket("b").await.unwrap();
    common::put(&store, "b", "k", &common::random_bytes(9, 40_000)).await;
    store.ship_journal().await.unwrap();
    store.delete_object("b", "k").await.unwrap();
    let opts = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    // The delete cannot reach the store's journal: GC fails before removing anything
    // (a rebuild would bring `k` back, so its chunks must stay).
    blobs.down.store(true, Ordering::SeqCst);
    let err = store.gc(opts, &|_, _| {}).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
    assert!(!store.gc_queue().unwrap().is_empty(), "nothing collected");
    blobs.down.store(false, Ordering::SeqCst);
    let gc = store.gc(opts, &|_, _| {}).await.unwrap();
    assert!(gc.chunks_removed > 0, "{gc:?}");
    assert_eq!(store.journal_status().unwrap().pending_entries, 0);
}

/// Flips one byte in the middle of a blob.
async fn damage(blobs: &MemoryBlobStore, name: &str) {
    let mut b = blobs.get(name).await.unwrap().to_vec();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    blobs.put(name, Bytes::from(b)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshot_falls_back_and_damaged_segment_is_reported_as_a_gap() {
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = common::small_config();
    let old_dir = tempfile::tempdir().unwrap();
    let store = common::open_mem(old_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    workload(&store, 1).await;
    store.ship_journal().await.unwrap(); // snapshot A + nothing
    workload(&store, 2).await;
    store.snapshot_journal().await.unwrap(); // segments, then snapshot B
    common::put(&store, "b1", "late", b"late object").await;
    store.ship_journal().await.unwrap();
    let before = dump(&store).await;
    drop(store);

    // Damage the newest snapshot: the older one and the journal after it still
    // restore everything.
    let snaps = blob_names(&blobs, SNAPSHOTS_PREFIX).await;
    let newest_part = snaps
        .iter()
        .rfind(|n| n.contains("/part-"))
        .unwrap()
        .clone();
    damage(&blobs, &newest_part).await;
    let dir = tempfile::tempdir().unwrap();
    let report = rebuild(dir.path(), &blobs, &cfg).await;
    assert_eq!(report.snapshots_skipped.len(), 1, "{report:#?}");
    assert!(
        report.snapshots_skipped[0].contains("differs"),
        "{report:#?}"
    );
    assert!(report.gaps.is_empty(), "{report:#?}");
    let rebuilt = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    assert_same(&before, &dump(&rebuilt).await);
    drop(rebuilt);

    // Damage the last segment too: its changes are reported lost, the rest restored.
    let segs = blob_names(&blobs, SEGMENTS_PREFIX).await;
    let last = segs.last().unwrap().clone();
    let mut b = blobs.get(&last).await.unwrap().to_vec();
    b.truncate(b.len() - 10);
    blobs.put(&last, Bytes::from(b)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = rebuild(dir.path(), &blobs, &cfg).await;
    assert_eq!(report.segments_skipped.len(), 1, "{report:#?}");
    assert!(
        report.segments_skipped[0].contains("checksum"),
        "{report:#?}"
    );
    assert!(!report.complete());
    let rebuilt = common::open_mem(dir.path(), Arc::clone(&blobs), cfg).await;
    common::assert_fsck_clean(&rebuilt).await;
    let after = dump(&rebuilt).await;
    assert!(!after.contains_key(&("b1".to_string(), "late".to_string())));
    assert!(after.contains_key(&("b2".to_string(), "big".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_from_another_store_is_refused() {
    let cfg = common::small_config();
    let (a, b) = (
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryBlobStore::new()),
    );
    for blobs in [&a, &b] {
        let dir = tempfile::tempdir().unwrap();
        let store = common::open_mem(dir.path(), Arc::clone(blobs), cfg.clone()).await;
        workload(&store, 1).await;
        store.ship_journal().await.unwrap();
    }
    let foreign = blob_names(&a, SEGMENTS_PREFIX).await;
    let name = format!("{SEGMENTS_PREFIX}{:020}-{:020}", 9_999_990, 9_999_999);
    let blob = a.get(foreign.last().unwrap()).await.unwrap();
    b.put(&name, blob).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = rebuild_index(
        &dir.path().join("index.redb"),
        b as Arc<dyn BlobStore>,
        &cfg,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::JournalForeign { .. }), "{err}");
    assert!(!dir.path().join("index.redb").exists(), "nothing written");
}

const K1: &str = "1:1111111111111111111111111111111111111111111111111111111111111111";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_journal_needs_its_key_and_reveals_no_key_names() {
    let keys = Some(Arc::new(Keyring::parse(K1).unwrap()));
    let cfg = StoreConfig {
        keys: keys.clone(),
        ..common::small_config()
    };
    let blobs = Arc::new(MemoryBlobStore::new());
    let old = tempfile::tempdir().unwrap();
    let store = common::open_mem(old.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket("secret-bucket-name").await.unwrap();
    let key = "a-very-recognisable-object-key-name-0123456789";
    put_meta(
        &store,
        "secret-bucket-name",
        key,
        &common::random_bytes(1, 9000),
        meta("tag-value-xyzzy"),
    )
    .await;
    store.ship_journal().await.unwrap();
    common::put(&store, "secret-bucket-name", "second", b"more").await;
    store.ship_journal().await.unwrap();
    let before = dump(&store).await;
    drop(store);
    for prefix in ["journal/"] {
        for name in blob_names(&blobs, prefix).await {
            let b = blobs.get(&name).await.unwrap();
            for needle in [key.as_bytes(), b"secret-bucket-name", b"tag-value-xyzzy"] {
                assert!(
                    !b.windows(needle.len()).any(|w| w == needle),
                    "{name} shows {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
    }
    // Without the key: refused, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let err = rebuild_index(
        &dir.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &common::small_config(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::EncryptionRequired { .. }), "{err}");
    assert!(!dir.path().join("index.redb").exists());
    // With a wrong key under the same id: refused, nothing written.
    let wrong = StoreConfig {
        keys: Some(Arc::new(
            Keyring::parse("1:2222222222222222222222222222222222222222222222222222222222222222")
                .unwrap(),
        )),
        ..common::small_config()
    };
    let err = rebuild_index(
        &dir.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &wrong,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err}");
    assert!(!dir.path().join("index.redb").exists());
    // With it: everything back, keyed ids and all, even with the store's marker gone
    // (the identity is read from the sealed journal's headers).
    let marker = blobs
        .get(s3dedup_storage::store::STORE_ID_BLOB)
        .await
        .unwrap();
    blobs
        .delete(s3dedup_storage::store::STORE_ID_BLOB)
        .await
        .unwrap();
    let report = rebuild(dir.path(), &blobs, &cfg).await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(report.store_id.as_bytes(), &marker[..]);
    let rebuilt = common::open_mem(dir.path(), blobs, cfg).await;
    common::assert_fsck_clean(&rebuilt).await;
    assert_same(&before, &dump(&rebuilt).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_restored_from_an_older_copy_restarts_the_journal_with_a_snapshot() {
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = common::small_config();
    let dir = tempfile::tempdir().unwrap();
    let copies = dir.path().join("copies");
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket("b").await.unwrap();
    common::put(&store, "b", "early", b"before the copy").await;
    store.ship_journal().await.unwrap();
    store.snapshot_index(&copies, 3).await.unwrap();
    // The history the restored copy loses: shipped to the store, then the disk dies.
    common::put(&store, "b", "lost", b"after the copy").await;
    store.delete_object("b", "early").await.unwrap();
    store.ship_journal().await.unwrap();
    drop(store);
    let copy = std::fs::read_dir(&copies)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored_dir.path().join("index.redb")).unwrap();
    let restored = common::open_mem(restored_dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    common::put(&restored, "b", "new", b"after the restore").await;
    restored.ship_journal().await.unwrap();
    let want = dump(&restored).await;
    assert!(want.contains_key(&("b".into(), "early".into())));
    drop(restored);
    let rebuilt_dir = tempfile::tempdir().unwrap();
    let report = rebuild(rebuilt_dir.path(), &blobs, &cfg).await;
    assert!(report.complete(), "{report:#?}");
    let rebuilt = common::open_mem(rebuilt_dir.path(), blobs, cfg).await;
    // The restored index's state, not a mix with the history it lost.
    assert_same(&want, &dump(&rebuilt).await);
}
