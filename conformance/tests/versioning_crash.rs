//! SIGKILL during versioned overwrites and deletes (issue: versioning must lose nothing).
//!
//! Each round restarts the gateway on the same data dir and checks the versioned
//! bucket against what clients were told: every acknowledged version is listed and
//! reads back byte-exact by its version id, every acknowledged permanent delete stays
//! done, and a version the listing shows that no client was told about is one of the
//! writes in flight at the kill (its bytes are that write's). Then four writers
//! overwrite, delete (delete markers) and delete versions by id until the process is
//! killed at a random moment; `s3dedup fsck` (refcounts recounted from every version's
//! manifest) is clean after every kill. At the end every version is deleted, GC runs
//! and nothing is left.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, sdk_client};

const ROUNDS: u64 = 3;
const BUCKET: &str = "vcrash";

/// What the writers were told, and what they had in flight when the process died.
#[derive(Default)]
struct Told {
    /// (key, version id) → bytes (None: a delete marker), acknowledged.
    versions: BTreeMap<(String, String), Option<Vec<u8>>>,
    /// Bodies of PUTs sent but not answered.
    puts_in_flight: Vec<(String, Vec<u8>)>,
    /// Versions whose delete was sent but not answered.
    deletes_in_flight: HashSet<(String, String)>,
    /// Keys whose plain delete (a new marker) was sent but not answered, once per
    /// request (several writers may delete the same key at once).
    markers_in_flight: Vec<String>,
}

fn body(seed: u64, blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Versions share most of their bytes: blocks drawn from a small set, plus a tail.
    let mut v: Vec<u8> = (0..rng.random_range(1..4))
        .flat_map(|_| blocks[rng.random_range(0..blocks.len())].clone())
        .collect();
    v.extend((0..rng.random_range(0..3000)).map(|_| rng.random::<u8>()));
    v
}

async fn writer(
    c: aws_sdk_s3::Client,
    told: Arc<Mutex<Told>>,
    seed: u64,
    blocks: Arc<Vec<Vec<u8>>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    loop {
        n += 1;
        let key = format!("k{}", rng.random_range(0..12u32));
        match rng.random_range(0..10u32) {
            0..=5 => {
                let data = body(seed * 100_000 + n, &blocks);
                told.lock()
                    .unwrap()
                    .puts_in_flight
                    .push((key.clone(), data.clone()));
                let r = c
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await;
                let Ok(o) = r else { return };
                let mut t = told.lock().unwrap();
                let i = t
                    .puts_in_flight
                    .iter()
                    .position(|(k, d)| *k == key && *d == data);
                t.puts_in_flight.swap_remove(i.expect("recorded"));
                let id = o
                    .version_id()
                    .expect("a versioned PUT names its version")
                    .to_owned();
                t.versions.insert((key, id), Some(data));
            }
            6 | 7 => {
                told.lock().unwrap().markers_in_flight.push(key.clone());
                let r = c.delete_object().bucket(BUCKET).key(&key).send().await;
                let Ok(o) = r else { return };
                let mut t = told.lock().unwrap();
                // One of possibly several writers' deletes of this key was answered.
                let i = t.markers_in_flight.iter().position(|k| *k == key);
                t.markers_in_flight.swap_remove(i.expect("recorded"));
                assert_eq!(o.delete_marker(), Some(true));
                let id = o.version_id().expect("a marker has an id").to_owned();
                t.versions.insert((key, id), None);
            }
            _ => {
                let pick = {
                    let mut t = told.lock().unwrap();
                    let ids: Vec<_> = t
                        .versions
                        .keys()
                        .filter(|(k, _)| *k == key)
                        .cloned()
                        .collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let p = ids[rng.random_range(0..ids.len())].clone();
                    t.deletes_in_flight.insert(p.clone());
                    p
                };
                let r = c
                    .delete_object()
                    .bucket(BUCKET)
                    .key(&pick.0)
                    .version_id(&pick.1)
                    .send()
                    .await;
                if r.is_err() {
                    return;
                }
                let mut t = told.lock().unwrap();
                t.deletes_in_flight.remove(&pick);
                t.versions.remove(&pick);
            }
        }
    }
}

/// (key, version id) → bytes (None: a marker), as the gateway lists and serves them.
async fn stored(c: &aws_sdk_s3::Client) -> BTreeMap<(String, String), Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let (mut km, mut vm) = (None::<String>, None::<String>);
    loop {
        let page = c
            .list_object_versions()
            .bucket(BUCKET)
            .max_keys(7)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        for v in page.versions() {
            let (key, id) = (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
            );
            let got = c
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .version_id(&id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} {id}: {e:?}"));
            let data = got.body.collect().await.unwrap().into_bytes().to_vec();
            out.insert((key, id), Some(data));
        }
        for m in page.delete_markers() {
            out.insert(
                (
                    m.key().unwrap().to_owned(),
                    m.version_id().unwrap().to_owned(),
                ),
                None,
            );
        }
        if page.is_truncated() != Some(true) {
            return out;
        }
        km = page.next_key_marker().map(str::to_owned);
        vm = page.next_version_id_marker().map(str::to_owned);
    }
}

