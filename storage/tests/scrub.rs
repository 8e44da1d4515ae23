//! Scrub: a flipped byte in one chunk of a pack is found (exactly that chunk), reads
//! of objects using it fail instead of returning wrong bytes, re-uploading the content
//! repairs it, and the next scrub is clean. An interrupted scrub resumes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use s3dedup_storage::pack;
use s3dedup_storage::scrub::ScrubOptions;

const FAST: ScrubOptions = ScrubOptions { rate: 0 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_found_reads_fail_and_a_reupload_repairs_it() {
    let (dir, store) = common::fresh_store().await;
    let victim = common::random_bytes(1, 60_000);
    common::put(&store, "b", "victim", &victim).await;
    common::put(&store, "b", "tiny", b"inline chunk").await;
    let clean = store.scrub(FAST, &|_, _, _| {}).await.unwrap();
    assert_eq!(clean.totals.damaged, 0, "{clean:?}");
    assert!(
        clean.totals.chunks > 10 && clean.totals.packs > 2,
        "{clean:?}"
    );
    let victim_chunks: Vec<String> = {
        let p = store.ingest(common::pieces(&victim, 4096)).await.unwrap();
        p.chunk_ids().map(|c| c.to_string()).collect()
    };

    // Flip one byte inside the first chunk of one of victim's packs (all are victim's).
    let (pack_id, _) = store.packs().unwrap().into_iter().next().unwrap();
    let path = dir
        .path()
        .join("store/blobs")
        .join(pack::blob_name(pack_id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8 + 100] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let r = store.scrub(FAST, &|_, _, _| {}).await.unwrap();
    assert_eq!(r.totals.damaged, 1, "{r:?}");
    assert_eq!(r.damaged.len(), 1, "exactly that chunk: {r:?}");
    assert!(victim_chunks.contains(&r.damaged[0]), "{r:?}");
    let err = store.get_object("b", "victim", None).await.unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    let other = common::random_bytes(2, 60_000);
    common::put(&store, "b", "other", &other).await;
    assert_eq!(
        common::get(&store, "b", "other").await,
        other,
        "others unharmed"
    );
    assert_eq!(common::get(&store, "b", "tiny").await, b"inline chunk");
    common::assert_fsck_clean(&store).await;

    // The same content again: the damaged chunk is stored anew, the object reads.
    let p = store.ingest(common::pieces(&victim, 4096)).await.unwrap();
    assert_eq!(p.stats.new_chunks, 1, "{:?}", p.stats);
    common::commit(&store, "copy", p).await;
    assert_eq!(common::get(&store, "b", "victim").await, victim);
    let r = store.scrub(FAST, &|_, _, _| {}).await.unwrap();
    assert_eq!(r.totals.damaged, 0, "the next scrub is clean: {r:?}");
    common::assert_fsck_clean(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scrub_resumes_where_it_stopped() {
    let (dir, store) = common::fresh_store().await;
    for i in 0..6 {
        common::put(
            &store,
            "b",
            &format!("k{i}"),
            &common::random_bytes(10 + i, 40_000),
        )
        .await;
    }
    let total = store.packs().unwrap().len() as u64;
    // Stop the scrub after 3 packs: drop its future from the progress callback's signal.
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = Arc::clone(&seen);
    let progress = move |done, _, _: &s3dedup_storage::ScrubTotals| {
        s2.store(done, Ordering::SeqCst);
    };
    // 64 KiB/s: a few packs in 150 ms, then the scrub is dropped mid-run.
    let run = store.scrub(ScrubOptions { rate: 64 << 10 }, &progress);
    let _ = tokio::time::timeout(std::time::Duration::from_millis(150), run).await;
    assert!(seen.load(Ordering::SeqCst) > 0);
    let (cursor, last) = store.scrub_state().unwrap();
    let cursor = cursor.expect("an interrupted scrub leaves its cursor");
    assert!(last.is_none());
    assert!(
        cursor.totals.packs > 0 && cursor.totals.packs < total,
        "{cursor:?} of {total}"
    );
    drop(store);
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let r = store.scrub(FAST, &|_, _, _| {}).await.unwrap();
    assert!(r.resumed);
    assert_eq!(
        r.totals.packs, total,
        "each pack once over both parts: {r:?}"
    );
    let (cursor, last) = store.scrub_state().unwrap();
    assert!(cursor.is_none());
    assert_eq!(last.unwrap().totals.packs, total);
}
