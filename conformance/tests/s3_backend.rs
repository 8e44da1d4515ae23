//! The S3 backing store against a real S3 server process (`s3sfs`): the shared
//! BlobStore contract, multipart packs, how many backend requests uploads cost, and
//! restarts reading everything back from the bucket.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::faultproxy::FaultProxy;
use s3dedup_conformance::s3server::{BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY, S3Server};
use s3dedup_conformance::{Gateway, sdk_client};
use s3dedup_storage::Error;
use s3dedup_storage::blob::{BlobStore, S3BlobStore, S3Settings};

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

async fn read(c: &aws_sdk_s3::Client, key: &str) -> Bytes {
    let out = c.get_object().bucket("bkt").key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes()
}

fn settings(endpoint: &str, url: &str) -> S3Settings {
    let mut s = S3Settings::from_url(url).unwrap();
    s.endpoint = Some(endpoint.to_owned());
    s.region = Some("us-east-1".into());
    s.path_style = true;
    s.credentials = Some((BACKEND_ACCESS_KEY.into(), BACKEND_SECRET_KEY.into()));
    s.attempt_timeout = Duration::from_secs(20);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_meets_the_blobstore_contract() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), None).unwrap();
    for (bucket, url) in [
        ("contract", "s3://contract/under/a-prefix"),
        ("bare", "s3://bare"),
    ] {
        server.create_bucket(bucket).unwrap();
        let store = S3BlobStore::connect(settings(&server.url, url))
            .await
            .unwrap();
        store.check().await.expect("bucket reachable");
        s3dedup_storage::blob::contract::contract(Arc::new(store)).await;
    }
    // The prefix is where blobs go: nothing outside it.
    let objects = server.objects("contract", "").unwrap();
    assert!(!objects.is_empty());
    assert!(
        objects
            .iter()
            .all(|(k, _)| k.starts_with("under/a-prefix/")),
        "{objects:?}"
    );
    // A bucket that does not exist is not ready.
    let missing = S3BlobStore::connect(settings(&server.url, "s3://no-such-bucket"))
        .await
        .unwrap();
    assert!(missing.check().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_are_multipart_and_invisible_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), None).unwrap();
    server.create_bucket("mpu").unwrap();
    // Count requests with a pass-through proxy in front.
    let proxy = FaultProxy::start(&server.addr).unwrap();
    let mut s = settings(&proxy.url(), "s3://mpu/p");
    s.part_size = 5 << 20;
    s.single_put_max = 5 << 20;
    let store = S3BlobStore::connect(s).await.unwrap();

    let body = data(1, (12 << 20) + 1);
    let before = proxy.counts().requests;
    let mut w = store.writer("packs/00/big.pack").await.unwrap();
    let pieces = body.chunks(1 << 20).count() as u64;
    for piece in body.chunks(1 << 20) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        assert!(matches!(
            store.get("packs/00/big.pack").await,
            Err(Error::BlobNotFound(_))
        ));
    }
    w.finish().await.unwrap();
    let after = proxy.counts().requests;
    // One GET per piece above, then create + 3 parts (5 + 5 + 2 MiB) + complete.
    assert_eq!(
        after - before,
        pieces + 5,
        "requests for a 12 MiB multipart blob"
    );
    assert_eq!(
        store.get("packs/00/big.pack").await.unwrap(),
        Bytes::from(body.clone())
    );
    assert_eq!(
        server.objects("mpu", "p/").unwrap(),
        vec![("p/packs/00/big.pack".to_owned(), body.len() as u64)]
    );

    // A writer dropped after its first parts publishes nothing.
    let mut w = store.writer("packs/00/dropped.pack").await.unwrap();
    for piece in body.chunks(1 << 20).take(11) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    drop(w);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        store.get("packs/00/dropped.pack").await,
        Err(Error::BlobNotFound(_))
    ));
    assert_eq!(server.objects("mpu", "p/").unwrap().len(), 1);
}

/// Sum of the backend write requests (PutObject and the multipart calls) so far.
fn backend_writes(g: &Gateway) -> f64 {
    [
        "put",
        "upload_part",
        "create_multipart",
        "complete_multipart",
    ]
    .iter()
    .map(|op| {
        g.metric_sum("s3dedup_backend_requests_total", &[&format!("op=\"{op}\"")])
            .unwrap()
    })
    .sum()
}

fn s3_env(server: &S3Server, bucket: &str) -> Vec<(String, String)> {
    server.create_bucket(bucket).unwrap();
    server.gateway_env(bucket, "site-a/")
}

