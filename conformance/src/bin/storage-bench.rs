//! Storage engine benchmark: ingest, dedup ingest, read, small objects, peak RSS.
//!
//! ```text
//! storage-bench throughput [--size-mib 1024] [--runs 5] [--dir PATH]
//! storage-bench small      [--count 10000] [--object-kib 4] [--concurrency 1,32] [--runs 5]
//! storage-bench rss        [--size-mib 5120]
//! ```
//!
//! Every run uses a fresh store on disk (default: a temporary directory under the
//! current directory, so the real filesystem and its fsyncs are measured). Each figure is
//! printed per run and as the median over runs. `rss` generates its data on the fly in a
//! reused buffer, so growth of the process's peak RSS is the engine's own memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::stream;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_storage::{ObjectMeta, Store, StoreConfig, WriteCondition};

const MIB: usize = 1 << 20;
/// Size of the pieces the body arrives in (what hyper typically hands over).
const PIECE: usize = 256 * 1024;

struct Args {
    mode: String,
    size_mib: usize,
    runs: usize,
    count: usize,
    object_kib: usize,
    concurrency: Vec<usize>,
    dir: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().context("mode: throughput | small | rss")?;
    let mut a = Args {
        size_mib: if mode == "rss" { 5120 } else { 1024 },
        mode,
        runs: 5,
        count: 10_000,
        object_kib: 4,
        concurrency: vec![1, 32],
        dir: std::env::current_dir()?,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--size-mib" => a.size_mib = v.parse()?,
            "--runs" => a.runs = v.parse()?,
            "--count" => a.count = v.parse()?,
            "--object-kib" => a.object_kib = v.parse()?,
            "--concurrency" => {
                a.concurrency = v.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--dir" => a.dir = v.into(),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

/// Runs `f`, returning (MB/s, CPU cores busy on average).
async fn measure<F: Future<Output = Result<()>>>(mb: f64, f: F) -> Result<(f64, f64)> {
    let (t, c) = (Instant::now(), cpu_seconds());
    f.await?;
    let secs = t.elapsed().as_secs_f64();
    Ok((mb / secs, (cpu_seconds() - c) / secs))
}

async fn fresh_store(base: &Path) -> Result<(tempfile::TempDir, Store)> {
    let dir = tempfile::Builder::new()
        .prefix("s3dedup-bench-")
        .tempdir_in(base)?;
    let store = Store::open_dir(dir.path(), StoreConfig::default()).await?;
    store.create_bucket("bench").await?;
    Ok((dir, store))
}

fn body(
    data: &Bytes,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Unpin + Send + use<> {
    let pieces: Vec<_> = (0..data.len())
        .step_by(PIECE)
        .map(|i| Ok(data.slice(i..(i + PIECE).min(data.len()))))
        .collect();
    stream::iter(pieces)
}

async fn put(store: &Store, key: &str, data: &Bytes) -> Result<()> {
    let p = store.ingest(body(data)).await?;
    store
        .put_object(
            "bench",
            key,
            p,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await?;
    Ok(())
}

async fn throughput(a: &Args) -> Result<()> {
    let size = a.size_mib * MIB;
    let mut data = vec![0u8; size];
    SmallRng::seed_from_u64(1).fill_bytes(&mut data);
    let data = Bytes::from(data);
    let mb = size as f64 / 1e6;
    let (mut unique, mut dup, mut read) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..a.runs {
        let (_dir, store) = fresh_store(&a.dir).await?;
        let (u, uc) = measure(mb, put(&store, "a", &data)).await?;
        let (d, dc) = measure(mb, put(&store, "b", &data)).await?;
        let (rd, rc) = measure(mb, async {
            let r = store.get_object("bench", "a", None).await?;
            let mut body = r.body;
            let mut n = 0usize;
            while let Some(b) = futures::StreamExt::next(&mut body).await {
                n += b?.len();
            }
            if n != size {
                bail!("read {n} bytes, expected {size}");
            }
            Ok(())
        })
        .await?;
        let s = store.stats().await?;
        println!(
            "run {run}: unique ingest {u:.0} MB/s ({uc:.2} cores) | duplicate ingest {d:.0} MB/s ({dc:.2} cores) | read {rd:.0} MB/s ({rc:.2} cores) | logical {} MiB, unique {} MiB, stored {} MiB",
            s.logical_bytes >> 20,
            s.unique_bytes >> 20,
            s.stored_bytes >> 20
        );
        unique.push(u);
        dup.push(d);
        read.push(rd);
    }
    println!(
        "median over {} runs of {} MiB: unique ingest {:.0} MB/s, duplicate ingest {:.0} MB/s, read {:.0} MB/s",
        a.runs,
        a.size_mib,
        median(&mut unique),
        median(&mut dup),
        median(&mut read)
    );
    Ok(())
}

async fn small(a: &Args) -> Result<()> {
    let objects: Arc<Vec<Bytes>> = Arc::new(
        (0..a.count)
            .map(|i| {
                let mut v = vec![0u8; a.object_kib * 1024];
                SmallRng::seed_from_u64(i as u64 + 10).fill_bytes(&mut v);
                Bytes::from(v)
            })
            .collect(),
    );
    for &conc in &a.concurrency {
        let mut rates = Vec::new();
        for run in 0..a.runs {
            let (_dir, store) = fresh_store(&a.dir).await?;
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let (store, objects, next) = (store.clone(), objects.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= objects.len() {
                            return Ok::<_, anyhow::Error>(());
                        }
                        put(&store, &format!("obj/{i:06}"), &objects[i]).await?;
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            let rate = a.count as f64 / t.elapsed().as_secs_f64();
            println!(
                "run {run}: {} x {} KiB PUT at concurrency {conc}: {rate:.0} ops/s",
                a.count, a.object_kib
            );
            rates.push(rate);
        }
        println!(
            "median over {} runs: {} x {} KiB PUT at concurrency {conc}: {:.0} ops/s",
            a.runs,
            a.count,
            a.object_kib,
            median(&mut rates)
        );
    }
    Ok(())
}

async fn rss(a: &Args) -> Result<()> {
    let (_dir, store) = fresh_store(&a.dir).await?;
    let before = proc_status_kib("VmRSS:");
    let total = a.size_mib * MIB;
    // Generated on the fly into fresh 256 KiB pieces: nothing of the object is retained
    // by the generator, so the peak RSS growth is the engine's.
    let mut rng = SmallRng::seed_from_u64(2);
    let pieces = stream::iter((0..total.div_ceil(PIECE)).map(move |i| {
        let mut v = vec![0u8; PIECE.min(total - i * PIECE)];
        rng.fill_bytes(&mut v);
        Ok::<_, std::convert::Infallible>(Bytes::from(v))
    }));
    let t = Instant::now();
    let p = store.ingest(pieces).await?;
    store
        .put_object(
            "bench",
            "big",
            p,
            ObjectMeta::default(),
            WriteCondition::default(),
        )
        .await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = proc_status_kib("VmHWM:");
    println!(
        "{} MiB ingest (data generated on the fly): {:.0} MB/s incl. generation; RSS before {} MiB, peak {} MiB, growth {} MiB",
        a.size_mib,
        total as f64 / 1e6 / secs,
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    match a.mode.as_str() {
        "throughput" => throughput(&a).await,
        "small" => small(&a).await,
        "rss" => rss(&a).await,
        m => bail!("unknown mode {m}"),
    }
}
