//! Concurrent writers on one key: the result is exactly one of the written versions,
//! never a mix, and refcounts stay exact.

mod common;

use std::sync::Arc;

use s3dedup_storage::{ObjectMeta, Store, WriteCondition};

/// Versions share most content so their chunks overlap; each still differs.
fn version(i: u64) -> Vec<u8> {
    let mut v = common::random_bytes(1, 60_000);
    v.extend(common::random_bytes(1000 + i, 3_000 + i as usize * 17));
    v.extend(common::random_bytes(2, 30_000));
    v
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    store.create_bucket("b").await.unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_to_one_key_leave_one_whole_version() {
    let (_dir, store) = store().await;
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let store = store.clone();
            let data = version(round * 100 + i);
            tasks.push(tokio::spawn(async move {
                // Odd writers stream in small pieces to interleave ingests differently.
                let piece = if i % 2 == 0 { 65_536 } else { 1_000 };
                let p = store.ingest(common::pieces(&data, piece)).await.unwrap();
                store
                    .put_object(
                        "b",
                        "k",
                        p,
                        ObjectMeta::default(),
                        WriteCondition::default(),
                    )
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got = common::get(&store, "b", "k").await;
        let candidates: Vec<Vec<u8>> = (0..8).map(|i| version(round * 100 + i)).collect();
        assert!(
            candidates.contains(&got),
            "round {round}: object is not one of the written versions"
        );
        common::assert_fsck_clean(&store).await;
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.objects, 1);
        assert_eq!(stats.logical_bytes, got.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_racing_delete_and_copy_stays_consistent() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    for round in 0..20u64 {
        let a = version(round);
        common::put(&store, "b", "src", &a).await;
        let b = version(round + 500);
        let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
        let b2 = b.clone();
        let put = tokio::spawn(async move {
            let p = s1.ingest(common::pieces(&b2, 4_096)).await.unwrap();
            s1.put_object(
                "b",
                "src",
                p,
                ObjectMeta::default(),
                WriteCondition::default(),
            )
            .await
            .unwrap();
        });
        let del = tokio::spawn(async move { s2.delete_object("b", "src").await.unwrap() });
        let copy = tokio::spawn(async move {
            s3.copy_object(("b", "src"), ("b", "dst"), None, WriteCondition::default())
                .await
        });
        put.await.unwrap();
        let deleted = del.await.unwrap();
        let copied = copy.await.unwrap();

        // src: either b (put last) or gone (delete last).
        match store.head_object("b", "src").await {
            Ok(_) => assert_eq!(common::get(&store, "b", "src").await, b),
            Err(s3dedup_storage::Error::NoSuchKey { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        // Deleting saw a whole version.
        if let Some(rec) = deleted {
            assert!(rec.size == a.len() as u64 || rec.size == b.len() as u64);
        }
        // dst: a whole copy of whichever version the copy saw.
        if copied.is_ok() {
            let got = common::get(&store, "b", "dst").await;
            assert!(got == a || got == b, "round {round}: copy is a mix");
        }
        common::assert_fsck_clean(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn if_none_match_lets_exactly_one_writer_win() {
    let (_dir, store) = store().await;
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let p = store.ingest_bytes(version(i).into()).await.unwrap();
            let cond = WriteCondition {
                if_none_match_any: true,
                ..Default::default()
            };
            store
                .put_object("b", "once", p, ObjectMeta::default(), cond)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s3dedup_storage::Error::PreconditionFailed) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    common::assert_fsck_clean(&store).await;
    // The losers' packs are recorded for GC, not leaked silently.
    assert!(!store.orphan_packs().unwrap().is_empty());
}

/// Writes that share a group commit with a failing write still commit, and the failing
/// one leaves no trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_writes_do_not_take_their_batch_down() {
    let (_dir, store) = store().await;
    let mut pending = Vec::new();
    for i in 0..64u64 {
        pending.push(store.ingest_bytes(version(i).into()).await.unwrap());
    }
    // Fire all commits at once so they queue behind each other and batch.
    let mut tasks = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let store = store.clone();
        let bucket = if i % 5 == 3 { "missing" } else { "b" };
        tasks.push(tokio::spawn(async move {
            store
                .put_object(
                    bucket,
                    &format!("k{i}"),
                    p,
                    ObjectMeta::default(),
                    WriteCondition::default(),
                )
                .await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        if i % 5 == 3 {
            assert!(
                matches!(r, Err(s3dedup_storage::Error::NoSuchBucket(_))),
                "{i}: {r:?}"
            );
        } else {
            r.unwrap();
            assert_eq!(
                common::get(&store, "b", &format!("k{i}")).await,
                version(i as u64)
            );
        }
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.objects, 64 - 13);
    common::assert_fsck_clean(&store).await;
}
