//! Crash safety (DESIGN.md invariant 1): a crash anywhere — including between "pack
//! written" and "index committed" — leaves no dangling reference and no half object,
//! and every acknowledged object survives.
//!
//! The crash tests run a real child process (this test binary, re-executed on the
//! ignored helper `crash_child`) and kill it, then reopen the store it was writing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use s3dedup_storage::blob::{BlobInfo, BlobStore, BlobWriter, FsBlobStore};
use s3dedup_storage::{Error, ObjectMeta, Store, WriteCondition};

fn object(i: u64) -> Vec<u8> {
    // Shared head + unique middle: commits mix new and deduplicated chunks.
    let mut v = common::random_bytes(7, 20_000);
    v.extend(common::random_bytes(
        10_000 + i,
        40_000 + (i as usize % 5) * 9_000,
    ));
    v
}

/// Wraps a blob store: after `after` blob writes have completed, the process dies on
/// the spot (abort: no destructors, no flushing), or the write fails (`fail` mode).
/// Applies to `put` and to streamed writers alike.
#[derive(Debug)]
struct Tripwire {
    inner: FsBlobStore,
    trip: Arc<Trip>,
}

#[derive(Debug)]
struct Trip {
    puts: AtomicUsize,
    after: usize,
    abort: bool,
}

impl Tripwire {
    fn new(inner: FsBlobStore, after: usize, abort: bool) -> Self {
        Tripwire {
            inner,
            trip: Arc::new(Trip {
                puts: AtomicUsize::new(0),
                after,
                abort,
            }),
        }
    }
}

impl Trip {
    fn before(&self) -> s3dedup_storage::Result<()> {
        if !self.abort && self.puts.load(Ordering::SeqCst) >= self.after {
            return Err(Error::Backend("injected put failure".into()));
        }
        Ok(())
    }

    fn durable(&self) {
        if self.puts.fetch_add(1, Ordering::SeqCst) + 1 >= self.after && self.abort {
            // The blob is durable; the commit that would reference it never happens.
            std::process::abort();
        }
    }
}

struct TripWriter {
    inner: Box<dyn BlobWriter>,
    trip: Arc<Trip>,
}

impl BlobWriter for TripWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, s3dedup_storage::Result<()>> {
        self.inner.write(data)
    }
    fn finish(self: Box<Self>) -> BoxFuture<'static, s3dedup_storage::Result<()>> {
        Box::pin(async move {
            self.trip.before()?;
            self.inner.finish().await?;
            self.trip.durable();
            Ok(())
        })
    }
}

