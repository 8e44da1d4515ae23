//! SIGKILL during `rekey` (data safety: anything that moves stored bytes survives a
//! kill at any moment). Each round starts the gateway with one more key in its key
//! file, so everything already stored is under an older key; it checks every
//! acknowledged object byte for byte, uploads and deletes some, starts a rekey and kills
//! the process at a random moment of it. After each kill `s3dedup fsck` is clean. At
//! the end one more rekey finishes (nothing left under an old key), GC removes what the
//! killed runs left, and with only the newest key configured everything reads.
//! Runs on the local store, and on the S3 store with `S3DEDUP_TEST_STORE=s3`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, binary, sdk_client};

const ROUNDS: u16 = 10;

fn key_file(path: &Path, ids: std::ops::RangeInclusive<u16>) {
    let lines: Vec<String> = ids
        .map(|id| format!("{id}:{}", format!("{:02x}", 0x40 + id as u8).repeat(32)))
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn start(dir: &Path, keys: &Path) -> Gateway {
    let keys = keys.display().to_string();
    Gateway::start_with(
        dir,
        &[
            ("S3DEDUP_PACK_TARGET", "64KiB"),
            ("S3DEDUP_GC_INTERVAL", "0s"),
            ("S3DEDUP_ENCRYPTION", "aead"),
            ("S3DEDUP_ENCRYPTION_KEY_FILE", &keys),
        ],
    )
    .unwrap()
}

fn fsck(g: &Gateway, keys: &Path) {
    let o = Command::new(binary().unwrap())
        .args(["fsck", "--data-dir"])
        .arg(&g.data_dir)
        .env("S3DEDUP_ENCRYPTION", "aead")
        .env("S3DEDUP_ENCRYPTION_KEY_FILE", keys)
        .envs(g.store_env())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck after a kill:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn verify(c: &aws_sdk_s3::Client, model: &BTreeMap<String, Vec<u8>>) {
    s3dedup_conformance::assert_objects(c, "crash", model).await;
}

#[test]
fn sigkill_at_random_points_of_rekey_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = keys_dir.path().join("keys");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let blocks: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut v = vec![0u8; 40 << 10];
            rng.fill(&mut v[..]);
            v
        })
        .collect();
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut next = 0u32;
    let mut took = Duration::from_millis(300);
    let mut killed_running = 0;
    for round in 1..=ROUNDS {
        key_file(&keys, 1..=round);
        let mut g = start(tmp.path(), &keys);
        let c = sdk_client(&g.s3_url);
        rt.block_on(async {
            if round == 1 {
                c.create_bucket().bucket("crash").send().await.unwrap();
            }
            verify(&c, &model).await;
            for _ in 0..6 {
                let body: Vec<u8> = (0..rng.random_range(2..12))
                    .flat_map(|_| blocks[rng.random_range(0..blocks.len())].clone())
                    .collect();
                let key = format!("o{next}");
                next += 1;
                let put = c.put_object().bucket("crash").key(&key);
                put.body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .unwrap();
                model.insert(key, body);
            }
            let small = format!("small{round}");
            let put = c.put_object().bucket("crash").key(&small);
            put.body(ByteStream::from(small.clone().into_bytes()))
                .send()
                .await
                .unwrap();
            model.insert(small.clone(), small.into_bytes());
            for k in model.keys().cloned().collect::<Vec<_>>() {
                if rng.random_bool(0.25) {
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
        let (status, run) = g.admin_api("POST", "/admin/v1/rekey").unwrap();
        assert_eq!(status, 202, "{run}");
        let id = run["id"].as_u64().unwrap();
        let started = Instant::now();
        if round == 1 {
            // Measure one whole run to spread the kills over its length.
            loop {
                let (_, r) = g
                    .admin_api("GET", &format!("/admin/v1/rekey/runs/{id}"))
                    .unwrap();
                if r["result"] != "running" {
                    assert_eq!(r["result"], "ok", "{r}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            took = started.elapsed().max(Duration::from_millis(50)) * 3;
        } else {
            let at = took.mul_f64(rng.random_range(0.0..1.0));
            std::thread::sleep(at.saturating_sub(started.elapsed()));
            let (_, r) = g
                .admin_api("GET", &format!("/admin/v1/rekey/runs/{id}"))
                .unwrap();
            if r["result"] == "running" {
                killed_running += 1;
            }
        }
        g.kill();
        fsck(&g, &keys);
    }
    assert!(
        killed_running >= 3,
        "only {killed_running} kills landed mid-rekey"
    );
    // One more rekey finishes the job; GC removes what the kills left.
    let mut g = start(tmp.path(), &keys);
    let c = sdk_client(&g.s3_url);
    rt.block_on(verify(&c, &model));
    let out = g.admin_cli_ok(&["rekey", "--wait", "--json"]);
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(run["report"]["stale_packs_left"], 0, "{run}");
    let o = g.admin_cli(&["gc", "--grace", "0s", "--wait"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    g.stop().unwrap();
    fsck(&g, &keys);
    // Only the newest key: everything acknowledged reads.
    key_file(&keys, ROUNDS..=ROUNDS);
    let mut g = start(tmp.path(), &keys);
    let c = sdk_client(&g.s3_url);
    rt.block_on(verify(&c, &model));
    g.stop().unwrap();
    fsck(&g, &keys);
    println!(
        "rekey crash: {ROUNDS} rounds, {killed_running} kills mid-rekey, {} objects verified, fsck clean",
        model.len()
    );
}
