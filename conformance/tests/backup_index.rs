//! `s3dedup admin backup-index --out FILE` against the running server: the file is a
//! consistent copy of the live index taken while uploads keep going; put in place of
//! `index.redb` on a stopped server, every object acknowledged before the backup reads
//! back byte-exact and `s3dedup fsck` is clean. Without the token the endpoint is 401.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, binary, http_request, sdk_client};

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

#[test]
fn a_backup_taken_under_load_restores_every_acknowledged_object() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    let before: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("before-{i}"), body(i, 50_000 + 30_000 * i as usize)))
        .collect();
    rt.block_on(async {
        c.create_bucket().bucket("backup").send().await.unwrap();
        for (k, v) in &before {
            let put = c.put_object().bucket("backup").key(k);
            put.body(ByteStream::from(v.clone())).send().await.unwrap();
        }
    });
    // Uploads keep going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), Arc::clone(&stop));
        rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let put = c.put_object().bucket("backup").key(format!("during-{n}"));
                put.body(ByteStream::from(body(1000 + n, 70_000)))
                    .send()
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let out = tmp.path().join("backup.redb");
    let o = g
        .admin_cli(&["backup-index", "--out", out.to_str().unwrap()])
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("index backup written"), "{text}");
    stop.store(true, Ordering::Relaxed);
    let during = rt.block_on(writer).unwrap();
    assert!(during > 0, "uploads ran during the backup");
    let (status, _) =
        http_request(&g.admin_addr, "GET", "/admin/v1/backup-index", &[], &[]).unwrap();
    assert_eq!(status, 401, "the backup needs the admin token");
    let (status, _) = g.admin_api("POST", "/admin/v1/backup-index").unwrap();
    assert_eq!(status, 405);
    g.stop().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("index-snapshots"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().starts_with("backup-")),
        "no temporary backup left in the data dir: {leftovers:?}"
    );

    // Restore: the backup replaces the index of the stopped server.
    std::fs::copy(&out, dir.join("index.redb")).unwrap();
    let fsck = Command::new(binary().unwrap())
        .args(["fsck", "--data-dir"])
        .arg(&dir)
        .envs(g.store_env())
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let g = Gateway::start_in(&dir).unwrap();
    let c = sdk_client(&g.s3_url);
    rt.block_on(async {
        for (k, v) in &before {
            let o = c.get_object().bucket("backup").key(k).send().await.unwrap();
            let got = o.body.collect().await.unwrap().into_bytes();
            assert!(got[..] == v[..], "{k} restored byte-exact");
        }
    });
}
