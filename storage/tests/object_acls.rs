//! Object ACLs in the index: kept with their version (its `locks` row), set at the write
//! (single PUT, copy, multipart completion) or later, never protecting the version from
//! deletion, gone with it (an overwrite does not inherit it), changed only on the
//! version expected; fsck finds no stray row after any of it.

mod common;

use bytes::Bytes;
use s3dedup_storage::records::ObjectRecord;
use s3dedup_storage::{DeleteOptions, Error, ObjectMeta, Store, Versioning, WriteCondition};

fn with_acl(acl: &[u8]) -> WriteCondition {
    WriteCondition {
        acl: Some(acl.to_vec()),
        ..Default::default()
    }
}

async fn put(store: &Store, key: &str, cond: WriteCondition) -> ObjectRecord {
    let p = store
        .ingest_bytes(Bytes::from(format!("contents of {key}")))
        .await
        .unwrap();
    store
        .put_object("b", key, p, ObjectMeta::default(), cond)
        .await
        .unwrap()
}

async fn acl_of(store: &Store, key: &str, version: Option<&str>) -> Option<Vec<u8>> {
    let (_, rec) = store.object_lock("b", key, version).await.unwrap();
    assert!(!rec.has_lock(), "an ACL is not object lock");
    rec.acl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_live_and_die_with_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    store.create_bucket("b").await.unwrap();

    // Unversioned: the ACL of a PUT; an overwrite without one does not inherit it.
    put(&store, "k", with_acl(b"A1")).await;
    assert_eq!(acl_of(&store, "k", None).await.as_deref(), Some(&b"A1"[..]));
    put(&store, "k", WriteCondition::default()).await;
    assert_eq!(acl_of(&store, "k", None).await, None);
    common::assert_fsck_clean(&store).await;

    // Set later, on the version expected only; an ACL-only row never blocks a delete.
    let rec = put(&store, "k", WriteCondition::default()).await;
    store
        .set_object_acl("b", "k", None, Some(rec.version), Some(b"A2".to_vec()))
        .await
        .unwrap();
    assert_eq!(acl_of(&store, "k", None).await.as_deref(), Some(&b"A2"[..]));
    let newer = put(&store, "k", with_acl(b"A3")).await;
    let r = store
        .set_object_acl("b", "k", None, Some(rec.version), Some(b"A4".to_vec()))
        .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert_eq!(acl_of(&store, "k", None).await.as_deref(), Some(&b"A3"[..]));
    store
        .set_object_acl("b", "k", None, Some(newer.version), None)
        .await
        .unwrap();
    assert_eq!(acl_of(&store, "k", None).await, None);
    put(&store, "gone", with_acl(b"A5")).await;
    store.delete_object("b", "gone").await.unwrap();
    common::assert_fsck_clean(&store).await;

    // Copies and multipart completions give the new object the ACL asked for.
    store
        .copy_object(("b", "k"), ("b", "copy"), None, with_acl(b"C1"))
        .await
        .unwrap();
    assert_eq!(
        acl_of(&store, "copy", None).await.as_deref(),
        Some(&b"C1"[..])
    );
    let data = common::random_bytes(5, 40_000);
    let id = store
        .create_upload_with_acl(
            "b",
            "mp",
            ObjectMeta::default(),
            Default::default(),
            Some(b"M1".to_vec()),
            (None, Vec::new()),
        )
        .await
        .unwrap();
    let p = store.ingest_bytes(Bytes::from(data.clone())).await.unwrap();
    let part = store.put_part(&id, 1, p, Vec::new()).await.unwrap();
    store
        .complete_upload(
            &id,
            vec![(1, part.etag().to_string())],
            0,
            Vec::new(),
            WriteCondition::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        acl_of(&store, "mp", None).await.as_deref(),
        Some(&b"M1"[..])
    );
    let aborted = store
        .create_upload_with_acl(
            "b",
            "mp2",
            ObjectMeta::default(),
            Default::default(),
            Some(b"M2".to_vec()),
            (None, Vec::new()),
        )
        .await
        .unwrap();
    store.abort_upload(&aborted).await.unwrap();
    common::assert_fsck_clean(&store).await;

    // Versioned: each version keeps its own ACL, and it goes with its version.
    store
        .set_versioning("b", Versioning::Enabled)
        .await
        .unwrap();
    let v1 = put(&store, "v", with_acl(b"V1")).await;
    let v2 = put(&store, "v", WriteCondition::default()).await;
    let id1 = v1.version.to_string();
    assert_eq!(
        acl_of(&store, "v", Some(&id1)).await.as_deref(),
        Some(&b"V1"[..])
    );
    assert_eq!(acl_of(&store, "v", None).await, None);
    store
        .delete_version("b", "v", Some(&id1), DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        acl_of(&store, "v", Some(&v2.version.to_string())).await,
        None
    );
    common::assert_fsck_clean(&store).await;

    // All of it survives a reopen (the rows are in the index, not in memory).
    drop(store);
    let store = common::open_fs(dir.path(), common::small_config()).await;
    assert_eq!(
        acl_of(&store, "copy", None).await.as_deref(),
        Some(&b"C1"[..])
    );
    assert_eq!(
        acl_of(&store, "mp", None).await.as_deref(),
        Some(&b"M1"[..])
    );
    common::assert_fsck_clean(&store).await;
}
