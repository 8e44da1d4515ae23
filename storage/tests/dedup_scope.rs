//! Dedup domains (`dedup_scope = tenant`): a tenant created with its own domain names the
//! chunks it uploads with its own keyed ids (wherever it writes), so identical content
//! stored by anyone else is never reused for it (and its content never for anyone else),
//! while its own uploads still dedup; anonymous uploads into its buckets get a domain of
//! their own; verification (read-data, scrub) accepts every domain's ids; the domain
//! survives a reopen, a new encryption key, a rebuild from the store, and its tenant's
//! deletion.

mod common;

use std::sync::Arc;

use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::identity::{DedupDomain, DedupScope, StoredSecret, Uploader};
use s3dedup_storage::ingest::IngestStats;
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::{Store, WriteCondition};

use common::{K1, K2, keyed};

/// Uploads `data` to bucket/key as `who`, as the gateway does; what the ingest found new.
async fn put(
    store: &Store,
    who: Uploader<'_>,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> IngestStats {
    let pending = store
        .ingest_into(who, common::pieces(data, 7919), None)
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
/// the root tenant's bucket `root-b`; the tenants' canonical ids by name.
async fn tenants(store: &Store) -> std::collections::HashMap<String, String> {
    let mut ids = std::collections::HashMap::new();
    for (t, scope) in [
        ("own1", DedupScope::Tenant),
        ("own2", DedupScope::Tenant),
        ("glob", DedupScope::Global),
    ] {
        let rec = store.create_tenant_scoped(t, scope).await.unwrap();
        assert_eq!(store.dedup_scope(&rec), scope);
        ids.insert(t.to_owned(), rec.canonical_id);
        store
            .create_bucket_owned(&format!("{t}-b"), t, false)
            .await
            .unwrap();
    }
    store.create_bucket("root-b").await.unwrap();
    ids
}

fn tenant<'a>(ids: &'a std::collections::HashMap<String, String>, name: &str) -> Uploader<'a> {
    Uploader::Tenant(&ids[name])
}

