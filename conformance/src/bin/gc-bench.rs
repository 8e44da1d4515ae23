//! GC benchmark on the engine: an index of N chunks with half of them garbage.
//!
//! ```text
//! gc-bench build --dir D [--chunks 1000000]        # builds the store (then 50 % garbage)
//! gc-bench gc --dir D [--threshold 0.6]            # one GC run: time per phase, peak RSS
//! gc-bench put-during-gc --dir D [--mib 256]       # PUT MB/s idle, then while GC runs
//! ```
//!
//! `build` uses small chunks (FastCDC 256/1024/4096 B) so a million chunks fit in ~1 GiB
//! of data. Each object X (512 random 64 KiB blocks) is followed by an object Y made of
//! X's even blocks, then X is deleted: about half the chunks reach refcount 0, and every
//! pack is left about half live, so GC removes half of the chunks and compaction
//! (threshold above 0.5) rewrites most packs.
//! `gc` runs in its own process, so its peak RSS (VmHWM) is GC's, not the build's.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_storage::chunker::{Chunker, ChunkerParams};
use s3dedup_storage::gc::{GcOptions, GcPhase, GcReport};
use s3dedup_storage::{ObjectMeta, Store, StoreConfig, WriteCondition};

const PARAMS: ChunkerParams = ChunkerParams {
    min: 256,
    avg: 1024,
    max: 4096,
    level: 2,
};

fn config() -> StoreConfig {
    StoreConfig {
        chunker: PARAMS,
        inline_max: 128,
        index_cache: 256 << 20,
        ..StoreConfig::default()
    }
}

