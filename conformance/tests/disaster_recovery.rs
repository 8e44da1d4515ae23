//! Disaster recovery with the real binary: the backing bucket alone rebuilds the index.
//!
//! - A mix (aws CLI multipart, SDK single PUTs with metadata and checksums, copies,
//!   overwrites, deletes, a deleted bucket) goes in; the test waits for the scheduled
//!   journal shipment, kills the gateway and deletes its data dir; `s3dedup
//!   rebuild-index` into a new data dir, through the fault proxy injecting errors into
//!   the S3 store, restores every live object byte-exact with its ETag, metadata and
//!   checksums, deleted ones stay deleted, and fsck is clean.
//! - SIGKILL at random moments of a write, delete and GC load: after each kill the
//!   restarted gateway ships what the outbox kept, and a rebuild of its index from the
//!   bucket (into the same data dir, the next round's base) equals it exactly: current
//!   objects, and (the bucket is versioned) every noncurrent version and delete marker.
//!
//! Both run over their own S3 server (s3s-fs), whatever `S3DEDUP_TEST_STORE` says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, MetadataDirective};
use rand::{Rng, SeedableRng};
use s3dedup_conformance::faultproxy::{Fault, FaultPlan, FaultProxy};
use s3dedup_conformance::s3server::S3Server;
use s3dedup_conformance::{Gateway, binary, sdk_client};

const BUCKET: &str = "dr-store";

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    // Half text-like, so chunks compress too.
    for (i, b) in v.iter_mut().enumerate().take(len / 2) {
        *b = b"the quick brown fox "[i % 20];
    }
    v
}

/// What a client sees of one object.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    etag: Option<String>,
    size: Option<i64>,
    content_type: Option<String>,
    cache_control: Option<String>,
    metadata: Option<std::collections::HashMap<String, String>>,
    checksums: [Option<String>; 4],
    /// Length and a hash of the bytes (the values are compared, not printed).
    data: (usize, u64),
}

type Dump = BTreeMap<(String, String), Seen>;

