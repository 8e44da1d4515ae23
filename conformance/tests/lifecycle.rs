//! Lifecycle rules applied by the real gateway (a lifecycle day of one second,
//! `lifecycle_day`, as Ceph's rgw_lc_debug_interval does for its tests):
//!
//! - through the Rust SDK and `s3dedup admin lifecycle --wait --json`: current
//!   versions expire under delete markers, noncurrent versions go after their days,
//!   expired delete markers are removed, nothing outside the rules is touched, GC then
//!   frees the bytes, and the metrics count it;
//! - SIGKILL in the middle of a run: fsck is clean after every kill, every version the
//!   rules do not select is intact, every version still listed reads byte-exact, and a
//!   later run finishes the work.
//!
//! The configuration API itself (every field and refusal) is in the boto3 suite
//! (`conformance/python/versioning_suite.py`, section "lifecycle").

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration,
};
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, create_versioned_bucket, sdk_client};

const ENV: &[(&str, &str)] = &[
    ("S3DEDUP_LIFECYCLE_DAY", "1s"),
    ("S3DEDUP_LIFECYCLE_INTERVAL", "0s"),
];

/// Long enough for anything written before it to be one lifecycle day old, rounded up
/// to the next day boundary.
const A_DAY_LATER: Duration = Duration::from_millis(2200);

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

/// Expire current versions after a day and noncurrent ones a day after they became
/// noncurrent, under `prefix`; and remove expired delete markers everywhere.
async fn expire_rules(c: &aws_sdk_s3::Client, b: &str, prefix: &str) {
    let config = BucketLifecycleConfiguration::builder()
        .rules(
            rule("expire", prefix)
                .expiration(LifecycleExpiration::builder().days(1).build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .rules(
            rule("markers", "")
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    c.put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(config)
        .send()
        .await
        .unwrap();
}

async fn put(c: &aws_sdk_s3::Client, b: &str, key: &str, body: Vec<u8>) -> String {
    c.put_object()
        .bucket(b)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned()
}

/// (key, version id, is a delete marker), every version of the bucket.
async fn versions(c: &aws_sdk_s3::Client, b: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let r = c
            .list_object_versions()
            .bucket(b)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        for v in r.versions() {
            out.push((
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                false,
            ));
        }
        for m in r.delete_markers() {
            out.push((
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
                true,
            ));
        }
        if r.is_truncated() != Some(true) {
            out.sort();
            return out;
        }
        km = r.next_key_marker().map(str::to_owned);
        vm = r.next_version_id_marker().map(str::to_owned);
    }
}

async fn read(c: &aws_sdk_s3::Client, b: &str, key: &str, version: &str) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} version {version}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

fn lifecycle_run(g: &Gateway) -> serde_json::Value {
    let out = g.admin_cli_ok(&["lifecycle", "--wait", "--json"]);
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| {
        panic!("admin lifecycle --json printed {out:?}: {e}");
    });
    assert_eq!(run["result"], "ok", "{run}");
    run["report"].clone()
}

