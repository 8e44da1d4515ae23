//! Load tool for any S3 endpoint (s3dedup, s3s-fs, …) on aws-sdk-s3.
//!
//! ```text
//! s3dedup-bench --endpoint URL --access-key K --secret-key S --label NAME \
//!     large --streams N --size-mib S --dup-fraction F
//! s3dedup-bench ... small --count N --size-kib K --concurrency C
//! ```
//!
//! `large`: N concurrent streams each PUT one object of S MiB, then GET them all back
//! (length-checked). With `--dup-fraction F`, every object is a shared base object with
//! (1−F) of it replaced by unique data in scattered 1 MiB blocks; the base is uploaded
//! once before timing, so duplicates are against stored data. `small`: N objects of K KiB
//! PUT with C requests in flight. `--seed` varies the data between runs (dedup is global,
//! so repeating a run with the same seed would measure duplicates). Output: one JSON line per run (MB/s, ops/s, p50/p99
//! latency in ms) for the comparison script.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use rand::{RngCore, SeedableRng, rngs::SmallRng};

const MIB: usize = 1 << 20;

struct Args {
    endpoint: String,
    access_key: String,
    secret_key: String,
    label: String,
    mode: String,
    streams: usize,
    size_mib: usize,
    dup_fraction: f64,
    count: usize,
    size_kib: usize,
    concurrency: usize,
    seed: u64,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        endpoint: String::new(),
        access_key: String::new(),
        secret_key: String::new(),
        label: "target".into(),
        mode: String::new(),
        streams: 1,
        size_mib: 256,
        dup_fraction: 0.0,
        count: 10_000,
        size_kib: 4,
        concurrency: 32,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            a.mode = arg;
            continue;
        }
        let v = it.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--endpoint" => a.endpoint = v,
            "--access-key" => a.access_key = v,
            "--secret-key" => a.secret_key = v,
            "--label" => a.label = v,
            "--streams" => a.streams = v.parse()?,
            "--size-mib" => a.size_mib = v.parse()?,
            "--dup-fraction" => a.dup_fraction = v.parse()?,
            "--count" => a.count = v.parse()?,
            "--size-kib" => a.size_kib = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--seed" => a.seed = v.parse()?,
            _ => bail!("unknown flag {arg}"),
        }
    }
    if a.endpoint.is_empty() || a.mode.is_empty() {
        bail!(
            "usage: s3dedup-bench --endpoint URL --access-key K --secret-key S (large|small) [flags]"
        );
    }
    Ok(a)
}

fn client(a: &Args) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&a.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &a.access_key,
            &a.secret_key,
            None,
            None,
            "bench",
        ))
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i]
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

async fn bucket(c: &Client, name: &str) -> Result<()> {
    match c.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if format!("{e:?}").contains("BucketAlready") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn large(a: &Args, c: &Client) -> Result<()> {
    let b = format!("bench-large-{}", rand::random::<u32>());
    bucket(c, &b).await?;
    let size = a.size_mib * MIB;
    let seed = a.seed << 32;
    let base = random(seed + 1, size);
    if a.dup_fraction > 0.0 {
        c.put_object()
            .bucket(&b)
            .key("base")
            .body(ByteStream::from(base.clone()))
            .send()
            .await?;
    }
    let unique_blocks = ((1.0 - a.dup_fraction) * a.size_mib as f64).round() as usize;
    let bodies: Vec<Bytes> = (0..a.streams)
        .map(|s| {
            if a.dup_fraction <= 0.0 {
                return Bytes::from(random(seed + 100 + s as u64, size));
            }
            let mut v = base.clone();
            let mut rng = SmallRng::seed_from_u64(seed + 1000 + s as u64);
            let blocks = a.size_mib.max(1);
            // Scatter the unique blocks evenly over the object.
            for k in 0..unique_blocks {
                let blk = (k * blocks / unique_blocks.max(1)) % blocks;
                rng.fill_bytes(&mut v[blk * MIB..((blk + 1) * MIB).min(size)]);
            }
            Bytes::from(v)
        })
        .collect();
    let total_mb = (size * a.streams) as f64 / 1e6;

    let t = Instant::now();
    let mut tasks = Vec::new();
    for (s, body) in bodies.into_iter().enumerate() {
        let (c, b) = (c.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            c.put_object()
                .bucket(b)
                .key(format!("obj-{s}"))
                .body(ByteStream::from(body))
                .send()
                .await?;
            Ok::<_, anyhow::Error>(t.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut put_lat = Vec::new();
    for t in tasks {
        put_lat.push(t.await??);
    }
    let put_mbs = total_mb / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..a.streams {
        let (c, b) = (c.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let o = c
                .get_object()
                .bucket(b)
                .key(format!("obj-{s}"))
                .send()
                .await?;
            let mut body = o.body;
            let mut n = 0usize;
            while let Some(chunk) = body.try_next().await? {
                n += chunk.len();
            }
            Ok::<_, anyhow::Error>((n, t.elapsed().as_secs_f64() * 1e3))
        }));
    }
    let mut get_lat = Vec::new();
    for t in tasks {
        let (n, ms) = t.await??;
        if n != size {
            bail!("GET returned {n} bytes, expected {size}");
        }
        get_lat.push(ms);
    }
    let get_mbs = total_mb / t.elapsed().as_secs_f64();
    put_lat.sort_by(f64::total_cmp);
    get_lat.sort_by(f64::total_cmp);
    println!(
        "{{\"label\":\"{}\",\"mode\":\"large\",\"streams\":{},\"size_mib\":{},\"dup\":{},\"put_mbs\":{put_mbs:.1},\"get_mbs\":{get_mbs:.1},\"put_p50_ms\":{:.1},\"put_p99_ms\":{:.1},\"get_p50_ms\":{:.1},\"get_p99_ms\":{:.1}}}",
        a.label,
        a.streams,
        a.size_mib,
        a.dup_fraction,
        percentile(&put_lat, 0.5),
        percentile(&put_lat, 0.99),
        percentile(&get_lat, 0.5),
        percentile(&get_lat, 0.99),
    );
    Ok(())
}

async fn small(a: &Args, c: &Client) -> Result<()> {
    let b = format!("bench-small-{}", rand::random::<u32>());
    bucket(c, &b).await?;
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..a.count)
            .map(|i| {
                Bytes::from(random(
                    (a.seed << 32) + 10_000 + i as u64,
                    a.size_kib * 1024,
                ))
            })
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (c, b, bodies, next) = (c.clone(), b.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                c.put_object()
                    .bucket(&b)
                    .key(format!("o/{i:06}"))
                    .body(ByteStream::from(bodies[i].clone()))
                    .send()
                    .await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let ops = a.count as f64 / t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{{\"label\":\"{}\",\"mode\":\"small\",\"count\":{},\"size_kib\":{},\"concurrency\":{},\"put_ops\":{ops:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        a.label,
        a.count,
        a.size_kib,
        a.concurrency,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse()?;
    let c = client(&a);
    match a.mode.as_str() {
        "large" => large(&a, &c).await,
        "small" => small(&a, &c).await,
        m => bail!("unknown mode {m}"),
    }
}
