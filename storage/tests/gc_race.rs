//! The race GC must win (DESIGN.md invariant 3, "uploads never resurrect the dead"):
//! writers upload content whose last reference other writers are deleting at that
//! moment, readers stream objects that share chunks with it, and GC runs with no grace
//! period in a loop the whole time. Every upload must commit (no `ChunkGone`, no retry),
//! every read must return exact bytes, and afterwards fsck must be clean and a final
//! collection must leave exactly the live data. On the local directory store and the
//! in-memory store (the S3 store's run is `conformance/tests/gc.rs`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use s3dedup_storage::blob::MemoryBlobStore;
use s3dedup_storage::gc::GcOptions;
use s3dedup_storage::{Store, pack};

const WRITERS: usize = 4;
const CYCLES_PER_WRITER: usize = 260;
const CONTENTS: usize = 5;

/// Contents that share chunks: each is a common prefix plus its own tail.
fn contents() -> Vec<Vec<u8>> {
    let shared = common::random_bytes(100, 24_000);
    (0..CONTENTS)
        .map(|i| {
            let mut v = shared.clone();
            v.extend(common::random_bytes(200 + i as u64, 10_000 + 7_000 * i));
            v
        })
        .collect()
}

#[derive(Debug, Default)]
struct Counts {
    puts: AtomicU64,
    deletes: AtomicU64,
    reads: AtomicU64,
    gc_runs: AtomicU64,
    chunks_removed: AtomicU64,
    packs_deleted: AtomicU64,
    pinned: AtomicU64,
    compacted: AtomicU64,
}

async fn race(store: Store) -> Arc<Counts> {
    store.create_bucket("b").await.unwrap();
    let contents = Arc::new(contents());
    // Stable objects the readers stream: they share the common prefix.
    common::put(&store, "b", "stable-0", &contents[0]).await;
    common::put(&store, "b", "stable-1", &contents[CONTENTS - 1]).await;
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut gcs = Vec::new();
    {
        let (store, counts, stop) = (store.clone(), Arc::clone(&counts), Arc::clone(&stop));
        gcs.push(tokio::spawn(async move {
            let opts = GcOptions {
                grace: Duration::ZERO,
                batch: 7, // many small transactions: more interleavings
                ..GcOptions::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let r = store.gc(opts, &|_, _| {}).await.expect("gc");
                counts.gc_runs.fetch_add(1, Ordering::Relaxed);
                counts
                    .chunks_removed
                    .fetch_add(r.chunks_removed, Ordering::Relaxed);
                counts
                    .packs_deleted
                    .fetch_add(r.packs_deleted, Ordering::Relaxed);
                counts.pinned.fetch_add(r.chunks_pinned, Ordering::Relaxed);
                counts
                    .compacted
                    .fetch_add(r.packs_compacted, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    for r in 0..2 {
        let (store, counts, stop, contents) = (
            store.clone(),
            Arc::clone(&counts),
            Arc::clone(&stop),
            Arc::clone(&contents),
        );
        gcs.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (key, want) = if r == 0 {
                    ("stable-0", &contents[0])
                } else {
                    ("stable-1", &contents[CONTENTS - 1])
                };
                assert_eq!(&common::get(&store, "b", key).await, want, "{key}");
                counts.reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, counts, contents) = (store.clone(), Arc::clone(&counts), Arc::clone(&contents));
        writers.push(tokio::spawn(async move {
            // At least CYCLES_PER_WRITER cycles, and on until GC has run often enough
            // beside them (each run ships the journal first, so runs are not free).
            let mut n = 0;
            while n < CYCLES_PER_WRITER
                || (counts.gc_runs.load(Ordering::Relaxed) <= 10 && n < CYCLES_PER_WRITER * 20)
            {
                n += 1;
                // Writers cycle through the same contents out of phase: one deletes
                // the last reference to a content while another is uploading it.
                let i = (n + w) % CONTENTS;
                let key = format!("w{w}");
                common::put(&store, "b", &key, &contents[i]).await;
                counts.puts.fetch_add(1, Ordering::Relaxed);
                assert_eq!(common::get(&store, "b", &key).await, contents[i], "{key}");
                counts.reads.fetch_add(1, Ordering::Relaxed);
                store.delete_object("b", &key).await.unwrap();
                counts.deletes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in writers {
        t.await.expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for t in gcs {
        t.await.expect("gc or reader");
    }
    common::assert_fsck_clean(&store).await;
    // Only the stable objects remain; a last collection leaves exactly their data.
    let r = store
        .gc(
            GcOptions {
                grace: Duration::ZERO,
                ..GcOptions::default()
            },
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(r.packs_waiting, 0);
    common::assert_fsck_clean(&store).await;
    assert_eq!(common::get(&store, "b", "stable-0").await, contents[0]);
    let listed = store.blobs().list(pack::PACKS_PREFIX).await.unwrap().len();
    assert_eq!(
        listed,
        store.packs().unwrap().len(),
        "store and index agree"
    );
    let s = store.stats().await.unwrap();
    assert_eq!(s.objects, 2);
    // Nothing unreferenced is left but dead space in packs above the compaction
    // threshold (a chunk that lost its last reference after compaction copied it).
    let backlog = store.gc_backlog().unwrap();
    assert_eq!(
        (
            backlog.zero_ref_chunks,
            backlog.empty_packs,
            backlog.deleting_packs,
            backlog.orphan_packs
        ),
        (0, 0, 0, 0),
        "{backlog:?}"
    );
    assert!(s.garbage_bytes() * 2 <= s.stored_bytes, "{s:?}");
    counts
}

fn report(name: &str, c: &Counts) {
    println!(
        "gc race ({name}): {} puts, {} deletes, {} verified reads, {} gc runs, {} chunks removed, \
         {} packs deleted, {} packs compacted, {} pinned chunks skipped; 0 dangling, fsck clean",
        c.puts.load(Ordering::Relaxed),
        c.deletes.load(Ordering::Relaxed),
        c.reads.load(Ordering::Relaxed),
        c.gc_runs.load(Ordering::Relaxed),
        c.chunks_removed.load(Ordering::Relaxed),
        c.packs_deleted.load(Ordering::Relaxed),
        c.compacted.load(Ordering::Relaxed),
        c.pinned.load(Ordering::Relaxed),
    );
    assert!(c.puts.load(Ordering::Relaxed) >= 1000);
    assert!(
        c.gc_runs.load(Ordering::Relaxed) > 10,
        "GC must really race"
    );
    assert!(
        c.chunks_removed.load(Ordering::Relaxed) > 0,
        "GC must really remove chunks while writers run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_readers_and_gc_race_on_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_fs(dir.path(), common::small_config()).await;
    let c = race(store).await;
    report("local directory", &c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_readers_and_gc_race_on_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(MemoryBlobStore::default());
    let store = common::open_mem(dir.path(), blobs, common::small_config()).await;
    let c = race(store).await;
    report("memory", &c);
}
