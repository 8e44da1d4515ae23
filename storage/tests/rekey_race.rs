//! `rekey` racing the rest (the data-safety rule for anything that moves stored bytes):
//! each round opens the store with one more key, so everything written before is
//! under an old key; then writers upload content that dedups against the old chunks
//! (pins on chunks `rekey` is moving), deleters drop last references, readers stream
//! objects whose packs `rekey` rewrites and deletes, GC runs with no grace the whole
//! time, and `rekey` runs in a loop. Every read must be exact, every upload must
//! commit; afterwards nothing is left under an old key, fsck is clean, and with only
//! the newest key configured everything still reads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use s3dedup_storage::crypto::Keyring;
use s3dedup_storage::gc::GcOptions;
use s3dedup_storage::{Store, StoreConfig};

const ROUNDS: u16 = 3;
const WRITERS: usize = 3;
const CYCLES: usize = 60;

fn key_line(id: u16) -> String {
    format!("{id}:{}", format!("{:02x}", id as u8 + 0x10).repeat(32))
}

fn config(ids: std::ops::RangeInclusive<u16>) -> StoreConfig {
    let text: Vec<String> = ids.map(key_line).collect();
    StoreConfig {
        keys: Some(Arc::new(Keyring::parse(&text.join("\n")).unwrap())),
        ..common::small_config()
    }
}

fn contents() -> Vec<Vec<u8>> {
    let shared = common::random_bytes(300, 30_000);
    (0..5u64)
        .map(|i| {
            let mut v = shared.clone();
            v.extend(common::random_bytes(400 + i, 8_000 + 6_000 * i as usize));
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rekey_races_writers_readers_deleters_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let contents = Arc::new(contents());
    {
        let store = common::open_fs(dir.path(), config(1..=1)).await;
        store.create_bucket("b").await.unwrap();
        for (i, c) in contents.iter().enumerate() {
            common::put(&store, "b", &format!("stable-{i}"), c).await;
        }
    }
    let (mut rekeyed, mut reads, mut gc_runs) = (0u64, AtomicU64::new(0), 0u64);
    for round in 2..=ROUNDS + 1 {
        let store = common::open_fs(dir.path(), config(1..=round)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for r in 0..2usize {
            let (store, stop, contents, counter) = (
                store.clone(),
                Arc::clone(&stop),
                Arc::clone(&contents),
                Arc::clone(&counter),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = r;
                while !stop.load(Ordering::Relaxed) {
                    let i = n % contents.len();
                    let got = common::get(&store, "b", &format!("stable-{i}")).await;
                    assert!(got == contents[i], "stable-{i} reads exactly");
                    counter.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }));
        }
        {
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut runs = 0u64;
                let opts = GcOptions {
                    grace: Duration::ZERO,
                    batch: 5,
                    ..GcOptions::default()
                };
                while !stop.load(Ordering::Relaxed) {
                    store.gc(opts, &|_, _| {}).await.expect("gc");
                    runs += 1;
                    tokio::task::yield_now().await;
                }
                assert!(runs > 0);
            }));
        }
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (store, contents) = (store.clone(), Arc::clone(&contents));
            writers.push(tokio::spawn(async move {
                for n in 0..CYCLES {
                    let i = (n + w) % contents.len();
                    let key = format!("w{w}");
                    common::put(&store, "b", &key, &contents[i]).await;
                    assert!(common::get(&store, "b", &key).await == contents[i]);
                    store.delete_object("b", &key).await.unwrap();
                }
            }));
        }
        let mut runs = 0;
        while !writers.iter().all(tokio::task::JoinHandle::is_finished) || runs == 0 {
            let r = store.rekey(&|_| {}).await.expect("rekey");
            assert_eq!(r.damaged_chunks, 0, "{r:?}");
            rekeyed += r.chunks_reencoded;
            runs += 1;
        }
        for w in writers {
            w.await.expect("writer");
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("reader or gc");
        }
        gc_runs += 1;
        *reads.get_mut() += counter.load(Ordering::Relaxed);
        let last = store.rekey(&|_| {}).await.unwrap();
        assert_eq!(
            (last.stale_packs_left, last.stale_inline_left),
            (0, 0),
            "round {round}: {last:?}"
        );
        common::assert_fsck_clean(&store).await;
    }
    println!(
        "rekey race: {ROUNDS} rounds, {rekeyed} chunks re-encoded while {} verified reads, \
         {} writers × {CYCLES} put/get/delete cycles per round and GC ran; fsck clean",
        reads.get_mut(),
        WRITERS
    );
    assert!(rekeyed > 0 && *reads.get_mut() > 0 && gc_runs == u64::from(ROUNDS));
    // Only the newest key: everything reads.
    let store: Store = common::open_fs(dir.path(), config(ROUNDS + 1..=ROUNDS + 1)).await;
    for (i, c) in contents.iter().enumerate() {
        assert!(common::get(&store, "b", &format!("stable-{i}")).await == *c);
    }
    let v = store.verify_data(|_, _| {}).await.unwrap();
    assert_eq!((v.bad_chunks, v.bad_pack_tables), (0, 0), "{v:?}");
}
