//! One contract suite for every `BlobStore` implementation (see `blob` module docs).

use std::sync::Arc;

use bytes::Bytes;
use s3dedup_storage::blob::contract::contract;
use s3dedup_storage::blob::{BlobStore, FsBlobStore, MemoryBlobStore};

#[tokio::test]
async fn memory_store_meets_the_contract() {
    contract(Arc::new(MemoryBlobStore::new())).await;
}

#[tokio::test]
async fn fs_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(FsBlobStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn fs_store_leaves_no_temp_files_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    store
        .put("packs/aa/x.pack", Bytes::from_static(b"payload"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    // A dropped streamed writer cleans up its temp file.
    let mut w = store.writer("packs/aa/y.pack").await.unwrap();
    w.write(Bytes::from(vec![7u8; 3_000_000])).await.unwrap();
    drop(w);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    // A crash mid-put leaves a temp file; reopening removes it and keeps the blob.
    std::fs::write(dir.path().join("tmp/leftover"), b"partial").unwrap();
    drop(store);
    let store = FsBlobStore::open(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(&store.get("packs/aa/x.pack").await.unwrap()[..], b"payload");
    assert_eq!(store.list("").await.unwrap().len(), 1);
}
