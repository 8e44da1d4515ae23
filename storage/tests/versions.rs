//! Versioning against a model of S3's rules (engine level; the S3 behaviour through
//! real clients is in `conformance/tests/versioning.rs`).
//!
//! Random sequences of writes, copies, deletes, deletes of version ids and versioning
//! changes on a few keys; after every step the store's ListObjectVersions, every
//! version's bytes, the current object and fsck agree with the model. At the end every
//! version is deleted and GC frees everything, and a store rebuilt from the journal
//! lists the same versions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::gc::GcOptions;
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::{
    DeleteOptions, Error, ObjectMeta, Store, VersionEntry, VersionItem, Versioning, WriteCondition,
};

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Object(Vec<u8>),
    Marker,
}

/// One version in the model: its id as the store handed it out, newest first per key.
#[derive(Debug, Clone, PartialEq)]
struct MVersion {
    id: String,
    kind: Kind,
}

#[derive(Default, Debug)]
struct Model {
    state: Option<Versioning>,
    keys: std::collections::BTreeMap<String, Vec<MVersion>>,
}

impl Model {
    fn state(&self) -> Versioning {
        self.state.unwrap_or(Versioning::Unversioned)
    }
    /// A write or delete marker of `kind` with id `id` becomes the newest version.
    fn push(&mut self, key: &str, id: String, kind: Kind) {
        let state = self.state();
        let list = self.keys.entry(key.to_owned()).or_default();
        match state {
            Versioning::Unversioned => list.clear(),
            Versioning::Suspended => list.retain(|v| v.id != "null"),
            Versioning::Enabled => {}
        }
        list.insert(0, MVersion { id, kind });
    }
    fn remove(&mut self, key: &str, id: &str) {
        if let Some(list) = self.keys.get_mut(key) {
            list.retain(|v| v.id != id);
        }
        self.keys.retain(|_, l| !l.is_empty());
    }
    /// (key, id, is marker, latest) in listing order.
    fn listing(&self) -> Vec<(String, String, bool, bool)> {
        let mut out = Vec::new();
        for (k, list) in &self.keys {
            for (i, v) in list.iter().enumerate() {
                out.push((k.clone(), v.id.clone(), v.kind == Kind::Marker, i == 0));
            }
        }
        out
    }
}

fn del(bypass_governance: bool) -> DeleteOptions {
    DeleteOptions {
        bypass_governance,
        if_match: None,
    }
}

async fn put(store: &Store, key: &str, data: &[u8]) -> String {
    let pending = store
        .ingest_bytes(Bytes::copy_from_slice(data))
        .await
        .unwrap();
    let rec = store
        .put_object(
            "b",
            key,
            pending,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await
        .unwrap();
    rec.version.id()
}

async fn read(store: &Store, key: &str, version: Option<&str>) -> Result<Vec<u8>, Error> {
    let r = store.get_version("b", key, version, None).await?;
    let parts: Vec<Bytes> = r.body.try_collect().await?;
    Ok(parts.concat())
}

async fn store_listing(store: &Store, max: usize) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = store
            .list_versions("b", "", None, (km.as_deref(), vm.as_deref()), max)
            .await
            .unwrap();
        for item in &page.items {
            let VersionItem::Version { key, entry, latest } = item else {
                panic!("no delimiter, yet a prefix: {item:?}");
            };
            out.push((
                key.clone(),
                entry.version().id(),
                matches!(entry, VersionEntry::Marker(_)),
                *latest,
            ));
        }
        if !page.is_truncated {
            return out;
        }
        assert!(page.items.len() == max, "a truncated page is full");
        (km, vm) = (page.next_key_marker, page.next_version_marker);
    }
}

async fn check(store: &Store, model: &Model, step: &str) {
    let want = model.listing();
    assert_eq!(store_listing(store, 1000).await, want, "{step}: listing");
    assert_eq!(store_listing(store, 2).await, want, "{step}: paged listing");
    for (key, list) in &model.keys {
        for v in list {
            let got = read(store, key, Some(&v.id)).await;
            match &v.kind {
                Kind::Object(data) => assert_eq!(&got.unwrap(), data, "{step}: {key} {}", v.id),
                Kind::Marker => assert!(
                    matches!(got, Err(Error::DeleteMarker { by_id: true, .. })),
                    "{step}: {key} {} is a marker: {got:?}",
                    v.id
                ),
            }
        }
        let current = read(store, key, None).await;
        match &list[0].kind {
            Kind::Object(data) => assert_eq!(&current.unwrap(), data, "{step}: current {key}"),
            Kind::Marker => assert!(
                matches!(current, Err(Error::DeleteMarker { by_id: false, .. })),
                "{step}: current of {key}: {current:?}"
            ),
        }
    }
    common::assert_fsck_clean(store).await;
}