impl BlobStore for Tripwire {
    fn put<'a>(&'a self, name: &'a str, data: Bytes) -> BoxFuture<'a, s3dedup_storage::Result<()>> {
        Box::pin(async move {
            if !name.starts_with("packs/") {
                // The store's identity marker, written at open: not a pack.
                return self.inner.put(name, data).await;
            }
            self.trip.before()?;
            self.inner.put(name, data).await?;
            self.trip.durable();
            Ok(())
        })
    }
    fn writer<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Box<dyn BlobWriter>>> {
        Box::pin(async move {
            let inner = self.inner.writer(name).await?;
            Ok(Box::new(TripWriter {
                inner,
                trip: Arc::clone(&self.trip),
            }) as Box<dyn BlobWriter>)
        })
    }
    fn get_range<'a>(
        &'a self,
        name: &'a str,
        offset: u64,
        len: u64,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Bytes>> {
        self.inner.get_range(name, offset, len)
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, s3dedup_storage::Result<Bytes>> {
        self.inner.get(name)
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, s3dedup_storage::Result<()>> {
        self.inner.delete(name)
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, s3dedup_storage::Result<Vec<BlobInfo>>> {
        self.inner.list(prefix)
    }
}

async fn open(dir: &Path, blobs: Arc<dyn BlobStore>) -> Store {
    Store::open(&dir.join("index.redb"), blobs, common::small_config())
        .await
        .unwrap()
}

/// Helper process: writes objects forever, printing `ACK <i>` after each durable commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for the crash tests, started by them"]
async fn crash_child() {
    let dir = std::env::var("CRASH_DIR").expect("CRASH_DIR");
    let dir = Path::new(&dir);
    let after: usize = std::env::var("CRASH_AFTER_PUTS").map_or(usize::MAX, |v| v.parse().unwrap());
    let blobs = Arc::new(Tripwire::new(common::fs_blobs(dir), after, true));
    let store = open(dir, blobs).await;
    let _ = store.create_bucket("b").await;
    for i in 0.. {
        let data = object(i);
        let p = store.ingest(common::pieces(&data, 5_000)).await.unwrap();
        store
            .put_object(
                "b",
                &format!("obj-{i:05}"),
                p,
                ObjectMeta::default(),
                WriteCondition::default(),
            )
            .await
            .unwrap();
        let p = store
            .ingest_bytes(Bytes::from(object(i + 1_000_000)))
            .await
            .unwrap();
        store
            .put_object(
                "b",
                "hot",
                p,
                ObjectMeta::default(),
                WriteCondition::default(),
            )
            .await
            .unwrap();
        println!("ACK {i}");
    }
}

/// Runs the helper until it has acknowledged `kill_after_acks` objects (then SIGKILLs
/// it) or until it dies by itself; returns the last acknowledged index.
fn run_child(
    dir: &Path,
    kill_after_acks: Option<u64>,
    crash_after_puts: Option<usize>,
) -> Option<u64> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "crash_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CRASH_DIR", dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(n) = crash_after_puts {
        cmd.env("CRASH_AFTER_PUTS", n.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let mut last = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        if let Some(i) = line.strip_prefix("ACK ") {
            let i: u64 = i.trim().parse().unwrap();
            last = Some(i);
            if kill_after_acks.is_some_and(|n| i + 1 >= n) {
                child.kill().unwrap(); // SIGKILL, mid-stream of the next upload
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the helper must have died, not finished");
    last
}

async fn verify_after_crash(dir: &Path, last_ack: Option<u64>) -> Store {
    let store = open(dir, Arc::new(common::fs_blobs(dir))).await;
    common::assert_fsck_clean(&store).await;
    let page = store
        .list_objects("b", "obj-", None, None, 100_000)
        .await
        .unwrap();
    let n_acked = last_ack.map_or(0, |l| l + 1);
    // Every acknowledged object is there and byte-exact …
    for i in 0..n_acked {
        assert_eq!(
            common::get(&store, "b", &format!("obj-{i:05}")).await,
            object(i),
            "obj {i}"
        );
    }
    // … and anything else visible is whole (a commit that landed before its ACK printed).
    assert!(page.entries.len() as u64 <= n_acked + 1);
    for e in &page.entries {
        let i: u64 = e.marker()["obj-".len()..].parse().unwrap();
        assert_eq!(common::get(&store, "b", e.marker()).await, object(i));
    }
    if n_acked > 0 {
        let hot = common::get(&store, "b", "hot").await;
        let last = n_acked - 1;
        assert!(hot == object(last + 1_000_000) || hot == object(last + 1 + 1_000_000));
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Several kills at different points, writing on top of the same store each time.
    for (round, kill_at) in [3u64, 9, 17].into_iter().enumerate() {
        let before = store_len(dir.path()).await;
        let last = run_child(dir.path(), Some(before + kill_at), None);
        assert!(
            last.is_some(),
            "round {round}: the helper acknowledged nothing"
        );
        drop(verify_after_crash(dir.path(), last).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_pack_write_and_commit_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Die right after the 5th pack is durable: mid-way through some upload, before its
    // commit. (Each object needs several packs with the small test configuration.)
    let last = run_child(dir.path(), None, Some(5));
    let store = verify_after_crash(dir.path(), last).await;
    // The packs of the interrupted upload are in the store but unknown to the index:
    // orphans for GC's sweep, never referenced.
    let in_store = store.blobs().list("packs/").await.unwrap().len();
    let known = store.packs().unwrap().len();
    assert!(
        in_store > known,
        "expected orphan packs: {in_store} in store, {known} known"
    );
}

async fn store_len(dir: &Path) -> u64 {
    if !dir.join("index.redb").exists() {
        return 0;
    }
    let store = open(dir, Arc::new(common::fs_blobs(dir))).await;
    let page = store
        .list_objects("b", "obj-", None, None, 100_000)
        .await
        .unwrap();
    page.entries.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_backend_publishes_nothing_and_records_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(Tripwire::new(common::fs_blobs(dir.path()), 3, false));
    let store = open(dir.path(), blobs.clone()).await;
    store.create_bucket("b").await.unwrap();
    let data = common::random_bytes(5, 300_000);
    let err = store
        .ingest(common::pieces(&data, 10_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
    assert!(matches!(
        store.head_object("b", "k").await,
        Err(Error::NoSuchKey { .. })
    ));
    common::assert_fsck_clean(&store).await;
    let orphans = store.orphan_packs().unwrap();
    assert_eq!(
        orphans.len(),
        3,
        "the three packs that did land are recorded for GC"
    );
    assert!(store.packs().unwrap().is_empty());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.objects, stats.chunks, stats.stored_bytes), (0, 0, 0));
}