struct Args {
    mode: String,
    dir: PathBuf,
    chunks: u64,
    threshold: f64,
    mib: usize,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().context("mode: build | gc | put-during-gc")?;
    let mut a = Args {
        mode,
        dir: PathBuf::from("gc-bench-data"),
        chunks: 1_000_000,
        threshold: 0.6,
        mib: 256,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => a.dir = v.into(),
            "--chunks" => a.chunks = v.parse()?,
            "--threshold" => a.threshold = v.parse()?,
            "--mib" => a.mib = v.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn put(store: &Store, key: &str, data: Bytes) -> Result<()> {
    let p = store.ingest_bytes(data).await?;
    store
        .put_object(
            "b",
            key,
            p,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await?;
    Ok(())
}

async fn build(a: &Args) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.dir);
    let store = Store::open_dir(&a.dir, config()).await?;
    store.create_bucket("b").await?;
    let mut rng = SmallRng::seed_from_u64(1);
    let started = Instant::now();
    let mut n = 0u64;
    let mut i = 0;
    while store.stats().await?.chunks < a.chunks {
        // X: 512 random 64 KiB blocks; Y: its even blocks. Chunks inside a block are
        // the same in both (cut points resynchronise within a chunk or two of a block
        // boundary), so deleting X kills the chunks of its odd blocks: every pack of X
        // is left about half live, its live and dead chunks interleaved.
        let blocks: Vec<Vec<u8>> = (0..512)
            .map(|_| {
                let mut b = vec![0u8; 64 << 10];
                rng.fill_bytes(&mut b);
                b
            })
            .collect();
        let x: Vec<u8> = blocks.concat();
        let y: Vec<u8> = blocks.iter().step_by(2).flatten().copied().collect();
        let mut pieces = Vec::new();
        let mut c = Chunker::new(PARAMS)?;
        c.push(&x, &mut pieces);
        c.finish(&mut pieces);
        put(&store, &format!("x{i}"), Bytes::from(x)).await?;
        let p = store.ingest_bytes(Bytes::from(y)).await?;
        if i == 0 {
            println!(
                "build: object y0 has {} chunks, {} of them new (x0 had {})",
                p.stats.chunks,
                p.stats.new_chunks,
                pieces.len()
            );
        }
        store
            .put_object(
                "b",
                &format!("y{i}"),
                p,
                ObjectMeta::default(),
                WriteCondition::default(),
            )
            .await?;
        store.delete_object("b", &format!("x{i}")).await?;
        n += pieces.len() as u64;
        i += 1;
    }
    let s = store.stats().await?;
    println!(
        "build: {n} chunks written in {i} rounds ({:.1} s): {} live chunks, {} at refcount 0, {} packs, {} MiB stored, {} MiB garbage",
        started.elapsed().as_secs_f64(),
        s.chunks,
        store.gc_backlog()?.zero_ref_chunks,
        store.packs()?.len(),
        s.stored_bytes >> 20,
        s.garbage_bytes() >> 20
    );
    Ok(())
}

async fn gc(a: &Args) -> Result<()> {
    let store = Store::open_dir(&a.dir, config()).await?;
    let before = store.stats().await?;
    let rss0 = vm_hwm_kib();
    let phases: Arc<Mutex<Vec<(GcPhase, Instant)>>> = Arc::default();
    let p2 = Arc::clone(&phases);
    let progress = move |phase: GcPhase, _: &GcReport| {
        let mut v = p2.lock().unwrap();
        if v.last().is_none_or(|(p, _)| *p != phase) {
            v.push((phase, Instant::now()));
        }
    };
    let started = Instant::now();
    let r = store
        .gc(
            GcOptions {
                grace: Duration::ZERO,
                compact_threshold: a.threshold,
                ..GcOptions::default()
            },
            &progress,
        )
        .await?;
    let took = started.elapsed();
    let after = store.stats().await?;
    let v = phases.lock().unwrap().clone();
    let mut times = Vec::new();
    for w in v.windows(2) {
        times.push((w[0].0.name(), w[1].1 - w[0].1));
    }
    let compact = times
        .iter()
        .filter(|(n, _)| *n == "compact")
        .map(|(_, d)| *d)
        .sum::<Duration>();
    println!(
        "gc: {:.2} s total; peak RSS {} MiB (after open {} MiB); {} chunks removed, {} packs compacted ({} MiB rewritten), {} packs deleted; stored {} -> {} MiB, garbage {} -> {} MiB",
        took.as_secs_f64(),
        vm_hwm_kib() >> 10,
        rss0 >> 10,
        r.chunks_removed,
        r.packs_compacted,
        r.compaction_rewritten_bytes >> 20,
        r.packs_deleted,
        before.stored_bytes >> 20,
        after.stored_bytes >> 20,
        before.garbage_bytes() >> 20,
        after.garbage_bytes() >> 20,
    );
    #[allow(clippy::cast_precision_loss)]
    let mbps = r.compaction_rewritten_bytes as f64 / 1e6 / compact.as_secs_f64().max(1e-9);
    println!(
        "gc phases: {}; compaction {mbps:.0} MB/s",
        times
            .iter()
            .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

async fn timed_put(store: &Store, key: &str, mib: usize, seed: u64) -> Result<f64> {
    let mut data = vec![0u8; mib << 20];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut data);
    let t = Instant::now();
    put(store, key, Bytes::from(data)).await?;
    #[allow(clippy::cast_precision_loss)]
    Ok((mib << 20) as f64 / 1e6 / t.elapsed().as_secs_f64())
}

async fn put_during_gc(a: &Args) -> Result<()> {
    let store = Store::open_dir(&a.dir, config()).await?;
    let idle = timed_put(&store, "idle", a.mib, 77).await?;
    let gc_store = store.clone();
    let threshold = a.threshold;
    let gc = tokio::spawn(async move {
        let t = Instant::now();
        gc_store
            .gc(
                GcOptions {
                    grace: Duration::ZERO,
                    compact_threshold: threshold,
                    ..GcOptions::default()
                },
                &|_, _| {},
            )
            .await
            .map(|r| (r, t.elapsed()))
    });
    // Let GC get going (its chunk phase first, then compaction).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = timed_put(&store, "busy", a.mib, 78).await?;
    let still_running = !gc.is_finished();
    let (r, took) = gc.await??;
    println!(
        "put-during-gc: {} MiB unique PUT {idle:.0} MB/s idle, {busy:.0} MB/s while GC ran ({}; GC took {:.2} s, {} chunks removed, {} packs compacted)",
        a.mib,
        if still_running {
            "GC outlasted the PUT"
        } else {
            "GC ended before the PUT did"
        },
        took.as_secs_f64(),
        r.chunks_removed,
        r.packs_compacted
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    match a.mode.as_str() {
        "build" => build(&a).await,
        "gc" => gc(&a).await,
        "put-during-gc" => put_during_gc(&a).await,
        m => bail!("unknown mode {m}"),
    }
}