async fn run(seed: u64, store: &Store) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::default();
    let keys = ["a", "a/b", "c", "d"];
    for step in 0..60 {
        let key = keys[rng.random_range(0..keys.len())];
        let what = rng.random_range(0..100);
        let label;
        if what < 8 {
            let s = if rng.random_bool(0.7) {
                Versioning::Enabled
            } else {
                Versioning::Suspended
            };
            store.set_versioning("b", s).await.unwrap();
            model.state = Some(s);
            label = format!("{step}: versioning {s:?}");
        } else if what < 50 {
            // Inline-sized and packed objects, sharing chunks between versions.
            let len = if rng.random_bool(0.3) { 100 } else { 5000 };
            let mut data = common::random_bytes(seed ^ 77, len);
            data[rng.random_range(0..len)] = rng.random();
            let id = put(store, key, &data).await;
            model.push(key, id.clone(), Kind::Object(data));
            label = format!("{step}: put {key} -> {id}");
        } else if what < 60 {
            let src = keys[rng.random_range(0..keys.len())];
            let Some(v) = model.keys.get(src).and_then(|l| {
                let objs: Vec<_> = l.iter().filter(|v| v.kind != Kind::Marker).collect();
                (!objs.is_empty()).then(|| objs[rng.random_range(0..objs.len())].clone())
            }) else {
                continue;
            };
            let Kind::Object(data) = v.kind else {
                unreachable!()
            };
            let rec = store
                .copy_version(
                    ("b", src),
                    Some(&v.id),
                    ("b", key),
                    None,
                    WriteCondition::default(),
                )
                .await
                .unwrap();
            model.push(key, rec.version.id(), Kind::Object(data));
            label = format!("{step}: copy {src}@{} -> {key}", v.id);
        } else if what < 80 {
            let d = store
                .delete_version("b", key, None, del(false))
                .await
                .unwrap();
            match d.marker {
                Some(m) => model.push(key, m.id(), Kind::Marker),
                None => {
                    assert_eq!(model.state(), Versioning::Unversioned);
                    model.keys.remove(key);
                }
            }
            label = format!("{step}: delete {key}");
        } else {
            let ids: Vec<String> = model
                .keys
                .get(key)
                .map(|l| l.iter().map(|v| v.id.clone()).collect())
                .unwrap_or_default();
            let id = if ids.is_empty() || rng.random_bool(0.1) {
                "0000000000000001".to_owned()
            } else {
                ids[rng.random_range(0..ids.len())].clone()
            };
            store
                .delete_version("b", key, Some(&id), del(false))
                .await
                .unwrap();
            model.remove(key, &id);
            label = format!("{step}: delete {key} version {id}");
        }
        check(store, &model, &label).await;
    }
    model
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_follow_the_model_and_rebuild_from_the_journal() {
    for seed in 0..6u64 {
        let (dir, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let blobs = Arc::new(MemoryBlobStore::new());
        let cfg = common::small_config();
        let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
        store.create_bucket("b").await.unwrap();
        let model = run(seed, &store).await;
        let stats = store.stats().await.unwrap();
        let versions: usize = model.keys.values().map(Vec::len).sum();
        let markers = model
            .keys
            .values()
            .flatten()
            .filter(|v| v.kind == Kind::Marker)
            .count();
        assert_eq!(
            stats.objects + stats.noncurrent_versions + stats.delete_markers,
            versions as u64,
            "seed {seed}: {stats:?}"
        );
        assert_eq!(stats.delete_markers, markers as u64, "seed {seed}");
        // The bucket cannot go while any version is left.
        if versions > 0 {
            assert!(matches!(
                store.delete_bucket("b").await,
                Err(Error::BucketNotEmpty(_))
            ));
        }

        // A rebuild from the journal restores every version and marker.
        store.ship_journal().await.unwrap();
        let listing = store_listing(&store, 1000).await;
        let report = rebuild_index(
            &dir2.path().join("index.redb"),
            Arc::clone(&blobs) as Arc<dyn BlobStore>,
            &cfg,
        )
        .await
        .unwrap();
        assert!(report.complete(), "seed {seed}: {report:#?}");
        let rebuilt = common::open_mem(dir2.path(), Arc::clone(&blobs), cfg.clone()).await;
        assert_eq!(store_listing(&rebuilt, 1000).await, listing, "seed {seed}");
        check(&rebuilt, &model, "rebuilt").await;
        assert_eq!(
            rebuilt.bucket("b").await.unwrap().unwrap().versioning,
            model.state(),
        );
        drop(rebuilt);

        // Deleting every version frees everything.
        for (key, list) in &model.keys {
            for v in list {
                store
                    .delete_version("b", key, Some(&v.id), del(false))
                    .await
                    .unwrap();
            }
        }
        assert!(store_listing(&store, 1000).await.is_empty());
        let s = store.stats().await.unwrap();
        assert_eq!(
            (
                s.logical_bytes,
                s.objects,
                s.noncurrent_versions,
                s.delete_markers,
                s.chunks
            ),
            (0, 0, 0, 0, 0),
            "seed {seed}"
        );
        store
            .gc(
                GcOptions {
                    grace: Duration::ZERO,
                    ..GcOptions::default()
                },
                &|_, _| {},
            )
            .await
            .unwrap();
        common::assert_fsck_clean(&store).await;
        store.delete_bucket("b").await.unwrap();
    }
}

#[tokio::test]
async fn bad_version_ids_and_missing_versions() {
    let (_dir, store) = common::fresh_store().await;
    put(&store, "k", b"one").await;
    // Unversioned: the object is the null version.
    assert_eq!(read(&store, "k", Some("null")).await.unwrap(), b"one");
    for bad in ["", "x", "NULL", "00000000000000000"] {
        assert!(
            matches!(
                read(&store, "k", Some(bad)).await,
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        read(&store, "k", Some("0000000000000001")).await,
        Err(Error::NoSuchVersion { .. })
    ));
    store
        .set_versioning("b", Versioning::Enabled)
        .await
        .unwrap();
    assert!(matches!(
        store.set_versioning("b", Versioning::Unversioned).await,
        Err(Error::InvalidArgument(_))
    ));
    let v2 = put(&store, "k", b"two").await;
    assert_ne!(v2, "null");
    assert_eq!(read(&store, "k", Some("null")).await.unwrap(), b"one");
    assert_eq!(read(&store, "k", None).await.unwrap(), b"two");
    // Deleting a version that does not exist changes nothing.
    let d = store
        .delete_version("b", "k", Some("0000000000000001"), del(false))
        .await
        .unwrap();
    assert_eq!(d, Default::default());
    assert_eq!(read(&store, "k", None).await.unwrap(), b"two");
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_protects_versions_from_every_deletion_until_it_ends() {
    use s3dedup_storage::LockRequest;
    use s3dedup_storage::lock::{LockConfig, Period, Retention, RetentionMode};
    let (dir2, blobs) = (
        tempfile::tempdir().unwrap(),
        Arc::new(MemoryBlobStore::new()),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::small_config();
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    // Lock needs versioning; a plain bucket refuses lock requests.
    store.create_bucket("plain").await.unwrap();
    assert!(matches!(
        store
            .set_lock_config(
                "plain",
                LockConfig {
                    enabled: true,
                    default: None
                }
            )
            .await,
        Err(Error::InvalidBucketState(_))
    ));
    store.create_bucket_with_lock("b").await.unwrap();
    let b = store.bucket("b").await.unwrap().unwrap();
    assert_eq!((b.versioning, b.lock.enabled), (Versioning::Enabled, true));
    assert!(matches!(
        store.set_versioning("b", Versioning::Suspended).await,
        Err(Error::InvalidBucketState(_))
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let data = common::random_bytes(5, 20_000);
    let put_locked = |key: &'static str, lock: LockRequest| {
        let (store, data) = (store.clone(), data.clone());
        async move {
            let pending = store.ingest_bytes(Bytes::from(data)).await.unwrap();
            let cond = WriteCondition {
                lock,
                ..Default::default()
            };
            store
                .put_object("b", key, pending, ObjectMeta::default(), cond)
                .await
                .unwrap()
                .version
                .id()
        }
    };
    let comp = |until_ms| Retention {
        mode: RetentionMode::Compliance,
        until_ms,
    };
    let c = put_locked(
        "c",
        LockRequest {
            retention: Some(comp(now + 1500)),
            legal_hold: None,
        },
    )
    .await;
    let g = put_locked(
        "g",
        LockRequest {
            retention: Some(Retention {
                mode: RetentionMode::Governance,
                until_ms: now + 3_600_000,
            }),
            legal_hold: None,
        },
    )
    .await;
    let h = put_locked(
        "h",
        LockRequest {
            retention: None,
            legal_hold: Some(true),
        },
    )
    .await;
    // COMPLIANCE: not deletable, not shortenable, not even with the bypass.
    for bypass in [false, true] {
        assert!(matches!(
            store.delete_version("b", "c", Some(&c), del(bypass)).await,
            Err(Error::ObjectLocked(_))
        ));
        assert!(matches!(
            store
                .put_retention("b", "c", Some(&c), Some(comp(now + 10)), bypass)
                .await,
            Err(Error::ObjectLocked(_))
        ));
        assert!(matches!(
            store.put_retention("b", "c", Some(&c), None, bypass).await,
            Err(Error::ObjectLocked(_))
        ));
    }
    // A delete marker hides it but destroys nothing; GC leaves its chunks.
    store
        .delete_version("b", "c", None, del(false))
        .await
        .unwrap();
    store
        .gc(
            GcOptions {
                grace: Duration::ZERO,
                ..GcOptions::default()
            },
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(read(&store, "c", Some(&c)).await.unwrap(), data);
    // GOVERNANCE yields to the bypass only; a legal hold to nothing but its removal.
    assert!(matches!(
        store.delete_version("b", "g", Some(&g), del(false)).await,
        Err(Error::ObjectLocked(_))
    ));
    for bypass in [false, true] {
        assert!(matches!(
            store.delete_version("b", "h", Some(&h), del(bypass)).await,
            Err(Error::ObjectLocked(_))
        ));
    }
    // The journal carries the locks: a rebuilt index refuses the same deletions.
    store.ship_journal().await.unwrap();
    let report = rebuild_index(
        &dir2.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &cfg,
    )
    .await
    .unwrap();
    assert!(report.complete(), "{report:#?}");
    let rebuilt = common::open_mem(dir2.path(), Arc::clone(&blobs), cfg.clone()).await;
    let (_, lock) = rebuilt.object_lock("b", "c", Some(&c)).await.unwrap();
    assert_eq!(lock.retention, Some(comp(now + 1500)));
    assert!(matches!(
        rebuilt.delete_version("b", "h", Some(&h), del(true)).await,
        Err(Error::ObjectLocked(_))
    ));
    common::assert_fsck_clean(&rebuilt).await;
    drop(rebuilt);

    store
        .delete_version("b", "g", Some(&g), del(true))
        .await
        .unwrap();
    store
        .put_legal_hold("b", "h", Some(&h), false)
        .await
        .unwrap();
    store
        .delete_version("b", "h", Some(&h), del(false))
        .await
        .unwrap();
    // After the date, COMPLIANCE lets go.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    store
        .delete_version("b", "c", Some(&c), del(false))
        .await
        .unwrap();
    common::assert_fsck_clean(&store).await;
    // Default retention applies to writes that ask for none.
    store
        .set_lock_config(
            "b",
            LockConfig {
                enabled: true,
                default: Some((RetentionMode::Governance, Period::Days(1))),
            },
        )
        .await
        .unwrap();
    let d = put_locked("d", LockRequest::default()).await;
    let (_, lock) = store.object_lock("b", "d", Some(&d)).await.unwrap();
    let r = lock.retention.expect("default retention");
    assert_eq!(r.mode, RetentionMode::Governance);
    assert!(r.until_ms >= now + 86_400_000 - 1000, "{r:?}");
    // A lock request on a bucket without lock is refused, nothing written.
    let pending = store.ingest_bytes(Bytes::from_static(b"x")).await.unwrap();
    let cond = WriteCondition {
        lock: LockRequest {
            retention: None,
            legal_hold: Some(true),
        },
        ..Default::default()
    };
    assert!(matches!(
        store
            .put_object("plain", "x", pending, ObjectMeta::default(), cond)
            .await,
        Err(Error::NoObjectLock(_))
    ));
    assert!(store.head_object("plain", "x").await.is_err());
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn if_match_on_delete_is_checked_in_the_deleting_transaction() {
    let (_dir, store) = common::fresh_store().await;
    put(&store, "k", b"one").await;
    let etag = store.head_object("b", "k").await.unwrap().etag.to_string();
    let cond = |m: &str| DeleteOptions {
        bypass_governance: false,
        if_match: Some(m.to_owned()),
    };
    assert!(matches!(
        store.delete_version("b", "k", None, cond("\"0123\"")).await,
        Err(Error::PreconditionFailed)
    ));
    assert_eq!(read(&store, "k", None).await.unwrap(), b"one");
    assert!(matches!(
        store.delete_version("b", "gone", None, cond("*")).await,
        Err(Error::NoSuchKey { .. })
    ));
    store
        .delete_version("b", "k", None, cond(&format!("\"{etag}\"")))
        .await
        .unwrap();
    assert!(read(&store, "k", None).await.is_err());
    // By version id: the named version's ETag; a delete marker has none.
    store
        .set_versioning("b", Versioning::Enabled)
        .await
        .unwrap();
    let v = put(&store, "k", b"two").await;
    let etag = store.head_object("b", "k").await.unwrap().etag.to_string();
    let m = store
        .delete_version("b", "k", None, del(false))
        .await
        .unwrap()
        .marker
        .unwrap()
        .id();
    assert!(matches!(
        store.delete_version("b", "k", Some(&m), cond("*")).await,
        Err(Error::PreconditionFailed)
    ));
    assert!(matches!(
        store
            .delete_version("b", "k", Some(&v), cond("\"0123\""))
            .await,
        Err(Error::PreconditionFailed)
    ));
    store
        .delete_version("b", "k", Some(&v), cond(&etag))
        .await
        .unwrap();
    common::assert_fsck_clean(&store).await;
}

/// A rebuild that loses a key's current version (its pack is gone) makes the newest
/// surviving version current, and drops the lost version's lock with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_that_loses_the_current_version_promotes_the_one_below() {
    use s3dedup_storage::LockRequest;
    let (dir, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = Arc::new(MemoryBlobStore::new());
    let cfg = common::small_config();
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket_with_lock("b").await.unwrap();
    let v1 = common::random_bytes(1, 30_000);
    put(&store, "k", &v1).await;
    let packs = |blobs: Arc<MemoryBlobStore>| async move {
        blobs
            .list(s3dedup_storage::pack::PACKS_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = packs(Arc::clone(&blobs)).await;
    let pending = store
        .ingest_bytes(Bytes::from(common::random_bytes(2, 30_000)))
        .await
        .unwrap();
    let cond = WriteCondition {
        lock: LockRequest {
            retention: None,
            legal_hold: Some(true),
        },
        ..Default::default()
    };
    store
        .put_object("b", "k", pending, ObjectMeta::default(), cond)
        .await
        .unwrap();
    store.ship_journal().await.unwrap();
    drop(store);
    let lost: Vec<String> = packs(Arc::clone(&blobs))
        .await
        .difference(&before)
        .cloned()
        .collect();
    assert!(!lost.is_empty());
    for name in &lost {
        blobs.delete(name).await.unwrap();
    }
    let report = rebuild_index(
        &dir2.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &cfg,
    )
    .await
    .unwrap();
    assert!(!report.complete());
    assert_eq!(report.objects_lost, vec![("b".to_owned(), "k".to_owned())]);
    let rebuilt = common::open_mem(dir2.path(), Arc::clone(&blobs), cfg).await;
    assert_eq!(read(&rebuilt, "k", None).await.unwrap(), v1);
    let listing = store_listing(&rebuilt, 10).await;
    assert_eq!(listing.len(), 1, "{listing:?}");
    assert!(listing[0].3, "the survivor is the latest");
    common::assert_fsck_clean(&rebuilt).await;
}
