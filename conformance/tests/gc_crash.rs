//! SIGKILL during garbage collection (DESIGN.md invariant 3: every step resumable).
//!
//! Each round restarts the gateway on the same data dir, checks every acknowledged
//! object byte for byte, uploads objects that share chunks with each other, deletes
//! some, starts GC with no grace and kills the process at a random moment of it (the
//! phase it was in is recorded). After each kill: `s3dedup fsck` is clean. At the end
//! one more GC finishes what the killed runs left: no garbage remains, and the index's
//! stored bytes match the store. Runs on the local store, and on the S3 store with
//! `S3DEDUP_TEST_STORE=s3`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, sdk_client};

const ROUNDS: usize = 24;
const ENV: &[(&str, &str)] = &[
    // Small packs and a quiet scheduler: many pack deletions per run, all on demand.
    ("S3DEDUP_PACK_TARGET", "64KiB"),
    ("S3DEDUP_GC_INTERVAL", "0s"),
];

fn blocks() -> Vec<Vec<u8>> {
    (0..24u64)
        .map(|i| {
            let mut v = vec![0u8; 48 << 10];
            rand::rngs::StdRng::seed_from_u64(1000 + i).fill(&mut v[..]);
            v
        })
        .collect()
}

fn fsck(g: &Gateway) {
    g.assert_fsck("after a kill");
}

fn start(dir: &Path) -> Gateway {
    Gateway::start_with(dir, ENV).unwrap()
}

async fn verify(c: &aws_sdk_s3::Client, model: &BTreeMap<String, Vec<u8>>) {
    s3dedup_conformance::assert_objects(c, "crash", model).await;
}

#[test]
fn sigkill_at_random_points_of_gc_loses_nothing_and_the_next_run_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blocks = blocks();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut phases: HashMap<String, u32> = HashMap::new();
    let mut next_key = 0u32;
    let mut gc_took = Duration::from_millis(300);
    for round in 0..ROUNDS {
        let mut g = start(tmp.path());
        let c = sdk_client(&g.s3_url);
        rt.block_on(async {
            if round == 0 {
                c.create_bucket().bucket("crash").send().await.unwrap();
            }
            verify(&c, &model).await;
            for _ in 0..8 {
                let body: Vec<u8> = (0..rng.random_range(4..24))
                    .flat_map(|_| blocks[rng.random_range(0..blocks.len())].clone())
                    .collect();
                let key = format!("o{next_key}");
                next_key += 1;
                c.put_object()
                    .bucket("crash")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                model.insert(key, body);
            }
            let keys: Vec<String> = model.keys().cloned().collect();
            for k in keys {
                if rng.random_bool(0.5) {
                    c.delete_object()
                        .bucket("crash")
                        .key(&k)
                        .send()
                        .await
                        .unwrap();
                    model.remove(&k);
                }
            }
        });
        // An upload in flight when the process dies: its packs become unknown to the
        // index, for a later run's sweep.
        let inflight = {
            let c = c.clone();
            let body: Vec<u8> = blocks.iter().flatten().rev().copied().collect();
            rt.spawn(async move {
                let _ = c
                    .put_object()
                    .bucket("crash")
                    .key("in-flight")
                    .body(ByteStream::from(body))
                    .send()
                    .await;
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
        let (status, run) = g.admin_api("POST", "/admin/v1/gc?grace=0s").unwrap();
        assert_eq!(status, 202, "{run}");
        let started = Instant::now();
        if round == 0 {
            // Measure one whole run, to spread the kills over its length.
            loop {
                let (_, r) = g.admin_api("GET", "/admin/v1/gc/runs/1").unwrap();
                if r["result"] != "running" {
                    assert_eq!(r["result"], "ok", "{r}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            gc_took = started.elapsed().max(Duration::from_millis(60));
            g.kill();
        } else {
            let at = gc_took.mul_f64(rng.random_range(0.0..1.0));
            std::thread::sleep(at.saturating_sub(started.elapsed()));
            let id = run["id"].as_u64().unwrap();
            let phase = g
                .admin_api("GET", &format!("/admin/v1/gc/runs/{id}"))
                .map(|(_, r)| {
                    if r["result"] == "running" {
                        r["phase"].as_str().unwrap_or("?").to_owned()
                    } else {
                        "finished".to_owned()
                    }
                })
                .unwrap_or_else(|_| "?".into());
            g.kill();
            *phases.entry(phase).or_default() += 1;
        }
        inflight.abort();
        // Whether the in-flight upload committed before the kill does not matter: it
        // was never acknowledged, so it is not in the model.
        fsck(&g);
    }
    // Restart: everything acknowledged is there, and one more run finishes the work.
    let mut g = start(tmp.path());
    let c = sdk_client(&g.s3_url);
    rt.block_on(verify(&c, &model));
    let o = g.admin_cli(&["gc", "--grace", "0s", "--wait"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, st) = g.admin_api("GET", "/admin/v1/status").unwrap();
    // Nothing the killed runs left undone remains: no unreferenced chunk, no empty or
    // half-deleted pack, no orphan; every pack in the store is one the index knows.
    // (Dead space inside packs that still hold live chunks is compaction's.)
    let backlog = &st["backlog"];
    for k in [
        "zero_ref_chunks",
        "empty_packs",
        "deleting_packs",
        "orphan_packs",
    ] {
        assert_eq!(backlog[k], 0, "{k}: {st}");
    }
    assert_eq!(
        st["packs"].as_u64().unwrap() as usize,
        g.store_packs().unwrap(),
        "packs in the store vs the index: {st}"
    );
    let stored = st["stored_bytes"].as_u64().unwrap();
    let in_store = g.store_bytes().unwrap();
    assert!(
        stored.abs_diff(in_store) * 100 <= in_store.max(1),
        "index says {stored} stored, the store holds {in_store}"
    );
    rt.block_on(verify(&c, &model));
    g.stop().unwrap();
    fsck(&g);
    let mut phases: Vec<_> = phases.into_iter().collect();
    phases.sort();
    println!(
        "gc crash ({}): {} kills over a {gc_took:?} run, by phase {phases:?}; every acknowledged object verified after every restart ({} live at the end); fsck clean after every kill",
        if g.backend.is_some() {
            "S3 store"
        } else {
            "local store"
        },
        ROUNDS - 1,
        model.len()
    );
}