/// Checks the store against what was told and adopts what the in-flight requests did.
fn reconcile(told: &mut Told, got: BTreeMap<(String, String), Option<Vec<u8>>>, round: u64) {
    for (k, want) in &told.versions {
        match got.get(k) {
            Some(have) => assert!(
                have == want,
                "round {round}: {k:?} reads back different bytes"
            ),
            None => assert!(
                told.deletes_in_flight.contains(k),
                "round {round}: acknowledged version {k:?} is gone"
            ),
        }
    }
    for (k, have) in &got {
        if told.versions.contains_key(k) {
            continue;
        }
        match have {
            Some(data) => assert!(
                told.puts_in_flight
                    .iter()
                    .any(|(key, d)| *key == k.0 && d == data),
                "round {round}: {k:?} was never written"
            ),
            None => assert!(
                told.markers_in_flight.contains(&k.0),
                "round {round}: marker {k:?} was never asked for"
            ),
        }
    }
    told.versions = got;
    told.puts_in_flight.clear();
    told.deletes_in_flight.clear();
    told.markers_in_flight.clear();
}

fn fsck(g: &Gateway, round: u64) {
    g.assert_fsck(&format!("round {round}: after a kill"));
}

#[test]
fn sigkill_during_versioned_writes_and_deletes_loses_no_acknowledged_version() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let blocks: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..8u64)
            .map(|i| {
                let mut v = vec![0u8; 24 << 10];
                rand::rngs::StdRng::seed_from_u64(500 + i).fill(&mut v[..]);
                v
            })
            .collect(),
    );
    let env = [
        ("S3DEDUP_PACK_TARGET", "128KiB"),
        ("S3DEDUP_GC_INTERVAL", "0s"),
    ];
    let told = Arc::new(Mutex::new(Told::default()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut noncurrent_seen = false;
    for round in 0..ROUNDS {
        let mut g = Gateway::start_with(tmp.path(), &env).unwrap();
        let c = sdk_client(&g.s3_url);
        rt.block_on(async {
            if round == 0 {
                s3dedup_conformance::create_versioned_bucket(&c, BUCKET).await;
            }
            let got = stored(&c).await;
            let keys: HashSet<&String> = got.keys().map(|(k, _)| k).collect();
            noncurrent_seen |= got.len() > keys.len();
            println!(
                "round {round}: {} versions and markers of {} keys",
                got.len(),
                keys.len()
            );
            reconcile(&mut told.lock().unwrap(), got, round);
            let tasks: Vec<_> = (0..4u64)
                .map(|w| {
                    tokio::spawn(writer(
                        c.clone(),
                        Arc::clone(&told),
                        round * 10 + w,
                        Arc::clone(&blocks),
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..2500))).await;
            g.kill();
            for t in tasks {
                t.await.unwrap();
            }
        });
        fsck(&g, round);
    }
    assert!(noncurrent_seen, "the load left keys with several versions");

    // A clean start: everything told is there; deleting every version frees it all.
    let mut g = Gateway::start_with(tmp.path(), &env).unwrap();
    let c = sdk_client(&g.s3_url);
    rt.block_on(async {
        let got = stored(&c).await;
        reconcile(&mut told.lock().unwrap(), got, ROUNDS);
        let all: Vec<(String, String)> = told.lock().unwrap().versions.keys().cloned().collect();
        assert!(!all.is_empty());
        for (k, v) in all {
            c.delete_object()
                .bucket(BUCKET)
                .key(k)
                .version_id(v)
                .send()
                .await
                .unwrap();
        }
        assert!(stored(&c).await.is_empty());
        c.delete_bucket().bucket(BUCKET).send().await.unwrap();
    });
    let out = g.admin_cli_ok(&["gc", "--grace", "0s", "--wait"]);
    assert!(out.contains("finished"), "{out}");
    for m in [
        "s3dedup_chunks ",
        "s3dedup_logical_bytes ",
        "s3dedup_noncurrent_versions ",
        "s3dedup_delete_markers ",
        "s3dedup_garbage_bytes ",
    ] {
        assert_eq!(
            g.metric(m).unwrap(),
            0.0,
            "{m}after deleting every version and GC"
        );
    }
    g.stop().unwrap();
    fsck(&g, ROUNDS + 1);
}