async fn cross_tenant_reuse_is_confined(
    store: &Store,
    ids: &std::collections::HashMap<String, String>,
) {
    let (own1, own2, glob) = (
        tenant(ids, "own1"),
        tenant(ids, "own2"),
        tenant(ids, "glob"),
    );
    let data = common::random_bytes(11, 96 << 10);
    let first = put(store, own1, "own1-b", "a", &data).await;
    assert!(first.chunks > 10, "{first:?}");
    assert_eq!(first.new_chunks, first.chunks, "fresh content");
    // Its own domain: the same content again reuses everything.
    let again = put(store, own1, "own1-b", "a-again", &data).await;
    assert_eq!((again.chunks, again.new_chunks), (first.chunks, 0));
    // Another domain, and the global one: nothing of own1's is reused.
    let other = put(store, own2, "own2-b", "a", &data).await;
    assert_eq!(other.new_chunks, other.chunks, "own2 reused own1's chunks");
    let root = put(store, Uploader::Root, "root-b", "a", &data).await;
    assert_eq!(
        root.new_chunks, root.chunks,
        "root reused a domain's chunks"
    );
    // A global tenant shares the root tenant's ids.
    let glob_put = put(store, glob, "glob-b", "a", &data).await;
    assert_eq!(
        glob_put.new_chunks, 0,
        "global tenants dedup with the root tenant"
    );
    // And content the root stored first does not help own2 either.
    let data2 = common::random_bytes(12, 64 << 10);
    put(store, Uploader::Root, "root-b", "b", &data2).await;
    let own2_put = put(store, own2, "own2-b", "b", &data2).await;
    assert_eq!(own2_put.new_chunks, own2_put.chunks);
    // Writing into another tenant's bucket (as a bucket policy may allow) names chunks
    // in the writer's domain: own2 in own1's bucket reuses own2's chunks, not own1's,
    // and glob in own1's bucket reuses the global ones.
    let data3 = common::random_bytes(13, 64 << 10);
    put(store, own1, "own1-b", "c3", &data3).await;
    let cross = put(store, own2, "own1-b", "from-own2", &data3).await;
    assert_eq!(
        cross.new_chunks, cross.chunks,
        "own2 reused own1's chunks in own1's bucket"
    );
    let cross = put(store, own2, "own1-b", "from-own2-again", &data2).await;
    assert_eq!(cross.new_chunks, 0, "own2's own content, in own1's bucket");
    let cross = put(store, glob, "own1-b", "from-glob", &data2).await;
    assert_eq!(
        cross.new_chunks, 0,
        "glob's writes into own1's bucket are global"
    );
    let cross = put(store, own1, "glob-b", "from-own1", &data3).await;
    assert_eq!(
        cross.new_chunks, 0,
        "own1's writes into a global bucket stay its own"
    );
    // Anonymous uploads into own1's bucket: their own domain (nothing of own1's, nor of
    // the global domain, is reused; they dedup with each other).
    let anon = Uploader::Anonymous { bucket: "own1-b" };
    let a1 = put(store, anon, "own1-b", "anon-1", &data3).await;
    assert_eq!(
        a1.new_chunks, a1.chunks,
        "an anonymous writer reused own1's chunks"
    );
    let a2 = put(store, anon, "own1-b", "anon-2", &data2).await;
    assert_eq!(
        a2.new_chunks, a2.chunks,
        "an anonymous writer reused global chunks"
    );
    assert_eq!(
        put(store, anon, "own1-b", "anon-3", &data3)
            .await
            .new_chunks,
        0
    );
    // Into a global bucket they are global.
    let anon_glob = Uploader::Anonymous { bucket: "glob-b" };
    assert_eq!(
        put(store, anon_glob, "glob-b", "anon", &data2)
            .await
            .new_chunks,
        0
    );
    let missing = store
        .ingest_into(
            Uploader::Anonymous {
                bucket: "no-such-bucket",
            },
            common::pieces(&data2, 7919),
            None,
        )
        .await;
    assert!(
        matches!(missing, Err(s3dedup_storage::Error::NoSuchBucket(_))),
        "{:?}",
        missing.map(|p| p.stats)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_domains_confine_dedup_and_verify_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let ids = tenants(&store).await;
    cross_tenant_reuse_is_confined(&store, &ids).await;
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
    let own1 = tenant(&ids, "own1");
    assert_eq!(put(&store, own1, "own1-b", "c", &data).await.new_chunks, 0);
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
    let listed = store
        .list_objects("own1-b", "", None, None, 1000)
        .await
        .unwrap();
    for e in listed.entries {
        if let s3dedup_storage::ListEntry::Object { key, .. } = e {
            store.delete_object("own1-b", &key).await.unwrap();
        }
    }
    store.delete_bucket("own1-b").await.unwrap();
    store.delete_tenant("own1").await.unwrap();
    // Reopened without the tenant: its domain is still loaded from the index.
    drop(store);
    let store = common::open_fs(dir.path(), common::small_config()).await;
    assert_eq!(common::get(&store, "root-b", "copy").await, data);
    assert_data_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_are_sealed_resealed_and_rebuilt() {
    let (dir, rebuilt_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = Arc::new(MemoryBlobStore::new());
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), keyed(&[K1])).await;
    let ids = tenants(&store).await;
    cross_tenant_reuse_is_confined(&store, &ids).await;
    assert_data_clean(&store).await;
    drop(store);

    // A new active key: the domain secrets are sealed again, and still work.
    let cfg = keyed(&[K1, K2]);
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    let data = common::random_bytes(11, 96 << 10);
    let own1 = tenant(&ids, "own1");
    assert_eq!(put(&store, own1, "own1-b", "c", &data).await.new_chunks, 0);
    store.ship_journal().await.unwrap();
    drop(store);
    // Every domain secret is sealed under key 2 now.
    {
        const IDENTITIES: redb::TableDefinition<(&str, &str), &[u8]> =
            redb::TableDefinition::new("identities");
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let table = txn.open_table(IDENTITIES).unwrap();
        let mut sealed_under = Vec::new();
        for r in redb::ReadableTable::iter(&table).unwrap() {
            let (k, v) = r.unwrap();
            if k.value().0 == "domain" {
                match DedupDomain::decode(v.value()).unwrap().secret {
                    StoredSecret::Sealed { key, .. } => sealed_under.push(key),
                    StoredSecret::Plain(_) => panic!("a domain secret is kept plain"),
                }
            }
        }
        assert_eq!(sealed_under, [2, 2], "own1's and own2's secrets");
    }

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
    assert_eq!(put(&store, own1, "own1-b", "d", &data).await.new_chunks, 0);
    assert_eq!(
        put(
            &store,
            tenant(&ids, "own2"),
            "own2-b",
            "d",
            &common::random_bytes(11, 96 << 10)
        )
        .await
        .new_chunks,
        0,
        "own2 already stored this content in its own domain"
    );
    assert_data_clean(&store).await;
}
