//! Helpers shared by the storage integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rand::{Rng, SeedableRng, rngs::StdRng};
use s3dedup_storage::blob::{BlobStore, FsBlobStore, MemoryBlobStore};
use s3dedup_storage::{ChunkerParams, ObjectMeta, Store, StoreConfig, WriteCondition};

/// Two encryption key lines (`ID:HEX`), for keyrings in tests.
pub const K1: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
/// See [`K1`].
pub const K2: &str = "2:0202020202020202020202020202020202020202020202020202020202020202";

/// [`small_config`] with a keyring of `lines` (the last is the active key).
pub fn keyed(lines: &[&str]) -> StoreConfig {
    StoreConfig {
        keys: Some(Arc::new(
            s3dedup_storage::crypto::Keyring::parse(&lines.join("\n")).unwrap(),
        )),
        ..small_config()
    }
}

/// Small chunks so tests exercise many chunks and packs with little data.
pub fn small_config() -> StoreConfig {
    StoreConfig {
        chunker: ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
            level: 2,
        },
        pack_target: 16 * 1024,
        inline_max: 300,
        compression: s3dedup_storage::chunk::Compression::default(),
        keys: None,
        hash_parallelism: 3,
        read_ahead: 3,
        coalesce_max: 8 * 1024,
        index_cache: 4 << 20,
        dedup_scope: Default::default(),
    }
}

pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

pub async fn open_fs(dir: &Path, cfg: StoreConfig) -> Store {
    Store::open_dir(dir, cfg).await.expect("open store")
}

pub async fn open_mem(dir: &Path, blobs: Arc<MemoryBlobStore>, cfg: StoreConfig) -> Store {
    Store::open(&dir.join("index.redb"), blobs as Arc<dyn BlobStore>, cfg)
        .await
        .expect("open store")
}

pub fn fs_blobs(dir: &Path) -> FsBlobStore {
    FsBlobStore::open(dir.join("store")).expect("open fs blobs")
}

/// Streams `data` in pieces of `piece` bytes.
pub fn pieces(
    data: &[u8],
    piece: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send + 'static {
    let parts: Vec<_> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(parts)
}

pub async fn put(store: &Store, bucket: &str, key: &str, data: &[u8]) {
    let pending = store.ingest(pieces(data, 7919)).await.expect("ingest");
    commit_to(store, bucket, key, pending).await;
}

pub async fn get(store: &Store, bucket: &str, key: &str) -> Vec<u8> {
    store
        .get_object(bucket, key, None)
        .await
        .expect("open object")
        .collect()
        .await
        .expect("read object")
}

pub async fn assert_fsck_clean(store: &Store) {
    let report = store.fsck().await.expect("fsck");
    assert!(report.is_clean(), "fsck found problems: {report:#?}");
}

/// A store on a fresh temporary directory (small test configuration) with bucket `b`.
pub async fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_fs(dir.path(), small_config()).await;
    store.create_bucket("b").await.unwrap();
    (dir, store)
}

/// Commits an ingested object as `b/key`.
pub async fn commit(store: &Store, key: &str, pending: s3dedup_storage::PendingObject) {
    commit_to(store, "b", key, pending).await;
}

/// Commits an ingested object as `bucket/key` (no metadata, no condition); its record.
pub async fn commit_to(
    store: &Store,
    bucket: &str,
    key: &str,
    pending: s3dedup_storage::PendingObject,
) -> s3dedup_storage::ObjectRecord {
    store
        .put_object(
            bucket,
            key,
            pending,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await
        .expect("commit")
}