fn n(r: &serde_json::Value, field: &str) -> u64 {
    r[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_expire_versions_markers_and_nothing_else_then_gc_frees_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), ENV).unwrap();
    let c = sdk_client(&g.s3_url);
    let b = "lc-expiry";
    create_versioned_bucket(&c, b).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut body = |len: usize| {
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        v
    };
    let a1 = put(&c, b, "logs/a", body(700_000)).await;
    let a2 = put(&c, b, "logs/a", body(700_000)).await;
    let a3 = put(&c, b, "logs/a", body(700_000)).await;
    let kept_body = body(900_000);
    let kept = put(&c, b, "keep/c", kept_body.clone()).await;
    expire_rules(&c, b, "logs/").await;

    // Nothing is a day old yet.
    let r = lifecycle_run(&g);
    assert_eq!(
        n(&r, "current_expired") + n(&r, "versions_removed"),
        0,
        "{r}"
    );

    tokio::time::sleep(A_DAY_LATER).await;
    let r = lifecycle_run(&g);
    assert_eq!(n(&r, "buckets"), 1, "{r}");
    assert_eq!(
        (n(&r, "current_expired"), n(&r, "markers_added")),
        (1, 1),
        "{r}"
    );
    assert_eq!(
        n(&r, "versions_removed"),
        2,
        "a1 and a2 were noncurrent for a day: {r}"
    );
    assert_eq!(n(&r, "bytes_released"), 1_400_000, "{r}");
    let get = c.get_object().bucket(b).key("logs/a").send().await;
    let e = get.expect_err("logs/a expired");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    let listed = versions(&c, b).await;
    let a: Vec<_> = listed.iter().filter(|v| v.0 == "logs/a").collect();
    assert_eq!(a.len(), 2, "the marker and a3: {listed:?}");
    assert!(
        a.iter().any(|v| v.2) && a.iter().any(|v| v.1 == a3 && !v.2),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|v| v.1 == a1 || v.1 == a2), "{listed:?}");
    assert_eq!(read(&c, b, "keep/c", &kept).await, kept_body);

    // A day later a3 (noncurrent since the marker) goes, which leaves the marker
    // alone: it is removed in the same run.
    tokio::time::sleep(A_DAY_LATER).await;
    let before_gc = g.store_bytes().unwrap();
    let r = lifecycle_run(&g);
    assert_eq!(
        (n(&r, "versions_removed"), n(&r, "markers_removed")),
        (1, 1),
        "{r}"
    );
    let listed = versions(&c, b).await;
    assert_eq!(listed, vec![("keep/c".to_owned(), kept.clone(), false)]);
    assert_eq!(read(&c, b, "keep/c", &kept).await, kept_body);

    // The bytes are GC's to free; what is kept is untouched.
    let out = g.admin_cli_ok(&["gc", "--grace", "0s", "--wait"]);
    assert!(out.contains("finished"), "{out}");
    let after_gc = g.store_bytes().unwrap();
    assert!(
        after_gc + 2_000_000 < before_gc,
        "GC freed {} of the ~2.1 MB that expired",
        before_gc.saturating_sub(after_gc)
    );
    assert_eq!(read(&c, b, "keep/c", &kept).await, kept_body);
    assert!(
        g.metric("s3dedup_lifecycle_runs_total{result=\"ok\"}")
            .unwrap()
            >= 3.0
    );
    assert_eq!(
        g.metric("s3dedup_lifecycle_expired_total{action=\"noncurrent\"}")
            .unwrap(),
        3.0
    );
    let (_, status) = g.admin_api("GET", "/admin/v1/status").unwrap();
    assert_eq!(status["lifecycle"]["last"]["kind"], "lifecycle", "{status}");
    assert_eq!(status["lifecycle"]["interval_seconds"], 0, "{status}");
}

/// Keys the rules select, written in each round.
const DUE_KEYS: usize = 2500;
/// Keys no rule selects.
const KEEP_KEYS: usize = 200;

fn small_body(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; rng.random_range(200..3000)];
    rng.fill(&mut v[..]);
    v
}

