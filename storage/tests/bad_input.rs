//! Damaged stores and failing inputs: each gives a typed error, publishes nothing and
//! leaves the index consistent. Never wrong bytes.

mod common;

use std::fs::OpenOptions;

use bytes::Bytes;
use redb::{ReadableDatabase, TableDefinition};
use s3dedup_storage::{
    ByteRange, ChunkerParams, Error, ObjectMeta, Store, StoreConfig, WriteCondition,
};

async fn store_with_object(dir: &std::path::Path) -> (Store, Vec<u8>) {
    let store = common::open_fs(dir, common::small_config()).await;
    store.create_bucket("b").await.unwrap();
    let data = common::random_bytes(3, 100_000);
    common::put(&store, "b", "k", &data).await;
    (store, data)
}

fn pack_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = walk(&dir.join("store/blobs/packs"));
    v.sort();
    v
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e))
        } else {
            out.push(e)
        }
    }
    out
}

async fn read_err(store: &Store) -> Error {
    let r = store.get_object("b", "k", None).await.unwrap();
    r.collect()
        .await
        .expect_err("a damaged object must not read back")
}

#[tokio::test]
async fn truncated_pack_is_a_truncation_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_object(dir.path()).await;
    let pack = &pack_files(dir.path())[0];
    let len = std::fs::metadata(pack).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert!(matches!(read_err(&store).await, Error::Truncated { .. }));
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn corrupt_pack_byte_is_detected_before_any_byte_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = store_with_object(dir.path()).await;
    for pack in pack_files(dir.path()) {
        let mut bytes = std::fs::read(&pack).unwrap();
        let i = bytes.len() / 3;
        bytes[i] ^= 0x01;
        std::fs::write(&pack, bytes).unwrap();
    }
    // Whatever is yielded before the error must be a correct prefix, never wrong bytes.
    let r = store.get_object("b", "k", None).await.unwrap();
    let mut body = r.body;
    let mut got = Vec::new();
    let err = loop {
        match futures::StreamExt::next(&mut body).await {
            Some(Ok(b)) => got.extend_from_slice(&b),
            Some(Err(e)) => break e,
            None => panic!("corruption went unnoticed"),
        }
    };
    assert!(matches!(err, Error::Corrupt { what: "chunk", .. }), "{err}");
    assert_eq!(&data[..got.len()], &got[..]);
}

#[tokio::test]
async fn missing_pack_is_blob_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_object(dir.path()).await;
    std::fs::remove_file(&pack_files(dir.path())[0]).unwrap();
    assert!(matches!(read_err(&store).await, Error::BlobNotFound(_)));
}

#[tokio::test]
async fn corrupt_index_record_is_a_typed_error_and_spares_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_object(dir.path()).await;
    common::put(&store, "b", "other", b"still fine").await;
    drop(store);
    {
        const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OBJECTS)
            .unwrap()
            .insert(("b", "k"), &[1u8, 2, 3][..])
            .unwrap();
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert!(
            r.open_table(OBJECTS)
                .unwrap()
                .get(("b", "other"))
                .unwrap()
                .is_some()
        );
    }
    let store = common::open_fs(dir.path(), common::small_config()).await;
    assert!(matches!(
        store.head_object("b", "k").await,
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        store.get_object("b", "k", None).await,
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(common::get(&store, "b", "other").await, b"still fine");
    // fsck names the damaged record and goes on.
    let report = store.fsck().await.unwrap();
    assert_eq!(report.damaged, 1, "{report:#?}");
    assert!(
        report.problems.iter().any(|p| p.contains("object b/k")),
        "{report:#?}"
    );
    assert!(!report.is_clean());
}

/// A record written before checksums existed (v1) whose slice count was flipped to a
/// huge value: every path that reads its manifest fails with a typed error instead of
/// allocating by the count (it aborted the process: "memory allocation of 171127608800
/// bytes failed").
#[tokio::test]
async fn a_huge_stored_count_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = store_with_object(dir.path()).await;
    let rec = store.head_object("b", "k").await.unwrap();
    drop(store);
    let mut v1 = rec.encode();
    // Drop the CRC, the version (seq u64, null flag u8) and the empty part table (a u32
    // count): the v1 layout is the rest.
    v1.truncate(v1.len() - 4 - 9 - 4);
    v1[0] = 1;
    // version 1 + size 8 + md5 16 + parts 4 + mtime 8 + manifest id 8 = 45
    v1[45..53].copy_from_slice(&171_127_608_800u64.to_le_bytes());
    {
        const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OBJECTS)
            .unwrap()
            .insert(("b", "k"), v1.as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = common::open_fs(dir.path(), common::small_config()).await;
    assert_eq!(
        store.head_object("b", "k").await.unwrap().manifest.slices,
        171_127_608_800
    );
    assert!(matches!(
        store.delete_object("b", "k").await,
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        store
            .copy_object(("b", "k"), ("b", "copy"), None, WriteCondition::default())
            .await,
        Err(Error::Corrupt { .. })
    ));
    let p = store
        .ingest_bytes(Bytes::from_static(b"new"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_object(
                "b",
                "k",
                p,
                ObjectMeta::default(),
                WriteCondition::default()
            )
            .await,
        Err(Error::Corrupt { .. })
    ));
    // Reads check what they serve (the manifest covers the size), so this one still
    // reads back whole.
    assert_eq!(common::get(&store, "b", "k").await, data);
    let report = store.fsck().await.unwrap();
    assert_eq!(report.damaged, 1, "{report:#?}");
}

/// A record whose size no longer matches its manifest is refused before any byte is
/// served (a short body under a 200 would look complete).
#[tokio::test]
async fn a_size_the_manifest_does_not_cover_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_object(dir.path()).await;
    let mut rec = store.head_object("b", "k").await.unwrap();
    drop(store);
    rec.size -= 1000; // re-sealed with a valid checksum: only the coverage check is left
    {
        const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OBJECTS)
            .unwrap()
            .insert(("b", "k"), rec.encode().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = common::open_fs(dir.path(), common::small_config()).await;
    assert!(matches!(
        store.get_object("b", "k", None).await,
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        store
            .get_object("b", "k", Some(ByteRange::Suffix(10)))
            .await,
        Err(Error::Corrupt { .. })
    ));
}

#[tokio::test]
async fn stream_failing_midway_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = store_with_object(dir.path()).await;
    let before = store.stats().await.unwrap();
    let mut parts: Vec<Result<Bytes, std::io::Error>> = common::random_bytes(9, 200_000)
        .chunks(10_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    parts.insert(
        15,
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    );
    let err = store
        .ingest(futures::stream::iter(parts))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err}");
    // Nothing changed: the old object is intact, counters unchanged, index consistent.
    assert_eq!(common::get(&store, "b", "k").await, data);
    assert_eq!(store.stats().await.unwrap(), before);
    common::assert_fsck_clean(&store).await;
    assert!(
        !store.orphan_packs().unwrap().is_empty(),
        "packs written before the failure are recorded for GC"
    );
}

