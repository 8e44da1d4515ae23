//! Old-format fixtures of the metadata journal: segments, snapshot parts and manifests
//! (plaintext, and sealed under the fixed test key), written by version 1 of the format
//! together with the packs they describe. Each set must rebuild into the objects it
//! recorded, so a layout change that would misread a journal fails here.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::crypto::Keyring;
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::{ListEntry, StoreConfig};

/// Fixed key of the sealed fixtures (test material only).
const FIXTURE_KEY: &str = "7:7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f";

fn dir(set: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/journal-v1")
        .join(set)
}

fn config(sealed: bool) -> StoreConfig {
    StoreConfig {
        keys: sealed.then(|| Arc::new(Keyring::parse(FIXTURE_KEY).unwrap())),
        ..common::small_config()
    }
}

/// Blob names are stored with `/` as `__`.
fn file_name(blob: &str) -> String {
    blob.replace('/', "__")
}

fn data(i: u64) -> Vec<u8> {
    let mut v = common::random_bytes(i, 3000 + 4000 * i as usize);
    v.extend(format!("fixture object {i}\n").repeat(50).bytes());
    v
}

async fn check(set: &str, sealed: bool) {
    let blobs = Arc::new(MemoryBlobStore::new());
    for e in std::fs::read_dir(dir(set)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().replace("__", "/");
        if name == "expected.txt" {
            continue;
        }
        let bytes = std::fs::read(e.path()).unwrap();
        blobs.put(&name, Bytes::from(bytes)).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let report = rebuild_index(
        &tmp.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &config(sealed),
    )
    .await
    .unwrap();
    assert!(report.complete(), "{report:#?}");
    assert!(
        report.snapshot_seq.is_some() && report.entries_replayed > 0,
        "{report:#?}"
    );
    let store = common::open_mem(tmp.path(), blobs, config(sealed)).await;
    common::assert_fsck_clean(&store).await;
    let expected = std::fs::read_to_string(dir(set).join("expected.txt")).unwrap();
    let mut seen = 0;
    for line in expected.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (bucket, key, seed, etag) = (f[0], f[1], f[2].parse::<u64>().unwrap(), f[3]);
        let rec = store.head_object(bucket, key).await.unwrap();
        assert_eq!(rec.etag.to_string(), etag, "{bucket}/{key}");
        assert!(
            common::get(&store, bucket, key).await == data(seed),
            "{bucket}/{key}"
        );
        seen += 1;
    }
    let listed = store
        .list_objects("fx", "", None, None, 1000)
        .await
        .unwrap();
    let n = listed
        .entries
        .iter()
        .filter(|e| matches!(e, ListEntry::Object { .. }))
        .count();
    assert_eq!(n, seen, "nothing deleted came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_journal_v1_rebuilds() {
    check("plain", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_journal_v1_rebuilds_with_its_key() {
    check("sealed", true).await;
}

#[tokio::test]
#[ignore = "wrote the journal fixtures; never regenerate them"]
async fn write_journal_fixtures() {
    for (set, sealed) in [("plain", false), ("sealed", true)] {
        let blobs = Arc::new(MemoryBlobStore::new());
        let tmp = tempfile::tempdir().unwrap();
        let store = common::open_mem(tmp.path(), Arc::clone(&blobs), config(sealed)).await;
        store.create_bucket("fx").await.unwrap();
        let mut expected = Vec::new();
        for i in 0..4u64 {
            common::put(&store, "fx", &format!("before-{i}"), &data(i)).await;
        }
        store.snapshot_journal().await.unwrap();
        common::put(&store, "fx", "after", &data(9)).await;
        store.delete_object("fx", "before-3").await.unwrap();
        store
            .copy_object(("fx", "before-0"), ("fx", "copy"), None, Default::default())
            .await
            .unwrap();
        store.ship_journal().await.unwrap();
        for (key, seed) in [
            ("before-0", 0),
            ("before-1", 1),
            ("before-2", 2),
            ("after", 9),
            ("copy", 0),
        ] {
            let rec = store.head_object("fx", key).await.unwrap();
            expected.push(format!("fx {key} {seed} {}", rec.etag));
        }
        drop(store);
        let out = dir(set);
        std::fs::create_dir_all(&out).unwrap();
        for b in blobs.list("").await.unwrap() {
            let bytes = blobs.get(&b.name).await.unwrap();
            std::fs::write(out.join(file_name(&b.name)), &bytes).unwrap();
        }
        std::fs::write(out.join("expected.txt"), expected.join("\n") + "\n").unwrap();
    }
}