/// Writes `keys` (two versions each) with 16 requests in flight; returns version id →
/// body.
async fn put_many(
    c: &aws_sdk_s3::Client,
    b: &str,
    keys: Vec<String>,
    seed: u64,
) -> BTreeMap<String, (String, Vec<u8>)> {
    use futures::StreamExt;
    // Two versions of one key must be written in order: one task per key.
    let by_key: Vec<(String, [u64; 2])> = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let s = seed * 1_000_000 + 2 * i as u64;
            (k, [s, s + 1])
        })
        .collect();
    futures::stream::iter(by_key)
        .map(|(key, seeds)| {
            let c = c.clone();
            let b = b.to_owned();
            async move {
                let mut out = Vec::new();
                for s in seeds {
                    let body = small_body(s);
                    let id = put(&c, &b, &key, body.clone()).await;
                    out.push((id, (key.clone(), body)));
                }
                out
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[test]
fn sigkill_during_a_run_loses_nothing_and_a_later_run_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let b = "lck";
    // version id → (key, body) of every version written.
    let mut written: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut killed_mid_run = 0;
    for round in 0..2u64 {
        let mut g = Gateway::start_with(tmp.path(), ENV).unwrap();
        let c = sdk_client(&g.s3_url);
        rt.block_on(async {
            if round == 0 {
                create_versioned_bucket(&c, b).await;
                expire_rules(&c, b, "due/").await;
                let keep = (0..KEEP_KEYS).map(|i| format!("keep/{i:04}")).collect();
                written.extend(put_many(&c, b, keep, 99).await);
            }
            let due = (0..DUE_KEYS)
                .map(|i| format!("due/r{round}/{i:05}"))
                .collect();
            written.extend(put_many(&c, b, due, round).await);
        });
        std::thread::sleep(A_DAY_LATER);
        // Start a run and kill the process once it has applied a page but not
        // finished.
        let (status, run) = g.admin_api("POST", "/admin/v1/lifecycle").unwrap();
        assert_eq!(status, 202, "{run}");
        let path = format!("/admin/v1/lifecycle/runs/{}", run["id"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, now) = g.admin_api("GET", &path).unwrap();
            if now["result"] != "running" {
                println!("round {round}: the run finished before the kill: {now}");
                break;
            }
            if now["report"]["keys_due"].as_u64().unwrap_or(0) > 0 {
                g.kill();
                killed_mid_run += 1;
                println!("round {round}: killed mid-run at {}", now["report"]);
                break;
            }
            assert!(Instant::now() < deadline, "the run never progressed: {now}");
            std::thread::sleep(Duration::from_millis(2));
        }
        g.kill();
        g.assert_fsck(&format!("round {round}: after the kill"));

        // Restarted: every version still listed reads byte-exact, every kept key is
        // intact, and what is gone is only what the rules select.
        let g = Gateway::start_with(tmp.path(), ENV).unwrap();
        let c = sdk_client(&g.s3_url);
        rt.block_on(async {
            let listed = versions(&c, b).await;
            let ids: std::collections::HashSet<&str> =
                listed.iter().map(|v| v.1.as_str()).collect();
            for (id, (key, _)) in &written {
                if key.starts_with("keep/") {
                    assert!(ids.contains(id.as_str()), "kept {key} version {id} is gone");
                }
            }
            for (key, id, marker) in &listed {
                if *marker {
                    assert!(key.starts_with("due/"), "a delete marker on {key}");
                    continue;
                }
                let (k, body) = written
                    .get(id)
                    .unwrap_or_else(|| panic!("{key} version {id} was never written"));
                assert_eq!(k, key);
                assert_eq!(&read(&c, b, key, id).await, body, "{key} {id}");
            }
        });
        drop(g);
    }
    assert!(
        killed_mid_run > 0,
        "no kill landed inside a run: the test proved nothing"
    );

    // Later runs finish the work: every selected key is gone, nothing else is.
    let g = Gateway::start_with(tmp.path(), ENV).unwrap();
    let c = sdk_client(&g.s3_url);
    for _ in 0..2 {
        std::thread::sleep(A_DAY_LATER);
        lifecycle_run(&g);
    }
    rt.block_on(async {
        let listed = versions(&c, b).await;
        assert!(
            listed.iter().all(|v| v.0.starts_with("keep/")),
            "left over: {:?}",
            listed
                .iter()
                .filter(|v| !v.0.starts_with("keep/"))
                .take(5)
                .collect::<Vec<_>>()
        );
        assert_eq!(listed.len(), 2 * KEEP_KEYS);
        for (key, id, _) in &listed {
            assert_eq!(&read(&c, b, key, id).await, &written[id].1);
        }
    });
    let mut g = g;
    g.stop().unwrap();
    g.assert_fsck("at the end");
}

/// A rule with a tag filter expires the versions carrying its tags, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filters_select_tagged_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_with(tmp.path(), ENV).unwrap();
    let c = sdk_client(&g.s3_url);
    let b = "lc-tags";
    c.create_bucket().bucket(b).send().await.unwrap();
    for (key, tags) in [
        ("t/tmp", Some("tier=tmp&team=x")),
        ("t/keep", None),
        ("t/other", Some("tier=gold")),
    ] {
        let mut put = c
            .put_object()
            .bucket(b)
            .key(key)
            .body(ByteStream::from(small_body(key.len() as u64)));
        if let Some(t) = tags {
            put = put.tagging(t);
        }
        put.send().await.unwrap();
    }
    let tag = aws_sdk_s3::types::Tag::builder()
        .key("tier")
        .value("tmp")
        .build()
        .unwrap();
    let config = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("tmp")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().tag(tag).build())
                .expiration(LifecycleExpiration::builder().days(1).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    c.put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(config)
        .send()
        .await
        .unwrap();
    std::thread::sleep(A_DAY_LATER);
    lifecycle_run(&g);
    let listed: Vec<String> = c
        .list_objects_v2()
        .bucket(b)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(listed, ["t/keep", "t/other"]);
    g.stop().unwrap();
    g.assert_fsck("after a tag-filtered lifecycle run");
}
