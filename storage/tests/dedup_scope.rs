//! Dedup domains (`dedup_scope = tenant`): a tenant created with its own domain names its
//! chunks with its own keyed ids, so identical content stored by anyone else is never
//! reused for it (and its content never for anyone else), while its own uploads still
//! dedup; verification (read-data, scrub) accepts every domain's ids; the domain
//! survives a reopen, a new encryption key, a rebuild from the store, and its tenant's
//! deletion.

mod common;

use std::sync::Arc;

use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::crypto::Keyring;
use s3dedup_storage::identity::DedupScope;
use s3dedup_storage::ingest::IngestStats;
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::{Store, StoreConfig, WriteCondition};

const K1: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
const K2: &str = "2:0202020202020202020202020202020202020202020202020202020202020202";

fn keyed(lines: &[&str]) -> StoreConfig {
    StoreConfig {
        keys: Some(Arc::new(Keyring::parse(&lines.join("\n")).unwrap())),
        ..common::small_config()
    }
}

/// Uploads `data` to bucket/key as the gateway does (named in the bucket owner's
/// domain); what the ingest found new.
async fn put(store: &Store, bucket: &str, key: &str, data: &[u8]) -> IngestStats {
    let pending = store
        .ingest_into(bucket, common::pieces(data, 7919), None)
        .await
        .expect("ingest");
    let stats = pending.stats;
    common::commit_to(store, bucket, key, pending).await;
    assert_eq!(
        common::get(store, bucket, key).await,
        data,
        "{bucket}/{key}"
    );
    stats
}

async fn assert_data_clean(store: &Store) {
    let r = store.verify_data(|_, _| {}).await.unwrap();
    assert!(r.is_clean(), "{r:#?}");
    assert!(r.chunks > 0);
    common::assert_fsck_clean(store).await;
}

/// Tenants `own1`, `own2` (their own domains), `glob` (global) with a bucket each, and
/// the root tenant's bucket `root-b`.
async fn tenants(store: &Store) {
    for (t, scope) in [
        ("own1", DedupScope::Tenant),
        ("own2", DedupScope::Tenant),
        ("glob", DedupScope::Global),
    ] {
        let rec = store.create_tenant_scoped(t, scope).await.unwrap();
        assert_eq!(store.dedup_scope(&rec), scope);
        store
            .create_bucket_owned(&format!("{t}-b"), t, false)
            .await
            .unwrap();
    }
    store.create_bucket("root-b").await.unwrap();
}

async fn cross_tenant_reuse_is_confined(store: &Store) {
    let data = common::random_bytes(11, 96 << 10);
    let first = put(store, "own1-b", "a", &data).await;
    assert!(first.chunks > 10, "{first:?}");
    assert_eq!(first.new_chunks, first.chunks, "fresh content");
    // Its own domain: the same content again reuses everything.
    let again = put(store, "own1-b", "a-again", &data).await;
    assert_eq!((again.chunks, again.new_chunks), (first.chunks, 0));
    // Another domain, and the global one: nothing of own1's is reused.
    let other = put(store, "own2-b", "a", &data).await;
    assert_eq!(other.new_chunks, other.chunks, "own2 reused own1's chunks");
    let root = put(store, "root-b", "a", &data).await;
    assert_eq!(
        root.new_chunks, root.chunks,
        "root reused a domain's chunks"
    );
    // A global tenant shares the root tenant's ids.
    let glob = put(store, "glob-b", "a", &data).await;
    assert_eq!(
        glob.new_chunks, 0,
        "global tenants dedup with the root tenant"
    );
    // And content the root stored first does not help own2 either.
    let data2 = common::random_bytes(12, 64 << 10);
    put(store, "root-b", "b", &data2).await;
    let own2 = put(store, "own2-b", "b", &data2).await;
    assert_eq!(own2.new_chunks, own2.chunks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_domains_confine_dedup_and_verify_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    tenants(&store).await;
    cross_tenant_reuse_is_confined(&store).await;
    assert_data_clean(&store).await;
    let scrub = store
        .scrub(Default::default(), &|_, _, _| {})
        .await
        .unwrap();
    assert!(scrub.totals.chunks > 0);
    assert_eq!(scrub.totals.damaged, 0, "{scrub:#?}");

    // Reopened: the domains are loaded again (own1 still dedups with itself).
    drop(store);
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let data = common::random_bytes(11, 96 << 10);
    assert_eq!(put(&store, "own1-b", "c", &data).await.new_chunks, 0);
    assert_data_clean(&store).await;

    // A copy into another tenant's bucket references own1's chunks; once own1 and its
    // bucket are gone, its domain still verifies them.
    store
        .copy_object(
            ("own1-b", "a"),
            ("root-b", "copy"),
            None,
            WriteCondition::default(),
        )
        .await
        .unwrap();
    for k in ["a", "a-again", "c"] {
        store.delete_object("own1-b", k).await.unwrap();
    }
    store.delete_bucket("own1-b").await.unwrap();
    store.delete_tenant("own1").await.unwrap();
    assert_eq!(common::get(&store, "root-b", "copy").await, data);
    assert_data_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_are_sealed_resealed_and_rebuilt() {
    let (dir, rebuilt_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = Arc::new(MemoryBlobStore::new());
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), keyed(&[K1])).await;
    tenants(&store).await;
    cross_tenant_reuse_is_confined(&store).await;
    assert_data_clean(&store).await;
    drop(store);

    // A new active key: the domain secrets are sealed again, and still work.
    let cfg = keyed(&[K1, K2]);
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    let data = common::random_bytes(11, 96 << 10);
    assert_eq!(put(&store, "own1-b", "c", &data).await.new_chunks, 0);
    store.ship_journal().await.unwrap();
    drop(store);
    // Without the key that sealed them, the store does not open.
    assert!(
        Store::open(
            &dir.path().join("index.redb"),
            Arc::clone(&blobs) as Arc<dyn BlobStore>,
            keyed(&[K1]),
        )
        .await
        .is_err(),
        "a secret sealed under key 2 opened without it"
    );

    // Rebuilt from the store alone: same domains, same dedup, clean data.
    let report = rebuild_index(
        &rebuilt_dir.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &cfg,
    )
    .await
    .unwrap();
    assert!(report.complete(), "{report:#?}");
    let store = common::open_mem(rebuilt_dir.path(), blobs, cfg).await;
    for t in store.tenants().await.unwrap() {
        let want = if t.name == "glob" {
            DedupScope::Global
        } else {
            DedupScope::Tenant
        };
        assert_eq!(store.dedup_scope(&t), want, "{}", t.name);
    }
    assert_eq!(put(&store, "own1-b", "d", &data).await.new_chunks, 0);
    assert_eq!(
        put(&store, "own2-b", "d", &common::random_bytes(11, 96 << 10))
            .await
            .new_chunks,
        0,
        "own2 already stored this content in its own domain"
    );
    assert_data_clean(&store).await;
}
