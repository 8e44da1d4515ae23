//! Same bytes, same chunks; a small edit keeps most chunks shared.

mod common;

use std::collections::HashSet;

use s3dedup_storage::{ChunkId, StoreConfig};

async fn chunk_ids(store: &s3dedup_storage::Store, data: &[u8], piece: usize) -> Vec<ChunkId> {
    let p = store.ingest(common::pieces(data, piece)).await.unwrap();
    p.chunk_ids().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_insert_in_50_mib_keeps_most_chunks_shared() {
    let dir = tempfile::tempdir().unwrap();
    // Default (production) chunker parameters: 16/64/256 KiB.
    let store = common::open_fs(dir.path(), StoreConfig::default()).await;
    let data = common::random_bytes(42, 50 << 20);

    let a = chunk_ids(&store, &data, 1 << 20).await;
    let a_again = chunk_ids(&store, &data, 12_345).await;
    assert_eq!(
        a, a_again,
        "same bytes must give the same chunk ids whatever the framing"
    );
    let expected = (50 << 20) / (64 << 10);
    assert!(
        a.len() > expected / 2 && a.len() < expected * 2,
        "{} chunks for 50 MiB, expected about {expected}",
        a.len()
    );

    let mut edited = data.clone();
    edited.insert(1000, 0xAB);
    let b = chunk_ids(&store, &edited, 1 << 20).await;
    let a_set: HashSet<_> = a.iter().collect();
    let shared = b.iter().filter(|id| a_set.contains(id)).count();
    let fraction = shared as f64 / b.len() as f64;
    // Only the chunk(s) around the insert may change.
    assert!(b.len().abs_diff(a.len()) <= 2);
    assert!(
        shared >= b.len() - 3,
        "only {shared} of {} chunks shared",
        b.len()
    );
    assert!(fraction > 0.99, "shared fraction {fraction}");
}