async fn dump(c: &aws_sdk_s3::Client) -> Dump {
    let mut out = BTreeMap::new();
    let buckets = c.list_buckets().send().await.unwrap();
    for b in buckets.buckets() {
        let bucket = b.name().unwrap().to_owned();
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(&bucket)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in page.contents() {
                let key = o.key().unwrap().to_owned();
                let h = c
                    .head_object()
                    .bucket(&bucket)
                    .key(&key)
                    .checksum_mode(ChecksumMode::Enabled)
                    .send()
                    .await
                    .unwrap();
                let data = s3dedup_conformance::get_bytes(c, &bucket, &key).await;
                let seen = Seen {
                    etag: h.e_tag().map(str::to_owned),
                    size: h.content_length(),
                    content_type: h.content_type().map(str::to_owned),
                    cache_control: h.cache_control().map(str::to_owned),
                    metadata: h.metadata().cloned(),
                    checksums: [
                        h.checksum_crc32().map(str::to_owned),
                        h.checksum_crc32_c().map(str::to_owned),
                        h.checksum_sha256().map(str::to_owned),
                        h.checksum_crc64_nvme().map(str::to_owned),
                    ],
                    data: (data.len(), {
                        use std::hash::{Hash, Hasher};
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        data.hash(&mut h);
                        h.finish()
                    }),
                };
                out.insert((bucket.clone(), key), seen);
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    out
}

/// Every version and delete marker of every bucket, as lines (key, version id, latest,
/// marker or ETag, size and a hash of the bytes of that version).
async fn versions_dump(c: &aws_sdk_s3::Client) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    let mut out = Vec::new();
    let buckets = c.list_buckets().send().await.unwrap();
    for b in buckets.buckets() {
        let bucket = b.name().unwrap().to_owned();
        // The bucket's lifecycle rules are restored with it.
        if let Ok(l) = c
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
        {
            out.push(format!("{bucket} lifecycle {:?}", l.rules()));
        }
        let (mut km, mut vm) = (None::<String>, None::<String>);
        loop {
            let page = c
                .list_object_versions()
                .bucket(&bucket)
                .set_key_marker(km.clone())
                .set_version_id_marker(vm.clone())
                .send()
                .await
                .unwrap();
            for v in page.versions() {
                let (key, id) = (v.key().unwrap(), v.version_id().unwrap());
                let got = c
                    .get_object()
                    .bucket(&bucket)
                    .key(key)
                    .version_id(id)
                    .send()
                    .await
                    .unwrap();
                let data = got.body.collect().await.unwrap().into_bytes();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                data.hash(&mut h);
                out.push(format!(
                    "{bucket} {key} {id} latest={:?} etag={:?} size={:?} bytes={:x}",
                    v.is_latest(),
                    v.e_tag(),
                    v.size(),
                    h.finish()
                ));
            }
            for m in page.delete_markers() {
                out.push(format!(
                    "{bucket} {} {} latest={:?} marker",
                    m.key().unwrap(),
                    m.version_id().unwrap(),
                    m.is_latest()
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            km = page.next_key_marker().map(str::to_owned);
            vm = page.next_version_id_marker().map(str::to_owned);
        }
    }
    out.sort();
    out
}

fn assert_same(want: &Dump, got: &Dump) {
    let (a, b): (Vec<_>, Vec<_>) = (want.keys().collect(), got.keys().collect());
    assert_eq!(a, b, "the same objects");
    for (k, v) in want {
        assert_eq!(v, &got[k], "{k:?}");
    }
}

fn aws(g: &Gateway, home: &Path, args: &[&str]) {
    let out = s3dedup_conformance::aws_command("aws", g, home)
        .args(args)
        .output()
        .expect("aws CLI (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "aws {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(dir: &Path, store: &[(String, String)]) -> Gateway {
    let mut env: Vec<(&str, &str)> = store
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("S3DEDUP_JOURNAL_INTERVAL", "1s"),
        ("S3DEDUP_GC_INTERVAL", "0s"),
        ("S3DEDUP_PACK_TARGET", "256KiB"),
    ]);
    Gateway::start_with(dir, &env).unwrap()
}

/// Waits until the scheduled shipper has put every change into the store's journal.
fn wait_for_journal(g: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, s) = g.admin_api("GET", "/admin/v1/status").unwrap();
        assert_eq!(status, 200);
        let j = &s["journal"];
        if j["pending_entries"] == 0 && j["snapshot_seq"].is_u64() {
            return;
        }
        assert!(Instant::now() < deadline, "journal never caught up: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rebuild(dir: &Path, store: &[(String, String)]) -> serde_json::Value {
    let o = Command::new(binary().unwrap())
        .args(["rebuild-index", "--json", "--data-dir"])
        .arg(dir)
        .envs(store.iter().map(|(k, v)| (k, v)))
        .env("S3DEDUP_STORE_MAX_ATTEMPTS", "6")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "rebuild-index:\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn fsck(dir: &Path, store: &[(String, String)]) {
    let o = Command::new(binary().unwrap())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .envs(store.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_alone_rebuilds_every_live_object() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("backend"), None).unwrap();
    server.create_bucket(BUCKET).unwrap();
    let proxy = FaultProxy::start(&server.url).unwrap();
    let store = server.gateway_env_via(&proxy.url(), BUCKET, "gw/");
    let dir = tmp.path().join("data");
    let mut g = start(&dir, &store);
    let c = sdk_client(&g.s3_url);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    c.create_bucket().bucket("docs").send().await.unwrap();
    c.create_bucket().bucket("media").send().await.unwrap();
    c.create_bucket().bucket("scratch").send().await.unwrap();
    // Multipart with the aws CLI (12 MiB, 8 MiB parts), and a copy of it.
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, body(1, 12 << 20)).unwrap();
    aws(
        &g,
        &home,
        &[
            "s3",
            "cp",
            big.to_str().unwrap(),
            "s3://media/archive/big.bin",
        ],
    );
    aws(
        &g,
        &home,
        &[
            "s3",
            "cp",
            "s3://media/archive/big.bin",
            "s3://docs/big-copy.bin",
        ],
    );
    // Single PUTs with metadata and checksums, some small enough to live in the index.
    for i in 0..8u64 {
        let data = body(
            10 + i,
            if i % 3 == 0 {
                900
            } else {
                100_000 + 37_000 * i as usize
            },
        );
        c.put_object()
            .bucket("docs")
            .key(format!("reports/q{i}.txt"))
            .content_type("text/plain; charset=utf-8")
            .cache_control("max-age=60")
            .metadata("owner", format!("team-{i}"))
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
    }
    // Overwrites, a metadata-replacing copy, deletes, a deleted bucket.
    for i in 0..3u64 {
        let put = c
            .put_object()
            .bucket("docs")
            .key(format!("reports/q{i}.txt"));
        put.body(ByteStream::from(body(100 + i, 50_000)))
            .send()
            .await
            .unwrap();
    }
    c.copy_object()
        .bucket("media")
        .key("renamed.txt")
        .copy_source("docs/reports/q4.txt")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("owner", "media-team")
        .content_type("application/octet-stream")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("docs")
        .key("reports/q5.txt")
        .send()
        .await
        .unwrap();
    aws(&g, &home, &["s3", "rm", "s3://docs/reports/q6.txt"]);
    c.put_object()
        .bucket("scratch")
        .key("tmp")
        .body(ByteStream::from_static(b"temporary"))
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("scratch")
        .key("tmp")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("scratch").send().await.unwrap();
    let want = dump(&c).await;
    assert_eq!(want.len(), 9, "{:?}", want.keys());
    // A tenant (with its own dedup domain), its key and its bucket are journaled too
    // (the root key does not list the tenant's bucket, so `want` stays the root's).
    g.admin_cli_ok(&["tenant", "create", "drco", "--dedup-scope", "tenant"]);
    let key = g.create_key(&["--tenant", "drco"]);
    let tenant_client = |g: &Gateway| g.client_for(&key);
    let t = tenant_client(&g);
    t.create_bucket().bucket("drco-files").send().await.unwrap();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::drco-files/*"}]});
    t.put_bucket_policy()
        .bucket("drco-files")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    t.put_object()
        .bucket("drco-files")
        .key("mine")
        .body(ByteStream::from(body(77, 70_000)))
        .send()
        .await
        .unwrap();

    // Quotas and rate limits are journaled too, and kept in the store's snapshots of
    // the index (one is taken now: the rebuild starts from it).
    g.admin_cli_ok(&["quota", "set", "--tenant", "drco", "--bytes", "200KiB"]);
    g.admin_cli_ok(&["quota", "set", "--bucket", "docs", "--objects", "1000"]);
    g.admin_cli_ok(&[
        "rate-limit",
        "set",
        "--tenant",
        "drco",
        "--requests",
        "1000",
    ]);
    g.admin_cli_ok(&["journal", "snapshot"]);

    // ACLs are journaled too: an object's (public-read) and a bucket's (the tenant may
    // list the root's bucket).
    c.put_object_acl()
        .bucket("docs")
        .key("reports/q3.txt")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let drco_id = g.canonical_id("drco");
    c.put_bucket_acl()
        .bucket("docs")
        .grant_read(format!("id=\"{drco_id}\""))
        .send()
        .await
        .unwrap();
    // Tags too, an object's (beside its ACL, in the same per-version record) and a
    // bucket's.
    let tagging = |k: &str, v: &str| {
        aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    c.put_object_tagging()
        .bucket("docs")
        .key("reports/q3.txt")
        .tagging(tagging("quarter", "3"))
        .send()
        .await
        .unwrap();
    c.put_bucket_tagging()
        .bucket("docs")
        .tagging(tagging("team", "finance"))
        .send()
        .await
        .unwrap();
    wait_for_journal(&g);
    let (_, metrics) = g.admin_get("/metrics").unwrap();
    for m in [
        "s3dedup_journal_lag_seconds 0",
        "s3dedup_journal_lag_bytes 0",
        "s3dedup_journal_snapshot_age_seconds",
    ] {
        assert!(metrics.contains(m), "metrics show {m}");
    }
    // The disk is lost: no clean stop, no data dir.
    g.kill();
    std::fs::remove_dir_all(&dir).unwrap();

    // Rebuild through a flaky link: every 4th backend request fails.
    proxy.set(FaultPlan::every(Fault::Status503, 4));
    let new_dir = tmp.path().join("rebuilt");
    // A rebuild killed half-way leaves no index that looks like one.
    let mut killed = Command::new(binary().unwrap())
        .args(["rebuild-index", "--data-dir"])
        .arg(&new_dir)
        .envs(store.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let finished_first = killed.try_wait().unwrap().is_some();
    let _ = killed.kill();
    let _ = killed.wait();
    eprintln!("rebuild killed after 150 ms; it had finished already: {finished_first}");
    if !finished_first {
        assert!(
            !new_dir.join("index.redb").exists(),
            "a killed rebuild left index.redb behind"
        );
    } else {
        std::fs::remove_file(new_dir.join("index.redb")).unwrap();
    }
    let report = rebuild(&new_dir, &store);
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["fsck_clean"], true, "{report:#}");
    assert_eq!(report["objects"], 10, "{report:#}");
    assert_eq!(report["buckets"], 3, "{report:#}");
    let faults = proxy.counts();
    assert!(
        faults.status_5xx > 0,
        "the rebuild met backend errors: {faults:?}"
    );
    proxy.set(FaultPlan::none());
    fsck(&new_dir, &store);

    let g = start(&new_dir, &store);
    let c = sdk_client(&g.s3_url);
    assert_same(&want, &dump(&c).await);
    for (b, k) in [("docs", "reports/q5.txt"), ("docs", "reports/q6.txt")] {
        let e = c.head_object().bucket(b).key(k).send().await.unwrap_err();
        assert_eq!(
            s3dedup_conformance::error_status(&e),
            404,
            "{b}/{k} stays deleted"
        );
    }
    assert!(c.head_bucket().bucket("scratch").send().await.is_err());
    // The tenant's key, its bucket and its ownership came back with the journal.
    let t = tenant_client(&g);
    let mine = t.list_buckets().send().await.unwrap();
    let names: Vec<_> = mine.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["drco-files"]);
    assert!(s3dedup_conformance::get_bytes(&t, "drco-files", "mine").await == body(77, 70_000));
    // The ACLs came back: the object's public read, the tenant's listing of docs.
    let anonymous_get = |path: &str| {
        s3dedup_conformance::http_request(g.s3_addr(), "GET", path, &[], b"")
            .unwrap()
            .0
    };
    assert_eq!(anonymous_get("/docs/reports/q3.txt"), 200);
    assert_eq!(anonymous_get("/docs/reports/q4.txt"), 403);
    assert!(t.list_objects_v2().bucket("docs").send().await.is_ok());
    // The tags came back.
    let c = sdk_client(&g.s3_url);
    let tags = |ts: &[aws_sdk_s3::types::Tag]| -> Vec<(String, String)> {
        ts.iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    };
    let o = c
        .get_object_tagging()
        .bucket("docs")
        .key("reports/q3.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(tags(o.tag_set()), [("quarter".to_owned(), "3".to_owned())]);
    let b = c.get_bucket_tagging().bucket("docs").send().await.unwrap();
    assert_eq!(
        tags(b.tag_set()),
        [("team".to_owned(), "finance".to_owned())]
    );
    // The quotas came back, with usage recounted from the rebuilt objects.
    let quota = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["quota", "show"];
        all.extend_from_slice(args);
        all.push("--json");
        serde_json::from_str(&g.admin_cli_ok(&all)).unwrap()
    };
    let q = quota(&["--tenant", "drco"]);
    assert_eq!(q["quota"]["max_bytes"], 200 << 10);
    assert_eq!(q["usage"]["bytes"], 70_000);
    assert_eq!(quota(&["--bucket", "docs"])["quota"]["max_objects"], 1000);
    let rates: serde_json::Value = serde_json::from_str(&g.admin_cli_ok(&[
        "rate-limit",
        "show",
        "--tenant",
        "drco",
        "--json",
    ]))
    .unwrap();
    assert_eq!(rates["requests_per_sec"], 1000);
    // Its dedup domain came back too: the same content again stores nothing new.
    assert_eq!(g.tenant_entry("drco")["dedup_scope"], "tenant");
    let new_chunks = |g: &Gateway| {
        g.metric_sum("s3dedup_ingested_chunks_total", &["result=\"new\""])
            .unwrap()
    };
    let before = new_chunks(&g);
    t.put_object()
        .bucket("drco-files")
        .key("mine-again")
        .body(ByteStream::from(body(77, 70_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        new_chunks(&g),
        before,
        "the rebuilt tenant's dedup domain differs"
    );
    // ...and the rebuilt quota is enforced: 140,000 of 204,800 bytes are used.
    let over = t
        .put_object()
        .bucket("drco-files")
        .key("too-much")
        .body(ByteStream::from(body(78, 70_000)))
        .send()
        .await;
    assert_eq!(
        s3dedup_conformance::error_code(&over.expect_err("the rebuilt quota was not enforced")),
        "QuotaExceeded"
    );
    let denied = t
        .get_object()
        .bucket("docs")
        .key("big-copy.bin")
        .send()
        .await;
    assert_eq!(
        s3dedup_conformance::refusal(denied).0,
        403,
        "root's bucket stays root's"
    );
    // The rebuilt index is a working one.
    let put = c.put_object().bucket("docs").key("after-rebuild");
    put.body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s3dedup_conformance::get_bytes(&c, "docs", "after-rebuild").await,
        b"new"
    );
}

/// Random writes, overwrites, copies and deletes, with GC (no grace) now and then,
/// until `stop`; returns nothing (the index is the truth the rebuild is compared with).
async fn load(
    c: aws_sdk_s3::Client,
    (admin, data_dir): (String, std::path::PathBuf),
    seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let token = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    // Versions this load created (the bucket is versioned): some are deleted by id.
    let mut versions: Vec<(String, String)> = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let key = format!("k{}", rng.random_range(0..40u32));
        let r = match rng.random_range(0..11u32) {
            0..=5 => c
                .put_object()
                .bucket("crash")
                .key(&key)
                .body(ByteStream::from(body(
                    seed * 1000 + n,
                    rng.random_range(100..300_000),
                )))
                .send()
                .await
                .map(|o| {
                    if let Some(v) = o.version_id() {
                        versions.push((key.clone(), v.to_owned()));
                    }
                })
                .map_err(|e| e.to_string()),
            10 if !versions.is_empty() => {
                let (k, v) = versions.swap_remove(rng.random_range(0..versions.len()));
                c.delete_object()
                    .bucket("crash")
                    .key(k)
                    .version_id(v)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            10 => Ok(()),
            6 => c
                .copy_object()
                .bucket("crash")
                .key(format!("copy-{key}"))
                .copy_source(format!("crash/k{}", rng.random_range(0..40u32)))
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            7 | 8 => c
                .delete_object()
                .bucket("crash")
                .key(&key)
                .send()
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            _ => {
                let (addr, auth) = (admin.clone(), auth.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    s3dedup_conformance::http_request(
                        &addr,
                        "POST",
                        "/admin/v1/gc?grace=0s",
                        &[("Authorization", auth)],
                        &[],
                    )
                })
                .await;
                Ok(())
            }
        };
        // A copy of a missing source is a normal 404 here; a kill ends the loop.
        if let Err(e) = r
            && !e.contains("NoSuchKey")
            && !e.contains("404")
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_rebuild_equals_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::start(&tmp.path().join("backend"), None).unwrap();
    server.create_bucket(BUCKET).unwrap();
    let store = server.gateway_env(BUCKET, "gw/");
    let dir = tmp.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..3u64 {
        let mut g = start(&dir, &store);
        let c = sdk_client(&g.s3_url);
        if round == 0 {
            c.create_bucket().bucket("crash").send().await.unwrap();
            c.put_bucket_versioning()
                .bucket("crash")
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            use aws_sdk_s3::types::{
                BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
                LifecycleRuleFilter,
            };
            c.put_bucket_lifecycle_configuration()
                .bucket("crash")
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .rules(
                            LifecycleRule::builder()
                                .id("far-off")
                                .status(ExpirationStatus::Enabled)
                                .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
                                .expiration(LifecycleExpiration::builder().days(3650).build())
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = (g.admin_addr.clone(), g.data_dir.clone());
        let task = tokio::spawn(load(c.clone(), target, round, std::sync::Arc::clone(&stop)));
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4000))).await;
        g.kill();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = task.await;

        // Restarted, the gateway ships what its outbox kept; its index is the truth.
        let mut g = start(&dir, &store);
        let c = sdk_client(&g.s3_url);
        let want = dump(&c).await;
        let want_versions = versions_dump(&c).await;
        assert!(
            want_versions.iter().any(|l| l.contains("lifecycle")),
            "round {round}: the lifecycle rules are in the dump"
        );
        assert!(
            round == 0
                || want_versions
                    .iter()
                    .any(|l| l.contains("latest=Some(false)")),
            "round {round}: the load left noncurrent versions to restore"
        );
        wait_for_journal(&g);
        g.kill();
        std::fs::remove_file(dir.join("index.redb")).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("index-snapshots"));
        let report = rebuild(&dir, &store);
        assert_eq!(report["complete"], true, "round {round}: {report:#}");
        assert_eq!(report["fsck_clean"], true, "round {round}: {report:#}");
        let mut g = start(&dir, &store);
        let c = sdk_client(&g.s3_url);
        assert_same(&want, &dump(&c).await);
        assert_eq!(
            want_versions,
            versions_dump(&c).await,
            "round {round}: versions"
        );
        g.stop().unwrap();
        fsck(&dir, &store);
    }
}