#[tokio::test]
async fn commit_errors_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = store_with_object(dir.path()).await;
    let p = store
        .ingest_bytes(Bytes::from(common::random_bytes(4, 50_000)))
        .await
        .unwrap();
    let r = store
        .put_object(
            "nobucket",
            "k",
            p,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await;
    assert!(matches!(r, Err(Error::NoSuchBucket(_))));
    let p = store
        .ingest_bytes(Bytes::from(common::random_bytes(4, 50_000)))
        .await
        .unwrap();
    let cond = WriteCondition {
        if_match: Some("\"0123\"".into()),
        ..Default::default()
    };
    let r = store
        .put_object("b", "k", p, ObjectMeta::default(), cond)
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed)));
    assert_eq!(common::get(&store, "b", "k").await, data);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn unsatisfiable_ranges_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, data) = store_with_object(dir.path()).await;
    let n = data.len() as u64;
    for r in [
        ByteRange::From(n),
        ByteRange::FromTo(n, n + 5),
        ByteRange::FromTo(5, 4),
        ByteRange::Suffix(0),
    ] {
        assert!(
            matches!(store.get_object("b", "k", Some(r)).await, Err(Error::InvalidRange { size }) if size == n),
            "{r:?}"
        );
    }
    common::put(&store, "b", "empty", b"").await;
    assert!(matches!(
        store
            .get_object("b", "empty", Some(ByteRange::From(0)))
            .await,
        Err(Error::InvalidRange { .. })
    ));
    assert!(matches!(
        store.get_object("b", "nokey", None).await,
        Err(Error::NoSuchKey { .. })
    ));
}

#[tokio::test]
async fn bad_parameters_and_future_formats_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        chunker: ChunkerParams {
            min: 10,
            avg: 5,
            max: 1,
            level: 9,
        },
        ..StoreConfig::default()
    };
    assert!(matches!(
        Store::open_dir(dir.path(), cfg).await,
        Err(Error::InvalidArgument(_))
    ));
    drop(common::open_fs(dir.path(), StoreConfig::default()).await);
    {
        const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
        let db = redb::Database::open(dir.path().join("index.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", 12u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open_dir(dir.path(), StoreConfig::default()).await,
        Err(Error::UnsupportedFormat {
            what: "index",
            version: 12
        })
    ));
}

/// What a scan read before completing (`read_upload`) is what completion publishes: the
/// read returns the assembled bytes, and a completion carrying another content digest
/// (parts changed in between) is refused with `Conflict`, publishing nothing.
#[tokio::test]
async fn completion_publishes_only_the_content_that_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    store.create_bucket("b").await.unwrap();
    let up = store
        .create_upload("b", "k", ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let (p1, p2) = (
        common::random_bytes(40, 30_000),
        common::random_bytes(41, 7_000),
    );
    let mut listed = Vec::new();
    for (n, data) in [(1, &p1), (2, &p2)] {
        let pending = store.ingest_bytes(Bytes::from(data.clone())).await.unwrap();
        let rec = store.put_part(&up, n, pending, vec![]).await.unwrap();
        listed.push((n, rec.etag().to_string()));
    }
    let (size, digest, body) = store.read_upload(&up, listed.clone(), 0).await.unwrap();
    let pieces: Vec<Bytes> = futures::TryStreamExt::try_collect(body).await.unwrap();
    let read = pieces.concat();
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    assert_eq!(size, whole.len() as u64);
    assert_eq!(read, whole);

    let mut other = digest;
    other[0] ^= 1;
    let r = store
        .complete_upload(
            &up,
            listed.clone(),
            0,
            vec![],
            WriteCondition::default(),
            Some(other),
        )
        .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert!(matches!(
        store.head_object("b", "k").await,
        Err(Error::NoSuchKey { .. })
    ));
    // The upload is still there, and the digest that was read completes it.
    store
        .complete_upload(
            &up,
            listed,
            0,
            vec![],
            WriteCondition::default(),
            Some(digest),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_object("b", "k", None)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
        whole
    );
    assert!(store.fsck().await.unwrap().is_clean());
}