fn start(dir: &std::path::Path, env: &[(String, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Gateway::start_with(dir, &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_cost_packs_not_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), None).unwrap();
    let mut env = s3_env(&server, "packs");
    // The metadata journal's few small writes (one segment per journal_interval) are
    // not what this counts: they are kept out of the window.
    env.push(("S3DEDUP_JOURNAL_INTERVAL".into(), "1h".into()));
    let g = start(&dir.path().join("gw"), &env);
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("bkt").send().await.unwrap();

    // 1 GiB of unique data in one PUT.
    let big = Bytes::from(data(7, 1 << 30));
    let w0 = backend_writes(&g);
    c.put_object()
        .bucket("bkt")
        .key("gib")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    let gib_writes = backend_writes(&g) - w0;
    let packs = server.objects("packs", "site-a/packs/").unwrap();
    println!(
        "1 GiB unique PUT: {gib_writes} backend write requests, {} packs in the bucket",
        packs.len()
    );
    assert!(gib_writes <= 64.0, "{gib_writes} backend writes for 1 GiB");
    assert_eq!(gib_writes as usize, packs.len(), "one PutObject per pack");
    let stored: u64 = packs.iter().map(|(_, n)| n).sum();
    assert!(
        stored >= 1 << 30,
        "the bucket holds the data ({stored} bytes)"
    );

    // A 4 KiB object costs at most one; 64 KiB (a chunk too big to inline) exactly one.
    for (key, len, most) in [("4k", 4096, 1.0), ("64k", 65536, 1.0)] {
        let w = backend_writes(&g);
        c.put_object()
            .bucket("bkt")
            .key(key)
            .body(ByteStream::from(data(len as u64, len)))
            .send()
            .await
            .unwrap();
        let cost = backend_writes(&g) - w;
        println!("{key} object: {cost} backend write requests");
        assert!(cost <= most, "{key}: {cost}");
    }
    // The same GiB again costs no backend write at all.
    let w = backend_writes(&g);
    c.put_object()
        .bucket("bkt")
        .key("gib-again")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(backend_writes(&g) - w, 0.0, "duplicate GiB wrote packs");

    // And it reads back through ranged GETs, byte for byte.
    let reads0 = g
        .metric_sum("s3dedup_backend_requests_total", &["op=\"get_range\""])
        .unwrap();
    let got = read(&c, "gib-again").await;
    assert!(got == big, "GiB read back differs");
    let reads = g
        .metric_sum("s3dedup_backend_requests_total", &["op=\"get_range\""])
        .unwrap()
        - reads0;
    println!("1 GiB GET: {reads} ranged backend reads");
    assert!(reads > 0.0 && reads <= 1100.0, "{reads} ranged reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_read_everything_back_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let s3_root = dir.path().join("s3");
    let gw_dir = dir.path().join("gw");
    let mut server = S3Server::start(&s3_root, None).unwrap();
    let env = s3_env(&server, "restart");
    let mut g = start(&gw_dir, &env);
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("bkt").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            let len = [0, 1, 4096, 70_000, 3 << 20, 17 << 20][i as usize % 6] + i as usize;
            (format!("obj/{i}"), data(100 + i, len))
        })
        .collect();
    for (k, v) in &objects {
        c.put_object()
            .bucket("bkt")
            .key(k)
            .body(ByteStream::from(v.clone()))
            .send()
            .await
            .unwrap();
    }
    assert!(
        !gw_dir.join("store").exists(),
        "packs went to the local directory"
    );
    // Packs and the store marker (the journal, shipped at the stop, is not compared).
    let data_blobs = |server: &S3Server| -> Vec<(String, u64)> {
        let mut all = server.objects("restart", "site-a/").unwrap();
        all.retain(|(name, _)| !name.contains("/journal/"));
        all
    };
    let packs_before = data_blobs(&server);
    assert!(!packs_before.is_empty());

    // Stop both processes; the S3 server comes back on another port.
    g.stop().unwrap();
    server.kill();
    let server = S3Server::start(&s3_root, None).unwrap();
    let g = start(&gw_dir, &server.gateway_env("restart", "site-a/"));
    let c = sdk_client(&g.s3_url);
    for (k, v) in &objects {
        let got = read(&c, k).await;
        assert!(got == v[..], "{k} differs after restart");
    }
    assert_eq!(data_blobs(&server), packs_before);
    let (status, body) = g.admin_get("/health/ready").unwrap();
    assert_eq!(status, 200, "{body}");
    drop(g);

    // A data directory remembers its store: opening it over another one is refused.
    let mut other = server.gateway_env("restart", "site-b/");
    other.push(("S3DEDUP_LOG_FORMAT".into(), "text".into()));
    let env: Vec<(&str, &str)> = other
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let err = Gateway::start_with(&gw_dir, &env).unwrap_err();
    assert!(
        format!("{err:#}").contains("was created with backing store"),
        "{err:#}"
    );
}
