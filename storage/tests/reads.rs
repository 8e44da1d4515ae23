//! Reads: whole objects and ranges across chunk, group and pack boundaries.

mod common;

use rand::{Rng, SeedableRng, rngs::StdRng};
use s3dedup_storage::{ByteRange, ObjectMeta, WriteCondition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ranges_match_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    store.create_bucket("b").await.unwrap();
    // Mixed content: repeated runs give dedup within the object; zero runs give
    // max-size chunks; small pieces give inline chunks.
    let mut data = common::random_bytes(1, 70_000);
    data.extend(data[..30_000].to_vec());
    data.extend(vec![0u8; 20_000]);
    data.extend(common::random_bytes(2, 50_003));
    common::put(&store, "b", "k", &data).await;
    // And a copy, read through its own manifest.
    store
        .copy_object(("b", "k"), ("b", "c"), None, WriteCondition::default())
        .await
        .unwrap();
    assert_eq!(common::get(&store, "b", "k").await, data);
    let n = data.len() as u64;
    let mut rng = StdRng::seed_from_u64(5);
    for i in 0..300 {
        let a = rng.random_range(0..n);
        let b = rng.random_range(a..n + 10);
        let (range, want) = match i % 3 {
            0 => (
                ByteRange::FromTo(a, b),
                &data[a as usize..(b + 1).min(n) as usize],
            ),
            1 => (ByteRange::From(a), &data[a as usize..]),
            _ => (
                ByteRange::Suffix(b - a + 1),
                &data[(n - (b - a + 1).min(n)) as usize..],
            ),
        };
        let key = if i % 2 == 0 { "k" } else { "c" };
        let r = store.get_object("b", key, Some(range)).await.unwrap();
        assert_eq!(r.range.1 - r.range.0, want.len() as u64);
        assert_eq!(r.collect().await.unwrap(), want, "{range:?}");
    }
}

#[tokio::test]
async fn tiny_and_empty_objects_need_no_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), s3dedup_storage::StoreConfig::default()).await;
    store.create_bucket("b").await.unwrap();
    for (k, data) in [
        ("empty", vec![]),
        ("tiny", b"4 KiB objects live in the index".to_vec()),
        ("4k", vec![7u8; 4096]),
    ] {
        let p = store.ingest_bytes(data.clone().into()).await.unwrap();
        assert_eq!(p.stats.packs, 0, "{k}");
        store
            .put_object("b", k, p, ObjectMeta::default(), WriteCondition::default())
            .await
            .unwrap();
        assert_eq!(common::get(&store, "b", k).await, data);
    }
    assert!(store.blobs().list("packs/").await.unwrap().is_empty());
    let empty = store.head_object("b", "empty").await.unwrap();
    assert_eq!(empty.etag.to_string(), "d41d8cd98f00b204e9800998ecf8427e");
    common::assert_fsck_clean(&store).await;
}
